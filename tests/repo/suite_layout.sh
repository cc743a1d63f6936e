#!/bin/sh
# The repository holds what the product brief says and nothing a run left behind: the top
# level is the brief's (server/ engine/ proto/ config/ docker/ tests/ Makefile README.md,
# plus .ci and .gitignore); no build output (objects, archives, executables) is tracked; no
# copy of a library Debian ships is vendored. Two stray files (a curl answer and its status,
# written to the root by hand) were committed once and went unnoticed for sessions.
set -u
cd "$(dirname "$0")/../.."
fail=0
bad() { echo "FAIL: $*"; fail=1; }
if ! command -v git >/dev/null 2>&1 || ! git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    echo "FAIL: not a git work tree (or no git): the layout check reads what is tracked"
    exit 1
fi
files=$(mktemp)
trap 'rm -f "$files"' EXIT
git ls-files >"$files"
n=$(wc -l <"$files")
[ "$n" -gt 100 ] || bad "only $n tracked files: is this the repository?"

allowed=" .ci .gitignore Makefile README.md config docker engine proto server tests "
for top in $(cut -d/ -f1 "$files" | sort -u); do
    case "$allowed" in *" $top "*) ;; *) bad "tracked top-level entry '$top' is not in the brief's layout" ;; esac
done
for need in Makefile README.md config docker engine proto server tests; do
    grep -q "^$need\(/\|\$\)" "$files" || bad "the brief's '$need' is missing"
done

# Build output: by name, and by content (ELF or ar archives) whatever the name.
grep -E '\.(o|a|so|d|npy|pyc)$|(^|/)core$' "$files" | grep -v '^tests/fuzz/corpus/' \
    | while read -r f; do echo "FAIL: build output tracked: $f"; done | grep . && fail=1
while read -r f; do
    [ -f "$f" ] || continue
    magic=$(head -c 8 "$f" | od -An -c | tr -d ' \n')
    case "$magic" in
    177ELF*) bad "an executable or object is tracked: $f" ;;
    '!<arch>'*) bad "an archive is tracked: $f" ;;
    esac
done <"$files"

# Libraries Debian ships are used from their packages (libstb-dev, libjansson-dev, ...).
grep -E '(^|/)(stb_image|stb_image_write|stb_image_resize2?|jansson|microhttpd|curl|zlib|cJSON|miniz|lodepng)\.(h|c)$' "$files" \
    | while read -r f; do echo "FAIL: a vendored copy of a Debian library: $f"; done | grep . && fail=1

if [ "$fail" -eq 0 ]; then
    echo "ok: $n tracked files, top level as the brief's, no build output, nothing vendored"
fi
exit "$fail"
