#!/usr/bin/env bash
# What TLS costs on Postern's listeners, side by side in one run: the same Python client
# (bench/tls_client.py, a fresh connection each time) against
#   smtp plain     EHLO, MAIL, RCPT, DATA (1 KB), QUIT on the MX listener, POSTed to nginx
#   smtp starttls  the same after STARTTLS (TLS 1.3, the self-signed certificate)
#   http plain     GET /healthz on a plain-HTTP web listener
#   https          GET /healthz on the HTTPS web listener ([tls] mode = "self-signed")
# Reported per round: connections/s, the ratio to the plain variant, and Postern's own CPU
# time per connection (from /proc: the server's cost, whatever the client's speed).
#
# Usage: bench/tls.sh [COUNT=2000] [THREADS=8]   (ROUNDS=3)
# Needs: nginx-light (installed here if missing), python3. Loopback only; SPF is off, so
# Postern makes no DNS lookups.
set -euo pipefail
if [ "${1:-}" = --help ] || [ "${1:-}" = -h ]; then
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
    exit 0
fi
COUNT=${1:-2000}
THREADS=${2:-8}
ROUNDS=${ROUNDS:-3}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BENCH=$(mktemp -d /tmp/postern-tls-bench.XXXXXX)
SMTP_PORT=12626 WEB_PORT=18125 NGINX_PORT=18188
PIDS=()
cleanup() {
    for pid in "${PIDS[@]:-}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$BENCH"
}
trap cleanup EXIT

if ! command -v nginx >/dev/null && [ ! -x /usr/sbin/nginx ]; then
    echo "installing nginx-light" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light >/dev/null
fi
PATH=$PATH:/usr/sbin
(cd "$ROOT" && cargo build --release --locked -q)
POSTERN="$ROOT/target/release/postern"
CLIENT="$ROOT/bench/tls_client.py"

waitport() {
    for _ in $(seq 1 100); do
        ss -ltn "sport = :$1" | grep -q LISTEN && return 0
        sleep 0.1
    done
    echo "port $1 did not open" >&2
    return 1
}

mkdir -p "$BENCH/nginx/tmp"
cat > "$BENCH/nginx/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $BENCH/nginx/nginx.pid;
error_log $BENCH/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $BENCH/nginx/tmp;
  server {
    listen 127.0.0.1:$NGINX_PORT;
    location = /ok { return 200 "ok\n"; }
  }
}
CONF
nginx -c "$BENCH/nginx/nginx.conf" &
PIDS+=($!)
waitport $NGINX_PORT

# plain: no [tls] (STARTTLS offered with a self-signed certificate, plain-HTTP web);
# https: [tls] mode = "self-signed" (the web listener serves HTTPS).
for variant in plain https; do
    cat > "$BENCH/$variant.toml" <<CONF
[server]
hostname = "bench.local"
data_dir = "$BENCH/data-$variant"
[smtp]
listen = "127.0.0.1:$SMTP_PORT"
max_connections_per_ip = 100000
shutdown_grace_secs = 5
[web]
listen = "127.0.0.1:$WEB_PORT"
max_connections_per_ip = 100000
max_connections = 100000
[auth]
spf = false
[encryption]
enabled = false
[[address]]
address = "*@bench.local"
target = "http://127.0.0.1:$NGINX_PORT/ok"
CONF
    [ "$variant" = https ] && printf '[tls]\nmode = "self-signed"\n' >>"$BENCH/$variant.toml"
done

cpu_seconds() { awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' "/proc/$1/stat"; }

# phase NAME PID KIND PORT MODE BASE_RATE: runs the client, prints a row, echoes the rate
phase() {
    local name=$1 pid=$2 kind=$3 port=$4 mode=$5 base=$6 before after seconds failures rate
    before=$(cpu_seconds "$pid")
    read -r seconds failures < <(python3 "$CLIENT" "$kind" "127.0.0.1:$port" "$COUNT" "$THREADS" "$mode")
    after=$(cpu_seconds "$pid")
    [ "$failures" = 0 ] || { echo "$name: $failures of $COUNT connections failed" >&2; exit 1; }
    rate=$(echo "$COUNT / $seconds" | bc -l)
    [ "$base" = - ] && base=$rate
    printf '%-6s %-15s %10.0f %8.2f %16.3f\n' "$round" "$name" "$rate" \
        "$(echo "$rate / $base" | bc -l)" "$(echo "($after - $before) * 1000 / $COUNT" | bc -l)" >&2
    echo "$rate"
}

# start VARIANT: runs postern serve with that config; its pid in $pid
start() {
    POSTERN_LOG=warn "$POSTERN" serve --config "$BENCH/$1.toml" >"$BENCH/$1.log" 2>&1 &
    pid=$!
    PIDS+=($pid)
    waitport $SMTP_PORT
    waitport $WEB_PORT
}

printf '%-6s %-15s %10s %8s %16s\n' round listener conn/s ratio postern_cpu_ms >&2
for round in $(seq 1 "$ROUNDS"); do
    rm -rf "$BENCH"/data-*
    start plain
    smtp=$(phase "smtp plain" "$pid" smtp $SMTP_PORT plain -)
    phase "smtp starttls" "$pid" smtp $SMTP_PORT starttls "$smtp" >/dev/null
    http=$(phase "http plain" "$pid" http $WEB_PORT plain -)
    kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
    start https
    phase "https" "$pid" http $WEB_PORT tls "$http" >/dev/null
    kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
done
echo "(COUNT=$COUNT THREADS=$THREADS; a new connection each time; ratio: to the plain variant of the same round)" >&2
