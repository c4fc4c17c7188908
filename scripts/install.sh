#!/bin/sh
# install.sh — `make install` / `make uninstall`.  Installs under FHS paths
# (binary, rootfs under $LIBDIR, config under $SYSCONFDIR/codemode, man page,
# systemd units, Python client when present), honouring DESTDIR.  Uninstall
# removes what install put there, but keeps configuration files an admin
# changed (it says so).
set -eu
cd "$(dirname "$0")/.."
: "${PREFIX:=/usr/local}" "${DESTDIR:=}" "${SYSCONFDIR:=/etc}"
: "${BINDIR:=$PREFIX/bin}" "${LIBDIR:=$PREFIX/lib/codemode}" "${MANDIR:=$PREFIX/share/man/man1}"
: "${UNITDIR:=$PREFIX/lib/systemd/system}" "${PYDIR:=$PREFIX/lib/python3/dist-packages}"
CONF="$DESTDIR$SYSCONFDIR/codemode"
CONF_FILES="codemode.yaml demo-manual.json demo.env"

unit() { # unit NAME: render a systemd unit template with the install paths
    sed -e "s|@BINDIR@|$BINDIR|g" -e "s|@SYSCONFDIR@|$SYSCONFDIR|g" "deploy/systemd/$1.in"
}

# The engine's service user (engine.user's default, as the package's
# postinst makes it): only for an install into the running system as root.
service_user() {
    [ -z "$DESTDIR" ] && [ "$(id -u)" = 0 ] || return 0
    getent group codemode-engine >/dev/null || groupadd --system codemode-engine
    getent passwd codemode >/dev/null || useradd --system --gid codemode-engine \
        --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin codemode
}

do_install() {
    service_user
    install -D -m 0755 build/codemode "$DESTDIR$BINDIR/codemode"
    # the rootfs trees (minimal, and full for widened imports): exactly the
    # built trees (their MANIFESTs), replaced atomically
    mkdir -p "$DESTDIR$LIBDIR"
    for tree in rootfs rootfs-full; do
        [ -d "build/$tree" ] || continue
        rm -rf "$DESTDIR$LIBDIR/$tree.new"
        cp -a "build/$tree" "$DESTDIR$LIBDIR/$tree.new"
        rm -f "$DESTDIR$LIBDIR/$tree.new/.stamp"
        rm -rf "${DESTDIR:?}$LIBDIR/$tree"
        mv "$DESTDIR$LIBDIR/$tree.new" "$DESTDIR$LIBDIR/$tree"
    done
    # the rootfs builder, for `codemode rootfs build` on the installed system
    install -d -m 0755 "$DESTDIR$PREFIX/share/codemode"
    for f in build/share/codemode/*; do install -m 0644 "$f" "$DESTDIR$PREFIX/share/codemode/"; done
    install -d -m 0755 "$CONF"
    for f in $CONF_FILES; do
        if [ -e "$CONF/$f" ] && ! cmp -s "examples/$f" "$CONF/$f"; then
            echo "install: keeping changed $CONF/$f" >&2
        else
            install -m 0644 "examples/$f" "$CONF/$f"
        fi
    done
    if [ -d policies/examples ]; then
        install -d -m 0755 "$CONF/policies"
        for f in policies/examples/*; do [ -f "$f" ] && install -m 0644 "$f" "$CONF/policies/"; done
    fi
    install -d -m 0755 "$DESTDIR$MANDIR"
    gzip -9n < build/codemode.1 > "$DESTDIR$MANDIR/codemode.1.gz"
    install -d -m 0755 "$DESTDIR$UNITDIR"
    for u in codemode.service codemode.socket; do
        unit "$u" > "$DESTDIR$UNITDIR/$u"
        chmod 0644 "$DESTDIR$UNITDIR/$u"
    done
    if [ -d clients/python/utcp_code_mode ]; then
        install -d -m 0755 "$DESTDIR$PYDIR/utcp_code_mode"
        for f in clients/python/utcp_code_mode/*.py; do install -m 0644 "$f" "$DESTDIR$PYDIR/utcp_code_mode/"; done
    fi
    echo "installed codemode into ${DESTDIR:-/}$PREFIX (config $CONF)"
}

do_uninstall() {
    rm -f "$DESTDIR$BINDIR/codemode" "$DESTDIR$MANDIR/codemode.1.gz"
    rm -f "$DESTDIR$UNITDIR/codemode.service" "$DESTDIR$UNITDIR/codemode.socket"
    rm -rf "$DESTDIR$LIBDIR/rootfs" "$DESTDIR$LIBDIR/rootfs-full" "$DESTDIR$PYDIR/utcp_code_mode"
    rm -rf "$DESTDIR$PREFIX/share/codemode"
    rmdir "$DESTDIR$LIBDIR" 2>/dev/null || true
    for f in $CONF_FILES; do
        if [ -e "$CONF/$f" ] && ! cmp -s "examples/$f" "$CONF/$f"; then
            echo "uninstall: keeping changed $CONF/$f" >&2
        else
            rm -f "$CONF/$f"
        fi
    done
    if [ -d "$CONF/policies" ]; then
        for f in policies/examples/*; do
            [ -f "$f" ] && cmp -s "$f" "$CONF/policies/$(basename "$f")" && rm -f "$CONF/policies/$(basename "$f")"
        done
        rmdir "$CONF/policies" 2>/dev/null || true
    fi
    rmdir "$CONF" 2>/dev/null || true
    echo "uninstalled codemode from ${DESTDIR:-/}$PREFIX"
}

case "${1:-}" in
install) do_install ;;
uninstall) do_uninstall ;;
*) echo "usage: install.sh install|uninstall" >&2; exit 2 ;;
esac
