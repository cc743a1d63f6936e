#!/usr/bin/env python3
"""Memory under a long mixed run: a daemon that answers thousands of requests, good and bad,
must not grow. LeakSanitizer only sees memory nobody points to at exit; this catches what
is still referenced but never reused (records kept per request or per connection, caches
past their budgets).

Against a running release daemon:
  soak_memory.py PORT PID KEY [ROUNDS]
One round sends, from 4 threads at once: text-only scores (single, batch, kept-alive
connections reused), a score with a fresh PNG, malformed JSON, wrong types, a corrupt image,
invalid UTF-8, a body over max_body_bytes (which must be under 600 KiB), a body cut off by a
closed connection, an unknown path, sometimes /metrics and /v1/models.

The measure is the daemon's heap in use (/metrics vprm_heap_in_use_bytes, glibc's count)
less what its two caches say they hold, read while it is idle: after a warm-up of ROUNDS/5
rounds, then after ROUNDS more. It fails when that grew by more than 64 bytes a request
plus 1 MiB (the allocator's own bookkeeping moves a little). The resident set size (VmRSS of
PID) is printed too, not judged: it moves with the allocator's trimming. Exit 1 when a
check fails.
"""
import http.client
import io
import json
import random
import socket
import sys
import threading

from http_checks import png

PORT, PID, KEY = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
ROUNDS = int(sys.argv[4]) if len(sys.argv) > 4 else 400
HDR = {"Authorization": "Bearer " + KEY, "Content-Type": "application/json"}
failures = []
lock = threading.Lock()


def rss_kib():
    with open(f"/proc/{PID}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def text_request(rng):
    n = rng.randint(1, 3)
    return {"question": "What is %d + %d?" % (rng.randint(0, 99), rng.randint(0, 99)),
            "responses": ["Step %d.\n\nSo the answer is %d." % (i, rng.randint(0, 9))
                          for i in range(n)]}


def expect(conn, method, path, body, want, what):
    try:
        conn.request(method, path, body=body, headers=HDR)
        r = conn.getresponse()
        data = r.read()
        if r.status != want:
            with lock:
                failures.append(f"{what}: {r.status} (wanted {want}): {data[:200]!r}")
            return None
        return data
    except (OSError, http.client.HTTPException) as e:
        with lock:
            failures.append(f"{what}: {e!r}")
        return None


def raw_cut_body(rng):
    """Headers promising 4000 bytes, 100 sent, then the connection closed."""
    s = socket.create_connection(("127.0.0.1", PORT), timeout=10)
    s.sendall(b"POST /v1/score HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + KEY.encode() +
              b"\r\nContent-Type: application/json\r\nContent-Length: 4000\r\n\r\n" +
              b'{"question": "' + b"a" * 86)
    s.close()


def round_of(rng, conn):
    import base64
    expect(conn, "POST", "/v1/score", json.dumps(text_request(rng)), 200, "text score")
    batch = {"requests": [text_request(rng) for _ in range(rng.randint(2, 4))]}
    expect(conn, "POST", "/v1/score/batch", json.dumps(batch), 200, "batch")
    img = base64.b64encode(png(rng.randint(16, 64), rng.randint(16, 64), rng)).decode()
    req = text_request(rng)
    req["image"] = "data:image/png;base64," + img
    req["max_tiles"] = 1
    expect(conn, "POST", "/v1/score", json.dumps(req), 200, "image score")
    expect(conn, "POST", "/v1/score", '{"question": "x", "responses": [', 400, "malformed JSON")
    expect(conn, "POST", "/v1/score", '{"question": 5, "responses": "x"}', 400, "wrong types")
    bad = dict(text_request(rng), image="data:image/png;base64," + img[:len(img) // 2])
    expect(conn, "POST", "/v1/score", json.dumps(bad), 422, "corrupt image")
    expect(conn, "POST", "/v1/score",
           b'{"question": "caf\xc3", "responses": ["a\xff"]}', 400, "invalid UTF-8")
    big = '{"question": "' + "b" * (600 << 10) + '", "responses": ["x"]}'
    expect(conn, "POST", "/v1/score", big, 413, "body over the limit")
    expect(conn, "GET", "/v1/nothing", None, 404, "unknown path")
    if rng.random() < 0.2:
        expect(conn, "GET", "/metrics", None, 200, "metrics")
        expect(conn, "GET", "/v1/models", None, 200, "models")
    raw_cut_body(rng)


def worker(seed, rounds):
    rng = random.Random(seed)
    conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=60)
    for i in range(rounds):
        if i % 7 == 6:  # some connections live long, some are new
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=60)
        round_of(rng, conn)
        with lock:
            if len(failures) > 10:
                return
    conn.close()


def run(rounds, seed):
    per = max(1, rounds // 4)
    ts = [threading.Thread(target=worker, args=(seed + t, per)) for t in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return 4 * per


def heap_kib():
    """Heap in use less the caches' bytes, from /metrics (idle: no request in flight)."""
    conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=30)
    conn.request("GET", "/metrics", headers=HDR)
    text = conn.getresponse().read().decode()
    conn.close()
    v = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and not line.startswith("#"):
            v[parts[0]] = float(parts[1])
    if "vprm_heap_in_use_bytes" not in v:
        raise SystemExit("FAIL: /metrics has no vprm_heap_in_use_bytes")
    held = v.get("vprm_image_cache_bytes", 0) + v.get("vprm_prefix_cache_host_bytes", 0)
    return int((v["vprm_heap_in_use_bytes"] - held) / 1024)


warm = run(max(4, ROUNDS // 5), 1)
h1, r1 = heap_kib(), rss_kib()
n = run(ROUNDS, 1000)
h2, r2 = heap_kib(), rss_kib()
requests = n * 10
growth = h2 - h1
limit = 1024 + requests * 64 // 1024  # KiB
print(f"heap less caches {h1 / 1024:.2f} MiB after {warm} warm-up rounds, {h2 / 1024:.2f} MiB "
      f"after {n} more ({requests} requests): {growth:+d} KiB (limit {limit}); "
      f"RSS {r1 / 1024:.1f} -> {r2 / 1024:.1f} MiB")
for f in failures[:10]:
    print("FAIL:", f)
if failures or growth > limit:
    sys.exit(1)
