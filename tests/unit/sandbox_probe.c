/* sandbox_probe.c — a tiny static program that test_sandbox.c runs inside a
 * sandbox to report what the sandboxed process can see and do.  Built by the
 * test itself with `cc -static` (the test rootfs has no libc).
 *
 * Usage: probe facts <port>   print key=value facts, "ready", then block
 *                             until fd 3 (control) reaches EOF
 *        probe sleep          block forever (for kill/reap timing)
 *        probe fill <bytes>   write <bytes> to /tmp/fill, print the errno */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *err_name(int e)
{
    switch (e) {
    case 0:
        return "OK";
    case ENOENT:
        return "ENOENT";
    case EROFS:
        return "EROFS";
    case EACCES:
        return "EACCES";
    case EPERM:
        return "EPERM";
    case ENETUNREACH:
        return "ENETUNREACH";
    case ECONNREFUSED:
        return "ECONNREFUSED";
    case ENOSPC:
        return "ENOSPC";
    case EBADF:
        return "EBADF";
    default:
        return strerror(e);
    }
}

static int try_create(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return errno;
    int rc = write(fd, "hi", 2) == 2 ? 0 : errno;
    close(fd);
    return rc;
}

static int try_open(const char *path, int flags)
{
    int fd = open(path, flags | O_CLOEXEC);
    if (fd < 0)
        return errno;
    close(fd);
    return 0;
}

static int try_connect(int port)
{
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return errno;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int rc = connect(s, (struct sockaddr *)&a, sizeof a) < 0 ? errno : 0;
    close(s);
    return rc;
}

static void print_root_entries(void)
{
    DIR *d = opendir("/");
    printf("root_entries=");
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
                printf("%s,", e->d_name);
        }
        closedir(d);
    }
    printf("\n");
}

static void print_open_fds(void)
{
    printf("open_fds=");
    for (int fd = 0; fd < 1024; fd++) {
        if (fcntl(fd, F_GETFD) >= 0)
            printf("%d,", fd);
    }
    printf("\n");
}

static int run_facts(int port)
{
    char host[64] = "";
    char cwd[256] = "";
    gethostname(host, sizeof host);
    if (!getcwd(cwd, sizeof cwd))
        strcpy(cwd, "?");
    printf("uid=%d\neuid=%d\ngid=%d\npid=%d\nppid=%d\nhostname=%s\ncwd=%s\n", (int)getuid(),
           (int)geteuid(), (int)getgid(), (int)getpid(), (int)getppid(), host, cwd);
    printf("open_etc_passwd=%s\n", err_name(try_open("/etc/passwd", O_RDONLY)));
    printf("stat_proc=%s\n", err_name(try_open("/proc/self/status", O_RDONLY)));
    printf("write_root=%s\n", err_name(try_create("/probe-write")));
    printf("write_tmp=%s\n", err_name(try_create("/tmp/probe-write")));
    printf("dev_null=%s\n", err_name(try_open("/dev/null", O_WRONLY)));
    printf("dev_zero=%s\n", err_name(try_open("/dev/zero", O_RDONLY)));
    printf("dev_urandom=%s\n", err_name(try_open("/dev/urandom", O_RDONLY)));
    printf("connect_loopback=%s\n", err_name(try_connect(port)));
    print_root_entries();
    print_open_fds();
    printf("ready\n");
    fflush(stdout);
    char buf[64];
    while (read(3, buf, sizeof buf) > 0) {
    }
    printf("done\n");
    return 0;
}

static int run_fill(long bytes)
{
    int fd = open("/tmp/fill", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        printf("fill=%s\n", err_name(errno));
        return 0;
    }
    static char block[65536];
    long done = 0;
    int e = 0;
    while (done < bytes) {
        long want = bytes - done < (long)sizeof block ? bytes - done : (long)sizeof block;
        ssize_t n = write(fd, block, (size_t)want);
        if (n < 0) {
            e = errno;
            break;
        }
        done += n;
    }
    printf("fill=%s\nfilled=%ld\n", err_name(e), done);
    return 0;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc >= 3 && strcmp(argv[1], "facts") == 0)
        return run_facts(atoi(argv[2]));
    if (argc >= 2 && strcmp(argv[1], "sleep") == 0) {
        for (;;)
            pause();
    }
    if (argc >= 3 && strcmp(argv[1], "fill") == 0)
        return run_fill(atol(argv[2]));
    fprintf(stderr, "usage: probe facts <port> | sleep | fill <bytes>\n");
    return 2;
}
