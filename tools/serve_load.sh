#!/usr/bin/env bash
# Requests per second of `scratchnet serve` for the mlp at 1 and 64 concurrent clients, with wrk
# (apt-get install -y wrk) posting a PNG as the drawing page does. Two alternating rounds.
# Usage: tools/serve_load.sh [seconds]   (from the repository root, after cargo build --release)
set -euo pipefail
secs=${1:-8}
dir=$(mktemp -d)
trap 'kill $server 2>/dev/null; rm -rf "$dir"' EXIT
bin=target/release/scratchnet
$bin train --model mlp --data fashion-mnist --limit 2000 --epochs 1 --out "$dir/mlp.safetensors" --quiet >/dev/null
$bin show --data fashion-mnist --index 0 --out "$dir/sample.png" >/dev/null
cat >"$dir/post.lua" <<LUA
local f = io.open("$dir/sample.png", "rb")
wrk.method = "POST"
wrk.body = f:read("*all")
f:close()
wrk.headers["Content-Type"] = "image/png"
wrk.path = "/predict"
LUA
$bin serve --checkpoint "$dir/mlp.safetensors" --port 0 >"$dir/log" &
server=$!
until grep -q http:// "$dir/log"; do sleep 0.1; done
url=$(grep -o 'http://[^/]*' "$dir/log")
for round in 1 2; do
  for c in 1 64; do
    t=$(( c < 2 ? 1 : 2 ))
    printf 'round %s, %2s clients: ' "$round" "$c"
    wrk -t$t -c$c -d${secs}s -s "$dir/post.lua" "$url" | awk '/Requests\/sec/{printf "%s req/s", $2} /Non-2xx|Socket errors/{printf "  (%s)", $0} END{print ""}'
  done
done
echo "server RSS after: $(ps -o rss= -p $server) KiB"
