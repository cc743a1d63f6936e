"""Shared by the HTTP suite's Python checks: one line per check, the failures kept for the
exit status (sys.exit(1 if failures else 0))."""

failures = []


def check(ok, what):
    print(("ok: " if ok else "FAIL: ") + what, flush=True)
    if not ok:
        failures.append(what)


def auth_headers(key):
    return {"Authorization": "Bearer " + key, "Content-Type": "application/json"}
