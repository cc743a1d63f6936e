#!/bin/sh
# Runs every suite: the ASan/UBSan unit test binaries in $1, then every
# tests/*/suite_*.sh script (oracle, reference, HTTP suites). Each suite is one
# pass or one fail in the closing "N passed, N failed" line.
# Environment: VPRM (release binary), VPRM_ASAN (sanitizer binary), SHARED, PYTHON.
set -u
bindir=$1
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:${UBSAN_OPTIONS:-}"
export VPRM_TMP="${VPRM_TMP:-$(mktemp -d)}"
passed=0
failed=0
failures=""
run_suite() {
    name=$1; shift
    start=$(date +%s)
    echo "== $name"
    if "$@"; then
        passed=$((passed + 1)); status=ok
    else
        failed=$((failed + 1)); status=FAIL; failures="$failures $name"
    fi
    echo "== $name: $status ($(( $(date +%s) - start )) s)"
}
for t in "$bindir"/test_*; do
    [ -x "$t" ] || continue
    case "$t" in *.d) continue ;; esac
    run_suite "unit/$(basename "$t")" "$t"
done
for s in tests/*/suite_*.sh; do
    [ -f "$s" ] || continue
    run_suite "$s" sh "$s"
done
rm -rf "$VPRM_TMP"
[ -n "$failures" ] && echo "failed suites:$failures"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
