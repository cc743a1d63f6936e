#!/bin/sh
# ThreadSanitizer: data races and lock-order inversions between the HTTP pool, the engine
# thread, the scheduler's janitor, the disconnect watcher and the request-head reaper.
#   1. the unit tests that run threads (scheduler, image cache, CPU thread pool);
#   2. the daemon (make tsan: build/tsan/vprm) with the strict limits of suite_http A: the
#      API contract and every error status (http_api), misbehaving clients (slow, truncated,
#      cut off, trickled heads, disconnects while queued: http_abuse), then SIGTERM;
#   3. the daemon with the defaults: 16 concurrent clients against a serial run
#      (http_concurrency), then SIGTERM.
# Any "WARNING: ThreadSanitizer" fails the suite (the report is printed).
# ThreadSanitizer makes the CPU backend 5 to 15 times slower: the queue deadline is 10
# minutes here, so that http_abuse's four heavy requests (seconds of vision each) all run.
# Environment: VPRM_TSAN (daemon), VPRM_TSAN_TESTS (unit test folder), VPRM_TOOLS, VPRM_TMP.
set -u
T="${VPRM_TMP:?VPRM_TMP must be set}/tsan"
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
    --out "$MODEL" >"$T/mkmodel.log" 2>&1; then
    echo "FAIL: vprm mkmodel"; cat "$T/mkmodel.log"; exit 1
fi
PIDS=""
trap 'for p in $PIDS; do kill -9 "$p" 2>/dev/null; done' EXIT
# start NAME ARGS...: the daemon on a run-time port; sets PID and URL, or fails
start() {
    name=$1; shift
    rm -f "$T/$name.out"
    $RUN "$TSAN" serve --model "$MODEL" --host 127.0.0.1 --port 0 --api-key "$KEY" "$@" \
        >"$T/$name.out" 2>"$T/$name.log" &
    PID=$!
    PIDS="$PIDS $PID"
    PORT=""
    i=0
    while [ $i -lt 600 ] && [ -z "$PORT" ]; do
        PORT=$(sed -n 's/^listening on http:\/\/127\.0\.0\.1:\([0-9][0-9]*\)$/\1/p' "$T/$name.out" 2>/dev/null)
        kill -0 "$PID" 2>/dev/null || break
        [ -z "$PORT" ] && sleep 0.1
        i=$((i + 1))
    done
    URL="http://127.0.0.1:$PORT"
    i=0
    while [ -n "$PORT" ] && [ $i -lt 1200 ]; do
        [ "$(curl -s -o /dev/null -w '%{http_code}' "$URL/ready")" = 200 ] && return 0
        sleep 0.1; i=$((i + 1))
    done
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
echo "suite_tsan: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
