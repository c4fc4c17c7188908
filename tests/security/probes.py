"""Escape attempts, each a chain in the wide-import mode (engine.imports: all).

Every probe returns a normalised outcome so the test can assert the exact
failure: ["errno", "EPERM"], ["ok"], ["value", x], or (for probes that end
the chain) the engine's error kind, ["error", "memory_limit"].

PRELUDE is prepended to each probe: raw system calls through ctypes, so the
probes hit the kernel directly (the language layer is out of the way)."""

PRELUDE = r'''
import ctypes, errno, io, os, socket
_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
def _arg(x):
    return ctypes.c_long(x) if isinstance(x, int) else x
def sysc(nr, *args):
    ctypes.set_errno(0)
    r = _libc.syscall(ctypes.c_long(nr), *[_arg(a) for a in args])
    if r < 0:
        e = ctypes.get_errno()
        return ["errno", errno.errorcode.get(e, str(e))]
    return ["ok"]
def attempt(fn):
    try:
        fn()
        return ["ok"]
    except OSError as e:
        return ["errno", errno.errorcode.get(e.errno, str(e.errno))]
def cstr(s):
    return ctypes.c_char_p(s.encode())
'''

# x86_64 system call numbers
NR = dict(ptrace=101, setuid=105, setgroups=116, mknod=133, personality=135, pivot_root=155,
          acct=163, settimeofday=164, mount=165, swapon=167, reboot=169, sethostname=170,
          setdomainname=171, init_module=175, clock_settime=227, kexec_load=246, add_key=248,
          request_key=249, keyctl=250, unshare=272, perf_event_open=298, open_by_handle_at=304,
          setns=308, process_vm_readv=310, finit_module=313, bpf=321, userfaultfd=323,
          io_uring_setup=425, open_tree=428, fsopen=430, clone3=435, chroot=161, clone=56,
          ioctl=16)

CLONE_NEWUSER = 0x10000000
CLONE_NEWNS = 0x00020000
CLONE_NEWNET = 0x40000000
TIOCSTI = 0x5412


def S(name, *args):
    """A probe that is a single raw system call."""
    return "return sysc(%d%s)" % (NR[name], "".join(", " + a for a in args))


# (name, code, expected outcome with every layer on).  {engine_pid},
# {tcp_port}, {udp_port}, {abstract}, {config_path} are filled in by the test.
PROBES = [
    # -- nested user namespaces and namespace escapes
    ("userns_unshare", S("unshare", str(CLONE_NEWUSER)), ["errno", "EPERM"]),
    ("userns_clone", S("clone", str(CLONE_NEWUSER | 17), "0", "0", "0", "0"), ["errno", "EPERM"]),
    ("clone3_enosys", "buf = ctypes.create_string_buffer(88)\n" + S("clone3", "buf", "8"),
     ["errno", "ENOSYS"]),
    ("threads_still_work",
     "import threading\nt = threading.Thread(target=lambda: None)\nt.start(); t.join()\n"
     "return ['ok']", ["ok"]),
    ("netns_unshare", S("unshare", str(CLONE_NEWNET)), ["errno", "EPERM"]),
    ("setns", S("setns", "0", "0"), ["errno", "EPERM"]),
    # -- mounts, new mount API, chroot/pivot
    ("mount_tmpfs", S("mount", "cstr('none')", "cstr('/tmp')", "cstr('tmpfs')", "0", "0"),
     ["errno", "EPERM"]),
    ("mount_proc", S("mount", "cstr('proc')", "cstr('/tmp')", "cstr('proc')", "0", "0"),
     ["errno", "EPERM"]),
    ("mount_cgroupfs_release_agent",
     S("mount", "cstr('cgroup')", "cstr('/tmp')", "cstr('cgroup')", "0", "cstr('memory')"),
     ["errno", "EPERM"]),
    ("fsopen_new_mount_api", S("fsopen", "cstr('tmpfs')", "0"), ["errno", "EPERM"]),
    ("open_tree", S("open_tree", "-100", "cstr('/')", "1"), ["errno", "EPERM"]),
    ("chroot", S("chroot", "cstr('/tmp')"), ["errno", "EPERM"]),
    ("pivot_root", S("pivot_root", "cstr('/tmp')", "cstr('/tmp')"), ["errno", "EPERM"]),
    # -- other processes
    ("ptrace_init", S("ptrace", "16", "1", "0", "0"), ["errno", "EPERM"]),
    ("process_vm_readv_init",
     "class iov(ctypes.Structure):\n    _fields_ = [('b', ctypes.c_void_p), ('n', ctypes.c_size_t)]\n"
     "buf = ctypes.create_string_buffer(8)\nl = iov(ctypes.cast(buf, ctypes.c_void_p), 8)\n"
     "r = iov(ctypes.cast(buf, ctypes.c_void_p), 8)\n" +
     S("process_vm_readv", "1", "ctypes.byref(l)", "1", "ctypes.byref(r)", "1", "0"),
     ["errno", "EPERM"]),
    ("signal_engine", "return attempt(lambda: os.kill({engine_pid}, 9))", ["errno", "ESRCH"]),
    ("signal_test_process", "return attempt(lambda: os.kill({test_pid}, 9))", ["errno", "ESRCH"]),
    ("kill_init_survives", "os.kill(1, 9)\nimport time\ntime.sleep(0.1)\nreturn ['value', 'alive']",
     ["value", "alive"]),
    # -- /proc tricks and host secrets
    ("proc_1_root", "return attempt(lambda: io.open('/proc/1/root/etc/passwd'))",
     ["errno", "ENOENT"]),
    ("proc_self_exe", "return attempt(lambda: os.open('/proc/self/exe', os.O_RDONLY))",
     ["errno", "ENOENT"]),
    ("proc_engine_environ", "return attempt(lambda: io.open('/proc/{engine_pid}/environ'))",
     ["errno", "ENOENT"]),
    ("etc_shadow", "return attempt(lambda: io.open('/etc/shadow'))", ["errno", "ENOENT"]),
    ("engine_config", "return attempt(lambda: io.open('{config_path}'))", ["errno", "ENOENT"]),
    ("engine_environment",
     "return ['value', sorted(os.environ.keys())]", ["value", ["LANG"]]),
    # -- network
    ("tcp_host_loopback",
     "return attempt(lambda: socket.create_connection(('127.0.0.1', {tcp_port}), 2))",
     ["errno", "EPERM"]),
    ("udp_host_loopback",
     "return attempt(lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM)"
     ".sendto(b'x', ('127.0.0.1', {udp_port})))", ["errno", "EPERM"]),
    ("raw_socket",
     "return attempt(lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW, 1))",
     ["errno", "EPERM"]),
    ("packet_socket",
     "return attempt(lambda: socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0))",
     ["errno", "EPERM"]),
    ("host_abstract_unix_socket",
     "def f():\n    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\n"
     "    s.connect('\\0{abstract}')\nreturn attempt(f)", ["errno", "EPERM"]),
    # -- filesystem
    ("write_rootfs", "return attempt(lambda: io.open('/usr/lib/python3.11/evil.py', 'w'))",
     ["errno", "EROFS"]),
    ("exec_from_tmp",
     "with io.open('/tmp/x.sh', 'w') as f:\n    f.write('#!/usr/bin/python3.11\\n')\n"
     "os.chmod('/tmp/x.sh', 0o755)\nreturn attempt(lambda: os.execv('/tmp/x.sh', ['x']))",
     ["errno", "EACCES"]),
    ("setuid_change", S("setuid", "1000"), ["errno", "EPERM"]),
    ("setgroups", "g = (ctypes.c_uint * 1)(0)\n" + S("setgroups", "1", "g"), ["errno", "EPERM"]),
    ("tmp_is_nosuid_noexec",
     "f = os.statvfs('/tmp').f_flag\nreturn ['value', bool(f & os.ST_NOSUID) and "
     "bool(f & os.ST_NOEXEC) and bool(f & os.ST_NODEV)]", ["value", True]),
    ("mknod_device", S("mknod", "cstr('/tmp/sda')", str(0o60600), str(8 << 8)),
     ["errno", "EPERM"]),
    ("open_dev_mem", "return attempt(lambda: io.open('/dev/mem', 'rb'))", ["errno", "ENOENT"]),
    # -- attack-surface syscalls
    ("bpf", S("bpf", "5", "0", "0"), ["errno", "EPERM"]),
    ("perf_event_open", "a = ctypes.create_string_buffer(128)\n" +
     S("perf_event_open", "a", "0", "-1", "-1", "0"), ["errno", "EPERM"]),
    ("keyctl", S("keyctl", "0", "-3", "0"), ["errno", "EPERM"]),
    ("add_key", S("add_key", "cstr('user')", "cstr('k')", "cstr('v')", "1", "-3"),
     ["errno", "EPERM"]),
    ("userfaultfd", S("userfaultfd", "0"), ["errno", "EPERM"]),
    ("io_uring_setup", "p = ctypes.create_string_buffer(120)\n" + S("io_uring_setup", "1", "p"),
     ["errno", "EPERM"]),
    ("tiocsti", "c = ctypes.c_char(b'x')\n" + S("ioctl", "0", str(TIOCSTI), "ctypes.byref(c)"),
     ["errno", "EPERM"]),
    ("tiocsti_high_bits", "c = ctypes.c_char(b'x')\n" +
     S("ioctl", "0", str((1 << 32) | TIOCSTI), "ctypes.byref(c)"), ["errno", "EPERM"]),
    ("init_module", S("init_module", "0", "0", "cstr('')"), ["errno", "EPERM"]),
    ("finit_module", S("finit_module", "0", "cstr('')", "0"), ["errno", "EPERM"]),
    ("kexec_load", S("kexec_load", "0", "0", "0", "0"), ["errno", "EPERM"]),
    ("reboot", S("reboot", "0xfee1dead", "672274793", "0x4321fedc", "0"), ["errno", "EPERM"]),
    ("swapon", S("swapon", "cstr('/tmp/swap')", "0"), ["errno", "EPERM"]),
    ("acct", S("acct", "cstr('/tmp/acct')"), ["errno", "EPERM"]),
    ("open_by_handle_at", S("open_by_handle_at", "-100", "0", "0"), ["errno", "EPERM"]),
    ("sethostname", S("sethostname", "cstr('evil')", "4"), ["errno", "EPERM"]),
    ("settimeofday", "tv = (ctypes.c_long * 2)(0, 0)\n" + S("settimeofday", "tv", "0"),
     ["errno", "EPERM"]),
    ("clock_settime", "ts = (ctypes.c_long * 2)(0, 0)\n" + S("clock_settime", "0", "ts"),
     ["errno", "EPERM"]),
    # -- resources
    ("memory_bomb", "x = []\nwhile True:\n    x.append(b'x' * (8 << 20))", ["error", "memory_limit"]),
    ("fork_bomb",
     "n = 0\ntry:\n    while True:\n        if os.fork() == 0:\n            import time\n"
     "            time.sleep(30)\n            os._exit(0)\n        n += 1\n"
     "except OSError as e:\n    return ['errno', errno.errorcode[e.errno]]", ["errno", "EAGAIN"]),
    ("cpu_spin", "while True:\n    pass", ["error", "timeout"]),
    ("tmpfs_fill",
     "def f():\n    for i in range(1000):\n        with io.open('/tmp/f%d' % i, 'wb') as fh:\n"
     "            fh.write(b'x' * (1 << 20))\nreturn attempt(f)", ["errno", "ENOSPC"]),
    ("fd_exhaustion",
     "fds = []\ndef f():\n    while True:\n        fds.append(os.open('/dev/null', os.O_RDONLY))\n"
     "return attempt(f)", ["errno", "EMFILE"]),
    ("huge_stdout", "while True:\n    print('x' * 10000)", ["error", "output_limit"]),
    ("huge_return", "return 'x' * (8 << 20)", ["error", "output_limit"]),
]
