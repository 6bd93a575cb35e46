#!/usr/bin/env bash
# Inbound throughput, side by side in one run:
#   A: smtp-source -> smtp-sink                      (the machine's SMTP ceiling)
#   B: smtp-source -> postern -> POST to nginx (200) (the full path: parse, JSON, POST, store row)
# Each round runs A then B; the table reports every round and the B/A ratio. B runs with
# encryption at rest on (postern+enc) and off (postern), side by side: ENCRYPTION=on|off|both
# (both by default). Inbound mail is sealed only where its raw form is kept, so on this path
# the difference is the sealed secrets and the keyring loaded at start.
# DELIVERY=sync|queued|both (sync by default) runs the address in each delivery mode: queued
# answers 250 once the message is committed (synchronous = FULL) and POSTs it afterwards, so
# its msgs/s is the SMTP acceptance rate and posted/s the rate until nginx had every POST.
#
# SPOOL_THRESHOLD=N sets [smtp] spool_threshold (0: no disk spool; unset: the default 1 MiB,
# and the line is left out, so an older binary without the setting can be measured too).
#
# Usage: bench/inbound.sh [COUNT=5000] [SIZE=1024] [SESSIONS=20]
#        (ROUNDS=3, ENCRYPTION=both, DELIVERY=sync, SPOOL_THRESHOLD unset)
# Needs: postfix (smtp-source, smtp-sink; the daemon is never started) and nginx-light,
# installed here if missing. Loopback only; SPF is switched off, so Postern makes no DNS lookups.
set -euo pipefail
if [ "${1:-}" = --help ] || [ "${1:-}" = -h ]; then
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
    exit 0
fi
COUNT=${1:-5000}
SIZE=${2:-1024}
SESSIONS=${3:-20}
ROUNDS=${ROUNDS:-3}
ENCRYPTION=${ENCRYPTION:-both}
DELIVERY=${DELIVERY:-sync}
case $DELIVERY in
    both) DELIVERIES="sync queued" ;;
    sync | queued) DELIVERIES=$DELIVERY ;;
    *) echo "DELIVERY=sync|queued|both, not $DELIVERY" >&2; exit 2 ;;
esac
case $ENCRYPTION in
    both) MODES="on off" ;;
    on | off) MODES=$ENCRYPTION ;;
    *) echo "ENCRYPTION=on|off|both, not $ENCRYPTION" >&2; exit 2 ;;
esac
ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/bench/lib.sh"
BENCH=$(mktemp -d /tmp/postern-bench.XXXXXX)
SINK_PORT=12525 POSTERN_PORT=12526 NGINX_PORT=18088 WEB_PORT=18025
PIDS=()

cleanup() {
    for pid in "${PIDS[@]:-}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT

if ! command -v smtp-source >/dev/null || ! command -v nginx >/dev/null; then
    echo "installing postfix (for smtp-source/smtp-sink) and nginx-light" >&2
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postfix nginx-light >/dev/null
fi
PATH=$PATH:/usr/sbin

# POSTERN=/path/to/postern measures that binary (e.g. an older build) instead of building this tree.
POSTERN=$(postern_binary "$ROOT")


# The app: nginx answering 200 to every POST, its access log counting them (bench/lib.sh).
start_app $NGINX_PORT

cat > "$BENCH/postern.toml" <<CONF
[server]
hostname = "bench.local"
data_dir = "$BENCH/data"
[smtp]
listen = "127.0.0.1:$POSTERN_PORT"
shutdown_grace_secs = 5
# The load comes from one address (smtp-source on loopback), opening a new connection per
# message: lift the per-address cap that protects a public MX.
max_connections_per_ip = 100000
$([ -n "${SPOOL_THRESHOLD:-}" ] && echo "spool_threshold = $SPOOL_THRESHOLD")
[web]
listen = "127.0.0.1:$WEB_PORT"
[auth]
# No DNS from a load test: SPF would ask the machine's resolver about bench.local.
spf = false
[[address]]
address = "*@bench.local"
target = "http://127.0.0.1:$NGINX_PORT/ok"
CONF
# One config per encryption mode and delivery mode; the keyring is made once, outside the
# data directory.
for mode in on off; do
    enabled=$([ "$mode" = on ] && echo true || echo false)
    for delivery in sync queued; do
        { cat "$BENCH/postern.toml"
          printf 'delivery = "%s"\n' "$delivery"
          printf '[encryption]\nenabled = %s\nkey_file = "%s"\n' "$enabled" "$BENCH/keyring"
        } >"$BENCH/postern-$mode-$delivery.toml"
    done
done
cp "$BENCH/postern-on-sync.toml" "$BENCH/postern-on.toml"
"$POSTERN" keyring init --config "$BENCH/postern-on.toml" >/dev/null

# load PORT: runs smtp-source, prints "<wall seconds> <exit code>"
load() {
    local t0 t1 rc=0
    t0=$(date +%s.%N)
    timeout 600 smtp-source -s "$SESSIONS" -m "$COUNT" -l "$SIZE" -M bench.local \
        -f a@bench.local -t b@bench.local "127.0.0.1:$1" >"$BENCH/source.out" 2>&1 || rc=$?
    t1=$(date +%s.%N)
    echo "$(echo "$t1 - $t0" | bc -l) $rc"
}

# cpu_and_rss PID: "<cpu seconds> <peak RSS MB>" from /proc
cpu_and_rss() {
    local ticks hwm
    ticks=$(awk '{print $14 + $15}' "/proc/$1/stat")
    hwm=$(awk '/VmHWM/ {print $2}' "/proc/$1/status")
    echo "$(echo "$ticks / $(getconf CLK_TCK)" | bc -l) $(echo "$hwm / 1024" | bc -l)"
}

printf '%-6s %-17s %10s %8s %12s %10s %8s %9s\n' round system msgs/s ratio peak_RSS_MB cpu_ms/msg posts posted/s
for round in $(seq 1 "$ROUNDS"); do
    smtp-sink -u nobody -m 256 "127.0.0.1:$SINK_PORT" 256 &
    sink=$!
    PIDS+=($sink)
    waitport $SINK_PORT
    read -r sink_wall sink_rc < <(load $SINK_PORT)
    kill $sink; wait $sink 2>/dev/null || true
    sink_rate=$(echo "$COUNT / $sink_wall" | bc -l)
    printf '%-6s %-17s %10.0f %8s %12s %10s %8s %9s\n' "$round" smtp-sink "$sink_rate" "1.00" "-" "-" "-" "-"
    [ "$sink_rc" = 0 ] || { echo "smtp-source failed against smtp-sink" >&2; exit 1; }

    for delivery in $DELIVERIES; do
    for mode in $MODES; do
    system=$([ "$mode" = on ] && echo postern+enc || echo postern)
    [ "$delivery" = queued ] && system="$system queued"
    rm -rf "$BENCH/data"
    before=$(wc -l < "$BENCH/nginx/access.log")
    POSTERN_LOG=warn "$POSTERN" serve --config "$BENCH/postern-$mode-$delivery.toml" >"$BENCH/postern.log" 2>&1 &
    postern=$!
    PIDS+=($postern)
    waitport $POSTERN_PORT
    t0=$(date +%s.%N)
    read -r wall rc < <(load $POSTERN_PORT)
    # Queued: wait until the app had every POST (sync: it had them before each 250).
    for _ in $(seq 1 3000); do
        [ $(( $(wc -l < "$BENCH/nginx/access.log") - before )) -ge "$COUNT" ] && break
        sleep 0.1
    done
    drained=$(echo "$(date +%s.%N) - $t0" | bc -l)
    read -r cpu rss < <(cpu_and_rss $postern)
    kill -TERM $postern; wait $postern 2>/dev/null || true
    posts=$(( $(wc -l < "$BENCH/nginx/access.log") - before ))
    rate=$(echo "$COUNT / $wall" | bc -l)
    posted_rate=$(echo "$COUNT / $drained" | bc -l)
    [ "$delivery" = sync ] && posted_rate=$rate
    printf '%-6s %-17s %10.0f %8.2f %12.1f %10.2f %8s %9.0f\n' "$round" "$system" "$rate" \
        "$(echo "$rate / $sink_rate" | bc -l)" "$rss" "$(echo "$cpu * 1000 / $COUNT" | bc -l)" "$posts" "$posted_rate"
    [ "$rc" = 0 ] || { echo "smtp-source failed against postern (exit $rc):" >&2; tail -5 "$BENCH/source.out" >&2; exit 1; }
    [ "$posts" = "$COUNT" ] || { echo "expected $COUNT POSTs, nginx saw $posts" >&2; exit 1; }
    done
    done
done
echo "(COUNT=$COUNT SIZE=$SIZE SESSIONS=$SESSIONS ENCRYPTION=$ENCRYPTION DELIVERY=$DELIVERY SPOOL_THRESHOLD=${SPOOL_THRESHOLD:-default}; new TCP connection per message, as smtp-source does by default)"
rm -rf "$BENCH"
