/* guard.c — the eBPF guard: cgroup-attached programs (isolate/guard.bpf.c,
 * compiled by clang and embedded as a libbpf skeleton) on this engine's
 * cgroup2 instance directory, so they apply to every sandbox cgroup below
 * it.  They deny creating IPv4/IPv6 sockets (cgroup/sock_create) and opening
 * any device except /dev/null, /dev/zero and /dev/urandom (cgroup/dev): a
 * second layer under seccomp and the empty network namespace.  Works with
 * v1 controllers too, as long as cgroup2 is mounted (hybrid mode). */
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "guard.skel.h"
#include "isolation.h"
#include "util.h"

struct cm_guard {
    struct cm_guard_bpf *skel;
    int cgroup_fd;
};

/* libbpf prints to stderr by default; the engine reports errors itself. */
static int quiet_libbpf(enum libbpf_print_level level, const char *fmt, va_list ap)
{
    (void)level;
    (void)fmt;
    (void)ap;
    return 0;
}

static int attach_prog(struct cm_guard *g, struct bpf_program *prog, enum bpf_attach_type type,
                       const char *what, cm_error *err)
{
    if (bpf_prog_attach(bpf_program__fd(prog), g->cgroup_fd, type, BPF_F_ALLOW_MULTI) < 0)
        return cm_error_sys(err, CM_ERR_SANDBOX_FAILURE, "attach %s program", what);
    return 0;
}

int cm_guard_attach(cm_isolation *iso, cm_error *err)
{
    if (!iso->cgroups.have_unified)
        return cm_error_set(err, CM_ERR_SANDBOX_FAILURE, "no cgroup2 hierarchy mounted");
    libbpf_set_print(quiet_libbpf);
    struct cm_guard *g = cm_xcalloc(1, sizeof *g);
    g->cgroup_fd = open(iso->cgroups.unified_instance, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (g->cgroup_fd < 0) {
        cm_error_sys(err, CM_ERR_SANDBOX_FAILURE, "open %s", iso->cgroups.unified_instance);
        free(g);
        return -1;
    }
    iso->guard = g;
    g->skel = cm_guard_bpf__open_and_load();
    if (!g->skel) {
        cm_error_sys(err, CM_ERR_SANDBOX_FAILURE, "load eBPF guard programs");
        cm_guard_detach(iso);
        return -1;
    }
    if (attach_prog(g, g->skel->progs.cm_deny_inet_socket, BPF_CGROUP_INET_SOCK_CREATE,
                    "cgroup/sock_create", err) < 0 ||
        attach_prog(g, g->skel->progs.cm_allow_std_devices, BPF_CGROUP_DEVICE, "cgroup/dev", err) <
            0) {
        cm_guard_detach(iso);
        return -1;
    }
    return 0;
}

void cm_guard_detach(cm_isolation *iso)
{
    struct cm_guard *g = iso->guard;
    if (!g)
        return;
    if (g->skel) {
        bpf_prog_detach2(bpf_program__fd(g->skel->progs.cm_deny_inet_socket), g->cgroup_fd,
                         BPF_CGROUP_INET_SOCK_CREATE);
        bpf_prog_detach2(bpf_program__fd(g->skel->progs.cm_allow_std_devices), g->cgroup_fd,
                         BPF_CGROUP_DEVICE);
        cm_guard_bpf__destroy(g->skel);
    }
    close(g->cgroup_fd);
    free(g);
    iso->guard = NULL;
}
