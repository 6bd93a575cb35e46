#!/usr/bin/env python3
"""Connections per second against one listener, each a fresh TCP connection, from THREADS
threads: bench/tls.sh's load generator (the Python standard library only).

  tls_client.py smtp HOST:PORT COUNT THREADS [plain|starttls|implicit]
      EHLO, (STARTTLS, EHLO,) MAIL, RCPT, DATA of 1 KB, QUIT
  tls_client.py http HOST:PORT COUNT THREADS [plain|tls]
      GET /healthz, Connection: close

Certificates are not verified (the bench's is self-signed); the handshake is the same work.
Prints "<seconds> <failures>".
"""
import http.client
import smtplib
import ssl
import sys
import threading
import time

kind, target, count, threads, mode = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
host, port = target.rsplit(":", 1)
port = int(port)
context = ssl.create_default_context()
context.check_hostname = False
context.verify_mode = ssl.CERT_NONE
body = "Subject: bench\r\n\r\n" + ("x" * 76 + "\r\n") * 13
failures = 0
lock = threading.Lock()
next_index = iter(range(count))


def smtp_once():
    if mode == "implicit":
        client = smtplib.SMTP_SSL(host, port, context=context, timeout=30)
    else:
        client = smtplib.SMTP(host, port, timeout=30)
    client.ehlo("bench.client")
    if mode == "starttls":
        client.starttls(context=context)
        client.ehlo("bench.client")
    client.sendmail("a@bench.local", ["b@bench.local"], body)
    client.quit()


def http_once():
    if mode == "tls":
        connection = http.client.HTTPSConnection(host, port, context=context, timeout=30)
    else:
        connection = http.client.HTTPConnection(host, port, timeout=30)
    connection.request("GET", "/healthz", headers={"Connection": "close"})
    response = connection.getresponse()
    response.read()
    if response.status != 200:
        raise RuntimeError(response.status)
    connection.close()


def worker():
    global failures
    once = smtp_once if kind == "smtp" else http_once
    while True:
        with lock:
            if next(next_index, None) is None:
                return
        try:
            once()
        except Exception:
            with lock:
                failures += 1


start = time.monotonic()
pool = [threading.Thread(target=worker) for _ in range(threads)]
for thread in pool:
    thread.start()
for thread in pool:
    thread.join()
print(f"{time.monotonic() - start:.3f} {failures}")
