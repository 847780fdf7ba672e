#!/bin/sh
# ctest install_consumer: install this build of BackLite into a prefix inside the
# build tree, check what the install tree holds, then build tests/consumer/main.c
# against it from outside:
#   1. as a CMake project with find_package(backlite CONFIG) (shared and static),
#   2. with plain cc and pkg-config (shared, then static with Libs.private).
# The root CMakeLists.txt passes the build's settings in the environment.
set -eu

: "${BACKLITE_BUILD_DIR:?run me through ctest (install_consumer)}"
: "${BACKLITE_SOURCE_DIR:?}"
: "${BACKLITE_VERSION:?}"
: "${BACKLITE_SONAME:?}"
CMAKE_COMMAND=${CMAKE_COMMAND:-cmake}
BACKLITE_LIBDIR=${BACKLITE_LIBDIR:-lib}
BACKLITE_INCLUDEDIR=${BACKLITE_INCLUDEDIR:-include}
CC=${CC:-cc}

work="$BACKLITE_BUILD_DIR/tests/consumer"
prefix="$work/prefix"
libdir="$prefix/$BACKLITE_LIBDIR"
includedir="$prefix/$BACKLITE_INCLUDEDIR"
consumer_src="$BACKLITE_SOURCE_DIR/tests/consumer"

step() { printf '\n== %s\n' "$*"; }
fail() { printf 'install_consumer: FAILED: %s\n' "$*" >&2; exit 1; }

rm -rf "$work"
mkdir -p "$work"

step "cmake --install $BACKLITE_BUILD_DIR --prefix $prefix"
"$CMAKE_COMMAND" --install "$BACKLITE_BUILD_DIR" --prefix "$prefix"

step "the install tree"
(cd "$prefix" && find . \( -type f -o -type l \) | sort)
realname="libbacklite.so.$BACKLITE_VERSION"
for f in "$includedir/backlite.h" "$libdir/$realname" "$libdir/libbacklite.a" \
         "$libdir/pkgconfig/backlite.pc" \
         "$libdir/cmake/backlite/backlite-config.cmake" \
         "$libdir/cmake/backlite/backlite-config-version.cmake"; do
    [ -f "$f" ] && [ ! -L "$f" ] || fail "missing or not a regular file: $f"
done
[ -x "$libdir/$realname" ] || fail "$libdir/$realname is not executable"
[ -L "$libdir/$BACKLITE_SONAME" ] || fail "$libdir/$BACKLITE_SONAME is not a symlink"
[ "$(readlink "$libdir/$BACKLITE_SONAME")" = "$realname" ] ||
    fail "$BACKLITE_SONAME -> $(readlink "$libdir/$BACKLITE_SONAME"), expected $realname"
[ -L "$libdir/libbacklite.so" ] || fail "$libdir/libbacklite.so is not a symlink"
[ "$(readlink "$libdir/libbacklite.so")" = "$BACKLITE_SONAME" ] ||
    fail "libbacklite.so -> $(readlink "$libdir/libbacklite.so"), expected $BACKLITE_SONAME"
if command -v readelf >/dev/null 2>&1; then
    soname=$(readelf -d "$libdir/$realname" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
    [ "$soname" = "$BACKLITE_SONAME" ] || fail "SONAME of $realname is '$soname', expected $BACKLITE_SONAME"
    echo "SONAME: $soname"
fi
echo "backlite.pc:"
sed 's/^/    /' "$libdir/pkgconfig/backlite.pc"

# Built programs must find the installed library, not the one in the build tree.
unset LD_LIBRARY_PATH || true

step "find_package(backlite 0.1 CONFIG): configure, build, run"
"$CMAKE_COMMAND" -S "$consumer_src" -B "$work/cmake-build" \
    ${CMAKE_GENERATOR:+-G "$CMAKE_GENERATOR"} \
    ${BACKLITE_C_COMPILER:+-DCMAKE_C_COMPILER="$BACKLITE_C_COMPILER"} \
    -DCMAKE_PREFIX_PATH="$prefix" \
    -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF
"$CMAKE_COMMAND" --build "$work/cmake-build"
"$work/cmake-build/consumer" "$work/cmake-shared.db"
if command -v ldd >/dev/null 2>&1; then
    ldd "$work/cmake-build/consumer" | grep -F "$BACKLITE_SONAME => $libdir/$BACKLITE_SONAME" ||
        fail "the CMake consumer does not load $libdir/$BACKLITE_SONAME"
fi
"$work/cmake-build/consumer_static" "$work/cmake-static.db"

if ! command -v pkg-config >/dev/null 2>&1; then
    echo
    echo "SKIPPED the pkg-config half of install_consumer: pkg-config is not installed"
    echo "(apt-get install pkg-config). The find_package half passed."
    exit 0
fi

step "pkg-config: cc \$(pkg-config --cflags --libs backlite), run with LD_LIBRARY_PATH=$libdir"
PKG_CONFIG_PATH="$libdir/pkgconfig"
export PKG_CONFIG_PATH
modversion=$(pkg-config --modversion backlite)
[ "$modversion" = "$BACKLITE_VERSION" ] || fail "pkg-config --modversion backlite says $modversion"
echo "pkg-config --cflags --libs backlite: $(pkg-config --cflags --libs backlite)"
# shellcheck disable=SC2046 # word splitting of pkg-config's output is wanted
"$CC" -std=c11 -Wall -Wextra -Werror -o "$work/consumer-pc" "$consumer_src/main.c" \
    $(pkg-config --cflags --libs backlite)
LD_LIBRARY_PATH="$libdir" "$work/consumer-pc" "$work/pkg-config-shared.db"

step "pkg-config --static: libbacklite.a with Libs.private"
static_libs=$(pkg-config --static --libs backlite | sed "s|-lbacklite\\b|$libdir/libbacklite.a|")
echo "link: $static_libs"
# shellcheck disable=SC2046,SC2086
"$CC" -std=c11 -Wall -Wextra -Werror -o "$work/consumer-pc-static" "$consumer_src/main.c" \
    $(pkg-config --cflags backlite) $static_libs
"$work/consumer-pc-static" "$work/pkg-config-static.db"
if command -v ldd >/dev/null 2>&1 && ldd "$work/consumer-pc-static" | grep -q libbacklite; then
    fail "the static pkg-config consumer still loads libbacklite.so"
fi

echo
echo "install_consumer: the installed BackLite works through find_package and pkg-config"
