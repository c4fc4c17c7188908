#!/bin/sh
# build-base.sh — the test VM's base image: a minimal Debian 12 made by
# mmdebstrap from Debian's mirror (guest-packages.txt), with Debian's 6.1
# kernel and initramfs copied out next to it.  Why a separate base: it takes
# a minute or two and changes only when this script or the package list
# does, so it is cached under build/vm/ by a hash of both (vm-image.sh builds
# the per-checkout payload disk on top of it in seconds).
#   usage: build-base.sh OUTDIR     -> OUTDIR/base.img, vmlinuz, initrd.img, key
set -eu
OUT=$1
HERE=$(cd "$(dirname "$0")" && pwd)
KEY=$(cat "$HERE/build-base.sh" "$HERE/guest-packages.txt" "$HERE/cm-vm-init" | sha256sum | cut -c1-16)
if [ -f "$OUT/key" ] && [ "$(cat "$OUT/key")" = "$KEY" ] && [ -f "$OUT/base.img" ] &&
    [ -f "$OUT/vmlinuz" ] && [ -f "$OUT/initrd.img" ]; then
    exit 0
fi
command -v mmdebstrap >/dev/null || { echo "vm: mmdebstrap missing (make deps)" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "vm: building the base image needs root (mmdebstrap root mode)" >&2; exit 1; }
mkdir -p "$OUT"
rm -rf "$OUT/base.dir" "$OUT/base.img" "$OUT/key"
PKGS=$(grep -v '^#' "$HERE/guest-packages.txt" | tr '\n' ',' | sed 's/,,*/,/g; s/^,//; s/,$//')
echo "vm: mmdebstrap bookworm ($PKGS)" >&2
# No docs, man pages or locales: the guest only runs the suites.
mmdebstrap --variant=minbase --mode=root --quiet \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/info/*' \
    --aptopt='APT::Install-Recommends "false"' \
    --include="$PKGS" \
    --customize-hook='echo codemode-vm > "$1/etc/hostname"' \
    --customize-hook='mkdir -p "$1/usr/local/sbin" && cp "'"$HERE"'/cm-vm-init" "$1/usr/local/sbin/cm-vm-init"' \
    --customize-hook='rm -rf "$1"/var/cache/apt/* "$1"/var/lib/apt/lists/*' \
    bookworm "$OUT/base.dir" \
    "deb http://deb.debian.org/debian bookworm main" \
    "deb http://deb.debian.org/debian bookworm-updates main" \
    "deb http://deb.debian.org/debian-security bookworm-security main"
cp "$(ls "$OUT"/base.dir/boot/vmlinuz-* | sort -V | tail -1)" "$OUT/vmlinuz"
cp "$(ls "$OUT"/base.dir/boot/initrd.img-* | sort -V | tail -1)" "$OUT/initrd.img"
basename "$(ls "$OUT"/base.dir/boot/vmlinuz-* | sort -V | tail -1)" | sed 's/^vmlinuz-//' >"$OUT/kernel-version"
# ext4 made from the directory (no loop mount); the payload disk adds the checkout.
SIZE_MB=$(( $(du -sm "$OUT/base.dir" | cut -f1) + 512 ))
mke2fs -q -t ext4 -L cmbase -d "$OUT/base.dir" "$OUT/base.img" "${SIZE_MB}M"
rm -rf "$OUT/base.dir"
echo "$KEY" >"$OUT/key"
