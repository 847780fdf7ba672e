/*
 * test_remote_probes.c: the remote tier against real redis-servers doing what servers
 * do in production: closing idle connections, restarting on their port, going away
 * for a moment while a lease is held, refusing a set (out of memory, a value too long),
 * not accepting on a Unix socket. Each case
 * starts from what a probe found broken.
 */
#include "harness.h"
#include "redis_server.h"
#include "remote_calls.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>

static redis_server server;
static char server_dir[PATH_MAX];

/* A server that closes the connections lying idle in a handle's pool (`CLIENT KILL`,
 * its idle `timeout`, a restart on the same port) is not down: the next call sends its
 * request again on a new connection, within its timeout, instead of failing, counting an
 * error, backing the remote off and leaving the key unsynced (the set below was lost and
 * the other machine's get missed, before). */
static void check_connections_closed_by_the_server_cost_no_call(redis_server *rs, const char *dir,
                                                                 int restart) {
    backlite_options *o = remote_at(rs->url, 10000);
    backlite_storage *a = open_file("closed-a.db", o), *b = open_file("closed-b.db", o);
    SET(a, "before", "v1");
    GET_EQ(b, "before", "v1"); /* both handles have a connection in their pool */
    if (restart) {
        int port = rs->port;
        redis_server_stop(rs);
        rs->port = port;
        REQUIRE(redis_server_try_start(rs, dir, NULL, 0) == 0);
    } else {
        char out[64];
        CHECK_STR_EQ(redis_cli(rs->port, "CLIENT KILL TYPE normal", out, sizeof out), "2");
    }
    SET(a, "after", "v2");
    GET_EQ(b, "after", "v2");
    backlite_remote_stats sa = stats_of(a), sb = stats_of(b);
    CHECK_EQ(sa.errors, 0);
    CHECK_EQ(sa.writes, 2);
    CHECK_EQ(sa.connected, 1);
    CHECK_EQ(sb.errors, 0);
    CHECK_EQ(sb.hits, 2);
    CHECK_EQ(sb.connected, 1);
    backlite_storage_free(b);
    backlite_storage_free(a);
    backlite_options_free(o);
}

static void connections_killed_by_the_server_cost_no_call(void) {
    check_connections_closed_by_the_server_cost_no_call(&server, server_dir, 0);
}

static void a_server_restarted_on_its_port_costs_no_call(void) {
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", tmp_path("restarted"));
    mkdir(dir, 0700);
    redis_server rs;
    REQUIRE(redis_server_start(&rs, dir, NULL) == 0);
    check_connections_closed_by_the_server_cost_no_call(&rs, dir, 1);
    redis_server_stop(&rs);
}

/* ---- a remote lease through a moment's outage ---- */

static int lease_started[2], lease_go[2];
static atomic_int lease_computes;

static int32_t compute_when_told(void *user_data, backlite_sink *sink) {
    (void)user_data;
    char byte;
    atomic_fetch_add(&lease_computes, 1);
    (void)!write(lease_started[1], "s", 1);
    (void)!read(lease_go[0], &byte, 1);
    return backlite_sink_write(sink, K("computed once")) == BACKLITE_RESULT_OK ? 0 : 1;
}

static void *exclusive_call(void *arg) {
    backlite_buf buf = {0};
    CHECK_OK(backlite_cached_call_exclusive(arg, K("renewed"), compute_when_told, NULL, 60000,
                                            30000, &buf, NULL));
    CHECK_BUF_STR(buf, "computed once");
    backlite_buf_free(&buf);
    return NULL;
}

/* A holder whose renewal meets a remote that does not answer for a moment keeps
 * renewing once it answers again: the lease is still its own until its deadline.
 * Before, the renewer gave up at the first renewal that failed, the lease ran out while
 * the compute went on, and another machine computed the key at the same time (2
 * computes). The server is killed and restarted on its port from its append-only file
 * (the lease key kept, with its deadline): a paused server would still run the timed-out
 * renewal when resumed. The lease lasts 4.8 s here (8 timeouts), renewed every 1.6 s;
 * the server is down from the start of the compute for 2 s, over the first renewal,
 * and the compute goes on until 6 s after it started, past the deadline of a lease
 * never renewed. (With 2.4 s, a restart slowed by a loaded machine left the retries
 * too little time: computed twice, once in many runs.) */
static void a_renewal_that_missed_the_remote_is_tried_again_and_the_lease_kept(void) {
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", tmp_path("renew"));
    mkdir(dir, 0700);
    redis_server rs;
    const char *durable[] = {"--appendonly", "yes", "--appendfsync", "always", NULL};
    REQUIRE(redis_server_start_args(&rs, dir, durable, 0) == 0);
    backlite_options *o = remote_at(rs.url, 600);
    REQUIRE(pipe(lease_started) == 0 && pipe(lease_go) == 0);
    atomic_store(&lease_computes, 0);
    backlite_storage *a = open_file("renew-a.db", o), *b = open_file("renew-b.db", o);
    int64_t t0 = h_now_ms();
    pthread_t holder, waiter;
    REQUIRE(pthread_create(&holder, NULL, exclusive_call, a) == 0);
    char byte, out[64];
    REQUIRE(read(lease_started[0], &byte, 1) == 1); /* `a` holds the remote lease */
    int port = rs.port;
    redis_server_stop(&rs);
    h_sleep_ms(2000);
    rs.port = port;
    REQUIRE(redis_server_try_start(&rs, dir, durable, 0) == 0);
    char key[128], cmd[160];
    snprintf(cmd, sizeof cmd, "EXISTS '%s'", redis_live_key(rs.port, "backlite", 'l', "renewed", key, sizeof key));
    CHECK_STR_EQ(redis_cli(rs.port, cmd, out, sizeof out), "1");
    /* Another machine asks for the key while `a` still computes. */
    REQUIRE(pthread_create(&waiter, NULL, exclusive_call, b) == 0);
    int64_t left = 6000 - (h_now_ms() - t0);
    if (left > 0) h_sleep_ms(left);
    /* Past the deadline of a lease never renewed since the outage: no second compute. */
    CHECK_EQ(atomic_load(&lease_computes), 1);
    (void)!write(lease_go[1], "gg", 2);
    pthread_join(holder, NULL);
    pthread_join(waiter, NULL);
    CHECK_EQ(atomic_load(&lease_computes), 1);
    backlite_storage_free(b);
    backlite_storage_free(a);
    for (int i = 0; i < 2; i++) {
        close(lease_started[i]);
        close(lease_go[i]);
    }
    backlite_options_free(o);
    redis_server_stop(&rs);
}

/* ---- a set the server refuses ---- */

/* A set the server refuses (out of memory under `noeviction`; a value over its
 * `proto-max-bulk-len`, which also closes the connection) is counted, the local set
 * succeeds, and no other machine reads the key's older value from the remote: it is
 * unlinked in the same round trip, before the refused SET. Before, `b` read "old" for
 * as long as `a` made no other remote call. */
static void check_a_refused_set_leaves_no_older_value(const char *const *extra, int oom) {
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", tmp_path("refusing"));
    mkdir(dir, 0700);
    redis_server rs;
    REQUIRE(redis_server_start_args(&rs, dir, extra, 0) == 0);
    backlite_options *o = remote_at(rs.url, 10000);
    backlite_storage *a = open_file("refused-a.db", o), *b = open_file("refused-b.db", o);
    SET(a, "k", "old");
    SET(a, "other", "kept");
    char out[64];
    if (oom) {
        CHECK_STR_EQ(redis_cli(rs.port, "CONFIG SET maxmemory-policy noeviction", out, sizeof out), "OK");
        CHECK_STR_EQ(redis_cli(rs.port, "CONFIG SET maxmemory 1", out, sizeof out), "OK");
    }
    const size_t size = 2 << 20; /* over the 1 MiB bulk length */
    uint8_t *value = malloc(size);
    REQUIRE(value != NULL);
    memset(value, 'n', size);
    SET_BYTES(a, "k", value, size, BACKLITE_EXPIRATION_NEVER);
    backlite_remote_stats st = stats_of(a);
    CHECK_EQ(st.writes, 2);
    CHECK_EQ(st.errors, 1);
    backlite_buf buf = {0};
    CHECK_OK(backlite_storage_get(a, K("k"), &buf, NULL, &err));
    CHECK(buf.len == size && memcmp(buf.data, value, size) == 0);
    backlite_buf_free(&buf);
    GET_MISSING(b, "k");
    if (oom) CHECK_STR_EQ(redis_cli(rs.port, "CONFIG SET maxmemory 0", out, sizeof out), "OK");
    GET_EQ(b, "other", "kept"); /* the remote is used again */
    free(value);
    backlite_storage_free(b);
    backlite_storage_free(a);
    backlite_options_free(o);
    redis_server_stop(&rs);
}

static void a_set_refused_for_memory_leaves_no_older_value(void) {
    check_a_refused_set_leaves_no_older_value(NULL, 1);
}

static void a_set_over_the_bulk_length_leaves_no_older_value(void) {
    const char *extra[] = {"--proto-max-bulk-len", "1mb", NULL};
    check_a_refused_set_leaves_no_older_value(extra, 0);
}

/* ---- a Unix socket whose server does not accept ---- */

typedef struct socket_opens {
    const char *url;
    atomic_int done;
    int connected, errors;
} socket_opens;

static void *open_four(void *arg) {
    socket_opens *t = arg;
    backlite_options *o = remote_at(t->url, 200);
    for (int i = 0; i < 4; i++) {
        char name[32];
        snprintf(name, sizeof name, "queue-full-%d.db", i);
        backlite_storage *s = open_file(name, o);
        SET(s, "k", "local");
        GET_EQ(s, "k", "local");
        backlite_remote_stats st = stats_of(s);
        t->connected += st.connected;
        t->errors += st.errors > 0;
        backlite_storage_free(s);
    }
    backlite_options_free(o);
    atomic_store(&t->done, 1);
    return NULL;
}

/* A server on a Unix socket that does not accept (paused here; overloaded in
 * production) fills its listen queue, and a connect to a full queue waited for room
 * without bound: the third open below never returned while the server was paused. Each
 * connect now gives up at the timeout, as over TCP. The queue holds 2 connections
 * (`tcp-backlog 1`, which Redis also gives its Unix socket). */
static void a_unix_socket_with_a_full_listen_queue_times_out(void) {
    char dir[PATH_MAX], sock[PATH_MAX], url[PATH_MAX + 32];
    snprintf(dir, sizeof dir, "%s", tmp_path("queue-full"));
    mkdir(dir, 0700);
    REQUIRE(snprintf(sock, sizeof sock, "%s/redis.sock", dir) < (int)sizeof sock);
    REQUIRE(snprintf(url, sizeof url, "redis+unix://%s", sock) < (int)sizeof url);
    const char *extra[] = {"--unixsocket", sock, "--tcp-backlog", "1", NULL};
    redis_server rs;
    REQUIRE(redis_server_start_args(&rs, dir, extra, 0) == 0);
    kill(rs.pid, SIGSTOP);
    socket_opens t = {.url = url};
    pthread_t opener;
    REQUIRE(pthread_create(&opener, NULL, open_four, &t) == 0);
    /* Far more than 4 opens, a set and a get each, at 200 ms a round trip. */
    for (int i = 0; i < 1500 && !atomic_load(&t.done); i++) h_sleep_ms(10);
    CHECK(atomic_load(&t.done));
    kill(rs.pid, SIGCONT); /* lets a hung connect go on, so that the thread ends */
    pthread_join(opener, NULL);
    CHECK_EQ(t.connected, 0);
    CHECK_EQ(t.errors, 4);
    redis_server_stop(&rs);
}

/* ---- namespaces and version tags with colons ---- */

/* Remote keys are `<namespace>:<version tag>:...`, and a namespace may hold ':'. Decided:
 * two different (namespace, tag) pairs never share a key, however their colons line
 * up. A tag outside [A-Za-z0-9._-] is hashed (and marked with '~', which no plain tag
 * holds), so a tag never holds ':' and the last two colons of the prefix always frame
 * the tag. Each pair below writes its own value of "k"; a fresh file with the same pair
 * reads that value, and a clear by one pair hides nothing of the others. */
static void namespaces_and_tags_with_colons_never_share_a_key(void) {
    const struct {
        const char *ns, *tag;
    } spaces[] = {{"a:b", "c"}, {"a", "b:c"}, {"a:b:c", NULL}, {"a", "b"},
                  {"a:b", NULL}, {"a:", "b"},  {"a", NULL},    {"a::", NULL}};
    enum { N = sizeof spaces / sizeof *spaces };
    backlite_options *o[N];
    for (int i = 0; i < N; i++) {
        o[i] = remote_at(server.url, 10000);
        CHECK_EQ(backlite_options_set_remote_namespace(o[i], spaces[i].ns), BACKLITE_RESULT_OK);
        if (spaces[i].tag) CHECK_EQ(backlite_options_set_version_tag(o[i], spaces[i].tag), BACKLITE_RESULT_OK);
        char name[32], value[32];
        snprintf(name, sizeof name, "space-w%d.db", i);
        snprintf(value, sizeof value, "space %d", i);
        backlite_storage *w = open_file(name, o[i]);
        SET(w, "k", value);
        backlite_storage_free(w);
    }
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < N; i++) {
            char name[32], value[32];
            snprintf(name, sizeof name, "space-r%d-%d.db", round, i);
            snprintf(value, sizeof value, "space %d", i);
            backlite_storage *r = open_file(name, o[i]);
            if (round == 1 && i == 0) GET_MISSING(r, "k"); /* its space was cleared */
            else GET_EQ(r, "k", value);
            if (round == 0 && i == 0) CHECK_OK(backlite_storage_clear(r, &err));
            backlite_storage_free(r);
        }
    }
    for (int i = 0; i < N; i++) backlite_options_free(o[i]);
}

/* ---- every counter through an outage ---- */

#define CHECK_COUNTS(st, h, m, w, failed, conn)                                      \
    do {                                                                              \
        CHECK_EQ((st).hits, h);                                                       \
        CHECK_EQ((st).misses, m);                                                     \
        CHECK_EQ((st).writes, w);                                                     \
        CHECK_EQ((st).errors + (st).skipped, failed);                                 \
        CHECK_EQ((st).connected, conn);                                               \
    } while (0)

/* A scripted sequence, each call counted exactly once: in hits, misses or writes when
 * the remote answered it, in errors (it failed) or skipped (not sent while backed off)
 * when it did not; `connected` after the outage and after the return. Which of errors
 * and skipped counts a call in the outage depends on the clock (the first back-off is
 * 100 ms), so only their sum is exact, and the first is an error. */
static void every_counter_counts_each_call_once_through_an_outage(void) {
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", tmp_path("outage"));
    mkdir(dir, 0700);
    redis_server rs;
    REQUIRE(redis_server_start(&rs, dir, NULL) == 0);
    backlite_options *o = remote_at(rs.url, 10000);
    backlite_storage *a = open_file("outage-a.db", o), *b = open_file("outage-b.db", o);
    CHECK_COUNTS(stats_of(a), 0, 0, 0, 0, 1);
    SET(a, "k", "v");                                         /* write */
    GET_EQ(a, "k", "v");                                      /* local hit: nothing */
    GET_MISSING(a, "absent");                                 /* miss */
    CHECK_RC(backlite_storage_contains(a, K("absent"), &err), BACKLITE_RESULT_NOT_FOUND); /* miss */
    GET_EQ(b, "k", "v");                                      /* b: hit */
    CHECK_COUNTS(stats_of(a), 0, 2, 1, 0, 1);
    CHECK_COUNTS(stats_of(b), 1, 0, 0, 0, 1);
    int port = rs.port;
    redis_server_stop(&rs);
    GET_MISSING(a, "absent-1");                               /* error: refused */
    backlite_remote_stats st = stats_of(a);
    CHECK_COUNTS(st, 0, 2, 1, 1, 0);
    CHECK_EQ(st.errors, 1);
    SET(a, "k2", "v2");
    CHECK_OK(backlite_storage_delete(a, K("k"), &err));
    CHECK_RC(backlite_storage_contains(a, K("absent-2"), &err), BACKLITE_RESULT_NOT_FOUND);
    CHECK_OK(backlite_storage_clear(a, &err));
    GET_MISSING(a, "absent-3");
    CHECK_COUNTS(stats_of(a), 0, 2, 1, 6, 0);
    rs.port = port;
    REQUIRE(redis_server_try_start(&rs, dir, NULL, 0) == 0);
    /* Each call is still counted once while the back-off runs out, then a get is
     * answered: the owed clear goes first (a write), then the get (a miss). */
    uint64_t calls = 6;
    while (!stats_of(a).connected && calls < 6 + 3000) {
        GET_MISSING(a, "probe");
        calls++;
        st = stats_of(a);
        if (!st.connected) {
            CHECK_EQ(st.errors + st.skipped, calls);
            h_sleep_ms(10);
        }
    }
    CHECK_COUNTS(stats_of(a), 0, 3, 2, calls - 1, 1);
    backlite_storage_free(b);
    backlite_storage_free(a);
    backlite_options_free(o);
    redis_server_stop(&rs);
}

/* ---- a server that stalls past the timeout ---- */

/* A server that stalls (DEBUG SLEEP, as a slow command or a fork would) past the
 * timeout makes the calls waiting on it time out; their replies, sent when it wakes,
 * are never read as the answers of later calls: each get returns its own key's value
 * or, while the remote is out of reach, misses. Every key is read by a fresh file so
 * that each get asks the remote. */
static void replies_of_calls_that_timed_out_are_never_read_by_later_calls(void) {
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", tmp_path("stalling"));
    mkdir(dir, 0700);
    redis_server rs;
    const char *extra[] = {"--enable-debug-command", "yes", NULL};
    if (redis_server_start_args(&rs, dir, extra, 0) != 0) SKIP("this redis-server has no DEBUG");
    backlite_options *o = remote_at(rs.url, 150);
    backlite_storage *w = open_file("stall-w.db", o);
    char key[32], value[32], name[32], cmd[160];
    for (int i = 0; i < 20; i++) {
        snprintf(key, sizeof key, "stall-%d", i);
        snprintf(value, sizeof value, "value of %d", i);
        SET(w, key, value);
    }
    backlite_storage_free(w);
    /* Read-only: the deletes below stay local, and the next get asks the remote again. */
    CHECK_EQ(backlite_options_set_remote_mode(o, BACKLITE_REMOTE_MODE_READ_ONLY), BACKLITE_RESULT_OK);
    int answered = 0, missed = 0;
    for (int round = 0; round < 3; round++) {
        snprintf(cmd, sizeof cmd,
                 "redis-cli -h 127.0.0.1 -p %d DEBUG SLEEP 0.4 >/dev/null 2>&1 &", rs.port);
        CHECK_EQ(system(cmd), 0);
        snprintf(name, sizeof name, "stall-r%d.db", round);
        backlite_storage *r = open_file(name, o);
        int64_t until = h_now_ms() + 900;
        for (int i = 0; h_now_ms() < until; i = (i + 1) % 20) {
            snprintf(key, sizeof key, "stall-%d", i);
            snprintf(value, sizeof value, "value of %d", i);
            backlite_buf buf = {0};
            backlite_result rc = backlite_storage_get(r, K(key), &buf, NULL, NULL);
            if (rc == BACKLITE_RESULT_OK) CHECK_BUF_STR(buf, value);
            else CHECK_EQ(rc, BACKLITE_RESULT_NOT_FOUND);
            backlite_buf_free(&buf);
            if (rc == BACKLITE_RESULT_OK) CHECK_OK(backlite_storage_delete(r, K(key), &err));
            answered += rc == BACKLITE_RESULT_OK;
            missed += rc != BACKLITE_RESULT_OK;
            h_sleep_ms(1);
        }
        backlite_storage_free(r);
    }
    fprintf(stderr, "stalling server: %d gets answered, %d missed\n", answered, missed);
    CHECK(answered > 0);
    backlite_options_free(o);
    redis_server_stop(&rs);
}

int main(void) {
    quiet_stopped_children();
    /* SIGPIPE left as it is: a C program that does not ignore it must survive a peer that closed */
    h_begin();
    if (start_test_server(&server, server_dir) != 0) {
        CHECK(0);
        return h_end();
    }
    RUN(connections_killed_by_the_server_cost_no_call);
    RUN(a_server_restarted_on_its_port_costs_no_call);
    RUN(a_renewal_that_missed_the_remote_is_tried_again_and_the_lease_kept);
    RUN(a_set_refused_for_memory_leaves_no_older_value);
    RUN(a_set_over_the_bulk_length_leaves_no_older_value);
    RUN(a_unix_socket_with_a_full_listen_queue_times_out);
    RUN(namespaces_and_tags_with_colons_never_share_a_key);
    RUN(every_counter_counts_each_call_once_through_an_outage);
    RUN(replies_of_calls_that_timed_out_are_never_read_by_later_calls);
    redis_server_stop(&server);
    return h_end();
}
