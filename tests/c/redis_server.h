/*
 * redis_server.h: a private redis-server for a test, on a free loopback port in a
 * directory of the test's own, stopped at the end (never a system service, never a
 * fixed port). Header-only, shared by the C tests, the C++ binding's tests and the demo
 * test.
 *
 *     redis_server rs;
 *     if (redis_server_start(&rs, dir, NULL) != 0) { skip or fail }
 *     ... "redis://127.0.0.1:<rs.port>" ...
 *     redis_server_stop(&rs);
 */
#ifndef BACKLITE_TEST_REDIS_SERVER_H
#define BACKLITE_TEST_REDIS_SERVER_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

typedef struct redis_server {
    pid_t pid;
    int port;
    char url[64];
} redis_server;

/* A port nothing listens on now. */
static inline int redis_free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    int port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0) {
        port = ntohs(a.sin_port);
    }
    if (fd >= 0) close(fd);
    return port;
}

static inline int redis_port_open(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons((unsigned short)port);
    int ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    if (fd >= 0) close(fd);
    return ok;
}

/* Starts redis-server in `dir` (which must exist) on a free port; `password` may be
 * NULL. Returns 0 once it accepts connections, -1 if it cannot be started. */
static inline int redis_server_start(redis_server *rs, const char *dir, const char *password) {
    memset(rs, 0, sizeof *rs);
    rs->port = redis_free_port();
    if (rs->port <= 0) return -1;
    char port[16];
    snprintf(port, sizeof port, "%d", rs->port);
    rs->pid = fork();
    if (rs->pid < 0) return -1;
    if (rs->pid == 0) {
        const char *args[20] = {"redis-server", "--port", port, "--bind", "127.0.0.1",
                                "--save", "", "--appendonly", "no", "--dir", dir,
                                "--logfile", "redis.log", "--daemonize", "no"};
        int n = 15;
        if (password) {
            args[n++] = "--requirepass";
            args[n++] = password;
        }
        args[n] = NULL;
        execvp("redis-server", (char *const *)args);
        _exit(127);
    }
    snprintf(rs->url, sizeof rs->url, "redis://127.0.0.1:%d", rs->port);
    for (int i = 0; i < 2000; i++) { /* up to 10 s */
        if (redis_port_open(rs->port)) return 0;
        int status;
        if (waitpid(rs->pid, &status, WNOHANG) == rs->pid) {
            rs->pid = 0;
            return -1; /* not installed, or it failed */
        }
        struct timespec t = {0, 5 * 1000 * 1000};
        nanosleep(&t, NULL);
    }
    return -1;
}

static inline void redis_server_stop(redis_server *rs) {
    if (rs->pid > 0) {
        kill(rs->pid, SIGKILL);
        waitpid(rs->pid, NULL, 0);
        rs->pid = 0;
    }
}

#endif
