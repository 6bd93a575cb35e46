#!/usr/bin/env bash
# The container image tried as an operator would run it, offline: the base image
# (debian:bookworm-slim) is made by mmdebstrap from the machine's Debian mirror and imported
# when no registry is reachable, the image is built with podman from packaging/Containerfile,
# then: the binary binds port 25 as the unprivileged user (its one capability); a container
# with the shipped config edited as an operator would (mounted read-only) and a named volume
# writes its keyring into the volume, turns healthy (HEALTHCHECK = `postern ready`), answers
# SMTP, POSTs a message to a target on the host, answers HTTPS, makes an API key through
# `podman exec`, reloads on SIGHUP, drains on `podman stop`; a new container on the same
# volume still has the message and the key.
#
# Usage (root): packaging/test-container.sh [target/release/postern]
# Needs: apt-get install podman runc mmdebstrap; python3 and curl on the host. MIRROR
# overrides the apt line of the base image (default: this machine's bookworm mirror). KEEP=1
# keeps the image, container and volume.
set -euo pipefail

fail() {
    echo "FAIL: $*" >&2
    [ -n "${container:-}" ] && podman logs "$container" 2>&1 | tail -n 30 >&2
    exit 1
}

repository=$(cd "$(dirname "$0")/.." && pwd)
binary=$(realpath "${1:-$repository/target/release/postern}")
[ -x "$binary" ] || fail "$binary: no such binary (cargo build --release --locked)"
[ "$binary" = "$repository/target/release/postern" ] ||
    fail "the Containerfile copies target/release/postern; build it there"
[ "$(id -u)" -eq 0 ] || fail "podman builds and runs as root here"
for tool in podman runc mmdebstrap python3 curl; do
    command -v "$tool" >/dev/null || fail "$tool is missing: apt-get install podman runc mmdebstrap curl"
done

work=$(mktemp -d /var/tmp/postern-container.XXXXXX)
image=localhost/postern:test
name=postern-test-$$
volume=postern-test-data-$$
cleanup() {
    kill "${target_pid:-}" 2>/dev/null || true
    if [ -z "${KEEP:-}" ]; then
        podman rm -f "$name" "$name-2" >/dev/null 2>&1 || true
        podman volume rm -f "$volume" >/dev/null 2>&1 || true
        podman rmi -f "$image" >/dev/null 2>&1 || true
        rm -rf "$work"
    else
        echo "keeping $image, volume $volume, $work"
    fi
}
trap cleanup EXIT
started=$(date +%s)

# runc (crun is not packaged here), and open-file and process limits no higher than this
# shell's own hard limits (podman's defaults are, and runc then fails to start anything).
nofile=$(ulimit -Hn) nproc=1024
export CONTAINERS_CONF=$work/containers.conf
cat >"$CONTAINERS_CONF" <<CONF
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]
[engine]
runtime = "runc"
CONF

base=docker.io/library/debian:bookworm-slim
if ! podman image exists "$base"; then
    echo "--- $base is not here and no registry is reachable: mmdebstrap it, podman import"
    source "$repository/packaging/mirror.sh"
    mmdebstrap --quiet --variant=minbase --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
        --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/info/*' \
        bookworm - "${MIRROR:-$(mirror_line)}" | podman import -q - "$base" >/dev/null
fi

echo "--- podman build"
build_started=$(date +%s)
podman build -q --pull=never --format docker -f "$repository/packaging/Containerfile" \
    -t "$image" "$repository" >"$work/build.log" 2>&1 || {
    cat "$work/build.log" >&2
    fail "podman build"
}
size=$(podman image inspect --format '{{.Size}}' "$image")
echo "ok  built in $(($(date +%s) - build_started)) s: $image, $((size / 1000 / 1000)) MB"
expect() { # WHAT EXPECTED ACTUAL
    [ "$2" = "$3" ] || fail "$1: expected '$2', got '$3'"
    echo "ok  $1: $3"
}
expect "the image's user" "postern" "$(podman image inspect --format '{{.Config.User}}' "$image")"
expect "the healthcheck" "[postern ready]" \
    "$(podman image inspect --format '{{.Config.Healthcheck.Test}}' "$image" | sed 's/CMD //')"

echo "--- port 25 as the unprivileged user (a network of its own: nothing to collide with)"
set +e
podman run --rm --no-healthcheck --network=none --entrypoint timeout "$image" 3 \
    postern dev --smtp 0.0.0.0:25 --web 0.0.0.0:443 --submission 0.0.0.0:587 \
    --data-dir /tmp/dev >"$work/ports.log" 2>&1
code=$?
set -e
[ $code -eq 124 ] || {
    cat "$work/ports.log" >&2
    fail "postern dev on ports 25/443/587 ended with $code, not killed by timeout while serving"
}
grep -q "0.0.0.0:25" "$work/ports.log" || fail "no port 25 in: $(cat "$work/ports.log")"
echo "ok  uid $(podman run --rm --no-healthcheck --entrypoint id "$image" -u) binds 25, 443 and 587"

echo "--- the shipped config, edited as an operator would; a target on the host"
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
smtp=$(free_port) web=$(free_port) target=$(free_port)
podman run --rm --no-healthcheck --entrypoint cat "$image" /etc/postern/postern.toml >"$work/postern.toml"
# The host's network (its loopback reaches the target); the listeners on free loopback ports.
sed -i -e 's/^hostname = .*/hostname = "mx.postern.test"/' \
    -e 's/^mode = "acme"/mode = "self-signed"/' -e 's/^contact = /# contact = /' \
    -e 's/^servers = "system"/servers = ["127.0.0.1:9"]/' \
    -e "/^\[smtp\]/,/^\[/ s/^listen = .*/listen = \"127.0.0.1:$smtp\"/" \
    -e "/^\[web\]/,/^\[/ s/^listen = .*/listen = \"127.0.0.1:$web\"/" "$work/postern.toml"
cat >>"$work/postern.toml" <<TOML

[[address]]
address = "*@postern.test"
target = "http://127.0.0.1:$target/incoming"
format = "json"
TOML
chmod 644 "$work/postern.toml"
mkdir "$work/posted"
python3 - "$target" "$work/posted" <<'TARGET' &
import http.server, os, sys
port, out = int(sys.argv[1]), sys.argv[2]
class Target(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        with open(os.path.join(out, f"{len(os.listdir(out)) + 1}.json"), "wb") as f:
            f.write(body)
        self.send_response(200)
        self.end_headers()
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", port), Target).serve_forever()
TARGET
target_pid=$!

logged() { # CONTAINER PATTERN: whether its log has the pattern (read whole: no SIGPIPE)
    podman logs "$1" >"$work/container.log" 2>&1
    grep -q "$2" "$work/container.log"
}

run_container() { # NAME
    # --health-interval=disable: no systemd timer (none runs here); the test asks itself.
    podman run -d --name "$1" --network=host --health-interval=disable \
        -v "$work/postern.toml:/etc/postern/postern.toml:ro" -v "$volume:/var/lib/postern" \
        "$image" >/dev/null
    container=$1
    local deadline=$(($(date +%s) + 60))
    until podman healthcheck run "$1" >/dev/null 2>&1; do
        [ "$(date +%s)" -lt "$deadline" ] || fail "$1 is not healthy after 60 s"
        sleep 1
    done
    echo "ok  $1 is healthy: $(podman exec "$1" postern ready)"
}

echo "--- podman run: keyring, health, SMTP, the POST, HTTPS, an API key"
run_container "$name"
logged "$name" "postern-entrypoint: no keyring at /var/lib/postern/keyring" ||
    fail "the first start did not say it wrote the keyring"
expect "the keyring in the volume" "postern 600" \
    "$(podman exec "$name" stat -c '%U %a' /var/lib/postern/keyring)"
python3 - "$smtp" <<'SMTP'
import smtplib, sys
with smtplib.SMTP(local_hostname="client.postern.test") as smtp:
    code, greeting = smtp.connect("127.0.0.1", int(sys.argv[1]))
    print("    SMTP greeting:", code, greeting.decode())
    assert code == 220 and greeting.startswith(b"mx.postern.test "), greeting
    refused = smtp.sendmail("someone@example.net", ["inbox@postern.test"],
                            b"Subject: container test\r\n\r\nposted from the container\r\n")
    assert not refused, refused
SMTP
grep -q '"Subject":"container test"' "$work/posted/1.json" || fail "the target did not get the message"
echo "ok  SMTP 250, and the target got: $(head -c 100 "$work/posted/1.json")…"
https() { curl -sS --fail --insecure --resolve "mx.postern.test:$web:127.0.0.1" "$@"; }
expect "HTTPS /healthz" "ok" "$(https "https://mx.postern.test:$web/healthz")"
# The key is the line before "It is shown only now".
key=$(podman exec "$name" postern key add --name container-test --role admin |
    awk '/^It is shown only now/ {print previous} {previous = $0}')
[ -n "$key" ] || fail "postern key add printed no key"
count() {
    https -H "Authorization: Bearer $key" "https://mx.postern.test:$web/api/messages" |
        python3 -c 'import json, sys; print(len(json.load(sys.stdin)["messages"]))'
}
expect "messages through the API" "1" "$(count)"

echo "--- reload (SIGHUP) and drain (podman stop)"
podman kill --signal HUP "$name" >/dev/null
sleep 1
logged "$name" "SIGHUP received" || fail "no SIGHUP in the log"
podman healthcheck run "$name" >/dev/null || fail "not healthy after the reload"
echo "ok  reloaded, still healthy"
podman stop -t 40 "$name" >/dev/null
logged "$name" "SIGTERM received, shutting down" || fail "no drain in the log"
expect "the exit code after podman stop" "0" "$(podman inspect --format '{{.State.ExitCode}}' "$name")"

echo "--- a new container on the same volume"
podman rm "$name" >/dev/null
run_container "$name-2"
logged "$name-2" "no keyring" && fail "the second start wrote another keyring"
expect "messages after a new container" "1" "$(count)"
podman stop -t 40 "$name-2" >/dev/null

echo "PASS in $(($(date +%s) - started)) s (image $((size / 1000 / 1000)) MB)"
