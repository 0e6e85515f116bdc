#!/bin/sh
# Builds the example catalog's payloads into OUT (default: ./out), byte for
# byte the same on every run, so that the digests in the descriptors hold:
# timestamps are clamped to SOURCE_DATE_EPOCH, owners are root, file order
# is sorted, and gzip writes no name or time.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/out}
mkdir -p "$out"
export SOURCE_DATE_EPOCH=1700000000
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

normalized() { # NAME: a copy of payloads/NAME with modes that do not depend on umask
    rm -rf "$work/$1"
    cp -a "$here/$1" "$work/$1"
    chmod -R u=rwX,go=rX "$work/$1"
    find "$work/$1" -exec touch -h -d @"$SOURCE_DATE_EPOCH" {} +
}

tarball() { # NAME: archive payloads/NAME/* as OUT/NAME.tar.gz
    normalized "$1"
    (cd "$work/$1" && find . -mindepth 1 -print0 | LC_ALL=C sort -z |
        tar --null --no-recursion -T - --mtime=@"$SOURCE_DATE_EPOCH" \
            --owner=0 --group=0 --numeric-owner --format=gnu -cf -) |
        gzip -n -9 > "$out/$1.tar.gz"
}

deb() { # NAME VERSION: build payloads/NAME as OUT/NAME_VERSION_all.deb
    normalized "$1"
    dpkg-deb --root-owner-group -Zgzip -z9 --build "$work/$1" "$out/$1_$2_all.deb" >/dev/null
}

deb notes-client 9.0.1
tarball notes-designer
tarball jre
tarball notes-help
tarball notes-sdk
cp "$here/domino-admin/install-admin-tools.sh" "$here/mail-lite/install-mail-lite.sh" "$out/"
