# Sourced by the suites that start `vprm serve --port 0` (tests/http, tests/tsan).
# daemon_ready OUT PID READY_TENTHS: waits (up to 60 s) for the daemon's "listening on" line
# in OUT, then up to READY_TENTHS tenths of a second for GET /ready 200. Sets PORT, URL and
# READY_CODE (the last /ready status). An HTTPS daemon (--tls-cert) gets an https URL; its
# /ready is asked with DAEMON_CURL_ARGS (e.g. "--cacert FILE"). Returns 0 when ready, 1 when no port was printed (the
# daemon died or never listened), 2 when /ready never answered 200.
daemon_ready() {
    _out=$1; _pid=$2; _tenths=$3
    PORT=""
    READY_CODE=000
    _i=0
    while [ $_i -lt 600 ] && [ -z "$PORT" ]; do
        PORT=$(sed -n 's/^listening on https\{0,1\}:\/\/127\.0\.0\.1:\([0-9][0-9]*\)$/\1/p' "$_out" 2>/dev/null)
        [ -n "$PORT" ] && break
        kill -0 "$_pid" 2>/dev/null || break
        sleep 0.1; _i=$((_i + 1))
    done
    [ -n "$PORT" ] || return 1
    URL="$(sed -n 's/^listening on \(https\{0,1\}\):.*/\1/p' "$_out")://127.0.0.1:$PORT"
    _i=0
    while [ $_i -lt "$_tenths" ]; do
        # shellcheck disable=SC2086
        READY_CODE=$(curl -s -o /dev/null -w '%{http_code}' ${DAEMON_CURL_ARGS:-} "$URL/ready")
        [ "$READY_CODE" = 200 ] && return 0
        sleep 0.1; _i=$((_i + 1))
    done
    return 2
}
