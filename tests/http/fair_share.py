#!/usr/bin/env python3
"""Fair sharing of the passes between API keys, against a running daemon (the tiny model
on the CPU backend) whose --batch-tokens lets one request into a pass, not two, and whose
keys file names alice, bob and carol (weight=3):

  fair_share.py PORT ALICE_KEY BOB_KEY CAROL_KEY on|off

alice sends six requests at once; once five wait in the queue, bob sends two. Passes take
one request each, so the order of the answers is the order of the passes:
  - on (the default --fair-share): bob's two are answered before alice's last two (their
    start tags are those of alice's first two still queued), /metrics vprm_queued_clients
    is 2 while both wait, /v1/models says limits.fair_share true and each key's weight;
  - off (--no-fair-share): arrival order, bob's two answered last.
Prints one line per check; exit 1 when one fails.
"""
import json
import sys
import threading
import time

from http_checks import check, failures
from pass_load import Daemon, metric, request

PORT, ALICE, BOB, CAROL, MODE = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
D = Daemon(PORT, ALICE)
FAIR = MODE == "on"

words, n_tok, budget = D.one_pass_words()
check(0.6 * budget <= n_tok <= 0.95 * budget,
      "a request of %d tokens against a pass budget of %d: one a pass" % (n_tok, budget))

models = {k: json.loads(D.call("GET", "/v1/models", key=k)[2]) for k in (ALICE, CAROL)}
check(models[ALICE]["limits"]["fair_share"] is FAIR, "/v1/models limits.fair_share: %s"
      % models[ALICE]["limits"]["fair_share"])
check(models[ALICE]["key"]["weight"] == 1 and models[CAROL]["key"]["weight"] == 3,
      "/v1/models key.weight: alice %s, carol (weight=3) %s"
      % (models[ALICE]["key"]["weight"], models[CAROL]["key"]["weight"]))

done = []  # (name, time answered, status)
lock = threading.Lock()


def send(name, key):
    st, _, body = D.call("POST", "/v1/score", json.dumps(request(name, words)), key=key)
    with lock:
        done.append((name, time.monotonic(), st))


threads = [threading.Thread(target=send, args=("alice%d" % i, ALICE)) for i in range(6)]
for t in threads:
    t.start()
check(D.wait_depth(5), "five of alice's requests queued behind a running one")
for i in range(2):
    threads.append(threading.Thread(target=send, args=("bob%d" % i, BOB)))
    threads[-1].start()
# six queued: alice has at most five, so bob has one or two
check(D.wait_depth(6), "bob's requests queued")
clients = metric(D.metrics(), "vprm_queued_clients")
check(clients == (2 if FAIR else 1), "/metrics vprm_queued_clients while both wait: %s (want "
      "%d: off, all requests are one client)" % (clients, 2 if FAIR else 1))
for t in threads:
    t.join()
order = [d[0] for d in sorted(done, key=lambda d: d[1])]
check(all(d[2] == 200 for d in done) and len(done) == 8, "every request answered 200: %s" % order)
last_bob = max(order.index("bob0"), order.index("bob1"))
alice_after = [n for n in order[last_bob + 1:] if n.startswith("alice")]
if FAIR:
    check(len(alice_after) >= 2, "bob's two answered before alice's last two (queued before "
          "them): order %s" % " ".join(order))
else:
    check(not alice_after, "arrival order: bob's two answered last: order %s" % " ".join(order))
sys.exit(1 if failures else 0)
