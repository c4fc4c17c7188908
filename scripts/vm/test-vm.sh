#!/bin/sh
# test-vm.sh — `make test-vm`: boots the test VM (vm-image.sh) under KVM and
# runs the suites inside with cgroup v2, streaming the guest's console.
# Why a VM: this host is cgroup v1, so the engine's v2 paths (memory.events,
# cpu.max, pids.max, cgroup.kill, the guard on a v2 group, delegation) run
# nowhere else; the guest also brings a second kernel (Debian 12's 6.1).
# Exit status: the guest suites' (CM-VM-STATUS on the console); 2 without a
# usable /dev/kvm; 1 when the guest dies or times out before reporting.
# The one qemu started here is killed by its pid on every way out.
#   test-vm.sh --check   exit 0 when /dev/kvm can run the guest, else say why
#   test-vm.sh --preflight   only the accelerator check (make test-vm runs it first)
#   env: VM_ACCEL (kvm, or tcg: software emulation, no /dev/kvm needed, slow),
#        VM_SUITES (default vm,integration,security), VM_MEM_MB (3072),
#        VM_TIMEOUT (seconds, default 900 under kvm, 3000 under tcg)
set -u
SRC=$(cd "$(dirname "$0")/../.." && pwd)
OUT=$SRC/build/vm
SUITES=${VM_SUITES:-vm,integration,security}
MEM=${VM_MEM_MB:-3072}
ACCEL=${VM_ACCEL:-kvm}
# A usable /dev/kvm: KVM API 12, read-write, and hardware virtualization.
# kvm_pvm (PVM, a paravirtualized KVM for hosts without VT-x, this kind of
# machine) answers the same API but cannot run a stock kernel: Debian's 6.1
# stops with "emulation failure" (lock cmpxchg16b) about a minute into boot.
kvm_problem() {
    if ! /usr/bin/python3.11 -c 'import fcntl, os
fd = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
assert fcntl.ioctl(fd, 0xAE00) == 12  # KVM_GET_API_VERSION' 2>/dev/null; then
        echo "/dev/kvm is missing or not usable (need KVM API 12, read-write)"
    elif [ -d /sys/module/kvm_pvm ] && ! [ -d /sys/module/kvm_intel ] && ! [ -d /sys/module/kvm_amd ]; then
        echo "/dev/kvm is kvm_pvm (PVM, no hardware virtualization), which cannot run Debian's stock kernel (emulation failure during boot)"
    fi
}
problem=$(kvm_problem)
if [ "${1:-}" = --check ]; then
    [ -z "$problem" ] && exit 0
    echo "test-vm: skipped: $problem; run \`make test-vm VM_ACCEL=tcg\` to boot the cgroup v2 guest under software emulation" >&2
    exit 1
fi
case $ACCEL in
kvm)
    if [ -n "$problem" ]; then
        echo "test-vm: $problem: cannot boot the cgroup v2 test VM with KVM. Use \`make test-vm VM_ACCEL=tcg\` for software emulation (slow)." >&2
        exit 2
    fi
    ACCEL_ARGS="-enable-kvm -cpu host"
    LIMIT=${VM_TIMEOUT:-900}
    ;;
tcg)
    ACCEL_ARGS="-accel tcg,thread=multi -cpu max"
    LIMIT=${VM_TIMEOUT:-3000}
    ;;
*)
    echo "test-vm: VM_ACCEL must be kvm or tcg" >&2
    exit 2
    ;;
esac
[ "${1:-}" = --preflight ] && exit 0
command -v qemu-system-x86_64 >/dev/null || { echo "test-vm: qemu-system-x86_64 missing (make deps)" >&2; exit 2; }
for f in vmlinux initrd.img base.img payload.img; do
    [ -f "$OUT/$f" ] || { echo "test-vm: build/vm/$f missing (make vm-image)" >&2; exit 1; }
done
CONSOLE=$OUT/console.log
rm -f "$OUT/doctor.txt" "$CONSOLE"
: >"$OUT/doctor.txt"
QPID=
WPID=
cleanup() {
    [ -n "$WPID" ] && kill "$WPID" 2>/dev/null
    if [ -n "$QPID" ] && kill -0 "$QPID" 2>/dev/null; then
        kill "$QPID" 2>/dev/null
        sleep 1
        kill -9 "$QPID" 2>/dev/null
    fi
    [ -n "$QPID" ] && wait "$QPID" 2>/dev/null
    QPID=
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP
t0=$(date +%s.%N)
echo "test-vm: booting $(cat "$OUT/kernel-version") ($ACCEL, 2 vCPUs, $MEM MiB), suites $SUITES"
# shellcheck disable=SC2086
qemu-system-x86_64 $ACCEL_ARGS -smp 2 -m "$MEM" -no-reboot -nodefaults \
    -display none -monitor none -nic none \
    -kernel "$OUT/vmlinux" -initrd "$OUT/initrd.img" \
    -append "console=ttyS0 root=/dev/vda rw init=/usr/local/sbin/cm-vm-init quiet loglevel=3 panic=-1 cgroup_no_v1=all systemd.unified_cgroup_hierarchy=1 cm.src=$SRC cm.suites=$SUITES cm.accel=$ACCEL" \
    -drive "file=$OUT/base.img,if=virtio,format=raw,snapshot=on" \
    -drive "file=$OUT/payload.img,if=virtio,format=raw,snapshot=on" \
    -serial "file:$CONSOLE" -serial "file:$OUT/doctor.txt" </dev/null &
QPID=$!
# the watchdog: only ever kills this qemu, by its pid
( sleep "$LIMIT"; echo "test-vm: guest still running after ${LIMIT}s, killing it" >&2; kill "$QPID" 2>/dev/null ) &
WPID=$!
# stream the console while qemu runs
tail -n +1 -F --pid="$QPID" "$CONSOLE" 2>/dev/null &
TPID=$!
wait "$QPID"
QPID=
wait "$TPID" 2>/dev/null
kill "$WPID" 2>/dev/null
WPID=
t1=$(date +%s.%N)
status=$(sed -n 's/^CM-VM-STATUS \([0-9]*\).*/\1/p' "$CONSOLE" | tail -1)
echo "test-vm: guest ran $(awk "BEGIN { printf \"%.1f\", $t1 - $t0 }") s; doctor report in build/vm/doctor.txt"
if [ -z "$status" ]; then
    echo "test-vm: the guest stopped without reporting a status (see build/vm/console.log)" >&2
    exit 1
fi
exit "$status"
