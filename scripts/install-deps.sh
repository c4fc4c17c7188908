#!/bin/sh
# install-deps.sh — installs the Debian packages codemode builds and tests
# with, only those missing.  Idempotent and silent when all are present.
# podman/buildah/runc/catatonit (pod infra image)/uidmap build and run the OCI
# image and play the Kubernetes manifests; systemd brings systemd-analyze and
# systemd-socket-activate (make deploy-test).
set -eu
PKGS="gcc make pkg-config libc6-dev libcurl4-openssl-dev libcjson-dev libyaml-dev libcap-dev
libseccomp-dev libbpf-dev libcmocka-dev python3.11 libpython3.11-dev clang bpftool iproute2
util-linux socat scdoc python3-yaml libssl-dev libclang-rt-14-dev valgrind
qemu-system-x86 mmdebstrap e2fsprogs mypy libmicrohttpd-dev
podman buildah runc catatonit uidmap systemd"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
# node + npm run the MCP reference servers in the provider tests (any packaging will do)
command -v npm >/dev/null 2>&1 || missing="$missing nodejs npm"
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
    echo "install-deps: missing packages:$missing (run as root, or install them)" >&2
    exit 1
fi
echo "install-deps: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
