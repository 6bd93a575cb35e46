"""Parses a multipart/form-data body with the PyPI `multipart` package (a second,
independent parser for Postern's form-data) and prints its parts as JSON.

Usage: python3 form_fields.py BOUNDARY < body
Prints [{"name", "filename", "content_type", "data"}, ...] in body order; `filename` and
`content_type` are null when the part has none, `data` is base64.
"""

import base64
import io
import json
import sys

import multipart


def main():
    boundary = sys.argv[1]
    body = sys.stdin.buffer.read()
    parser = multipart.MultipartParser(
        io.BytesIO(body), boundary, content_length=len(body), strict=True, part_limit=10000
    )
    parts = [
        {
            "name": part.name,
            "filename": part.filename,
            "content_type": part.headers.get("Content-Type"),
            "data": base64.b64encode(part.raw).decode("ascii"),
        }
        for part in parser
    ]
    json.dump(parts, sys.stdout)


if __name__ == "__main__":
    main()
