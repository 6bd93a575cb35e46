"""A customer's app that accepts only POSTs signed the Standard Webhooks way, checked with
the `standardwebhooks` package from PyPI (an implementation independent of Postern's).

usage: python3 signed_app.py SECRET_FILE LOG_FILE
- SECRET_FILE: the secret the app knows (whsec_…), read again at each request; empty or
  missing: the app knows none and refuses everything.
- LOG_FILE: one JSON line per request: path, the three webhook-* headers, verified, error.
Prints the port it listens on (127.0.0.1), then serves until killed. Answers 200 "verified"
to a request that verifies, else 403 text/plain "signature refused: <why>".
"""
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

secret_file, log_file = sys.argv[1:3]


def known_secret():
    try:
        with open(secret_file) as f:
            return f.read().strip()
    except FileNotFoundError:
        return ""


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        headers = {k: v for k, v in self.headers.items()}
        secret = known_secret()
        error = None
        if not secret:
            error = "the app knows no secret"
        else:
            try:
                Webhook(secret).verify(body, headers, json_parse=False)
            except WebhookVerificationError as e:
                error = str(e)
        entry = {
            "path": self.path,
            "webhook-id": self.headers.get("webhook-id"),
            "webhook-timestamp": self.headers.get("webhook-timestamp"),
            "webhook-signature": self.headers.get("webhook-signature"),
            "verified": error is None,
            "error": error,
        }
        with open(log_file, "a") as f:
            f.write(json.dumps(entry) + "\n")
        text = b"verified" if error is None else f"signature refused: {error}".encode()
        self.send_response(200 if error is None else 403)
        self.send_header("content-type", "text/plain")
        self.send_header("content-length", str(len(text)))
        self.end_headers()
        self.wfile.write(text)

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
