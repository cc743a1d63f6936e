#!/usr/bin/env python3
"""Image URL fetches must not hold the HTTP threads. Against a running daemon started with
--allow-image-urls --url-allow-private --url-ports any and an image host (suite_http.sh's imgserver.py)
whose /slow/MS answers the image after MS milliseconds:

  url_offthread.py offthread PORT KEY IMGBASE IMG_PNG N_SLOW SLOW_MS
      N_SLOW requests whose image is IMGBASE/slow/SLOW_MS, each on its own connection,
      are sent at once (N_SLOW >= the daemon's --http-threads, so every HTTP thread would
      be held if fetches ran there). While they are fetching: /health and a base64
      (inline image IMG_PNG) score on kept-alive connections opened before the fetches
      started (one per HTTP thread or more: some are bound to a thread that read a slow
      request), and a burst of new connections (/health and base64 scores mixed with more
      slow URL requests). Every /health must answer within 1 s and every base64 score
      within 2.5 s (SLOW_MS should be well above: 5000), every URL request 200.
  url_offthread.py disconnect PORT KEY IMGBASE LOG SLOW_MS
      A URL request to IMGBASE/slow/SLOW_MS whose client closes after 0.5 s: its log line
      (in the daemon's LOG) must say it was cancelled within 2.5 s of the close, not after
      the image host answers; then /health and a URL score answer 200.
Prints one line per check; exit 1 when one fails.
"""
import base64
import http.client
import json
import socket
import sys
import threading
import time

MODE = sys.argv[1]
from http_checks import auth_headers, check, failures

PORT, KEY, IMGBASE = int(sys.argv[2]), sys.argv[3], sys.argv[4]
HDR = auth_headers(KEY)


def score_body(image):
    return json.dumps({"question": "What is shown?", "image": image,
                       "responses": ["A square.\n\nIt is red.", "A circle."]})


def request(conn, method, path, body=None, timeout=30):
    """(status, seconds, body) on conn (a new connection when None)."""
    own = conn is None
    if own:
        conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=timeout)
    t0 = time.monotonic()
    try:
        conn.request(method, path, body=body, headers=HDR)
        r = conn.getresponse()
        data = r.read()
        return r.status, time.monotonic() - t0, data
    except Exception as e:  # a stalled or refused connection counts as a failure
        return -1, time.monotonic() - t0, str(e).encode()
    finally:
        if own:
            conn.close()


def run_all(jobs):
    """Runs each (name, fn) in its own thread at once; returns {name: result}."""
    out = {}
    def go(name, fn):
        out[name] = fn()
    ts = [threading.Thread(target=go, args=j) for j in jobs]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return out


def offthread():
    img_png, n_slow, slow_ms = sys.argv[5], int(sys.argv[6]), int(sys.argv[7])
    inline = score_body("data:image/png;base64," +
                        base64.b64encode(open(img_png, "rb").read()).decode())
    slow = score_body("%s/slow/%d" % (IMGBASE, slow_ms))
    # kept-alive connections, each bound to one HTTP thread before the fetches start
    kept = [http.client.HTTPConnection("127.0.0.1", PORT, timeout=30) for _ in range(8)]
    for c in kept:
        st, _, _ = request(c, "GET", "/health")
        if st != 200:
            check(False, "kept-alive connection: first /health %d" % st)
            return
    slow_results = {}
    def slow_one(i):
        slow_results[i] = request(None, "POST", "/v1/score", slow)
    slow_threads = [threading.Thread(target=slow_one, args=(i,)) for i in range(n_slow)]
    for t in slow_threads:
        t.start()
    time.sleep(0.8)  # every slow request read and fetching
    jobs = []
    for k, c in enumerate(kept):
        if k % 2:
            jobs.append(("kept%d /health" % k, lambda c=c: request(c, "GET", "/health")))
        else:
            jobs.append(("kept%d base64 score" % k,
                         lambda c=c: request(c, "POST", "/v1/score", inline)))
    for k in range(12):
        if k % 3 == 0:
            jobs.append(("new%d /health" % k, lambda: request(None, "GET", "/health")))
        elif k % 3 == 1:
            jobs.append(("new%d base64 score" % k,
                         lambda: request(None, "POST", "/v1/score", inline)))
        else:  # more slow ones in the same burst: a thread that reads one goes on serving
            jobs.append(("new%d slow URL score" % k,
                         lambda: request(None, "POST", "/v1/score", slow)))
    res = run_all(jobs)
    for t in slow_threads:
        t.join()
    worst = {"/health": 0.0, "base64 score": 0.0}
    for name, (st, sec, body) in sorted(res.items()):
        if "slow URL" in name:
            continue
        kind = "/health" if "/health" in name else "base64 score"
        limit = 1.0 if kind == "/health" else 2.5
        worst[kind] = max(worst[kind], sec)
        if st != 200 or sec > limit:
            check(False, "%s while %d URL fetches wait on a slow host: %d in %.2f s (limit %.1f s) %s"
                  % (name, n_slow, st, sec, limit, body[:200]))
    check(all(st == 200 and sec <= (1.0 if "/health" in n else 2.5)
              for n, (st, sec, _) in res.items() if "slow URL" not in n),
          "while %d+4 URL fetches wait %.1f s on a slow host: 8 kept-alive and 8 new connections "
          "answered (worst /health %.2f s, worst base64 score %.2f s)"
          % (n_slow, slow_ms / 1000, worst["/health"], worst["base64 score"]))
    slow_all = list(slow_results.values()) + [r for n, r in res.items() if "slow URL" in n]
    n200 = sum(1 for st, _, _ in slow_all if st == 200)
    check(n200 == len(slow_all), "every slow URL request answered 200 (%d of %d; statuses %s)"
          % (n200, len(slow_all), sorted(set(st for st, _, _ in slow_all))))
    for c in kept:
        c.close()


def disconnect():
    log, slow_ms = sys.argv[5], int(sys.argv[6])
    body = score_body("%s/slow/%d" % (IMGBASE, slow_ms)).encode()
    with open(log, "rb") as f:
        f.seek(0, 2)
        start = f.tell()
    s = socket.create_connection(("127.0.0.1", PORT))
    s.sendall(b"POST /v1/score HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + KEY.encode() +
              b"\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    time.sleep(0.5)
    s.close()
    t_close = time.monotonic()
    seen = None
    while time.monotonic() - t_close < slow_ms / 1000 + 3:
        with open(log, "rb") as f:
            f.seek(start)
            text = f.read().decode(errors="replace")
        if "POST /v1/score - " in text and "cancelled" in text:
            seen = time.monotonic() - t_close
            break
        time.sleep(0.05)
    check(seen is not None and seen < 2.5,
          "a client gone during its fetch: cancelled %s after it closed (the host answers after "
          "%.1f s)" % ("never" if seen is None else "%.2f s" % seen, slow_ms / 1000))
    st, sec, _ = request(None, "GET", "/health")
    check(st == 200 and sec < 1.0, "then /health: %d in %.2f s" % (st, sec))
    st, sec, b = request(None, "POST", "/v1/score", score_body(IMGBASE + "/img.png"))
    check(st == 200, "then a URL score: %d in %.2f s %s" % (st, sec, b[:200] if st != 200 else ""))


{"offthread": offthread, "disconnect": disconnect}[MODE]()
sys.exit(1 if failures else 0)
