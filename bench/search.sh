#!/usr/bin/env bash
# The inbox's search on a 100,000-message store (issue 14: under 50 ms): fills a store in
# plaintext (so the body index is there too, as in dev mode) with bench/fill_store.rs, then
# times each kind of query with bench/search_bench.rs. Loopback only; nothing is sent.
#
#     bench/search.sh [MESSAGES]     (default 100000; the store is kept in target/bench-search)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
COUNT="${1:-100000}"
DIR="$ROOT/target/bench-search/$COUNT"
(cd "$ROOT" && cargo build --release --locked -q --example fill_store --example search_bench)
if [ ! -f "$DIR/postern.db" ]; then
    mkdir -p "$(dirname "$DIR")" && mkdir -m 0700 "$DIR"
    echo "--- filling $DIR with $COUNT received messages (plaintext, body index on)"
    "$ROOT/target/release/examples/fill_store" "$DIR" - "$COUNT" 0
fi
echo "--- store: $(du -sh "$DIR" | cut -f1)"
"$ROOT/target/release/examples/search_bench" "$DIR"
