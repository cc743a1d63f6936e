#!/usr/bin/env python3
"""Request priorities, against a running daemon (the tiny model on the CPU backend) whose
--batch-tokens (12000 or so) lets one request of about 80% of it into a pass, not two:

  priority.py PORT KEY LOG

Six normal requests are sent at once; once five of them wait in the queue (/metrics
vprm_queue_depth), a "low" one, then a "high" one. Passes take one request each, so the
order in which the answers arrive is the order of the passes:
  - the high request is answered before every normal one still queued when it arrived
    (at least three: passes last a few hundred ms, the check waits for no pass);
  - the low one last, after every normal one, although it arrived before the high one;
  - x-queue-time of the high request under that of the last normal one;
  - /metrics vprm_queue_seconds_by_priority counts one high and one low job;
  - the log line of the high request says priority=high.
Then the refusals: a priority that is not high, normal or low (400 naming the field), a
batch whose own priority is wrong (400, "priority"), a batch item's (its item error,
"requests[0].priority"); a batch with "priority": "high" is answered 200.
Prints one line per check; exit 1 when one fails.
"""
import json
import sys
import threading
import time

from http_checks import check, failures
from pass_load import Daemon, metric, request

PORT, KEY, LOG = int(sys.argv[1]), sys.argv[2], sys.argv[3]
D = Daemon(PORT, KEY)
call, metrics, wait_depth = D.call, D.metrics, D.wait_depth

words, n_tok, budget = D.one_pass_words()
check(0.6 * budget <= n_tok <= 0.95 * budget,
      "a request of %d tokens against a pass budget of %d: one a pass" % (n_tok, budget))

done = []  # (name, time answered, status, x-queue-time)
lock = threading.Lock()


def send(name, priority):
    st, hdr, body = call("POST", "/v1/score", json.dumps(request(name, words, priority)),
                         headers={"X-Client-Request-Id": "prio-" + name})
    with lock:
        done.append((name, time.monotonic(), st, float(hdr.get("x-queue-time", "nan"))))


def wait_depth(n, limit_s=30):
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit_s:
        d = metric(metrics(), "vprm_queue_depth")
        if d is not None and d >= n:
            return True
        time.sleep(0.01)
    return False


before = metrics()
threads = [threading.Thread(target=send, args=("normal%d" % i, None)) for i in range(6)]
for t in threads:
    t.start()
check(wait_depth(5), "five normal requests queued behind a running one")
threads.append(threading.Thread(target=send, args=("low", "low")))
threads[-1].start()
check(wait_depth(6), "the low request queued")
threads.append(threading.Thread(target=send, args=("high", "high")))
threads[-1].start()
queued_at_high = metric(metrics(), "vprm_queue_depth")
for t in threads:
    t.join()
order = [d[0] for d in sorted(done, key=lambda d: d[1])]
check(all(d[2] == 200 for d in done) and len(done) == 8, "every request answered 200: %s" % order)
after_high = [n for n in order[order.index("high") + 1:] if n.startswith("normal")]
check(len(after_high) >= 3,
      "the high request overtook the normal ones still queued: order %s (queue depth %s when "
      "it was sent)" % (" ".join(order), queued_at_high))
check(order[-1] == "low", "the low request, sent before the high one, answered last: %s" % order[-1])
qt = dict((d[0], d[3]) for d in done)
last_normal = [n for n in order if n.startswith("normal")][-1]
check(qt["high"] < qt[last_normal],
      "x-queue-time: high %.0f ms, the last normal %.0f ms" % (qt["high"], qt[last_normal]))
after = metrics()
for p in ("high", "low"):
    name = 'vprm_queue_seconds_by_priority_count{priority="%s"}' % p
    b, a = metric(before, name) or 0, metric(after, name)
    check(a is not None and a - b == 1, "%s: %s -> %s" % (name, b, a))
time.sleep(0.2)  # the log line is written once the answer is sent
log = open(LOG, encoding="utf-8", errors="replace").read()
line = [ln for ln in log.splitlines() if "client_request_id=prio-high" in ln]
check(line and " priority=high" in line[-1], "the log line: %s" % (line[-1] if line else "none"))

st, _, body = call("POST", "/v1/score", json.dumps(request("bad", 16, "urgent")))
err = json.loads(body).get("error", {}) if body else {}
check(st == 400 and err.get("param") == "priority" and "high, normal, low" in err.get("message", ""),
      "priority \"urgent\": %d %s" % (st, body[:160]))
st, _, body = call("POST", "/v1/score/batch",
                   json.dumps({"priority": 1, "requests": [request("b", 16)]}))
err = json.loads(body).get("error", {}) if body else {}
check(st == 400 and err.get("param") == "priority", "a batch's priority 1: %d %s" % (st, body[:160]))
st, _, body = call("POST", "/v1/score/batch",
                   json.dumps({"priority": "high", "requests": [request("b0", 16, "Low"), request("b1", 16)]}))
res = json.loads(body).get("results", []) if st == 200 else []
check(len(res) == 2 and res[0].get("error", {}).get("param") == "requests[0].priority"
      and "results" in res[1] and not res[1].get("warnings"),
      "a batch of priority high: its item with \"Low\" refused, the other scored: %d %s" % (st, body[:200]))
sys.exit(1 if failures else 0)
