#!/bin/sh
# Self-tests of the PyTorch reference (tests/reference/), the oracle for the C engine:
# tokenizer facts, the prompt against the MODEL.md template, step splitting, image
# tiling, pixel shuffle / wqkv split / attention / RoPE against explicit definitions,
# safetensors I/O, and a tiny random model end to end. Needs no C code.
# Environment: SHARED (default /work/shared), PYTHON (default /usr/bin/python3), VPRM_TMP.
set -u
export PYTHONDONTWRITEBYTECODE=1
here=$(dirname "$0")
shared=${SHARED:-/work/shared}
python=${PYTHON:-/usr/bin/python3}
tmp=${VPRM_TMP:-${TMPDIR:-/tmp}}/reference_selftest.$$
if ! "$python" -c 'import torch, numpy, sentencepiece, PIL' 2>/dev/null; then
    echo "FAIL: $python lacks torch, numpy, sentencepiece or PIL (Debian python3-torch, python3-numpy, python3-sentencepiece, python3-pil)"
    echo "reference selftest: 0 passed, 1 failed"
    exit 1
fi
if [ ! -f "$shared/tokenizer/internlm2/tokenizer.model" ]; then
    echo "FAIL: no tokenizer at $shared/tokenizer/internlm2 (set SHARED)"
    echo "reference selftest: 0 passed, 1 failed"
    exit 1
fi
mkdir -p "$tmp"
"$python" "$here/selftest.py" --shared "$shared" --tmp "$tmp"
rc=$?
rm -rf "$tmp"
exit $rc
