/* netns.c — what a fresh network namespace per chain costs, against entering
 * one prepared empty namespace (issue 18.3's question).  Each round forks a
 * child that either unshare(CLONE_NEWNET)s or setns()es into a namespace
 * made once, then exits; the parent waits.  Wall time per round is what the
 * request path would pay; machine CPU (from /proc/stat, so the kernel's
 * asynchronous cleanup_net work is counted too) is what the machine pays.
 * bench/README.md records the decision it informs.
 *
 * Usage: netns [ROUNDS]   (root) */
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* All CPU time of the machine so far, in ms (user+nice+system+irq+softirq). */
static double machine_cpu_ms(void)
{
    FILE *f = fopen("/proc/stat", "re");
    if (!f)
        return 0;
    unsigned long long v[7] = {0};
    int n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4],
                   &v[5], &v[6]);
    fclose(f);
    if (n != 7)
        return 0;
    double ticks = (double)(v[0] + v[1] + v[2] + v[5] + v[6]);
    return ticks * 1000.0 / (double)sysconf(_SC_CLK_TCK);
}

#define HOST_NS -2 /* stay in the host's namespace: the fork + exit baseline */

/* One round: a child enters a network namespace (a fresh one when
 * prepared is -1, none for HOST_NS) and exits. */
static int round_trip(int prepared)
{
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int rc = prepared == HOST_NS ? 0
                 : prepared < 0      ? unshare(CLONE_NEWNET)
                                     : setns(prepared, CLONE_NEWNET);
        _exit(rc == 0 ? 0 : 1);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0)
        ;
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

static void measure(const char *label, int prepared, int rounds)
{
    usleep(500000); /* let the previous run's namespace cleanup finish */
    double cpu0 = machine_cpu_ms(), t0 = now_ms();
    for (int i = 0; i < rounds; i++)
        if (round_trip(prepared) < 0) {
            fprintf(stderr, "netns: %s: round %d failed (root needed)\n", label, i);
            exit(1);
        }
    double wall = now_ms() - t0;
    usleep(500000); /* the cleanup of the last namespaces is counted too */
    double cpu = machine_cpu_ms() - cpu0;
    printf("%-34s %7.3f ms wall per round, %6.3f ms machine CPU per round (%d rounds)\n", label,
           wall / rounds, cpu / rounds, rounds);
}

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 400;
    if (rounds <= 0)
        rounds = 400;
    int child_ns = -1;
    pid_t keeper = fork(); /* holds the prepared namespace open */
    if (keeper == 0) {
        if (unshare(CLONE_NEWNET) < 0)
            _exit(1);
        pause();
        _exit(0);
    }
    usleep(100000);
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/ns/net", (int)keeper);
    child_ns = open(path, O_RDONLY | O_CLOEXEC);
    if (child_ns < 0) {
        fprintf(stderr, "netns: cannot open %s\n", path);
        kill(keeper, SIGKILL);
        return 1;
    }
    measure("fork + exit, host namespace", HOST_NS, rounds);
    measure("fork + setns(prepared) + exit", child_ns, rounds);
    measure("fork + unshare(CLONE_NEWNET) + exit", -1, rounds);
    kill(keeper, SIGKILL);
    waitpid(keeper, NULL, 0);
    return 0;
}
