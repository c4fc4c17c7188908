/* guard.bpf.c — the eBPF guard programs (compiled with clang -target bpf,
 * embedded by bpftool gen skeleton; loaded and attached by guard.c). */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

/* Every IPv4/IPv6 socket a sandbox tries to create fails with EPERM. */
SEC("cgroup/sock_create")
int cm_deny_inet_socket(struct bpf_sock *sk)
{
    (void)sk;
    return 0;
}

/* Devices: only the character devices 1:3 null, 1:5 zero, 1:9 urandom. */
SEC("cgroup/dev")
int cm_allow_std_devices(struct bpf_cgroup_dev_ctx *ctx)
{
    unsigned int type = ctx->access_type & 0xffff;
    if (type == BPF_DEVCG_DEV_CHAR && ctx->major == 1 &&
        (ctx->minor == 3 || ctx->minor == 5 || ctx->minor == 9))
        return 1;
    return 0;
}

char LICENSE[] SEC("license") = "GPL";
