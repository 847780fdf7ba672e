#!/usr/bin/env bash
# Tests of the Swift binding: `swift build` and `swift test` (XCTest) in a Debian 13
# chroot, since Debian 12 has no Swift toolchain and Debian 13 has `swiftlang` (6.0);
# then the test bundle again under valgrind, where a leak fails the run; then a package
# of its own (tests/consumers/swift/) that depends on this one by path.
# Runs as root (debootstrap, chroot, mount) on Debian 12 with access to the Debian
# archive only; the library is built on the host and copied in.
#
#   bash bindings/swift/run_tests.sh                       # builds the library with cargo first
#   BACKLITE_LIB_DIR=target/release bash bindings/swift/run_tests.sh
#
# Environment:
#   BACKLITE_LIB_DIR          libbacklite.so from here instead of `cargo build --release --lib`
#   BACKLITE_INCLUDE_DIR      backlite.h from here (default: include/)
#   BACKLITE_SWIFT_CHROOT     use (and keep) this chroot directory: created if missing,
#                             reused with its toolchain if already set up
#   BACKLITE_SWIFT_KEEP=1     keep the temporary chroot (its path is printed)
#   BACKLITE_ALLOW_SWIFT_SKIP=1  exit 0 instead of failing when the disk is too small
#   BACKLITE_DEBIAN_MIRROR    the Debian mirror (default: the one in /etc/apt/sources.list*)
#   TMPDIR                    where the temporary chroot goes (default /var/tmp)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
suite=trixie
need_kb=$((5 * 1024 * 1024))   # debootstrap ~0.3 GB + swiftlang ~3 GB + the build ~0.5 GB
started=$(date +%s)

log() { echo "== [swift $(( $(date +%s) - started ))s] $*"; }
die() { echo "run_tests.sh: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (debootstrap, chroot and mount need it)"
for dir in "${CARGO_HOME:-${HOME:-/root}/.cargo}/bin"; do
    [ -d "$dir" ] && case ":$PATH:" in *":$dir:"*) ;; *) PATH="$PATH:$dir" ;; esac
done
export PATH

# ---- the chroot's place, and the disk it needs ----
if [ -n "${BACKLITE_SWIFT_CHROOT:-}" ]; then
    chroot_dir=$BACKLITE_SWIFT_CHROOT
    keep=1
    mkdir -p "$chroot_dir"
else
    base=${TMPDIR:-/var/tmp}
    mkdir -p "$base"
    chroot_dir=""
    keep=${BACKLITE_SWIFT_KEEP:-0}
fi
ready=0
packages="swiftlang libc6-dev pkg-config valgrind"
if [ -n "$chroot_dir" ] && [ -x "$chroot_dir/usr/bin/dpkg-query" ] &&
    [ "$(chroot "$chroot_dir" dpkg-query -W -f='${Status}\n' $packages 2>/dev/null | grep -c 'install ok installed')" = "$(echo $packages | wc -w)" ]; then
    ready=1
fi
if [ "$ready" = 0 ]; then
    where=${chroot_dir:-$base}
    free_kb=$(df -Pk "$where" | awk 'NR == 2 { print $4 }')
    if [ "$free_kb" -lt "$need_kb" ]; then
        echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!" >&2
        echo "!! SKIPPED: not enough disk for the Swift toolchain" >&2
        echo "!! $where has $((free_kb / 1024)) MiB free; the Debian 13 chroot with swiftlang" >&2
        echo "!! needs $((need_kb / 1024)) MiB. The Swift binding was NOT tested." >&2
        echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!" >&2
        [ "${BACKLITE_ALLOW_SWIFT_SKIP:-0}" = 1 ] && exit 0
        exit 1
    fi
fi

# ---- the library, built on the host ----
include_dir=${BACKLITE_INCLUDE_DIR:-$root/include}
if [ -z "${BACKLITE_LIB_DIR:-}" ]; then
    target=${CARGO_TARGET_DIR:-$root/target}
    log "cargo build --release --lib (CARGO_TARGET_DIR=$target)"
    CARGO_TARGET_DIR="$target" cargo build --release --lib --manifest-path "$root/Cargo.toml"
    BACKLITE_LIB_DIR=$target/release
fi
lib_dir=$(cd "$BACKLITE_LIB_DIR" && pwd)
for f in "$lib_dir/libbacklite.so" "$include_dir/backlite.h"; do
    [ -e "$f" ] || die "missing $f"
done
soname=$(readelf -d "$lib_dir/libbacklite.so" 2>/dev/null | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
soname=${soname:-libbacklite.so.0}
version=$(sed -n 's/^#define BACKLITE_VERSION_STRING "\(.*\)"/\1/p' "$include_dir/backlite.h")

# ---- cleanup: unmount first, and never remove anything while a mount is inside ----
redis_pid=""
redis_dir=""
cleanup() {
    local status=$?
    set +e
    if [ -n "$redis_pid" ]; then
        kill -KILL "$redis_pid" 2>/dev/null
        wait "$redis_pid" 2>/dev/null
    fi
    [ -n "$redis_dir" ] && rm -rf "$redis_dir"
    if [ -n "$chroot_dir" ]; then
        for m in "$chroot_dir/proc" "$chroot_dir/dev/pts"; do
            if mountpoint -q "$m" 2>/dev/null; then
                umount "$m" 2>/dev/null || umount -l "$m"
            fi
        done
        if [ "$keep" = 1 ]; then
            log "kept the chroot: $chroot_dir (BACKLITE_SWIFT_CHROOT=$chroot_dir reuses it)"
        elif grep -qF " $chroot_dir/" /proc/mounts; then
            echo "run_tests.sh: something is still mounted under $chroot_dir: not removing it" >&2
        else
            log "removing the chroot"
            rm -rf --one-file-system "$chroot_dir"
        fi
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ -z "$chroot_dir" ]; then
    chroot_dir=$(mktemp -d "$base/backlite-swift.XXXXXX")
fi
in_chroot() {
    chroot "$chroot_dir" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        HOME=/root LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive "$@"
}

# ---- Debian 13 with swiftlang ----
if [ "$ready" = 0 ]; then
    # Installed by .ci/run; a test never installs system packages itself.
    command -v debootstrap >/dev/null || die "debootstrap is needed (apt-get install debootstrap)"
    mirror=${BACKLITE_DEBIAN_MIRROR:-}
    if [ -z "$mirror" ]; then
        # The host's own Debian mirror: the first URI serving the main archive.
        mirror=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null |
            sed -n -e 's/^[[:space:]]*URIs:[[:space:]]*//p' \
                   -e 's/^[[:space:]]*deb[[:space:]]\+\(\[[^]]*\][[:space:]]\+\)\?\([^[:space:]]\+\).*/\2/p' |
            tr ' ' '\n' | grep -E '^https?://.*/debian/?$' | head -n 1 || true)
        mirror=${mirror:-http://deb.debian.org/debian}
    fi
    if [ ! -x "$chroot_dir/usr/bin/apt-get" ]; then
        log "debootstrap --variant=minbase $suite $chroot_dir $mirror"
        debootstrap --variant=minbase "$suite" "$chroot_dir" "$mirror" >"$chroot_dir.debootstrap.log" 2>&1 ||
            debootstrap --variant=minbase "$suite" "$chroot_dir" "$mirror" >>"$chroot_dir.debootstrap.log" 2>&1 ||
            { tail -n 30 "$chroot_dir.debootstrap.log" >&2; rm -f "$chroot_dir.debootstrap.log"; die "debootstrap failed"; }
        rm -f "$chroot_dir.debootstrap.log"
    fi
fi
cp /etc/resolv.conf "$chroot_dir/etc/resolv.conf"
mountpoint -q "$chroot_dir/proc" || mount -t proc proc "$chroot_dir/proc"
if [ "$ready" = 0 ]; then
    log "apt-get install swiftlang (in the chroot)"
    # A package index that names an archive the mirror no longer has: refresh, retry once.
    in_chroot sh -c "apt-get update -q && { apt-get install -y -q --no-install-recommends $packages ||
        { apt-get update -q && apt-get install -y -q --no-install-recommends $packages; }; }" \
        >"$chroot_dir/root/apt.log" 2>&1 || { tail -n 30 "$chroot_dir/root/apt.log" >&2; die "installing swiftlang failed"; }
fi
log "$(in_chroot swift --version 2>/dev/null | head -n 1)"

# ---- the library, the header and the package, copied in ----
prefix=/opt/backlite
rm -rf "$chroot_dir$prefix" "$chroot_dir/work/BackLite"
mkdir -p "$chroot_dir$prefix/lib/pkgconfig" "$chroot_dir$prefix/include" "$chroot_dir/work"
cp "$lib_dir/libbacklite.so" "$chroot_dir$prefix/lib/$soname"
ln -s "$soname" "$chroot_dir$prefix/lib/libbacklite.so"
cp "$include_dir/backlite.h" "$chroot_dir$prefix/include/"
cat >"$chroot_dir$prefix/lib/pkgconfig/backlite.pc" <<PC
prefix=$prefix
libdir=\${prefix}/lib
includedir=\${prefix}/include

Name: backlite
Description: BackLite (staged for the Swift binding's tests)
Version: $version
Libs: -L\${libdir} -lbacklite
Cflags: -I\${includedir}
PC
mkdir -p "$chroot_dir/work/BackLite"
tar -C "$here" --exclude=./.build --exclude=./.swiftpm -cf - . | tar -C "$chroot_dir/work/BackLite" -xf -

# ---- a redis-server for the remote tier's tests ----
# On the host, on a free loopback port, in a folder of its own, stopped by the trap:
# the chroot shares the host's network, and the tests find it by BACKLITE_TEST_REDIS_PORT.
redis_env=""
if command -v redis-server >/dev/null; then
    redis_dir=$(mktemp -d "${TMPDIR:-/tmp}/backlite-swift-redis.XXXXXX")
    redis_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no \
        --dir "$redis_dir" --logfile redis.log --daemonize no >/dev/null 2>&1 &
    redis_pid=$!
    for _ in $(seq 1000); do
        (exec 3<>"/dev/tcp/127.0.0.1/$redis_port") 2>/dev/null && break
        kill -0 "$redis_pid" 2>/dev/null || die "redis-server did not start"
        sleep 0.01
    done
    redis_env="BACKLITE_TEST_REDIS_PORT=$redis_port"
    log "redis-server on 127.0.0.1:$redis_port for the remote tests"
else
    echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!" >&2
    echo "!! redis-server is not installed on the host (apt-get install redis-server):" >&2
    echo "!! the Swift remote tier tests against a real server are SKIPPED." >&2
    echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!" >&2
fi

# ---- build and test ----
flags="-Xlinker -rpath -Xlinker $prefix/lib -Xswiftc -warnings-as-errors"
log "swift build --build-tests"
in_chroot env PKG_CONFIG_PATH=$prefix/lib/pkgconfig sh -c "cd /work/BackLite && swift build --build-tests $flags"
log "swift test"
set +e
in_chroot env PKG_CONFIG_PATH=$prefix/lib/pkgconfig $redis_env sh -c \
    "cd /work/BackLite && timeout 900 swift test --disable-swift-testing $flags" 2>&1 | tee "$chroot_dir/root/test.log"
status=${PIPESTATUS[0]}
set -e
summary=$(grep -a "Executed [0-9]* tests\?, with [0-9]* failures\?" "$chroot_dir/root/test.log" | tail -n 1 || true)
total=$(echo "$summary" | sed -n 's/.*Executed \([0-9]*\) tests\?, with \([0-9]*\) failures\?.*/\1/p')
failed=$(echo "$summary" | sed -n 's/.*Executed \([0-9]*\) tests\?, with \([0-9]*\) failures\?.*/\2/p')
[ "$status" = 0 ] && [ -n "$total" ] && [ "$total" -gt 0 ] ||
    die "swift test failed (exit $status)${summary:+: $summary}"

# ---- the same tests under valgrind: a C object the binding forgets to free ----
# A definite leak fails the run (every indirect one hangs off a definite one).
# Tests/valgrind.supp names XCTest's own once-per-process allocations, each with its
# reason. About a minute.
log "valgrind: the test bundle"
set +e
in_chroot env $redis_env sh -c "cd /work/BackLite && timeout 1800 valgrind --leak-check=full \
    --show-leak-kinds=definite --errors-for-leak-kinds=definite \
    --error-exitcode=1 --suppressions=/work/BackLite/Tests/valgrind.supp --gen-suppressions=all \
    .build/debug/BackLitePackageTests.xctest" >"$chroot_dir/root/memcheck.log" 2>&1
status=$?
set -e
grep -a -E "Executed [0-9]+ tests?|definitely lost:|indirectly lost:|ERROR SUMMARY" "$chroot_dir/root/memcheck.log" || true
if [ "$status" != 0 ]; then
    tail -n 200 "$chroot_dir/root/memcheck.log" >&2
    die "swift test under valgrind failed (exit $status): a leak, or a failing test"
fi

# ---- a package of its own that depends on this one by path ----
# tests/consumers/swift/ as /work/app beside a copy of the binding at
# /work/backlite/bindings/swift, the layout the README's first section shows.
python3 "$root/tests/consumers/readme_shows.py" "$here/README.md" \
    "$root/tests/consumers/swift/Package.swift" '^let package' '^\)' ||
    die "README.md and tests/consumers/swift/Package.swift differ"
log "a consumer package: .package(path: \"../backlite/bindings/swift\"), swift build, run"
rm -rf "$chroot_dir/work/app" "$chroot_dir/work/backlite"
mkdir -p "$chroot_dir/work/backlite/bindings/swift"
tar -C "$here" --exclude=./.build --exclude=./.swiftpm -cf - . | tar -C "$chroot_dir/work/backlite/bindings/swift" -xf -
cp -R "$root/tests/consumers/swift" "$chroot_dir/work/app"
in_chroot env PKG_CONFIG_PATH=$prefix/lib/pkgconfig sh -c "cd /work/app && swift build $flags" ||
    die "the consumer package does not build"
got=$(in_chroot sh -c "cd /work/app && .build/debug/App /work/app/app.db") ||
    die "the consumer package's app failed"
[ "$got" = "hello from Swift" ] || die "the consumer package printed '$got', expected 'hello from Swift'"
echo "swift consumer: $got"
rm -rf "$chroot_dir/work/app" "$chroot_dir/work/backlite"
log "Swift binding: all tests passed, and valgrind found no leak"
echo "swift: $((total - failed)) passed, $failed failed"
