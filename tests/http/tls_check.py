#!/usr/bin/env python3
"""HTTPS (--tls-cert, --tls-key), against a running daemon on the tiny model started with
--api-key KEY --batch-tokens 12000 --header-timeout-s 2 and a certificate for 127.0.0.1:

  tls_check.py PORT KEY CAFILE REQUEST CLI_ANSWER LOG

Python's ssl module is the client, verifying the server's certificate against CAFILE:
  - /health, /openapi.json and a score over HTTPS; the score equals `vprm score`'s answer
    for the same REQUEST (CLI_ANSWER; the CLI prints 9 digits);
  - a plain-HTTP request on the HTTPS port gets no HTTP answer, and HTTPS goes on working;
  - TLS 1.0 and 1.1 handshakes are refused, 1.2 and 1.3 taken;
  - a client that closes its TLS connection (close_notify, then FIN) while its request
    waits in the queue has it cancelled (/metrics vprm_cancelled_total, the log line),
    although the close_notify record sits unread on the suspended socket;
  - a connection that never completes its TLS handshake is closed after --header-timeout-s.
Prints one line per check; exit 1 when one fails.
"""
import http.client
import json
import re
import socket
import ssl
import sys
import threading
import time

from http_checks import auth_headers, check, exchange, failures

PORT, KEY, CAFILE, REQUEST, CLI_ANSWER, LOG = sys.argv[1:7]
PORT = int(PORT)
HDR = auth_headers(KEY)
CTX = ssl.create_default_context(cafile=CAFILE)


def call(method, path, body=None, timeout=120):
    conn = http.client.HTTPSConnection("127.0.0.1", PORT, timeout=timeout, context=CTX)
    try:
        conn.request(method, path, body=body, headers=HDR)
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def metric(name):
    text = call("GET", "/metrics")[1].decode()
    m = re.search(r"^" + re.escape(name) + r" (\S+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


st, body = call("GET", "/health")
check(st == 200 and json.loads(body)["status"] == "ok", "GET /health over HTTPS, certificate verified")
st, body = call("GET", "/openapi.json")
check(st == 200 and json.loads(body)["openapi"] == "3.1.0", "GET /openapi.json over HTTPS")
st, body = call("POST", "/v1/score", open(REQUEST, "rb").read())
cli = json.load(open(CLI_ANSWER))
ok = st == 200
if ok:
    got = json.loads(body)
    ok = len(got["results"]) == len(cli["results"]) > 0 and all(
        abs(x - y) <= 1e-8 * max(1.0, abs(y))
        for a, b in zip(cli["results"], got["results"]) for x, y in zip(a["step_scores"], b["step_scores"]))
check(ok, "POST /v1/score over HTTPS: the CLI's scores (status %d)" % st)

# plain HTTP on the HTTPS port: no HTTP status line comes back
refused0 = metric("vprm_client_errors_by_http_library_total")
got = exchange(PORT, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n", timeout=10)
check(not got.startswith(b"HTTP/"), "plain HTTP on the HTTPS port gets no HTTP answer (%r)" % got[:40])
st, _ = call("GET", "/health")
check(st == 200, "HTTPS still served after the plain-HTTP attempt")
refused1 = metric("vprm_client_errors_by_http_library_total")
log = open(LOG).read()
check(refused1 == refused0 + 1 and "WARN [-] microhttpd: Error: received handshake" not in log,
      "the failed handshake counted in vprm_client_errors_by_http_library_total (%g -> %g), "
      "not warned in the log" % (refused0, refused1))

# TLS 1.0 and 1.1 (deprecated, RFC 8996) are not negotiated; 1.2 and 1.3 are
for version, name in ((ssl.TLSVersion.TLSv1, "TLS 1.0"), (ssl.TLSVersion.TLSv1_1, "TLS 1.1"),
                      (ssl.TLSVersion.TLSv1_2, "TLS 1.2"), (ssl.TLSVersion.TLSv1_3, "TLS 1.3")):
    ctx = ssl.create_default_context(cafile=CAFILE)
    old = version < ssl.TLSVersion.TLSv1_2
    if old:
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")  # this client's own floor, not the server's
    ctx.minimum_version = ctx.maximum_version = version
    try:
        with socket.create_connection(("127.0.0.1", PORT), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                got = tls.version()
    except (ssl.SSLError, OSError) as e:
        got = "refused (%s)" % e.__class__.__name__
    if old:
        check(got.startswith("refused"), "a %s handshake refused (%s)" % (name, got))
    else:
        check(got == name.replace(" ", "v"), "a %s handshake accepted (%s)" % (name, got))


# cancel on disconnect over TLS: three requests of one pass each; the third, queued behind
# the other two, is closed by its client (close_notify, then FIN) and must be cancelled
def big(tag, words):
    steps = lambda j: ["%s step %d: " % (tag, k) + " ".join("w%d" % ((j + k * 7 + i) % 97)
                                                             for i in range(words // 8)) for k in range(8)]
    return json.dumps({"question": "%s: add the numbers." % tag, "responses": [steps(j) for j in range(4)]})


def n_tokens(body):
    st, b = call("POST", "/v1/tokenize", body)
    return sum(len(r["input_ids"]) for r in json.loads(b)["responses"]) if st == 200 else 0


words = 64
while n_tokens(big("probe", words)) < 0.7 * 12000:
    words += 64
cancelled0 = metric("vprm_cancelled_total")
ahead = [threading.Thread(target=lambda t=t: call("POST", "/v1/score", big(t, words)))
         for t in ("first", "second")]
for t in ahead:
    t.start()
    time.sleep(0.1)  # the first request is in its pass, the second queued
raw = socket.create_connection(("127.0.0.1", PORT), timeout=30)
tls = CTX.wrap_socket(raw, server_hostname="127.0.0.1")
payload = big("third", words).encode()
tls.sendall(b"POST /v1/score HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " + KEY.encode() +
            b"\r\nContent-Type: application/json\r\nContent-Length: " + str(len(payload)).encode() +
            b"\r\n\r\n" + payload)
time.sleep(0.1)  # received whole, queued behind the other two
tls.settimeout(0.05)
try:
    tls.unwrap()  # sends close_notify, then waits for the server's, which does not come
except (ssl.SSLError, OSError):
    pass
tls.close()  # then the FIN
for t in ahead:
    t.join()
deadline = time.time() + 10
cancelled = cancelled0
while time.time() < deadline and cancelled == cancelled0:
    time.sleep(0.2)
    cancelled = metric("vprm_cancelled_total")
log = open(LOG).read()
check(cancelled == cancelled0 + 1 and "(cancelled: the client disconnected while waiting)" in log,
      "a TLS client gone while queued (close_notify, then FIN) is cancelled "
      "(vprm_cancelled_total %g -> %g)" % (cancelled0, cancelled))

# a TCP connection that never sends its TLS ClientHello: closed at the head deadline
t0 = time.time()
s = socket.create_connection(("127.0.0.1", PORT), timeout=30)
try:
    closed = s.recv(1) == b""
except ConnectionResetError:
    closed = True
took = time.time() - t0
s.close()
check(closed and 1.5 <= took <= 6.0, "a connection with no TLS handshake closed after %.1f s "
      "(--header-timeout-s 2)" % took)
sys.exit(1 if failures else 0)
