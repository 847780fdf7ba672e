/*
 * holding_proxy.h: a TCP proxy in front of a server that holds back the replies of
 * chosen connections, so that a test can order what another connection does between
 * a request and its reply (no sleeps: each step waits until the proxy reports where a
 * held connection is). The C twin of tests/support/proxy.rs. Header-only.
 *
 *     holding_proxy p;
 *     holding_proxy_start(&p, server_port);     ... "redis://127.0.0.1:<p.port>" ...
 *     holding_proxy_arm(&p, 0, "PTTL", 1);      hold the next connection asking PTTL
 *     holding_proxy_wait(&p, 0, 1, 1);          until it sent 1 request, 1 reply held
 *     holding_proxy_permit(&p, 0, 1);           let one reply through
 *     holding_proxy_stop(&p);                   joins every thread, closes every socket
 */
#ifndef BACKLITE_TEST_HOLDING_PROXY_H
#define BACKLITE_TEST_HOLDING_PROXY_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "redis_server.h" /* redis_connect */

#define HOLDING_PROXY_HOLDS 2
#define HOLDING_PROXY_CONNS 32

/* Where one held connection is. */
typedef struct holding_proxy_hold {
    /* hold the first connection not held yet whose request contains `marker`
     * (`with`), or does not contain it (!`with`) */
    const char *marker;
    int with;
    int conn; /* -1: none yet */
    int requests; /* requests (reads from the client) seen on the held connection */
    int waiting;  /* replies from the server waiting to be passed on */
    long permits; /* replies that may still pass */
    int released;
} holding_proxy_hold;

struct holding_proxy;

/* One direction of one proxied connection. */
typedef struct holding_proxy_pipe {
    struct holding_proxy *proxy;
    int id, from, to, up;
    pthread_t thread;
} holding_proxy_pipe;

/* Markers are shorter than this: a request's marker split across two reads is found
 * with the end of the read before. */
#define HOLDING_PROXY_MARKER_MAX 32

typedef struct holding_proxy {
    int port, server_port, listen_fd;
    pthread_t acceptor;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    holding_proxy_hold holds[HOLDING_PROXY_HOLDS];
    holding_proxy_pipe pipes[HOLDING_PROXY_CONNS][2];
    int conns;
    int stopping;
} holding_proxy;

static inline int holding_proxy_contains_(const char *buf, size_t n, const char *marker) {
    size_t m = strlen(marker);
    for (size_t i = 0; i + m <= n; i++)
        if (memcmp(buf + i, marker, m) == 0) return 1;
    return 0;
}

/* Whether `marker` is in `buf` (n bytes), or across `before` (the end of the read
 * before, `kept` bytes) and `buf`. */
static inline int holding_proxy_marker_in_(const char *before, size_t kept, const char *buf,
                                           size_t n, const char *marker) {
    char seam[2 * HOLDING_PROXY_MARKER_MAX];
    size_t head = n < HOLDING_PROXY_MARKER_MAX ? n : HOLDING_PROXY_MARKER_MAX;
    memcpy(seam, before, kept);
    memcpy(seam + kept, buf, head);
    return holding_proxy_contains_(seam, kept + head, marker) ||
           holding_proxy_contains_(buf, n, marker);
}

static inline int holding_proxy_held_by_(holding_proxy *p, int id) {
    for (int i = 0; i < HOLDING_PROXY_HOLDS; i++)
        if (p->holds[i].conn == id) return i;
    return -1;
}

/* Copies one direction; a reply on a held connection waits for a permit of its hold. */
static void *holding_proxy_forward_(void *arg) {
    holding_proxy_pipe *pipe_ = arg;
    holding_proxy *p = pipe_->proxy;
    enum { CAP = 64 << 10 };
    char *buf = malloc(CAP);
    char before[HOLDING_PROXY_MARKER_MAX];
    size_t kept = 0;
    for (;;) {
        ssize_t n = buf == NULL ? -1 : read(pipe_->from, buf, CAP);
        if (n <= 0) break;
        pthread_mutex_lock(&p->mu);
        int held = holding_proxy_held_by_(p, pipe_->id);
        if (pipe_->up) {
            for (int i = 0; held < 0 && i < HOLDING_PROXY_HOLDS; i++) {
                holding_proxy_hold *h = &p->holds[i];
                if (h->marker != NULL &&
                    holding_proxy_marker_in_(before, kept, buf, (size_t)n, h->marker) == h->with) {
                    h->marker = NULL;
                    h->conn = pipe_->id;
                    held = i;
                }
            }
            if (held >= 0) {
                p->holds[held].requests++;
                pthread_cond_broadcast(&p->cv);
            }
        } else if (held >= 0 && !p->holds[held].released) {
            holding_proxy_hold *h = &p->holds[held];
            h->waiting++;
            pthread_cond_broadcast(&p->cv);
            while (h->permits == 0 && !h->released) pthread_cond_wait(&p->cv, &p->mu);
            if (h->permits > 0) h->permits--;
            h->waiting--;
        }
        pthread_mutex_unlock(&p->mu);
        /* The end of this read, for a marker that goes on in the next one. */
        size_t keep = (size_t)n < HOLDING_PROXY_MARKER_MAX - 1 ? (size_t)n : HOLDING_PROXY_MARKER_MAX - 1;
        if (kept + keep > HOLDING_PROXY_MARKER_MAX - 1) {
            size_t drop = kept + keep - (HOLDING_PROXY_MARKER_MAX - 1);
            memmove(before, before + drop, kept - drop);
            kept -= drop;
        }
        memcpy(before + kept, buf + n - keep, keep);
        kept += keep;
        for (ssize_t done = 0; done < n;) {
            ssize_t w = write(pipe_->to, buf + done, (size_t)(n - done));
            if (w <= 0) goto out;
            done += w;
        }
    }
out:
    free(buf);
    shutdown(pipe_->to, SHUT_WR);
    return NULL;
}

static void *holding_proxy_accept_(void *arg) {
    holding_proxy *p = arg;
    for (;;) {
        int client = accept(p->listen_fd, NULL, NULL);
        if (client < 0) {
            if (errno == EINTR) continue;
            return NULL; /* holding_proxy_stop shut the listener down */
        }
        pthread_mutex_lock(&p->mu);
        int id = p->stopping || p->conns == HOLDING_PROXY_CONNS ? -1 : p->conns;
        pthread_mutex_unlock(&p->mu);
        int server = id < 0 ? -1 : redis_connect(p->server_port);
        if (server < 0) {
            close(client);
            continue;
        }
        holding_proxy_pipe *up = &p->pipes[id][0], *down = &p->pipes[id][1];
        *up = (holding_proxy_pipe){p, id, client, server, 1, 0};
        *down = (holding_proxy_pipe){p, id, server, client, 0, 0};
        if (pthread_create(&up->thread, NULL, holding_proxy_forward_, up) != 0) {
            close(client);
            close(server);
            continue;
        }
        if (pthread_create(&down->thread, NULL, holding_proxy_forward_, down) != 0) {
            /* the client sees its connection closed, as if the server had gone */
            shutdown(client, SHUT_RDWR);
            shutdown(server, SHUT_RDWR);
            pthread_join(up->thread, NULL);
            close(client);
            close(server);
            continue;
        }
        pthread_mutex_lock(&p->mu);
        p->conns = id + 1;
        pthread_mutex_unlock(&p->mu);
    }
}

/* Listens on a free loopback port for connections to pass to `server_port`. 0, or -1
 * with nothing left open. */
static inline int holding_proxy_start(holding_proxy *p, int server_port) {
    memset(p, 0, sizeof *p);
    p->server_port = server_port;
    for (int i = 0; i < HOLDING_PROXY_HOLDS; i++) p->holds[i].conn = -1;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (p->listen_fd >= 0 && bind(p->listen_fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        listen(p->listen_fd, 16) == 0 &&
        getsockname(p->listen_fd, (struct sockaddr *)&a, &len) == 0) {
        p->port = ntohs(a.sin_port);
        if (pthread_create(&p->acceptor, NULL, holding_proxy_accept_, p) == 0) return 0;
    }
    /* Nothing to stop: the caller fails without holding_proxy_stop. */
    if (p->listen_fd >= 0) close(p->listen_fd);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    return -1;
}

/* Holds (as hold `i`) the replies of the next connection not held yet whose request
 * contains `marker` (`with`), or does not contain it (!`with`). */
static inline void holding_proxy_arm(holding_proxy *p, int i, const char *marker, int with) {
    pthread_mutex_lock(&p->mu);
    p->holds[i].marker = marker;
    p->holds[i].with = with;
    pthread_mutex_unlock(&p->mu);
}

/* Lets `n` more replies of hold `i` pass. */
static inline void holding_proxy_permit(holding_proxy *p, int i, long n) {
    pthread_mutex_lock(&p->mu);
    p->holds[i].permits += n;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

/* Lets everything pass from now on. */
static inline void holding_proxy_release(holding_proxy *p) {
    pthread_mutex_lock(&p->mu);
    for (int i = 0; i < HOLDING_PROXY_HOLDS; i++) p->holds[i].released = 1;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

/* Waits (at most 60 s: valgrind is slow) until hold `i` has seen at least `requests`
 * requests and has `waiting` replies held. 1 when it did, 0 on the timeout. */
static inline int holding_proxy_wait(holding_proxy *p, int i, int requests, int waiting) {
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 60;
    pthread_mutex_lock(&p->mu);
    int rc = 0;
    while (!(p->holds[i].requests >= requests && p->holds[i].waiting == waiting) && rc == 0)
        rc = pthread_cond_timedwait(&p->cv, &p->mu, &until);
    int ok = p->holds[i].requests >= requests && p->holds[i].waiting == waiting;
    pthread_mutex_unlock(&p->mu);
    return ok;
}

/* Stops accepting, releases every hold, closes every connection, joins every thread. */
static inline void holding_proxy_stop(holding_proxy *p) {
    holding_proxy_release(p);
    pthread_mutex_lock(&p->mu);
    p->stopping = 1;
    pthread_mutex_unlock(&p->mu);
    shutdown(p->listen_fd, SHUT_RDWR);
    pthread_join(p->acceptor, NULL);
    close(p->listen_fd);
    for (int id = 0; id < p->conns; id++) {
        shutdown(p->pipes[id][0].from, SHUT_RDWR);
        shutdown(p->pipes[id][1].from, SHUT_RDWR);
    }
    for (int id = 0; id < p->conns; id++) {
        pthread_join(p->pipes[id][0].thread, NULL);
        pthread_join(p->pipes[id][1].thread, NULL);
        close(p->pipes[id][0].from);
        close(p->pipes[id][1].from);
    }
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
}

#endif
