#!/bin/sh
# The built-in PRM system prompt must equal, byte for byte, the verbatim block of
# MODEL.md ("PRM system prompt (verbatim ...)").
set -eu
spec="$SHARED/spec/MODEL.md"
[ -f "$spec" ] || { echo "FAIL: $spec not found"; exit 1; }
"$VPRM_TOOLS/print_system_prompt" > "$VPRM_TMP/sys_c.txt"
"$PYTHON" - "$spec" "$VPRM_TMP/sys_c.txt" <<'PY'
import sys
spec = open(sys.argv[1], encoding="utf-8").read()
start = spec.index("PRM system prompt (verbatim")
block = spec[spec.index("```\n", start) + 4:]
block = block[:block.index("\n```")]
ours = open(sys.argv[2], encoding="utf-8").read()
if ours != block:
    import difflib
    print("FAIL: built-in system prompt differs from MODEL.md:")
    for l in difflib.unified_diff(block.splitlines(), ours.splitlines(), "MODEL.md", "built-in", lineterm=""):
        print(l)
    sys.exit(1)
print("system prompt: 1 passed, 0 failed (%d bytes equal to MODEL.md)" % len(ours))
PY
