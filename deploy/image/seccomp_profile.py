"""The engine container's seccomp profile, derived from the container
runtime's default one (podman's /usr/share/containers/seccomp.json): the same
allow-list, except that bpf, sethostname and setdomainname are allowed
without CAP_SYS_ADMIN.  Why: the default profile allows those three only to
a container holding CAP_SYS_ADMIN, and the engine needs them without it —
bpf() loads the eBPF guard (with CAP_BPF + CAP_NET_ADMIN), sethostname and
setdomainname name each sandbox's own UTS namespace.  Granting
CAP_SYS_ADMIN instead would also let the container's root mount, write
global sysctls and much more; this way it gets three syscalls.

Usage: python3 seccomp_profile.py [DEFAULT_PROFILE] OUT"""
import json
import sys

WANTED = ("bpf", "sethostname", "setdomainname")


def derive(profile):
    out = []
    for rule in profile["syscalls"]:
        names = [n for n in rule["names"] if n not in WANTED]
        gated = rule.get("includes", {}).get("caps") or rule.get("excludes", {}).get("caps")
        if gated and names != rule["names"]:
            if names:  # the rest keep their capability condition
                out.append(dict(rule, names=names))
            continue
        out.append(rule)
    out.append({"names": list(WANTED), "action": "SCMP_ACT_ALLOW",
                "comment": "codemode engine: eBPF guard and sandbox UTS names"})
    return dict(profile, syscalls=out)


def main():
    args = sys.argv[1:]
    if len(args) not in (1, 2):
        sys.exit(__doc__.strip().splitlines()[-1])
    src = args[0] if len(args) == 2 else "/usr/share/containers/seccomp.json"
    with open(src) as f:
        profile = json.load(f)
    with open(args[-1] + ".tmp", "w") as f:
        json.dump(derive(profile), f, indent=1)
    import os
    os.replace(args[-1] + ".tmp", args[-1])


if __name__ == "__main__":
    main()
