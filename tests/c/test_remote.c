/*
 * test_remote.c: the remote tier through the C API, against a redis-server this test
 * starts itself: option checks, two "machines" (processes with their own files)
 * sharing values, stats, an unreachable remote and a killed one, and TLS with CAs made
 * by openssl (the trusted roots come from SSL_CERT_FILE, as the README says).
 */
#include "harness.h"
#include "holding_proxy.h"
#include "redis_server.h"
#include "remote_calls.h"

#include <pthread.h>


static redis_server server;
static char server_dir[PATH_MAX];

static backlite_options *remote_options(const char *url) { return remote_at(url, 300); }

static void bad_options_are_refused(void) {
    backlite_options *o = backlite_options_new();
    const char *bad[] = {"not a url", "ftp://h:1", "redis://", "redis://h:99999",
                         "redis://h/notadb", "redis+cluster://a:1,,b:2", "redis+unix://rel",
                         /* no server listens on port 0; a fragment means nothing */
                         "redis://h:0", "rediss://h:0/1", "redis+cluster://a:1,b:0",
                         "redis://h:6379#x",
                         /* the client would connect to /tmp/a */
                         "redis+unix:///tmp/a#b.sock", "redis+unix:///tmp/a?b.sock"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        CHECK_EQ(backlite_options_set_remote(o, bad[i]), BACKLITE_RESULT_INVALID_ARGUMENT);
    }
    CHECK_EQ(backlite_options_set_remote(NULL, "redis://h"), BACKLITE_RESULT_NULL_PARAMETER);
    CHECK_EQ(backlite_options_set_remote_namespace(o, "has space"), BACKLITE_RESULT_INVALID_ARGUMENT);
    CHECK_EQ(backlite_options_set_remote_namespace(o, ""), BACKLITE_RESULT_INVALID_ARGUMENT);
    CHECK_EQ(backlite_options_set_remote_namespace(o, NULL), BACKLITE_RESULT_NULL_PARAMETER);
    CHECK_EQ(backlite_options_set_remote_namespace(o, "team-a"), BACKLITE_RESULT_OK);
    CHECK_EQ(backlite_options_set_remote_timeout_ms(o, 0), BACKLITE_RESULT_INVALID_ARGUMENT);
    CHECK_EQ(backlite_options_set_remote_mode(o, 3), BACKLITE_RESULT_INVALID_ARGUMENT);
    CHECK_EQ(backlite_options_set_remote_mode(o, -1), BACKLITE_RESULT_INVALID_ARGUMENT);
    CHECK_EQ(backlite_options_set_remote_mode(o, BACKLITE_REMOTE_MODE_WRITE_BEHIND), BACKLITE_RESULT_OK);
    CHECK_EQ(backlite_options_set_remote(o, "rediss+cluster://u:p@h1:7000,h2:7001"), BACKLITE_RESULT_OK);
    CHECK_EQ(backlite_options_set_remote(o, "redis+unix:///tmp/a%23b.sock"), BACKLITE_RESULT_OK);
    CHECK_EQ(backlite_options_set_remote(o, "redis+unix:///tmp/a%3Fb.sock"), BACKLITE_RESULT_OK);
    CHECK_EQ(backlite_options_set_remote(o, NULL), BACKLITE_RESULT_OK); /* removes it */
    CHECK_EQ(backlite_options_set_remote(o, ""), BACKLITE_RESULT_OK);
    /* Without a remote, the stats are all zero. */
    backlite_storage *s = open_file("plain.db", o);
    backlite_remote_stats st;
    memset(&st, 0xff, sizeof st);
    CHECK_OK(backlite_storage_remote_stats(s, &st, &err));
    CHECK_EQ(st.hits + st.misses + st.writes + st.errors + st.skipped, 0);
    CHECK_EQ(st.connected, 0);
    CHECK_RC(backlite_storage_remote_stats(s, NULL, &err), BACKLITE_RESULT_NULL_PARAMETER);
    CHECK_RC(backlite_storage_remote_stats(NULL, &st, &err), BACKLITE_RESULT_NULL_PARAMETER);
    backlite_storage_free(s);
    backlite_options_free(o);
}

static void another_process_reads_what_one_wrote(void) {
    backlite_options *o = remote_options(server.url);
    fflush(NULL);
    pid_t child = fork();
    if (child == 0) { /* machine one: its own file */
        backlite_storage *s = NULL;
        if (backlite_storage_open(tmp_path("one.db"), o, &s, NULL) != BACKLITE_RESULT_OK) _exit(2);
        if (backlite_storage_set(s, K("greeting"), K("hello from one"), 60000, NULL) != 0) _exit(3);
        backlite_storage_free(s);
        backlite_options_free(o);
        _exit(0);
    }
    REQUIRE(CHILD_EXIT_CODE(child) == 0);

    backlite_storage *two = open_file("two.db", o);
    backlite_buf buf = {0};
    int64_t left = 0;
    CHECK_OK(backlite_storage_get(two, K("greeting"), &buf, &left, &err));
    CHECK(buf.len == strlen("hello from one") && memcmp(buf.data, "hello from one", buf.len) == 0);
    CHECK(left > 0 && left <= 60000);
    backlite_buf_free(&buf);
    backlite_remote_stats st;
    CHECK_OK(backlite_storage_remote_stats(two, &st, &err));
    CHECK_EQ(st.hits, 1);
    CHECK_EQ(st.connected, 1);
    /* Now local: a second get does not ask the remote. */
    CHECK_OK(backlite_storage_get(two, K("greeting"), &buf, NULL, &err));
    backlite_buf_free(&buf);
    CHECK_OK(backlite_storage_remote_stats(two, &st, &err));
    CHECK_EQ(st.hits, 1);
    /* Delete reaches the remote: a third machine misses. */
    CHECK_OK(backlite_storage_delete(two, K("greeting"), &err));
    backlite_storage *three = open_file("three.db", o);
    CHECK_RC(backlite_storage_get(three, K("greeting"), &buf, NULL, &err), BACKLITE_RESULT_NOT_FOUND);
    backlite_storage_free(three);
    backlite_storage_free(two);
    backlite_options_free(o);
}

/* ---- a value read through waits in memory until written; local writes win ---- */

static int get_is(backlite_storage *s, const char *key, const char *want) {
    backlite_buf buf = {0};
    backlite_result rc = backlite_storage_get(s, (const uint8_t *)key, strlen(key), &buf, NULL, NULL);
    int ok = want ? rc == BACKLITE_RESULT_OK && buf.len == strlen(want) &&
                        memcmp(buf.data, want, buf.len) == 0
                  : rc == BACKLITE_RESULT_NOT_FOUND;
    backlite_buf_free(&buf);
    return ok;
}

static uint64_t remote_hits(backlite_storage *s) {
    backlite_remote_stats st;
    CHECK_OK(backlite_storage_remote_stats(s, &st, &err));
    return st.hits;
}

static void a_remote_hit_waits_in_memory_and_local_writes_win(void) {
    backlite_options *o = remote_options(server.url);
    /* Another process, forked before any handle is open (it inherits none), deletes
     * "other" in the same file once told to. */
    int go[2];
    REQUIRE(pipe(go) == 0);
    fflush(NULL);
    pid_t child = fork();
    if (child == 0) {
        char byte;
        close(go[1]);
        if (read(go[0], &byte, 1) != 1) _exit(1);
        backlite_storage *b = NULL;
        if (backlite_storage_open(tmp_path("fill-r.db"), o, &b, NULL) != BACKLITE_RESULT_OK) _exit(2);
        if (backlite_storage_delete(b, K("other"), NULL) != BACKLITE_RESULT_OK) _exit(3);
        backlite_storage_free(b);
        backlite_options_free(o);
        _exit(0);
    }
    close(go[0]);
    backlite_storage *w = open_file("fill-w.db", o);
    backlite_storage *r = open_file("fill-r.db", o);
    const char *keys[] = {"again", "set", "deleted", "cleared", "other"};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
        CHECK_OK(backlite_storage_set(w, K(keys[i]), K("remote"), BACKLITE_EXPIRATION_NEVER, &err));
    CHECK_OK(backlite_storage_set(w, K("expires"), K("remote"), 300, &err));

    /* Served again from memory (the remote is asked once). */
    CHECK(get_is(r, "again", "remote"));
    CHECK(get_is(r, "again", "remote"));
    CHECK_EQ(remote_hits(r), 1);
    /* A local set, delete or clear after the remote hit wins. */
    CHECK(get_is(r, "set", "remote"));
    CHECK_OK(backlite_storage_set(r, K("set"), K("local"), BACKLITE_EXPIRATION_NEVER, &err));
    CHECK(get_is(r, "set", "local"));
    CHECK(get_is(r, "deleted", "remote"));
    CHECK_OK(backlite_storage_delete(r, K("deleted"), &err));
    CHECK(get_is(r, "deleted", NULL));
    /* Expiry travels with the waiting value. */
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    CHECK(get_is(r, "expires", "remote"));
    do {
        struct timespec pause = {0, 20 * 1000 * 1000};
        nanosleep(&pause, NULL);
        clock_gettime(CLOCK_MONOTONIC, &t);
    } while ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 < 400);
    CHECK(get_is(r, "expires", NULL));

    /* Another process writes the file after this one buffered a value: never the old one. */
    CHECK(get_is(r, "other", "remote"));
    CHECK(write(go[1], "x", 1) == 1);
    close(go[1]);
    CHECK_EQ(CHILD_EXIT_CODE(child), 0);
    CHECK(get_is(r, "other", NULL));

    CHECK(get_is(r, "cleared", "remote"));
    CHECK_OK(backlite_storage_clear(r, &err));
    CHECK(get_is(r, "cleared", NULL));

    /* Closing writes what waits: the file holds it for a handle without a remote. (A
     * new writer: a handle learns of another's clear only when it next reads.) */
    backlite_storage_free(w);
    w = open_file("fill-w2.db", o);
    CHECK_OK(backlite_storage_set(w, K("closed"), K("remote"), BACKLITE_EXPIRATION_NEVER, &err));
    CHECK(get_is(r, "closed", "remote"));
    backlite_storage_free(r);
    backlite_options *plain = backlite_options_new();
    backlite_storage *p = open_file("fill-r.db", plain);
    CHECK(get_is(p, "closed", "remote"));
    backlite_storage_free(p);
    backlite_options_free(plain);
    backlite_storage_free(w);
    backlite_options_free(o);
}

/* ---- after another client's clear, only the live generation is read and written ---- */

/* The remote key of `key`'s value in the generation live now (no version tag). */
static void value_key(const char *key, char *out, size_t cap) {
    char gen[64];
    redis_cli(server.port, "GET backlite::gen", gen, sizeof gen);
    snprintf(out, cap, "backlite::d{%llx:%s}", strtoull(gen, NULL, 10), key);
}

/* ---- values waiting in memory are counted by stats, listed by keys, checked ---- */

static int count_key(void *user_data, const uint8_t *key, size_t key_len) {
    (void)key;
    (void)key_len;
    ++*(int *)user_data;
    return 0;
}

static void waiting_values_are_counted_listed_and_checked(void) {
    backlite_options *o = remote_options(server.url);
    backlite_storage *w = open_file("wait-w.db", o);
    backlite_storage *r = open_file("wait-r.db", o);
    const char *keys[] = {"wait1", "wait2", "wait3"};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
        CHECK_OK(backlite_storage_set(w, K(keys[i]), K("remote"), BACKLITE_EXPIRATION_NEVER, &err));
    /* Each read through waits in memory; each call below writes what waits first. */
    CHECK(get_is(r, "wait1", "remote"));
    backlite_stats st;
    CHECK_OK(backlite_storage_stats(r, &st, &err));
    CHECK_EQ(st.count, 1);
    CHECK_EQ(st.total_size, strlen("remote"));
    CHECK(get_is(r, "wait2", "remote"));
    int listed = 0;
    CHECK_OK(backlite_storage_keys(r, count_key, &listed, &err));
    CHECK_EQ(listed, 2);
    CHECK(get_is(r, "wait3", "remote"));
    backlite_check_report report;
    CHECK_OK(backlite_storage_check(r, 0, &report, &err));
    CHECK_EQ(report.healthy, 1);
    CHECK_EQ(report.entries, 3);
    CHECK_EQ(report.actual_count, 3);
    CHECK_EQ(report.recorded_count, 3);
    /* Local hits now: the remote was asked once per key. */
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) CHECK(get_is(r, keys[i], "remote"));
    CHECK_EQ(remote_hits(r), 3);
    backlite_storage_free(r);
    backlite_storage_free(w);
    backlite_options_free(o);
}

static void after_another_clients_clear_only_the_live_generation_is_read_and_written(void) {
    backlite_options *o = remote_options(server.url);
    backlite_options *behind = remote_options(server.url);
    CHECK_EQ(backlite_options_set_remote_mode(behind, BACKLITE_REMOTE_MODE_WRITE_BEHIND),
             BACKLITE_RESULT_OK);
    backlite_storage *a = open_file("gen-a.db", o);
    backlite_storage *b = open_file("gen-b.db", o);
    /* Learns the generation before the clear when it opens. */
    backlite_storage *wb = open_file("gen-wb.db", behind);
    CHECK_OK(backlite_storage_set(b, K("stale"), K("old"), BACKLITE_EXPIRATION_NEVER, &err));
    CHECK_OK(backlite_storage_set(b, K("seen"), K("by a"), BACKLITE_EXPIRATION_NEVER, &err));
    /* a reads through in the generation before the clear, and remembers it. */
    CHECK(get_is(a, "seen", "by a"));
    char old_key[128], cmd[256], out[256];
    value_key("stale", old_key, sizeof old_key);
    snprintf(cmd, sizeof cmd, "COPY %s stash", old_key);
    CHECK(strcmp(redis_cli(server.port, cmd, out, sizeof out), "1") == 0);
    CHECK_OK(backlite_storage_clear(b, &err));
    CHECK_OK(backlite_storage_set(b, K("stale"), K("new"), BACKLITE_EXPIRATION_NEVER, &err));
    /* The old generation's value is back, as if the clear's reclaim had not reached it. */
    snprintf(cmd, sizeof cmd, "RENAME stash %s", old_key);
    CHECK(strcmp(redis_cli(server.port, cmd, out, sizeof out), "OK") == 0);
    CHECK(get_is(a, "stale", "new"));

    /* A set wb queues while it knows only the dead generation is not sent (it may
     * predate the clear); once a read-through has taught wb the live generation, a
     * set it queues reaches it. */
    CHECK_OK(backlite_storage_set(wb, K("unknown"), K("dead"), BACKLITE_EXPIRATION_NEVER, &err));
    CHECK(get_is(wb, "queued", NULL));
    CHECK_OK(backlite_storage_set(wb, K("queued"), K("from behind"), BACKLITE_EXPIRATION_NEVER, &err));
    backlite_storage_free(wb); /* sends what is queued */
    backlite_storage *c = open_file("gen-c.db", o);
    CHECK(get_is(c, "queued", "from behind"));
    CHECK(get_is(c, "unknown", NULL));
    backlite_storage_free(c);
    backlite_storage_free(b);
    backlite_storage_free(a);
    backlite_options_free(behind);
    backlite_options_free(o);
}

/* ---- a write-behind set queued before a clear never outlives it ---- */

/* The write-behind thread races the clear: rounds cover both orders. `own` clears
 * through the write-behind handle itself, else through another client. */
static void a_queued_set_never_outlives_a_clear(int own) {
    backlite_options *o = remote_options(server.url);
    backlite_options *behind = remote_options(server.url);
    CHECK_EQ(backlite_options_set_remote_mode(behind, BACKLITE_REMOTE_MODE_WRITE_BEHIND),
             BACKLITE_RESULT_OK);
    backlite_storage *other = open_file("clr-other.db", o);
    for (int round = 0; round < 20; round++) {
        char key[32];
        snprintf(key, sizeof key, "k%d-%d", own, round);
        backlite_storage *wb = open_file("clr-wb.db", behind);
        CHECK_OK(backlite_storage_set(wb, K(key), K("before the clear"), BACKLITE_EXPIRATION_NEVER, &err));
        CHECK_OK(backlite_storage_clear(own ? wb : other, &err));
        if (own)
            CHECK(get_is(wb, key, NULL));
        backlite_storage_free(wb); /* sends what is queued */
        CHECK(get_is(other, key, NULL));
    }
    backlite_storage_free(other);
    backlite_options_free(behind);
    backlite_options_free(o);
}

static void a_queued_set_never_outlives_its_own_handles_clear(void) {
    a_queued_set_never_outlives_a_clear(1);
}

static void a_queued_set_never_outlives_another_clients_clear(void) {
    a_queued_set_never_outlives_a_clear(0);
}

/* ---- a lost generation key is followed, and no generation number is used twice ---- */

static unsigned long long live_generation(void) {
    char gen[64];
    return strtoull(redis_cli(server.port, "GET backlite::gen", gen, sizeof gen), NULL, 10);
}

/* A server that lost the generation key (an eviction, a restart without persistence)
 * gets a new generation, above every earlier one, from the first handle that finds it
 * missing: a handle that learnt the loss writes where the others read, and the next
 * clear makes a generation above every earlier one. */
static void a_lost_generation_key_is_followed_and_never_reused(void) {
    backlite_options *o = remote_options(server.url);
    backlite_options *behind = remote_options(server.url);
    CHECK_EQ(backlite_options_set_remote_mode(behind, BACKLITE_REMOTE_MODE_WRITE_BEHIND),
             BACKLITE_RESULT_OK);
    backlite_storage *wb = open_file("lost-wb.db", behind);
    CHECK_OK(backlite_storage_clear(wb, &err));
    unsigned long long first = live_generation();
    CHECK(first > 0);
    char out[64];
    CHECK(strcmp(redis_cli(server.port, "DEL backlite::gen", out, sizeof out), "1") == 0);
    CHECK(get_is(wb, "lost-other", NULL)); /* teaches wb the loss */
    CHECK_OK(backlite_storage_set(wb, K("lost-k"), K("after the loss"), BACKLITE_EXPIRATION_NEVER, &err));
    backlite_storage_free(wb); /* sends what is queued */
    backlite_storage *a = open_file("lost-a.db", o);
    CHECK(get_is(a, "lost-k", "after the loss"));
    CHECK_OK(backlite_storage_clear(a, &err));
    CHECK(live_generation() > first);
    backlite_storage_free(a);
    backlite_options_free(behind);
    backlite_options_free(o);
}

/* ---- a clear is never undone by an older generation learned meanwhile ---- */

typedef struct {
    backlite_storage *s;
    int ok;
} on_handle;

static void *miss_race_k(void *arg) {
    on_handle *h = arg;
    h->ok = get_is(h->s, "race-k", NULL);
    return NULL;
}

static void *clear_handle(void *arg) {
    on_handle *h = arg;
    backlite_error *e = NULL;
    h->ok = backlite_storage_clear(h->s, &e) == BACKLITE_RESULT_OK;
    backlite_error_free(e);
    return NULL;
}

/*
 * The C twin of tests/remote.rs a_clear_is_never_undone_by_an_older_generation_learned_meanwhile:
 * a handle's get learns another client's generation while the handle's own clear (made
 * after it) is in flight; a set queued after the clear returned must still reach the
 * live generation. The order of events is forced by a proxy holding replies.
 */
static void a_clear_is_never_undone_by_an_older_generation_learned_meanwhile(void) {
    holding_proxy proxy;
    REQUIRE(holding_proxy_start(&proxy, server.port) == 0);
    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", proxy.port);
    backlite_options *o = remote_options(server.url);
    backlite_options *held = remote_options(url);
    /* longer than any reply is held */
    CHECK_EQ(backlite_options_set_remote_timeout_ms(held, 120000), BACKLITE_RESULT_OK);
    CHECK_EQ(backlite_options_set_remote_mode(held, BACKLITE_REMOTE_MODE_WRITE_BEHIND),
             BACKLITE_RESULT_OK);
    backlite_storage *other = open_file("race-other.db", o);
    backlite_storage *wb = open_file("race-wb.db", held);
    CHECK_OK(backlite_storage_clear(other, &err)); /* a generation wb does not know yet */
    on_handle reader = {wb, 0}, clearer = {wb, 0};
    pthread_t read_thread, clear_thread;
    /* The reader's look-up reads other's generation; its reply is held. */
    holding_proxy_arm(&proxy, 0, "PTTL", 1);
    pthread_create(&read_thread, NULL, miss_race_k, &reader);
    int ordered = holding_proxy_wait(&proxy, 0, 1, 1);
    /* wb's clear reaches the server after it; its reply is held too. */
    holding_proxy_arm(&proxy, 1, "PTTL", 0);
    pthread_create(&clear_thread, NULL, clear_handle, &clearer);
    ordered = ordered && holding_proxy_wait(&proxy, 1, 1, 1);
    /* The reader learns other's generation and looks again: that second look-up reads
     * wb's generation; its reply stays held until the clear has returned. */
    holding_proxy_permit(&proxy, 0, 1);
    ordered = ordered && holding_proxy_wait(&proxy, 0, 2, 1);
    CHECK(ordered);
    if (!ordered) holding_proxy_release(&proxy); /* no thread is left waiting */
    holding_proxy_permit(&proxy, 1, 1L << 30);
    pthread_join(clear_thread, NULL);
    CHECK(clearer.ok);
    CHECK_OK(backlite_storage_set(wb, K("race-after"), K("set after the clear"),
                                  BACKLITE_EXPIRATION_NEVER, &err));
    holding_proxy_release(&proxy);
    pthread_join(read_thread, NULL);
    CHECK(reader.ok);
    backlite_storage_free(wb); /* sends what is queued */
    CHECK(get_is(other, "race-after", "set after the clear"));
    backlite_storage_free(other);
    backlite_options_free(held);
    backlite_options_free(o);
    holding_proxy_stop(&proxy);
}

static void an_unreachable_or_killed_remote_never_fails_a_call(void) {
    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", redis_free_port());
    backlite_options *o = remote_options(url);
    backlite_storage *s = open_file("down.db", o);
    backlite_remote_stats st;
    CHECK_OK(backlite_storage_remote_stats(s, &st, &err));
    CHECK_EQ(st.connected, 0);
    CHECK(st.errors >= 1);
    for (int i = 0; i < 20; i++) {
        CHECK_OK(backlite_storage_set(s, K("k"), K("v"), BACKLITE_EXPIRATION_NEVER, &err));
        backlite_buf buf = {0};
        CHECK_OK(backlite_storage_get(s, K("k"), &buf, NULL, &err));
        backlite_buf_free(&buf);
        CHECK_RC(backlite_storage_get(s, K("nope"), &buf, NULL, &err), BACKLITE_RESULT_NOT_FOUND);
    }
    CHECK_OK(backlite_storage_remote_stats(s, &st, &err));
    CHECK(st.skipped >= 1); /* backed off, not asked again each time */
    backlite_storage_free(s);
    backlite_options_free(o);
}

/* ---- a waiter given its value by another machine keeps the remote's time left ---- */

static atomic_int holder_started, holder_go, waiter_computed;

static int32_t hold_then_compute(void *user_data, backlite_sink *sink) {
    (void)user_data;
    atomic_store(&holder_started, 1);
    while (!atomic_load(&holder_go)) {
        struct timespec t = {0, 1000 * 1000};
        nanosleep(&t, NULL);
    }
    return backlite_sink_write(sink, K("from the holder")) == BACKLITE_RESULT_OK ? 0 : 1;
}

static int32_t never_compute(void *user_data, backlite_sink *sink) {
    (void)user_data;
    atomic_store(&waiter_computed, 1);
    return backlite_sink_write(sink, K("computed twice")) == BACKLITE_RESULT_OK ? 0 : 1;
}

typedef struct flight {
    backlite_storage *s;
    int64_t expiration_ms;
    backlite_compute_fn compute;
    backlite_result rc;
    backlite_buf value;
} flight;

static void *fly(void *arg) {
    flight *f = arg;
    f->rc = backlite_cached_call_exclusive(f->s, K("sf"), f->compute, NULL, f->expiration_ms,
                                           20000, &f->value, NULL);
    return NULL;
}

static void a_waiter_keeps_the_remote_time_left_of_a_value_from_another_machine(void) {
    backlite_options *o = remote_options(server.url);
    flight holder = {open_file("sf-holder.db", o), 60000, hold_then_compute, -1, {0}};
    flight waiter = {open_file("sf-waiter.db", o), BACKLITE_EXPIRATION_NEVER, never_compute,
                     -1, {0}};
    pthread_t h, w;
    REQUIRE(pthread_create(&h, NULL, fly, &holder) == 0);
    while (!atomic_load(&holder_started)) { /* it holds the remote lease */
        struct timespec t = {0, 1000 * 1000};
        nanosleep(&t, NULL);
    }
    REQUIRE(pthread_create(&w, NULL, fly, &waiter) == 0);
    /* Its look-up missed on the remote: the value can only come from the flight now. */
    backlite_remote_stats st = {0};
    while (st.misses == 0) {
        CHECK_OK(backlite_storage_remote_stats(waiter.s, &st, &err));
        struct timespec t = {0, 1000 * 1000};
        nanosleep(&t, NULL);
    }
    atomic_store(&holder_go, 1);
    pthread_join(h, NULL);
    pthread_join(w, NULL);
    CHECK_EQ(holder.rc, BACKLITE_RESULT_OK);
    CHECK_EQ(waiter.rc, BACKLITE_RESULT_OK);
    CHECK(waiter.value.len == 15 && memcmp(waiter.value.data, "from the holder", 15) == 0);
    CHECK_EQ(atomic_load(&waiter_computed), 0);
    backlite_buf buf = {0};
    int64_t left = 0;
    CHECK_OK(backlite_storage_get(waiter.s, K("sf"), &buf, &left, &err));
    CHECK(left > 40000 && left <= 60000); /* not stored to live forever */
    backlite_buf_free(&buf);
    backlite_buf_free(&holder.value);
    backlite_buf_free(&waiter.value);
    backlite_storage_free(waiter.s);
    backlite_storage_free(holder.s);
    backlite_options_free(o);
}

/* `dir`/`name` in `out`; a path too long fails the test. */
static void join_path(char *out, size_t cap, const char *dir, const char *name) {
    if (snprintf(out, cap, "%s/%s", dir, name) >= (int)cap) abort();
}

/* A CA and a server certificate for 127.0.0.1 it signed, made by openssl in `dir`. */
static int make_tls_files(const char *dir) {
    char cmd[3 * PATH_MAX];
    int n = snprintf(cmd, sizeof cmd,
             "mkdir -p '%s' && cd '%s' && "
             "openssl req -x509 -days 2 -subj '/CN=BackLite test CA' -newkey ec "
             "-pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key -out ca.crt && "
             "openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
             "-keyout server.key -out server.csr -subj /CN=127.0.0.1 && "
             "echo subjectAltName=IP:127.0.0.1 > san.ext && "
             "openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial "
             "-out server.crt -days 2 -extfile san.ext",
             dir, dir);
    if (n >= (int)sizeof cmd) return -1;
    char quiet[3 * PATH_MAX + 32];
    if (snprintf(quiet, sizeof quiet, "(%s) >/dev/null 2>&1", cmd) >= (int)sizeof quiet) return -1;
    return system(quiet);
}

/* A redis-server that speaks only TLS, with the certificate in `dir`. */
static int start_tls_server(redis_server *rs, const char *dir) {
    static char cert[PATH_MAX], key[PATH_MAX], ca[PATH_MAX];
    join_path(cert, sizeof cert, dir, "server.crt");
    join_path(key, sizeof key, dir, "server.key");
    join_path(ca, sizeof ca, dir, "ca.crt");
    const char *extra[] = {"--tls-cert-file", cert, "--tls-key-file", key,
                           "--tls-ca-cert-file", ca, "--tls-auth-clients", "no", NULL};
    return redis_server_start_args(rs, dir, extra, 1);
}

static void tls_with_the_trusted_ca_works_and_an_unknown_ca_is_refused(void) {
    char trusted_dir[PATH_MAX], unknown_dir[PATH_MAX], trusted_ca[PATH_MAX], unknown_ca[PATH_MAX];
    snprintf(trusted_dir, sizeof trusted_dir, "%s", tmp_path("tls-trusted"));
    snprintf(unknown_dir, sizeof unknown_dir, "%s", tmp_path("tls-unknown"));
    join_path(trusted_ca, sizeof trusted_ca, trusted_dir, "ca.crt");
    join_path(unknown_ca, sizeof unknown_ca, unknown_dir, "ca.crt");
    if (make_tls_files(trusted_dir) != 0 || make_tls_files(unknown_dir) != 0) {
        fprintf(stderr, "openssl could not make the test certificates\n");
        CHECK(0);
        return;
    }
    redis_server good, impostor;
    REQUIRE(start_tls_server(&good, trusted_dir) == 0);
    if (start_tls_server(&impostor, unknown_dir) != 0) {
        redis_server_stop(&good);
        REQUIRE(0);
    }
    backlite_buf buf = {0};
    backlite_remote_stats st;

    setenv("SSL_CERT_FILE", trusted_ca, 1);
    backlite_options *o = remote_options(good.url);
    /* Nothing here waits on a timeout, and a TLS handshake under valgrind on a busy
       machine can take longer than remote_options' 300 ms (seen once at load 13). */
    CHECK_EQ(backlite_options_set_remote_timeout_ms(o, 5000), BACKLITE_RESULT_OK);
    backlite_storage *a = open_file("tls-a.db", o);
    backlite_storage *b = open_file("tls-b.db", o);
    CHECK_OK(backlite_storage_set(a, K("k"), K("over TLS"), BACKLITE_EXPIRATION_NEVER, &err));
    CHECK_OK(backlite_storage_get(b, K("k"), &buf, NULL, &err));
    CHECK(buf.len == 8 && memcmp(buf.data, "over TLS", 8) == 0);
    backlite_buf_free(&buf);
    CHECK_OK(backlite_storage_remote_stats(b, &st, &err));
    CHECK_EQ(st.hits, 1);
    CHECK_EQ(st.errors, 0);
    backlite_storage_free(b);
    backlite_storage_free(a);
    backlite_options_free(o);

    /* A value on the impostor, written by a client that trusts its CA... */
    setenv("SSL_CERT_FILE", unknown_ca, 1);
    o = remote_options(impostor.url);
    CHECK_EQ(backlite_options_set_remote_timeout_ms(o, 5000), BACKLITE_RESULT_OK);
    backlite_storage *planter = open_file("tls-planter.db", o);
    CHECK_OK(backlite_storage_set(planter, K("k"), K("impostor"), BACKLITE_EXPIRATION_NEVER, &err));
    CHECK_OK(backlite_storage_remote_stats(planter, &st, &err));
    CHECK_EQ(st.writes, 1);
    backlite_storage_free(planter);
    /* ...is never read by one that does not: refused, a miss. */
    setenv("SSL_CERT_FILE", trusted_ca, 1);
    backlite_storage *c = open_file("tls-c.db", o);
    CHECK_OK(backlite_storage_remote_stats(c, &st, &err));
    CHECK_EQ(st.connected, 0);
    CHECK(st.errors >= 1);
    CHECK_RC(backlite_storage_get(c, K("k"), &buf, NULL, &err), BACKLITE_RESULT_NOT_FOUND);
    backlite_storage_free(c);
    backlite_options_free(o);
    unsetenv("SSL_CERT_FILE");
    redis_server_stop(&impostor);
    redis_server_stop(&good);
}

/* One server, reached over TLS and over its Unix socket, that knows no default user:
 * a user with a password (ACL), a database other than 0, and a value of 9 MiB (a TLS
 * reply read in many records, each within the round trip's deadline) travel both ways;
 * the same URL without the database reads another key space; after a restart of the
 * server on its port, the dead pooled connections of both kinds are replaced without
 * an error. */
static void tls_and_a_unix_socket_with_an_acl_user_a_database_and_9_mib(void) {
    char dir[PATH_MAX], ca[PATH_MAX], cert[PATH_MAX], key[PATH_MAX], sock[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", tmp_path("tls-acl"));
    join_path(ca, sizeof ca, dir, "ca.crt");
    join_path(cert, sizeof cert, dir, "server.crt");
    join_path(key, sizeof key, dir, "server.key");
    join_path(sock, sizeof sock, dir, "redis.sock");
    REQUIRE(make_tls_files(dir) == 0);
    const char *extra[] = {"--tls-cert-file", cert, "--tls-key-file", key, "--tls-ca-cert-file", ca,
                           "--tls-auth-clients", "no", "--unixsocket", sock,
                           "--user", "default", "off",
                           "--user", "prober", "on", ">pa55word", "~*", "&*", "+@all", NULL};
    redis_server rs;
    REQUIRE(redis_server_start_args(&rs, dir, extra, 1) == 0);
    setenv("SSL_CERT_FILE", ca, 1);
    char tls_url[128], tls_db0[128], unix_url[PATH_MAX + 64];
    snprintf(tls_url, sizeof tls_url, "rediss://prober:pa55word@127.0.0.1:%d/5", rs.port);
    snprintf(tls_db0, sizeof tls_db0, "rediss://prober:pa55word@127.0.0.1:%d", rs.port);
    REQUIRE(snprintf(unix_url, sizeof unix_url, "redis+unix://%s?db=5&user=prober&pass=pa55word",
                     sock) < (int)sizeof unix_url);
    const size_t size = (9 << 20) + 7;
    uint8_t *value = malloc(size);
    REQUIRE(value != NULL);
    for (size_t i = 0; i < size; i++) value[i] = (uint8_t)(i * 13 + 5);
    backlite_options *over_tls = remote_at(tls_url, 5000), *over_unix = remote_at(unix_url, 5000),
                     *db0 = remote_at(tls_db0, 5000);
    backlite_storage *a = open_file("acl-a.db", over_tls), *b = open_file("acl-b.db", over_unix),
                     *c = open_file("acl-c.db", over_tls), *zero = open_file("acl-zero.db", db0);
    CHECK_EQ(stats_of(a).connected, 1);
    CHECK_EQ(stats_of(b).connected, 1);
    CHECK_OK(backlite_storage_set(a, K("big over TLS"), value, size, BACKLITE_EXPIRATION_NEVER, &err));
    CHECK_OK(backlite_storage_set(b, K("big over the socket"), value, size, BACKLITE_EXPIRATION_NEVER, &err));
    backlite_buf buf = {0};
    CHECK_OK(backlite_storage_get(b, K("big over TLS"), &buf, NULL, &err));
    CHECK(buf.len == size && memcmp(buf.data, value, size) == 0);
    backlite_buf_free(&buf);
    CHECK_OK(backlite_storage_get(c, K("big over the socket"), &buf, NULL, &err));
    CHECK(buf.len == size && memcmp(buf.data, value, size) == 0);
    backlite_buf_free(&buf);
    CHECK_RC(backlite_storage_get(zero, K("big over TLS"), &buf, NULL, &err), BACKLITE_RESULT_NOT_FOUND);
    backlite_remote_stats sa = stats_of(a), sb = stats_of(b), sc = stats_of(c), sz = stats_of(zero);
    CHECK_EQ(sa.writes, 1);
    CHECK_EQ(sb.writes + sb.hits, 2);
    CHECK_EQ(sc.hits, 1);
    CHECK_EQ(sz.misses, 1);
    CHECK_EQ(sa.errors + sb.errors + sc.errors + sz.errors, 0);
    /* The server restarted on its port: the pooled TLS and Unix connections are
     * replaced within the round trip. */
    int port = rs.port;
    redis_server_stop(&rs);
    rs.port = port;
    REQUIRE(redis_server_try_start(&rs, dir, extra, 1) == 0);
    SET(a, "after a restart", "over TLS");
    SET(b, "after a restart 2", "over the socket");
    GET_EQ(c, "after a restart", "over TLS");
    GET_EQ(c, "after a restart 2", "over the socket");
    sa = stats_of(a), sb = stats_of(b), sc = stats_of(c);
    CHECK_EQ(sa.errors + sb.errors + sc.errors, 0);
    backlite_storage_free(zero);
    backlite_storage_free(c);
    backlite_storage_free(b);
    backlite_storage_free(a);
    backlite_options_free(db0);
    backlite_options_free(over_unix);
    backlite_options_free(over_tls);
    free(value);
    unsetenv("SSL_CERT_FILE");
    redis_server_stop(&rs);
}

/* A TLS server that closes the connection while a large value is still being sent (a
 * value over its `proto-max-bulk-len`) makes the next writes fail with EPIPE: an error
 * counted, never a SIGPIPE, which this program (like most C programs) does not ignore.
 * Before, rustls's record writes (writev, without MSG_NOSIGNAL) killed the process. */
static void tls_a_server_closing_mid_value_never_kills_the_process(void) {
    char dir[PATH_MAX], ca[PATH_MAX], cert[PATH_MAX], key[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", tmp_path("tls-bulk"));
    join_path(ca, sizeof ca, dir, "ca.crt");
    join_path(cert, sizeof cert, dir, "server.crt");
    join_path(key, sizeof key, dir, "server.key");
    REQUIRE(make_tls_files(dir) == 0);
    const char *extra[] = {"--tls-cert-file", cert, "--tls-key-file", key, "--tls-ca-cert-file", ca,
                           "--tls-auth-clients", "no", "--proto-max-bulk-len", "1mb", NULL};
    redis_server rs;
    REQUIRE(redis_server_start_args(&rs, dir, extra, 1) == 0);
    setenv("SSL_CERT_FILE", ca, 1);
    backlite_options *o = remote_at(rs.url, 5000);
    backlite_storage *a = open_file("tls-bulk.db", o);
    const size_t size = 32 << 20;
    uint8_t *value = calloc(1, size);
    REQUIRE(value != NULL);
    SET_BYTES(a, "big", value, size, BACKLITE_EXPIRATION_NEVER);
    CHECK_EQ(stats_of(a).errors, 1);
    backlite_buf buf = {0};
    CHECK_OK(backlite_storage_get(a, K("big"), &buf, NULL, &err));
    CHECK_EQ(buf.len, size);
    backlite_buf_free(&buf);
    free(value);
    backlite_storage_free(a);
    backlite_options_free(o);
    unsetenv("SSL_CERT_FILE");
    redis_server_stop(&rs);
}

int main(void) {
    h_begin();
    int up = start_test_server(&server, server_dir) == 0;
    RUN(bad_options_are_refused);
    if (up) {
        RUN(another_process_reads_what_one_wrote);
        RUN(a_waiter_keeps_the_remote_time_left_of_a_value_from_another_machine);
        RUN(a_remote_hit_waits_in_memory_and_local_writes_win);
        RUN(waiting_values_are_counted_listed_and_checked);
        RUN(after_another_clients_clear_only_the_live_generation_is_read_and_written);
        RUN(a_queued_set_never_outlives_its_own_handles_clear);
        RUN(a_queued_set_never_outlives_another_clients_clear);
        RUN(a_lost_generation_key_is_followed_and_never_reused);
        RUN(a_clear_is_never_undone_by_an_older_generation_learned_meanwhile);
    } else {
        fprintf(stderr, "redis-server could not be started (apt-get install redis-server)\n");
        CHECK(up);
    }
    RUN(an_unreachable_or_killed_remote_never_fails_a_call);
    RUN(tls_with_the_trusted_ca_works_and_an_unknown_ca_is_refused);
    RUN(tls_and_a_unix_socket_with_an_acl_user_a_database_and_9_mib);
    RUN(tls_a_server_closing_mid_value_never_kills_the_process);
    redis_server_stop(&server);
    return h_end();
}
