#!/bin/sh
# Installs the Debian packages listed in config/debian-packages.txt, and any named as
# arguments (`make fuzz` adds clang), that are missing.
# As root it runs apt-get; otherwise it prints the exact command to run.
set -eu
here=$(dirname "$0")
missing=""
for p in $(grep -v '^#' "$here/debian-packages.txt") "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "missing Debian packages:$missing"
if [ "$(id -u)" = 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends $missing
else
    echo "run: sudo apt-get install -y$missing" >&2
    exit 1
fi
