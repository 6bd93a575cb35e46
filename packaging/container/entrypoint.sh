#!/bin/sh
# The container's entry point: the postern command line (`serve` by default), with a keyring
# written on the first `serve` when there is none at POSTERN_ENCRYPTION__KEY_FILE.
set -eu
key=${POSTERN_ENCRYPTION__KEY_FILE:-}
if [ "${1:-}" = serve ] && [ -n "$key" ] && [ ! -e "$key" ]; then
    echo "postern-entrypoint: no keyring at $key: writing a new one. Copy it out of the" \
        "volume and keep it apart from backups of the data (README, Container)." >&2
    postern keyring init >&2
fi
exec postern "$@"
