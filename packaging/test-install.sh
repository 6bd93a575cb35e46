#!/usr/bin/env bash
# The Debian package tried as a new host would get it: mmdebstrap a fresh bookworm root with the
# .deb installed, check in a chroot what the package promises (the postern user, owners and
# modes, the unit enabled but not running), then boot the root with systemd-nspawn on a private
# network where a probe unit starts the unit (Type=notify: `systemctl start` returns at
# READY=1), reads the SMTP greeting on port 25, sends a message that Postern POSTs to a target
# running inside the root, asks the HTTPS port for /healthz, reloads and stops it (the shipped
# config was edited and passed `postern check` before the boot). Then the upgrade: the store and
# keyring written by the previous release (tests/data/upgrade/) replace the new ones, the
# package is installed over itself (postinst configure with the old version), and a second
# boot checks that the migrations ran and the older messages, sealed content and API key still
# open. Back in the chroot, `apt-get remove` keeps the data, the keyring and the user, and
# `apt-get purge` leaves nothing.
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
repository=$(cd "$(dirname "$0")/.." && pwd)
upgrade=$repository/tests/data/upgrade
deb=$(realpath "$1")
[ -f "$deb" ] || fail "$deb: no such file (build it with \`cargo deb\`)"
[ "$(id -u)" -eq 0 ] || fail "mmdebstrap and systemd-nspawn need root"
for tool in mmdebstrap systemd-nspawn; do
    command -v "$tool" >/dev/null || fail "$tool is missing: apt-get install mmdebstrap systemd-container"
done

source "$repository/packaging/mirror.sh"

work=$(mktemp -d /var/tmp/postern-install.XXXXXX)
root=$work/rootfs
if [ -z "${KEEP:-}" ]; then
    trap 'rm -rf "$work"' EXIT
else
    echo "keeping $root"
fi
started=$(date +%s)

echo "--- mmdebstrap bookworm with $(basename "$deb")"
# python3 runs the target the message is POSTed to, and the SMTP client; curl asks HTTPS.
mmdebstrap --quiet --variant=minbase --include="$deb" --include=python3,curl \
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
# A name, a self-signed certificate (no CA can reach a private network), no DNS server to ask,
# outbound mail through a relay inside the root, one address POSTed to the target inside the
# root. Before the boot: the unit is enabled, so the boot starts it.
in_root sed -i -e 's/^hostname = .*/hostname = "mx.postern.test"/' \
    -e 's/^mode = "acme"/mode = "self-signed"/' -e 's/^contact = /# contact = /' \
    -e 's/^servers = "system"/servers = ["127.0.0.1:53"]/' \
    -e 's|^# relay = .*|relay = "smtp://127.0.0.1:2526"|' /etc/postern/postern.toml
cat >>"$root/etc/postern/postern.toml" <<'TOML'

[[address]]
address = "*@postern.test"
target = "http://127.0.0.1:8080/incoming"
format = "json"
TOML
expect "the edited config" "root:postern 640" "$(in_root stat -c '%U:%G %a' /etc/postern/postern.toml)"
in_root postern check >"$work/check.log" 2>&1 || {
    cat "$work/check.log" >&2
    fail "postern check on the edited shipped config"
}
echo "ok  postern check: $(tail -n 1 "$work/check.log")"

# The app the mail is POSTed to: writes each body to /var/log/postern-target/, answers 200.
cat >"$root/usr/local/bin/postern-target" <<'TARGET'
#!/usr/bin/python3
import http.server, os
os.makedirs("/var/log/postern-target", exist_ok=True)
class Target(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        count = len(os.listdir("/var/log/postern-target"))
        with open(f"/var/log/postern-target/{count + 1}.json", "wb") as f:
            f.write(body)
        self.send_response(200)
        self.end_headers()
http.server.HTTPServer(("127.0.0.1", 8080), Target).serve_forever()
TARGET
chmod 755 "$root/usr/local/bin/postern-target"
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

# Boots the root with the probe script on standard input; its log must end in PROBE OK.
boot_and_probe() { # WHAT
    {
        cat <<'HEAD'
#!/bin/bash
# Runs once at boot inside the test root; its last line is PROBE OK or says what failed.
exec >/var/log/postern-probe.log 2>&1
finish() { echo "$1"; systemctl --no-block poweroff 2>/dev/null; exit 0; }
trap 'finish "PROBE FAILED at line $LINENO"' ERR
set -eE
HEAD
        cat
        echo 'finish "PROBE OK"'
    } >"$root/usr/local/bin/postern-probe"
    chmod 755 "$root/usr/local/bin/postern-probe"
    rm -f "$root/var/log/postern-probe.log"
    timeout 180 systemd-nspawn -q -b --register=no --keep-unit --private-network -D "$root" \
        >"$work/boot.log" 2>&1 || true
    probe=$(cat "$root/var/log/postern-probe.log" 2>/dev/null || echo "(the probe did not run)")
    echo "$probe" | sed 's/^/    /'
    [ "$(echo "$probe" | tail -n 1)" = "PROBE OK" ] || {
        tail -n 40 "$work/boot.log" >&2
        fail "the probe inside the booted root ($1)"
    }
    echo "ok  $1"
}

echo "--- boot with systemd-nspawn (private network): serve, POST, HTTPS, reload, drain"
boot_and_probe "the unit serves, reloads and drains" <<'PROBE'
/usr/local/bin/postern-target &
systemctl start postern.service
systemctl is-active postern.service
python3 - <<'SMTP'
import smtplib
with smtplib.SMTP(local_hostname="client.postern.test") as smtp:
    code, greeting = smtp.connect("127.0.0.1", 25)
    print("SMTP greeting:", code, greeting.decode())
    assert code == 220 and greeting.startswith(b"mx.postern.test "), greeting
    refused = smtp.sendmail("someone@example.net", ["inbox@postern.test"],
                            b"Subject: install test\r\n\r\nposted inside the root\r\n")
    assert not refused, refused
print("SMTP 250 for inbox@postern.test")
SMTP
grep -q '"Subject":"install test"' /var/log/postern-target/1.json
echo "the target got: $(head -c 120 /var/log/postern-target/1.json)…"
health=$(curl -sS --fail --insecure --resolve mx.postern.test:443:127.0.0.1 https://mx.postern.test/healthz)
echo "HTTPS /healthz: $health"
systemctl reload postern.service
sleep 1
systemctl is-active postern.service
systemctl stop postern.service
journalctl -u postern.service --no-pager -o cat >/tmp/postern.journal
tail -n 20 /tmp/postern.journal
grep -q "postern is ready" /tmp/postern.journal
grep -q "SIGHUP received" /tmp/postern.journal
grep -q "SIGTERM received, shutting down" /tmp/postern.journal
PROBE

echo "--- upgrade: the previous release's store and keyring, the package over itself, a second boot"
fact() { python3 -c "import json, sys; print(json.load(open(sys.argv[1]))$1)" "$upgrade/fixture.json"; }
api_key=$(fact "['api_key']") subjects=$(fact "['inbound_subjects']") old_schema=$(fact "['schema_version']")
[ -n "$api_key" ] && [ -n "$subjects" ] && [ -n "$old_schema" ] || fail "cannot read $upgrade/fixture.json"
rm -f "$root"/var/lib/postern/postern.db*
install -o "$(in_root id -u postern)" -g "$(in_root id -g postern)" -m 600 \
    "$upgrade/postern.db" "$root/var/lib/postern/postern.db"
install -o root -g root -m 600 "$upgrade/keyring" "$root/etc/postern/keyring"
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
# The relay the queued message leaves through (Python 3.11's smtpd prints what it gets), up
# before the unit, which the boot starts and whose worker sends at once.
cat >"$root/etc/systemd/system/postern-relay.service" <<'UNIT'
[Unit]
Description=postern install test relay
Before=postern.service

[Service]
ExecStart=/bin/sh -c 'exec python3 -u -W ignore -m smtpd -n -c DebuggingServer 127.0.0.1:2526 >/tmp/relay.log 2>&1'
ExecStartPost=/bin/bash -c 'until (exec 3<>/dev/tcp/127.0.0.1/2526) 2>/dev/null; do sleep 0.1; done'
PrivateTmp=no

[Install]
WantedBy=multi-user.target
UNIT
systemctl --root="$root" enable postern-relay.service >/dev/null 2>&1
boot_and_probe "the previous release's store is migrated and opens" <<PROBE
systemctl start postern.service
journalctl -u postern.service --no-pager -o cat | grep "database migrated"
api() { curl -sS --fail --insecure --resolve mx.postern.test:443:127.0.0.1 \
    -H "Authorization: Bearer $api_key" "https://mx.postern.test\$1"; }
api /api/messages >/tmp/messages.json
python3 - <<'CHECK'
import json
subjects = sorted(m["subject"] for m in json.load(open("/tmp/messages.json"))["messages"])
print("messages kept:", subjects)
assert subjects == $subjects, subjects
CHECK
for _ in \$(seq 60); do grep -q "queued before the upgrade" /tmp/relay.log && break; sleep 0.5; done
grep -E "queued before the upgrade|^b?'?DKIM-Signature" /tmp/relay.log
grep -q "d=upgrade.test" /tmp/relay.log
systemctl stop postern.service
PROBE
expect "the schema after the upgrade" "yes" \
    "$(in_root python3 -c 'import sqlite3; v = sqlite3.connect("/var/lib/postern/postern.db").execute("PRAGMA user_version").fetchone()[0]; print("yes" if v > '"$old_schema"' else v)')"

echo "--- apt-get remove"
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
