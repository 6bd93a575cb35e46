#!/usr/bin/env bash
# Outbound throughput, side by side in one run, to the same smtp-sink:
#   A: smtp-source -> Postfix (relayhost = the sink) -> smtp-sink      (the reference MTA)
#   B: send_load -> Postern's send API (202 after a durable commit) -> queue -> worker
#      (relay = the sink) -> smtp-sink
# For each round it reports Postern's enqueue rate (202s per second, from the load generator)
# twice — alone (delivery off) and while the worker delivers —, both end-to-end delivery rates (the first message submitted until the sink has seen all
# COUNT), their ratio, and Postern's peak RSS and CPU per message.
#
# Postern runs with encryption at rest on (postern+enc: queued content, DKIM key and
# secrets sealed) and off (postern), side by side: ENCRYPTION=on|off|both (both by default).
#
# Usage: bench/outbound.sh [COUNT=2000] [SIZE=1024] [CONCURRENCY=20]   (ROUNDS=2, ENCRYPTION=both)
# Needs postfix (its daemon runs only inside this script, on loopback, from a private config
# directory, and is stopped at the end); installed here if missing. Loopback only, no DNS:
# both MTAs relay to the sink by IP.
set -euo pipefail
if [ "${1:-}" = --help ] || [ "${1:-}" = -h ]; then
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
    exit 0
fi
COUNT=${1:-2000}
SIZE=${2:-1024}
CONCURRENCY=${3:-20}
ROUNDS=${ROUNDS:-2}
ENCRYPTION=${ENCRYPTION:-both}
case $ENCRYPTION in
    both) MODES="on off" ;;
    on | off) MODES=$ENCRYPTION ;;
    *) echo "ENCRYPTION=on|off|both, not $ENCRYPTION" >&2; exit 2 ;;
esac
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BENCH=$(mktemp -d /tmp/postern-outbench.XXXXXX)
chmod 755 "$BENCH"
SINK_PORT=13525 POSTFIX_PORT=13526 WEB_PORT=13025 SMTP_PORT=13527
PIDS=()

cleanup() {
    [ -f "$BENCH/postfix/main.cf" ] && postfix -c "$BENCH/postfix" stop >/dev/null 2>&1 || true
    for pid in "${PIDS[@]:-}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT

if ! command -v smtp-source >/dev/null 2>&1 && [ ! -x /usr/sbin/smtp-source ]; then
    echo "installing postfix (smtp-source, smtp-sink and the reference MTA)" >&2
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postfix >/dev/null
fi
PATH=$PATH:/usr/sbin

(cd "$ROOT" && cargo build --release --locked -q && cargo build --release --locked -q --example send_load)
POSTERN="$ROOT/target/release/postern"
LOAD="$ROOT/target/release/examples/send_load"

waitport() {
    for _ in $(seq 1 100); do
        ss -ltn "sport = :$1" | grep -q LISTEN && return 0
        sleep 0.1
    done
    echo "port $1 did not open" >&2
    return 1
}

# The sink counts messages on stdout ("... mesg=N" after every session).
start_sink() {
    smtp-sink -c -u nobody "127.0.0.1:$SINK_PORT" 256 >"$BENCH/sink.out" 2>&1 &
    SINK=$!
    PIDS+=($SINK)
    waitport $SINK_PORT
}
sink_count() {
    tr '\r' '\n' <"$BENCH/sink.out" | sed -n 's/.*mesg=\([0-9]*\).*/\1/p' | tail -1
}
# wait_sink START: waits until the sink saw COUNT messages; prints the seconds since START.
wait_sink() {
    local deadline=$((SECONDS + 600))
    while [ "$(sink_count || echo 0)" -lt "$COUNT" ] 2>/dev/null; do
        [ $SECONDS -lt $deadline ] || { echo "sink saw only $(sink_count) of $COUNT" >&2; return 1; }
        sleep 0.05
    done
    echo "$(date +%s.%N) - $1" | bc -l
}
cpu_and_rss() {
    local ticks hwm
    ticks=$(awk '{print $14 + $15}' "/proc/$1/stat")
    hwm=$(awk '/VmHWM/ {print $2}' "/proc/$1/status")
    echo "$(echo "$ticks / $(getconf CLK_TCK)" | bc -l) $(echo "$hwm / 1024" | bc -l)"
}

# --- Postfix: a private instance relaying everything to the sink.
mkdir -p "$BENCH/postfix" "$BENCH/pfqueue" "$BENCH/pfdata"
cat > "$BENCH/postfix/main.cf" <<CONF
compatibility_level = 3.6
queue_directory = $BENCH/pfqueue
data_directory = $BENCH/pfdata
mail_owner = postfix
myhostname = bench.local
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relayhost = [127.0.0.1]:$SINK_PORT
smtpd_relay_restrictions = permit_mynetworks, reject
maillog_file = $BENCH/postfix.log
maillog_file_prefixes = $BENCH
smtp_tls_security_level = none
default_destination_concurrency_limit = $CONCURRENCY
smtp_destination_concurrency_limit = $CONCURRENCY
CONF
sed "s/^smtp      inet.*/127.0.0.1:$POSTFIX_PORT inet n - n - - smtpd/" \
    /usr/share/postfix/master.cf.dist > "$BENCH/postfix/master.cf"
# The queue directory stays root-owned (Postfix makes its subdirectories); data is the daemon's.
chown -R postfix "$BENCH/pfdata"
postfix -c "$BENCH/postfix" check || { echo "postfix check failed (see $BENCH/postfix.log)" >&2; exit 1; }

# --- Postern: serve mode, one sending domain, one credential, relay to the sink.
cat > "$BENCH/postern.toml" <<CONF
[server]
hostname = "bench.local"
data_dir = "$BENCH/data"
[smtp]
listen = "127.0.0.1:$SMTP_PORT"
[web]
listen = "127.0.0.1:$WEB_PORT"
[auth]
spf = false
[outbound]
relay = "smtp://127.0.0.1:$SINK_PORT"
# As many connections to the sink as Postfix gets (its destination concurrency limit).
max_per_domain = $CONCURRENCY
CONF
export POSTERN_CONFIG="$BENCH/postern.toml"
# The keyring of the encrypted runs, outside the data directory (made once).
export POSTERN_ENCRYPTION__KEY_FILE="$BENCH/keyring"
"$POSTERN" keyring init >/dev/null

printf '%-6s %-11s %12s %12s %8s %12s %10s\n' round system enqueue/s delivered/s ratio peak_RSS_MB cpu_ms/msg
for round in $(seq 1 "$ROUNDS"); do
    # A: Postfix.
    start_sink
    postfix -c "$BENCH/postfix" start >/dev/null
    waitport $POSTFIX_PORT
    t0=$(date +%s.%N)
    smtp-source -s "$CONCURRENCY" -m "$COUNT" -l "$SIZE" -M bench.local \
        -f a@bench.local -t b@sink.local "127.0.0.1:$POSTFIX_PORT" >"$BENCH/source.out" 2>&1
    pf_wall=$(wait_sink "$t0")
    postfix -c "$BENCH/postfix" stop >/dev/null 2>&1
    kill $SINK; wait $SINK 2>/dev/null || true
    pf_rate=$(echo "$COUNT / $pf_wall" | bc -l)
    printf '%-6s %-11s %12s %12.0f %8s %12s %10s\n' "$round" postfix "-" "$pf_rate" 1.00 - -

    for mode in $MODES; do
    system=$([ "$mode" = on ] && echo postern+enc || echo postern)
    export POSTERN_ENCRYPTION__ENABLED=$([ "$mode" = on ] && echo true || echo false)
    # Postern, enqueue alone: the worker off (`deliver = false`), so the send API has the
    # machine to itself; every 202 is still a durable commit.
    rm -rf "$BENCH/data"
    "$POSTERN" sending-domain add bench.example >/dev/null 2>&1
    token=$("$POSTERN" credential add bench 2>/dev/null | sed -n 2p)
    POSTERN_OUTBOUND__DELIVER=false POSTERN_LOG=warn "$POSTERN" serve >"$BENCH/postern.log" 2>&1 &
    postern=$!
    PIDS+=($postern)
    waitport $WEB_PORT
    load=$("$LOAD" "http://127.0.0.1:$WEB_PORT" bench "$token" "$COUNT" "$CONCURRENCY" "$SIZE" \
        "Bench <bench@bench.example>" sink.local)
    accepted=$(echo "$load" | sed -n 's/.*"accepted":\([0-9]*\).*/\1/p')
    alone=$(echo "$load" | sed -n 's/.*"msgs_per_sec":\([0-9.]*\).*/\1/p')
    p99=$(echo "$load" | sed -n 's/.*"p99_ms":\([0-9.]*\).*/\1/p')
    [ "$accepted" = "$COUNT" ] || { echo "only $accepted of $COUNT accepted: $load" >&2; exit 1; }
    read -r cpu rss < <(cpu_and_rss $postern)
    kill -TERM $postern; wait $postern 2>/dev/null || true
    printf '%-6s %-11s %12.0f %12s %8s %12.1f %10.2f   (enqueue only, p99 %s ms)\n' "$round" "$system" \
        "$alone" - - "$rss" "$(echo "$cpu * 1000 / $COUNT" | bc -l)" "$p99"

    # B: Postern, end to end: enqueue and delivery at once.
    rm -rf "$BENCH/data"
    "$POSTERN" sending-domain add bench.example >/dev/null 2>&1
    token=$("$POSTERN" credential add bench 2>/dev/null | sed -n 2p)
    start_sink
    POSTERN_LOG=warn "$POSTERN" serve >"$BENCH/postern.log" 2>&1 &
    postern=$!
    PIDS+=($postern)
    waitport $WEB_PORT
    t0=$(date +%s.%N)
    load=$("$LOAD" "http://127.0.0.1:$WEB_PORT" bench "$token" "$COUNT" "$CONCURRENCY" "$SIZE" \
        "Bench <bench@bench.example>" sink.local)
    accepted=$(echo "$load" | sed -n 's/.*"accepted":\([0-9]*\).*/\1/p')
    enqueue=$(echo "$load" | sed -n 's/.*"msgs_per_sec":\([0-9.]*\).*/\1/p')
    [ "$accepted" = "$COUNT" ] || { echo "only $accepted of $COUNT accepted: $load" >&2; tail -5 "$BENCH/postern.log" >&2; exit 1; }
    pst_wall=$(wait_sink "$t0")
    read -r cpu rss < <(cpu_and_rss $postern)
    kill -TERM $postern; wait $postern 2>/dev/null || true
    kill $SINK; wait $SINK 2>/dev/null || true
    pst_rate=$(echo "$COUNT / $pst_wall" | bc -l)
    printf '%-6s %-11s %12.0f %12.0f %8.2f %12.1f %10.2f\n' "$round" "$system" "$enqueue" "$pst_rate" \
        "$(echo "$pst_rate / $pf_rate" | bc -l)" "$rss" "$(echo "$cpu * 1000 / $COUNT" | bc -l)"
    done
done
echo "(COUNT=$COUNT SIZE=$SIZE CONCURRENCY=$CONCURRENCY ENCRYPTION=$ENCRYPTION; Postfix is fed by smtp-source, Postern by its send API)"
rm -rf "$BENCH"
