#!/usr/bin/env python3
"""What the daemon answers to a GET /health whose request head has about BYTES bytes of a
given SHAPE:

  head_status.py PORT SHAPE BYTES

SHAPE: one (one long header), tiny (many "Xn: v" headers), cookie (one Cookie header of
many cookies). Prints "200", "431 json" (our error body), "431 html" (libmicrohttpd's own
page), another status, or "none" when the connection closed without an answer."""
import sys

from http_checks import exchange

port, shape, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
if shape == "one":
    extra = b"X-Pad: " + b"p" * n + b"\r\n"
elif shape == "tiny":
    extra = b"".join(b"X%d: v\r\n" % i for i in range(n // 10))
elif shape == "cookie":
    extra = b"Cookie: " + b"; ".join(b"c%d=%s" % (i, b"v" * 20) for i in range(n // 26)) + b"\r\n"
else:
    raise SystemExit("unknown shape " + shape)
# one sendall: a head libmicrohttpd refuses is answered and the connection reset; sent in
# pieces, the reset can come before the client reads the answer
got = exchange(port, b"GET /health HTTP/1.1\r\nHost: x\r\n" + extra + b"\r\n")
if not got.startswith(b"HTTP/"):
    print("none")
else:
    status = got.split(b" ", 2)[1].decode()
    kind = " json" if b'"header_too_large"' in got else " html" if b"<html>" in got else ""
    print(status + (kind if status == "431" else ""))
