#!/usr/bin/env bash
# Where the CPU per received message goes: `perf record -g` on postern serve while
# smtp-source sends COUNT messages of SIZE bytes to an address POSTing to a local nginx (as
# bench/inbound.sh, sync mode, encryption off), then a flame graph (inferno) and the top
# functions by self time.
#
# Usage: bench/profile.sh [COUNT=20000] [SIZE=1024] [OUT=/tmp/postern-profile]
# Needs: perf (linux-perf), postfix's smtp-source, nginx-light, inferno
# (`cargo install inferno`). Loopback only; SPF off. The release profile strips symbols and
# omits frame pointers; for readable stacks build a profiling binary and pass it in:
#   CARGO_TARGET_DIR=/tmp/prof CARGO_PROFILE_RELEASE_STRIP=false \
#   CARGO_PROFILE_RELEASE_DEBUG=line-tables-only RUSTFLAGS="-C force-frame-pointers=yes" \
#   cargo build --release && POSTERN=/tmp/prof/release/postern bench/profile.sh
set -euo pipefail
if [ "${1:-}" = --help ] || [ "${1:-}" = -h ]; then
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
    exit 0
fi
COUNT=${1:-20000}
SIZE=${2:-1024}
OUT=${3:-/tmp/postern-profile}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/bench/lib.sh"
BENCH=$(mktemp -d /tmp/postern-prof.XXXXXX)
POSTERN_PORT=12546 NGINX_PORT=18108 WEB_PORT=18045
PIDS=()
cleanup() {
    for pid in "${PIDS[@]:-}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$BENCH"
}
trap cleanup EXIT
PATH=$PATH:/usr/sbin:$HOME/.cargo/bin
for tool in perf smtp-source nginx inferno-flamegraph; do
    command -v $tool >/dev/null || { echo "$tool is missing (see --help)" >&2; exit 1; }
done
# POSTERN=/path/to/postern measures that binary (e.g. an older build) instead of building this tree.
POSTERN=$(postern_binary "$ROOT")
mkdir -p "$OUT"
start_app $NGINX_PORT
cat > "$BENCH/postern.toml" <<CONF
[server]
hostname = "bench.local"
data_dir = "$BENCH/data"
[smtp]
listen = "127.0.0.1:$POSTERN_PORT"
max_connections_per_ip = 100000
[web]
listen = "127.0.0.1:$WEB_PORT"
[auth]
spf = false
[encryption]
enabled = false
[[address]]
address = "*@bench.local"
target = "http://127.0.0.1:$NGINX_PORT/ok"
CONF
POSTERN_LOG=warn "$POSTERN" serve --config "$BENCH/postern.toml" >"$BENCH/postern.log" 2>&1 &
postern=$!
PIDS+=($postern)
waitport $POSTERN_PORT
perf record -F 999 -g -p $postern -o "$OUT/perf.data" 2>"$OUT/perf-record.log" &
perf=$!
sleep 0.5
smtp-source -s 20 -m "$COUNT" -l "$SIZE" -M bench.local -f a@bench.local -t b@bench.local \
    "127.0.0.1:$POSTERN_PORT" >/dev/null
kill -INT $perf; wait $perf 2>/dev/null || true
perf script -i "$OUT/perf.data" 2>/dev/null | inferno-collapse-perf > "$OUT/stacks.folded"
inferno-flamegraph --title "postern: $COUNT messages of $SIZE bytes" < "$OUT/stacks.folded" > "$OUT/flamegraph.svg"
echo "flame graph: $OUT/flamegraph.svg"
echo "top functions by self time:"
perf report -i "$OUT/perf.data" --no-children --stdio --sort sym 2>/dev/null \
    | grep -E '^ +[0-9]' | head -25
