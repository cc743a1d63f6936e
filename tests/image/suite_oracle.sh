#!/bin/sh
# Image preprocessing against the oracle (Pillow 9.4 + the model card's dynamic_preprocess
# + numpy/torch float32 normalisation): ~300 generated PNG/JPEG/GIF/BMP images and ~750
# JPEGs of every sampling and colour-space rule (cjpeg and byte edits) and ~170 hand-written
# BMPs (run-length encoded, grey-ramp palettes, odd headers) and ~45 PNGs (zlib streams that
# end early or late, wrong checksums) through
# `$VPRM preprocess`, the tiling grid choice (including exact ties) through img_grid, and
# the error kinds of bad inputs, 1200 mutated files against Pillow, and a fuzz run of the
# sanitizer build of the decoder.
# See tests/image/oracle_suite.py for what is compared.
# Environment (as tests/run_all.sh sets it): VPRM, VPRM_TOOLS, VPRM_TOOLS_ASAN, PYTHON, VPRM_TMP.
set -u
: "${VPRM:?VPRM (release binary) is not set}"
: "${VPRM_TOOLS:?VPRM_TOOLS (tests/tools programs) is not set}"
: "${VPRM_TOOLS_ASAN:?VPRM_TOOLS_ASAN (sanitizer build of tests/tools) is not set}"
PYTHON=${PYTHON:-/usr/bin/python3}
TMP=${VPRM_TMP:-$(mktemp -d)}
here=$(dirname "$0")

for tool in "$VPRM" "$VPRM_TOOLS/img_grid" "$VPRM_TOOLS/img_decode" "$VPRM_TOOLS_ASAN/img_fuzz"; do
    if [ ! -x "$tool" ]; then
        echo "image oracle: missing program $tool (build: make tools asan)"
        exit 1
    fi
done
if ! "$PYTHON" -c "import PIL, numpy, torch; assert PIL.__version__.startswith('9.4'), PIL.__version__" 2>/dev/null; then
    echo "image oracle: the oracle needs $PYTHON with Pillow 9.4, numpy and torch (Debian python3-pil, python3-numpy, python3-torch)"
    exit 1
fi

if ! command -v cjpeg >/dev/null; then
    echo "image oracle: cjpeg (Debian libjpeg-turbo-progs) writes the JPEG variety files: make deps installs it"
    exit 1
fi

work="$TMP/image_oracle"
rm -rf "$work"
mkdir -p "$work"
"$PYTHON" -W ignore "$here/oracle_suite.py" "$VPRM" "$VPRM_TOOLS" "$VPRM_TOOLS_ASAN" "$work"
rc=$?
rm -rf "$work"
exit $rc
