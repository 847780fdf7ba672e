/*
 * The contract of API.md probed as a hostile but fair test would: the corners the
 * other test files leave out (callbacks that call back into the same storage, the
 * miss counts of each memoising call, sizes after every kind of removal, the policies
 * after a reopen, odd paths, odd option values).
 */
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>

#include "backlite.h"
#include "harness.h"

#define DEFAULT BACKLITE_EXPIRATION_DEFAULT
#define LRU BACKLITE_EVICTION_POLICY_LEAST_RECENTLY_USED
#define LFU BACKLITE_EVICTION_POLICY_LEAST_FREQUENTLY_USED
#define MRU BACKLITE_EVICTION_POLICY_MOST_RECENTLY_USED
#define FIFO BACKLITE_EVICTION_POLICY_FIRST_IN_FIRST_OUT
#define LIFO BACKLITE_EVICTION_POLICY_LAST_IN_FIRST_OUT

static int32_t compute_v(void *ud, backlite_sink *sink) {
    if (ud) ++*(int *)ud;
    return backlite_sink_write(sink, (const uint8_t *)"v", 1) == BACKLITE_RESULT_OK ? 0 : 1;
}

static int32_t compute_fail(void *ud, backlite_sink *sink) {
    if (ud) ++*(int *)ud;
    backlite_sink_write(sink, (const uint8_t *)"partial", 7);
    return 7;
}

/* ------------------------------------------------- visitors calling back in */

typedef struct {
    backlite_storage *s;
    int seen;
} visit_ctx;

/* deletes each key it is shown, and writes a new one */
static int32_t visit_and_write(void *ud, const uint8_t *key, size_t len) {
    visit_ctx *c = ud;
    c->seen++;
    CHECK_OK(backlite_storage_delete(c->s, key, len, &err));
    CHECK_OK(backlite_storage_set(c->s, K("written-by-visitor"), K("w"), NEVER, &err));
    backlite_buf b = {NULL, 0};
    CHECK_RC(backlite_storage_get(c->s, key, len, &b, NULL, &err), BACKLITE_RESULT_NOT_FOUND);
    return 0;
}

static void a_keys_visitor_may_write_to_the_same_storage(void) {
    const char *paths[] = {tmp_path("visit.db"), ":memory:"};
    for (int p = 0; p < 2; p++) {
        backlite_storage *s = OPEN(paths[p], NULL);
        REQUIRE(s != NULL);
        SET(s, "a", "1");
        SET(s, "b", "2");
        visit_ctx c = {s, 0};
        CHECK_OK(backlite_storage_keys(s, visit_and_write, &c, &err));
        CHECK(c.seen >= 2);
        CHECK(!HAS(s, "a"));
        CHECK(!HAS(s, "b"));
        GET_EQ(s, "written-by-visitor", "w");
        backlite_stats st = STATS(s);
        CHECK_EQ(st.count, 1);
        CHECK_EQ(st.total_size, 1);
        backlite_storage_free(s);
    }
}

/* a visitor clearing the storage under the listing */
static int32_t visit_and_clear(void *ud, const uint8_t *key, size_t len) {
    (void)key;
    (void)len;
    visit_ctx *c = ud;
    c->seen++;
    CHECK_OK(backlite_storage_clear(c->s, &err));
    return 0;
}

static void a_keys_visitor_may_clear_the_storage(void) {
    backlite_storage *s = OPEN(tmp_path("visit-clear.db"), NULL);
    REQUIRE(s != NULL);
    for (int i = 0; i < 50; i++) {
        char k[16];
        snprintf(k, sizeof k, "k%d", i);
        SET(s, k, "v");
    }
    visit_ctx c = {s, 0};
    CHECK_OK(backlite_storage_keys(s, visit_and_clear, &c, &err));
    CHECK(c.seen >= 1);
    backlite_stats st = STATS(s);
    CHECK_EQ(st.count, 0);
    CHECK_EQ(st.total_size, 0);
    backlite_storage_free(s);
}

/* ------------------------------------------------ cached_call_exclusive edges */

typedef struct {
    backlite_storage *s;
    int calls;
    backlite_result inner_rc;
} reentrant;

/* computes "outer" by an exclusive call of "inner" on the same storage */
static int32_t compute_outer_exclusive(void *ud, backlite_sink *sink) {
    reentrant *r = ud;
    r->calls++;
    backlite_buf b = {NULL, 0};
    int inner = 0;
    r->inner_rc = backlite_cached_call_exclusive(r->s, K("inner"), compute_v, &inner, NEVER, 1000, &b, NULL);
    if (r->inner_rc != BACKLITE_RESULT_OK) return 1;
    backlite_sink_write(sink, b.data, b.len);
    backlite_sink_write(sink, (const uint8_t *)"+outer", 6);
    backlite_buf_free(&b);
    return 0;
}

static void an_exclusive_compute_may_make_another_exclusive_call(void) {
    backlite_storage *s = OPEN(tmp_path("excl-nested.db"), NULL);
    REQUIRE(s != NULL);
    reentrant r = {s, 0, -1};
    backlite_buf b = {NULL, 0};
    CHECK_OK(backlite_cached_call_exclusive(s, K("outer"), compute_outer_exclusive, &r, NEVER, 1000, &b, &err));
    CHECK_EQ(r.inner_rc, BACKLITE_RESULT_OK);
    CHECK_BUF_STR(b, "v+outer");
    backlite_buf_free(&b);
    GET_EQ(s, "inner", "v");
    GET_EQ(s, "outer", "v+outer");
    backlite_storage_free(s);
}

/* the same key again from inside its own compute: the caller holds the lease, so the
   inner call can only wait; it must come back (LEASE_HELD) within its wait timeout
   rather than hang, and the outer call then fails cleanly */
static int32_t compute_same_key_exclusive(void *ud, backlite_sink *sink) {
    (void)sink;
    reentrant *r = ud;
    r->calls++;
    backlite_buf b = {NULL, 0};
    backlite_error *e = NULL;
    r->inner_rc = backlite_cached_call_exclusive(r->s, K("self"), compute_v, NULL, NEVER, 50, &b, &e);
    if (r->inner_rc == BACKLITE_RESULT_OK) backlite_buf_free(&b);
    if (r->inner_rc == BACKLITE_RESULT_LEASE_HELD) {
        CHECK(e != NULL);
        CHECK(backlite_error_lease_time_left_ms(e) > 0);
    }
    backlite_error_free(e);
    return 1;
}

static void an_exclusive_compute_asking_for_its_own_key_times_out(void) {
    backlite_storage *s = OPEN(tmp_path("excl-self.db"), NULL);
    REQUIRE(s != NULL);
    reentrant r = {s, 0, -1};
    backlite_buf b = {NULL, 0};
    CHECK_RC(backlite_cached_call_exclusive(s, K("self"), compute_same_key_exclusive, &r, NEVER, 1000, &b, &err),
             BACKLITE_RESULT_CALLBACK_FAILED);
    CHECK_EQ(r.calls, 1);
    CHECK_EQ(r.inner_rc, BACKLITE_RESULT_LEASE_HELD);
    CHECK(!HAS(s, "self"));
    /* and the key is free again: the next call computes */
    int n = 0;
    CHECK_OK(backlite_cached_call_exclusive(s, K("self"), compute_v, &n, NEVER, 0, &b, &err));
    CHECK_EQ(n, 1);
    CHECK_BUF_STR(b, "v");
    backlite_buf_free(&b);
    backlite_storage_free(s);
}

static void exclusive_calls_reject_bad_arguments_before_compute(void) {
    backlite_storage *s = OPEN(":memory:", NULL);
    REQUIRE(s != NULL);
    int n = 0;
    uint8_t sentinel = 0;
    backlite_buf b = {&sentinel, 9};
    CHECK_RC(backlite_cached_call_exclusive(NULL, K("k"), compute_v, &n, NEVER, 0, &b, &err),
             BACKLITE_RESULT_NULL_PARAMETER);
    CHECK_RC(backlite_cached_call_exclusive(s, NULL, 1, compute_v, &n, NEVER, 0, &b, &err),
             BACKLITE_RESULT_NULL_PARAMETER);
    CHECK_RC(backlite_cached_call_exclusive(s, K("k"), NULL, &n, NEVER, 0, &b, &err),
             BACKLITE_RESULT_NULL_PARAMETER);
    CHECK_RC(backlite_cached_call_exclusive(s, K("k"), compute_v, &n, NEVER, 0, NULL, &err),
             BACKLITE_RESULT_NULL_PARAMETER);
    int64_t bad_exp[] = {-3, -100, INT64_MIN};
    for (int i = 0; i < 3; i++)
        CHECK_RC(backlite_cached_call_exclusive(s, K("k"), compute_v, &n, bad_exp[i], 0, &b, &err),
                 BACKLITE_RESULT_INVALID_ARGUMENT);
    int64_t bad_wait[] = {-1, -2, INT64_MIN};
    for (int i = 0; i < 3; i++)
        CHECK_RC(backlite_cached_call_exclusive(s, K("k"), compute_v, &n, NEVER, bad_wait[i], &b, &err),
                 BACKLITE_RESULT_INVALID_ARGUMENT);
    CHECK_EQ(n, 0);
    CHECK(b.data == &sentinel && b.len == 9);
    CHECK(!HAS(s, "k"));
    /* the empty key, with a NULL pointer, is a key */
    CHECK_OK(backlite_cached_call_exclusive(s, NULL, 0, compute_v, &n, NEVER, 0, &b, &err));
    CHECK_EQ(n, 1);
    backlite_buf_free(&b);
    backlite_buf e = {NULL, 0};
    CHECK_OK(backlite_storage_get(s, NULL, 0, &e, NULL, &err));
    CHECK_BUF_STR(e, "v");
    backlite_buf_free(&e);
    backlite_storage_free(s);
}

static void a_failing_exclusive_compute_stores_nothing_and_frees_the_key(void) {
    backlite_storage *s = OPEN(tmp_path("excl-fail.db"), NULL);
    REQUIRE(s != NULL);
    SET(s, "other", "o");
    int n = 0;
    uint8_t sentinel = 0;
    backlite_buf b = {&sentinel, 9};
    CHECK_RC(backlite_cached_call_exclusive(s, K("k"), compute_fail, &n, NEVER, 0, &b, &err),
             BACKLITE_RESULT_CALLBACK_FAILED);
    CHECK(b.data == &sentinel && b.len == 9);
    CHECK(!HAS(s, "k"));
    backlite_stats st = STATS(s);
    CHECK_EQ(st.count, 1);
    CHECK_EQ(st.total_size, 1);
    /* no lease is left behind: another handle may compute at once, without waiting */
    backlite_storage *t = OPEN(tmp_path("excl-fail.db"), NULL);
    REQUIRE(t != NULL);
    backlite_lease *lease = NULL;
    backlite_buf v = {NULL, 0};
    CHECK_RC(backlite_lease_try_acquire(t, K("k"), 1000, &v, &lease, &err), BACKLITE_RESULT_NOT_FOUND);
    CHECK(lease != NULL);
    backlite_lease_abandon(lease);
    CHECK_OK(backlite_cached_call_exclusive(t, K("k"), compute_v, &n, NEVER, 0, &b, &err));
    CHECK_EQ(n, 2);
    CHECK_BUF_STR(b, "v");
    backlite_buf_free(&b);
    backlite_storage_free(t);
    backlite_storage_free(s);
}

/* ----------------------------------------------------- misses per call */

static int lock_calls, unlock_calls;
static int32_t count_lock(void *ud) {
    (void)ud;
    lock_calls++;
    return 0;
}
static void count_unlock(void *ud) {
    (void)ud;
    unlock_calls++;
}

static void each_memoising_call_counts_one_miss_or_one_hit(void) {
    backlite_storage *s = OPEN(tmp_path("misses.db"), NULL);
    REQUIRE(s != NULL);
    int n = 0;
    backlite_buf b = {NULL, 0};
    backlite_barrier barrier = {NULL, count_lock, count_unlock};

    CHECK_OK(backlite_cached_call(s, K("plain"), compute_v, &n, NULL, NEVER, &b, &err));
    backlite_buf_free(&b);
    backlite_stats st = STATS(s);
    CHECK_EQ(st.misses, 1);
    CHECK_EQ(st.hits, 0);

    CHECK_OK(backlite_cached_call(s, K("barrier"), compute_v, &n, &barrier, NEVER, &b, &err));
    backlite_buf_free(&b);
    st = STATS(s);
    CHECK_EQ(st.misses, 2); /* the second look-up under the lock is the same call */
    CHECK_EQ(st.hits, 0);

    CHECK_OK(backlite_cached_call_exclusive(s, K("exclusive"), compute_v, &n, NEVER, 0, &b, &err));
    backlite_buf_free(&b);
    st = STATS(s);
    CHECK_EQ(st.misses, 3);
    CHECK_EQ(st.hits, 0);

    /* a failing compute is still one miss */
    CHECK_RC(backlite_cached_call(s, K("f1"), compute_fail, &n, &barrier, NEVER, &b, &err),
             BACKLITE_RESULT_CALLBACK_FAILED);
    CHECK_RC(backlite_cached_call_exclusive(s, K("f2"), compute_fail, &n, NEVER, 0, &b, &err),
             BACKLITE_RESULT_CALLBACK_FAILED);
    st = STATS(s);
    CHECK_EQ(st.misses, 5);
    CHECK_EQ(st.hits, 0);

    /* hits: one each */
    CHECK_OK(backlite_cached_call(s, K("plain"), compute_v, &n, NULL, NEVER, &b, &err));
    backlite_buf_free(&b);
    CHECK_OK(backlite_cached_call(s, K("barrier"), compute_v, &n, &barrier, NEVER, &b, &err));
    backlite_buf_free(&b);
    CHECK_OK(backlite_cached_call_exclusive(s, K("exclusive"), compute_v, &n, NEVER, 0, &b, &err));
    backlite_buf_free(&b);
    st = STATS(s);
    CHECK_EQ(st.misses, 5);
    CHECK_EQ(st.hits, 3);
    CHECK_EQ(n, 5);
    CHECK_EQ(lock_calls, 2);
    CHECK_EQ(unlock_calls, 2);

    /* contains is no access: neither hit nor miss */
    CHECK(HAS(s, "plain"));
    CHECK(!HAS(s, "nothing"));
    st = STATS(s);
    CHECK_EQ(st.misses, 5);
    CHECK_EQ(st.hits, 3);
    backlite_storage_free(s);
}

/* ------------------------------------------------------ sizes, exactly */

static void sizes_stay_exact_through_every_removal(void) {
    const char *path = tmp_path("sizes.db");
    backlite_storage *s = OPEN_WITH(path, 100, LRU);
    REQUIRE(s != NULL);
    SET_N(s, "a", 30);
    SET_N(s, "b", 30);
    SET_N(s, "a", 10); /* overwrite smaller */
    backlite_stats st = STATS(s);
    CHECK_EQ(st.count, 2);
    CHECK_EQ(st.total_size, 40);
    /* expired entries: not live, not counted */
    CHECK_OK(backlite_storage_set(s, K("e"), K("12345"), 0, &err));
    st = STATS(s);
    CHECK_EQ(st.count, 2);
    CHECK_EQ(st.total_size, 40);
    /* TOO_LARGE removes the old value and its size */
    uint8_t big[101];
    memset(big, 'x', sizeof big);
    CHECK_RC(backlite_storage_set(s, K("b"), big, sizeof big, NEVER, &err), BACKLITE_RESULT_TOO_LARGE);
    st = STATS(s);
    CHECK_EQ(st.count, 1);
    CHECK_EQ(st.total_size, 10);
    CHECK_EQ(st.evictions, 0);
    /* an overwrite that must evict others, never itself */
    SET_N(s, "c", 50);
    SET_N(s, "a", 60); /* 60 + 50 > 100: c goes, a stays */
    st = STATS(s);
    CHECK_EQ(st.count, 1);
    CHECK_EQ(st.total_size, 60);
    CHECK_EQ(st.evictions, 1);
    CHECK(HAS(s, "a"));
    /* a second handle sees the same sizes, also after clear and reopen */
    backlite_storage *t = OPEN_WITH(path, 100, LRU);
    REQUIRE(t != NULL);
    SET_N(t, "d", 40);
    st = STATS(s);
    CHECK_EQ(st.count, 2);
    CHECK_EQ(st.total_size, 100);
    CHECK_OK(backlite_storage_delete(s, K("d"), &err));
    st = STATS(t);
    CHECK_EQ(st.count, 1);
    CHECK_EQ(st.total_size, 60);
    backlite_storage_free(t);
    backlite_storage_free(s);
    s = OPEN_WITH(path, 100, LRU);
    REQUIRE(s != NULL);
    st = STATS(s);
    CHECK_EQ(st.count, 1);
    CHECK_EQ(st.total_size, 60);
    CHECK_OK(backlite_storage_clear(s, &err));
    st = STATS(s);
    CHECK_EQ(st.count, 0);
    CHECK_EQ(st.total_size, 0);
    backlite_storage_free(s);
}

/* A batch with a value longer than max_size: "all or nothing" and "a value longer
   than max_size is not stored ... any older value under that key is removed (a later
   get must not return a stale value)" together say the batch fails TOO_LARGE and
   stores nothing, and the older value under the too-large key goes; the older values
   under the batch's other keys stay, and nothing is evicted. */
static void set_many_with_a_value_over_max_size_stores_nothing_and_removes_its_keys_older_value(void) {
    backlite_storage *s = OPEN_WITH(tmp_path("many-big.db"), 10, LRU);
    REQUIRE(s != NULL);
    SET(s, "old", "12345");
    SET(s, "x", "xx");
    SET(s, "a", "a");
    const uint8_t big[11] = "0123456789";
    backlite_entry entries[3] = {
        {(const uint8_t *)"a", 1, (const uint8_t *)"1", 1, NEVER},
        {(const uint8_t *)"x", 1, big, 11, NEVER},
        {(const uint8_t *)"b", 1, (const uint8_t *)"2", 1, NEVER},
    };
    CHECK_RC(backlite_storage_set_many(s, entries, 3, &err), BACKLITE_RESULT_TOO_LARGE);
    GET_EQ(s, "a", "a");
    CHECK(!HAS(s, "b"));
    GET_EQ(s, "old", "12345");
    CHECK(!HAS(s, "x"));
    backlite_stats st = STATS(s);
    CHECK_EQ(st.evictions, 0);
    CHECK_EQ(st.count, 2);
    CHECK_EQ(st.total_size, 6);
    backlite_storage_free(s);
}

static void set_many_with_one_key_twice_keeps_the_last(void) {
    backlite_storage *s = OPEN_WITH(tmp_path("many-dup.db"), 100, LRU);
    REQUIRE(s != NULL);
    backlite_entry entries[3] = {
        {(const uint8_t *)"k", 1, (const uint8_t *)"first", 5, NEVER},
        {(const uint8_t *)"j", 1, (const uint8_t *)"j", 1, NEVER},
        {(const uint8_t *)"k", 1, (const uint8_t *)"second!", 7, NEVER},
    };
    CHECK_OK(backlite_storage_set_many(s, entries, 3, &err));
    GET_EQ(s, "k", "second!");
    backlite_stats st = STATS(s);
    CHECK_EQ(st.count, 2);
    CHECK_EQ(st.total_size, 8);
    CHECK_RC(backlite_storage_set_many(s, NULL, 1, &err), BACKLITE_RESULT_NULL_PARAMETER);
    CHECK_OK(backlite_storage_set_many(s, NULL, 0, &err));
    backlite_storage_free(s);
}

/* ----------------------------------------------------- policies over reopen */

/* Of a, b, c and d, all are there but `victim`; `what` names the case in a failure. */
static void only_the_victim_is_gone(backlite_storage *s, const char *victim, const char *what) {
    const char *all[] = {"a", "b", "c", "d"};
    for (int i = 0; i < 4; i++) {
        bool want = strcmp(all[i], victim) != 0;
        if (HAS(s, all[i]) != want)
            h_fail_(__FILE__, __LINE__, "%s: %s is %s", what, all[i], want ? "gone" : "still there");
    }
}

/* Fills `name` (max 30 bytes) with a, b, c (10 bytes each) under `filled`, gets b, b,
   a, c, and closes it; reopened under `evicting`, a set of d evicts `victim` alone. */
static void reopened_evicts_exactly(const char *name, backlite_eviction_policy filled,
                                    backlite_eviction_policy evicting, const char *victim) {
    const char *path = tmp_path(name);
    backlite_storage *s = OPEN_WITH(path, 30, filled);
    REQUIRE(s != NULL);
    SET_N(s, "a", 10);
    SET_N(s, "b", 10);
    SET_N(s, "c", 10);
    const char *gets[] = {"b", "b", "a", "c"};
    for (int i = 0; i < 4; i++) {
        backlite_buf b = {NULL, 0};
        CHECK_OK(backlite_storage_get(s, K(gets[i]), &b, NULL, &err));
        backlite_buf_free(&b);
    }
    backlite_storage_free(s);
    s = OPEN_WITH(path, 30, evicting);
    REQUIRE(s != NULL);
    SET_N(s, "d", 10);
    char what[64];
    snprintf(what, sizeof what, "policy %d after %d", (int)evicting, (int)filled);
    only_the_victim_is_gone(s, victim, what);
    backlite_storage_free(s);
}

/* Fill a, b, c (10 bytes each, max 30) with hits that make each policy's victim
   distinct, close, reopen, set d: the victim is the policy's, as if never closed. */
static void each_policy_keeps_its_order_across_reopen(void) {
    const backlite_eviction_policy policies[5] = {LRU, LFU, MRU, FIFO, LIFO};
    /* sets a, b, c in that order; then gets: b, b, a, c  ->
       LRU: last access a < ... order of last access: b, a, c -> victim b
       LFU: hits a1 b2 c1 -> a and c tie, a less recent -> a
       MRU: newest access c -> c
       FIFO: a; LIFO: c (before d is written) */
    const char *victims[5] = {"b", "a", "c", "a", "c"};
    for (int p = 0; p < 5; p++) {
        char name[32];
        snprintf(name, sizeof name, "reopen-%d.db", p);
        reopened_evicts_exactly(name, policies[p], policies[p], victims[p]);
    }
}

/* the same, with the hits made by another process while this one keeps its handle
   open (the child is forked before the handle is opened, so it inherits none) */
static void each_policy_counts_the_hits_of_another_process(void) {
    const backlite_eviction_policy policies[5] = {LRU, LFU, MRU, FIFO, LIFO};
    const char *victims[5] = {"b", "a", "c", "a", "c"};
    for (int p = 0; p < 5; p++) {
        char name[32];
        snprintf(name, sizeof name, "procs-%d.db", p);
        const char *path = tmp_path(name);
        int filled[2];
        REQUIRE(pipe(filled) == 0);
        fflush(NULL);
        pid_t pid = fork();
        REQUIRE(pid >= 0);
        if (pid == 0) {
            close(filled[1]);
            char c;
            if (read(filled[0], &c, 1) != 1) _exit(4);
            backlite_storage *c_s = NULL;
            if (backlite_storage_open(path, NULL, &c_s, NULL) != BACKLITE_RESULT_OK) _exit(2);
            const char *gets[] = {"b", "b", "a", "c"};
            for (int i = 0; i < 4; i++) {
                backlite_buf b = {NULL, 0};
                if (backlite_storage_get(c_s, K(gets[i]), &b, NULL, NULL) != BACKLITE_RESULT_OK) _exit(3);
                backlite_buf_free(&b);
            }
            backlite_storage_free(c_s);
            _exit(0);
        }
        close(filled[0]);
        backlite_storage *s = OPEN_WITH(path, 30, policies[p]);
        if (s != NULL) {
            SET_N(s, "a", 10);
            SET_N(s, "b", 10);
            SET_N(s, "c", 10);
        }
        CHECK(write(filled[1], "x", 1) == 1);
        close(filled[1]);
        CHECK_EQ(CHILD_EXIT_CODE(pid), 0);
        REQUIRE(s != NULL);
        SET_N(s, "d", 10);
        char what[32];
        snprintf(what, sizeof what, "policy %d", p);
        only_the_victim_is_gone(s, victims[p], what);
        backlite_storage_free(s);
    }
}

/* ------------------------------------------------------------ expiration */

static void the_default_expiration_applies_to_every_call_that_takes_one(void) {
    backlite_options *o = backlite_options_new();
    REQUIRE(o != NULL);
    CHECK_RESULT(backlite_options_set_default_expiration_ms(o, 0), BACKLITE_RESULT_OK);
    backlite_storage *s = OPEN(tmp_path("default0.db"), o);
    backlite_options_free(o);
    REQUIRE(s != NULL);
    /* default 0: every DEFAULT write is already expired */
    CHECK_OK(backlite_storage_set(s, K("d"), K("v"), DEFAULT, &err));
    GET_MISSING(s, "d");
    backlite_entry e[1] = {{(const uint8_t *)"m", 1, (const uint8_t *)"v", 1, DEFAULT}};
    CHECK_OK(backlite_storage_set_many(s, e, 1, &err));
    GET_MISSING(s, "m");
    int n = 0;
    backlite_buf b = {NULL, 0};
    CHECK_OK(backlite_cached_call(s, K("c"), compute_v, &n, NULL, DEFAULT, &b, &err));
    backlite_buf_free(&b);
    CHECK_OK(backlite_cached_call(s, K("c"), compute_v, &n, NULL, DEFAULT, &b, &err));
    backlite_buf_free(&b);
    CHECK_EQ(n, 2); /* computed again: the value was already expired */
    CHECK_OK(backlite_cached_call_exclusive(s, K("x"), compute_v, &n, DEFAULT, 0, &b, &err));
    backlite_buf_free(&b);
    CHECK_OK(backlite_cached_call_exclusive(s, K("x"), compute_v, &n, DEFAULT, 0, &b, &err));
    backlite_buf_free(&b);
    CHECK_EQ(n, 4);
    /* NEVER overrides the default */
    CHECK_OK(backlite_storage_set(s, K("n"), K("v"), NEVER, &err));
    int64_t left = 0;
    CHECK_OK(backlite_storage_get(s, K("n"), &b, &left, &err));
    CHECK_EQ(left, NEVER);
    backlite_buf_free(&b);
    backlite_stats st = STATS(s);
    CHECK_EQ(st.count, 1);
    CHECK_EQ(st.total_size, 1);
    backlite_storage_free(s);
}

static void a_long_default_expiration_gives_its_time_left(void) {
    backlite_options *o = backlite_options_new();
    REQUIRE(o != NULL);
    CHECK_RESULT(backlite_options_set_default_expiration_ms(o, 3600 * 1000), BACKLITE_RESULT_OK);
    CHECK_RESULT(backlite_options_set_default_expiration_ms(o, DEFAULT), BACKLITE_RESULT_INVALID_ARGUMENT);
    CHECK_RESULT(backlite_options_set_default_expiration_ms(o, -3), BACKLITE_RESULT_INVALID_ARGUMENT);
    CHECK_RESULT(backlite_options_set_default_expiration_ms(o, INT64_MIN), BACKLITE_RESULT_INVALID_ARGUMENT);
    backlite_storage *s = OPEN(":memory:", o);
    backlite_options_free(o);
    REQUIRE(s != NULL);
    CHECK_OK(backlite_storage_set(s, K("d"), K("v"), DEFAULT, &err));
    int64_t left = 0;
    backlite_buf b = {NULL, 0};
    CHECK_OK(backlite_storage_get(s, K("d"), &b, &left, &err));
    CHECK(left > 3500 * 1000 && left <= 3600 * 1000);
    backlite_buf_free(&b);
    /* INT64_MAX as a default never overflows into the past */
    o = backlite_options_new();
    CHECK_RESULT(backlite_options_set_default_expiration_ms(o, INT64_MAX), BACKLITE_RESULT_OK);
    backlite_storage *t = OPEN(":memory:", o);
    backlite_options_free(o);
    REQUIRE(t != NULL);
    CHECK_OK(backlite_storage_set(t, K("d"), K("v"), DEFAULT, &err));
    GET_EQ(t, "d", "v");
    backlite_storage_free(t);
    backlite_storage_free(s);
}

/* ----------------------------------------------------------- options */

static void policy_names_are_exact(void) {
    backlite_options *o = backlite_options_new();
    REQUIRE(o != NULL);
    const char *bad[] = {"LEAST-RECENTLY-USED", "least-recently-used ", " least-recently-used",
                         "least_recently_used", "lru", "", "least-recently-used\n", "\xff\xfe"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK_RESULT(backlite_options_set_eviction_policy_name(o, bad[i]), BACKLITE_RESULT_INVALID_ARGUMENT);
    CHECK_RESULT(backlite_options_set_eviction_policy_name(o, NULL), BACKLITE_RESULT_NULL_PARAMETER);
    const backlite_eviction_policy badp[] = {-1, 5, 99, INT32_MIN, INT32_MAX};
    for (size_t i = 0; i < sizeof badp / sizeof badp[0]; i++)
        CHECK_RESULT(backlite_options_set_eviction_policy(o, badp[i]), BACKLITE_RESULT_INVALID_ARGUMENT);
    CHECK_RESULT(backlite_options_set_version_tag(o, NULL), BACKLITE_RESULT_NULL_PARAMETER);
    CHECK_RESULT(backlite_options_set_version_tag(o, "\xff\xfe"), BACKLITE_RESULT_INVALID_ARGUMENT);
    backlite_options_free(o);
}

static void extreme_max_sizes_are_exact(void) {
    backlite_options *o = backlite_options_new();
    REQUIRE(o != NULL);
    CHECK_RESULT(backlite_options_set_max_size(o, 1), BACKLITE_RESULT_OK);
    backlite_storage *s = OPEN(tmp_path("tiny.db"), o);
    REQUIRE(s != NULL);
    /* max_size 1: one byte fits, empty values always fit, two bytes do not */
    SET(s, "a", "1");
    SET(s, "b", "2");
    CHECK(!HAS(s, "a"));
    SET(s, "e1", "");
    SET(s, "e2", "");
    CHECK(HAS(s, "b"));
    CHECK_RC(backlite_storage_set(s, K("c"), K("12"), NEVER, &err), BACKLITE_RESULT_TOO_LARGE);
    CHECK(HAS(s, "b"));
    backlite_stats st = STATS(s);
    CHECK_EQ(st.max_size, 1);
    CHECK_EQ(st.count, 3);
    CHECK_EQ(st.total_size, 1);
    backlite_storage_free(s);
    /* the largest max_size the header allows */
    CHECK_RESULT(backlite_options_set_max_size(o, (uint64_t)INT64_MAX), BACKLITE_RESULT_OK);
    CHECK_RESULT(backlite_options_set_max_size(o, (uint64_t)INT64_MAX + 1), BACKLITE_RESULT_INVALID_ARGUMENT);
    CHECK_RESULT(backlite_options_set_max_size(o, UINT64_MAX), BACKLITE_RESULT_INVALID_ARGUMENT);
    s = OPEN(tmp_path("huge.db"), o);
    REQUIRE(s != NULL);
    SET(s, "k", "v");
    st = STATS(s);
    CHECK_EQ(st.max_size, INT64_MAX);
    backlite_storage_free(s);
    backlite_options_free(o);
}

/* The setter takes any uint32_t, so every one of them must open: SQLite itself takes
   at most INT32_MAX ms, and a longer wait was a panic at open (rusqlite's "too big"). */
static void every_busy_timeout_a_uint32_holds_opens(void) {
    const uint32_t timeouts[] = {0, 1, (uint32_t)INT32_MAX, (uint32_t)INT32_MAX + 1, UINT32_MAX};
    for (size_t i = 0; i < sizeof timeouts / sizeof timeouts[0]; i++) {
        backlite_options *o = backlite_options_new();
        REQUIRE(o != NULL);
        CHECK_RESULT(backlite_options_set_busy_timeout_ms(o, timeouts[i]), BACKLITE_RESULT_OK);
        const char *paths[] = {tmp_path("busy.db"), ":memory:"};
        for (int p = 0; p < 2; p++) {
            backlite_storage *s = OPEN(paths[p], o);
            backlite_storage *t = OPEN(paths[p], o); /* a second handle: the pool's connections */
            if (s != NULL && t != NULL) {
                SET(s, "k", "v");
                GET_EQ(s, "k", "v");
                SET(t, "j", "w");
                GET_EQ(t, "j", "w");
                CHECK_OK(backlite_storage_vacuum(s, &err));
            }
            backlite_storage_free(t);
            backlite_storage_free(s);
        }
        backlite_options_free(o);
    }
}

/* --------------------------------------------------------------- paths */

static void odd_paths_are_refused_or_plain_files(void) {
    char cwd[PATH_MAX];
    REQUIRE(getcwd(cwd, sizeof cwd) != NULL);
    const char *dir = tmp_path("odd-paths");
    REQUIRE(mkdir(dir, 0700) == 0);
    REQUIRE(chdir(dir) == 0);
    backlite_storage *sentinel = (backlite_storage *)(uintptr_t)0x1234, *s = sentinel;
    /* the empty path is no file: SQLite would open a private temporary database */
    CHECK_RC(backlite_storage_open("", NULL, &s, &err), BACKLITE_RESULT_INVALID_ARGUMENT);
    CHECK(s == sentinel);
    /* only ":memory:" exactly is special */
    const char *plain[] = {":MEMORY:", " :memory:", ":memory: ", ":memory:?cache=shared", "file::memory:?cache=shared",
                           "a b c.db", "\xc3\xa9t\xc3\xa9 \xf0\x9f\x98\x80.db", "?mode=ro", "x.db#frag"};
    for (size_t i = 0; i < sizeof plain / sizeof plain[0]; i++) {
        backlite_storage *p = OPEN(plain[i], NULL);
        if (p == NULL) {
            h_fail_(__FILE__, __LINE__, "%s did not open", plain[i]);
            continue;
        }
        SET(p, "k", plain[i]);
        backlite_storage_free(p);
        if (!h_exists(plain[i])) h_fail_(__FILE__, __LINE__, "no file named '%s'", plain[i]);
        p = OPEN(plain[i], NULL);
        if (p) GET_EQ(p, "k", plain[i]);
        backlite_storage_free(p);
    }
    /* a trailing slash names a folder: IO, and nothing made */
    s = sentinel;
    CHECK_RC(backlite_storage_open("nofolder/", NULL, &s, &err), BACKLITE_RESULT_IO);
    CHECK(s == sentinel);
    CHECK(!h_exists("nofolder"));
    /* a path longer than PATH_MAX: a clear error, no crash */
    char *longp = malloc(8192);
    REQUIRE(longp != NULL);
    memset(longp, 'a', 8191);
    longp[8191] = '\0';
    for (int i = 200; i < 8191; i += 201) longp[i] = '/';
    s = sentinel;
    backlite_error *e = NULL;
    backlite_result rc = backlite_storage_open(longp, NULL, &s, &e);
    CHECK(rc == BACKLITE_RESULT_IO || rc == BACKLITE_RESULT_INVALID_ARGUMENT);
    CHECK(e != NULL && backlite_error_result(e) == rc);
    CHECK(s == sentinel);
    backlite_error_free(e);
    /* one name component longer than NAME_MAX */
    memset(longp, 'b', 300);
    longp[300] = '\0';
    e = NULL;
    rc = backlite_storage_open(longp, NULL, &s, &e);
    CHECK(rc == BACKLITE_RESULT_IO || rc == BACKLITE_RESULT_INVALID_ARGUMENT);
    CHECK(e != NULL && backlite_error_result(e) == rc);
    CHECK(s == sentinel);
    backlite_error_free(e);
    free(longp);
    REQUIRE(chdir(cwd) == 0);
}

/* A FIFO or a device is not a cache: the open ends, with an error, and writes nothing */
static void special_files_are_refused(void) {
    const char *fifo = tmp_path("a.fifo");
    REQUIRE(mkfifo(fifo, 0600) == 0);
    backlite_storage *sentinel = (backlite_storage *)(uintptr_t)0x1234, *s = sentinel;
    backlite_error *e = NULL;
    backlite_result rc = backlite_storage_open(fifo, NULL, &s, &e);
    CHECK(rc == BACKLITE_RESULT_NOT_A_CACHE || rc == BACKLITE_RESULT_IO);
    CHECK(s == sentinel);
    backlite_error_free(e);
    char side[PATH_MAX + 8];
    snprintf(side, sizeof side, "%s-wal", fifo);
    CHECK(!h_exists(side));
    e = NULL;
    rc = backlite_storage_open("/dev/null", NULL, &s, &e);
    CHECK(rc == BACKLITE_RESULT_NOT_A_CACHE || rc == BACKLITE_RESULT_IO);
    CHECK(s == sentinel);
    backlite_error_free(e);
    CHECK(!h_exists("/dev/null-wal"));
}

/* An empty SQLite database (a valid header, no table) belongs to whoever made it: it
   is not made into a cache. */
static void an_empty_sqlite_database_is_not_a_cache(void) {
    if (!h_have_python_sqlite()) {
        SKIP("python3 with sqlite3 is missing");
        return;
    }
    const char *path = tmp_path("empty.sqlite");
    char cmd[PATH_MAX * 2];
    snprintf(cmd, sizeof cmd,
             "python3 -c \"import sqlite3; c=sqlite3.connect('%s'); c.execute('pragma user_version=7'); "
             "c.commit(); c.close()\"",
             path);
    REQUIRE(system(cmd) == 0);
    size_t before_len = 0;
    uint8_t *before = h_read_file(path, &before_len);
    REQUIRE(before != NULL && before_len > 0);
    backlite_storage *s = NULL;
    CHECK_RC(backlite_storage_open(path, NULL, &s, &err), BACKLITE_RESULT_NOT_A_CACHE);
    size_t after_len = 0;
    uint8_t *after = h_read_file(path, &after_len);
    CHECK(after != NULL && after_len == before_len && memcmp(after, before, before_len) == 0);
    free(before);
    free(after);
}

/* --------------------------------------------------- handles after errors */

static void a_handle_works_after_each_kind_of_error(void) {
    backlite_storage *s = OPEN_WITH(tmp_path("after-errors.db"), 10, LRU);
    REQUIRE(s != NULL);
    CHECK_RC(backlite_storage_set(s, K("k"), K("01234567890"), NEVER, &err), BACKLITE_RESULT_TOO_LARGE);
    CHECK_RC(backlite_storage_set(s, K("k"), K("v"), -7, &err), BACKLITE_RESULT_INVALID_ARGUMENT);
    backlite_buf b = {NULL, 0};
    CHECK_RC(backlite_cached_call(s, K("k"), compute_fail, NULL, NULL, NEVER, &b, &err),
             BACKLITE_RESULT_CALLBACK_FAILED);
    CHECK_RC(backlite_storage_set(s, NULL, 3, K("v"), NEVER, &err), BACKLITE_RESULT_NULL_PARAMETER);
    SET(s, "k", "v");
    GET_EQ(s, "k", "v");
    backlite_stats st = STATS(s);
    CHECK_EQ(st.count, 1);
    CHECK_EQ(st.total_size, 1);
    backlite_storage_free(s);
}

/* ---------------------------------------------------------- result texts */

static void lease_codes_have_their_own_text(void) {
    const char *held = backlite_result_str(BACKLITE_RESULT_LEASE_HELD);
    const char *lost = backlite_result_str(BACKLITE_RESULT_LEASE_LOST);
    const char *busy = backlite_result_str(BACKLITE_RESULT_BUSY);
    const char *unknown = backlite_result_str(15);
    CHECK(held && lost && busy && unknown);
    CHECK(strcmp(held, busy) != 0);
    CHECK(strcmp(held, lost) != 0);
    CHECK(strcmp(held, unknown) != 0);
    CHECK(backlite_result_str(INT32_MIN) != NULL);
    CHECK(backlite_result_str(-1) != NULL);
    CHECK_EQ(BACKLITE_RESULT_LEASE_HELD, 14);
}

/* LEASE_HELD from try_acquire: a number, an error object, no out-parameter written */
static void lease_held_fills_err_and_nothing_else(void) {
    const char *path = tmp_path("held.db");
    backlite_storage *s = OPEN(path, NULL);
    backlite_storage *t = OPEN(path, NULL);
    REQUIRE(s != NULL && t != NULL);
    backlite_lease *lease = NULL;
    backlite_buf v = {NULL, 0};
    CHECK_RC(backlite_lease_try_acquire(s, K("k"), 60000, &v, &lease, &err), BACKLITE_RESULT_NOT_FOUND);
    REQUIRE(lease != NULL);
    backlite_lease *sentinel_lease = (backlite_lease *)(uintptr_t)0x99, *l2 = sentinel_lease;
    uint8_t sb = 0;
    backlite_buf v2 = {&sb, 3};
    backlite_error *e = NULL;
    CHECK_EQ(backlite_lease_try_acquire(t, K("k"), 1000, &v2, &l2, &e), BACKLITE_RESULT_LEASE_HELD);
    REQUIRE(e != NULL);
    CHECK_EQ(backlite_error_result(e), BACKLITE_RESULT_LEASE_HELD);
    int64_t left = backlite_error_lease_time_left_ms(e);
    CHECK(left > 50000 && left <= 60000);
    CHECK(strlen(backlite_error_message(e)) > 0);
    backlite_error_free(e);
    CHECK(l2 == sentinel_lease);
    CHECK(v2.data == &sb && v2.len == 3);
    /* the same handle asking again is held too: a lease is not re-entrant */
    e = NULL;
    CHECK_EQ(backlite_lease_try_acquire(s, K("k"), 1000, &v2, &l2, &e), BACKLITE_RESULT_LEASE_HELD);
    backlite_error_free(e);
    /* bad lease lengths */
    CHECK_RC(backlite_lease_try_acquire(t, K("j"), 0, &v2, &l2, &err), BACKLITE_RESULT_INVALID_ARGUMENT);
    CHECK_RC(backlite_lease_try_acquire(t, K("j"), -1, &v2, &l2, &err), BACKLITE_RESULT_INVALID_ARGUMENT);
    CHECK(l2 == sentinel_lease);
    /* exclusive call with wait 0 on a held key: LEASE_HELD at once, not BUSY */
    backlite_buf b = {NULL, 0};
    int n = 0;
    e = NULL;
    CHECK_EQ(backlite_cached_call_exclusive(t, K("k"), compute_v, &n, NEVER, 0, &b, &e), BACKLITE_RESULT_LEASE_HELD);
    CHECK(e != NULL && backlite_error_lease_time_left_ms(e) > 0);
    CHECK_EQ(backlite_error_retry_in_ms(NULL), -1);
    backlite_error_free(e);
    CHECK_EQ(n, 0);
    CHECK_OK(backlite_lease_fulfill(lease, K("done"), NEVER, &err));
    CHECK_OK(backlite_cached_call_exclusive(t, K("k"), compute_v, &n, NEVER, 0, &b, &err));
    CHECK_BUF_STR(b, "done");
    backlite_buf_free(&b);
    CHECK_EQ(n, 0);
    backlite_storage_free(t);
    backlite_storage_free(s);
}

/* ------------------------------------------------- SIGKILL in the middle */

static void a_writer_killed_mid_transaction_leaves_exact_counts(void) {
    const char *path = tmp_path("killed.db");
    backlite_storage *s = OPEN_WITH(path, 1000, LRU);
    REQUIRE(s != NULL);
    for (int round = 0; round < 5; round++) {
        int pipefd[2];
        REQUIRE(pipe(pipefd) == 0);
        fflush(NULL);
        pid_t pid = fork();
        REQUIRE(pid >= 0);
        if (pid == 0) {
            close(pipefd[0]);
            backlite_storage *c = NULL;
            backlite_options *o = backlite_options_new();
            if (o == NULL || backlite_options_set_max_size(o, 1000) != BACKLITE_RESULT_OK) _exit(2);
            if (backlite_storage_open(path, o, &c, NULL) != BACKLITE_RESULT_OK) _exit(2);
            uint8_t v[37];
            memset(v, 'v', sizeof v);
            for (unsigned i = 0;; i++) {
                char k[32];
                snprintf(k, sizeof k, "r%d-%u", round, i % 97);
                backlite_storage_set(c, K(k), v, 1 + i % 37, NEVER, NULL);
                if (i == 50) (void)!write(pipefd[1], "x", 1);
            }
        }
        close(pipefd[1]);
        char x;
        REQUIRE(read(pipefd[0], &x, 1) == 1);
        close(pipefd[0]);
        kill(pid, SIGKILL);
        int status = 0;
        REQUIRE(waitpid(pid, &status, 0) == pid);
        /* the counters match a recount */
        backlite_check_report rep;
        memset(&rep, 0, sizeof rep);
        CHECK_OK(backlite_storage_check(s, 0, &rep, &err));
        CHECK_EQ(rep.healthy, 1);
        CHECK_EQ(rep.recorded_count, rep.actual_count);
        CHECK_EQ(rep.recorded_total_size, rep.actual_total_size);
        backlite_stats st = STATS(s);
        CHECK_EQ(st.count, rep.actual_count);
        CHECK_EQ(st.total_size, rep.actual_total_size);
        CHECK(st.total_size <= 1000);
        SET_N(s, "probe", 1);
        CHECK(HAS(s, "probe"));
    }
    backlite_check_report rep;
    memset(&rep, 0, sizeof rep);
    CHECK_OK(backlite_storage_check(s, 0, &rep, &err));
    CHECK_EQ(rep.healthy, 1);
    backlite_storage_free(s);
}

/* ------------------------------------------------ accesses and non-accesses */

static int32_t visit_nothing(void *ud, const uint8_t *key, size_t len) {
    (void)ud;
    (void)key;
    (void)len;
    return 0;
}

static int32_t chunk_nothing(void *ud, const uint8_t *chunk, size_t len) {
    (void)ud;
    (void)chunk;
    (void)len;
    return 0;
}

/* With MRU, the newest access is the victim: listing keys and contains are no
   access, so after them the victim is still the last one set. */
static void listing_and_contains_are_no_access_for_mru_and_lfu(void) {
    const backlite_eviction_policy policies[2] = {MRU, LFU};
    for (int p = 0; p < 2; p++) {
        backlite_storage *s = OPEN_WITH(tmp_path(p ? "noaccess-lfu.db" : "noaccess-mru.db"), 30, policies[p]);
        REQUIRE(s != NULL);
        SET_N(s, "a", 10);
        SET_N(s, "b", 10);
        SET_N(s, "c", 10);
        if (policies[p] == LFU) {
            /* a: 1 hit; b, c: none; then contains and keys on b must not count */
            backlite_buf b = {NULL, 0};
            CHECK_OK(backlite_storage_get(s, K("a"), &b, NULL, &err));
            backlite_buf_free(&b);
        }
        for (int i = 0; i < 5; i++) {
            CHECK(HAS(s, "b"));
            CHECK_OK(backlite_storage_keys(s, visit_nothing, NULL, &err));
        }
        SET_N(s, "d", 10);
        /* MRU: c was accessed last (its set); LFU: b and c have no hit, b is older */
        char what[32];
        snprintf(what, sizeof what, "policy %d", (int)policies[p]);
        only_the_victim_is_gone(s, policies[p] == MRU ? "c" : "b", what);
        backlite_storage_free(s);
    }
}

/* every kind of hit is an access: get, get_chunks, cached_call, cached_call_exclusive,
   lease_try_acquire (one each on a, b, c, d, e; f never read): LRU evicts f */
static int32_t compute_unused(void *ud, backlite_sink *sink) {
    (void)sink;
    if (ud) ++*(int *)ud;
    return 1;
}

static void every_kind_of_hit_is_an_access(void) {
    backlite_storage *s = OPEN_WITH(tmp_path("hits.db"), 60, LRU);
    REQUIRE(s != NULL);
    SET_N(s, "f", 10);
    SET_N(s, "a", 10);
    SET_N(s, "b", 10);
    SET_N(s, "c", 10);
    SET_N(s, "d", 10);
    SET_N(s, "e", 10);
    /* read in the order f(no), then e, d, c, b, a: oldest access is then f... make it
       a real test: read f first, then the others, so f is oldest only if every read
       counted */
    backlite_buf b = {NULL, 0};
    CHECK_OK(backlite_storage_get(s, K("f"), &b, NULL, &err));
    backlite_buf_free(&b);
    CHECK_OK(backlite_storage_get(s, K("a"), &b, NULL, &err));
    backlite_buf_free(&b);
    CHECK_OK(backlite_storage_get_chunks(s, K("b"), chunk_nothing, NULL, NULL, &err));
    int n = 0;
    CHECK_OK(backlite_cached_call(s, K("c"), compute_unused, &n, NULL, NEVER, &b, &err));
    backlite_buf_free(&b);
    CHECK_OK(backlite_cached_call_exclusive(s, K("d"), compute_unused, &n, NEVER, 0, &b, &err));
    backlite_buf_free(&b);
    backlite_lease *lease = NULL;
    CHECK_OK(backlite_lease_try_acquire(s, K("e"), 1000, &b, &lease, &err));
    backlite_buf_free(&b);
    CHECK(lease == NULL);
    CHECK_EQ(n, 0);
    backlite_stats st = STATS(s);
    CHECK_EQ(st.hits, 6);
    CHECK_EQ(st.misses, 0);
    SET_N(s, "g", 10);
    CHECK(!HAS(s, "f"));
    const char *kept[] = {"a", "b", "c", "d", "e", "g"};
    for (int i = 0; i < 6; i++)
        if (!HAS(s, kept[i])) h_fail_(__FILE__, __LINE__, "%s was evicted", kept[i]);
    backlite_storage_free(s);
}

/* ------------------------------------------------------- dead values */

/* A value set already expired (expiration 0) is not live: it makes no room for
   itself by evicting live entries, and it replaces the older value under its key. */
static void an_already_expired_set_evicts_nothing(void) {
    const backlite_eviction_policy policies[5] = {LRU, LFU, MRU, FIFO, LIFO};
    for (int p = 0; p < 5; p++) {
        backlite_storage *s = OPEN_WITH(":memory:", 20, policies[p]);
        REQUIRE(s != NULL);
        SET_N(s, "a", 10);
        SET_N(s, "b", 10);
        uint8_t v[10];
        memset(v, 'x', sizeof v);
        CHECK_OK(backlite_storage_set(s, K("x"), v, sizeof v, 0, &err));
        CHECK(HAS(s, "a"));
        CHECK(HAS(s, "b"));
        CHECK(!HAS(s, "x"));
        /* an already-expired overwrite removes the old value */
        CHECK_OK(backlite_storage_set(s, K("a"), v, 5, 0, &err));
        GET_MISSING(s, "a");
        backlite_stats st = STATS(s);
        CHECK_EQ(st.evictions, 0);
        CHECK_EQ(st.count, 1);
        CHECK_EQ(st.total_size, 10);
        /* the same through set_many */
        SET_N(s, "c", 10);
        backlite_entry e[1] = {{(const uint8_t *)"y", 1, v, 10, 0}};
        CHECK_OK(backlite_storage_set_many(s, e, 1, &err));
        CHECK(HAS(s, "b"));
        CHECK(HAS(s, "c"));
        CHECK_EQ(STATS(s).evictions, 0);
        backlite_storage_free(s);
    }
}

/* A hit never reports a time left of 0 or less: at its deadline, an entry is gone. */
static void a_hit_always_has_time_left(void) {
    backlite_storage *s = OPEN(":memory:", NULL);
    REQUIRE(s != NULL);
    int hits = 0;
    for (int i = 0; i < 3000; i++) {
        CHECK_OK(backlite_storage_set(s, K("k"), K("v"), 1 + i % 3, &err));
        for (int j = 0; j < 5; j++) {
            backlite_buf b = {NULL, 0};
            int64_t left = -99;
            backlite_result rc = backlite_storage_get(s, K("k"), &b, &left, NULL);
            if (rc == BACKLITE_RESULT_OK) {
                hits++;
                if (left < 1 || left > 3) h_fail_(__FILE__, __LINE__, "a hit with %" PRId64 " ms left", left);
                backlite_buf_free(&b);
            } else {
                CHECK_EQ(rc, BACKLITE_RESULT_NOT_FOUND);
            }
        }
    }
    CHECK(hits > 0);
    backlite_storage_free(s);
}

/* -------------------------------------------------- the exclusive call, more */

/* a value computed too large to store is still returned, stores nothing, evicts
   nothing, and lets the next caller compute */
static int32_t compute_big(void *ud, backlite_sink *sink) {
    if (ud) ++*(int *)ud;
    uint8_t v[21];
    memset(v, 'B', sizeof v);
    return backlite_sink_write(sink, v, sizeof v) == BACKLITE_RESULT_OK ? 0 : 1;
}

static void an_exclusive_value_too_large_is_returned_and_evicts_nothing(void) {
    backlite_storage *s = OPEN_WITH(tmp_path("excl-big.db"), 20, LRU);
    REQUIRE(s != NULL);
    SET_N(s, "a", 10);
    SET_N(s, "b", 10);
    int n = 0;
    backlite_buf b = {NULL, 0};
    CHECK_OK(backlite_cached_call_exclusive(s, K("big"), compute_big, &n, NEVER, 0, &b, &err));
    CHECK_EQ(b.len, 21);
    backlite_buf_free(&b);
    CHECK(HAS(s, "a"));
    CHECK(HAS(s, "b"));
    CHECK(!HAS(s, "big"));
    CHECK_EQ(STATS(s).evictions, 0);
    CHECK_OK(backlite_cached_call_exclusive(s, K("big"), compute_big, &n, NEVER, 0, &b, &err));
    backlite_buf_free(&b);
    CHECK_EQ(n, 2);
    /* the same through the lease: fulfil gives TOO_LARGE, stores and evicts nothing,
       and frees the key */
    backlite_lease *lease = NULL;
    CHECK_RC(backlite_lease_try_acquire(s, K("big"), 1000, &b, &lease, &err), BACKLITE_RESULT_NOT_FOUND);
    REQUIRE(lease != NULL);
    uint8_t v[21];
    memset(v, 'B', sizeof v);
    CHECK_RC(backlite_lease_fulfill(lease, v, sizeof v, NEVER, &err), BACKLITE_RESULT_TOO_LARGE);
    CHECK(HAS(s, "a"));
    CHECK(HAS(s, "b"));
    lease = NULL;
    CHECK_RC(backlite_lease_try_acquire(s, K("big"), 1000, &b, &lease, &err), BACKLITE_RESULT_NOT_FOUND);
    CHECK(lease != NULL);
    backlite_lease_abandon(lease);
    backlite_storage_free(s);
}

/* an in-memory cache is one handle's: its threads still compute a key once */
typedef struct {
    backlite_storage *s;
    atomic_int *computes;
    pthread_barrier_t *start;
    backlite_result rc;
    char got[16];
} mem_thread;

static int32_t compute_slowly(void *ud, backlite_sink *sink) {
    atomic_int *c = ud;
    atomic_fetch_add(c, 1);
    h_sleep_ms(20); /* widens the window; the result does not depend on it */
    return backlite_sink_write(sink, (const uint8_t *)"once", 4) == BACKLITE_RESULT_OK ? 0 : 1;
}

static void *mem_worker(void *arg) {
    mem_thread *t = arg;
    pthread_barrier_wait(t->start);
    backlite_buf b = {NULL, 0};
    t->rc = backlite_cached_call_exclusive(t->s, K("hot"), compute_slowly, t->computes, NEVER, 60000, &b, NULL);
    if (t->rc == BACKLITE_RESULT_OK) {
        snprintf(t->got, sizeof t->got, "%.*s", (int)b.len, (const char *)b.data);
        backlite_buf_free(&b);
    }
    return NULL;
}

static void threads_of_an_in_memory_cache_compute_a_key_once(void) {
    backlite_storage *s = OPEN(":memory:", NULL);
    REQUIRE(s != NULL);
    enum { N = 8 };
    pthread_t th[N];
    mem_thread t[N];
    atomic_int computes = 0;
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, N);
    for (int i = 0; i < N; i++) {
        t[i] = (mem_thread){s, &computes, &start, -1, ""};
        REQUIRE(pthread_create(&th[i], NULL, mem_worker, &t[i]) == 0);
    }
    for (int i = 0; i < N; i++) pthread_join(th[i], NULL);
    pthread_barrier_destroy(&start);
    CHECK_EQ(atomic_load(&computes), 1);
    for (int i = 0; i < N; i++) {
        CHECK_EQ(t[i].rc, BACKLITE_RESULT_OK);
        CHECK_STR_EQ(t[i].got, "once");
    }
    /* at most one miss per call; a waiter's look-up that finds the value after its
       wait is a hit as well (a look-up that found a live entry) */
    backlite_stats st = STATS(s);
    CHECK(st.misses >= 1 && st.misses <= N);
    CHECK(st.hits <= N - 1);
    CHECK(st.misses + st.hits >= N);
    backlite_storage_free(s);
}

/* ----------------------------------------------------------- version tag */

/* Decision: no tag means "no opinion" (entries kept, the recorded tag kept); ""
   is a tag like any other. A tag change under a live handle leaves that handle with
   exact sizes, and (since 11f5ba2) refusing values: its bytes are another format's. */
static void version_tags_compare_exactly(void) {
    const char *path = tmp_path("tags.db");
    backlite_storage *s = OPEN_SET(path, .version_tag = "v1");
    REQUIRE(s != NULL);
    SET(s, "k", "12345");
    backlite_storage *t = OPEN_SET(path, .version_tag = NULL);
    REQUIRE(t != NULL);
    GET_EQ(t, "k", "12345");
    backlite_storage_free(t);
    t = OPEN_SET(path, .version_tag = "V1"); /* case matters */
    REQUIRE(t != NULL);
    CHECK(!HAS(t, "k"));
    backlite_stats st = STATS(s); /* the first handle sees the file as it is now */
    CHECK_EQ(st.count, 0);
    CHECK_EQ(st.total_size, 0);
    CHECK_RC(backlite_storage_set(s, K("j"), K("123"), BACKLITE_EXPIRATION_NEVER, &err),
             BACKLITE_RESULT_INCOMPATIBLE);
    st = STATS(t);
    CHECK_EQ(st.count, 0);
    CHECK_EQ(st.total_size, 0);
    backlite_storage_free(t);
    t = OPEN_SET(path, .version_tag = "");
    REQUIRE(t != NULL);
    CHECK(!HAS(t, "j"));
    SET(t, "e", "1");
    backlite_storage_free(t);
    t = OPEN_SET(path, .version_tag = "");
    REQUIRE(t != NULL);
    GET_EQ(t, "e", "1");
    backlite_storage_free(t);
    backlite_storage_free(s);
}

/* ------------------------------------------------------ extreme durations */

/* The largest durations every call takes are far futures, never an overflow into the
   past and never a panic. */
static void the_largest_durations_are_accepted_everywhere(void) {
    backlite_options *o = backlite_options_new();
    REQUIRE(o != NULL);
    CHECK_RESULT(backlite_options_set_lease_ms(o, INT64_MAX), BACKLITE_RESULT_OK);
    backlite_storage *s = OPEN(tmp_path("far.db"), o);
    backlite_options_free(o);
    REQUIRE(s != NULL);
    const int64_t far[] = {INT64_MAX, INT64_MAX - 1, INT64_MAX / 2};
    for (int i = 0; i < 3; i++) {
        char k[16];
        snprintf(k, sizeof k, "k%d", i);
        backlite_entry e[1] = {{(const uint8_t *)k, strlen(k), (const uint8_t *)"v", 1, far[i]}};
        CHECK_OK(backlite_storage_set_many(s, e, 1, &err));
        GET_EQ(s, k, "v");
        backlite_buf b = {NULL, 0};
        int64_t left = 0;
        CHECK_OK(backlite_storage_get(s, K(k), &b, &left, &err));
        CHECK(left > 0);
        backlite_buf_free(&b);
        int n = 0;
        snprintf(k, sizeof k, "c%d", i);
        CHECK_OK(backlite_cached_call(s, K(k), compute_v, &n, NULL, far[i], &b, &err));
        backlite_buf_free(&b);
        GET_EQ(s, k, "v");
        snprintf(k, sizeof k, "x%d", i);
        CHECK_OK(backlite_cached_call_exclusive(s, K(k), compute_v, &n, far[i], far[i], &b, &err));
        backlite_buf_free(&b);
        GET_EQ(s, k, "v");
        snprintf(k, sizeof k, "l%d", i);
        backlite_lease *lease = NULL;
        CHECK_RC(backlite_lease_try_acquire(s, K(k), far[i], &b, &lease, &err), BACKLITE_RESULT_NOT_FOUND);
        REQUIRE(lease != NULL);
        CHECK_OK(backlite_lease_extend(lease, far[i], &err));
        CHECK_OK(backlite_lease_fulfill(lease, K("v"), far[i], &err));
        GET_EQ(s, k, "v");
        CHECK_EQ(n, 2);
    }
    /* waiting "forever" on a held key ends when the holder fulfils */
    backlite_storage_free(s);
}

typedef struct {
    backlite_storage *s;
    int fd; /* written when the lease is taken */
} holder_ctx;

static void *hold_then_fulfil(void *arg) {
    holder_ctx *h = arg;
    backlite_lease *lease = NULL;
    backlite_buf b = {NULL, 0};
    if (backlite_lease_try_acquire(h->s, K("held"), 60000, &b, &lease, NULL) != BACKLITE_RESULT_NOT_FOUND)
        return NULL;
    (void)!write(h->fd, "x", 1);
    h_sleep_ms(50); /* the waiter is waiting by now or will find the value: either way one result */
    backlite_lease_fulfill(lease, K("from holder"), NEVER, NULL);
    return NULL;
}

static void an_exclusive_call_may_wait_without_a_bound(void) {
    const char *path = tmp_path("wait-forever.db");
    backlite_storage *s = OPEN(path, NULL);
    backlite_storage *t = OPEN(path, NULL);
    REQUIRE(s != NULL && t != NULL);
    int fds[2];
    REQUIRE(pipe(fds) == 0);
    holder_ctx h = {t, fds[1]};
    pthread_t th;
    REQUIRE(pthread_create(&th, NULL, hold_then_fulfil, &h) == 0);
    char c;
    REQUIRE(read(fds[0], &c, 1) == 1);
    int n = 0;
    backlite_buf b = {NULL, 0};
    CHECK_OK(backlite_cached_call_exclusive(s, K("held"), compute_v, &n, NEVER, INT64_MAX, &b, &err));
    CHECK_BUF_STR(b, "from holder");
    backlite_buf_free(&b);
    CHECK_EQ(n, 0);
    pthread_join(th, NULL);
    close(fds[0]);
    close(fds[1]);
    backlite_storage_free(t);
    backlite_storage_free(s);
}

/* ------------------------------------------------ NULL where the others do not */

static void the_later_functions_reject_every_null_too(void) {
    backlite_storage *s = OPEN(tmp_path("nulls.db"), NULL);
    REQUIRE(s != NULL);
    SET(s, "k", "v");
    backlite_check_report rep;
    memset(&rep, 0xAB, sizeof rep);
    backlite_check_report rep0 = rep;
    CHECK_RC(backlite_storage_check(NULL, 0, &rep, &err), BACKLITE_RESULT_NULL_PARAMETER);
    CHECK_RC(backlite_storage_check(s, 0, NULL, &err), BACKLITE_RESULT_NULL_PARAMETER);
    CHECK_RC(backlite_storage_check(s, 1, NULL, &err), BACKLITE_RESULT_NULL_PARAMETER);
    CHECK(memcmp(&rep, &rep0, sizeof rep) == 0);
    CHECK_RC(backlite_storage_vacuum(NULL, &err), BACKLITE_RESULT_NULL_PARAMETER);
    backlite_lifetime_stats ls;
    CHECK_RC(backlite_storage_lifetime_stats(s, NULL, &err), BACKLITE_RESULT_NULL_PARAMETER);
    CHECK_RC(backlite_storage_lifetime_stats(NULL, &ls, &err), BACKLITE_RESULT_NULL_PARAMETER);
    CHECK_RC(backlite_storage_zero_stats(NULL, &err), BACKLITE_RESULT_NULL_PARAMETER);
    CHECK_RC(backlite_storage_get_chunks(s, K("k"), NULL, NULL, NULL, &err), BACKLITE_RESULT_NULL_PARAMETER);
    CHECK_RC(backlite_storage_get_chunks(s, NULL, 1, chunk_nothing, NULL, NULL, &err),
             BACKLITE_RESULT_NULL_PARAMETER);

    uint8_t sb = 0;
    backlite_buf b = {&sb, 3};
    backlite_lease *sentinel = (backlite_lease *)(uintptr_t)0x99, *l = sentinel;
    CHECK_RC(backlite_lease_try_acquire(s, K("new"), 1000, NULL, &l, &err), BACKLITE_RESULT_NULL_PARAMETER);
    CHECK_RC(backlite_lease_try_acquire(s, K("new"), 1000, &b, NULL, &err), BACKLITE_RESULT_NULL_PARAMETER);
    CHECK_RC(backlite_lease_try_acquire(s, NULL, 2, 1000, &b, &l, &err), BACKLITE_RESULT_NULL_PARAMETER);
    CHECK_RC(backlite_lease_try_acquire(s, K("k"), 1000, NULL, &l, &err), BACKLITE_RESULT_NULL_PARAMETER);
    CHECK_RC(backlite_lease_step(NULL, K("new"), 0, &b, &l, &err), BACKLITE_RESULT_NULL_PARAMETER);
    CHECK_RC(backlite_lease_step(s, K("new"), 0, NULL, &l, &err), BACKLITE_RESULT_NULL_PARAMETER);
    CHECK_RC(backlite_lease_step(s, K("new"), 0, &b, NULL, &err), BACKLITE_RESULT_NULL_PARAMETER);
    CHECK_RC(backlite_lease_step(s, NULL, 2, 0, &b, &l, &err), BACKLITE_RESULT_NULL_PARAMETER);
    CHECK(l == sentinel);
    CHECK(b.data == &sb && b.len == 3);
    /* none of those took the key: it is free */
    l = NULL;
    CHECK_RC(backlite_lease_try_acquire(s, K("new"), 1000, &b, &l, &err), BACKLITE_RESULT_NOT_FOUND);
    REQUIRE(l != NULL);
    CHECK_RC(backlite_lease_extend(l, 0, &err), BACKLITE_RESULT_INVALID_ARGUMENT);
    CHECK_RC(backlite_lease_extend(l, -5, &err), BACKLITE_RESULT_INVALID_ARGUMENT);
    CHECK_RC(backlite_lease_fulfill(l, NULL, 1, NEVER, &err), BACKLITE_RESULT_NULL_PARAMETER);
    /* fulfil frees the lease whatever the result, so it is not used again: the key is
       free afterwards */
    l = NULL;
    CHECK_RC(backlite_lease_try_acquire(s, K("new"), 1000, &b, &l, &err), BACKLITE_RESULT_NOT_FOUND);
    REQUIRE(l != NULL);
    CHECK_RC(backlite_lease_fulfill(l, K("v"), -9, &err), BACKLITE_RESULT_INVALID_ARGUMENT);
    l = NULL;
    CHECK_RC(backlite_lease_try_acquire(s, K("new"), 1000, &b, &l, &err), BACKLITE_RESULT_NOT_FOUND);
    REQUIRE(l != NULL);
    CHECK_OK(backlite_lease_fulfill(l, NULL, 0, NEVER, &err)); /* empty value, NULL pointer */
    backlite_buf e = {NULL, 0};
    CHECK_OK(backlite_storage_get(s, K("new"), &e, NULL, &err));
    CHECK_EQ(e.len, 0);
    backlite_buf_free(&e);
    backlite_storage_free(s);
}

/* ------------------------------------------------ policy changes and names */

/* The order each policy needs is kept whatever policy the file was used with: a file
   filled and read under LRU is evicted exactly by FIFO, LIFO, LFU and MRU after. */
static void a_file_used_under_one_policy_is_evicted_exactly_by_another(void) {
    const backlite_eviction_policy policies[5] = {LRU, LFU, MRU, FIFO, LIFO};
    const char *victims[5] = {"b", "a", "c", "a", "c"};
    for (int p = 0; p < 5; p++) {
        char name[32];
        snprintf(name, sizeof name, "switch-%d.db", p);
        reopened_evicts_exactly(name, policies[(p + 1) % 5], policies[p], victims[p]);
    }
}

/* a symlink to a cache is the cache: one order, one size */
static void a_symlink_and_its_target_are_one_cache(void) {
    const char *path = tmp_path("target.db");
    const char *link = tmp_path("link.db");
    backlite_storage *s = OPEN_WITH(path, 30, LRU);
    REQUIRE(s != NULL);
    REQUIRE(symlink(path, link) == 0);
    backlite_storage *t = OPEN_WITH(link, 30, LRU);
    REQUIRE(t != NULL);
    SET_N(s, "a", 10);
    SET_N(t, "b", 10);
    SET_N(s, "c", 10);
    backlite_buf b = {NULL, 0};
    CHECK_OK(backlite_storage_get(t, K("a"), &b, NULL, &err));
    backlite_buf_free(&b);
    SET_N(s, "d", 10); /* b is the least recently used */
    CHECK(!HAS(s, "b"));
    CHECK(HAS(t, "a"));
    CHECK_EQ(STATS(t).total_size, 30);
    backlite_storage_free(t);
    backlite_storage_free(s);
    CHECK(h_exists(path));
}

static void a_barrier_without_unlock_is_refused(void) {
    backlite_storage *s = OPEN(":memory:", NULL);
    REQUIRE(s != NULL);
    lock_calls = 0;
    backlite_barrier half = {NULL, count_lock, NULL};
    backlite_buf b = {NULL, 0};
    int n = 0;
    CHECK_RC(backlite_cached_call(s, K("k"), compute_v, &n, &half, NEVER, &b, &err), BACKLITE_RESULT_NULL_PARAMETER);
    CHECK_EQ(lock_calls, 0);
    CHECK_EQ(n, 0);
    backlite_storage_free(s);
}

/* --------------------------------------------- a file deleted while open */

/* A handle whose file is deleted (rm of the cache folder while the program runs) and
   replaced by a new cache at the same path never mixes the two: its reads never go
   to the new file (a miss of its own write), and nothing of it lands in the new one.
   The handle may fail with IO; it must not answer from the wrong file. No read has
   been made on `s` before, so every read below needs a new connection. */
static void a_handle_never_reads_the_file_that_replaced_its_own(void) {
    const char *path = tmp_path("replaced.db");
    backlite_storage *s = OPEN(path, NULL);
    REQUIRE(s != NULL);
    SET(s, "old", "1");
    CHECK(remove_cache_file(path));
    backlite_storage *t = OPEN(path, NULL);
    REQUIRE(t != NULL);
    SET(t, "new", "2");
    backlite_error *e = NULL;
    backlite_result rc = backlite_storage_set(s, K("mine"), K("3"), NEVER, &e);
    CHECK(rc == BACKLITE_RESULT_OK || rc == BACKLITE_RESULT_IO);
    backlite_error_free(e);
    const char *keys[] = {"mine", "old", "new"};
    for (int i = 0; i < 3; i++) {
        backlite_buf b = {NULL, 0};
        e = NULL;
        backlite_result g = backlite_storage_get(s, K(keys[i]), &b, NULL, &e);
        if (i == 2) {
            if (g != BACKLITE_RESULT_NOT_FOUND && g != BACKLITE_RESULT_IO)
                h_fail_(__FILE__, __LINE__, "the old handle read the new file's \"new\": %s", h_rc_name(g));
        } else if (rc == BACKLITE_RESULT_OK && g != BACKLITE_RESULT_OK && g != BACKLITE_RESULT_IO) {
            h_fail_(__FILE__, __LINE__, "the old handle lost its own \"%s\": %s", keys[i], h_rc_name(g));
        }
        if (g == BACKLITE_RESULT_IO) CHECK(e != NULL && strstr(backlite_error_message(e), "replaced.db") != NULL);
        if (g == BACKLITE_RESULT_OK) backlite_buf_free(&b);
        backlite_error_free(e);
    }
    /* the new cache holds only its own entry */
    CHECK(!HAS(t, "mine"));
    CHECK(!HAS(t, "old"));
    backlite_stats st = STATS(t);
    CHECK_EQ(st.count, 1);
    CHECK_EQ(st.total_size, 1);
    backlite_storage_free(s);
    backlite_storage_free(t);
}

/* deleted and not replaced: no new file appears at the path behind the user's back */
static void a_handle_whose_file_was_deleted_makes_no_new_one(void) {
    const char *path = tmp_path("deleted.db");
    backlite_storage *s = OPEN(path, NULL);
    REQUIRE(s != NULL);
    SET(s, "old", "1");
    CHECK(remove_cache_file(path));
    backlite_buf b = {NULL, 0};
    backlite_error *e = NULL;
    backlite_result g = backlite_storage_get(s, K("old"), &b, NULL, &e);
    CHECK(g == BACKLITE_RESULT_OK || g == BACKLITE_RESULT_IO);
    if (g == BACKLITE_RESULT_OK) backlite_buf_free(&b);
    backlite_error_free(e);
    CHECK(!h_exists(path));
    backlite_storage_free(s);
    CHECK(!h_exists(path));
}

/* ------------------------------------------------------ leases past their time */

/* A lease whose time ran out but that nobody took over is still its holder's: extend
   and fulfil succeed and store (LEASE_LOST means another owner took it). */
static void a_lapsed_lease_nobody_took_is_still_fulfilled(void) {
    backlite_storage *s = OPEN(tmp_path("lapsed.db"), NULL);
    REQUIRE(s != NULL);
    backlite_lease *lease = NULL;
    backlite_buf b = {NULL, 0};
    CHECK_RC(backlite_lease_try_acquire(s, K("k"), 1, &b, &lease, &err), BACKLITE_RESULT_NOT_FOUND);
    REQUIRE(lease != NULL);
    int64_t start = h_now_ms();
    while (h_now_ms() < start + 5) h_sleep_ms(1); /* the lease's 1 ms runs out */
    CHECK_OK(backlite_lease_extend(lease, 1, &err));
    start = h_now_ms();
    while (h_now_ms() < start + 5) h_sleep_ms(1);
    CHECK_OK(backlite_lease_fulfill(lease, K("mine"), NEVER, &err));
    GET_EQ(s, "k", "mine");
    /* taken over once lapsed: the first holder has lost it */
    lease = NULL;
    CHECK_RC(backlite_lease_try_acquire(s, K("j"), 1, &b, &lease, &err), BACKLITE_RESULT_NOT_FOUND);
    REQUIRE(lease != NULL);
    start = h_now_ms();
    while (h_now_ms() < start + 5) h_sleep_ms(1);
    backlite_lease *second = NULL;
    CHECK_RC(backlite_lease_try_acquire(s, K("j"), 60000, &b, &second, &err), BACKLITE_RESULT_NOT_FOUND);
    REQUIRE(second != NULL);
    CHECK_RC(backlite_lease_extend(lease, 1000, &err), BACKLITE_RESULT_LEASE_LOST);
    CHECK_RC(backlite_lease_fulfill(lease, K("first"), NEVER, &err), BACKLITE_RESULT_LEASE_LOST);
    CHECK(!HAS(s, "j"));
    CHECK_OK(backlite_lease_fulfill(second, K("second"), NEVER, &err));
    GET_EQ(s, "j", "second");
    backlite_storage_free(s);
}

/* a barrier's lock may use the storage it guards */
typedef struct {
    backlite_storage *s;
    int locks, unlocks;
} using_barrier;

static int32_t lock_and_read(void *ud) {
    using_barrier *u = ud;
    u->locks++;
    backlite_buf b = {NULL, 0};
    backlite_result rc = backlite_storage_get(u->s, K("other"), &b, NULL, NULL);
    if (rc == BACKLITE_RESULT_OK) backlite_buf_free(&b);
    return rc == BACKLITE_RESULT_OK ? 0 : 1;
}

static void unlock_and_write(void *ud) {
    using_barrier *u = ud;
    u->unlocks++;
    backlite_storage_set(u->s, K("unlocked"), K("yes"), NEVER, NULL);
}

static void a_barrier_may_use_the_storage_it_guards(void) {
    const char *paths[] = {tmp_path("barrier-uses.db"), ":memory:"};
    for (int p = 0; p < 2; p++) {
        backlite_storage *s = OPEN(paths[p], NULL);
        REQUIRE(s != NULL);
        SET(s, "other", "o");
        using_barrier u = {s, 0, 0};
        backlite_barrier barrier = {&u, lock_and_read, unlock_and_write};
        int n = 0;
        backlite_buf b = {NULL, 0};
        CHECK_OK(backlite_cached_call(s, K("k"), compute_v, &n, &barrier, NEVER, &b, &err));
        CHECK_BUF_STR(b, "v");
        backlite_buf_free(&b);
        CHECK_EQ(u.locks, 1);
        CHECK_EQ(u.unlocks, 1);
        CHECK_EQ(n, 1);
        GET_EQ(s, "k", "v");
        GET_EQ(s, "unlocked", "yes");
        backlite_storage_free(s);
    }
}

/* lease_step: a miss (the lease is the caller's) leaves *err untouched; a held key
   fills it with both numbers */
static void lease_step_answers_like_try_acquire(void) {
    backlite_storage *s = OPEN(tmp_path("step.db"), NULL);
    REQUIRE(s != NULL);
    backlite_error *e = (backlite_error *)(uintptr_t)0x10;
    backlite_lease *lease = NULL;
    backlite_buf b = {NULL, 0};
    CHECK_EQ(backlite_lease_step(s, K("k"), 0, &b, &lease, &e), BACKLITE_RESULT_NOT_FOUND);
    CHECK(e == (backlite_error *)(uintptr_t)0x10);
    REQUIRE(lease != NULL);
    backlite_lease *other = NULL;
    e = NULL;
    CHECK_EQ(backlite_lease_step(s, K("k"), 0, &b, &other, &e), BACKLITE_RESULT_LEASE_HELD);
    CHECK(other == NULL);
    REQUIRE(e != NULL);
    CHECK_EQ(backlite_error_result(e), BACKLITE_RESULT_LEASE_HELD);
    CHECK(backlite_error_lease_time_left_ms(e) > 0);
    CHECK(backlite_error_retry_in_ms(e) >= 1);
    CHECK(backlite_error_retry_in_ms(e) <= backlite_error_lease_time_left_ms(e));
    backlite_error_free(e);
    e = NULL;
    CHECK_EQ(backlite_lease_step(s, K("k"), UINT32_MAX, &b, &other, &e), BACKLITE_RESULT_LEASE_HELD);
    CHECK(e != NULL && backlite_error_retry_in_ms(e) <= 50);
    backlite_error_free(e);
    CHECK_OK(backlite_lease_fulfill(lease, K("v"), NEVER, &err));
    e = (backlite_error *)(uintptr_t)0x10;
    CHECK_EQ(backlite_lease_step(s, K("k"), 1, &b, &other, &e), BACKLITE_RESULT_OK);
    CHECK(e == (backlite_error *)(uintptr_t)0x10);
    CHECK(other == NULL);
    CHECK_BUF_STR(b, "v");
    backlite_buf_free(&b);
    /* non-lease errors give -1 for both numbers */
    e = NULL;
    CHECK_EQ(backlite_storage_set(s, K("k"), K("v"), -9, &e), BACKLITE_RESULT_INVALID_ARGUMENT);
    CHECK_EQ(backlite_error_lease_time_left_ms(e), -1);
    CHECK_EQ(backlite_error_retry_in_ms(e), -1);
    backlite_error_free(e);
    backlite_storage_free(s);
}

/* A cache opened by a relative path stays that file after the program changes its
   working directory (daemons chdir("/")): reads and writes, in new threads' connections
   (a forked child's are opened the same way), reach it and make no file in the new
   directory. */
static void *get_mine(void *arg) {
    backlite_storage *s = arg;
    backlite_buf b = {NULL, 0};
    intptr_t ok = backlite_storage_get(s, K("mine"), &b, NULL, NULL) == BACKLITE_RESULT_OK && b.len == 1 &&
                  b.data[0] == '1';
    backlite_buf_free(&b);
    return (void *)ok;
}

static void a_relative_path_is_kept_through_a_change_of_directory(void) {
    char cwd[PATH_MAX];
    REQUIRE(getcwd(cwd, sizeof cwd) != NULL);
    char a[PATH_MAX], b[PATH_MAX];
    snprintf(a, sizeof a, "%s", tmp_path("cwd-a"));
    snprintf(b, sizeof b, "%s", tmp_path("cwd-b"));
    REQUIRE(mkdir(a, 0700) == 0 && mkdir(b, 0700) == 0);
    REQUIRE(chdir(a) == 0);
    backlite_storage *s = OPEN("rel.db", NULL);
    REQUIRE(chdir(b) == 0);
    if (s != NULL) {
        SET(s, "mine", "1");
        pthread_t th;
        void *ok = NULL;
        REQUIRE(pthread_create(&th, NULL, get_mine, s) == 0);
        pthread_join(th, &ok);
        CHECK(ok == (void *)1);
        GET_EQ(s, "mine", "1");
        CHECK(!h_exists("rel.db"));
        /* a value kept in a file of its own goes beside the cache, not here */
        size_t big_len = 70000;
        uint8_t *big = malloc(big_len);
        REQUIRE(big != NULL);
        memset(big, 'B', big_len);
        CHECK_OK(backlite_storage_set(s, K("big"), big, big_len, NEVER, &err));
        free(big);
        backlite_buf v = {NULL, 0};
        CHECK_OK(backlite_storage_get(s, K("big"), &v, NULL, &err));
        CHECK_EQ(v.len, big_len);
        backlite_buf_free(&v);
        CHECK(!h_exists("rel.db.values"));
        backlite_storage_free(s);
    }
    CHECK(!h_exists("rel.db"));
    REQUIRE(chdir(a) == 0);
    CHECK(h_exists("rel.db.values"));
    s = OPEN("rel.db", NULL);
    if (s) GET_EQ(s, "mine", "1");
    backlite_storage_free(s);
    REQUIRE(chdir(cwd) == 0);
}

int main(void) {
    h_begin();
    RUN(a_keys_visitor_may_write_to_the_same_storage);
    RUN(a_keys_visitor_may_clear_the_storage);
    RUN(an_exclusive_compute_may_make_another_exclusive_call);
    RUN(an_exclusive_compute_asking_for_its_own_key_times_out);
    RUN(exclusive_calls_reject_bad_arguments_before_compute);
    RUN(a_failing_exclusive_compute_stores_nothing_and_frees_the_key);
    RUN(each_memoising_call_counts_one_miss_or_one_hit);
    RUN(sizes_stay_exact_through_every_removal);
    RUN(set_many_with_a_value_over_max_size_stores_nothing_and_removes_its_keys_older_value);
    RUN(set_many_with_one_key_twice_keeps_the_last);
    RUN(each_policy_keeps_its_order_across_reopen);
    RUN(each_policy_counts_the_hits_of_another_process);
    RUN(the_default_expiration_applies_to_every_call_that_takes_one);
    RUN(a_long_default_expiration_gives_its_time_left);
    RUN(policy_names_are_exact);
    RUN(extreme_max_sizes_are_exact);
    RUN(every_busy_timeout_a_uint32_holds_opens);
    RUN(odd_paths_are_refused_or_plain_files);
    RUN(special_files_are_refused);
    RUN(an_empty_sqlite_database_is_not_a_cache);
    RUN(a_handle_works_after_each_kind_of_error);
    RUN(lease_codes_have_their_own_text);
    RUN(lease_held_fills_err_and_nothing_else);
    RUN(a_writer_killed_mid_transaction_leaves_exact_counts);
    RUN(listing_and_contains_are_no_access_for_mru_and_lfu);
    RUN(every_kind_of_hit_is_an_access);
    RUN(an_already_expired_set_evicts_nothing);
    RUN(a_hit_always_has_time_left);
    RUN(an_exclusive_value_too_large_is_returned_and_evicts_nothing);
    RUN(threads_of_an_in_memory_cache_compute_a_key_once);
    RUN(version_tags_compare_exactly);
    RUN(the_largest_durations_are_accepted_everywhere);
    RUN(an_exclusive_call_may_wait_without_a_bound);
    RUN(the_later_functions_reject_every_null_too);
    RUN(a_file_used_under_one_policy_is_evicted_exactly_by_another);
    RUN(a_symlink_and_its_target_are_one_cache);
    RUN(a_barrier_without_unlock_is_refused);
    RUN(a_handle_never_reads_the_file_that_replaced_its_own);
    RUN(a_handle_whose_file_was_deleted_makes_no_new_one);
    RUN(a_lapsed_lease_nobody_took_is_still_fulfilled);
    RUN(a_barrier_may_use_the_storage_it_guards);
    RUN(lease_step_answers_like_try_acquire);
    RUN(a_relative_path_is_kept_through_a_change_of_directory);
    return h_end();
}
