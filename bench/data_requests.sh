#!/usr/bin/env bash
# Data-subject requests on a big store: how long `postern export` and `postern purge` take,
# how much memory they need, and what the database file does.
#
# For each encryption mode (ENCRYPTION=on|off|both, both by default; sealed content is
# what production stores), bench/fill_store.rs makes a store of INBOUND received messages
# (raw content kept) and OUTBOUND delivered ones, over 90 days and 1,000 correspondents at
# ten domains (d0.example … d9.example, a tenth of the mail each); one message in a
# thousand is from or to person@example.com. Then the real binary runs, one after the
# other, on that store:
#   export --email person@example.com --dry-run | --output FILE ; purge --email … --yes
#   export --domain d3.example --dry-run | --output FILE ; purge --domain … --yes
#   export --domain postern.example --output FILE   (the rest of the store: every message
#                                                    is to or from it; the worst case)
# The table shows each command's rows (the sum of its per-table counts), wall time, peak
# RSS (/usr/bin/time -v), the archive's size, and after the command the size of postern.db,
# of its -wal, and of the free pages inside postern.db (from its header; a purge ends
# with a VACUUM, which gives them back).
# After a purge, "left" counts the purged address (or "@domain") still found in the bytes
# of postern.db and its -wal: the promise is 0 (with encryption off the content is there
# in plaintext, so this checks content as well as metadata); on the fill row, the count of
# person@example.com before any purge.
#
# Usage: bench/data_requests.sh [INBOUND=100000] [OUTBOUND=10000]   (ENCRYPTION=both)
# Needs GNU time (/usr/bin/time), installed here if missing. No network at all: the
# commands only read and write the store.
set -euo pipefail
if [ "${1:-}" = --help ] || [ "${1:-}" = -h ]; then
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
    exit 0
fi
INBOUND=${1:-100000}
OUTBOUND=${2:-10000}
ENCRYPTION=${ENCRYPTION:-both}
case $ENCRYPTION in
    both) MODES="on off" ;;
    on | off) MODES=$ENCRYPTION ;;
    *) echo "ENCRYPTION=on|off|both, not $ENCRYPTION" >&2; exit 2 ;;
esac
PERSON=person@example.com
DOMAIN=d3.example
EVERYONE=postern.example
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BENCH=$(mktemp -d /tmp/postern-dsrbench.XXXXXX)
trap 'rm -rf "$BENCH"' EXIT

if [ ! -x /usr/bin/time ]; then
    echo "installing time (GNU time, for the peak RSS)" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null
fi

(cd "$ROOT" && cargo build --release --locked -q && cargo build --release --locked -q --example fill_store)
POSTERN="$ROOT/target/release/postern"
FILL="$ROOT/target/release/examples/fill_store"

# No listener is started: the ports only make the config valid.
cat > "$BENCH/postern.toml" <<CONF
[server]
hostname = "postern.example"
data_dir = "$BENCH/data"
[smtp]
listen = "127.0.0.1:14525"
[web]
listen = "127.0.0.1:14080"
[auth]
spf = false
[[address]]
address = "*@postern.example"
target = "http://127.0.0.1:14081/inbound"
CONF
for mode in on off; do
    enabled=$([ "$mode" = on ] && echo true || echo false)
    { cat "$BENCH/postern.toml"
      printf '[encryption]\nenabled = %s\nkey_file = "%s"\n' "$enabled" "$BENCH/keyring"
    } >"$BENCH/postern-$mode.toml"
done
"$POSTERN" keyring init --config "$BENCH/postern-on.toml" >/dev/null

# megabytes FILE…: their total size in MB (missing files count 0)
megabytes() {
    local bytes=0 file
    for file in "$@"; do
        [ -f "$file" ] && bytes=$((bytes + $(stat -c %s "$file")))
    done
    echo "$bytes / 1048576" | bc -l
}
# files: "<postern.db MB> <-wal MB> <free pages MB>"; the free-page count is the header's,
# current when the WAL is empty (a purge truncates it).
files() {
    local db=$BENCH/data/postern.db page free
    page=$(od -An -tu1 -j16 -N2 "$db" | awk '{ p = $1 * 256 + $2; print p == 1 ? 65536 : p }')
    free=$(od -An -tu1 -j36 -N4 "$db" | awk '{ print (($1 * 256 + $2) * 256 + $3) * 256 + $4 }')
    echo "$(megabytes "$db") $(megabytes "$db-wal") $(echo "$page * $free / 1048576" | bc -l)"
}
ROW='%-4s %-30s %8s %8.2f %12.1f %11s %8.1f %7.1f %8.1f %5s\n'

# left NEEDLE: how often NEEDLE occurs in postern.db and its -wal
left() {
    local file count=0
    for file in "$BENCH/data/postern.db" "$BENCH/data/postern.db-wal"; do
        [ -f "$file" ] || continue
        count=$((count + $(grep -a -o -F -i -- "$1" "$file" | wc -l || true)))
    done
    echo $count
}

# run MODE LABEL ARGS…: runs postern ARGS under GNU time and prints one table row; with
# NEEDLE set, its "left" count after the command.
run() {
    local mode=$1 label=$2 archive=- rows wall rss remaining=-
    shift 2
    /usr/bin/time -v -o "$BENCH/time.out" "$POSTERN" "$@" --config "$BENCH/postern-$mode.toml" \
        >"$BENCH/cmd.out" 2>"$BENCH/cmd.err" \
        || { echo "postern $* failed:" >&2; cat "$BENCH/cmd.err" >&2; exit 1; }
    rows=$(awk 'NR > 1 { sum += $2 } END { print sum + 0 }' "$BENCH/cmd.out")
    wall=$(sed -n 's/.*Elapsed (wall clock) time.*: //p' "$BENCH/time.out" \
        | awk -F: '{ s = 0; for (i = 1; i <= NF; i++) s = s * 60 + $i; print s }')
    rss=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$BENCH/time.out")
    [ -f "$BENCH/out.tar" ] && archive=$(printf '%.1f' "$(megabytes "$BENCH/out.tar")") \
        && rm -f "$BENCH/out.tar"
    if [ -n "${NEEDLE:-}" ]; then remaining=$(left "$NEEDLE"); fi
    # shellcheck disable=SC2046 # files prints three numbers
    printf "$ROW" "$mode" "$label" "$rows" "$wall" "$(echo "$rss / 1024" | bc -l)" "$archive" \
        $(files) "$remaining"
}

printf '%-4s %-30s %8s %8s %12s %11s %8s %7s %8s %5s\n' enc step rows wall_s peak_RSS_MB \
    archive_MB db_MB wal_MB free_MB left
for mode in $MODES; do
    rm -rf "$BENCH/data"
    key=$([ "$mode" = on ] && echo "$BENCH/keyring" || echo -)
    /usr/bin/time -v -o "$BENCH/time.out" "$FILL" "$BENCH/data" "$key" "$INBOUND" "$OUTBOUND" \
        >"$BENCH/fill.out"
    fill_secs=$(sed -n 's/.*"secs":\([0-9.]*\).*/\1/p' "$BENCH/fill.out")
    fill_rss=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$BENCH/time.out")
    # shellcheck disable=SC2046
    printf "$ROW" "$mode" "fill (fill_store)" "$((INBOUND + OUTBOUND))" "$fill_secs" \
        "$(echo "$fill_rss / 1024" | bc -l)" - $(files) "$(left "$PERSON")"
    run "$mode" "export --email --dry-run" export --email "$PERSON" --dry-run
    run "$mode" "export --email --output" export --email "$PERSON" --output "$BENCH/out.tar"
    NEEDLE=$PERSON run "$mode" "purge --email --yes" purge --email "$PERSON" --yes
    run "$mode" "export --domain --dry-run" export --domain "$DOMAIN" --dry-run
    run "$mode" "export --domain --output" export --domain "$DOMAIN" --output "$BENCH/out.tar"
    NEEDLE=@$DOMAIN run "$mode" "purge --domain --yes" purge --domain "$DOMAIN" --yes
    run "$mode" "export (all the rest) --output" export --domain "$EVERYONE" --output "$BENCH/out.tar"
done
echo "(INBOUND=$INBOUND OUTBOUND=$OUTBOUND ENCRYPTION=$ENCRYPTION; rows: the sum of the" \
    "command's per-table counts; fill rows: messages)"
