#!/usr/bin/env bash
# The Debian package tried as a new host would get it: mmdebstrap a fresh bookworm root with the
# .deb installed, check in a chroot what the package promises (the postern user, owners and
# modes, the unit enabled but not running), then boot the root with systemd-nspawn on a private
# network where a probe unit waits for the unit (Type=notify: `systemctl start` returns at
# READY=1), reads the SMTP greeting on port 25, connects to the HTTPS port, reloads and stops
# it (the shipped config was edited and passed `postern check` before the boot); back in the
# chroot, installing it again keeps the keyring and the edited config, `apt-get remove` keeps
# the data, the keyring and the user, and `apt-get purge` leaves nothing.
#
# Usage (root): packaging/test-install.sh target/debian/postern_<version>_amd64.deb
# Needs: apt-get install mmdebstrap systemd-container. MIRROR overrides the apt line (default:
# this machine's own bookworm mirror, from /etc/apt/sources.list*). KEEP=1 keeps the root.
set -euo pipefail

fail() {
    echo "FAIL: $*" >&2
    exit 1
}

[ $# -eq 1 ] || fail "usage: $0 PATH/TO/postern.deb"
deb=$(realpath "$1")
[ -f "$deb" ] || fail "$deb: no such file (build it with \`cargo deb\`)"
[ "$(id -u)" -eq 0 ] || fail "mmdebstrap and systemd-nspawn need root"
for tool in mmdebstrap systemd-nspawn; do
    command -v "$tool" >/dev/null || fail "$tool is missing: apt-get install mmdebstrap systemd-container"
done

# The first `deb` line of the machine's bookworm mirror (one-line or deb822 sources).
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

work=$(mktemp -d /var/tmp/postern-install.XXXXXX)
root=$work/rootfs
if [ -z "${KEEP:-}" ]; then
    trap 'rm -rf "$work"' EXIT
else
    echo "keeping $root"
fi
started=$(date +%s)

echo "--- mmdebstrap bookworm with $(basename "$deb")"
mmdebstrap --quiet --variant=minbase --include="$deb" \
    --hook-dir=/usr/share/mmdebstrap/hooks/file-mirror-automount \
    bookworm "$root" "${MIRROR:-$(mirror_line)}"

in_root() { chroot "$root" "$@"; }
expect() { # WHAT EXPECTED ACTUAL
    [ "$2" = "$3" ] || fail "$1: expected '$2', got '$3'"
    echo "ok  $1: $3"
}

echo "--- what the package installed"
expect "the postern user" "postern:/var/lib/postern:/usr/sbin/nologin" \
    "$(in_root getent passwd postern | cut -d: -f1,6,7)"
expect "/etc/postern/postern.toml" "root:postern 640" "$(in_root stat -c '%U:%G %a' /etc/postern/postern.toml)"
expect "/etc/postern/keyring" "root:root 600" "$(in_root stat -c '%U:%G %a' /etc/postern/keyring)"
expect "/var/lib/postern" "postern:postern 700" "$(in_root stat -c '%U:%G %a' /var/lib/postern)"
expect "the config is a conffile" "/etc/postern/postern.toml" \
    "$(in_root dpkg-query -W -f='${Conffiles}' postern | awk '{print $1}')"
expect "the unit" "enabled" "$(systemctl --root="$root" is-enabled postern.service)"
in_root test -x /usr/bin/postern || fail "/usr/bin/postern is missing"
in_root test -f /usr/share/man/man1/postern.1.gz || fail "the man page is missing"

echo "--- the shipped config, edited as an operator would, then postern check"
# A name, a self-signed certificate (no CA can reach a private network), no DNS server to ask.
# Before the boot: the unit is enabled, so the boot starts it.
in_root sed -i -e 's/^hostname = .*/hostname = "mx.postern.test"/' \
    -e 's/^mode = "acme"/mode = "self-signed"/' -e 's/^contact = /# contact = /' \
    -e 's/^servers = "system"/servers = ["127.0.0.1:53"]/' /etc/postern/postern.toml
expect "the edited config" "root:postern 640" "$(in_root stat -c '%U:%G %a' /etc/postern/postern.toml)"
in_root postern check >"$work/check.log" 2>&1 || {
    cat "$work/check.log" >&2
    fail "postern check on the edited shipped config"
}
echo "ok  postern check: $(tail -n 1 "$work/check.log")"

echo "--- boot with systemd-nspawn (private network) and run the probe"
cat >"$root/usr/local/bin/postern-probe" <<'PROBE'
#!/bin/bash
# Runs once at boot inside the test root; its last line is PROBE OK or says what failed.
exec >/var/log/postern-probe.log 2>&1
finish() { echo "$1"; systemctl --no-block poweroff 2>/dev/null; exit 0; }
trap 'finish "PROBE FAILED at line $LINENO"' ERR
set -eE
systemctl start postern.service
systemctl is-active postern.service
exec 3<>/dev/tcp/127.0.0.1/25
read -r -t 10 greeting <&3
echo "SMTP greeting: $greeting"
[[ $greeting == "220 mx.postern.test "* ]]
printf 'QUIT\r\n' >&3
exec 3>&-
exec 4<>/dev/tcp/127.0.0.1/443
exec 4>&-
echo "HTTPS port 443 accepts"
systemctl reload postern.service
sleep 1
systemctl is-active postern.service
systemctl stop postern.service
journalctl -u postern.service --no-pager -o cat >/tmp/postern.journal
tail -n 20 /tmp/postern.journal
grep -q "postern is ready" /tmp/postern.journal
grep -q "SIGHUP received" /tmp/postern.journal
grep -q "SIGTERM received, shutting down" /tmp/postern.journal
finish "PROBE OK"
PROBE
chmod 755 "$root/usr/local/bin/postern-probe"
cat >"$root/etc/systemd/system/postern-probe.service" <<'UNIT'
[Unit]
Description=postern install test probe
After=multi-user.target

[Service]
Type=oneshot
ExecStart=/usr/local/bin/postern-probe

[Install]
WantedBy=multi-user.target
UNIT
systemctl --root="$root" enable postern-probe.service >/dev/null 2>&1
timeout 180 systemd-nspawn -q -b --register=no --keep-unit --private-network -D "$root" \
    >"$work/boot.log" 2>&1 || true
probe=$(cat "$root/var/log/postern-probe.log" 2>/dev/null || echo "(the probe did not run)")
echo "$probe" | sed 's/^/    /'
[ "$(echo "$probe" | tail -n 1)" = "PROBE OK" ] || {
    tail -n 40 "$work/boot.log" >&2
    fail "the probe inside the booted root"
}

echo "--- the same package again (an upgrade: postinst configure with the old version), then remove"
keyring_sum=$(in_root sha256sum /etc/postern/keyring)
cp "$deb" "$root/tmp/postern.deb"
in_root dpkg -i /tmp/postern.deb >"$work/upgrade.log" 2>&1 || {
    cat "$work/upgrade.log" >&2
    fail "dpkg -i over the installed package"
}
expect "the keyring after the upgrade" "$keyring_sum" "$(in_root sha256sum /etc/postern/keyring)"
expect "the edited config after the upgrade" 'hostname = "mx.postern.test"' \
    "$(in_root grep '^hostname = ' /etc/postern/postern.toml)"
expect "the config's owner after the upgrade" "root:postern 640" \
    "$(in_root stat -c '%U:%G %a' /etc/postern/postern.toml)"
in_root apt-get remove -y -qq postern >"$work/remove.log" 2>&1 || {
    cat "$work/remove.log" >&2
    fail "apt-get remove postern"
}
expect "the store after remove" "postern:postern 600" \
    "$(in_root stat -c '%U:%G %a' /var/lib/postern/postern.db)"
expect "the keyring after remove" "$keyring_sum" "$(in_root sha256sum /etc/postern/keyring)"
in_root getent passwd postern >/dev/null || fail "remove deleted the postern user"
in_root test ! -e /usr/bin/postern || fail "remove left /usr/bin/postern"

echo "--- apt-get purge"
in_root apt-get purge -y -qq postern >"$work/purge.log" 2>&1 || {
    cat "$work/purge.log" >&2
    fail "apt-get purge postern"
}
in_root getent passwd postern >/dev/null && fail "the postern user is still there"
for path in /var/lib/postern /etc/postern /usr/bin/postern /usr/lib/systemd/system/postern.service; do
    in_root test -e "$path" && fail "$path is still there after purge"
done
echo "ok  purge left no user, data, config or keyring"

echo "PASS in $(($(date +%s) - started)) s"
