#!/bin/sh
# vm-image.sh — `make vm-image`: the test VM's two disks under build/vm/.
#   base.img     Debian 12 + Debian's 6.1 kernel and initramfs (build-base.sh,
#                cached by a hash of its inputs)
#   payload.img  this checkout as built here: sources and tests (git's file
#                list, untracked files included), build/codemode, the
#                rootfs profiles, build/share, build/npm and the host's node
#                (the MCP servers the suites start); mounted in the guest at
#                the checkout's own path, so every absolute path the suites
#                use is the same inside.  Rebuilt only when one of its files
#                is newer than it or the file list changed.
# Why copy instead of sharing the checkout over 9p: the sandboxes bind-mount
# the rootfs and CPython imports thousands of files per suite; a local ext4
# is fast and has the mount semantics of a real host.  Both disks are opened
# with snapshot=on: nothing the guest writes reaches them.
set -eu
SRC=$(cd "$(dirname "$0")/../.." && pwd)
OUT=$SRC/build/vm
"$SRC/scripts/vm/build-base.sh" "$OUT"
# The uncompressed kernel (ELF with a PVH entry, which qemu boots directly):
# no bzImage decompressor to run, which is slow under software emulation.
if [ ! -f "$OUT/vmlinux" ] || [ "$OUT/vmlinuz" -nt "$OUT/vmlinux" ]; then
    /usr/bin/python3.11 - "$OUT/vmlinuz" "$OUT/vmlinux" <<'PY'
import lzma, sys
data = open(sys.argv[1], "rb").read()
at = data.find(b"\xfd7zXZ\x00")  # Debian's kernels are xz-compressed
if at < 0:
    sys.exit("vm-image: no xz payload in " + sys.argv[1])
out = lzma.LZMADecompressor().decompress(data[at:])
assert out[:4] == b"\x7fELF", "not an ELF kernel"
open(sys.argv[2] + ".tmp", "wb").write(out)
PY
    mv "$OUT/vmlinux.tmp" "$OUT/vmlinux"
fi
cd "$SRC"
for f in build/codemode build/rootfs.stamp build/rootfs-full.stamp build/npm/.stamp; do
    [ -e "$f" ] || { echo "vm-image: $f missing (make all rootfs npm-deps)" >&2; exit 1; }
done
LIST=$OUT/payload.list
{
    git ls-files -co --exclude-standard | grep -v '^build/' || true
    echo build/codemode
    echo build/rootfs.stamp
    echo build/rootfs-full.stamp
    echo build/rootfs-key.txt
} >"$LIST.new"
DIRS="build/rootfs build/rootfs-full build/share build/npm"
NODE=$(command -v node || true)
KEY=$( (cat "$LIST.new"; echo "$DIRS $NODE") | sha256sum | cut -c1-16)
if [ -f "$OUT/payload.img" ] && [ -f "$OUT/payload.key" ] && [ "$(cat "$OUT/payload.key")" = "$KEY" ] &&
    [ -z "$(find $(cat "$LIST.new") $DIRS -newer "$OUT/payload.img" -print -quit 2>/dev/null)" ]; then
    rm -f "$LIST.new"
    echo "vm-image: build/vm/payload.img up to date"
    exit 0
fi
mv "$LIST.new" "$LIST"
STAGE=$OUT/payload.dir
rm -rf "$STAGE" "$OUT/payload.img" "$OUT/payload.key"
mkdir -p "$STAGE"
# hard links: the staging tree costs no copy; mke2fs -d copies the content
while IFS= read -r f; do
    [ -e "$f" ] || continue
    mkdir -p "$STAGE/$(dirname "$f")"
    cp -al "$f" "$STAGE/$f" 2>/dev/null || cp -a "$f" "$STAGE/$f"
done <"$LIST"
for d in $DIRS; do
    cp -al "$d" "$STAGE/$d"
done
mkdir -p "$STAGE/build/vm-bin"
[ -n "$NODE" ] && cp "$(readlink -f "$NODE")" "$STAGE/build/vm-bin/node"
SIZE_MB=$(( $(du -sm "$STAGE" | cut -f1) * 13 / 10 + 256 ))
mke2fs -q -t ext4 -L cmpayload -d "$STAGE" "$OUT/payload.img" "${SIZE_MB}M"
rm -rf "$STAGE"
echo "$KEY" >"$OUT/payload.key"
echo "vm-image: build/vm/payload.img (${SIZE_MB} MiB), kernel $(cat "$OUT/kernel-version")"
