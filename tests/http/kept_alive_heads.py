#!/usr/bin/env python3
"""The request-head deadline on a kept-alive connection, against a daemon started with
--header-timeout-s 2 and the default 30 s idle timeout:
  1. answered, then idle 4 s (past the head deadline, under the idle timeout): the
     connection stays open and the next request is answered;
  2. idle 4 s again, then a head trickled in a byte every 250 ms: closed about 2 s after
     its first byte (counted from the answer before it, it would close at once).

  kept_alive_heads.py PORT      prints what it saw; exit 1 when a check fails
"""
import socket
import sys
import time

HEALTH = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"


def answer(s):
    """Status of one response read off s (Content-Length body), or None if it closed."""
    s.settimeout(5)
    data = b""
    while b"\r\n\r\n" not in data:
        d = s.recv(4096)
        if not d:
            return None
        data += d
    head, body = data.split(b"\r\n\r\n", 1)
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(body) < length:
        d = s.recv(4096)
        if not d:
            return None
        body += d
    return int(head.split(b" ")[1])


def trickle_until_closed(s, first):
    """Sends first, then b"a" every 250 ms: seconds from the first byte to the close, or
    None if still open after 10 s."""
    t0 = time.monotonic()
    s.sendall(first)
    s.settimeout(0.25)
    while time.monotonic() - t0 < 10:
        try:
            if s.recv(4096) == b"":
                return time.monotonic() - t0
        except socket.timeout:
            pass
        except OSError:
            return time.monotonic() - t0
        try:
            s.sendall(b"a")
        except OSError:
            return time.monotonic() - t0
    return None


def main():
    port = int(sys.argv[1])
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(HEALTH)
    first = answer(s)
    time.sleep(4)
    try:
        s.sendall(HEALTH)
        second = answer(s)
    except OSError:
        second = None
    time.sleep(4)
    closed = trickle_until_closed(s, b"GET /health HTTP/1.1\r\nHost: x\r\nX-Pad: ")
    s.close()
    ok = first == 200 and second == 200 and closed is not None and 1.9 <= closed <= 6.0
    print(f"answers {first}, after 4 s idle {second}; trickled head closed after "
          f"{'never' if closed is None else '%.2f s' % closed} (expected 1.9..6.0)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
