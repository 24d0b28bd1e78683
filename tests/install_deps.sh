#!/bin/sh
# Installs the Debian packages libquant needs when they are missing.
# Build: gcc/make (assumed), zlib1g-dev, libzip-dev, libcunit1-dev.
# Tests: sentencepiece (spm_encode, the tokenizer oracle), zip (fixtures), python3 (CLI tests' JSON check).
set -e
need=""
for p in zlib1g-dev libzip-dev libcunit1-dev sentencepiece python3; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need="$need $p"
done
[ -z "$need" ] && exit 0
echo "deps: installing$need" >&2
SUDO=""
[ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null && SUDO=sudo
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $need >&2
