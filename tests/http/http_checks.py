"""Shared by the HTTP suite's Python checks: one line per check, the failures kept for the
exit status (sys.exit(1 if failures else 0))."""

failures = []


def check(ok, what):
    print(("ok: " if ok else "FAIL: ") + what, flush=True)
    if not ok:
        failures.append(what)


def auth_headers(key):
    return {"Authorization": "Bearer " + key, "Content-Type": "application/json"}


def exchange(port, data, timeout=30):
    """Sends raw bytes to 127.0.0.1:port and returns what came back: up to the end of one
    answer (its Content-Length), or to the close; b"" when the connection closed or reset
    without a byte."""
    import re
    import socket
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    got = b""
    try:
        s.sendall(data)
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
            head, sep, body = got.partition(b"\r\n\r\n")
            m = re.search(rb"(?i)content-length:\s*(\d+)", head)
            if sep and m and len(body) >= int(m.group(1)):
                break
    except OSError:
        pass
    finally:
        s.close()
    return got
