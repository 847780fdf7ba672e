/*
 * test_remote_modes.c: what each remote mode sends and counts, exactly, against a
 * redis-server this test starts: a local hit touches nothing, READ_ONLY writes
 * nothing, WRITE_BEHIND's queue is bounded (in writes and in bytes) and never blocks
 * a caller; expirations travel (up to INT64_MAX), binary and long keys and values near
 * the size limits arrive unchanged.
 */
#include "harness.h"
#include "redis_server.h"
#include "remote_calls.h"
#include "proc_self.h"

#include <dirent.h>
#include <signal.h>

static redis_server server;
static char server_dir[PATH_MAX];

static backlite_options *remote_options(const redis_server *rs, backlite_remote_mode mode) {
    /* Nothing here waits on a timeout: generous, for valgrind on a busy machine. */
    backlite_options *o = remote_at(rs->url, 10000);
    CHECK_EQ(backlite_options_set_remote_mode(o, mode), BACKLITE_RESULT_OK);
    return o;
}

#define CHECK_STATS(s, h, m, w, e, sk)                                                \
    do {                                                                              \
        backlite_remote_stats st_ = stats_of(s);                                      \
        CHECK_EQ(st_.hits, h);                                                        \
        CHECK_EQ(st_.misses, m);                                                      \
        CHECK_EQ(st_.writes, w);                                                      \
        CHECK_EQ(st_.errors, e);                                                      \
        CHECK_EQ(st_.skipped, sk);                                                    \
        CHECK_EQ(st_.connected, 1);                                                   \
    } while (0)

/* The remote key of `key`'s value in the live generation (default namespace, no tag). */
static void value_key(const redis_server *rs, const char *key, char *out, size_t cap) {
    char gen[64];
    redis_cli(rs->port, "GET backlite::gen", gen, sizeof gen);
    snprintf(out, cap, "backlite::d{%llx:%s}", strtoull(gen, NULL, 10), key);
}

static int on_remote(const char *key) {
    char k[256], cmd[300], out[64];
    value_key(&server, key, k, sizeof k);
    snprintf(cmd, sizeof cmd, "EXISTS '%s'", k);
    return strcmp(redis_cli(server.port, cmd, out, sizeof out), "1") == 0;
}

static int32_t compute_v(void *user_data, backlite_sink *sink) {
    ++*(int *)user_data;
    return backlite_sink_write(sink, K("computed")) == BACKLITE_RESULT_OK ? 0 : 1;
}

static void read_write_counts_each_call_exactly(void) {
    backlite_options *o = remote_options(&server, BACKLITE_REMOTE_MODE_READ_WRITE);
    backlite_storage *a = open_file("rw-a.db", o), *b = open_file("rw-b.db", o);
    CHECK_STATS(a, 0, 0, 0, 0, 0);
    SET(a, "rw-k", "v");
    CHECK_STATS(a, 0, 0, 1, 0, 0);
    /* Local hits and local contains touch nothing. */
    for (int i = 0; i < 3; i++) GET_EQ(a, "rw-k", "v");
    CHECK_OK(backlite_storage_contains(a, K("rw-k"), &err));
    CHECK_STATS(a, 0, 0, 1, 0, 0);
    GET_MISSING(a, "rw-absent");
    CHECK_STATS(a, 0, 1, 1, 0, 0);
    CHECK_RC(backlite_storage_contains(a, K("rw-absent-2"), &err), BACKLITE_RESULT_NOT_FOUND);
    CHECK_STATS(a, 0, 2, 1, 0, 0);
    /* b reads through once, then locally. */
    GET_EQ(b, "rw-k", "v");
    GET_EQ(b, "rw-k", "v");
    CHECK_STATS(b, 1, 0, 0, 0, 0);
    CHECK_OK(backlite_storage_delete(a, K("rw-k"), &err));
    CHECK_STATS(a, 0, 2, 2, 0, 0);
    CHECK_OK(backlite_storage_clear(a, &err));
    CHECK_STATS(a, 0, 2, 3, 0, 0);
    int computed = 0;
    backlite_buf buf = {0};
    CHECK_OK(backlite_cached_call_exclusive(a, K("rw-call"), compute_v, &computed, 60000, 1000, &buf, &err));
    backlite_buf_free(&buf);
    CHECK_EQ(computed, 1);
    /* its look-up missed; its value was written under the lease */
    CHECK_STATS(a, 0, 3, 4, 0, 0);
    CHECK(on_remote("rw-call"));
    backlite_storage_free(b);
    backlite_storage_free(a);
    backlite_options_free(o);
}

static void read_only_reads_through_and_writes_nothing(void) {
    backlite_options *rw = remote_options(&server, BACKLITE_REMOTE_MODE_READ_WRITE);
    backlite_options *ro = remote_options(&server, BACKLITE_REMOTE_MODE_READ_ONLY);
    backlite_storage *w = open_file("ro-w.db", rw);
    SET(w, "ro-k", "from w");
    SET(w, "ro-deleted", "from w");
    char gen_before[64], gen_after[64];
    redis_cli(server.port, "GET backlite::gen", gen_before, sizeof gen_before);
    backlite_storage *r = open_file("ro-r.db", ro);
    GET_EQ(r, "ro-k", "from w");
    GET_EQ(r, "ro-k", "from w");
    CHECK_STATS(r, 1, 0, 0, 0, 0);
    SET(r, "ro-set", "local");
    GET_EQ(r, "ro-deleted", "from w");
    CHECK_OK(backlite_storage_delete(r, K("ro-deleted"), &err));
    backlite_entry e = {(const uint8_t *)"ro-many", 7, (const uint8_t *)"local", 5,
                        BACKLITE_EXPIRATION_NEVER};
    CHECK_OK(backlite_storage_set_many(r, &e, 1, &err));
    int computed = 0;
    backlite_buf buf = {0};
    CHECK_OK(backlite_cached_call_exclusive(r, K("ro-call"), compute_v, &computed, 60000, 1000, &buf, &err));
    backlite_buf_free(&buf);
    CHECK_EQ(computed, 1);
    CHECK_OK(backlite_storage_clear(r, &err));
    CHECK_STATS(r, 2, 1, 0, 0, 0); /* the call's look-up missed */
    CHECK(!on_remote("ro-set"));
    CHECK(!on_remote("ro-many"));
    CHECK(!on_remote("ro-call"));
    CHECK(on_remote("ro-deleted"));
    CHECK(on_remote("ro-k"));
    CHECK_STR_EQ(redis_cli(server.port, "GET backlite::gen", gen_after, sizeof gen_after), gen_before);
    backlite_storage_free(r);
    backlite_storage_free(w);
    backlite_options_free(ro);
    backlite_options_free(rw);
}

static void write_behind_sends_what_is_queued_when_freed(void) {
    backlite_options *wb = remote_options(&server, BACKLITE_REMOTE_MODE_WRITE_BEHIND);
    backlite_options *rw = remote_options(&server, BACKLITE_REMOTE_MODE_READ_WRITE);
    backlite_storage *w = open_file("wb-w.db", wb);
    char key[32], value[32];
    for (int i = 0; i < 100; i++) {
        snprintf(key, sizeof key, "wb-%d", i);
        snprintf(value, sizeof value, "value %d", i);
        SET(w, key, value);
    }
    CHECK_OK(backlite_storage_delete(w, K("wb-7"), &err));
    /* A local hit touches nothing in this mode either. */
    backlite_remote_stats before = stats_of(w);
    GET_EQ(w, "wb-1", "value 1");
    backlite_remote_stats after = stats_of(w);
    CHECK_EQ(after.hits + after.misses, before.hits + before.misses);
    backlite_storage_free(w); /* sends what is queued */
    backlite_storage *r = open_file("wb-r.db", rw);
    for (int i = 0; i < 100; i++) {
        snprintf(key, sizeof key, "wb-%d", i);
        snprintf(value, sizeof value, "value %d", i);
        if (i == 7)
            GET_MISSING(r, key);
        else
            GET_EQ(r, key, value);
    }
    CHECK_STATS(r, 99, 1, 0, 0, 0);
    backlite_storage_free(r);
    backlite_options_free(rw);
    backlite_options_free(wb);
}

/* The server is paused for the whole loop: a set that waited for the remote would
 * never return (the harness's alarm ends the test). The write-behind thread holds at
 * most one batch (256 calls) in its round trip and the queue 4096 more: the rest are
 * dropped and counted. */
static void write_behind_never_blocks_and_its_queue_is_bounded(void) {
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", tmp_path("paused-redis"));
    mkdir(dir, 0700);
    redis_server paused;
    REQUIRE(redis_server_start(&paused, dir, NULL) == 0);
    backlite_options *wb = remote_options(&paused, BACKLITE_REMOTE_MODE_WRITE_BEHIND);
    /* The thread's first round trip waits for the server, however long it is paused. */
    CHECK_EQ(backlite_options_set_remote_timeout_ms(wb, UINT32_MAX), BACKLITE_RESULT_OK);
    backlite_storage *w = open_file("queue.db", wb);
    CHECK_EQ(stats_of(w).connected, 1);
    kill(paused.pid, SIGSTOP);
    const int n = 5000;
    char key[32];
    for (int i = 0; i < n; i++) {
        snprintf(key, sizeof key, "q-%d", i);
        SET(w, key, "queued");
    }
    backlite_remote_stats st = stats_of(w);
    CHECK(st.errors >= (uint64_t)(n - 4096 - 256));
    CHECK_EQ(st.writes, 0);
    GET_EQ(w, "q-0", "queued");
    kill(paused.pid, SIGCONT);
    backlite_storage_free(w); /* sends what is left, the server answering again */
    backlite_options *rw = remote_options(&paused, BACKLITE_REMOTE_MODE_READ_WRITE);
    backlite_storage *r = open_file("queue-r.db", rw);
    GET_EQ(r, "q-0", "queued"); /* the first batch, sent before the pause ended */
    backlite_storage_free(r);
    backlite_options_free(rw);
    backlite_options_free(wb);
    redis_server_stop(&paused);
}

/* The queue is bounded in bytes too (64 MiB of keys and values, waiting or being
 * sent): a burst of large values to a paused server is dropped and counted past that,
 * each still set locally. Before, the 4096 writes of the queue were its only bound: 64
 * values of 4 MiB to a paused server took this process from 14 to 381 MB. The first
 * value goes into the thread's round trip, which waits for the paused server (no
 * timeout); at most 64 MiB more can wait behind it. */
static void write_behind_holds_a_bounded_number_of_bytes(void) {
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", tmp_path("bytes-redis"));
    mkdir(dir, 0700);
    redis_server paused;
    REQUIRE(redis_server_start(&paused, dir, NULL) == 0);
    backlite_options *wb = remote_options(&paused, BACKLITE_REMOTE_MODE_WRITE_BEHIND);
    CHECK_EQ(backlite_options_set_remote_timeout_ms(wb, UINT32_MAX), BACKLITE_RESULT_OK);
    backlite_storage *w = open_file("bytes.db", wb);
    kill(paused.pid, SIGSTOP);
    const size_t size = 1 << 20;
    const int n = 100;
    uint8_t *value = malloc(size);
    REQUIRE(value != NULL);
    memset(value, 'v', size);
    char key[32];
    for (int i = 0; i < n; i++) {
        snprintf(key, sizeof key, "bytes-%d", i);
        value[0] = (uint8_t)i;
        SET_BYTES(w, key, value, size, BACKLITE_EXPIRATION_NEVER);
    }
    backlite_remote_stats st = stats_of(w);
    /* at most 64 values wait, one more is in the round trip */
    CHECK(st.errors >= (uint64_t)(n - 64 - 1));
    CHECK_EQ(st.writes, 0);
    for (int i = 0; i < n; i++) { /* each one is set locally */
        snprintf(key, sizeof key, "bytes-%d", i);
        backlite_buf buf = {0};
        CHECK_OK(backlite_storage_get(w, K(key), &buf, NULL, &err));
        CHECK(buf.len == size && buf.data[0] == (uint8_t)i);
        backlite_buf_free(&buf);
    }
    kill(paused.pid, SIGCONT);
    backlite_storage_free(w); /* sends what is left */
    free(value);
    backlite_options_free(wb);
    redis_server_stop(&paused);
}

static void an_expiration_is_kept_remotely_and_a_remote_hit_keeps_its_time_left(void) {
    backlite_options *o = remote_options(&server, BACKLITE_REMOTE_MODE_READ_WRITE);
    backlite_storage *a = open_file("exp-a.db", o), *b = open_file("exp-b.db", o);
    SET_EXP(a, "exp", "v", 50000);
    char k[128], cmd[200], out[64];
    value_key(&server, "exp", k, sizeof k);
    snprintf(cmd, sizeof cmd, "PTTL '%s'", k);
    long long pttl = strtoll(redis_cli(server.port, cmd, out, sizeof out), NULL, 10);
    CHECK(pttl > 0 && pttl <= 50000);
    backlite_buf buf = {0};
    int64_t left = -5, again = -5;
    CHECK_OK(backlite_storage_get(b, K("exp"), &buf, &left, &err));
    backlite_buf_free(&buf);
    CHECK(left > 0 && left <= 50000);
    CHECK_OK(backlite_storage_get(b, K("exp"), &buf, &again, &err));
    backlite_buf_free(&buf);
    CHECK(again > 0 && again <= left);
    backlite_storage_free(b);
    backlite_storage_free(a);
    backlite_options_free(o);
}

/*
 * An expiration as far as the API allows (INT64_MAX ms) is still a set: the remote
 * must not refuse it (Redis refuses a PX whose deadline overflows its clock) and lose
 * it, nor the other writes sent in the same round trip.
 */
static void the_farthest_expiration_still_reaches_the_remote(void) {
    const backlite_remote_mode modes[] = {BACKLITE_REMOTE_MODE_READ_WRITE,
                                          BACKLITE_REMOTE_MODE_WRITE_BEHIND};
    for (int m = 0; m < 2; m++) {
        backlite_options *o = remote_options(&server, modes[m]);
        backlite_options *rw = remote_options(&server, BACKLITE_REMOTE_MODE_READ_WRITE);
        backlite_storage *a = open_file("far-a.db", o);
        char far1[32], far2[32], many1[32], many2[32], call[32];
        snprintf(far1, sizeof far1, "far-%d", m);
        snprintf(far2, sizeof far2, "far-minus-%d", m);
        snprintf(many1, sizeof many1, "far-many-%d", m);
        snprintf(many2, sizeof many2, "near-many-%d", m);
        snprintf(call, sizeof call, "far-call-%d", m);
        SET_EXP(a, far1, "far", INT64_MAX);
        SET_EXP(a, far2, "far", INT64_MAX - 1000);
        backlite_entry e[2] = {
            {(const uint8_t *)many1, strlen(many1), (const uint8_t *)"far", 3, INT64_MAX},
            {(const uint8_t *)many2, strlen(many2), (const uint8_t *)"near", 4, 60000}};
        CHECK_OK(backlite_storage_set_many(a, e, 2, &err));
        int computed = 0;
        backlite_buf buf = {0};
        CHECK_OK(backlite_cached_call_exclusive(a, K(call), compute_v, &computed, INT64_MAX, 1000, &buf, &err));
        backlite_buf_free(&buf);
        backlite_remote_stats st = stats_of(a);
        backlite_storage_free(a); /* write-behind: sends what is queued */
        CHECK_EQ(st.errors, 0);
        backlite_storage *b = open_file("far-b.db", rw);
        GET_EQ(b, far1, "far");
        GET_EQ(b, far2, "far");
        GET_EQ(b, many1, "far");
        GET_EQ(b, many2, "near");
        GET_EQ(b, call, "computed");
        int64_t left = 0;
        CHECK_OK(backlite_storage_get(b, K(far1), &buf, &left, &err));
        backlite_buf_free(&buf);
        CHECK(left > 1000LL * 3600 * 24 * 365 * 1000); /* over a thousand years */
        backlite_storage_free(b);
        backlite_options_free(rw);
        backlite_options_free(o);
    }
}

/* The longest key name on the server, in bytes. */
static size_t longest_remote_key(void) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "redis-cli -h 127.0.0.1 -p %d --scan 2>/dev/null", server.port);
    FILE *p = popen(cmd, "r");
    size_t longest = 0;
    if (!p) return SIZE_MAX;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, p)) > 0)
        if ((size_t)n > longest) longest = (size_t)n;
    free(line);
    pclose(p);
    return longest;
}

static void binary_and_long_keys_arrive_unchanged(void) {
    backlite_options *o = remote_options(&server, BACKLITE_REMOTE_MODE_READ_WRITE);
    backlite_storage *a = open_file("keys-a.db", o), *b = open_file("keys-b.db", o);
    static uint8_t big[100000];
    for (size_t i = 0; i < sizeof big; i++) big[i] = (uint8_t)(i * 7 + 1);
    struct {
        const uint8_t *key;
        size_t len;
    } keys[] = {{(const uint8_t *)"", 0},          {(const uint8_t *)"\0", 1},
                {(const uint8_t *)"a\0b", 3},      {(const uint8_t *)"{", 1},
                {(const uint8_t *)"}", 1},         {(const uint8_t *)"{x}y}", 5},
                {(const uint8_t *)"a:b:gen", 7},   {(const uint8_t *)"\xff\xfe\x80", 3},
                {(const uint8_t *)"\r\n$3\r\n", 7}, {(const uint8_t *)"*", 1},
                {big, 256},                        {big, 257},
                {big, 1000},                       {big, sizeof big}};
    size_t n = sizeof keys / sizeof *keys;
    for (size_t i = 0; i < n; i++) {
        char value[32];
        snprintf(value, sizeof value, "value of key %zu", i);
        CHECK_OK(backlite_storage_set(a, keys[i].key, keys[i].len, K(value), BACKLITE_EXPIRATION_NEVER, &err));
    }
    CHECK_STATS(a, 0, 0, n, 0, 0);
    for (size_t i = 0; i < n; i++) {
        char value[32];
        snprintf(value, sizeof value, "value of key %zu", i);
        backlite_buf buf = {0};
        CHECK_OK(backlite_storage_get(b, keys[i].key, keys[i].len, &buf, NULL, &err));
        CHECK_BUF_STR(buf, value);
        backlite_buf_free(&buf);
    }
    CHECK_STATS(b, n, 0, 0, 0, 0);
    CHECK(longest_remote_key() < 400); /* long keys are hashed */
    backlite_storage_free(b);
    backlite_storage_free(a);
    backlite_options_free(o);
}

static void values_near_the_size_limits_arrive_unchanged(void) {
    backlite_options *o = remote_options(&server, BACKLITE_REMOTE_MODE_READ_WRITE);
    backlite_storage *a = open_file("sizes-a.db", o), *b = open_file("sizes-b.db", o);
    const size_t sizes[] = {0, 1, 65535, 65536, 65537, (1 << 20) - 1, 1 << 20, (1 << 20) + 1,
                            8 << 20};
    size_t n = sizeof sizes / sizeof *sizes;
    uint8_t *value = malloc(8 << 20);
    REQUIRE(value != NULL);
    for (size_t i = 0; i < n; i++) {
        char key[32];
        snprintf(key, sizeof key, "size-%zu", sizes[i]);
        for (size_t j = 0; j < sizes[i]; j++) value[j] = (uint8_t)(j * 31 + i);
        CHECK_OK(backlite_storage_set(a, K(key), value, sizes[i], BACKLITE_EXPIRATION_NEVER, &err));
    }
    CHECK_STATS(a, 0, 0, n, 0, 0);
    for (size_t i = 0; i < n; i++) {
        char key[32];
        snprintf(key, sizeof key, "size-%zu", sizes[i]);
        for (size_t j = 0; j < sizes[i]; j++) value[j] = (uint8_t)(j * 31 + i);
        for (int twice = 0; twice < 2; twice++) { /* through, then local */
            backlite_buf buf = {0};
            CHECK_OK(backlite_storage_get(b, K(key), &buf, NULL, &err));
            CHECK(buf.len == sizes[i] && (sizes[i] == 0 || memcmp(buf.data, value, sizes[i]) == 0));
            backlite_buf_free(&buf);
        }
    }
    CHECK_STATS(b, n, 0, 0, 0, 0);
    free(value);
    backlite_storage_free(b);
    backlite_storage_free(a);
    backlite_options_free(o);
}

/* Each handle's connections, write-behind thread and lease renewers go with it: a
 * program that opens and frees handles keeps the same sockets and threads. */
static void freed_handles_leave_no_socket_or_thread_behind(void) {
    const backlite_remote_mode modes[] = {BACKLITE_REMOTE_MODE_READ_WRITE,
                                          BACKLITE_REMOTE_MODE_READ_ONLY,
                                          BACKLITE_REMOTE_MODE_WRITE_BEHIND};
    backlite_options *o[3];
    for (int m = 0; m < 3; m++) o[m] = remote_options(&server, modes[m]);
    int fds = 0, threads = 0;
    for (int round = 0; round < 21; round++) {
        for (int m = 0; m < 3; m++) {
            backlite_storage *s = open_file("cycle.db", o[m]);
            char key[32];
            snprintf(key, sizeof key, "cycle-%d-%d", round, m);
            SET(s, key, "v");
            GET_MISSING(s, "cycle-absent");
            int computed = 0;
            backlite_buf buf = {0};
            CHECK_OK(backlite_cached_call_exclusive(s, K(key), compute_v, &computed, 60000, 1000, &buf, &err));
            backlite_buf_free(&buf);
            CHECK_OK(backlite_storage_delete(s, K(key), &err));
            backlite_storage_free(s);
        }
        if (round == 0) { /* what the first round started for good (none expected) */
            fds = proc_entries("fd");
            threads = settled_thread_count();
        }
    }
    CHECK_EQ(proc_entries("fd"), fds);
    CHECK_EQ(thread_count_once(threads), threads);
    for (int m = 0; m < 3; m++) backlite_options_free(o[m]);
}

int main(void) {
    quiet_stopped_children();
    h_begin();
    if (start_test_server(&server, server_dir) != 0) {
        CHECK(0);
        return h_end();
    }
    RUN(read_write_counts_each_call_exactly);
    RUN(read_only_reads_through_and_writes_nothing);
    RUN(write_behind_sends_what_is_queued_when_freed);
    RUN(write_behind_never_blocks_and_its_queue_is_bounded);
    RUN(write_behind_holds_a_bounded_number_of_bytes);
    RUN(an_expiration_is_kept_remotely_and_a_remote_hit_keeps_its_time_left);
    RUN(the_farthest_expiration_still_reaches_the_remote);
    RUN(binary_and_long_keys_arrive_unchanged);
    RUN(values_near_the_size_limits_arrive_unchanged);
    RUN(freed_handles_leave_no_socket_or_thread_behind);
    redis_server_stop(&server);
    return h_end();
}
