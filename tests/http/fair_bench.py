#!/usr/bin/env python3
"""Fair sharing between API keys, measured (prints figures; not a pass/fail test):

  fair_bench.py VPRM MODEL [--no-fair-share]

Starts `VPRM serve --model MODEL` on a free port with three keys (heavy weight=3, plain,
probe) and --batch-tokens 12000, then:
  1. plain queues 200 requests at once; once 150 wait, probe sends 5 one after another:
     the probe's latencies against the backlog's;
  2. heavy and plain queue 100 requests each at once: who is answered first, mean queue
     time per key.
Run it twice, with and without --no-fair-share, to see what fair sharing changes (the
README's CPU figures). Requests: 12 responses of 5 to 7 short steps, text only."""
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pass_load import Daemon, metric  # noqa: E402

VPRM, MODEL = sys.argv[1], sys.argv[2]
EXTRA = sys.argv[3:]
KEYS = {"heavy": "heavy-key-bench-1", "plain": "plain-key-bench-2", "probe": "probe-key-bench-3"}
WORDS = "the of angle sum side area so we find then let equal two three half".split()


def body(rng, tag):
    sent = lambda n: " ".join(rng.choice(WORDS) for _ in range(n)) + "."
    return json.dumps({"question": "%s %d: %s" % (tag, rng.randrange(10**9), sent(10)),
                       "responses": [[sent(12) for _ in range(rng.randint(5, 7))] for _ in range(12)]})


def fire(d, key, bodies, out, t0):
    def one(b):
        t = time.monotonic()
        st, hdr, _ = d.call("POST", "/v1/score", b, key=KEYS[key], timeout=600)
        out.append((key, st, time.monotonic() - t0, time.monotonic() - t,
                    float(hdr.get("x-queue-time", "nan"))))
    return [threading.Thread(target=one, args=(b,)) for b in bodies]


def stats(rows):
    lat = sorted(r[3] for r in rows)
    return "%d answered (%d x 200), latency p50 %.2f s, max %.2f s, mean queue %.0f ms" % (
        len(rows), sum(r[1] == 200 for r in rows), lat[len(lat) // 2], lat[-1],
        statistics.mean(r[4] for r in rows))


tmp = tempfile.mkdtemp(prefix="vprm-fair-")
keys = os.path.join(tmp, "keys.txt")
with open(keys, "w") as f:
    f.write("heavy %s weight=3\nplain %s\nprobe %s\n" % (KEYS["heavy"], KEYS["plain"], KEYS["probe"]))
os.chmod(keys, 0o600)
out_path = os.path.join(tmp, "serve.out")
srv = subprocess.Popen([VPRM, "serve", "--model", MODEL, "--host", "127.0.0.1", "--port", "0",
                        "--api-keys-file", keys, "--batch-tokens", "12000", "--max-queue", "1024"]
                       + EXTRA, stdout=open(out_path, "w"), stderr=subprocess.DEVNULL)
port = None
for _ in range(600):
    text = open(out_path).read()
    if "listening on" in text:
        port = int(text.split("listening on")[1].split(":")[-1].split()[0].strip("/"))
        break
    time.sleep(0.1)
if port is None:
    srv.kill()
    sys.exit("fair_bench: the server did not start")
d = Daemon(port, KEYS["plain"])
for _ in range(600):
    try:
        if d.call("GET", "/ready")[0] == 200:
            break
    except OSError:
        pass
    time.sleep(0.1)
mode = "fair sharing off" if "--no-fair-share" in EXTRA else "fair sharing on"
rng = random.Random(42)
out, t0 = [], time.monotonic()
threads = fire(d, "plain", [body(rng, "bl") for _ in range(200)], out, t0)
for t in threads:
    t.start()
d.wait_depth(150, 60)
depth = metric(d.metrics(), "vprm_queue_depth")
probe = []
for b in [body(rng, "pr") for _ in range(5)]:
    t = time.monotonic()
    st, hdr, _ = d.call("POST", "/v1/score", b, key=KEYS["probe"], timeout=600)
    probe.append(time.monotonic() - t)
for t in threads:
    t.join()
print("%s: 1. plain's backlog of 200 (queue depth %s when the probe began): %s" % (mode, depth, stats(out)))
print("%s: 1. probe's 5 requests one after another: %s s" % (mode, ", ".join("%.2f" % p for p in probe)))
out2, t0 = [], time.monotonic()
th = fire(d, "heavy", [body(rng, "h") for _ in range(100)], out2, t0)
tp = fire(d, "plain", [body(rng, "p") for _ in range(100)], out2, t0)
both = [x for pair in zip(th, tp) for x in pair]
for t in both:
    t.start()
for t in both:
    t.join()
first = sorted(out2, key=lambda r: r[2])[:100]
print("%s: 2. heavy (weight=3) and plain queue 100 each: of the first 100 answered, heavy %d, "
      "plain %d" % (mode, sum(r[0] == "heavy" for r in first), sum(r[0] == "plain" for r in first)))
for k in ("heavy", "plain"):
    print("%s: 2. %s: %s" % (mode, k, stats([r for r in out2 if r[0] == k])))
srv.terminate()
srv.wait(60)
