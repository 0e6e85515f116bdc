#!/bin/sh
# Installs the lightweight mail client of the Roleout example catalog.
# Usage: install-mail-lite.sh ROOT
set -eu
root=$1
mkdir -p "$root/opt/mail-lite"
echo "2.4.57-1+deb12u1" > "$root/opt/mail-lite/VERSION"
