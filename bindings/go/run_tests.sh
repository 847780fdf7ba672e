#!/usr/bin/env bash
# Tests of the Go binding: go vet, go test -race and go test -asan (a leak check, against
# libbacklite.so), and go test with -tags backlite_static (against libbacklite.a).
#
#   bash bindings/go/run_tests.sh                  # builds the library with cargo first
#   BACKLITE_LIB_DIR=build/cargo/release bash bindings/go/run_tests.sh   # a built library
#
# BACKLITE_LIB_DIR holds libbacklite.so and libbacklite.a (cargo's target/release, or a
# CMake build's cargo/release, or an installed lib directory). Without it, the library
# is built with `cargo build --release --lib` into $CARGO_TARGET_DIR (default target/).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)

# Toolchains installed the usual ways, even when PATH was not set up for them.
for dir in /usr/local/go/bin "${HOME:-/root}/go/bin" "${CARGO_HOME:-${HOME:-/root}/.cargo}/bin"; do
    [ -d "$dir" ] && case ":$PATH:" in *":$dir:"*) ;; *) PATH="$PATH:$dir" ;; esac
done
export PATH
command -v go >/dev/null || { echo "run_tests.sh: go is not installed" >&2; exit 1; }
command -v pkg-config >/dev/null || {
    echo "run_tests.sh: pkg-config is needed (apt-get install pkg-config)" >&2; exit 1; }
# BackLite's own cache folder: the staged library below, and go's build cache when the
# environment gives go none (no HOME).
tools=${BACKLITE_CACHE_DIR:-${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/backlite}
if [ -z "${GOCACHE:-}" ] && [ -z "${HOME:-}" ] && [ -z "${XDG_CACHE_HOME:-}" ]; then
    export GOCACHE=$tools/go-build
fi

include_dir=${BACKLITE_INCLUDE_DIR:-$root/include}
if [ -z "${BACKLITE_LIB_DIR:-}" ]; then
    target=${CARGO_TARGET_DIR:-$root/target}
    echo "== cargo build --release --lib (CARGO_TARGET_DIR=$target)"
    CARGO_TARGET_DIR="$target" cargo build --release --lib --manifest-path "$root/Cargo.toml"
    BACKLITE_LIB_DIR=$target/release
fi
lib_dir=$(cd "$BACKLITE_LIB_DIR" && pwd)
for f in "$lib_dir/libbacklite.so" "$lib_dir/libbacklite.a" "$include_dir/backlite.h"; do
    [ -e "$f" ] || { echo "run_tests.sh: missing $f" >&2; exit 1; }
done

# Stage the library under the name its SONAME asks for (cargo writes only
# libbacklite.so), and a backlite.pc pointing at it with an rpath, so the test binaries
# load this library and no other. Go's build cache does not notice a change in what
# pkg-config says or in the library's bytes, so the stage is named after a checksum of
# the library and header, which also goes into CGO_CFLAGS: a new library means a new
# build of the package, linked against the new stage; the stage is kept (in the cache
# folder, not /tmp), since cached test binaries point at it.
key=$(cat "$lib_dir/libbacklite.so" "$lib_dir/libbacklite.a" "$include_dir/backlite.h" | cksum | cut -d' ' -f1)
stage=$tools/go-stage-$key
soname=$(readelf -d "$lib_dir/libbacklite.so" 2>/dev/null | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
soname=${soname:-libbacklite.so.0}
# Stages of other libraries are stale (their cache entries are keyed on their checksum).
for old in "$tools"/go-stage-*; do
    [ "$old" = "$stage" ] || rm -rf "$old"
done
rm -rf "$stage"
mkdir -p "$stage/lib/pkgconfig"
# Stages of the old layout, in /tmp.
rm -rf "${TMPDIR:-/tmp}"/backlite-go-*
cp "$lib_dir/libbacklite.so" "$stage/lib/$soname"  # a copy: what the rpath'd binaries load
ln -s "$soname" "$stage/lib/libbacklite.so"
ln -s "$lib_dir/libbacklite.a" "$stage/lib/libbacklite.a"  # read at link time only
cat > "$stage/lib/pkgconfig/backlite.pc" <<PC
libdir=$stage/lib
includedir=$include_dir

Name: backlite
Description: BackLite (staged for the Go binding's tests)
Version: $(sed -n 's/^#define BACKLITE_VERSION_STRING "\(.*\)"/\1/p' "$include_dir/backlite.h")
Libs: -L\${libdir} -Wl,-rpath,\${libdir} -lbacklite
Cflags: -I\${includedir}
PC
export CGO_CFLAGS="${CGO_CFLAGS:--O2 -g} -DBACKLITE_GO_TEST_LIBRARY=$key"
export PKG_CONFIG_PATH="$stage/lib/pkgconfig"
unset LD_LIBRARY_PATH || true

cd "$here"
echo "== go version: $(go version)"
echo "== library: $lib_dir"
echo "== go vet ./..."
go vet ./...
echo "== go test -race ./... (libbacklite.so)"
go test -race -count=1 ./...
go test -c -o "$stage/shared.test" .

# AddressSanitizer, whose LeakSanitizer checks at exit (Go >= 1.25) that everything
# C allocated was freed: the library is not instrumented, but its mallocs go through
# ASan's, so an error object or buffer the binding forgets to free fails the run.
echo "== go test -asan ./... (libbacklite.so, leak check at exit)"
ASAN_OPTIONS=detect_leaks=1 go test -asan -count=1 ./...
ldd "$stage/shared.test" | grep -F "$soname => $stage/lib/$soname" >/dev/null ||
    { echo "run_tests.sh: the test binary does not load the staged library" >&2; exit 1; }

echo "== go test -tags backlite_static ./... (libbacklite.a)"
export CGO_CFLAGS="$CGO_CFLAGS -I$include_dir" CGO_LDFLAGS="-L$stage/lib"
go test -tags backlite_static -count=1 ./...
go test -c -tags backlite_static -o "$stage/static.test" .
if ldd "$stage/static.test" | grep -q libbacklite; then
    echo "run_tests.sh: the static test binary still loads libbacklite.so" >&2; exit 1
fi
rm -f "$stage/shared.test" "$stage/static.test"
echo "== Go binding: all tests passed"
