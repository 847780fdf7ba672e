#!/usr/bin/env bash
# Each binding used the way its ecosystem uses a package, from a project of its own
# outside the repository: tests/consumers/<language>/ is copied to a temporary folder
# as app/, beside a link named backlite/ to this repository (the layout each binding's
# README shows: "BackLite checked out beside your project"), then built and run there
# against an installed BackLite. Each app does a set/get round trip and fails loudly
# when the value differs.
#
#   cpp     a CMake project: find_package(backlite) and backlite.hpp
#   go      a module of its own: require + replace => ../backlite/bindings/go, pkg-config
#   zig     a Zig project: build.zig.zon's .path = "../backlite/bindings/zig"
#   python  the wheel (BACKLITE_PYTHON_WHEEL, or `pip wheel ./bindings/python`: maturin)
#           installed into a fresh venv
#   (Swift: a SwiftPM package with .package(path:), in bindings/swift/run_tests.sh,
#   which has the Debian 13 chroot with the toolchain.)
#
#   BACKLITE_BUILD_DIR=build bash tests/consumers/run.sh [cpp go zig python]
#   BACKLITE_PREFIX=/usr/local bash tests/consumers/run.sh      # an installed BackLite
#
# BACKLITE_BUILD_DIR is a CMake build of this repository (`cmake --install` of it goes
# into the temporary folder); BACKLITE_PREFIX an already installed tree. The temporary
# folder is removed on exit; Go's and pip's caches are their usual ones, Zig's and its
# venv are those of bindings/zig/run_tests.sh, under ${XDG_CACHE_HOME:-~/.cache}/backlite.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
langs=${*:-cpp go zig python}
tools=${BACKLITE_CACHE_DIR:-${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/backlite}
started=$(date +%s)

log() { echo "== [consumers $(( $(date +%s) - started ))s] $*"; }
die() { echo "tests/consumers/run.sh: FAILED: $*" >&2; exit 1; }

for dir in /usr/local/go/bin "${HOME:-/root}/go/bin"; do
    [ -d "$dir" ] && case ":$PATH:" in *":$dir:"*) ;; *) PATH="$PATH:$dir" ;; esac
done
export PATH
unset LD_LIBRARY_PATH || true

work=$(mktemp -d "${TMPDIR:-/tmp}/backlite-consumers.XXXXXX")
trap 'rm -rf "$work"' EXIT
ln -s "$root" "$work/backlite"

if [ -n "${BACKLITE_PREFIX:-}" ]; then
    prefix=$(cd "$BACKLITE_PREFIX" && pwd)
else
    [ -n "${BACKLITE_BUILD_DIR:-}" ] || die "set BACKLITE_BUILD_DIR (a CMake build) or BACKLITE_PREFIX"
    prefix=$work/prefix
    log "cmake --install $BACKLITE_BUILD_DIR --prefix $prefix"
    cmake --install "$BACKLITE_BUILD_DIR" --prefix "$prefix" >"$work/install.log" ||
        { cat "$work/install.log" >&2; die "cmake --install"; }
fi
libdir=$prefix/lib
[ -f "$libdir/pkgconfig/backlite.pc" ] || libdir=$(dirname "$(dirname "$(find "$prefix" -name backlite.pc | head -n 1)")")
[ -f "$libdir/pkgconfig/backlite.pc" ] || die "no backlite.pc under $prefix"

# A fresh copy of the consumer as $work/app (so that ../backlite is the repository).
app() {
    rm -rf "$work/app"
    cp -R "$here/$1" "$work/app"
    cd "$work/app"
}
# The binding's README shows the consumer's lines as they are.
readme_shows() {
    python3 "$here/readme_shows.py" "$root/bindings/$1/README.md" "$here/$1/$2" "${@:3}" ||
        die "$1: bindings/$1/README.md and tests/consumers/$1/$2 differ"
}
# The app's output must be the value it set.
expect() {
    local want=$1 got
    shift
    got=$("$@") || die "$lang: the app failed (exit $?)"
    [ "$got" = "$want" ] || die "$lang: the app printed '$got', expected '$want'"
    echo "$lang: $got"
}

for lang in $langs; do
    t0=$(date +%s)
    case $lang in
    cpp)
        log "C++: find_package(backlite) in a CMake project of its own"
        readme_shows cpp CMakeLists.txt '^find_package' '^target_compile_features'
        app cpp
        cmake -S . -B build -G Ninja -DCMAKE_PREFIX_PATH="$prefix" \
            -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF >"$work/cmake.log" ||
            { cat "$work/cmake.log" >&2; die "cpp: cmake configure"; }
        cmake --build build
        LD_LIBRARY_PATH=$libdir expect "hello from C++" ./build/app "$work/cpp.db"
        ;;
    go)
        command -v go >/dev/null || die "go: go is not installed"
        log "Go: a module of its own, replace => ../backlite/bindings/go ($(go version | cut -d' ' -f3))"
        readme_shows go go.mod '^module' '^replace'
        if [ -z "${GOCACHE:-}" ] && [ -z "${HOME:-}" ] && [ -z "${XDG_CACHE_HOME:-}" ]; then
            export GOCACHE=$tools/go-build
        fi
        app go
        # GOPROXY=off: the module comes from the replace, nothing from the network.
        PKG_CONFIG_PATH=$libdir/pkgconfig GOPROXY=off GOFLAGS=-mod=mod go build -o app .
        LD_LIBRARY_PATH=$libdir expect "hello from Go" ./app "$work/go.db"
        ;;
    zig)
        python=$tools/zig-0.15.2-venv/bin/python
        if [ "$("$python" -m ziglang version 2>/dev/null || true)" != 0.15.2 ]; then
            log "pip install ziglang==0.15.2 (into ${python%/bin/python})"
            rm -rf "${python%/bin/python}"
            mkdir -p "$tools"
            python3 -m venv "${python%/bin/python}"
            "$python" -m pip install --quiet --disable-pip-version-check ziglang==0.15.2
        fi
        log "Zig: build.zig.zon .path = \"../backlite/bindings/zig\""
        readme_shows zig build.zig.zon '\.dependencies' '^    \},'
        readme_shows zig build.zig 'const prefix' 'addImport'
        app zig
        cache=${ZIG_CACHE_DIR:-$tools/zig-cache}
        "$python" -m ziglang build run --cache-dir "$work/zig-cache" --global-cache-dir "$cache/global" \
            -Dbacklite-prefix="$prefix" -- "$work/zig.db" >"$work/zig.out" ||
            die "zig: zig build run (exit $?)"
        expect "hello from Zig" cat "$work/zig.out"
        rm -rf zig-out
        ;;
    python)
        if [ -n "${BACKLITE_PYTHON_WHEEL:-}" ]; then
            log "Python: the wheel $BACKLITE_PYTHON_WHEEL, installed into a fresh venv"
            wheel=$BACKLITE_PYTHON_WHEEL
        else
            log "Python: pip wheel ./bindings/python (maturin), installed into a fresh venv"
            (cd "$root" && python3 -m pip wheel --quiet --disable-pip-version-check --no-deps \
                -w "$work/wheels" ./bindings/python) || die "python: pip wheel"
            wheel=$(ls "$work"/wheels/backlite-*.whl)
        fi
        python3 -m venv "$work/venv" || die "python: python3 -m venv (Debian: apt-get install python3-venv)"
        "$work/venv/bin/pip" install --quiet --disable-pip-version-check --no-index "$wheel"
        app python
        expect "hello from Python" "$work/venv/bin/python" app.py "$work/python.db"
        ;;
    *) die "unknown language '$lang' (cpp go zig python; Swift is in bindings/swift/run_tests.sh)" ;;
    esac
    cd "$work"
    log "$lang: passed in $(( $(date +%s) - t0 ))s"
done
log "every consumer built and ran outside the repository"
