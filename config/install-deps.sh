#!/bin/sh
# Installs the Debian packages listed in config/debian-packages.txt, and any named as
# arguments (`make fuzz` adds clang and libFuzzer's runtime), that are missing.
#   install-deps.sh [--build] [PACKAGE...]   --build: only the list's build section (make run)
# As root it runs apt-get (waiting up to 5 minutes for another apt, as on a freshly
# booted machine running its daily update); otherwise it prints the exact command to run.
set -eu
here=$(dirname "$0")
list="$here/debian-packages.txt"
if [ "${1:-}" = "--build" ]; then
    shift
    wanted=$(awk '/^# tests/ { exit } !/^#/ && NF' "$list")
else
    wanted=$(grep -v '^#' "$list")
fi
missing=""
for p in $wanted "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "missing Debian packages:$missing"
if [ "$(id -u)" = 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=300 update -qq
    apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends $missing
else
    echo "run: sudo apt-get install -y$missing" >&2
    exit 1
fi
