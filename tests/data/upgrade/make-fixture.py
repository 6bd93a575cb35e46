#!/usr/bin/env python3
"""Makes the upgrade fixture: a store and keyring written by an older `postern` binary.

Usage: make-fixture.py OLD_BINARY OUT_DIR [COMMIT]   (COMMIT: the one OLD_BINARY was built from)

Builds a production install (config file, keyring, store) in a temporary directory with the
older binary, as an operator of that release would have: an admin user, an admin API key, a
sending domain (its DKIM key sealed at rest) and a credential, three messages received over
SMTP and POSTed to a target on loopback, one message sent through the send API and left in the
queue, its content sealed (`[outbound] deliver = false`: the upgraded binary delivers it). Then it
stops the binary with SIGTERM and copies `postern.db` and `keyring` to OUT_DIR with
`fixture.json`: what was made, and the secrets the upgrade test signs in with.

Everything stays on loopback; nothing is looked up in the machine's DNS.
"""

import http.server
import json
import os
import re
import shutil
import signal
import smtplib
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, seconds=30):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    sys.exit(f"nothing listens on 127.0.0.1:{port} after {seconds} s")


class Target(http.server.BaseHTTPRequestHandler):
    received = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Target.received.append(json.loads(body))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    binary, out = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    work = tempfile.mkdtemp(prefix="postern-fixture.")
    data = os.path.join(work, "data")
    os.mkdir(data, 0o700)
    target = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Target)
    threading.Thread(target=target.serve_forever, daemon=True).start()
    smtp_port, web_port, closed_port = free_port(), free_port(), free_port()
    config = os.path.join(work, "postern.toml")
    with open(config, "w") as f:
        f.write(f"""[server]
hostname = "mx.upgrade.test"
data_dir = "{data}"

[smtp]
listen = "127.0.0.1:{smtp_port}"

[web]
listen = "127.0.0.1:{web_port}"

[encryption]
key_file = "{data}/keyring"

[outbound]
deliver = false

[dns]
servers = ["127.0.0.1:{closed_port}"]

[[address]]
address = "*@upgrade.test"
target = "http://127.0.0.1:{target.server_port}/incoming"
format = "json"
""")
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSTERN_")}
    env.pop("CREDENTIALS_DIRECTORY", None)

    def postern(*args, stdin=None):
        done = subprocess.run([binary, *args, "--config", config], input=stdin, env=env,
                              capture_output=True, text=True)
        if done.returncode != 0:
            sys.exit(f"postern {' '.join(args)}: {done.stderr}")
        return done.stdout

    def shown_once(output):
        """The secret printed on the line before "It is shown only now"."""
        lines = output.splitlines()
        index = next(i for i, line in enumerate(lines) if line.startswith("It is shown only now"))
        return lines[index - 1].strip()

    postern("keyring", "init")
    admin, password = "admin@upgrade.test", "fixture password 1234"
    postern("user", "add", "--email", admin, "--role", "admin", "--password-stdin",
            stdin=password + "\n")
    api_key = shown_once(postern("key", "add", "--name", "upgrade fixture", "--role", "admin"))
    postern("sending-domain", "add", "upgrade.test")
    credential = "fixture-app"
    token = shown_once(postern("credential", "add", credential))
    version = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout.strip()

    serve = subprocess.Popen([binary, "serve", "--config", config], env=env,
                             stderr=open(os.path.join(work, "serve.log"), "w"))
    try:
        wait_port(smtp_port)
        wait_port(web_port)
        subjects = [f"upgrade fixture message {n}" for n in (1, 2, 3)]
        for n, subject in enumerate(subjects, 1):
            with smtplib.SMTP("127.0.0.1", smtp_port, local_hostname="client.upgrade.test") as s:
                s.sendmail(f"sender{n}@example.net", [f"inbox{n}@upgrade.test"],
                           f"From: sender{n}@example.net\r\nTo: inbox{n}@upgrade.test\r\n"
                           f"Subject: {subject}\r\nMessage-ID: <fixture-{n}@example.net>\r\n\r\n"
                           f"the sealed body of {subject}\r\n")
        if len(Target.received) != 3:
            sys.exit(f"the target got {len(Target.received)} POSTs, not 3")
        request = urllib.request.Request(
            f"http://127.0.0.1:{web_port}/api/v0.1/{credential}/messages",
            data=json.dumps({"from": "app@upgrade.test", "to": ["someone@example.net"],
                             "subject": "upgrade fixture outbound",
                             "plain": "queued before the upgrade, sealed at rest"}).encode(),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        with urllib.request.urlopen(request) as response:
            outbound = json.loads(response.read())
    finally:
        serve.send_signal(signal.SIGTERM)
        serve.wait(timeout=60)

    # One self-contained file: the store with its write-ahead log folded in.
    source = sqlite3.connect(os.path.join(data, "postern.db"))
    schema = source.execute("PRAGMA user_version").fetchone()[0]
    os.makedirs(out, exist_ok=True)
    for stale in ("postern.db", "postern.db-wal", "postern.db-shm"):
        if os.path.exists(os.path.join(out, stale)):
            os.remove(os.path.join(out, stale))
    copy = sqlite3.connect(os.path.join(out, "postern.db"))
    source.backup(copy)
    copy.execute("PRAGMA journal_mode = DELETE")
    copy.close()
    source.close()
    shutil.copy(os.path.join(data, "keyring"), os.path.join(out, "keyring"))
    facts = {
        "made_by": version,
        "commit": sys.argv[3] if len(sys.argv) == 4 else None,
        "schema_version": schema,
        "admin": {"email": admin, "password": password},
        "api_key": api_key,
        "credential": {"username": credential, "token": token},
        "inbound_subjects": subjects,
        "outbound_id": outbound["id"],
    }
    with open(os.path.join(out, "fixture.json"), "w") as f:
        json.dump(facts, f, indent=2)
        f.write("\n")
    shutil.rmtree(work)
    print(f"{out}: schema {schema}, made by {version}")


if __name__ == "__main__":
    main()
