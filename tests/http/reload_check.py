#!/usr/bin/env python3
"""SIGHUP reloads the API keys (--api-keys-file) and the TLS certificate and key while
serving, against a running daemon started with

  --api-keys-file DIR/keys.txt [--tls-cert DIR/cert.pem --tls-key DIR/key.pem]

where keys.txt first holds "alice ALICE_KEY" and "bob BOB_KEY" and, with TLS, cert.pem and
key.pem are copies of DIR/cert_a.pem and DIR/key_a.pem (DIR/cert_b.pem and key_b.pem: a
second pair for 127.0.0.1).

  reload_check.py PORT PID DIR LOG ALICE_KEY BOB_KEY tls|plain

Checks, one line each (exit 1 when one fails):
  - the keys of the file are accepted, others refused; the log line names the key (never
    its bytes); /metrics counts the keys;
  - after the file changes and a SIGHUP: the new keys only, on new and on kept-alive
    connections; with TLS new connections get the new certificate while a connection
    opened before keeps working with the old one, which stays in memory until it closes
    (vprm_tls_certificates_held 2, then 1);
  - a refused reload (a file that is not keys, a key that is not the certificate's)
    changes nothing, keys included: all or nothing; the error names the problem;
  - a key's max_priority (NAME KEY max_priority=normal): its requests asking for "high"
    run as normal and say so in their warnings; other keys' do not;
  - a key's max_queued: a batch over it alone 413; with a job of the key in flight, a
    batch that would pass it 429 with Retry-After while another key's goes through; 200
    once the job is answered;
  - reloads every few milliseconds while clients open connections and score: every
    answer 200, and once they are done a single certificate is held.
"""
import base64
import http.client
import json
import os
import random
import re
import ssl
import sys
import threading
import time

from http_checks import check, failures, keyed_request, png, replace_file, samples, sighup_counted

PORT, PID, DIR, LOG, ALICE, BOB, MODE = sys.argv[1:8]
PORT, PID = int(PORT), int(PID)
TLS = MODE == "tls"
CAROL, DAVE = "carol-key-" + "c" * 12, "dave-key-" + "d" * 12

if TLS:
    with open(os.path.join(DIR, "ca_both.pem"), "w") as f:
        f.write(open(os.path.join(DIR, "cert_a.pem")).read() + open(os.path.join(DIR, "cert_b.pem")).read())
    CTX = ssl.create_default_context(cafile=os.path.join(DIR, "ca_both.pem"))
    DER = {n: ssl.PEM_cert_to_DER_cert(open(os.path.join(DIR, "cert_%s.pem" % n)).read()) for n in "ab"}


def connect(timeout=60):
    if TLS:
        return http.client.HTTPSConnection("127.0.0.1", PORT, timeout=timeout, context=CTX)
    return http.client.HTTPConnection("127.0.0.1", PORT, timeout=timeout)


request = keyed_request


def call(method, path, key=None, body=None):
    conn = connect()
    try:
        return request(conn, method, path, key, body)
    finally:
        conn.close()


def served_cert(conn):
    der = conn.sock.getpeercert(binary_form=True)
    return [n for n in DER if DER[n] == der] or ["?"]


def metrics():
    for key in (CAROL, BOB, ALICE):  # whichever the server takes now
        st, body = call("GET", "/metrics", key)
        if st == 200:
            break
    return samples(body.decode())


def log_text(until=None, timeout=10):
    """The daemon's log; with until (a function of the text), re-read until it holds (a
    request's log line is written just after its answer is sent)."""
    deadline = time.time() + timeout
    while True:
        text = open(LOG).read()
        if until is None or until(text) or time.time() > deadline:
            return text
        time.sleep(0.05)


def write(name, text):
    replace_file(os.path.join(DIR, name), text)


def use_pair(n):
    write("cert.pem", open(os.path.join(DIR, "cert_%s.pem" % n)).read())
    write("key.pem", open(os.path.join(DIR, "key_%s.pem" % n)).read())


def reload(expect):
    return sighup_counted(PID, metrics, expect)


# ---- the keys of the file
st_a, _ = call("GET", "/v1/models", ALICE)
st_b, _ = call("GET", "/v1/models", BOB)
st_x, _ = call("GET", "/v1/models", CAROL)
st_n, _ = call("GET", "/v1/models")
check((st_a, st_b, st_x, st_n) == (200, 200, 401, 401),
      "the file's keys accepted, another key and none refused (%d %d %d %d)" % (st_a, st_b, st_x, st_n))
m = metrics()
check(m.get("vprm_api_keys") == 2, "vprm_api_keys 2 (%s)" % m.get("vprm_api_keys"))
log = log_text(lambda t: re.search(r"GET /v1/models 200 .* key=bob\n", t))
check(re.search(r"GET /v1/models 200 .* key=bob\n", log) is not None and BOB not in log and ALICE not in log,
      "the request's log line names its key (key=bob), and no key's bytes reach the log")

# ---- new keys and, with TLS, a new certificate; a connection opened before stays up
old = connect()
st, _ = request(old, "GET", "/v1/models", ALICE)
first = served_cert(old) if TLS else []
check(st == 200 and (not TLS or first == ["a"]), "a kept-alive connection opened before the reload "
      "(status %d%s)" % (st, ", certificate %s" % first if TLS else ""))
write("keys.txt", "# rotated\ncarol %s\n%s\n" % (CAROL, BOB))
if TLS:
    use_pair("b")
check(reload("ok"), "SIGHUP: reload counted in vprm_reloads_total{result=\"ok\"}")
st_a, _ = call("GET", "/v1/models", ALICE)
st_b, _ = call("GET", "/v1/models", BOB)
st_c, _ = call("GET", "/v1/models", CAROL)
check((st_a, st_b, st_c) == (401, 200, 200),
      "after the reload: the removed key refused, the kept and the added ones accepted (%d %d %d)" % (st_a, st_b, st_c))
log = log_text(lambda t: re.search(r"GET /v1/models 200 .* key=line3\n", t))
check(re.search(r"GET /v1/models 200 .* key=line3\n", log) is not None,
      "a key given without a name is named by its line (key=line3)")
st_old_a, _ = request(old, "GET", "/v1/models", ALICE)
st_old_c, _ = request(old, "GET", "/v1/models", CAROL)
check((st_old_a, st_old_c) == (401, 200), "the connection opened before the reload: the new keys apply "
      "to its next requests (%d %d)" % (st_old_a, st_old_c))
if TLS:
    fresh = connect()
    st, _ = request(fresh, "GET", "/health")
    now = served_cert(fresh)
    fresh.close()
    check(st == 200 and now == ["b"], "a new connection gets the new certificate (%s)" % now)
    check(served_cert(old) == ["a"], "the connection opened before keeps the certificate of its handshake")
    held = metrics().get("vprm_tls_certificates_held")
    check(held == 2, "vprm_tls_certificates_held 2 while that connection is open (%s)" % held)
    old.close()
    deadline = time.time() + 5
    while time.time() < deadline and metrics().get("vprm_tls_certificates_held") != 1:
        time.sleep(0.05)
    held = metrics().get("vprm_tls_certificates_held")
    check(held == 1, "vprm_tls_certificates_held 1 once it closed: the old certificate freed (%s)" % held)
    m = metrics()
    exp = m.get("vprm_tls_certificate_expiry_timestamp_seconds", 0)
    check(time.time() < exp < time.time() + 3 * 86400,
          "vprm_tls_certificate_expiry_timestamp_seconds in the certificate's 2 days (%.0f)" % exp)
else:
    old.close()

# ---- refused reloads change nothing: the keys stay those of the last good one
write("keys.txt", "carol %s\ndave %s\n" % (CAROL, DAVE))
os.chmod(os.path.join(DIR, "keys.txt"), 0o600)
with open(os.path.join(DIR, "keys.txt"), "ab") as f:
    f.write(b"eve short\n")  # a key under 8 bytes: the file is refused
check(reload("failed"), "a keys file with a short key: reload refused (vprm_reloads_total{result=\"failed\"})")
log = log_text(lambda t: "keys.txt, line 3: the key has 5 bytes" in t)
check("keys.txt, line 3: the key has 5 bytes" in log and "reload refused" in log,
      "the refusal names the file, the line and the problem")
st_d, _ = call("GET", "/v1/models", DAVE)
st_c, _ = call("GET", "/v1/models", CAROL)
check((st_d, st_c) == (401, 200), "the refused file's keys are not taken, the previous ones stay (%d %d)" % (st_d, st_c))
if TLS:
    write("keys.txt", "carol %s\ndave %s\n" % (CAROL, DAVE))
    write("key.pem", open(os.path.join(DIR, "key_a.pem")).read())  # not cert_b's key
    check(reload("failed"), "a key that is not the certificate's: reload refused")
    log = log_text(lambda t: "is not the certificate" in t)
    check("is not the certificate" in log, "the refusal says the key is not the certificate's")
    st_d, _ = call("GET", "/v1/models", DAVE)
    fresh = connect()
    request(fresh, "GET", "/health")
    now = served_cert(fresh)
    fresh.close()
    check(st_d == 401 and now == ["b"],
          "all or nothing: the good keys file was not taken either, the certificate stays (%d, %s)" % (st_d, now))
    use_pair("b")
write("keys.txt", "carol %s\ndave %s\n" % (CAROL, DAVE))
check(reload("ok"), "the files fixed: reload taken")
st_d, _ = call("GET", "/v1/models", DAVE)
check(st_d == 200, "dave's key accepted after the good reload (%d)" % st_d)

# ---- a key's max_priority: a request asking for more runs at the key's most, and says so
write("keys.txt", "carol %s\ndave %s max_priority=normal\n" % (CAROL, DAVE))
check(reload("ok"), "a keys file with max_priority: reload taken")
ask = lambda key, body: call("POST", "/v1/score", key, json.dumps(body))
one = {"question": "Is 4 even?", "responses": ["4 = 2 * 2\n\nYes"]}
st_d, b_d = ask(DAVE, dict(one, priority="high"))
st_c, b_c = ask(CAROL, dict(one, priority="high"))
st_n, b_n = ask(DAVE, one)
w_d = json.loads(b_d).get("warnings", []) if st_d == 200 else []
check(st_d == 200 and w_d == ['priority "high" lowered to "normal": the most this API key may ask for'],
      "a capped key asking for high: 200, lowered to normal, said in warnings (%d %s)" % (st_d, w_d))
check(st_c == 200 and "warnings" not in json.loads(b_c) and st_n == 200 and "warnings" not in json.loads(b_n),
      "an uncapped key's high, and the capped key's default, carry no warning")
scored = lambda t: [l for l in t.splitlines() if "POST /v1/score 200" in l and ("key=dave" in l or "key=carol" in l)]
lines = scored(log_text(lambda t: len(scored(t)) >= 3))[-3:]
check(len(lines) == 3 and "priority=" not in lines[0] and "priority=high" in lines[1] and "priority=" not in lines[2],
      "the log lines: the capped request queued as normal, the uncapped one as high")
st, b = call("POST", "/v1/score/batch", DAVE, json.dumps({"priority": "high", "requests": [one, dict(one, priority="low")]}))
items = json.loads(b)["results"] if st == 200 else []
check(len(items) == 2 and "lowered" in items[0].get("warnings", [""])[0] and "warnings" not in items[1],
      "a batch's priority lowered for its items that take it, not for one asking for low")

# ---- a key's max_queued: jobs in flight at once (a score request one, a batch an item)
write("keys.txt", "carol %s\ndave %s max_queued=2 weight=2\n" % (CAROL, DAVE))
check(reload("ok"), "a keys file with max_queued: reload taken")
st_d, b_d = call("GET", "/v1/models", DAVE)
st_c, b_c = call("GET", "/v1/models", CAROL)
kd = json.loads(b_d).get("key") if st_d == 200 else None
kc = json.loads(b_c).get("key") if st_c == 200 else None
for k in (kd, kc):
    if k:
        k.pop("usage", None)  # checked below
check(kd == {"name": "dave", "max_priority": "high", "max_queued": 2, "weight": 2, "queued": 0}
      and kc == {"name": "carol", "max_priority": "high", "max_queued": None, "weight": 1,
                 "queued": 0},
      "GET /v1/models says what the caller's key grants (%s, %s)" % (kd, kc))
st, b = call("POST", "/v1/score/batch", DAVE, json.dumps({"requests": [one] * 3}))
msg = json.loads(b).get("error", {}).get("message", "") if st != 200 else ""
check(st == 413 and "over the API key's max_queued=2" in msg,
      "a batch of 3 items on a key with max_queued=2: 413 (%d %s)" % (st, msg))


def big(words):
    steps = lambda j: ["step %d: " % k + " ".join("w%d" % ((j + k * 7 + i) % 97) for i in range(words))
                       for k in range(8)]
    return json.dumps({"question": "Add the numbers.", "responses": [steps(j) for j in range(4)]})


def n_tokens(body):
    st, b = call("POST", "/v1/tokenize", CAROL, body)
    return sum(len(r["input_ids"]) for r in json.loads(b)["responses"]) if st == 200 else 0


words = 32
while n_tokens(big(words)) < 8000 and words < 4096:
    words *= 2


def busy_try(words):
    """A big request of DAVE's in flight, then a batch of 2 from DAVE and one from CAROL.
    The batch's status, body and Retry-After, CAROL's status, the big one's, and whether the
    big one was still waiting when the batch was answered (else the try proves nothing)."""
    slow = {}
    t = threading.Thread(target=lambda: slow.update(st=call("POST", "/v1/score", DAVE, big(words))[0]))
    t.start()
    deadline = time.time() + 30
    while time.time() < deadline and metrics().get("vprm_waiting_connections", 0) < 1:
        time.sleep(0.02)
    queued = json.loads(call("GET", "/v1/models", DAVE)[1]).get("key", {}).get("queued")
    conn = connect()
    conn.request("POST", "/v1/score/batch", body=json.dumps({"requests": [one] * 2}),
                 headers={"Authorization": "Bearer " + DAVE, "Content-Type": "application/json"})
    r = conn.getresponse()
    got = (r.status, r.read(), r.getheader("Retry-After"))
    conn.close()
    in_flight = "st" not in slow
    st_c = call("POST", "/v1/score/batch", CAROL, json.dumps({"requests": [one] * 2}))[0]
    t.join()
    return got + (st_c, slow.get("st"), in_flight, queued)


for attempt in range(4):  # a machine fast enough to finish the big one first: a bigger one
    busy_st, busy_body, retry, st_c, slow_st, in_flight, queued = busy_try(words)
    if busy_st == 429 or in_flight:
        break
    words *= 2
msg = json.loads(busy_body).get("error", {}).get("message", "") if busy_st != 200 else ""
check(busy_st == 429 and retry is not None and "has 1 jobs queued or running, its max_queued is 2" in msg,
      "with one of its jobs in flight, the key's batch of 2: 429 with Retry-After (%d %s)" % (busy_st, msg))
check(st_c == 200 and slow_st == 200, "meanwhile another key's batch 200, and the job in flight 200")
check(queued == 1 or not in_flight, "GET /v1/models counted the key's job in flight (queued %s)" % queued)
m = metrics()
check(m.get("vprm_rejected_queue_full_total", 0) == 0,
      "the key's 429 is not counted as the shared queue's (vprm_rejected_queue_full_total %s)"
      % m.get("vprm_rejected_queue_full_total"))
st, _ = call("POST", "/v1/score/batch", DAVE, json.dumps({"requests": [one] * 2}))
m = metrics()
check(st == 200 and m.get("vprm_rejected_key_quota_total") == 1,
      "once its job is done, the key's batch of 2: 200; vprm_rejected_key_quota_total 1 (%d, %s)"
      % (st, m.get("vprm_rejected_key_quota_total")))

# ---- what each key used: GET /v1/models' key.usage and /metrics' vprm_key_*_total{key},
# summed against the answers' own usage; kept by name across a reload that changes the key
usage_of = lambda key: json.loads(call("GET", "/v1/models", key)[1])["key"]["usage"]
dave_total = lambda m: sum(v for k, v in m.items() if k.startswith('vprm_key_requests_total{key="dave",'))


def settled(total):
    """/metrics once dave's requests counted reach total (a request is counted just after
    its answer is sent, so the client may see the answer first)."""
    deadline = time.time() + 10
    while True:
        m = metrics()
        if dave_total(m) >= total or time.time() > deadline:
            return m
        time.sleep(0.05)


m0 = metrics()
while True:  # dave's earlier requests all counted
    time.sleep(0.3)
    m0, before = metrics(), dave_total(m0)
    if dave_total(m0) == before:
        break
u0 = usage_of(DAVE)
pic = dict(one, images=["data:image/png;base64," + base64.b64encode(png(40, 30, random.Random(5))).decode()],
           responses=["4 = 2 * 2\n\nYes", ["4 / 2 = 2", "Yes"]])
sent = [call("POST", "/v1/score", DAVE, json.dumps(pic)),
        call("POST", "/v1/score", DAVE, '{"question": "x", "responses": [1'),  # 400
        call("POST", "/v1/score/batch", DAVE, json.dumps({"requests": [one, {"question": "no responses"}]}))]
answers = [json.loads(sent[0][1])] + [r for r in json.loads(sent[2][1]).get("results", []) if "error" not in r]
want = {"requests": 4,  # the first /v1/models, then the three above
        "results_scored": len(answers),
        "responses_scored": sum(len(a["results"]) for a in answers),
        **{f: sum(a["usage"][f] for a in answers) for f in ("prompt_tokens", "computed_tokens", "image_tiles")}}
m1 = settled(dave_total(m0) + 4)
u1 = usage_of(DAVE)
got = {f: u1[f] - u0[f] for f in u1}
# the queue time: the answers' timing_ms.queue summed, each counted to the microsecond
got_q, want_q = got.pop("queue_seconds"), sum(a["timing_ms"]["queue"] for a in answers) / 1e3
check([s[0] for s in sent] == [200, 400, 200] and len(answers) == 2 and want["image_tiles"] > 0
      and got == want, "key.usage grew by what dave's answers say they used (%s; want %s)" % (got, want))
check(abs(got_q - want_q) <= 2e-6 * len(answers),
      "key.usage.queue_seconds grew by the answers' timing_ms.queue: %.6f s (want %.6f s)"
      % (got_q, want_q))
delta = lambda name: m1.get(name, 0) - m0.get(name, 0)
got_m = {f: delta('vprm_key_%s_total{key="dave"}' % n) for f, n in (
    ("results_scored", "results_scored"), ("responses_scored", "responses_scored"),
    ("prompt_tokens", "prompt_tokens"),
    ("computed_tokens", "tokens_computed"), ("image_tiles", "image_tiles"))}
got_m["requests"] = dave_total(m1) - dave_total(m0)
got_s = (delta('vprm_key_requests_total{key="dave",status="200"}'),
         delta('vprm_key_requests_total{key="dave",status="400"}'))
got_mq = delta('vprm_key_queue_seconds_total{key="dave"}')
check(abs(got_mq - got_q) <= 2e-6, "/metrics' vprm_key_queue_seconds_total{key=\"dave\"} grew by "
      "the same: %.6f s" % got_mq)
check(got_m == want and got_s == (3, 1) and m1.get('vprm_key_tokens_computed_total{key="dave"}') == u1["computed_tokens"],
      "/metrics' vprm_key_*_total{key=\"dave\"} grew by the same, 3 of status 200 and 1 of 400 (%s %s)"
      % (got_m, got_s))
DAVE2 = "dave-new-key-" + "e" * 12
write("keys.txt", "carol %s\ndave %s max_queued=2\n" % (CAROL, DAVE2))
check(reload("ok"), "dave's key replaced under the same name: reload taken")
u2 = usage_of(DAVE2)
check(u2["requests"] == u1["requests"] + 1 and u2["computed_tokens"] == u1["computed_tokens"],
      "the usage is kept by name: the new key of dave continues the counts (%d after %d)"
      % (u2["requests"], u1["requests"]))

# ---- reloads under load: clients on new and kept-alive connections while SIGHUPs arrive
score = json.dumps({"question": "What is 2 + 3?", "responses": ["2 + 3 = 5\n\nThe answer is 5", "2 + 3 = 6"]})
statuses, errors = [], []
stop = threading.Event()


def client(kept):
    conn = connect() if kept else None
    while not stop.is_set():
        try:
            c = conn or connect()
            st, _ = request(c, "POST", "/v1/score", CAROL, score)
            if not kept:
                c.close()
            statuses.append(st)
        except Exception as e:  # a dropped connection is a failure
            errors.append(repr(e))
            if kept:
                conn = connect()
    if conn:
        conn.close()


threads = [threading.Thread(target=client, args=(i % 2 == 0,)) for i in range(4)]
for t in threads:
    t.start()
n_reloads, n_ok = 24, 0
for i in range(n_reloads):
    if TLS:
        use_pair("ab"[i % 2])
    n_ok += reload("ok")
stop.set()
for t in threads:
    t.join()
bad = [s for s in statuses if s != 200]
check(n_ok == n_reloads and statuses and not bad and not errors,
      "%d reloads during %d scores on new and kept-alive connections: every reload taken, every "
      "answer 200 (%d other statuses, %d errors%s)" % (n_ok, len(statuses), len(bad), len(errors),
                                                      ": " + errors[0] if errors else ""))
if TLS:
    deadline = time.time() + 5
    while time.time() < deadline and metrics().get("vprm_tls_certificates_held") != 1:
        time.sleep(0.05)
    held = metrics().get("vprm_tls_certificates_held")
    check(held == 1, "once those connections closed, one certificate held (%s)" % held)
sys.exit(1 if failures else 0)
