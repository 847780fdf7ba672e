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
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <limits.h>
#include <time.h>
#include <unistd.h>

#ifndef PATH_MAX
#define PATH_MAX 4096
#endif

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

/* A socket connected to `port` on loopback, or -1. */
static inline int redis_connect(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons((unsigned short)port);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        fd = -1;
    }
    return fd;
}

static inline int redis_port_open(int port) {
    int fd = redis_connect(port);
    if (fd >= 0) close(fd);
    return fd >= 0;
}

/* Whether the log `path` says the server is ready (every listener bound). */
static inline int redis_log_says_ready(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    char line[512];
    int ready = 0;
    while (!ready && fgets(line, sizeof line, f)) ready = strstr(line, "Ready to accept connections") != NULL;
    fclose(f);
    return ready;
}

/* One start of redis-server in `dir` on port `rs->port`: 0 once its log says it is ready
 * and the port accepts connections, -1 if it exited (its port was taken meanwhile, say)
 * or was not ready within 10 s (then it is stopped). */
static inline int redis_server_try_start(redis_server *rs, const char *dir,
                                         const char *const *extra, int tls) {
    char port[16], log[PATH_MAX + 16];
    snprintf(port, sizeof port, "%d", rs->port);
    if (snprintf(log, sizeof log, "%s/redis.log", dir) >= (int)sizeof log) return -1;
    unlink(log);
    rs->pid = fork();
    if (rs->pid < 0) return -1;
    if (rs->pid == 0) {
        const char *args[64] = {"redis-server", "--port", tls ? "0" : port, "--bind",
                                "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir,
                                "--logfile", "redis.log", "--daemonize", "no"};
        int n = 15;
        if (tls) {
            args[n++] = "--tls-port";
            args[n++] = port;
        }
        for (; extra && *extra && n < 63; extra++) args[n++] = *extra;
        args[n] = NULL;
        execvp("redis-server", (char *const *)args);
        _exit(127);
    }
    snprintf(rs->url, sizeof rs->url, "%s://127.0.0.1:%d", tls ? "rediss" : "redis", rs->port);
    for (int i = 0; i < 2000; i++) { /* up to 10 s */
        /* A connection alone could reach another process that took the port: ready is
         * what the server's own log says. */
        if (redis_log_says_ready(log) && redis_port_open(rs->port)) return 0;
        int status;
        if (waitpid(rs->pid, &status, WNOHANG) == rs->pid) {
            rs->pid = 0;
            return -1; /* not installed, or it failed (a port taken meanwhile) */
        }
        struct timespec t = {0, 5 * 1000 * 1000};
        nanosleep(&t, NULL);
    }
    kill(rs->pid, SIGKILL);
    waitpid(rs->pid, NULL, 0);
    rs->pid = 0;
    return -1;
}

/* Starts redis-server in `dir` (which must exist) on a free port, with the extra
 * arguments `extra` (NULL-terminated, or NULL). With `tls`, the port is a TLS port
 * (`--tls-port`, no plain port; `extra` names the certificate files) and the URL is
 * rediss://. A port found free can be taken by another process before the server binds
 * it: a start that fails is tried again on a new port, up to 5 times. Returns 0 once it
 * is ready, -1 if it cannot be started. */
static inline int redis_server_start_args(redis_server *rs, const char *dir,
                                          const char *const *extra, int tls) {
    for (int attempt = 0; attempt < 5; attempt++) {
        memset(rs, 0, sizeof *rs);
        rs->port = redis_free_port();
        if (rs->port <= 0) return -1;
        if (redis_server_try_start(rs, dir, extra, tls) == 0) return 0;
    }
    return -1;
}

/* Starts a plain redis-server in `dir`; `password` may be NULL. */
static inline int redis_server_start(redis_server *rs, const char *dir, const char *password) {
    const char *extra[] = {"--requirepass", password, NULL};
    return redis_server_start_args(rs, dir, password ? extra : NULL, 0);
}

static inline void redis_server_stop(redis_server *rs) {
    if (rs->pid > 0) {
        kill(rs->pid, SIGKILL);
        waitpid(rs->pid, NULL, 0);
        rs->pid = 0;
    }
}

/* Runs `redis-cli -p <port> <args>` and returns the first line of its answer in `out`
 * ("" if it could not be run). `args` are words without quotes. */
static inline const char *redis_cli(int port, const char *args, char *out, size_t cap) {
    char cmd[512];
    snprintf(cmd, sizeof cmd, "redis-cli -h 127.0.0.1 -p %d %s 2>/dev/null", port, args);
    out[0] = '\0';
    FILE *p = popen(cmd, "r");
    if (!p) return out;
    if (!fgets(out, (int)cap, p)) out[0] = '\0';
    while (fgetc(p) != EOF) {
    }
    pclose(p);
    out[strcspn(out, "\r\n")] = '\0';
    return out;
}

/* The Redis key of `key`'s value (kind 'd') or lease ('l') in namespace `ns` (no version
 * tag) in the live generation, which a handle made when it found none. */
static inline const char *redis_live_key(int port, const char *ns, char kind, const char *key,
                                         char *out, size_t cap) {
    char cmd[256], gen[64];
    snprintf(cmd, sizeof cmd, "GET '%s::gen'", ns);
    redis_cli(port, cmd, gen, sizeof gen);
    snprintf(out, cap, "%s::%c{%llx:%s}", ns, kind, strtoull(gen, NULL, 10), key);
    return out;
}

/* A Redis Cluster of REDIS_CLUSTER_MASTERS servers (no replicas), each in a folder of
 * its own under `dir`, made with `redis-cli --cluster create`. */
#define REDIS_CLUSTER_MASTERS 3
typedef struct redis_cluster {
    redis_server nodes[REDIS_CLUSTER_MASTERS];
    char url[256]; /* redis+cluster://127.0.0.1:p1,127.0.0.1:p2,... */
} redis_cluster;

static inline void redis_cluster_stop(redis_cluster *c) {
    for (int i = 0; i < REDIS_CLUSTER_MASTERS; i++) redis_server_stop(&c->nodes[i]);
}

/* Whether every live node answers cluster_state:ok, waiting up to 30 s. */
static inline int redis_cluster_wait_ok(const redis_cluster *c) {
    char line[256];
    for (int i = 0; i < REDIS_CLUSTER_MASTERS; i++) {
        if (c->nodes[i].pid <= 0) continue;
        int tries = 0;
        for (;;) {
            FILE *p;
            char cmd[128];
            snprintf(cmd, sizeof cmd, "redis-cli -h 127.0.0.1 -p %d CLUSTER INFO 2>/dev/null",
                     c->nodes[i].port);
            int ok = 0;
            if ((p = popen(cmd, "r")) != NULL) {
                while (fgets(line, sizeof line, p))
                    if (strncmp(line, "cluster_state:ok", 16) == 0) ok = 1;
                pclose(p);
            }
            if (ok) break;
            if (++tries > 1500) return 0;
            struct timespec t = {0, 20 * 1000 * 1000};
            nanosleep(&t, NULL);
        }
    }
    return 1;
}

/* Returns 0 once the cluster serves every slot, -1 if it cannot be made (everything
 * started is stopped again). */
static inline int redis_cluster_start(redis_cluster *c, const char *dir) {
    /* The bus port is chosen too: by default it is the port + 10000, which may be
     * taken, or above 65535. */
    char bus[16];
    const char *cluster_args[] = {"--cluster-enabled", "yes", "--cluster-port", bus,
                                  "--cluster-config-file", "nodes.conf",
                                  "--cluster-node-timeout", "2000", NULL};
    memset(c, 0, sizeof *c);
    const char *argv[8 + REDIS_CLUSTER_MASTERS];
    char addrs[REDIS_CLUSTER_MASTERS][32];
    int n = 0;
    argv[n++] = "redis-cli";
    argv[n++] = "--cluster";
    argv[n++] = "create";
    size_t used = (size_t)snprintf(c->url, sizeof c->url, "redis+cluster://");
    for (int i = 0; i < REDIS_CLUSTER_MASTERS; i++) {
        char sub[PATH_MAX + 16];
        char conf[PATH_MAX + 32];
        int ok = snprintf(sub, sizeof sub, "%s/n%d", dir, i) < (int)sizeof sub &&
                 mkdir(sub, 0700) == 0;
        snprintf(conf, sizeof conf, "%s/nodes.conf", sub);
        /* The bus port can be taken meanwhile too: each try has new ports. */
        for (int attempt = 0; ok && attempt < 5; attempt++) {
            snprintf(bus, sizeof bus, "%d", redis_free_port());
            memset(&c->nodes[i], 0, sizeof c->nodes[i]);
            c->nodes[i].port = redis_free_port();
            unlink(conf);
            if (c->nodes[i].port > 0 && redis_server_try_start(&c->nodes[i], sub, cluster_args, 0) == 0)
                break;
        }
        if (c->nodes[i].pid <= 0) {
            fprintf(stderr, "redis_cluster_start: server %d in %s did not start\n", i, sub);
            redis_cluster_stop(c);
            return -1;
        }
        snprintf(addrs[i], sizeof addrs[i], "127.0.0.1:%d", c->nodes[i].port);
        argv[n++] = addrs[i];
        used += (size_t)snprintf(c->url + used, sizeof c->url - used, "%s%s", i ? "," : "",
                                 addrs[i]);
    }
    argv[n++] = "--cluster-replicas";
    argv[n++] = "0";
    argv[n++] = "--cluster-yes";
    argv[n] = NULL;
    pid_t pid = fork();
    if (pid == 0) {
        if (!freopen("/dev/null", "w", stdout)) _exit(126);
        execvp("redis-cli", (char *const *)argv);
        _exit(127);
    }
    int status = -1;
    if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
        WEXITSTATUS(status) != 0) {
        fprintf(stderr, "redis_cluster_start: redis-cli --cluster create failed (status %d)\n", status);
        redis_cluster_stop(c);
        return -1;
    }
    if (!redis_cluster_wait_ok(c)) {
        fprintf(stderr, "redis_cluster_start: the cluster did not become ok\n");
        redis_cluster_stop(c);
        return -1;
    }
    return 0;
}

#endif
