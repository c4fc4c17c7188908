#!/usr/bin/python3.11
"""guest_init.py — pid 1 of the test VM (started by cm-vm-init).

Why a Python pid 1 and not a shell: the suites SIGKILL engines and leave
orphans that are re-parented to pid 1, and the clean-up tests count the
processes left behind, so pid 1 must reap every zombie at once — a shell
waiting on its foreground job does not.  It sets the machine up the way a
cgroup-v2 host with systemd looks to the engine: cgroup2 (nsdelegate) on
/sys/fs/cgroup with +memory +cpu +pids enabled in the root, a cm.slice whose
children get the same controllers (the place tests create delegated
subtrees, as systemd's Delegate=yes gives a service), loopback up, no other
network.  Then it runs guest-run.sh (the suites), reports its exit status on
the console as `CM-VM-STATUS <n>` and powers the machine off."""
import os
import subprocess
import sys

SRC = sys.argv[1]


def run(*argv):
    return subprocess.run(argv, check=False).returncode


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def setup():
    for target, fstype, opts in (("/tmp", "tmpfs", "mode=1777"), ("/run", "tmpfs", "mode=755"),
                                 ("/dev/shm", "tmpfs", "mode=1777"),
                                 ("/sys/fs/cgroup", "cgroup2", "nsdelegate"),
                                 ("/sys/fs/bpf", "bpf", "mode=700")):
        os.makedirs(target, exist_ok=True)
        if run("mountpoint", "-q", target) != 0:
            run("mount", "-t", fstype, "-o", opts, fstype, target)
    # a disposable machine: / is the snapshot of the base image, writable
    run("mount", "-o", "remount,rw", "/")
    run("ip", "link", "set", "lo", "up")
    run("dmesg", "-n", "1")  # keep kernel messages (OOM kills the tests cause) off the console
    write("/sys/fs/cgroup/cgroup.subtree_control", "+memory +cpu +pids")
    os.makedirs("/sys/fs/cgroup/cm.slice", exist_ok=True)
    write("/sys/fs/cgroup/cm.slice/cgroup.subtree_control", "+memory +cpu +pids")
    os.environ.update(PATH=SRC + "/build/vm-bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:"
                      "/sbin:/bin", HOME="/root", LANG="C.UTF-8", CODEMODE_VM="1")


def main():
    try:
        setup()
    except OSError as e:
        print("guest_init: set-up failed: %s" % e, flush=True)
    child = os.fork()
    if child == 0:
        os.chdir(SRC)
        os.execv("/bin/sh", ["/bin/sh", SRC + "/scripts/vm/guest-run.sh", SRC])
    rc = 126
    while True:
        try:
            pid, status = os.waitpid(-1, 0)
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        if pid == child:
            rc = os.waitstatus_to_exitcode(status)
            break
    print("CM-VM-STATUS %d" % rc, flush=True)
    os.sync()
    write("/proc/sysrq-trigger", "o")


if __name__ == "__main__":
    main()
