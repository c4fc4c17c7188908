#!/bin/sh
# guest-run.sh — what the test VM runs (started by guest_init.py, pid 1):
# `codemode doctor` (to the console and to the second serial port, which the
# host saves as build/vm/doctor.txt), then the suites named by cm.suites= on
# the kernel command line (comma-separated folders under tests/; default
# vm,integration,security), each with its wall time.  Exit status: 0 only
# when doctor and every suite pass.
set -u
SRC=$1
cd "$SRC" || exit 125
PY=/usr/bin/python3.11
export CODEMODE_BIN="$SRC/build/codemode"
# under software emulation (cm.accel=tcg) an engine with a warm pool takes
# longer than the harness's usual 20 s to start
for a in $(cat /proc/cmdline); do
    case $a in cm.accel=tcg) export CODEMODE_TEST_START_S=120 CODEMODE_TEST_EMULATED=1 ;; esac
done
suites="vm,integration,security"
for a in $(cat /proc/cmdline); do
    case $a in cm.suites=*) suites=${a#cm.suites=} ;; esac
done
up=$(cut -d' ' -f1 /proc/uptime)
echo "== guest up ${up}s: kernel $(uname -r), $(nproc) vCPUs, $(awk '/MemTotal/ {print int($2/1024)}' /proc/meminfo) MiB"
{
    echo "# codemode doctor in the test VM (make test-vm)"
    echo "kernel: $(uname -r)"
    echo "/sys/fs/cgroup: $(stat -fc %T /sys/fs/cgroup), root cgroup.subtree_control: $(cat /sys/fs/cgroup/cgroup.subtree_control)"
    "$CODEMODE_BIN" doctor 2>&1
    echo "doctor exit status: $?"
    [ -d /sys/fs/cgroup/codemode ] && echo "/sys/fs/cgroup/codemode cgroup.subtree_control: $(cat /sys/fs/cgroup/codemode/cgroup.subtree_control)"
} >/tmp/doctor.txt
cat /tmp/doctor.txt
cat /tmp/doctor.txt >/dev/ttyS1
rc=0
grep -q '^doctor exit status: 0$' /tmp/doctor.txt || rc=1
total0=$(date +%s)
for suite in $(echo "$suites" | tr ',' ' '); do
    t0=$(date +%s)
    echo "== guest suite $suite"
    $PY scripts/vm/run_suite.py "$suite" || rc=1
    echo "== guest suite $suite: $(($(date +%s) - t0)) s"
done
echo "== guest suites: $(($(date +%s) - total0)) s, status $rc"
exit $rc
