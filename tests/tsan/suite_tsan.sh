#!/bin/sh
# ThreadSanitizer: data races and lock-order inversions between the HTTP pool, the engine
# thread, the scheduler's janitor, the disconnect watcher and the request-head reaper.
#   1. the unit tests that run threads (scheduler, image cache, CPU thread pool, fetch
#      pool, API key quotas);
#   2. the daemon (make tsan: build/tsan/vprm) with the strict limits of suite_http A: the
#      API contract and every error status (http_api), misbehaving clients (slow, truncated,
#      cut off, trickled heads, disconnects while queued: http_abuse), then SIGTERM;
#   3. the daemon with the defaults: 16 concurrent clients against a serial run
#      (http_concurrency), then SIGTERM;
#   4. the daemon with image URLs allowed and a loopback image host: fetches on the fetch
#      threads (some slow, one refused 429), a batch mixing URL and inline items, tokenize,
#      a client gone during its fetch, then SIGTERM during a fetch;
#   5. the daemon serving HTTPS (tests/http/tls_check.py: scores, a TLS client's close
#      cancelling its queued request, the handshake deadline), then SIGTERM;
#   6. the daemon serving HTTPS reloading its API keys and certificate on SIGHUP while
#      clients score (tests/http/reload_check.py), then SIGTERM.
# Any "WARNING: ThreadSanitizer" fails the suite (the report is printed).
# ThreadSanitizer makes the CPU backend 5 to 15 times slower: the queue deadline is 10
# minutes here, so that http_abuse's four heavy requests (seconds of vision each) all run.
# Environment: VPRM_TSAN (daemon), VPRM_TSAN_TESTS (unit test folder), VPRM_TOOLS, VPRM_TMP,
# PYTHON (the image host; default /usr/bin/python3).
set -u
T="${VPRM_TMP:?VPRM_TMP must be set}/tsan"
. tests/lib/daemon_ready.sh # daemon_ready: the port, then /ready
mkdir -p "$T"
KEY=test-key-123
pass=0
fail=0
ok() { pass=$((pass + 1)); echo "ok: $1"; }
bad() { fail=$((fail + 1)); echo "FAIL: $1"; }
export TSAN_OPTIONS="halt_on_error=0 second_deadlock_stack=1 ${TSAN_OPTIONS:-}"
TSAN=${VPRM_TSAN:-}
TESTS=${VPRM_TSAN_TESTS:-}
for need in "$TSAN" "${VPRM_TOOLS:-}/http_api" "${VPRM_TOOLS:-}/http_abuse" \
    "${VPRM_TOOLS:-}/http_concurrency"; do
    if [ ! -x "$need" ]; then
        echo "FAIL: missing executable '$need' (build: make tsan tools)"
        exit 1
    fi
done
if [ -z "$TESTS" ] || ! ls "$TESTS"/test_* >/dev/null 2>&1; then
    echo "FAIL: no ThreadSanitizer unit tests in '$TESTS' (build: make tsan)"
    exit 1
fi

# Without address randomisation: some kernels' wider mmap randomisation leaves gcc's
# ThreadSanitizer no room for its shadow ("unexpected memory mapping"); setarch -R execs
# the program itself, so $! stays the daemon's pid.
RUN=""
if setarch "$(uname -m)" -R true 2>/dev/null; then RUN="setarch $(uname -m) -R"; fi

# tsan_clean LABEL LOG: no ThreadSanitizer report in LOG
tsan_clean() {
    n=$(grep -c "WARNING: ThreadSanitizer" "$2")
    if [ "$n" = 0 ]; then ok "$1: no ThreadSanitizer report"
    else bad "$1: $n ThreadSanitizer reports"; grep -A30 "WARNING: ThreadSanitizer" "$2" | head -60; fi
}

for t in "$TESTS"/test_*; do
    case "$t" in *.d) continue ;; esac
    name=$(basename "$t")
    if $RUN "$t" >"$T/$name.log" 2>&1; then ok "$name ($(tail -1 "$T/$name.log"))"
    else bad "$name"; tail -5 "$T/$name.log"; fi
    tsan_clean "$name" "$T/$name.log"
done

MODEL="$T/tiny"
if ! $RUN "$TSAN" mkmodel --scale tiny --seed 1 --tokenizer engine/assets/tiny_tokenizer \
    --out "$MODEL" --force >"$T/mkmodel.log" 2>&1; then
    echo "FAIL: vprm mkmodel"; cat "$T/mkmodel.log"; exit 1
fi
PIDS=""
trap 'for p in $PIDS; do kill -9 "$p" 2>/dev/null; done' EXIT
# start NAME ARGS...: the daemon on a run-time port; sets PID and URL, or fails. AUTH: the
# authentication flags (default --api-key KEY)
start() {
    name=$1; shift
    rm -f "$T/$name.out"
    # shellcheck disable=SC2086
    $RUN "$TSAN" serve --model "$MODEL" --host 127.0.0.1 --port 0 ${AUTH:---api-key $KEY} "$@" \
        >"$T/$name.out" 2>"$T/$name.log" &
    PID=$!
    PIDS="$PIDS $PID"
    daemon_ready "$T/$name.out" "$PID" 1200 && return 0
    bad "$name: the ThreadSanitizer daemon did not become ready"; tail -20 "$T/$name.log"
    return 1
}
# tool NAME ARGS...: a C test program against the daemon
tool() {
    name=$1; shift
    if "$VPRM_TOOLS/$name" "$@" >"$T/$name.out" 2>&1; then ok "daemon: $name ($(tail -1 "$T/$name.out"))"
    else bad "daemon: $name"; tail -10 "$T/$name.out"; fi
}
# stop NAME: SIGTERM, exit 0, no report
stop() {
    kill -TERM "$PID"
    wait "$PID"
    rc=$?
    if [ "$rc" = 0 ]; then ok "$1: SIGTERM -> exit 0"; else bad "$1: exit status $rc after SIGTERM"; fi
    tsan_clean "$1" "$T/$1.log"
}

# the strict limits of suite_http A
if start strict --max-body-bytes 2M --max-responses 8 --max-steps 16 --max-images 2 \
    --max-image-bytes 256K --max-image-pixels 1000000 --max-text-bytes 8K \
    --max-request-tokens 3000 --max-batch-requests 4 --max-tiles 6 --connection-timeout-s 2 \
    --http-threads 4 --batch-tiles 8 --max-json-values 100000 --body-timeout-s 3 \
    --header-timeout-s 3 --queue-timeout-ms 600000; then
    tool http_api "$URL" "$KEY"
    tool http_abuse 127.0.0.1 "$PORT" "$KEY" 2 2097152
    stop strict
fi
# the defaults: concurrent clients packed into shared passes
if start defaults --queue-timeout-ms 600000; then
    tool http_concurrency "$URL" "$KEY" 16 1
    stop defaults
fi
# image URLs: fetch workers, suspended connections resumed from them, a client gone during
# its fetch, SIGTERM during a fetch (a loopback image host; /slow/MS answers after MS ms)
PY=${PYTHON:-/usr/bin/python3}
cat >"$T/imgserver.py" <<'EOF'
import http.server, sys, time
png = open(sys.argv[1], "rb").read()
class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass
    def do_GET(self):
        if self.path.startswith("/slow/"):
            time.sleep(int(self.path[6:]) / 1000)
        elif self.path != "/img.png":
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(png)))
        self.end_headers()
        try:
            self.wfile.write(png)
        except OSError:
            pass
srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
print(srv.server_address[1], flush=True)
srv.serve_forever()
EOF
rm -f "$T/imgserver.port"
"$PY" "$T/imgserver.py" tests/fuzz/corpus/fuzz_image/seed_png_rgb8.png >"$T/imgserver.port" 2>"$T/imgserver.log" &
IMGPID=$!
PIDS="$PIDS $IMGPID"
i=0
while [ $i -lt 100 ] && [ ! -s "$T/imgserver.port" ]; do sleep 0.1; i=$((i + 1)); done
IMG="http://127.0.0.1:$(cat "$T/imgserver.port")"
# urlpost NAME BODY [curl args]: POST BODY to /v1/score (or the path in $P), status in $T/NAME.st
urlpost() {
    n=$1; b=$2; shift 2
    curl -s -o "$T/$n.body" -w '%{http_code}' -H "Authorization: Bearer $KEY" --data-binary "$b" \
        "$@" "$URL${P:-/v1/score}" >"$T/$n.st"
}
if [ -s "$T/imgserver.port" ] && start urls --allow-image-urls --url-allow-private --url-ports any \
    --http-threads 2 --url-fetch-threads 2 --url-fetch-queue 1 --queue-timeout-ms 600000; then
    slow='{"question": "q", "image": "'$IMG'/slow/1500", "responses": ["a\n\nb", "c"]}'
    # 4 at once for 2 fetch threads and a queue of 1: three fetched, one refused
    U=""
    for i in 1 2 3 4; do urlpost u$i "$slow" & U="$U $!"; done
    for p in $U; do wait "$p"; done
    st="$(cat "$T/u1.st") $(cat "$T/u2.st") $(cat "$T/u3.st") $(cat "$T/u4.st")"
    n200=$(echo "$st" | tr ' ' '\n' | grep -c '^200$')
    n429=$(echo "$st" | tr ' ' '\n' | grep -c '^429$')
    [ "$n200" = 3 ] && [ "$n429" = 1 ] && ok "urls: slow fetches on the fetch threads, one past the queue 429 ($st)" \
        || bad "urls: slow fetches: $st"
    # then three at once: a client that leaves during its fetch (curl gives up after
    # 0.5 s), a batch mixing URL and inline items, tokenize
    U=""
    urlpost gone '{"question": "q", "image": "'$IMG'/slow/3000", "responses": ["a"]}' -m 0.5 &
    U="$U $!"
    P=/v1/score/batch urlpost batch '{"requests": [{"question": "q", "image": "'$IMG'/img.png",
        "responses": ["a"]}, {"question": "q", "responses": ["b"]}, {"question": "q",
        "image": "'$IMG'/missing.png", "responses": ["c"]}]}' &
    U="$U $!"
    P=/v1/tokenize urlpost tok '{"question": "q", "image": "'$IMG'/img.png", "responses": ["a"]}' &
    U="$U $!"
    for p in $U; do wait "$p"; done
    st="batch $(cat "$T/batch.st") tokenize $(cat "$T/tok.st")"
    [ "$st" = "batch 200 tokenize 200" ] && grep -q '"param":"requests\[2\].image"' "$T/batch.body" \
        && ok "urls: a client gone mid-fetch, a mixed batch, tokenize ($st)" \
        || bad "urls: $st $(head -c 300 "$T/batch.body")"
    # SIGTERM while a fetch is in flight
    urlpost last '{"question": "q", "image": "'$IMG'/slow/5000", "responses": ["a"]}' &
    L=$!
    sleep 1
    stop urls
    wait "$L"
    [ "$(cat "$T/last.st")" = 503 ] && ok "urls: a fetch in flight at SIGTERM answered 503" \
        || bad "urls: fetch at SIGTERM: $(cat "$T/last.st") $(cat "$T/last.body")"
    grep -q "cancelled: the client disconnected" "$T/urls.log" \
        && ok "urls: the client gone mid-fetch was cancelled" \
        || bad "urls: no cancelled request in the log"
fi
kill "$IMGPID" 2>/dev/null
# HTTPS: the TLS connections' threads, a TLS client's close cancelling its queued request,
# the handshake deadline (tests/http/tls_check.py, a certificate made here with openssl)
TLS="$T/tls"
rm -rf "$TLS" && mkdir -p "$TLS"
if openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 -keyout "$TLS/key.pem" \
    -out "$TLS/cert.pem" >"$TLS/openssl.log" 2>&1; then
    chmod 600 "$TLS/key.pem"
    printf '%s' '{"question": "Is 7 prime?", "responses": ["7 has no divisors but 1 and 7.\n\nSo yes.", ["It is even.", "So no."]]}' >"$TLS/req.json"
    $RUN "$TSAN" score --model "$MODEL" "$TLS/req.json" >"$TLS/cli.json" 2>"$TLS/cli.log" \
        || bad "tls: vprm score: $(tail -2 "$TLS/cli.log")"
    export DAEMON_CURL_ARGS="--cacert $TLS/cert.pem"
    if start tls --tls-cert "$TLS/cert.pem" --tls-key "$TLS/key.pem" --batch-tokens 12000 \
        --header-timeout-s 2 --queue-timeout-ms 600000; then
        if "$PY" tests/http/tls_check.py "$PORT" "$KEY" "$TLS/cert.pem" "$TLS/req.json" \
            "$TLS/cli.json" "$T/tls.log" >"$TLS/check.out" 2>&1; then
            ok "tls: $(grep -c '^ok:' "$TLS/check.out") HTTPS checks under ThreadSanitizer"
        else bad "tls: HTTPS checks"; grep -v '^ok:' "$TLS/check.out" | tail -8; fi
        stop tls
    fi
    # SIGHUP while serving HTTPS: the keys and the certificate swapped while clients score
    # on new and kept-alive connections (tests/http/reload_check.py)
    if openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
        -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 -keyout "$TLS/key_b.pem" \
        -out "$TLS/cert_b.pem" >>"$TLS/openssl.log" 2>&1; then
        cp "$TLS/cert.pem" "$TLS/cert_a.pem" && cp "$TLS/key.pem" "$TLS/key_a.pem"
        chmod 600 "$TLS"/key*.pem
        ALICE=alice-key-$$-0001
        BOB=bob-key-$$-0002
        printf 'alice %s\nbob %s\n' "$ALICE" "$BOB" >"$TLS/keys.txt"
        export DAEMON_CURL_ARGS="--cacert $TLS/cert_a.pem"
        if AUTH="--api-keys-file $TLS/keys.txt" start reload --tls-cert "$TLS/cert.pem" \
            --tls-key "$TLS/key.pem" --queue-timeout-ms 600000; then
            if (cd tests/http && "$PY" reload_check.py "$PORT" "$PID" "$TLS" "$T/reload.log" \
                "$ALICE" "$BOB" tls) >"$TLS/reload.out" 2>&1; then
                ok "reload: $(grep -c '^ok:' "$TLS/reload.out") reload checks under ThreadSanitizer"
            else bad "reload: reload checks"; grep -v '^ok:' "$TLS/reload.out" | tail -8; fi
            stop reload
        fi
        unset AUTH
    else bad "reload: openssl req: $(tail -2 "$TLS/openssl.log")"; fi
    unset DAEMON_CURL_ARGS
else bad "tls: openssl req: $(tail -2 "$TLS/openssl.log")"; fi
echo "suite_tsan: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
