# Sourced by the install tests: mirror_line prints the `deb URI bookworm main` line of this
# machine's own Debian mirror (one-line or deb822 sources), for mmdebstrap.
mirror_line() {
    local uri
    uri=$(grep -hsE '^deb +[^ ]+ +bookworm ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list |
        awk '{print $2; exit}')
    if [ -z "$uri" ]; then
        uri=$(awk '/^URIs:/ {uri=$2} /^Suites:/ && / bookworm( |$)/ {print uri; exit}' \
            /etc/apt/sources.list.d/*.sources 2>/dev/null)
    fi
    [ -n "$uri" ] || fail "no bookworm mirror in /etc/apt/sources.list*; set MIRROR='deb URI bookworm main'"
    echo "deb $uri bookworm main"
}
