#!/usr/bin/env bash
# The test command leaves the machine as it found it: nothing new in /tmp, and nothing
# new in the tree but the build folders (target/ and the CMake build folder). Tools and
# caches go under ${XDG_CACHE_HOME:-~/.cache}/backlite instead.
#
#   bash tests/leaves_no_trace.sh snapshot STATE_FILE
#   bash tests/leaves_no_trace.sh check STATE_FILE BUILD_DIR
set -euo pipefail
cd "$(dirname "$0")/.."
mode=$1 state=$2

list() {
    # /tmp's entries, and the tree's untracked or ignored files (folders collapsed).
    find "${TMPDIR:-/tmp}" -mindepth 1 -maxdepth 1 -printf 'tmp: %f\n' 2>/dev/null | sort
    git status --porcelain --ignored --untracked-files=normal | sed -n 's/^\(??\|!!\) /tree: /p' | sort
}

case $mode in
snapshot) list >"$state" ;;
check)
    build=${3:?the CMake build folder}
    new=$(list | comm -13 "$state" - |
        grep -v -x -e "tree: target/" -e "tree: ${build%/}/" || true)
    if [ -n "$new" ]; then
        echo "FAIL: the test command left these behind:" >&2
        echo "$new" >&2
        exit 1
    fi
    echo "the test command left nothing behind in ${TMPDIR:-/tmp} or the tree"
    ;;
*) echo "usage: $0 snapshot|check STATE_FILE [BUILD_DIR]" >&2; exit 2 ;;
esac
