/*
 * test_remote_hostile.c: remotes that misbehave, through the C API. Fake servers on
 * loopback answer nonsense, RESP3 types a RESP2 client never asked for, close in the
 * middle of a reply, accept and never answer, or send a reply a byte at a time; a real redis-server is paused
 * (SIGSTOP) and resumed; a process computing a key under the remote lease is
 * SIGKILLed while three others, on two files, wait for that key. Every call succeeds
 * locally within the timeout, no call ever returns a value that was not set, and the
 * key is computed once.
 */
#include "harness.h"
#include "redis_server.h"
#include "remote_calls.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>

/* ---- a fake server ---- */

typedef enum {
    FAKE_NONSENSE,   /* bytes that are not RESP */
    FAKE_RESP3,      /* one RESP3-only reply per command: null, boolean, double, map... */
    FAKE_CLOSES,     /* the start of a value, then the connection closes */
    FAKE_SILENT,     /* accepts, reads, never answers */
    FAKE_DRIPS,      /* announces a 100 MB value, then sends a byte of it every 40 ms */
    FAKE_KINDS
} fake_kind;

static const char *const fake_names[] = {"nonsense", "RESP3 replies", "closes mid-reply",
                                         "never answers", "drips a reply"};

#define DRIP_EVERY_MS 40

#define FAKE_CONNS 64

typedef struct fake_server {
    fake_kind kind;
    int port, listen_fd, wake[2];
    pthread_t thread;
} fake_server;

/* The commands in one read: RESP arrays start a line with '*'. */
static int commands_in(const char *buf, size_t n) {
    int count = 0;
    for (size_t i = 0; i < n; i++)
        if (buf[i] == '*' && (i == 0 || buf[i - 1] == '\n')) count++;
    return count ? count : 1;
}

static void fake_answer(fake_server *f, int fd, const char *req, size_t n, unsigned *turn) {
    static const char *const resp3[] = {"_\r\n", "#t\r\n", ",3.5\r\n", "%1\r\n+a\r\n:1\r\n",
                                        "~1\r\n:1\r\n", "(12345678901234567890\r\n",
                                        "=8\r\ntxt:BLR\x01\r\n", "|1\r\n+x\r\n+y\r\n:7\r\n",
                                        ">2\r\n+message\r\n+x\r\n:1\r\n"};
    switch (f->kind) {
    case FAKE_NONSENSE:
        (void)!write(fd, "\x00\xffgarbage\r\n", 11);
        break;
    case FAKE_RESP3:
        for (int i = commands_in(req, n); i > 0; i--) {
            const char *r = resp3[(*turn)++ % (sizeof resp3 / sizeof *resp3)];
            (void)!write(fd, r, strlen(r));
        }
        break;
    case FAKE_CLOSES:
        (void)!write(fd, "$100\r\nBLR\x01\x00", 11);
        shutdown(fd, SHUT_RDWR);
        break;
    case FAKE_DRIPS: /* the rest comes from fake_serve's clock */
        (void)!write(fd, "$100000000\r\n", 13);
        break;
    default:
        break;
    }
}

/* One thread serves every connection (poll), so stopping joins one thread. */
static void *fake_serve(void *arg) {
    fake_server *f = arg;
    struct pollfd fds[FAKE_CONNS + 2];
    unsigned turns[FAKE_CONNS + 2] = {0};
    int n = 2;
    fds[0] = (struct pollfd){.fd = f->wake[0], .events = POLLIN};
    fds[1] = (struct pollfd){.fd = f->listen_fd, .events = POLLIN};
    for (;;) {
        int ready = poll(fds, (nfds_t)n, f->kind == FAKE_DRIPS ? DRIP_EVERY_MS : -1);
        if (ready < 0) {
            if (errno == EINTR) continue;
            break;
        }
        if (fds[0].revents) break;
        if (f->kind == FAKE_DRIPS && ready == 0)
            for (int i = 2; i < n; i++) (void)!write(fds[i].fd, "x", 1);
        if ((fds[1].revents & POLLIN) && n < FAKE_CONNS + 2) {
            int c = accept(f->listen_fd, NULL, NULL);
            if (c >= 0) {
                turns[n] = 0;
                fds[n++] = (struct pollfd){.fd = c, .events = POLLIN};
            }
        }
        for (int i = 2; i < n; i++) {
            if (!fds[i].revents) continue;
            char buf[65536];
            ssize_t k = read(fds[i].fd, buf, sizeof buf);
            if (k > 0) fake_answer(f, fds[i].fd, buf, (size_t)k, &turns[i]);
            if (k <= 0) { /* closed by the client: forget it */
                close(fds[i].fd);
                fds[i] = fds[n - 1];
                turns[i] = turns[n - 1];
                n--;
                i--;
            }
        }
    }
    for (int i = 2; i < n; i++) close(fds[i].fd);
    return NULL;
}

static int fake_start(fake_server *f, fake_kind kind) {
    memset(f, 0, sizeof *f);
    f->kind = kind;
    f->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (f->listen_fd < 0 || bind(f->listen_fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        listen(f->listen_fd, 64) != 0 || getsockname(f->listen_fd, (struct sockaddr *)&a, &len) != 0 ||
        pipe(f->wake) != 0) {
        if (f->listen_fd >= 0) close(f->listen_fd);
        return -1;
    }
    f->port = ntohs(a.sin_port);
    if (pthread_create(&f->thread, NULL, fake_serve, f) != 0) {
        close(f->listen_fd);
        close(f->wake[0]);
        close(f->wake[1]);
        return -1;
    }
    return 0;
}

static void fake_stop(fake_server *f) {
    (void)!write(f->wake[1], "x", 1);
    pthread_join(f->thread, NULL);
    close(f->listen_fd);
    close(f->wake[0]);
    close(f->wake[1]);
}

/* ---- calls that must all succeed locally ---- */

static int32_t compute_v(void *user_data, backlite_sink *sink) {
    ++*(int *)user_data;
    return backlite_sink_write(sink, K("computed")) == BACKLITE_RESULT_OK ? 0 : 1;
}

/* Each kind of call, `rounds` times: every one succeeds with the local answer. */
static void every_call_goes_on_locally(backlite_storage *s, int rounds) {
    for (int i = 0; i < rounds; i++) {
        char key[32], call[32];
        snprintf(key, sizeof key, "k%d", i);
        snprintf(call, sizeof call, "call%d", i);
        SET(s, key, "local");
        GET_EQ(s, key, "local");
        GET_MISSING(s, "absent");
        CHECK_RC(backlite_storage_contains(s, K("absent"), &err), BACKLITE_RESULT_NOT_FOUND);
        backlite_entry e = {(const uint8_t *)"many", 4, (const uint8_t *)"local", 5, 60000};
        CHECK_OK(backlite_storage_set_many(s, &e, 1, &err));
        int computed = 0;
        backlite_buf buf = {0};
        CHECK_OK(backlite_cached_call_exclusive(s, K(call), compute_v, &computed, 60000, 5000, &buf, &err));
        CHECK_BUF_STR(buf, "computed");
        CHECK_EQ(computed, 1);
        backlite_buf_free(&buf);
        CHECK_OK(backlite_storage_delete(s, K(key), &err));
        GET_MISSING(s, key);
        if (i % 4 == 3) CHECK_OK(backlite_storage_clear(s, &err));
    }
}

static void a_server_answering_garbage_never_fails_a_call_nor_gives_a_value(void) {
    const backlite_remote_mode modes[] = {BACKLITE_REMOTE_MODE_READ_WRITE,
                                          BACKLITE_REMOTE_MODE_READ_ONLY,
                                          BACKLITE_REMOTE_MODE_WRITE_BEHIND};
    for (int kind = 0; kind < FAKE_KINDS; kind++) {
        fake_server f;
        REQUIRE(fake_start(&f, (fake_kind)kind) == 0);
        char url[64];
        snprintf(url, sizeof url, "redis://127.0.0.1:%d", f.port);
        for (int m = 0; m < 3; m++) {
            backlite_options *o = remote_at(url, 200);
            CHECK_EQ(backlite_options_set_remote_mode(o, modes[m]), BACKLITE_RESULT_OK);
            char name[32];
            snprintf(name, sizeof name, "fake-%d-%d.db", kind, m);
            backlite_storage *s = open_file(name, o);
            every_call_goes_on_locally(s, 8);
            backlite_remote_stats st = stats_of(s);
            if (st.hits != 0 || st.errors == 0)
                fprintf(stderr, "%s, mode %d: hits %llu errors %llu\n", fake_names[kind], m,
                        (unsigned long long)st.hits, (unsigned long long)st.errors);
            CHECK_EQ(st.hits, 0);
            CHECK(st.errors >= 1);
            backlite_storage_free(s);
            backlite_options_free(o);
        }
        fake_stop(&f);
    }
}

/* A reply sent a byte at a time, each byte sooner than the timeout, is cut off at the
 * timeout: the bound is on the whole round trip, not on each wait of the socket. Before
 * it was, this get waited for the 100 MB (about 48 days at this rate). The bound checked
 * is far above the timeout: it catches a call that hangs, not a slow machine. */
static void a_server_dripping_a_reply_is_cut_off_at_the_timeout(void) {
    fake_server f;
    REQUIRE(fake_start(&f, FAKE_DRIPS) == 0);
    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", f.port);
    backlite_options *o = remote_at(url, 200);
    int64_t t0 = h_now_ms();
    backlite_storage *s = open_file("drips.db", o); /* its first round trip drips */
    int64_t open_ms = h_now_ms() - t0;
    CHECK_EQ(stats_of(s).errors, 1);
    h_sleep_ms(300); /* past the first back-off (100 ms) */
    t0 = h_now_ms();
    GET_MISSING(s, "absent");
    int64_t get_ms = h_now_ms() - t0;
    fprintf(stderr, "against a dripping server: open %lld ms, get %lld ms (timeout 200 ms)\n",
            (long long)open_ms, (long long)get_ms);
    CHECK(open_ms < 10000);
    CHECK(get_ms < 10000);
    CHECK_EQ(stats_of(s).errors, 2);
    CHECK_EQ(stats_of(s).hits, 0);
    backlite_storage_free(s);
    backlite_options_free(o);
    fake_stop(&f);
}

/* ---- a real server paused, then resumed ---- */

static redis_server server;
static char server_dir[PATH_MAX];

static void a_paused_server_times_out_and_is_used_again_once_resumed(void) {
    backlite_options *o = remote_at(server.url, 300);
    backlite_storage *a = open_file("paused-a.db", o);
    SET(a, "p", "old");
    CHECK_EQ(stats_of(a).errors, 0);
    kill(server.pid, SIGSTOP);
    every_call_goes_on_locally(a, 4);
    SET(a, "p", "new"); /* never reaches the paused server */
    backlite_remote_stats st = stats_of(a);
    CHECK(st.errors >= 1);
    CHECK(st.skipped >= 1);
    CHECK_EQ(st.connected, 0);
    kill(server.pid, SIGCONT);
    /* Used again once the back-off has run out (the first pause is 100 ms; each call
     * here is bounded by the timeout). */
    for (int i = 0; i < 3000 && !stats_of(a).connected; i++) {
        GET_MISSING(a, "probe");
        h_sleep_ms(10);
    }
    CHECK_EQ(stats_of(a).connected, 1);
    backlite_storage *b = open_file("paused-b.db", o);
    /* The older value never comes back to another machine. */
    backlite_buf buf = {0};
    backlite_result rc = backlite_storage_get(b, K("p"), &buf, NULL, NULL);
    CHECK(rc == BACKLITE_RESULT_NOT_FOUND ||
          (rc == BACKLITE_RESULT_OK && buf.len == 3 && memcmp(buf.data, "new", 3) == 0));
    backlite_buf_free(&buf);
    backlite_storage_free(b);
    backlite_storage_free(a);
    backlite_options_free(o);
}

/* ---- a delete or clear that never reached the remote, and the file's other handles ---- */

/* Pauses the server until `a` has backed off, then resumes it: `a`'s next writes are
 * skipped (never sent) while the back-off lasts, and the server holds the old values. */
static void back_off_then_resume(backlite_storage *a) {
    kill(server.pid, SIGSTOP);
    GET_MISSING(a, "probe-while-paused"); /* times out: `a` backs off */
    kill(server.pid, SIGCONT);
}

/* Handles of one process on one file share what their deletes and clears still owe the
 * remote: another handle never reads the older value back from the remote (and stores
 * it in the file, where the handle that deleted would find it too), and pays the debt
 * when the handle that made it is freed first. */
static void a_delete_or_clear_that_missed_the_remote_is_never_read_back_through_the_file(void) {
    backlite_options *o = remote_at(server.url, 200);
    CHECK_EQ(backlite_options_set_remote_namespace(o, "missed"), BACKLITE_RESULT_OK);
    backlite_storage *a = open_file("missed.db", o);
    SET(a, "deleted", "old");
    SET(a, "cleared", "old");
    back_off_then_resume(a);
    CHECK_OK(backlite_storage_delete(a, K("deleted"), &err));
    CHECK(stats_of(a).skipped >= 1); /* never sent */
    backlite_storage *b = open_file("missed.db", o);
    GET_MISSING(b, "deleted");
    GET_MISSING(a, "deleted");
    back_off_then_resume(a);
    CHECK_OK(backlite_storage_clear(a, &err));
    GET_MISSING(b, "cleared");
    GET_MISSING(a, "cleared");
    /* `a` is freed still owing both (backed off); `b` pays once the back-off is over. */
    back_off_then_resume(a);
    SET(a, "owed", "old"); /* skipped: the remote keeps no value of it */
    CHECK_OK(backlite_storage_delete(a, K("owed"), &err));
    backlite_storage_free(a);
    for (int i = 0; i < 300 && !stats_of(b).connected; i++) {
        GET_MISSING(b, "probe");
        h_sleep_ms(10);
    }
    CHECK_EQ(stats_of(b).connected, 1);
    backlite_storage *other = open_file("missed-other.db", o); /* another machine */
    GET_MISSING(other, "deleted");
    GET_MISSING(other, "cleared");
    GET_MISSING(other, "owed");
    backlite_storage_free(other);
    /* A read-only handle on the file neither pays a debt nor reads past it. */
    backlite_options *ro = remote_at(server.url, 200);
    CHECK_EQ(backlite_options_set_remote_namespace(ro, "missed"), BACKLITE_RESULT_OK);
    CHECK_EQ(backlite_options_set_remote_mode(ro, BACKLITE_REMOTE_MODE_READ_ONLY), BACKLITE_RESULT_OK);
    backlite_storage *r = open_file("missed.db", ro);
    SET(b, "ro", "old");
    back_off_then_resume(b);
    CHECK_OK(backlite_storage_clear(b, &err));
    GET_MISSING(r, "ro");
    CHECK_EQ(stats_of(r).writes, 0);
    backlite_storage_free(r);
    backlite_options_free(ro);
    backlite_storage_free(b);
    backlite_options_free(o);
}

/* ---- write-behind writes lost while the server was paused, then the handle freed ---- */

/* A write-behind handle overwrites a key while the server is paused and its queue
 * overflows (the write is dropped, or skipped while backed off: never sent), the server
 * resumes, and the handle is freed before it makes another remote call. Its free pays
 * what it owes (the unlink of that key): another machine never reads the older value. */
static void a_freed_write_behind_handle_leaves_no_older_value_of_a_lost_write(void) {
    /* Under valgrind the sets below take long enough for the remote's back-off to grow
     * past the wait, and a free while backed off drops what it owes (README): then "old"
     * is what the design gives, not what this case checks (the clean-clone run failed
     * here). The plain and asan_ runs check it. */
    if (h_under_valgrind())
        SKIP("timing: under valgrind the back-off outlasts the wait for it to run out");
    backlite_options *o = remote_at(server.url, 200);
    CHECK_EQ(backlite_options_set_remote_namespace(o, "lostwb"), BACKLITE_RESULT_OK);
    backlite_storage *first = open_file("lostwb-first.db", o);
    SET(first, "w", "old"); /* read-write: on the remote when the call returns */
    backlite_storage_free(first);
    CHECK_EQ(backlite_options_set_remote_mode(o, BACKLITE_REMOTE_MODE_WRITE_BEHIND), BACKLITE_RESULT_OK);
    backlite_storage *a = open_file("lostwb-a.db", o);
    kill(server.pid, SIGSTOP);
    for (int i = 0; i < 6000; i++) { /* more than the queue holds */
        char k[32];
        snprintf(k, sizeof k, "k%d", i);
        SET(a, k, "v");
    }
    SET(a, "w", "new");
    CHECK(stats_of(a).errors >= 1);
    kill(server.pid, SIGCONT);
    h_sleep_ms(500); /* the back-off runs out */
    backlite_storage_free(a);
    CHECK_EQ(backlite_options_set_remote_mode(o, BACKLITE_REMOTE_MODE_READ_WRITE), BACKLITE_RESULT_OK);
    backlite_storage *b = open_file("lostwb-b.db", o); /* another machine */
    backlite_buf buf = {0};
    backlite_result rc = backlite_storage_get(b, K("w"), &buf, NULL, NULL);
    if (rc == BACKLITE_RESULT_OK) CHECK_BUF_STR(buf, "new");
    else CHECK_EQ(rc, BACKLITE_RESULT_NOT_FOUND);
    backlite_buf_free(&buf);
    backlite_storage_free(b);
    backlite_options_free(o);
}

/* ---- a holder that lost its remote lease is fenced ---- */

static int fence_started[2], fence_go[2];

static int32_t compute_old_when_told(void *user_data, backlite_sink *sink) {
    (void)user_data;
    char byte;
    (void)!write(fence_started[1], "s", 1);
    (void)!read(fence_go[0], &byte, 1);
    return backlite_sink_write(sink, K("old holder")) == BACKLITE_RESULT_OK ? 0 : 1;
}

static int32_t compute_new(void *user_data, backlite_sink *sink) {
    (void)user_data;
    return backlite_sink_write(sink, K("new holder")) == BACKLITE_RESULT_OK ? 0 : 1;
}

static void *old_holder(void *arg) {
    backlite_buf buf = {0};
    backlite_result rc = backlite_cached_call_exclusive(arg, K("fence"), compute_old_when_told,
                                                        NULL, 60000, 10000, &buf, NULL);
    CHECK_EQ(rc, BACKLITE_RESULT_OK);
    backlite_buf_free(&buf);
    return NULL;
}

/* The holder's remote lease is lost while it computes (its key deleted, as when it
 * expired); another machine takes the key, computes and stores; the old holder's value
 * then never overwrites it on the remote. */
static void a_holder_that_lost_its_remote_lease_cannot_overwrite_the_new_value(void) {
    backlite_options *o = remote_at(server.url, 300);
    CHECK_EQ(backlite_options_set_remote_namespace(o, "fence"), BACKLITE_RESULT_OK);
    REQUIRE(pipe(fence_started) == 0 && pipe(fence_go) == 0);
    backlite_storage *a = open_file("fence-a.db", o), *b = open_file("fence-b.db", o);
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, old_holder, a) == 0);
    char byte, out[64];
    REQUIRE(read(fence_started[0], &byte, 1) == 1); /* `a` holds both leases */
    char key[128], cmd[160];
    snprintf(cmd, sizeof cmd, "DEL '%s'", redis_live_key(server.port, "fence", 'l', "fence", key, sizeof key));
    CHECK_STR_EQ(redis_cli(server.port, cmd, out, sizeof out), "1");
    backlite_buf buf = {0};
    CHECK_OK(backlite_cached_call_exclusive(b, K("fence"), compute_new, NULL, 60000, 10000, &buf, &err));
    CHECK_BUF_STR(buf, "new holder");
    backlite_buf_free(&buf);
    (void)!write(fence_go[1], "g", 1);
    pthread_join(t, NULL);
    backlite_storage *c = open_file("fence-c.db", o); /* a third machine */
    GET_EQ(c, "fence", "new holder");
    backlite_storage_free(c);
    backlite_storage_free(a);
    backlite_storage_free(b);
    for (int i = 0; i < 2; i++) {
        close(fence_started[i]);
        close(fence_go[i]);
    }
    backlite_options_free(o);
}

/* ---- single flight across processes, its holder killed ---- */

static int computes[2]; /* a pipe: each compute writes one byte */

static int32_t block_forever(void *user_data, backlite_sink *sink) {
    (void)sink;
    int *started = user_data;
    (void)!write(*started, "s", 1);
    for (;;) pause();
    return 1;
}

static int32_t count_compute(void *user_data, backlite_sink *sink) {
    (void)user_data;
    (void)!write(computes[1], "c", 1);
    return backlite_sink_write(sink, K("computed once")) == BACKLITE_RESULT_OK ? 0 : 1;
}

/* In a child: cached_call_exclusive on "flight" with `file`; exits 0 when it returned
 * "computed once". */
static void waiter(const char *file, backlite_options *o) {
    backlite_storage *s = NULL;
    backlite_result opened = backlite_storage_open(file, o, &s, NULL);
    backlite_options_free(o); /* this process's copy */
    if (opened != BACKLITE_RESULT_OK) _exit(2);
    backlite_buf buf = {0};
    backlite_result rc = backlite_cached_call_exclusive(s, K("flight"), count_compute, NULL,
                                                        60000, 60000, &buf, NULL);
    int ok = rc == BACKLITE_RESULT_OK && buf.len == 13 && memcmp(buf.data, "computed once", 13) == 0;
    if (!ok) fprintf(stderr, "waiter on %s: %s\n", file, h_rc_name(rc));
    backlite_buf_free(&buf);
    backlite_storage_free(s);
    _exit(ok ? 0 : 3);
}

static void single_flight_survives_a_killed_holder_across_processes(void) {
    backlite_options *o = remote_at(server.url, 300);
    char files[2][PATH_MAX];
    snprintf(files[0], sizeof files[0], "%s", tmp_path("flight-1.db"));
    snprintf(files[1], sizeof files[1], "%s", tmp_path("flight-2.db"));
    int started[2];
    REQUIRE(pipe(started) == 0 && pipe(computes) == 0);
    fflush(NULL);
    pid_t holder = fork();
    if (holder == 0) {
        backlite_storage *s = NULL;
        if (backlite_storage_open(files[0], o, &s, NULL) != BACKLITE_RESULT_OK) _exit(2);
        backlite_buf buf = {0};
        backlite_cached_call_exclusive(s, K("flight"), block_forever, &started[1], 60000, 60000, &buf, NULL);
        _exit(4); /* never returns */
    }
    char byte;
    REQUIRE(read(started[0], &byte, 1) == 1); /* it holds both leases, computing */
    pid_t waiters[3];
    for (int i = 0; i < 3; i++) {
        fflush(NULL);
        waiters[i] = fork();
        if (waiters[i] == 0) waiter(files[i % 2], o);
    }
    CHECK(KILL_CHILD(holder));
    for (int i = 0; i < 3; i++) CHECK_EQ(CHILD_EXIT_CODE(waiters[i]), 0);
    /* A fourth process (this one), on the second file. */
    backlite_storage *s = open_file("flight-2.db", o);
    backlite_buf buf = {0};
    CHECK_OK(backlite_cached_call_exclusive(s, K("flight"), count_compute, NULL, 60000, 60000, &buf, &err));
    CHECK_BUF_STR(buf, "computed once");
    backlite_buf_free(&buf);
    backlite_storage_free(s);
    close(computes[1]);
    int n = 0;
    while (read(computes[0], &byte, 1) == 1) n++;
    CHECK_EQ(n, 1);
    close(computes[0]);
    close(started[0]);
    close(started[1]);
    backlite_options_free(o);
}

int main(void) {
    quiet_stopped_children();
    signal(SIGPIPE, SIG_IGN);
    h_begin();
    RUN(a_server_answering_garbage_never_fails_a_call_nor_gives_a_value);
    RUN(a_server_dripping_a_reply_is_cut_off_at_the_timeout);
    if (start_test_server(&server, server_dir) != 0) {
        CHECK(0);
        return h_end();
    }
    RUN(a_paused_server_times_out_and_is_used_again_once_resumed);
    RUN(a_delete_or_clear_that_missed_the_remote_is_never_read_back_through_the_file);
    RUN(a_freed_write_behind_handle_leaves_no_older_value_of_a_lost_write);
    RUN(single_flight_survives_a_killed_holder_across_processes);
    RUN(a_holder_that_lost_its_remote_lease_cannot_overwrite_the_new_value);
    redis_server_stop(&server);
    return h_end();
}
