"""Shared by the HTTP suite's Python checks: one line per check, the failures kept for the
exit status (sys.exit(1 if failures else 0))."""

failures = []


def check(ok, what):
    print(("ok: " if ok else "FAIL: ") + what, flush=True)
    if not ok:
        failures.append(what)


def png(w, h, rng):
    """A PNG of random pixels, made with zlib only (the daemon is what is under test)."""
    import struct
    import zlib
    raw = b"".join(b"\x00" + bytes(rng.getrandbits(8) for _ in range(3 * w)) for _ in range(h))

    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data +
                struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) +
            chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def samples(text):
    """The samples of a /metrics text: {"name{labels}": value} for the vprm_ families."""
    import re
    return {m.group(1): float(m.group(2))
            for m in re.finditer(r"^(vprm_[a-z_]+(?:\{[^}]*\})?) (\S+)$", text, re.M)}


def replace_file(path, text):
    """Replaces path at once (write, then rename), as a configuration manager swaps a
    secret's file in."""
    import os
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def sighup_counted(pid, metrics, expect, timeout=10):
    """SIGHUP to pid, then waits until metrics() (samples of /metrics) counts one more
    vprm_reloads_total{result=expect}: whether it did in time."""
    import os
    import signal
    import time
    label = 'vprm_reloads_total{result="%s"}' % expect
    before = metrics().get(label, 0)
    os.kill(pid, signal.SIGHUP)
    deadline = time.time() + timeout
    while time.time() < deadline:
        if metrics().get(label, 0) > before:
            return True
        time.sleep(0.02)
    return False


def keyed_request(conn, method, path, key=None, body=None):
    """One request on an http.client connection, with "Authorization: Bearer key" when key
    is given: (status, body bytes)."""
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = "Bearer " + key
    conn.request(method, path, body=body, headers=headers)
    r = conn.getresponse()
    return r.status, r.read()


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
