//go:build !backlite_static

package backlite

// The default: the shared library libbacklite.so, found with pkg-config (the backlite.pc
// that `cmake --install` writes). Point PKG_CONFIG_PATH at <prefix>/lib/pkgconfig for a
// prefix pkg-config does not search, and make the library findable at run time
// (ldconfig, an rpath, or LD_LIBRARY_PATH). See README.md.

// #cgo pkg-config: backlite
import "C"
