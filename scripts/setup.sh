#!/usr/bin/env bash
# Installs what Roleout needs to build, test and run on Debian: slapd and
# ldap-utils (the managed local directory), 389-ds-base (the second
# supported directory, for the tests), dpkg-dev tools, and a Rust
# toolchain if there is none. Safe to run again: it installs only what is
# missing. Runs apt-get as root, or through sudo.
set -euo pipefail

need_packages=()
command -v slapd >/dev/null 2>&1 || [ -x /usr/sbin/slapd ] || need_packages+=(slapd)
command -v ldapsearch >/dev/null 2>&1 || need_packages+=(ldap-utils)
# The directory crate's tests also run against 389 Directory Server.
[ -x /usr/sbin/ns-slapd ] || need_packages+=(389-ds-base)
command -v dpkg-deb >/dev/null 2>&1 || need_packages+=(dpkg)
command -v gzip >/dev/null 2>&1 || need_packages+=(gzip)
command -v cc >/dev/null 2>&1 || need_packages+=(gcc libc6-dev)
command -v git >/dev/null 2>&1 || need_packages+=(git)
command -v curl >/dev/null 2>&1 || need_packages+=(curl ca-certificates)
command -v tmux >/dev/null 2>&1 || need_packages+=(tmux)
# Tree tests compare what Roleout captures and makes with these tools.
command -v getfattr >/dev/null 2>&1 || need_packages+=(attr)
command -v setfacl >/dev/null 2>&1 || need_packages+=(acl)
command -v setcap >/dev/null 2>&1 || [ -x /usr/sbin/setcap ] || need_packages+=(libcap2-bin)
# Partition tables Roleout writes are checked against sfdisk's reading.
command -v sfdisk >/dev/null 2>&1 || [ -x /usr/sbin/sfdisk ] || need_packages+=(fdisk)
# A target made from an image gets new SSH host keys.
command -v ssh-keygen >/dev/null 2>&1 || need_packages+=(openssh-client)
# Namespace machines: offset loop devices, file systems, mount namespaces;
# image files are tampered with through the zstd command.
command -v losetup >/dev/null 2>&1 || [ -x /usr/sbin/losetup ] || need_packages+=(mount)
command -v blkid >/dev/null 2>&1 || [ -x /usr/sbin/blkid ] || need_packages+=(util-linux)
command -v mkfs.ext4 >/dev/null 2>&1 || [ -x /usr/sbin/mkfs.ext4 ] || need_packages+=(e2fsprogs)
command -v zstd >/dev/null 2>&1 || need_packages+=(zstd)
# The dashboard's tests drive Debian's headless Chromium; its /metrics is
# checked by promtool, from the prometheus package.
command -v chromium >/dev/null 2>&1 || need_packages+=(chromium fonts-dejavu-core)
command -v promtool >/dev/null 2>&1 || need_packages+=(prometheus)
# The Debian packages (roleout-package): their library dependencies are
# worked out by dpkg-shlibdeps, their units checked by systemd-analyze, and
# their maintainer scripts make the service user with useradd --root.
command -v dpkg-shlibdeps >/dev/null 2>&1 || need_packages+=(dpkg-dev)
command -v systemd-analyze >/dev/null 2>&1 || need_packages+=(systemd)
command -v useradd >/dev/null 2>&1 || [ -x /usr/sbin/useradd ] || need_packages+=(passwd)

if [ ${#need_packages[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "roleout setup: installing ${need_packages[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq --no-install-recommends "${need_packages[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
    if [ -x "$HOME/.cargo/bin/cargo" ]; then
        export PATH="$HOME/.cargo/bin:$PATH"
    else
        echo "roleout setup: installing the Rust toolchain with rustup" >&2
        curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal >/dev/null
        export PATH="$HOME/.cargo/bin:$PATH"
    fi
fi
