#!/bin/sh
# build-image.sh — `make image`: the codemode OCI image, built offline with
# podman from Debian packages only (no registry is needed or contacted).
#   1. base: a minimal Debian 12 root (mmdebstrap --variant=minbase from the
#      Debian mirror apt already uses, base-packages.txt), imported as
#      localhost/codemode-base:<key>; <key> hashes this script and the
#      package list, so the base is built once and reused (its tarball is
#      kept in build/image/ too, so a `podman system reset` costs an import,
#      not a bootstrap).
#   2. image: deploy/Containerfile on that base installs the package
#      `make deb` built (binary, rootfs profiles, config, units) with dpkg —
#      localhost/codemode:<version>, rebuilt only when the .deb changed
#      (podman's layer cache keys on the COPYed file's content).
#   usage: build-image.sh VERSION DEB     prints the image name
set -eu
VERSION=$1
DEB=$2
HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$(cd "$HERE/../.." && pwd)
OUT=$SRC/build/image
command -v podman >/dev/null || { echo "image: podman missing (make deps)" >&2; exit 1; }
command -v mmdebstrap >/dev/null || { echo "image: mmdebstrap missing (make deps)" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "image: needs root (mmdebstrap root mode, rootful podman)" >&2; exit 1; }
# The OCI runtime: runc by default — crun 1.8 (Debian 12) refuses v1 hosts
# whose cgroup2 mount has a controller ("hybrid mode not supported").
RUNTIME=${CODEMODE_OCI_RUNTIME:-runc}
mkdir -p "$OUT"
KEY=$(cat "$HERE/build-image.sh" "$HERE/base-packages.txt" | sha256sum | cut -c1-16)
BASE=localhost/codemode-base:$KEY
if ! podman image exists "$BASE"; then
    if [ ! -f "$OUT/base-$KEY.tar" ]; then
        PKGS=$(grep -v '^#' "$HERE/base-packages.txt" | tr '\n' ',' | sed 's/,,*/,/g; s/^,//; s/,$//')
        echo "image: mmdebstrap bookworm base ($PKGS)" >&2
        rm -f "$OUT"/base-*.tar "$OUT/base.tar.tmp"
        # No docs, man pages, locales or apt lists: the image only runs the engine.
        mmdebstrap --variant=minbase --mode=root --quiet --format=tar \
            --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
            --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/info/*' \
            --aptopt='APT::Install-Recommends "false"' \
            --include="$PKGS" \
            --customize-hook='rm -rf "$1"/var/cache/apt/* "$1"/var/lib/apt/lists/*' \
            bookworm "$OUT/base.tar.tmp" \
            "deb http://deb.debian.org/debian bookworm main" \
            "deb http://deb.debian.org/debian bookworm-updates main" \
            "deb http://deb.debian.org/debian-security bookworm-security main"
        mv "$OUT/base.tar.tmp" "$OUT/base-$KEY.tar"
    fi
    podman import --quiet --change 'CMD ["/bin/sh"]' "$OUT/base-$KEY.tar" "$BASE" >/dev/null
    # older bases of this checkout: untag them (by their exact names only)
    podman images --format '{{.Repository}}:{{.Tag}}' localhost/codemode-base |
        grep -v ":$KEY\$" | while read -r old; do podman rmi "$old" >/dev/null 2>&1 || true; done
fi
CTX=$OUT/context
rm -rf "$CTX"
mkdir -p "$CTX"
cp "$SRC/$DEB" "$CTX/codemode.deb"
OLD_ID=$(podman image inspect --format '{{.Id}}' "localhost/codemode:$VERSION" 2>/dev/null || true)
# --network none: nothing in the build fetches anything
podman --runtime "$RUNTIME" build --quiet --network none --build-arg BASE="$BASE" \
    --label org.opencontainers.image.version="$VERSION" \
    -f "$HERE/../Containerfile" -t "localhost/codemode:$VERSION" "$CTX" >/dev/null
# the image this tag named before, now untagged: removed (by its id only;
# kept if a container still uses it)
NEW_ID=$(podman image inspect --format '{{.Id}}' "localhost/codemode:$VERSION")
if [ -n "$OLD_ID" ] && [ "$OLD_ID" != "$NEW_ID" ]; then
    podman rmi "$OLD_ID" >/dev/null 2>&1 || true
fi
echo "localhost/codemode:$VERSION"
