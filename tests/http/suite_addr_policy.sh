#!/bin/sh
# The image fetcher's SSRF guard (vp_addr_is_private) against the IANA special-purpose
# registries (tests/http/addr_policy.py): ~5,000 addresses at the edges of and inside
# every special block, embedded in NAT64/6to4/mapped forms, and random ones.
set -eu
: "${VPRM_TOOLS:?set VPRM_TOOLS (make test does)}"
PY=${PYTHON:-/usr/bin/python3}
"$PY" tests/http/addr_policy.py --list | "$VPRM_TOOLS/addr_policy" | "$PY" tests/http/addr_policy.py --check
