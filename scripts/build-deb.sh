#!/bin/sh
# build-deb.sh — `make deb`: stages `make install` with PREFIX=/usr into
# build/deb/root, adds the Debian control files and builds
# build/codemode_<version>_<arch>.deb with dpkg-deb.  Depends: is computed
# from the shared libraries the binary links (dpkg -S), not a hand list.
set -eu
cd "$(dirname "$0")/.."
version=$1
arch=$(dpkg --print-architecture)
root=build/deb/root
rm -rf build/deb
PREFIX=/usr UNITDIR=/lib/systemd/system PYDIR=/usr/lib/python3/dist-packages \
    DESTDIR="$PWD/$root" BINDIR=/usr/bin LIBDIR=/usr/lib/codemode MANDIR=/usr/share/man/man1 \
    SYSCONFDIR=/etc scripts/install.sh install >/dev/null
depends=$(ldd build/codemode | awk '/=> \//{print $3}' | while read -r lib; do
    dpkg -S "$(readlink -f "$lib")" 2>/dev/null || dpkg -S "$lib" 2>/dev/null || true
done | cut -d: -f1 | sort -u | grep -v '^libc6$' | paste -sd, | sed 's/,/, /g')
mkdir -p "$root/DEBIAN"
cat > "$root/DEBIAN/control" <<CONTROL
Package: codemode
Version: $version
Architecture: $arch
Maintainer: codemode developers <codemode@localhost>
Depends: libc6, $depends
Section: admin
Priority: optional
Description: hardened Code Mode engine
 Runs agent-written Python tool chains in per-chain kernel sandboxes
 (namespaces, pivot_root, cgroups, seccomp) and mediates every tool call
 through host-side providers. Serves JSON-RPC (MCP methods) on a Unix socket.
CONTROL
(cd "$root" && find etc -type f | sed 's|^|/|') > "$root/DEBIAN/conffiles"
cat > "$root/DEBIAN/postinst" <<'POSTINST'
#!/bin/sh
set -e
if [ "$1" = configure ]; then
    getent group codemode >/dev/null || addgroup --system codemode >/dev/null
    # the engine's service user (engine.user's default): a group of its own,
    # not the socket's codemode group, so socket clients cannot read the CLI
    # call directories the engine keeps group-readable (isolate/README.md)
    getent group codemode-engine >/dev/null || addgroup --system codemode-engine >/dev/null
    getent passwd codemode >/dev/null || adduser --system --ingroup codemode-engine \
        --no-create-home --home /nonexistent --shell /usr/sbin/nologin codemode >/dev/null
    if [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi
fi
POSTINST
cat > "$root/DEBIAN/postrm" <<'POSTRM'
#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then systemctl daemon-reload || true; fi
if [ "$1" = purge ]; then
    getent passwd codemode >/dev/null && { deluser --system codemode >/dev/null || true; }
    getent group codemode-engine >/dev/null && { delgroup --system codemode-engine >/dev/null || true; }
    getent group codemode >/dev/null && { delgroup --system codemode >/dev/null || true; }
fi
POSTRM
chmod 0755 "$root/DEBIAN/postinst" "$root/DEBIAN/postrm"
out="build/codemode_${version}_${arch}.deb"
dpkg-deb --root-owner-group --build "$root" "$out" >/dev/null
echo "$out"
