#!/usr/bin/env bash
# Peak memory for one large message: Postern's VmHWM (peak RSS, /proc/PID/status) after
# start-up and idle, then after one message of SIZE_MB (a base64 attachment, so the payload
# is about 1.33x the decoded size, as CloudMailin's JSON carries it) has been received,
# parsed and POSTed to a local nginx. The difference is what that message added at peak.
# Each delivery mode (sync, queued) runs on a fresh process, with the disk spool on (the
# default 1 MiB threshold) and off ([smtp] spool_threshold = 0).
#
# Usage: bench/big_message.sh [SIZE_MB=25]
#   CLIENTS=N   N clients send the message at once (default 1): what spooling saves is the
#               content of messages still arriving while others are handled
#   SPOOL=on|off|both (default both)   DELIVERY=sync|queued|both (default both)
#   BUDGET_MB=M  smtp.message_memory_budget (default: room for every client's message)
# Needs: nginx-light (installed here if missing). Loopback only; SPF off, no DNS.
set -euo pipefail
if [ "${1:-}" = --help ] || [ "${1:-}" = -h ]; then
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
    exit 0
fi
SIZE_MB=${1:-25}
CLIENTS=${CLIENTS:-1}
case "${SPOOL:-both}" in both) SPOOLS="on off" ;; *) SPOOLS=$SPOOL ;; esac
case "${DELIVERY:-both}" in both) MODES="sync queued" ;; *) MODES=$DELIVERY ;; esac
ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$ROOT/bench/lib.sh"
BENCH=$(mktemp -d /tmp/postern-big.XXXXXX)
POSTERN_PORT=12536 NGINX_PORT=18098 WEB_PORT=18035
PIDS=()
cleanup() {
    for pid in "${PIDS[@]:-}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$BENCH"
}
trap cleanup EXIT
command -v nginx >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light >/dev/null
# POSTERN=/path/to/postern measures that binary (e.g. an older build) instead of building this tree.
POSTERN=$(postern_binary "$ROOT")
start_app $NGINX_PORT

# The message: a short text part and a SIZE_MB attachment of random bytes, base64 (76-column).
python3 - "$BENCH/message.eml" "$SIZE_MB" <<'PY'
import base64, os, sys
path, size_mb = sys.argv[1], int(sys.argv[2])
data = os.urandom(size_mb * 1024 * 1024)
encoded = base64.encodebytes(data).replace(b"\n", b"\r\n")
with open(path, "wb") as f:
    f.write(b"From: a@big.local\r\nTo: b@big.local\r\nSubject: big\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: multipart/mixed; boundary=BOUNDARY\r\n\r\n--BOUNDARY\r\n"
            b"Content-Type: text/plain\r\n\r\nSee the attachment.\r\n--BOUNDARY\r\n"
            b"Content-Type: application/octet-stream\r\n"
            b"Content-Disposition: attachment; filename=\"big.bin\"\r\n"
            b"Content-Transfer-Encoding: base64\r\n\r\n")
    f.write(encoded)
    f.write(b"--BOUNDARY--\r\n")
PY
message_mb=$(echo "$(stat -c %s "$BENCH/message.eml") / 1048576" | bc -l)

hwm() { awk '/VmHWM/ {print $2 / 1024}' "/proc/$1/status"; }

printf '%-8s %-6s %8s %12s %14s %14s %12s %10s\n' mode spool clients message_MB idle_peak_MB after_peak_MB added_MB replies
for delivery in $MODES; do
for spool in $SPOOLS; do
    threshold=1048576
    [ "$spool" = off ] && threshold=0
    rm -rf "$BENCH/data"
    cat > "$BENCH/postern.toml" <<CONF
[server]
hostname = "big.local"
data_dir = "$BENCH/data"
[smtp]
listen = "127.0.0.1:$POSTERN_PORT"
max_message_size = $(( (SIZE_MB * 2 + 8) * 1024 * 1024 ))
message_memory_budget = $(( ${BUDGET_MB:-$(( (SIZE_MB * 2 + 8) * (CLIENTS + 1) ))} * 1024 * 1024 ))
spool_threshold = $threshold
[web]
listen = "127.0.0.1:$WEB_PORT"
[auth]
spf = false
[encryption]
enabled = false
[[address]]
address = "*@big.local"
target = "http://127.0.0.1:$NGINX_PORT/ok"
delivery = "$delivery"
CONF
    POSTERN_LOG=warn "$POSTERN" serve --config "$BENCH/postern.toml" >"$BENCH/postern.log" 2>&1 &
    postern=$!
    PIDS+=($postern)
    waitport $POSTERN_PORT
    sleep 0.5
    before=$(hwm $postern)
    posts_before=$(wc -l < "$BENCH/nginx/access.log")
    replies=$(python3 - "$BENCH/message.eml" "$POSTERN_PORT" "$CLIENTS" <<'PY'
import smtplib, sys, threading
with open(sys.argv[1], "rb") as f:
    message = f.read()
replies = []
def send():
    try:
        with smtplib.SMTP("127.0.0.1", int(sys.argv[2]), timeout=300) as smtp:
            smtp.sendmail("a@big.local", ["b@big.local"], message)
        replies.append("250")
    except smtplib.SMTPResponseException as error:
        replies.append(str(error.smtp_code))
threads = [threading.Thread(target=send) for _ in range(int(sys.argv[3]))]
for t in threads: t.start()
for t in threads: t.join()
print(",".join(sorted(set(replies))))
PY
)
    for _ in $(seq 1 1200); do
        [ "$(wc -l < "$BENCH/nginx/access.log")" -ge "$((posts_before + CLIENTS))" ] && break
        sleep 0.1
    done
    sleep 0.5
    after=$(hwm $postern)
    kill -TERM $postern; wait $postern 2>/dev/null || true
    printf '%-8s %-6s %8s %12.1f %14.1f %14.1f %12.1f %10s\n' "$delivery" "$spool" "$CLIENTS" \
        "$message_mb" "$before" "$after" "$(echo "$after - $before" | bc -l)" "$replies"
done
done
echo "(SIZE_MB=$SIZE_MB: a ${SIZE_MB} MB attachment, base64 in the message; encryption off)"
