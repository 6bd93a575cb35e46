"""Verifies the DKIM signature of a message with dkimpy, an implementation independent of
Postern's. The DNS answer comes from the command line, so nothing leaves the machine.

usage: python3 dkim_verify.py MESSAGE_FILE RECORD_NAME TXT_VALUE
prints "pass" or "fail: <reason>"; exit status 0 either way (the test reads the word).
"""
import sys

import dkim

message_path, record_name, txt_value = sys.argv[1:4]
with open(message_path, "rb") as f:
    message = f.read()


def dns(name, timeout=5):
    wanted = record_name.rstrip(".") + "."
    asked = name.decode() if isinstance(name, bytes) else name
    if asked.rstrip(".") + "." == wanted:
        return txt_value.encode()
    return None


verifier = dkim.DKIM(message)
try:
    ok = verifier.verify(dnsfunc=dns)
except dkim.DKIMException as error:
    print(f"fail: {error}")
    sys.exit(0)
print("pass" if ok else "fail: signature does not verify")
