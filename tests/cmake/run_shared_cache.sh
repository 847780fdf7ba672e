#!/usr/bin/env bash
# Runs examples/c/shared_cache.c as its README section says: a private redis-server on
# a free loopback port, machine A computes, machine B answers from the remote, B again
# answers from its own file.
set -euo pipefail
demo="$1"
dir="$(mktemp -d)"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$dir" --daemonize no \
  --logfile redis.log &
server=$!
trap 'kill -9 $server 2>/dev/null || true; wait $server 2>/dev/null || true; rm -rf "$dir"' EXIT
for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.05; done
url="redis://127.0.0.1:$port"
a="$("$demo" "$url" "$dir/a.db")"; echo "$a"
b="$("$demo" "$url" "$dir/b.db")"; echo "$b"
c="$("$demo" "$url" "$dir/b.db")"; echo "$c"
[[ "$a" == *"from computed here"* ]]
[[ "$b" == *"from the remote"* ]]
[[ "$c" == *"from the local file"* ]]
