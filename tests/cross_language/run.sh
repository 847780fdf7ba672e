#!/usr/bin/env bash
# One cache, many languages: C, Go and Python processes (two of each) open one file at
# the same time; each writes its keys and reads every other's back byte for byte; then
# all ask at once for one memoised key, which must be computed exactly once.
#
#   BACKLITE_LIB_DIR=<dir with libbacklite.so and .a> bash tests/cross_language/run.sh
#
# BACKLITE_PYTHON_WHEEL=<wheel>: the Python package to install (default: pip builds
# ./bindings/python, with maturin).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
lib_dir=$(cd "${BACKLITE_LIB_DIR:?set BACKLITE_LIB_DIR to the built library}" && pwd)
for dir in /usr/local/go/bin "${HOME:-/root}/go/bin"; do
    [ -d "$dir" ] && PATH="$PATH:$dir"
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "== building the participants"
cc -std=c11 -Wall -Wextra -Werror -D_POSIX_C_SOURCE=200809L -I"$root/include" "$here/participant.c" \
    "$lib_dir/libbacklite.a" -lgcc_s -lpthread -ldl -lm -o "$work/c_participant"
(cd "$here/go" && CGO_CFLAGS="-I$root/include" CGO_LDFLAGS="-L$lib_dir" GOFLAGS=-mod=mod \
    go build -tags backlite_static -o "$work/go_participant" .)
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet --disable-pip-version-check \
    "${BACKLITE_PYTHON_WHEEL:-$root/bindings/python}"

names=c1,c2,go1,go2,py1,py2
cache="$work/shared.db"
log="$work/computes.log"
echo "== six processes, three languages, one file"
pids=()
for name in ${names//,/ }; do
    case $name in
        c*) "$work/c_participant" "$cache" "$name" "$names" "$log" >"$work/$name.out" & ;;
        go*) "$work/go_participant" "$cache" "$name" "$names" "$log" >"$work/$name.out" & ;;
        py*) "$work/venv/bin/python" "$here/participant.py" "$cache" "$name" "$names" "$log" >"$work/$name.out" & ;;
    esac
    pids+=($!)
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
cat "$work"/*.out
[ "$status" = 0 ] || { echo "cross-language: a participant failed" >&2; exit 1; }
computes=$(wc -l < "$log")
values=$(sed 's/^[^:]*: //' "$work"/*.out | sort -u | wc -l)
echo "computes of the shared key: $computes (by $(cat "$log")); distinct values seen: $values"
[ "$computes" = 1 ] && [ "$values" = 1 ] || { echo "cross-language: expected one compute and one value" >&2; exit 1; }
echo "== cross-language: all passed"
