//go:build backlite_static

package backlite

// With -tags backlite_static: libbacklite.a linked into the Go binary. The compiler and
// linker find backlite.h and libbacklite.a through CGO_CFLAGS=-I<dir> and
// CGO_LDFLAGS=-L<dir> (or in /usr/local). Not for programs that link another SQLite or
// another Rust static library: see README.md.

// #cgo LDFLAGS: -l:libbacklite.a -lpthread -ldl -lm
import "C"
