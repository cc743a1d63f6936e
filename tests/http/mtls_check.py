#!/usr/bin/env python3
"""Mutual TLS (--tls-client-ca), against a running daemon on the tiny model started with

  --tls-cert DIR/server.pem --tls-key DIR/server.key --tls-client-ca DIR/ca.pem
  --api-keys-file DIR/grants.txt (certs: the trainer's grants, "cert:NAME weight=3
  max_priority=normal max_queued=2") or DIR/keys.txt (certs+keys: "ops OPS_KEY")

where DIR (made by suite_http.sh with openssl) also holds client certificates and keys:
trainer (CN "rl trainer-1", issued by ca_a for client authentication), srvonly (issued by
ca_a for server authentication only), stranger (issued by ca_b), and ca_a.pem / ca_b.pem,
the authorities (ca.pem starts as a copy of ca_a.pem).

  mtls_check.py PORT PID DIR LOG certs|certs+keys [OPS_KEY]

Checks, one line each (exit 1 when one fails):
  - /health, /ready and /openapi.json answer without a client certificate;
  - every other route without one: 401 in JSON saying that a certificate is needed;
    with the trainer's: 200, and its common name names the client ("cert:rl_trainer-1~"
    and 8 hex digits of the SHA-256 of "rl trainer-1", which has a space)
    in the log line, GET /v1/models' key, and /metrics' vprm_key_* families; certs: its
    grants apply (GET /v1/models' key; a "high" request lowered to normal, said in a
    warning), no key is asked for, and the stranger (no grants line) gets none;
  - a certificate of another authority, or one for servers only: 401 saying why;
  - certs+keys: both are needed, and the API key's name names the client;
  - SIGHUP with ca.pem now ca_b's: the trainer refused on a connection opened before, the
    stranger accepted; a ca.pem that is not PEM: the reload refused, nothing changes.
"""
import hashlib
import http.client
import json
import os
import ssl
import sys
import time

from http_checks import check, failures, keyed_request, replace_file, samples, sighup_counted

PORT, PID, DIR, LOG, MODE = sys.argv[1:6]
PORT, PID = int(PORT), int(PID)
OPS = sys.argv[6] if len(sys.argv) > 6 else None


def context(client):
    ctx = ssl.create_default_context(cafile=os.path.join(DIR, "server.pem"))
    if client:
        ctx.load_cert_chain(os.path.join(DIR, client + ".pem"), os.path.join(DIR, client + ".key"))
    return ctx


def connect(client):
    return http.client.HTTPSConnection("127.0.0.1", PORT, timeout=60, context=context(client))


def request(conn, method, path, key=None, body=None):
    """(status, the answer's JSON, or its text when it is not JSON)."""
    status, data = keyed_request(conn, method, path, key, body)
    try:
        return status, json.loads(data)
    except ValueError:
        return status, data.decode(errors="replace")


def call(client, method, path, key=None, body=None):
    conn = connect(client)
    try:
        return request(conn, method, path, key, body)
    finally:
        conn.close()


def message(answer):
    return answer.get("error", {}).get("message", "") if isinstance(answer, dict) else str(answer)


def metrics():
    for client in ("trainer", "stranger"):  # whichever the server trusts now
        st, text = call(client, "GET", "/metrics", OPS)
        if st == 200:
            break
    return samples(str(text))


def reload(expect):
    return sighup_counted(PID, metrics, expect)


def replace(name, text):
    replace_file(os.path.join(DIR, name), text)


# "rl trainer-1" has a space: its allowed bytes, then '~' and 8 hex digits of its SHA-256
TRAINER = "cert:rl_trainer-1~" + hashlib.sha256(b"rl trainer-1").hexdigest()[:8]
score = json.dumps({"question": "What is 2 + 3?", "responses": ["2 + 3 = 5\n\nThe answer is 5", "2 + 3 = 6"]})
for path in ("/health", "/ready", "/openapi.json"):
    st, _ = call(None, "GET", path)
    check(st == 200, "%s without a client certificate: 200 (%d)" % (path, st))
st, a = call(None, "GET", "/v1/models", OPS)
check(st == 401 and "no client certificate was presented" in message(a),
      "GET /v1/models without a client certificate: 401 saying one is needed (%d %s)" % (st, message(a)))
st, a = call(None, "POST", "/v1/score", OPS, score)
check(st == 401 and "no client certificate" in message(a), "POST /v1/score without one: 401 (%d)" % st)
st, a = call("stranger", "GET", "/v1/models", OPS)
check(st == 401 and "issuer is unknown" in message(a),
      "a certificate of another authority: 401 saying why (%d %s)" % (st, message(a)))
st, a = call("srvonly", "GET", "/v1/models", OPS)
check(st == 401 and "purpose" in message(a),
      "a certificate for servers only: 401 saying why (%d %s)" % (st, message(a)))

if MODE == "certs":
    st, a = call("trainer", "GET", "/v1/models")
    key = a.get("key", {}) if st == 200 else {}
    check(st == 200 and a.get("client_certificates") is True and key.get("name") == TRAINER,
          "the trainer's certificate: 200, named by its common name (%d %s)" % (st, key.get("name")))
    check(a.get("auth") is False and key.get("weight") == 3 and key.get("max_priority") == "normal"
          and key.get("max_queued") == 2, "its certificate's grants apply, and no key is asked "
          "for (auth %s; weight %s, max_priority %s, max_queued %s)" % (a.get("auth"),
          key.get("weight"), key.get("max_priority"), key.get("max_queued")))
    st, a = call("trainer", "POST", "/v1/score", None,
                 json.dumps(dict(json.loads(score), priority="high")))
    check(st == 200 and any("lowered" in w for w in a.get("warnings", [])),
          "its \"high\" request runs at normal, the answer says so (%d %s)" % (st, a.get("warnings")))
    st, a = call("trainer", "POST", "/v1/score/batch", None,
                 json.dumps({"requests": [json.loads(score)] * 3}))
    check(st == 413 and "over the client certificate's max_queued=2 (%s)" % TRAINER in message(a),
          "a batch over its max_queued: 413 naming its certificate, not an API key (%d %s)"
          % (st, message(a)))
    m0 = metrics()
    st, a = call("trainer", "POST", "/v1/score", None, score)
    check(st == 200 and len(a.get("results", [])) == 2, "the trainer scores (%d)" % st)
    deadline = time.time() + 5
    while time.time() < deadline and "POST /v1/score 200" not in open(LOG).read():
        time.sleep(0.05)
    line = [l for l in open(LOG).read().splitlines() if "POST /v1/score 200" in l]
    check(line and line[-1].endswith("key=" + TRAINER), "its log line names it (%s)" % (line[-1:] or ""))
    m = metrics()
    scored = m.get('vprm_key_responses_scored_total{key="%s"}' % TRAINER, 0) - \
        m0.get('vprm_key_responses_scored_total{key="%s"}' % TRAINER, 0)
    check(m.get("vprm_tls_client_cas") == 1
          and m.get('vprm_key_requests_total{key="%s",status="200"}' % TRAINER, 0) >= 2
          and scored == 2,
          "/metrics: one client CA, the trainer's requests and its 2 responses scored by its "
          "name (%s)" % scored)
else:
    st, a = call("trainer", "GET", "/v1/models")
    check(st == 401 and "API key" in message(a), "certs+keys: the certificate without the key: 401 (%d)" % st)
    st, a = call("trainer", "GET", "/v1/models", "wrong-key-1234567")
    check(st == 401 and "API key" in message(a), "with a wrong key: 401 (%d)" % st)
    st, a = call("trainer", "POST", "/v1/score", OPS, score)
    check(st == 200, "with both: 200 (%d)" % st)
    st, a = call("trainer", "GET", "/v1/models", OPS)
    name = a.get("key", {}).get("name") if isinstance(a, dict) else None
    check(st == 200 and name == "ops", "the API key's name names the client (%s)" % name)
    m = metrics()
    refused = {k: v for k, v in m.items() if k.startswith("vprm_key_requests_total") and 'status="401"' in k}
    check(not refused, "a good key with a refused certificate: its 401s counted under no name (%s)" % refused)

# a reload that trusts only ca_b: the trainer's open connection is refused from its next request
kept = connect("trainer")
st1, _ = request(kept, "GET", "/v1/models", OPS)
sock = kept.sock  # http.client would reconnect quietly: the same socket proves the same connection
replace("ca.pem", open(os.path.join(DIR, "ca_b.pem")).read())
check(reload("ok"), "SIGHUP with ca.pem now the other authority's: reload taken")
st2, a = request(kept, "GET", "/v1/models", OPS)
same = kept.sock is sock
kept.close()
check(st1 == 200 and st2 == 401 and same and "issuer is unknown" in message(a),
      "the trainer's connection opened before it: 200, then 401 on the same connection (%d %d %s)"
      % (st1, st2, same))
st, a = call("stranger", "GET", "/v1/models", OPS)
name = a.get("key", {}).get("name") if st == 200 else None
check(st == 200 and name == ("cert:stranger" if MODE == "certs" else "ops"),
      "the other authority's client: 200, named %s (%d)" % (name, st))
if MODE == "certs":
    key = a.get("key", {})
    check(key.get("weight") == 1 and key.get("max_priority") == "high" and key.get("max_queued") is None,
          "a client with no grants line: none (%s)" % key)
replace("ca.pem", "not a certificate\n")
check(reload("failed"), "a ca.pem that is not PEM: reload refused")
st_s, _ = call("stranger", "GET", "/v1/models", OPS)
st_t, _ = call("trainer", "GET", "/v1/models", OPS)
check((st_s, st_t) == (200, 401), "the refused reload changed nothing (%d %d)" % (st_s, st_t))
text = open(LOG).read()
check("option tls_client_ca" in text and "is not a PEM file" in text, "the refusal is logged naming the option")
sys.exit(1 if failures else 0)
