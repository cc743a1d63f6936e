#!/bin/sh
# HTTP suite: the real daemon (release binary, then the ASan/UBSan one) on ports chosen at
# run time (--port 0, the port read from the "listening on" line), with the tiny model.
#   A  strict limits + API key: the warm-up (with an image) before /ready, every error
#      status of API.md (tests/tools/http_api.c), the OpenAPI document against the
#      daemon's answers (tests/http/openapi_check.py),
#      misbehaving clients (http_abuse.c), the CLI and HTTP give the same scores
#   B  defaults: 64 concurrent clients equal a serial run (http_concurrency.c), vprm bench
#   P  request priorities: high overtakes queued normal work, low waits behind it
#   S  memory over 4,800 mixed requests: the heap in use (less the caches) stays flat
#   C  config file + environment: queue full (429) and queue timeout (503) under load,
#      image URLs to a loopback server refused
#   D  image URLs allowed: fetched, redirect/size/status limits, a batch mixing URL and
#      base64 items, tokenize; D2 slow image hosts hold no HTTP thread; D3 (ASan) the
#      fetch queue's 429, a client gone during its fetch, SIGTERM during fetches
#   E  SIGTERM while busy: in-flight work answered, new requests 503, exit 0
#   F  the ASan binary: A's checks, a short concurrent run, clean exit (no leak report)
#   H  a device that fails for good (the CPU backend's VPRM_TEST_DEVICE_FAILURE_AFTER hook
#      plays a lost GPU): 503s naming it, /ready 503, /health and /metrics say so; by
#      default the server then exits 3 for its supervisor to restart it
#   W  a pass past --pass-timeout-s (VPRM_TEST_PASS_STALL_MS plays a hung GPU): /ready 503
#      while it runs; by default exit 3 at once
#   J  image limits too small for the warm-up's picture: the text warm-up alone, then ready
#   K  a request whose pass overflows a narrow number format (the CPU backend's
#      VPRM_TEST_OVERFLOW_AFTER hook plays fp16 on a GPU): widened once, exact scores
#   T  HTTPS: refusals of bad certificates and keys at start, then scores over TLS
#   M  mutual TLS (--tls-client-ca): client certificates made with openssl
#   R  SIGHUP reloads the API keys file and the TLS certificate while serving
# Environment: VPRM, VPRM_ASAN, VPRM_TOOLS, PYTHON, VPRM_TMP (see tests/run_all.sh).
set -u
T="${VPRM_TMP:?VPRM_TMP must be set}/http"
. tests/lib/daemon_ready.sh # daemon_ready: the port, then /ready
mkdir -p "$T"
PY="${PYTHON:-/usr/bin/python3}"
KEY=test-key-123
pass=0
fail=0
ok() { pass=$((pass + 1)); echo "ok: $1"; }
bad() { fail=$((fail + 1)); echo "FAIL: $1"; }
# refused SECTION DIR LABEL PATTERN serve-flags...: `vprm serve` refuses to start (exit 1
# or 2, not a timeout) with a message matching PATTERN; its output in DIR/refused.out
refused() {
    sec=$1; dir=$2; label=$3; pattern=$4; shift 4
    timeout 30 "$VPRM" serve --model "$MODEL" --port 0 --no-warmup "$@" >"$dir/refused.out" 2>&1
    rc=$?
    if [ "$rc" = 0 ] || [ "$rc" = 124 ]; then bad "$sec: $label: the server started (exit $rc)"
    elif grep -q -- "$pattern" "$dir/refused.out"; then ok "$sec: $label: refused at start, naming $pattern"
    else bad "$sec: $label: exit $rc, $(tail -3 "$dir/refused.out")"; fi
}
PIDS=""
cleanup() { for p in $PIDS; do kill -9 "$p" 2>/dev/null; done; }
trap cleanup EXIT

for need in "${VPRM:-}" "${VPRM_ASAN:-}" "${VPRM_TOOLS:-}/http_api" "${VPRM_TOOLS:-}/http_abuse" \
    "${VPRM_TOOLS:-}/http_concurrency" "${VPRM_TOOLS:-}/http_fire"; do
    if [ ! -x "$need" ]; then
        echo "FAIL: missing executable '$need' (build: make tools asan)"
        exit 1
    fi
done
for cmd in curl "$PY"; do
    command -v "$cmd" >/dev/null || { echo "FAIL: '$cmd' is not installed"; exit 1; }
done

MODEL="$T/tiny"
if ! "$VPRM" mkmodel --scale tiny --seed 1 --tokenizer engine/assets/tiny_tokenizer \
    --out "$MODEL" --force >"$T/mkmodel.log" 2>&1; then
    echo "FAIL: vprm mkmodel"; cat "$T/mkmodel.log"; exit 1
fi

# start_daemon NAME BINARY [serve flags...]: sets PID, PORT, URL; waits for /ready 200.
start_daemon() {
    name=$1; bin=$2; shift 2
    rm -f "$T/$name.out" # a previous run's port could be read before the shell truncates it
    "$bin" serve --model "$MODEL" --host 127.0.0.1 --port 0 "$@" >"$T/$name.out" 2>"$T/$name.log" &
    PID=$!
    PIDS="$PIDS $PID"
    daemon_ready "$T/$name.out" "$PID" 600
    case $? in
    1) bad "$name: no 'listening on' line"; tail -5 "$T/$name.log"; return 1 ;;
    2) bad "$name: /ready never answered 200 (last $READY_CODE)"; tail -5 "$T/$name.log"; return 1 ;;
    esac
    echo "   ($name listening on port $PORT, pid $PID)"
    return 0
}

# stop_daemon NAME: SIGTERM, expects exit status 0.
stop_daemon() {
    kill -TERM "$PID" 2>/dev/null
    wait "$PID"
    rc=$?
    if [ "$rc" = 0 ]; then ok "$1: SIGTERM -> exit 0"; else bad "$1: exit status $rc after SIGTERM"; tail -5 "$T/$1.log"; fi
}

# run_tool LABEL COMMAND...: a C test program; its last line is "name: N passed, N failed".
run_tool() {
    label=$1; shift
    if "$@" >"$T/tool.out" 2>&1; then ok "$label ($(tail -1 "$T/tool.out"))"
    else bad "$label"; tail -25 "$T/tool.out"; fi
    grep -v "passed, .* failed" "$T/tool.out" | grep -v "CHECK failed" | sed 's/^/   /' | head -5
}

# post PATH BODY_FILE [curl args]: prints "STATUS" and leaves the body in $T/post.body.
post() {
    path=$1; file=$2; shift 2
    curl -s -o "$T/post.body" -w '%{http_code}' -H "Authorization: Bearer $KEY" \
        -H 'Content-Type: application/json' --data-binary @"$file" "$@" "$URL$path"
}

STRICT="--api-key $KEY --max-body-bytes 2M --max-responses 8 --max-steps 16 --max-images 2
  --max-image-bytes 256K --max-image-pixels 1000000 --max-text-bytes 8K --max-request-tokens 3000
  --max-batch-requests 4 --max-tiles 6 --connection-timeout-s 2 --http-threads 4 --batch-tiles 8
  --max-json-values 100000 --body-timeout-s 3 --header-timeout-s 3 --max-header-bytes 16K
  --max-bodies-bytes 2M"

# ---- start-up refusals and help
if "$VPRM" serve --model "$MODEL" --port 70000 >"$T/bad.out" 2>&1; then
    bad "serve --port 70000 was accepted"
elif grep -q "option port" "$T/bad.out"; then ok "invalid option refused at start, naming it"
else bad "refusal does not name the option: $(cat "$T/bad.out")"; fi
if VPRM_MAX_QUEUE=lots "$VPRM" serve --model "$MODEL" >"$T/bad.out" 2>&1; then
    bad "VPRM_MAX_QUEUE=lots was accepted"
elif grep -q "VPRM_MAX_QUEUE" "$T/bad.out"; then ok "invalid environment value refused, naming it"
else bad "env refusal: $(cat "$T/bad.out")"; fi
"$VPRM" serve --help >"$T/help.out" 2>&1
missing=0
for o in max-body-bytes VPRM_MAX_BODY_BYTES max-queue VPRM_QUEUE_TIMEOUT_MS api-key VPRM_BATCH_TOKENS \
    allow-image-urls url-max-redirects log-level "default: 16384"; do
    grep -q -- "$o" "$T/help.out" || missing=$((missing + 1))
done
[ $missing = 0 ] && ok "serve --help lists options, environment names, defaults" || bad "serve --help lacks $missing items"

# half_close: a request of seconds of vision sent, then only the sending side shut (TCP
# half-close); prints the answer's status line, or "closed" when none came
cat >"$T/half_close.py" <<'EOF'
import io, base64, json, random, socket, sys
from PIL import Image
port, key = int(sys.argv[1]), sys.argv[2]
random.seed(11)
img = Image.new("RGB", (60, 40))
img.putdata([(random.randrange(256), random.randrange(256), random.randrange(256)) for _ in range(60 * 40)])
buf = io.BytesIO()
img.save(buf, "PNG")
body = json.dumps({"question": "What is shown?", "max_tiles": 6, "responses": ["A square.\n\nRed."],
                   "image": "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()}).encode()
s = socket.create_connection(("127.0.0.1", port))
s.sendall(b"POST /v1/score HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + key.encode() +
          b"\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: " +
          str(len(body)).encode() + b"\r\n\r\n" + body)
s.shutdown(socket.SHUT_WR)
s.settimeout(120)
data = b""
while True:
    chunk = s.recv(65536)
    if not chunk:
        break
    data += chunk
print(data.split(b"\r\n", 1)[0].decode() if data else "closed")
EOF
half_close() { "$PY" "$T/half_close.py" "$PORT" "$KEY" 2>&1; }

# head_status SHAPE BYTES: the answer to a GET /health with a head of that size
# (tests/http/head_status.py: "200", "431 json", "431 html", "none")
head_status() { "$PY" tests/http/head_status.py "$PORT" "$1" "$2" 2>&1 | tail -1; }

# ---- A: strict limits, release binary
# shellcheck disable=SC2086
if start_daemon A "$VPRM" $STRICT; then
    # /ready came after a warm-up pass with an image (its scores checked in [0, 1])
    grep -q "warm-up pass: 2 responses, .* one image tile" "$T/A.log" \
        && ok "A: the warm-up pass before /ready scored a request with an image" \
        || bad "A: no warm-up with an image in the log"
    # first, in a fresh process (freed heap would hide it): GET /health needs no key, and a
    # body sent with it is dropped, not held (8 uploads of just under max_body_bytes held
    # 15 MB; with the defaults, 512 connections x 64 MiB)
    rss0=$(awk '/^VmRSS/ {print $2}' /proc/"$PID"/status)
    "$PY" -c "
import socket, sys, time
socks = []
for i in range(8):
    s = socket.create_connection(('127.0.0.1', int(sys.argv[1])))
    s.sendall(b'GET /health HTTP/1.1\\r\\nHost: x\\r\\nContent-Length: 2000000\\r\\n\\r\\n' + b'x' * 1990000)
    socks.append(s)
time.sleep(1)
rss = [l for l in open('/proc/%s/status' % sys.argv[2]) if l.startswith('VmRSS')][0].split()[1]
open(sys.argv[3], 'w').write(rss)" "$PORT" "$PID" "$T/rss1"
    rss1=$(cat "$T/rss1")
    [ $((rss1 - rss0)) -lt 6000 ] && ok "A: bodies sent with GET /health are dropped (RSS +$((rss1 - rss0)) KB for 8 x 1.9 MB)" \
        || bad "A: bodies sent with GET /health held: RSS +$((rss1 - rss0)) KB for 8 x 1.9 MB"
    run_tool "A: API contract and every error status" "$VPRM_TOOLS/http_api" "$URL" "$KEY"
    # the OpenAPI document against this daemon's answers (python3-jsonschema the validator)
    if "$PY" tests/http/openapi_check.py "$PORT" "$KEY" "$VPRM" "$MODEL" >"$T/openapi.out" 2>&1; then
        ok "A: GET /openapi.json describes every route, field and answer ($(grep -c '^ok:' "$T/openapi.out") checks; $(tail -1 "$T/openapi.out"))"
    else bad "A: the OpenAPI document and the server differ"; grep -v '^ok:' "$T/openapi.out" | tail -15; fi
    run_tool "A: misbehaving clients" "$VPRM_TOOLS/http_abuse" 127.0.0.1 "$PORT" "$KEY" 2 2097152
    hc=$(half_close)
    [ "$hc" = closed ] && ok "A: a client that half-closes after its request is taken for gone (cancelled)" \
        || bad "A: half-close with cancel_on_disconnect: $hc"
    # libmicrohttpd has 16K + 4K a connection; about 64 bytes a header or cookie of its own
    got="$(head_status one 12000), $(head_status one 18000), $(head_status one 25000)"
    got="$got, $(head_status tiny 1500), $(head_status tiny 2500), $(head_status cookie 2000), $(head_status cookie 4000)"
    [ "$got" = "200, 431 json, 431 html, 200, 431 json, 200, 431 json" ] \
        && ok "A: --max-header-bytes 16K: heads under it answered, over it our 431 (one header of 18 KB, 250 tiny headers, 153 cookies), far over libmicrohttpd's" \
        || bad "A: --max-header-bytes 16K: one header 12/18/25 KB, 150/250 tiny headers, 76/153 cookies: $got"
    # a Content-Length that is not a number, or too large: libmicrohttpd answers (its own
    # page) and closes; a client's doing, so logged at debug, not warned, and counted once
    # each in vprm_client_errors_by_http_library_total
    lib_errors() { curl -s -H "Authorization: Bearer $KEY" "$URL/metrics" \
        | sed -n 's/^vprm_client_errors_by_http_library_total \([0-9]*\)$/\1/p'; }
    le0=$(lib_errors)
    cl=$(cd tests/http && "$PY" -c 'import sys
from http_checks import exchange
for v in (b"abc", b"99999999999999999999999"):
    got = exchange(int(sys.argv[1]), b"POST /v1/score HTTP/1.1\r\nHost: x\r\nContent-Length: " + v + b"\r\n\r\n")
    print(got.split(b" ", 2)[1].decode() if got.startswith(b"HTTP/") else "none", end=" ")' "$PORT")
    le1=$(lib_errors)
    if [ "$cl" = "400 413 " ] && ! grep -q "WARN.*Content-Length" "$T/A.log" \
        && [ -n "$le0" ] && [ "$((le1 - le0))" = 2 ]; then
        ok "A: a Content-Length that is not a number 400, one too large 413, neither warned in the log, both counted"
    else bad "A: bad Content-Length: $cl; counted $le0 -> $le1; $(grep "WARN.*Content-Length" "$T/A.log" | head -1)"; fi
    # a body declared 4 MB over --max-body-bytes, written whole before the answer is read
    # (Python's http.client): read and dropped, then 413 (answered at once, the client got
    # a broken pipe most times)
    big=$("$PY" -c 'import http.client, sys
got = []
for i in range(5):
    c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=60)
    try:
        c.request("POST", "/v1/score", body=b"{" + b" " * (6 << 20) + b"}", headers={"Authorization": "Bearer " + sys.argv[2]})
        r = c.getresponse()
        got.append(str(r.status) if b"max_body_bytes" in r.read() else "other")
    except Exception as e:
        got.append(type(e).__name__)
    c.close()
print(" ".join(got))' "$PORT" "$KEY")
    [ "$big" = "413 413 413 413 413" ] && ok "A: a body 4 MB over max_body_bytes sent whole: 413 every time" \
        || bad "A: a body 4 MB over max_body_bytes: $big"
    # the CLI and the daemon give the same scores and the same token ids
    printf '%s' '{"question": "Is 7 prime?", "responses": ["7 has no divisors but 1 and 7.\n\nSo yes.", ["It is even.", "So no."]], "return_logits": true}' >"$T/req.json"
    "$VPRM" score --model "$MODEL" "$T/req.json" >"$T/cli.json" 2>"$T/cli.err"
    st=$(post /v1/score "$T/req.json"); cp "$T/post.body" "$T/http.json"
    "$VPRM" tokenize --model "$MODEL" "$T/req.json" >"$T/cli_tok.json" 2>>"$T/cli.err"
    st2=$(post /v1/tokenize "$T/req.json"); cp "$T/post.body" "$T/http_tok.json"
    if [ "$st" = 200 ] && [ "$st2" = 200 ] && "$PY" - "$T" <<'EOF'
import json, sys
d = sys.argv[1]
cli, http = json.load(open(d + "/cli.json")), json.load(open(d + "/http.json"))
# the CLI prints 9 significant digits, the daemon 17: equal up to that printing
def same(x, y):
    return abs(x - y) <= 1e-8 * max(1.0, abs(y))
for a, b in zip(cli["results"], http["results"]):
    assert same(a["score"], b["score"]), (a, b)
    assert all(same(x, y) for x, y in zip(a["step_scores"], b["step_scores"])), (a, b)
    assert all(same(x[0], y[0]) and same(x[1], y[1]) for x, y in zip(a["step_logits"], b["step_logits"]))
assert len(cli["results"]) == len(http["results"]) == 2
assert cli["ranking"] == http["ranking"]
ct, ht = json.load(open(d + "/cli_tok.json")), json.load(open(d + "/http_tok.json"))
for a, b in zip(ct["responses"], ht["responses"]):
    assert a["input_ids"] == b["input_ids"] and a["score_positions"] == b["score_positions"]
    assert a["pieces"] == b["pieces"]
assert len(ct["responses"]) == len(ht["responses"]) == 2
EOF
    then ok "A: vprm score / tokenize and the HTTP answers agree (same ids; scores to the CLI's 9 digits)"
    else bad "A: CLI and HTTP differ (HTTP $st/$st2; see $T/cli.json $T/http.json; $(head -3 "$T/cli.err"))"; fi
    stop_daemon A
    grep -q "POST /v1/score 413" "$T/A.log" && grep -q "terminated: connection timeout" "$T/A.log" \
        && ok "A: one log line per request (status, timeouts)" || bad "A: request log lines missing"
    if grep -q '"question"' "$T/A.log"; then bad "A: a request body reached the log"; else ok "A: no bodies in the log"; fi
fi

# ---- B: defaults, 64 concurrent clients vs a serial run; the load benchmark; the
# request-head deadline on kept-alive connections (with the 30 s idle timeout)
if start_daemon B "$VPRM" --api-key "$KEY" --no-cancel-on-disconnect --header-timeout-s 2; then
    run_tool "B: 64 concurrent clients equal the serial run" \
        "$VPRM_TOOLS/http_concurrency" "$URL" "$KEY" 64 1
    hc=$(half_close)
    case "$hc" in "HTTP/1.1 200"*) ok "B: --no-cancel-on-disconnect answers a client that half-closed ($hc)" ;;
        *) bad "B: half-close with --no-cancel-on-disconnect: $hc" ;; esac
    got="$(head_status one 26000), $(head_status one 30000), $(head_status one 40000)"
    [ "$got" = "200, 431 json, 431 html" ] \
        && ok "B: the default --max-header-bytes (28K): a 26 KB header answered, 30 KB our 431, 40 KB libmicrohttpd's" \
        || bad "B: default --max-header-bytes: 26/30/40 KB header: $got (want 200, 431 json, 431 html)"
    if "$PY" tests/http/kept_alive_heads.py "$PORT" >"$T/heads.out" 2>&1; then
        ok "B: kept-alive connection: idle past --header-timeout-s kept, a trickled head closed ($(cat "$T/heads.out"))"
    else bad "B: request-head deadline on a kept-alive connection: $(tail -3 "$T/heads.out")"; fi
    if "$VPRM" bench --url "$URL" --api-key "$KEY" --workload W3 --clients 8 --seconds 2 \
        --pool 8 --max-side 448 --max-tiles 1 --words-per-step 6 >"$T/bench.out" 2>&1 \
        && grep -q "requests/s" "$T/bench.out" && grep -q "jobs per pass" "$T/bench.out"; then
        ok "B: vprm bench --url W3 ($(grep throughput "$T/bench.out"))"
    else bad "B: vprm bench"; tail -5 "$T/bench.out"; fi
    # --json: stdout is one JSON object naming the device (PERF.md: every figure names it);
    # a trailing slash on the URL is the same server
    if "$VPRM" bench --url "$URL/" --api-key "$KEY" --workload W2 --clients 2 --requests 2 \
        --words-per-step 6 --json >"$T/bench.json" 2>"$T/bench.err" && "$PY" -c "
import json, sys
j = json.load(open(sys.argv[1]))
assert j['ok'] == 2 and j['workload'] == 'W2' and j['device'].startswith('cpu'), j" "$T/bench.json" \
        && grep -q "device cpu" "$T/bench.err"; then
        ok "B: vprm bench --url --json: one JSON object on stdout, the device named"
    else bad "B: bench --json: $(cat "$T/bench.json") $(tail -3 "$T/bench.err")"; fi
    stop_daemon B
fi

# ---- P: request priorities: "high" overtakes queued normal work, "low" waits behind it;
# the refusals of a wrong value (passes of one ~9,000-token request each)
if start_daemon P "$VPRM" --api-key "$KEY" --batch-tokens 12000; then
    if "$PY" tests/http/priority.py "$PORT" "$KEY" "$T/P.log" >"$T/prio.out" 2>&1; then
        ok "P: priorities ($(grep -c '^ok' "$T/prio.out") checks; $(grep 'overtook' "$T/prio.out" | sed 's/.*order \([^(]*\).*/order \1/'))"
    else bad "P: priorities: $(grep -v '^ok' "$T/prio.out" | tail -5)"; fi
    stop_daemon P
fi

# ---- Q: fair sharing between API keys: one key's backlog does not hold back another's
# requests (tests/http/fair_share.py; on by default, then --no-fair-share for contrast)
FS="$T/fair"
rm -rf "$FS" && mkdir -p "$FS"
printf 'alice alice-key-%s-01\nbob bob-key-%s-002\ncarol carol-key-%s-3 weight=3\n' $$ $$ $$ >"$FS/keys.txt"
chmod 600 "$FS/keys.txt"
for fair in on off; do
    if [ $fair = on ]; then extra=""; else extra="--no-fair-share"; fi
    # shellcheck disable=SC2086 # extra is one word or none
    if start_daemon "Q$fair" "$VPRM" --api-keys-file "$FS/keys.txt" --batch-tokens 12000 $extra; then
        if "$PY" tests/http/fair_share.py "$PORT" "alice-key-$$-01" "bob-key-$$-002" \
            "carol-key-$$-3" $fair >"$T/fair_$fair.out" 2>&1; then
            ok "Q: fair sharing $fair ($(grep -c '^ok' "$T/fair_$fair.out") checks; $(grep -o 'order .*' "$T/fair_$fair.out"))"
        else bad "Q: fair sharing $fair: $(grep -v '^ok' "$T/fair_$fair.out" | tail -5)"; fi
        stop_daemon "Q$fair"
    fi
done

# ---- TQ: a request's image tiles admitted from the images' headers, before any is decoded:
# one whose tiles alone pass --max-queued-tiles is refused (413) instead of being decoded
# into memory the queue's bound does not allow; one within it is scored. Request bodies
# held at once bounded by --max-bodies-bytes
if start_daemon TQ "$VPRM" --api-key "$KEY" --max-queued-tiles 13 --max-bodies-bytes 3M; then
    "$PY" - "$T" <<'EOF'
import base64, io, json, sys
from PIL import Image
d = sys.argv[1]
buf = io.BytesIO()
Image.new("RGB", (4, 3), (200, 30, 90)).save(buf, "PNG")  # a 4x3 grid + thumbnail: 13 tiles
img = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
one = {"question": "What is shown?", "image": img, "responses": ["A square.", "A circle."]}
json.dump(one, open(d + "/t_one.json", "w"))
json.dump({"requests": [one, one]}, open(d + "/t_two.json", "w"))
EOF
    st=$(post /v1/score/batch "$T/t_two.json")
    [ "$st" = 413 ] && grep -q "26 image tiles" "$T/post.body" \
        && grep -q "max_queued_tiles = 13" "$T/post.body" \
        && ok "TQ: a batch whose images make 26 tiles, over max_queued_tiles 13: 413 before decoding" \
        || bad "TQ: tile admission: $st $(cat "$T/post.body")"
    st=$(post /v1/score "$T/t_one.json")
    [ "$st" = 200 ] && ok "TQ: a request of 13 tiles, at the bound, scored" \
        || bad "TQ: 13 tiles: $st $(head -c 300 "$T/post.body")"
    # request bodies held at once (--max-bodies-bytes 3M): an upload declaring 2.5 MB that
    # sends 1 KB holds its first MiB only (a declaration alone does not take the budget);
    # sent but for its last byte it holds 2.5 MB, and a 1 MB body then gets 429 before it is
    # read; once the first is done (its 400: not JSON), the bytes are given back
    if "$PY" - "$PORT" "$KEY" >"$T/bodies.out" 2>&1 <<'EOF'; then
import http.client, re, socket, sys, time
port, key = int(sys.argv[1]), sys.argv[2]
def metric(name):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", "/metrics", headers={"Authorization": "Bearer " + key})
    m = re.search(r"^%s (\S+)$" % re.escape(name), c.getresponse().read().decode(), re.M)
    return float(m.group(1)) if m else None
def head(n):
    return ("POST /v1/score HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
            "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % (key, n)).encode()
big, mid = 2500000, 1000000
a = socket.create_connection(("127.0.0.1", port))
a.sendall(head(big) + b"x" * 1000)
time.sleep(0.5)
held = metric("vprm_request_body_bytes")
assert held and 1000 <= held <= (1 << 20) + 16, "held %s after 1 KB of a declared 2.5 MB" % held
a.sendall(b"x" * (big - 1001))
time.sleep(0.5)
held = metric("vprm_request_body_bytes")
assert held and held >= big - 1, "held %s with 2.5 MB sent" % held
b = socket.create_connection(("127.0.0.1", port), timeout=10)
b.sendall(head(mid))
answer = b.recv(4096).decode("latin-1")
assert answer.startswith("HTTP/1.1 429") and "retry-after" in answer.lower() \
    and "max_bodies_bytes=3145728" in answer, answer[:400]
assert metric("vprm_rejected_request_bodies_total") == 1
a.sendall(b"x")  # its last byte: a 400 (not JSON), the bytes given back
assert a.recv(4096).startswith(b"HTTP/1.1 400")
a.close()
b.close()
time.sleep(0.3)
assert metric("vprm_request_body_bytes") == 0, metric("vprm_request_body_bytes")
c = socket.create_connection(("127.0.0.1", port), timeout=10)
c.sendall(head(mid) + b"x" * mid)
assert c.recv(4096).startswith(b"HTTP/1.1 400")
# a chunked body of exactly the budget fits (its buffer grows to what it needs, not past)
d = socket.create_connection(("127.0.0.1", port), timeout=10)
d.sendall(("POST /v1/score HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
           "Transfer-Encoding: chunked\r\n\r\n" % key).encode())
left = 3 << 20
while left:
    n = min(left, 65536)
    d.sendall(b"%x\r\n" % n + b"x" * n + b"\r\n")
    left -= n
d.sendall(b"0\r\n\r\n")
got = d.recv(4096)
assert got.startswith(b"HTTP/1.1 400"), got[:200]
print("ok")
EOF
        ok "TQ: --max-bodies-bytes: a declaration alone holds its first MiB; a body that does not fit beside another upload: 429 before it is read; the bytes given back after"
    else bad "TQ: max_bodies_bytes: $(tail -3 "$T/bodies.out")"; fi
    stop_daemon TQ
fi

# ---- S: memory over a long mixed run (good and bad requests, kept-alive and cut-off
# connections): the heap in use, less the caches' bytes, must not grow once warm
if start_daemon S "$VPRM" --api-key "$KEY" --image-cache-bytes 4M --prefix-cache-bytes 8M \
    --prefix-cache-host-bytes 16M --max-body-bytes 512K --max-image-bytes 256K \
    --connection-timeout-s 2; then
    if "$PY" tests/http/soak_memory.py "$PORT" "$PID" "$KEY" 400 >"$T/soak.out" 2>&1; then
        ok "S: memory flat over a mixed run ($(tail -1 "$T/soak.out"))"
    else bad "S: memory over a mixed run: $(tail -5 "$T/soak.out")"; fi
    stop_daemon S
fi

# ---- a loopback image server for the URL tests
"$PY" - "$T" <<'EOF'
import os, random, sys
from PIL import Image
d = sys.argv[1]
random.seed(5)
img = Image.new("RGB", (64, 48))
img.putdata([(random.randrange(256), random.randrange(256), random.randrange(256)) for _ in range(64 * 48)])
img.save(d + "/img.png")
open(d + "/big.png", "wb").write(open(d + "/img.png", "rb").read()[:8] + os.urandom(400 * 1024))
EOF
cat >"$T/imgserver.py" <<'EOF'
import collections, http.server, sys, time
root = sys.argv[1]
hits = collections.Counter()
class H(http.server.SimpleHTTPRequestHandler):
    def __init__(self, *a, **k):
        super().__init__(*a, directory=root, **k)
    def log_message(self, *a):
        pass
    def do_GET(self):
        if self.path == "/slow":  # a slow image host: the image after 4 s
            time.sleep(4)
            self.path = "/img.png"
        if self.path.startswith("/slow/"):  # /slow/MS: the image after MS milliseconds
            time.sleep(int(self.path[6:]) / 1000)
            self.path = "/img.png"
        if self.path.startswith("/hits/"):  # how often /counted/TAG was fetched
            body = str(hits[self.path[6:]]).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        if self.path.startswith("/counted/"):  # the image, each fetch counted by TAG
            hits[self.path[9:]] += 1
            self.path = "/img.png"
        if self.path.startswith("/countfail/"):  # a 500, each fetch counted by TAG
            hits[self.path[11:]] += 1
            self.send_response(500)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.path.startswith("/elsewhere/"):  # /elsewhere/PORT: to the image on PORT
            self.send_response(302)
            self.send_header("Location", "http://127.0.0.1:%s/img.png" % self.path[11:])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.path.startswith("/hop"):  # /hopN redirects to /hop(N-1), /hop0 to the image
            n = int(self.path[4:] or 0)
            self.send_response(302)
            self.send_header("Location", "/hop%d" % (n - 1) if n > 0 else "/img.png")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        super().do_GET()
srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
print(srv.server_address[1], flush=True)
srv.serve_forever()
EOF
rm -f "$T/imgserver.port" # a previous run's port would be read before this one's
"$PY" "$T/imgserver.py" "$T" >"$T/imgserver.port" 2>"$T/imgserver.log" &
IMGPID=$!
PIDS="$PIDS $IMGPID"
i=0
while [ $i -lt 300 ] && [ ! -s "$T/imgserver.port" ]; do sleep 0.1; i=$((i + 1)); done
[ -s "$T/imgserver.port" ] || echo "   (the image server did not start in 30 s: $(cat "$T/imgserver.log"))"
IMGPORT=$(cat "$T/imgserver.port")
IMG="http://127.0.0.1:$IMGPORT"
url_req() { printf '{"question": "What is shown?", "image": "%s", "responses": ["A square.\\n\\nIt is red.", "A circle."]}' "$1" >"$T/url.json"; }

# ---- C: config file + environment; queue full and queue timeout; loopback URL refused
printf '{"api_key": "%s", "max_queue": 2, "allow_image_urls": true, "log_level": "info"}' "$KEY" >"$T/c.json"
export VPRM_QUEUE_TIMEOUT_MS=200
start_daemon C "$VPRM" --config "$T/c.json"
started=$?
unset VPRM_QUEUE_TIMEOUT_MS
if [ $started = 0 ]; then
    run_tool "C: under load: 429 (queue full) and 503 (queue timeout) with Retry-After" \
        "$VPRM_TOOLS/http_fire" "$URL" "$KEY" 8 60 40 6 --min-200 1 --min-429 1 --min-503 1 --distinct 1
    run_tool "C: then a normal request" "$VPRM_TOOLS/http_fire" "$URL" "$KEY" 1 0 0 1 --only 200 --min-200 1
    url_req "$IMG/img.png"
    st=$(post /v1/score "$T/url.json")
    if [ "$st" = 400 ] && grep -q "loopback" "$T/post.body" && grep -q '"param":"image"' "$T/post.body"; then
        ok "C: image URL resolving to loopback refused (url_allow_private off)"
    else bad "C: loopback URL: $st $(cat "$T/post.body")"; fi
    url_req "http://localhost:$IMGPORT/img.png" # a name: its address is not told
    st=$(post /v1/score "$T/url.json")
    if [ "$st" = 400 ] && grep -q "host resolves to a loopback" "$T/post.body" \
        && ! grep -q -E "127\.0\.0\.1|::1" "$T/post.body"; then
        ok "C: a host name resolving to loopback refused without telling its address"
    else bad "C: loopback name: $st $(cat "$T/post.body")"; fi
    stop_daemon C
fi

# ---- D: image URLs allowed (loopback too): fetched; redirect, size and status limits
if start_daemon D "$VPRM" --api-key "$KEY" --allow-image-urls --url-allow-private \
    --url-max-redirects 2 --url-max-bytes 300K --url-ports "80, 443,$IMGPORT"; then
    url_req "$IMG/img.png"; st=$(post /v1/score "$T/url.json"); cp "$T/post.body" "$T/url_out.json"
    "$PY" - "$T" <<'EOF'
import base64, json, sys
d = sys.argv[1]
b64 = base64.b64encode(open(d + "/img.png", "rb").read()).decode()
req = json.load(open(d + "/url.json"))
req["image"] = "data:image/png;base64," + b64
json.dump(req, open(d + "/inline.json", "w"))
EOF
    st2=$(post /v1/score "$T/inline.json")
    if [ "$st" = 200 ] && [ "$st2" = 200 ] && "$PY" -c "
import json, sys
a = json.load(open('$T/url_out.json')); b = json.load(open('$T/post.body'))
assert [r['score'] for r in a['results']] == [r['score'] for r in b['results']]
assert a['usage']['image_tiles'] >= 1"; then
        ok "D: an image URL scores exactly like the same bytes inline"
    else bad "D: URL fetch: $st / $st2 $(head -c 300 "$T/post.body")"; fi
    url_req "HTTP://127.0.0.1:$IMGPORT/img.png"; st=$(post /v1/score "$T/url.json")
    [ "$st" = 200 ] && ok "D: an upper-case URL scheme (HTTP://) fetched" \
        || bad "D: HTTP:// URL: $st $(cat "$T/post.body")"
    url_req "$IMG/hop1"; st=$(post /v1/score "$T/url.json")
    [ "$st" = 200 ] && ok "D: 2 redirects followed" || bad "D: 2 redirects: $st $(cat "$T/post.body")"
    url_req "$IMG/hop2"; st=$(post /v1/score "$T/url.json")
    [ "$st" = 400 ] && grep -q "url_max_redirects=2" "$T/post.body" && ok "D: 3 redirects refused" \
        || bad "D: 3 redirects: $st $(cat "$T/post.body")"
    # url_ports: a port it does not list refused before connecting, named, redirects too
    url_req "http://127.0.0.1:9/img.png"; st=$(post /v1/score "$T/url.json")
    [ "$st" = 400 ] && grep -q "goes to port 9, which url_ports does not list" "$T/post.body" \
        && ! grep -q "$IMGPORT" "$T/post.body" \
        && ok "D: a URL to a port url_ports does not list: 400 naming the port and the option, not the list" \
        || bad "D: unlisted port: $st $(cat "$T/post.body")"
    url_req "$IMG/elsewhere/9"; st=$(post /v1/score "$T/url.json")
    [ "$st" = 400 ] && grep -q "goes to port 9," "$T/post.body" \
        && ok "D: a redirect to a port url_ports does not list: refused" \
        || bad "D: redirect to an unlisted port: $st $(cat "$T/post.body")"
    url_req "$IMG/big.png"; st=$(post /v1/score "$T/url.json")
    [ "$st" = 413 ] && grep -q "url_max_bytes" "$T/post.body" && ok "D: URL body over url_max_bytes: 413" \
        || bad "D: big URL: $st $(cat "$T/post.body")"
    url_req "$IMG/missing.png"; st=$(post /v1/score "$T/url.json")
    [ "$st" = 400 ] && grep -q "HTTP 404" "$T/post.body" && ok "D: URL answering 404: 400 naming it" \
        || bad "D: missing URL: $st $(cat "$T/post.body")"
    # a batch mixing URL items (one fetched, one failing) with base64 and invalid items:
    # each item answered for itself, the failing URL named by its item
    "$PY" - "$T" "$IMG" <<'EOF'
import json, sys
d, img = sys.argv[1], sys.argv[2]
inline = json.load(open(d + "/inline.json"))
url = json.load(open(d + "/url.json"))
url["image"] = img + "/img.png"
bad = dict(url, images=[img + "/img.png", img + "/missing.png"])
del bad["image"]
json.dump({"requests": [url, inline, bad, {"question": 5}]}, open(d + "/mixed.json", "w"))
json.dump(url, open(d + "/tok.json", "w"))
EOF
    st=$(post /v1/score/batch "$T/mixed.json")
    if [ "$st" = 200 ] && "$PY" -c "
import json
r = json.load(open('$T/post.body'))['results']
a = json.load(open('$T/url_out.json'))['results']
assert [x['score'] for x in r[0]['results']] == [x['score'] for x in a], r[0]
assert [x['score'] for x in r[1]['results']] == [x['score'] for x in a], r[1]
assert r[2]['error']['param'] == 'requests[2].images[1]' and 'HTTP 404' in r[2]['error']['message'], r[2]
assert r[3]['error']['param'] == 'requests[3].question', r[3]"; then
        ok "D: a batch mixing URL and base64 items: each scored or refused alone, errors name the item"
    else bad "D: mixed batch: $st $(head -c 600 "$T/post.body")"; fi
    st=$(post /v1/tokenize "$T/tok.json")
    [ "$st" = 200 ] && grep -q '"input_ids"' "$T/post.body" && ok "D: /v1/tokenize fetches an image URL" \
        || bad "D: tokenize with a URL: $st $(head -c 300 "$T/post.body")"
    curl -s -H "Authorization: Bearer $KEY" "$URL/metrics" >"$T/d_metrics.txt"
    grep -q '^vprm_image_url_fetches_total{result="ok"} [1-9]' "$T/d_metrics.txt" \
        && grep -q '^vprm_image_url_fetches_total{result="failed"} [1-9]' "$T/d_metrics.txt" \
        && grep -q '^vprm_inflight_url_fetches 0' "$T/d_metrics.txt" \
        && ok "D: /metrics counts URL fetches by outcome" \
        || bad "D: URL fetch metrics: $(grep url_fetch "$T/d_metrics.txt")"
    stop_daemon D
fi

# ---- D2: fetches run on their own threads, not the HTTP threads. 4 URL requests to a host
# that answers after 5 s, then 4 more in a burst of new connections, on a server with 2
# HTTP threads: /health and base64 scores on new connections and on kept-alive ones
# (some bound to a thread that read a slow request) answer at once, every URL request
# 200. (A fetch used to run on the HTTP thread that read its request: the kept-alive
# connections of that thread waited for the host, and fetches past http_threads - 1 got
# 429.)
if start_daemon D2 "$VPRM" --api-key "$KEY" --allow-image-urls --url-allow-private --url-ports any \
    --http-threads 2; then
    if "$PY" tests/http/url_offthread.py offthread "$PORT" "$KEY" "$IMG" "$T/img.png" 4 5000 \
        >"$T/offthread.out" 2>&1; then
        ok "D2: $(sed -n 's/^ok: //p' "$T/offthread.out" | head -1)"
    else bad "D2: URL fetches held HTTP connections:"; sed 's/^/   /' "$T/offthread.out" | head -12; fi
    stop_daemon D2
fi

# ---- D3 (ASan): the fetch queue's limit (429), a client gone during its fetch, SIGTERM
# during fetches; no sanitizer report
if start_daemon D3 "$VPRM_ASAN" --api-key "$KEY" --allow-image-urls --url-allow-private --url-ports any \
    --http-threads 2 --url-fetch-threads 1 --url-fetch-queue 1; then
    url_req "$IMG/slow/1500"
    for i in 1 2 3; do # one fetching, one waiting, one refused
        curl -s -o "$T/q$i.body" -D "$T/q$i.head" -w '%{http_code}' -H "Authorization: Bearer $KEY" \
            --data-binary @"$T/url.json" "$URL/v1/score" >"$T/q$i.st" &
        eval "Q$i=\$!"
        sleep 0.3
    done
    wait "$Q1" "$Q2" "$Q3"
    if [ "$(cat "$T/q1.st") $(cat "$T/q2.st") $(cat "$T/q3.st")" = "200 200 429" ] \
        && grep -qi "^retry-after:" "$T/q3.head" && grep -q "url_fetch_queue=1" "$T/q3.body"; then
        ok "D3: a fetch past url_fetch_threads + url_fetch_queue gets 429 with Retry-After"
    else bad "D3: fetch queue: $(cat "$T/q1.st") $(cat "$T/q2.st") $(cat "$T/q3.st") $(cat "$T/q3.body")"; fi
    if "$PY" tests/http/url_offthread.py disconnect "$PORT" "$KEY" "$IMG" "$T/D3.log" 5000 \
        >"$T/disc.out" 2>&1; then
        ok "D3: $(sed -n 's/^ok: //p' "$T/disc.out" | head -1); the server serves on"
    else bad "D3: disconnect during a fetch:"; sed 's/^/   /' "$T/disc.out"; fi
    url_req "$IMG/slow/5000"
    for i in 1 2; do # one fetching, one waiting for the fetch thread
        curl -s -o "$T/z$i.body" -w '%{http_code} %{time_total}' -H "Authorization: Bearer $KEY" \
            --data-binary @"$T/url.json" "$URL/v1/score" >"$T/z$i.st" &
        eval "Z$i=\$!"
        sleep 0.3
    done
    sleep 0.3
    t0=$(date +%s%N)
    kill -TERM "$PID"
    wait "$Z1" "$Z2"
    wait "$PID"
    rc=$?
    ms=$(( ($(date +%s%N) - t0) / 1000000 ))
    z1=$(cat "$T/z1.st"); z2=$(cat "$T/z2.st")
    if [ "$rc" = 0 ] && [ "${z1%% *}" = 503 ] && [ "${z2%% *}" = 503 ] \
        && grep -q "image URL fetch was abandoned" "$T/z1.body" && [ "$ms" -lt 4000 ]; then
        ok "D3: SIGTERM during fetches (a 5 s host): both answered 503 ($z1 s, $z2 s), exit 0 after $ms ms"
    else bad "D3: SIGTERM during fetches: exit $rc after $ms ms; $z1 / $z2 $(cat "$T/z1.body")"; fi
    if grep -q -E "AddressSanitizer|LeakSanitizer|runtime error" "$T/D3.log"; then
        bad "D3: sanitizer report"; grep -E -A5 "AddressSanitizer|LeakSanitizer|runtime error" "$T/D3.log" | head -30
    else ok "D3: no sanitizer report"; fi
fi

# ---- D4: what one HTTP request may make the server fetch and hold: different URLs
# (url_max_per_request), bytes (url_max_request_bytes, a repeat counted), time
# (url_request_timeout_ms, the wait for a fetch thread included), URL length; a repeated
# URL fetched once; the limit that applied named (max_image_bytes under url_max_bytes)
IMGLEN=$(wc -c <"$T/img.png")
if start_daemon D4 "$VPRM" --api-key "$KEY" --allow-image-urls --url-allow-private --url-ports any \
    --url-max-per-request 3 --url-max-request-bytes $((IMGLEN * 5 / 2)) --url-max-length 200 \
    --url-request-timeout-ms 4000 --url-fetch-threads 1 --max-image-bytes 16K; then
    "$PY" - "$T" "$IMG" <<'EOF'
import json, sys
d, img = sys.argv[1], sys.argv[2]
one = lambda u: {"question": "What is shown?", "image": u, "responses": ["A square.", "A circle."]}
batch = lambda urls: {"requests": [one(u) for u in urls]}
json.dump(batch(["%s/img.png?n=%d" % (img, i) for i in range(4)]), open(d + "/d4_many.json", "w"))
json.dump(batch(["%s/counted/rep" % img] * 2),
          open(d + "/d4_repeat.json", "w"))
json.dump(batch(["%s/countfail/bad" % img] * 3), open(d + "/d4_badrep.json", "w"))
json.dump(batch(["%s/img.png" % img] * 3), open(d + "/d4_bytes.json", "w"))
json.dump(one(img + "/big.png"), open(d + "/d4_big.json", "w"))
json.dump(one(img + "/img.png?" + "x" * 200), open(d + "/d4_long.json", "w"))
two = one(None)
del two["image"]
two["images"] = [img + "/slow/2200", img + "/slow/2201"]
json.dump(two, open(d + "/d4_slow.json", "w"))
json.dump(one(img + "/slow/2000"), open(d + "/d4_slow20.json", "w"))
json.dump(one(img + "/slow/3000"), open(d + "/d4_slow30.json", "w"))
json.dump(one(img + "/slow/3500"), open(d + "/d4_slow35.json", "w"))
json.dump(batch(["%s/img.png?b=%d" % (img, i) for i in range(2)]), open(d + "/d4_batch2.json", "w"))
EOF
    st=$(post /v1/score/batch "$T/d4_many.json")
    [ "$st" = 413 ] && grep -q '"param":"requests\[3\].image"' "$T/post.body" \
        && grep -q "url_max_per_request=3" "$T/post.body" \
        && ok "D4: a 4th different URL in one batch: 413 naming it before any fetch" \
        || bad "D4: URLs per request: $st $(cat "$T/post.body")"
    st=$(post /v1/score/batch "$T/d4_repeat.json")
    hits=$(curl -s "$IMG/hits/rep")
    if [ "$st" = 200 ] && [ "$hits" = 1 ] && "$PY" -c "
import json
r = json.load(open('$T/post.body'))['results']
assert all('error' not in x for x in r), r
assert len({tuple(y['score'] for y in x['results']) for x in r}) == 1, r"; then
        ok "D4: a URL repeated in a batch fetched once, every item scored alike"
    else bad "D4: repeated URL: $st, fetched $hits times: $(head -c 400 "$T/post.body")"; fi
    st=$(post /v1/score/batch "$T/d4_badrep.json")
    hits=$(curl -s "$IMG/hits/bad")
    if [ "$st" = 200 ] && [ "$hits" = 1 ] && "$PY" -c "
import json
r = json.load(open('$T/post.body'))['results']
assert [x['error']['param'] for x in r] == ['requests[%d].image' % i for i in range(3)], r
assert all('HTTP 500' in x['error']['message'] for x in r), r"; then
        ok "D4: a failing URL repeated in a batch tried once, each item given its error"
    else bad "D4: repeated failing URL: $st, tried $hits times: $(head -c 400 "$T/post.body")"; fi
    st=$(post /v1/score/batch "$T/d4_bytes.json")
    if [ "$st" = 200 ] && "$PY" -c "
import json
r = json.load(open('$T/post.body'))['results']
assert 'error' not in r[0] and 'error' not in r[1], r
e = r[2]['error']
assert e['param'] == 'requests[2].image' and 'url_max_request_bytes' in e['message'], e"; then
        ok "D4: a third copy past url_max_request_bytes: that item 413, the others scored"
    else bad "D4: request bytes: $st $(head -c 600 "$T/post.body")"; fi
    st=$(post /v1/score "$T/d4_big.json")
    [ "$st" = 413 ] && grep -q "max_image_bytes=16384" "$T/post.body" \
        && ok "D4: a URL body over max_image_bytes (under url_max_bytes): 413 naming max_image_bytes" \
        || bad "D4: big URL: $st $(cat "$T/post.body")"
    st=$(post /v1/score "$T/d4_long.json")
    [ "$st" = 413 ] && grep -q "url_max_length=200" "$T/post.body" \
        && ok "D4: a URL over url_max_length: 413 before any fetch" \
        || bad "D4: long URL: $st $(cat "$T/post.body")"
    st=$(post /v1/score "$T/d4_slow.json")
    [ "$st" = 400 ] && grep -q '"param":"images\[1\]"' "$T/post.body" \
        && grep -q "url_request_timeout_ms=4000" "$T/post.body" \
        && ok "D4: two 2.2 s fetches past url_request_timeout_ms 4000: the second refused naming it" \
        || bad "D4: request deadline: $st $(cat "$T/post.body")"
    # behind FIRST SECOND [PATH]: SECOND posted (to PATH, /v1/score by default) 0.5 s after
    # FIRST took the one fetch thread ($st)
    behind() {
        curl -s -o /dev/null -H "Authorization: Bearer $KEY" --data-binary @"$T/$1" \
            "$URL/v1/score" &
        W1=$!
        sleep 0.5
        st=$(post "${3:-/v1/score}" "$T/$2")
        wait "$W1"
    }
    # the wait for the one fetch thread counts: a 3 s fetch sent 0.5 s into a 2 s one waits
    # 1.5 s (under half of 4 s), then runs out of its 4 s (alone it would fit)
    behind d4_slow20.json d4_slow30.json
    [ "$st" = 400 ] && grep -q "url_request_timeout_ms=4000" "$T/post.body" \
        && ok "D4: the wait for a fetch thread counts in url_request_timeout_ms" \
        || bad "D4: queue wait: $st $(cat "$T/post.body")"
    # over half of it spent waiting for the fetch thread (a 3.5 s fetch ahead): 429, the
    # server busy, not a fetch started to run out of time
    behind d4_slow35.json d4_slow20.json
    [ "$st" = 429 ] && grep -q "waited [0-9]* ms of its url_request_timeout_ms=4000" "$T/post.body" \
        && ok "D4: over half of url_request_timeout_ms waiting for a fetch thread: 429" \
        || bad "D4: busy fetch threads: $st $(cat "$T/post.body")"
    behind d4_slow35.json d4_batch2.json /v1/score/batch # the server's state: the whole request
    st_b=$st
    [ "$st_b" = 429 ] && grep -q '"type":"queue_full"' "$T/post.body" \
        && ! grep -q '"results"' "$T/post.body" \
        && ok "D4: a batch that waited as long: 429 for the whole request, not per item" \
        || bad "D4: busy fetch threads, batch: $st_b $(head -c 300 "$T/post.body")"
    stop_daemon D4
    grep -q "url_allow_private is on" "$T/D4.log" && ok "D4: url_allow_private logged as a warning" \
        || bad "D4: no warning for url_allow_private"
fi
kill "$IMGPID" 2>/dev/null

# ---- E: SIGTERM while busy
if start_daemon E "$VPRM" --api-key "$KEY"; then
    # 6 requests of 7 tiles: seconds of work on the CPU, SIGTERM comes in the middle
    "$VPRM_TOOLS/http_fire" "$URL" "$KEY" 6 60 40 6 --only 200,503 --min-200 4 --distinct 1 >"$T/fire.out" 2>&1 &
    FIRE=$!
    # and an upload that never finishes: the drain must not wait for it
    "$PY" -c "import socket, sys, time
s = socket.create_connection(('127.0.0.1', int(sys.argv[1])))
s.sendall(b'POST /v1/score HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{')
time.sleep(90)" "$PORT" &
    HALF=$!
    sleep 1
    t0=$(date +%s%N)
    kill -TERM "$PID"
    sleep 0.2
    st=$(curl -s -o "$T/late.body" -w '%{http_code}' -H "Authorization: Bearer $KEY" \
        --data-binary '{"question": "q", "responses": ["a"]}' "$URL/v1/score")
    rd=$(curl -s -o /dev/null -w '%{http_code}' "$URL/ready")
    [ "$st" = 503 ] && grep -q "shutting down" "$T/late.body" && [ "$rd" = 503 ] \
        && ok "E: while draining, new requests and /ready answer 503" \
        || bad "E: during drain: score $st ready $rd $(cat "$T/late.body")"
    wait "$FIRE" && ok "E: every in-flight request answered ($(head -1 "$T/fire.out"))" \
        || { bad "E: in-flight requests"; cat "$T/fire.out"; }
    wait "$PID"
    rc=$?
    ms=$(( ($(date +%s%N) - t0) / 1000000 ))
    kill "$HALF" 2>/dev/null
    # the half-sent upload holds its connection for the 30 s idle timeout: not the drain
    [ "$rc" = 0 ] && grep -q "drained in" "$T/E.log" && [ "$ms" -lt 25000 ] \
        && ok "E: drained and exited 0 after ${ms} ms (an upload still arriving did not hold it)" \
        || bad "E: exit $rc after ${ms} ms; $(tail -3 "$T/E.log")"
fi

# ---- E2: SIGTERM with a client that does not read its answers (300 pipelined GETs of the
# OpenAPI document on a socket with a 2 KB receive buffer): the drain waits for them only
# --drain-answer-timeout-s (1 here), not the 30 s idle timeout; the log says so
if start_daemon E2 "$VPRM" --api-key "$KEY" --drain-answer-timeout-s 1; then
    "$PY" -c "import socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
s.connect(('127.0.0.1', int(sys.argv[1])))
s.sendall(b'GET /openapi.json HTTP/1.1\r\nHost: x\r\n\r\n' * 300)
time.sleep(90)" "$PORT" &
    STALL=$!
    sleep 1
    t0=$(date +%s%N)
    kill -TERM "$PID"
    wait "$PID"
    rc=$?
    ms=$(( ($(date +%s%N) - t0) / 1000000 ))
    kill "$STALL" 2>/dev/null
    [ "$rc" = 0 ] && [ "$ms" -lt 10000 ] && grep -q "still being written after drain_answer_timeout_s=1" "$T/E2.log" \
        && ok "E2: a client not reading its answer held the exit ${ms} ms (drain_answer_timeout_s 1, idle timeout 30 s)" \
        || bad "E2: exit $rc after ${ms} ms; $(tail -3 "$T/E2.log")"
fi

# ---- F: the ASan/UBSan binary
# shellcheck disable=SC2086
if start_daemon F "$VPRM_ASAN" $STRICT; then
    run_tool "F (ASan): API contract and every error status" "$VPRM_TOOLS/http_api" "$URL" "$KEY"
    run_tool "F (ASan): misbehaving clients" "$VPRM_TOOLS/http_abuse" 127.0.0.1 "$PORT" "$KEY" 2 2097152
    stop_daemon F
    if grep -q -E "AddressSanitizer|LeakSanitizer|runtime error" "$T/F.log"; then
        bad "F: sanitizer report"; grep -E -A5 "AddressSanitizer|LeakSanitizer|runtime error" "$T/F.log" | head -30
    else ok "F: no sanitizer report"; fi
fi
if start_daemon G "$VPRM_ASAN" --api-key "$KEY"; then
    run_tool "G (ASan): 16 concurrent clients equal the serial run" \
        "$VPRM_TOOLS/http_concurrency" "$URL" "$KEY" 16 1
    stop_daemon G
    if grep -q -E "AddressSanitizer|LeakSanitizer|runtime error" "$T/G.log"; then
        bad "G: sanitizer report"; grep -E -A5 "AddressSanitizer|LeakSanitizer|runtime error" "$T/G.log" | head -30
    else ok "G: no sanitizer report"; fi
fi

# ---- H: a lost device. One pass (the warm-up) works, then every pass fails as a lost GPU
# context would; with exit_on_device_failure off the server keeps answering, 503.
printf '{"question": "q", "responses": ["a\\n\\nb", "c"]}' >"$T/h.json"
export VPRM_TEST_DEVICE_FAILURE_AFTER=1
if start_daemon H "$VPRM" --api-key "$KEY" --no-exit-on-device-failure; then
    st=$(post /v1/score "$T/h.json")
    [ "$st" = 503 ] && grep -q "simulated device failure" "$T/post.body" \
        && ok "H: the pass on the failed device answers 503 naming the failure" \
        || bad "H: failing pass: $st $(cat "$T/post.body")"
    st=$(post /v1/score "$T/h.json")
    [ "$st" = 503 ] && grep -q "cannot use it again" "$T/post.body" \
        && ok "H: later requests 503 at once, saying to restart" \
        || bad "H: later request: $st $(cat "$T/post.body")"
    rd=$(curl -s -o "$T/h.ready" -w '%{http_code}' "$URL/ready")
    hl=$(curl -s -o "$T/h.health" -w '%{http_code}' "$URL/health")
    [ "$rd" = 503 ] && grep -q "device failed" "$T/h.ready" && [ "$hl" = 200 ] \
        && grep -q '"status": *"device_failed"' "$T/h.health" \
        && ok "H: /ready 503 and /health (liveness, 200) name the failure" \
        || bad "H: ready $rd $(cat "$T/h.ready"); health $hl $(cat "$T/h.health")"
    curl -s -H "Authorization: Bearer $KEY" "$URL/metrics" >"$T/h.metrics"
    grep -q '^vprm_device_failed 1' "$T/h.metrics" && grep -q '^vprm_ready 0' "$T/h.metrics" \
        && ok "H: /metrics: vprm_device_failed 1, vprm_ready 0" \
        || bad "H: metrics $(grep -E '^vprm_(device_failed|ready) ' "$T/h.metrics")"
    stop_daemon H
fi
# the default: the server answers what it holds with 503 and exits 3
if start_daemon I "$VPRM" --api-key "$KEY"; then
    st=$(post /v1/score "$T/h.json")
    i=0
    while [ $i -lt 100 ] && kill -0 "$PID" 2>/dev/null; do sleep 0.1; i=$((i + 1)); done
    if kill -0 "$PID" 2>/dev/null; then
        bad "I: still running 10 s after the device failed"; kill -9 "$PID"
    else
        wait "$PID"; rc=$?
        [ "$st" = 503 ] && [ "$rc" = 3 ] && grep -q "exiting (exit_on_device_failure)" "$T/I.log" \
            && ok "I: after the device failed: 503, then exit 3 (exit_on_device_failure)" \
            || bad "I: status $st, exit $rc; $(tail -3 "$T/I.log")"
    fi
fi
unset VPRM_TEST_DEVICE_FAILURE_AFTER

# ---- W: the pass watchdog (--pass-timeout-s): the CPU backend's VPRM_TEST_PASS_STALL_MS
# hook makes every pass sleep, as a hung GPU's never returns. Without exit_on_device_failure:
# /ready 503 naming pass_timeout_s while the pass runs past it, /metrics' running pass, then
# the answer and /ready 200 again; with it (the default): exit 3 at once, the log says why.
export VPRM_TEST_PASS_STALL_MS=6000
printf '{"question": "q", "responses": ["a\\n\\nb"]}' >"$T/w.json"
if start_daemon W "$VPRM" --api-key "$KEY" --no-warmup --pass-timeout-s 1 --no-exit-on-device-failure; then
    curl -s -o "$T/w.body" -w '%{http_code}' -H "Authorization: Bearer $KEY" \
        --data-binary @"$T/w.json" "$URL/v1/score" >"$T/w.status" &
    cpid=$!
    i=0 rd=000
    while [ $i -lt 50 ] && [ "$rd" != 503 ]; do # until the pass is past 1 s
        sleep 0.1; i=$((i + 1))
        rd=$(curl -s -o "$T/w.ready" -w '%{http_code}' "$URL/ready")
    done
    running=$(curl -s -H "Authorization: Bearer $KEY" "$URL/metrics" | sed -n 's/^vprm_pass_running_seconds //p')
    health=$(curl -s "$URL/health")
    wait "$cpid"
    rd2=$(curl -s -o /dev/null -w '%{http_code}' "$URL/ready")
    if [ "$rd" = 503 ] && grep -q "over pass_timeout_s=1: the device seems hung" "$T/w.ready" \
        && "$PY" -c "import sys; assert 1.0 < float(sys.argv[1]) < 6.0" "$running" \
        && "$PY" -c "import json, sys; h = json.loads(sys.argv[1]); assert h['status'] == 'device_hung' and not h['ready'] and 'pass_timeout_s=1' in h['device_error']" "$health" \
        && [ "$(cat "$T/w.status")" = 200 ] && [ "$rd2" = 200 ]; then
        ok "W: a pass past --pass-timeout-s 1: /ready 503 naming it (running ${running} s), /health device_hung, then 200 and /ready 200"
    else bad "W: ready $rd $(cat "$T/w.ready"), running '$running', health $health, score $(cat "$T/w.status"), ready after $rd2"; fi
    stop_daemon W
fi
# wait_exit: rc = the daemon PID's exit status once it exits (within 10 s), else "running"
# (not in $(...): a subshell cannot wait for the daemon)
wait_exit() {
    i=0
    while [ $i -lt 100 ] && kill -0 "$PID" 2>/dev/null; do sleep 0.1; i=$((i + 1)); done
    if kill -0 "$PID" 2>/dev/null; then rc=running; kill -9 "$PID"; else wait "$PID"; rc=$?; fi
}
if start_daemon W2 "$VPRM" --api-key "$KEY" --no-warmup --pass-timeout-s 1; then
    t0=$(date +%s%N)
    st=$(post /v1/score "$T/w.json")
    wait_exit
    took=$(( ($(date +%s%N) - t0) / 1000000 ))
    [ "$st" = 000 ] && [ "$rc" = 3 ] && [ "$took" -lt 4000 ] \
        && grep -q "over pass_timeout_s=1: the cpu device seems hung; exiting 3" "$T/W2.log" \
        && ok "W2: a pass past --pass-timeout-s 1 with exit_on_device_failure: exit 3 after ${took} ms, the client's connection closed" \
        || bad "W2: status $st, exit $rc after ${took} ms; $(tail -2 "$T/W2.log")"
fi
# a SIGTERM while the pass hangs: the drain cannot finish it, the watchdog still fires
export VPRM_TEST_PASS_STALL_MS=30000
if start_daemon W3 "$VPRM" --api-key "$KEY" --no-warmup --pass-timeout-s 2; then
    curl -s -o /dev/null -H "Authorization: Bearer $KEY" --data-binary @"$T/w.json" "$URL/v1/score" &
    cpid=$!
    sleep 0.5
    kill -TERM "$PID"
    wait_exit
    wait "$cpid"
    [ "$rc" = 3 ] && grep -q "SIGTERM: draining" "$T/W3.log" && grep -q "over pass_timeout_s=2" "$T/W3.log" \
        && ok "W3: SIGTERM during a hung pass: the watchdog still exits 3 (the drain would wait for ever)" \
        || bad "W3: exit $rc; $(tail -2 "$T/W3.log")"
fi
unset VPRM_TEST_PASS_STALL_MS

# ---- J: image limits too small for the warm-up's picture still let the server start: it
# warms the text path alone, says so, and answers /ready 200.
if start_daemon J "$VPRM" --max-image-bytes 64; then
    rd=$(curl -s -o /dev/null -w '%{http_code}' "$URL/ready")
    [ "$rd" = 200 ] && grep -q "warm-up without an image (.*max_image_bytes" "$T/J.log" \
        && grep -q "warm-up pass: 2 responses, .* no image" "$T/J.log" \
        && ok "J: warm-up without an image under tiny image limits, then ready" \
        || bad "J: ready $rd; $(grep -i warm "$T/J.log")"
    stop_daemon J
fi
# the image side limit is the server's to set (413 naming it; /v1/models reports it); the
# log as JSON lines (--log-format json)
if start_daemon J2 "$VPRM" --max-image-side 8 --log-format json --log-level debug; then
    "$PY" -c "import base64, io, json
from PIL import Image
b = io.BytesIO(); Image.new('RGB', (16, 1), (9, 99, 199)).save(b, 'PNG')
print(json.dumps({'question': 'q', 'responses': ['a'], 'image': base64.b64encode(b.getvalue()).decode()}))" >"$T/j2.json"
    st=$(curl -s -o "$T/j2.body" -w '%{http_code}' -H 'X-Client-Request-Id: j2-413' \
        --data-binary @"$T/j2.json" "$URL/v1/score")
    printf '{"question": "q\\u00e9?", "responses": ["a\\n\\nb"], "priority": "low"}' >"$T/j2ok.json"
    st2=$(curl -s -o /dev/null -w '%{http_code}' --data-binary @"$T/j2ok.json" "$URL/v1/score")
    side=$(curl -s "$URL/v1/models" | "$PY" -c "import json, sys; print(json.load(sys.stdin)['limits']['max_image_side'])")
    [ "$st" = 413 ] && grep -q "max_image_side=8" "$T/j2.body" && [ "$side" = 8 ] \
        && ok "J2: --max-image-side 8 refuses a 16x1 image (413 naming it), /v1/models says 8" \
        || bad "J2: $st $(cat "$T/j2.body") side $side"
    stop_daemon J2
    if [ "$st2" = 200 ] && "$PY" - "$T/J2.log" <<'EOF'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]  # every line one object
assert len(lines) >= 6, lines
for l in lines:
    assert l["level"] in ("debug", "info", "warn", "error") and l["time"].endswith("Z"), l
    assert l["request_id"] is None or l["request_id"].startswith("scr_"), l
    assert ("message" in l) != ("method" in l), l  # a message, or a request's fields
reqs = [l for l in lines if "method" in l]
bad = [l for l in reqs if l["status"] == 413]
good = [l for l in reqs if l["status"] == 200 and l["path"] == "/v1/score"]
assert len(bad) == 1 and bad[0]["path"] == "/v1/score" and bad[0]["method"] == "POST", reqs
assert bad[0]["client_request_id"] == "j2-413" and isinstance(bad[0]["ms"], float), bad
assert len(good) == 1 and good[0]["responses"] == 1 and good[0]["tokens"] > 200, good
assert good[0]["priority"] == "low" and "client_request_id" not in good[0], good
assert any(l.get("message", "").startswith("ready on port") for l in lines)
# --log-level debug: the configuration one option a line, the probes as request lines
assert any(l.get("message", "") == "configuration: max_image_side=8" for l in lines), lines[:3]
assert any(l.get("path") == "/ready" and l["level"] == "debug" for l in reqs), reqs
assert lines[-1]["message"] == "stopped (exit 0)", lines[-1]
EOF
    then ok "J2: --log-format json: every line an object; the request lines' fields (status, path, tokens, priority, client id)"
    else bad "J2: --log-format json log: $(head -c 600 "$T/J2.log")"; fi
fi

# ---- K: a pass that overflows a narrow number format (VPRM_CUDA_ACTIVATIONS=auto's fp16 on
# a GPU; here the CPU backend's VPRM_TEST_OVERFLOW_AFTER=1 hook: the warm-up is fine, every
# later pass overflows until the backend widens): a client's request overflows, the
# backend widens for good, and the answer is the CLI's, as if it never overflowed.
export VPRM_TEST_OVERFLOW_AFTER=1
if start_daemon K "$VPRM" --api-key "$KEY"; then
    curl -s -H "Authorization: Bearer $KEY" "$URL/v1/models" >"$T/k.models0"
    st=$(post /v1/score "$T/req.json")
    if [ "$st" = 200 ] && "$PY" - "$T/post.body" "$T/cli.json" <<'EOF'
import json, sys
http, cli = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
for a, b in zip(cli["results"], http["results"]):
    assert all(abs(x - y) <= 1e-8 * max(1.0, abs(y)) for x, y in zip(a["step_scores"], b["step_scores"])), (a, b)
assert len(cli["results"]) == len(http["results"]) == 2
EOF
    then ok "K: the request that overflowed is answered with the CLI's scores"
    else bad "K: score $st $(head -c 300 "$T/post.body")"; fi
    curl -s -H "Authorization: Bearer $KEY" "$URL/metrics" >"$T/k.metrics"
    curl -s -H "Authorization: Bearer $KEY" "$URL/v1/models" >"$T/k.models"
    grep -q '"activations": *"narrow' "$T/k.models0" \
        && grep -q '^vprm_precision_widenings_total 1$' "$T/k.metrics" \
        && grep -q '"dtype": *"float32"' "$T/k.models" \
        && grep -q "switched for good" "$T/K.log" \
        && ok "K: widened once (/metrics, /v1/models before and after, the log)" \
        || bad "K: $(grep '^vprm_precision' "$T/k.metrics"); $(cat "$T/k.models0" "$T/k.models")"
    stop_daemon K
fi
unset VPRM_TEST_OVERFLOW_AFTER

# ---- T: HTTPS (--tls-cert, --tls-key): a certificate for 127.0.0.1 made here (openssl), the
# refusals at start, then tests/http/tls_check.py (Python's ssl verifying it)
TLS="$T/tls"
rm -rf "$TLS" && mkdir -p "$TLS"
for n in a b; do
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
        -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
        -keyout "$TLS/key_$n.pem" -out "$TLS/cert_$n.pem" >"$TLS/openssl.log" 2>&1 || bad "T: openssl req: $(tail -2 "$TLS/openssl.log")"
done
chmod 600 "$TLS"/key_*.pem
printf 'not a certificate\n' >"$TLS/junk.pem"
refused T "$TLS" "a certificate without its key" "tls_key" --tls-cert "$TLS/cert_a.pem"
refused T "$TLS" "a missing certificate file" "$TLS/nope.pem" --tls-cert "$TLS/nope.pem" --tls-key "$TLS/key_a.pem"
refused T "$TLS" "a certificate that is not PEM" "junk.pem is not a PEM file" --tls-cert "$TLS/junk.pem" --tls-key "$TLS/key_a.pem"
refused T "$TLS" "a key in place of the certificate" "key_a.pem is not a PEM file" --tls-cert "$TLS/key_a.pem" --tls-key "$TLS/cert_a.pem"
refused T "$TLS" "a key that is not the certificate's" "cannot serve HTTPS" --tls-cert "$TLS/cert_a.pem" --tls-key "$TLS/key_b.pem"
# an encrypted key (PKCS#8) needs its password; a key file from `openssl ecparam -genkey`
# starts with an EC PARAMETERS block
openssl pkcs8 -topk8 -in "$TLS/key_a.pem" -out "$TLS/key_enc.pem" -passout pass:secret-pw-1 >>"$TLS/openssl.log" 2>&1
openssl ecparam -name prime256v1 -genkey -out "$TLS/key_ec.pem" >>"$TLS/openssl.log" 2>&1
openssl req -x509 -key "$TLS/key_ec.pem" -days 2 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
    -out "$TLS/cert_ec.pem" >>"$TLS/openssl.log" 2>&1
chmod 600 "$TLS"/key_*.pem
refused T "$TLS" "an encrypted key without its password" "is encrypted: give its password with tls_key_password" \
    --tls-cert "$TLS/cert_a.pem" --tls-key "$TLS/key_enc.pem"
refused T "$TLS" "an encrypted key with a wrong password" "cannot serve HTTPS" \
    --tls-cert "$TLS/cert_a.pem" --tls-key "$TLS/key_enc.pem" --tls-key-password wrong-pw
# starts LABEL CAFILE serve-flags...: an HTTPS daemon that answers GET /health
starts() {
    label=$1; ca=$2; shift 2
    export DAEMON_CURL_ARGS="--cacert $ca"
    if start_daemon T0 "$VPRM" --no-warmup "$@"; then
        h=$(curl -s --cacert "$ca" "$URL/health")
        case "$h" in *'"status":"ok"'*) ok "T: $label: serves HTTPS" ;; *) bad "T: $label: /health $h" ;; esac
        stop_daemon T0
    fi
}
export VPRM_TLS_KEY_PASSWORD=secret-pw-1
starts "an encrypted key, its password from VPRM_TLS_KEY_PASSWORD" \
    "$TLS/cert_a.pem" --tls-cert "$TLS/cert_a.pem" --tls-key "$TLS/key_enc.pem"
unset VPRM_TLS_KEY_PASSWORD
starts "a key file that starts with EC PARAMETERS" "$TLS/cert_ec.pem" \
    --tls-cert "$TLS/cert_ec.pem" --tls-key "$TLS/key_ec.pem"
export DAEMON_CURL_ARGS="--cacert $TLS/cert_a.pem"
if start_daemon T "$VPRM" --api-key "$KEY" --batch-tokens 12000 --header-timeout-s 2 \
    --tls-cert "$TLS/cert_a.pem" --tls-key "$TLS/key_a.pem"; then
    case "$URL" in https://*) ok "T: listening on $URL" ;; *) bad "T: URL $URL is not https" ;; esac
    if "$PY" tests/http/tls_check.py "$PORT" "$KEY" "$TLS/cert_a.pem" "$T/req.json" "$T/cli.json" \
        "$T/T.log" >"$T/tls.out" 2>&1; then
        ok "T: HTTPS: $(grep -c '^ok:' "$T/tls.out") checks (scores, plain HTTP refused, cancel on a TLS close, handshake deadline)"
    else bad "T: HTTPS checks"; grep -v '^ok:' "$T/tls.out" | tail -10; fi
    if CURL_CA_BUNDLE="$TLS/cert_a.pem" "$VPRM" bench --url "$URL" --api-key "$KEY" --workload W2 \
        --clients 2 --requests 4 --words-per-step 6 >"$T/tls_bench.out" 2>&1 \
        && grep -q "^requests: 4 ok, .* 0 transport errors" "$T/tls_bench.out"; then
        ok "T: vprm bench --url https://... with CURL_CA_BUNDLE ($(grep throughput "$T/tls_bench.out"))"
    else bad "T: vprm bench over HTTPS"; tail -5 "$T/tls_bench.out"; fi
    stop_daemon T
fi
unset DAEMON_CURL_ARGS

# ---- M: mutual TLS (--tls-client-ca): client certificates made here with openssl (two
# authorities; a client of each, one for servers only), then tests/http/mtls_check.py:
# the release binary with certificates only, the ASan one with certificates and API keys
MT="$T/mtls"
rm -rf "$MT" && mkdir -p "$MT"
mt_req() { # mt_req NAME SUBJECT [x509 args]: a self-signed certificate NAME.pem, key NAME.key
    name=$1; subj=$2; shift 2
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
        -subj "$subj" "$@" -keyout "$MT/$name.key" -out "$MT/$name.pem" >>"$MT/openssl.log" 2>&1
}
mt_client() { # mt_client NAME CN CA PURPOSE: NAME.pem issued by CA for PURPOSE
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=$2" \
        -keyout "$MT/$1.key" -out "$MT/$1.csr" >>"$MT/openssl.log" 2>&1
    printf 'extendedKeyUsage=%s\n' "$4" >"$MT/$1.ext"
    openssl x509 -req -in "$MT/$1.csr" -CA "$MT/$3.pem" -CAkey "$MT/$3.key" -CAcreateserial \
        -days 2 -extfile "$MT/$1.ext" -out "$MT/$1.pem" >>"$MT/openssl.log" 2>&1
}
mt_req server /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1
mt_req ca_a "/CN=vprm test client CA a"
mt_req ca_b "/CN=vprm test client CA b"
mt_client trainer "rl trainer-1" ca_a clientAuth
mt_client srvonly "server only" ca_a serverAuth
mt_client stranger stranger ca_b clientAuth
chmod 600 "$MT"/*.key
if [ -s "$MT/trainer.pem" ] && [ -s "$MT/stranger.pem" ] && [ -s "$MT/srvonly.pem" ]; then
    ok "M: certificates made with openssl"
else bad "M: openssl: $(tail -3 "$MT/openssl.log")"; fi
refused M "$MT" "--tls-client-ca without HTTPS" "tls_client_ca is set without tls_cert" \
    --tls-client-ca "$MT/ca_a.pem"
refused M "$MT" "a key in place of the client CAs" "option tls_client_ca: .*trainer.key is not a PEM file" \
    --tls-cert "$MT/server.pem" --tls-key "$MT/server.key" --tls-client-ca "$MT/trainer.key"
# grants of the trainer's certificate (its name: "rl trainer-1" made safe, then ~ and 8 hex
# digits of its SHA-256): a keys file of cert: lines only, which asks for no key
printf 'cert:rl_trainer-1~%s weight=3 max_priority=normal max_queued=2\n' \
    "$(printf 'rl trainer-1' | sha256sum | cut -c1-8)" >"$MT/grants.txt"
chmod 600 "$MT/grants.txt"
refused M "$MT" "certificate grants without --tls-client-ca" \
    "grants.txt grants clients known by their certificate (cert:NAME lines), but tls_client_ca is not set" \
    --tls-cert "$MT/server.pem" --tls-key "$MT/server.key" --api-keys-file "$MT/grants.txt"
export DAEMON_CURL_ARGS="--cacert $MT/server.pem"
for mode in certs certs+keys; do
    cp "$MT/ca_a.pem" "$MT/ca.pem"
    if [ "$mode" = certs ]; then bin=$VPRM; extra="--api-keys-file $MT/grants.txt"
    else bin=$VPRM_ASAN; printf 'ops %s\n' "$KEY" >"$MT/keys.txt"; chmod 600 "$MT/keys.txt"
        extra="--api-keys-file $MT/keys.txt"; fi
    # shellcheck disable=SC2086
    if start_daemon "M_$mode" "$bin" --tls-cert "$MT/server.pem" --tls-key "$MT/server.key" \
        --tls-client-ca "$MT/ca.pem" $extra; then
        if [ "$mode" = certs ]; then # vprm bench presents a client certificate with --cert/--key
            for who in trainer none; do
                certargs="--cert $MT/trainer.pem --key $MT/trainer.key"
                [ "$who" = none ] && certargs=""
                # shellcheck disable=SC2086
                CURL_CA_BUNDLE="$MT/server.pem" "$VPRM" bench --url "$URL" --workload W2 --clients 2 \
                    --requests 4 --words-per-step 6 $certargs >"$MT/bench_$who.out" 2>&1
            done
            if grep -q "^requests: 4 ok, .* 0 transport errors" "$MT/bench_trainer.out" \
                && grep -q "^requests: 0 ok, .* 4 other 4xx" "$MT/bench_none.out"; then
                ok "M: vprm bench --cert/--key: 4 of 4 scored; without: 4 refused"
            else bad "M: vprm bench with a client certificate: $(grep requests: "$MT"/bench_*.out)"; fi
        fi
        if (cd tests/http && "$PY" mtls_check.py "$PORT" "$PID" "$MT" "$T/M_$mode.log" "$mode" "$KEY") \
            >"$MT/$mode.out" 2>&1; then
            ok "M: $mode: $(grep -c '^ok:' "$MT/$mode.out") mutual-TLS checks (no certificate, another authority's, a server-only one: 401 saying why; the client named by its certificate; reloads)"
        else bad "M: $mode: mutual-TLS checks"; grep -v '^ok:' "$MT/$mode.out" | tail -8; fi
        stop_daemon "M_$mode"
    fi
done
unset DAEMON_CURL_ARGS

# ---- R: SIGHUP reloads --api-keys-file and the TLS certificate and key while serving
# (tests/http/reload_check.py): keys rotated, a new certificate for new connections while
# older ones keep theirs, refused reloads change nothing, reloads under load; plain HTTP on
# the release binary, HTTPS on the ASan one (replaced certificates freed while connections
# come and go). First the refusals of a keys file at start.
RL="$T/reload"
rm -rf "$RL" && mkdir -p "$RL"
ALICE=alice-key-$$-0001
BOB=bob-key-$$-0002
keys_file() { printf '# names and keys\nalice %s\nbob %s\n' "$ALICE" "$BOB" >"$RL/keys.txt"; chmod 600 "$RL/keys.txt"; }
rl_refused() { # rl_refused LABEL PATTERN KEYS-FILE-TEXT
    printf '%b' "$3" >"$RL/bad_keys.txt"
    refused R "$RL" "$1" "$2" --api-keys-file "$RL/bad_keys.txt"
}
rl_refused "a keys file with no key" "bad_keys.txt holds no key" '# nothing\n\n'
rl_refused "a key given twice" "bad_keys.txt, line 2 repeats the key of line 1" 'a same-key-123456\nb same-key-123456\n'
rl_refused "a third field that is not an option" "bad_keys.txt, line 1: field 3 is not an option" 'a b c-key-1234567\n'
refused R "$RL" "a missing keys file" "option api_keys_file: .*none.txt" --api-keys-file "$RL/none.txt"
keys_file
if start_daemon R "$VPRM" --api-keys-file "$RL/keys.txt"; then
    if (cd tests/http && "$PY" reload_check.py "$PORT" "$PID" "$RL" "$T/R.log" "$ALICE" "$BOB" plain) \
        >"$RL/plain.out" 2>&1; then
        ok "R: plain HTTP: $(grep -c '^ok:' "$RL/plain.out") reload checks (keys rotated on SIGHUP, refused reloads change nothing, a key's max_priority, reloads under load)"
    else bad "R: plain HTTP reload checks"; grep -v '^ok:' "$RL/plain.out" | tail -8; fi
    stop_daemon R
fi
# --credentials-check-s: a replaced keys file is taken without a signal, a broken one refused
keys_file
if start_daemon RW "$VPRM" --api-keys-file "$RL/keys.txt" --credentials-check-s 1; then
    CAROL=carol-key-$$-0003
    printf 'carol %s\n' "$CAROL" >"$RL/keys.new" && mv "$RL/keys.new" "$RL/keys.txt"
    code() { curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $1" "$URL/v1/models"; }
    i=0
    while [ "$(code "$CAROL")" != 200 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
    if [ "$(code "$CAROL")" = 200 ] && [ "$(code "$ALICE")" = 401 ] \
        && grep -q "credential files changed" "$T/RW.log"; then
        ok "RW: a replaced keys file taken without a signal after $((i / 10)).$((i % 10)) s (--credentials-check-s 1)"
    else bad "RW: the replaced keys file was not taken ($(code "$CAROL") $(code "$ALICE"))"; tail -3 "$T/RW.log"; fi
    printf 'carol short\n' >"$RL/keys.new" && mv "$RL/keys.new" "$RL/keys.txt"
    i=0
    while ! grep -q "reload refused" "$T/RW.log" && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
    if grep -q "reload refused.*line 1: the key has 5 bytes" "$T/RW.log" && [ "$(code "$CAROL")" = 200 ]; then
        ok "RW: a broken keys file refused, the previous keys kept"
    else bad "RW: the broken keys file: $(grep -c 'reload refused' "$T/RW.log") refusals, carol $(code "$CAROL")"; fi
    stop_daemon RW
fi
for n in a b; do cp "$TLS/cert_$n.pem" "$TLS/key_$n.pem" "$RL/"; done
cp "$RL/cert_a.pem" "$RL/cert.pem" && cp "$RL/key_a.pem" "$RL/key.pem" && chmod 600 "$RL"/key*.pem
keys_file
export DAEMON_CURL_ARGS="--cacert $RL/cert_a.pem"
if start_daemon RA "$VPRM_ASAN" --api-keys-file "$RL/keys.txt" --tls-cert "$RL/cert.pem" \
    --tls-key "$RL/key.pem"; then
    if (cd tests/http && "$PY" reload_check.py "$PORT" "$PID" "$RL" "$T/RA.log" "$ALICE" "$BOB" tls) \
        >"$RL/tls.out" 2>&1; then
        ok "R: HTTPS, ASan: $(grep -c '^ok:' "$RL/tls.out") reload checks (new connections get the new certificate, older ones keep theirs until they close)"
    else bad "R: HTTPS reload checks"; grep -v '^ok:' "$RL/tls.out" | tail -8; fi
    stop_daemon RA
    if grep -q "ERROR: AddressSanitizer\|ERROR: LeakSanitizer\|runtime error" "$T/RA.log"; then
        bad "R: a sanitizer report"; grep -A20 "Sanitizer\|runtime error" "$T/RA.log" | head -30
    else ok "R: no sanitizer report after the reloads"; fi
fi
unset DAEMON_CURL_ARGS

echo "suite_http: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
