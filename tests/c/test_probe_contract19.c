/*
 * Contract probe, round 19: API.md read line by line as a hostile tester would, kept
 * for the rules no other test pins this way. All passed when written; they pin:
 *
 * - sizes: an overwrite frees its old bytes before choosing victims, the key being
 *   rewritten is never its own victim under any policy (even when it is the policy's
 *   first choice), a value over max_size wipes nothing by any route (set, set_many,
 *   cached_call, exclusive, lease), "exceed" is strictly more than max_size, a smaller
 *   max_size on reopen evicts nothing until the next set brings the file under it, a
 *   batch over max_size is evicted by each policy's own order, and stats match a tally
 *   of the live entries through random operations (values in the database and in
 *   files) and through threads that write, clear and compute at once;
 * - counters: one miss and one expiration for a get of an expired entry; contains,
 *   keys, delete, set and clear count no lookup; a barrier's second look that finds the
 *   value counts the miss and the hit, as an exclusive waiter does (tests/leases.rs);
 * - callbacks: computes that write nothing, fail after writing, write the key
 *   themselves, delete it, make a nested cached call on it, or clear the storage;
 *   visitors that list again, delete keys not yet reached, or rewrite the key whose
 *   chunks they read (the value as it was);
 * - leases: bad expirations and NULL values free the lease given to fulfil; the
 *   longest lease lengths; a stepped lease is renewed after its handle is freed (another
 *   process finds it held);
 * - a file without a version tag adopts the first and keeps its entries.
 */
#include <pthread.h>

#include "backlite.h"
#include "harness.h"

#define DEFAULT BACKLITE_EXPIRATION_DEFAULT
#define LRU BACKLITE_EVICTION_POLICY_LEAST_RECENTLY_USED
#define LFU BACKLITE_EVICTION_POLICY_LEAST_FREQUENTLY_USED
#define MRU BACKLITE_EVICTION_POLICY_MOST_RECENTLY_USED
#define FIFO BACKLITE_EVICTION_POLICY_FIRST_IN_FIRST_OUT
#define LIFO BACKLITE_EVICTION_POLICY_LAST_IN_FIRST_OUT

static const backlite_eviction_policy ALL_POLICIES[] = {LRU, LFU, MRU, FIFO, LIFO};

static void hit(backlite_storage *s, const char *key) {
    backlite_buf b = {NULL, 0};
    CHECK_OK(backlite_storage_get(s, K(key), &b, NULL, &err));
    backlite_buf_free(&b);
}

/* ------------------------------------------------ sizes with overwrites */

/* An overwrite frees the old value's bytes before deciding what to evict. */
static void an_overwrite_evicts_only_what_the_new_size_needs(void) {
    for (size_t p = 0; p < 5; p++) {
        backlite_storage *s = OPEN_WITH(":memory:", 12, ALL_POLICIES[p]);
        REQUIRE(s != NULL);
        SET_N(s, "a", 4);
        SET_N(s, "b", 4);
        SET_N(s, "c", 4);
        SET_N(s, "a", 6); /* 6 + 4 + 4 = 14 > 12: exactly one of b, c goes */
        backlite_stats st = STATS(s);
        CHECK_EQ(st.count, 2);
        CHECK_EQ(st.total_size, 10);
        CHECK_EQ(st.evictions, 1);
        CHECK(HAS(s, "a"));
        /* LRU, LFU (ties: LRU), FIFO evict b; MRU and LIFO evict c */
        int b_gone = !HAS(s, "b"), c_gone = !HAS(s, "c");
        CHECK_EQ(b_gone + c_gone, 1);
        if (ALL_POLICIES[p] == MRU || ALL_POLICIES[p] == LIFO)
            CHECK(c_gone);
        else
            CHECK(b_gone);
        /* a smaller overwrite evicts nothing and shrinks the total */
        SET_N(s, "a", 1);
        st = STATS(s);
        CHECK_EQ(st.count, 2);
        CHECK_EQ(st.total_size, 5);
        CHECK_EQ(st.evictions, 1);
        backlite_storage_free(s);
    }
}

/* The entry being written is never its own victim, even when it is the policy's
 * first choice (LRU: the oldest access; FIFO: set earliest). */
static void the_key_being_rewritten_is_never_its_own_victim(void) {
    for (size_t p = 0; p < 5; p++) {
        backlite_storage *s = OPEN_WITH(":memory:", 8, ALL_POLICIES[p]);
        REQUIRE(s != NULL);
        SET_N(s, "a", 4);
        SET_N(s, "b", 4);
        SET_N(s, "a", 8); /* a fits alone: b goes, a stays */
        CHECK(HAS(s, "a"));
        CHECK(!HAS(s, "b"));
        backlite_stats st = STATS(s);
        CHECK_EQ(st.count, 1);
        CHECK_EQ(st.total_size, 8);
        CHECK_EQ(st.evictions, 1);
        backlite_storage_free(s);
    }
}

/* max_size smaller than one item: the item is refused, nothing else moves; the
 * seed's bug (one oversized value wiping the cache) must not exist. */
static void a_value_over_max_size_wipes_nothing(void) {
    for (size_t p = 0; p < 5; p++) {
        backlite_storage *s = OPEN_WITH(":memory:", 10, ALL_POLICIES[p]);
        REQUIRE(s != NULL);
        SET_N(s, "a", 3);
        SET_N(s, "b", 3);
        SET_N(s, "c", 3);
        hit(s, "a");
        backlite_stats before = STATS(s);
        uint8_t big[11];
        memset(big, 'x', sizeof big);
        CHECK_RC(backlite_storage_set(s, K("big"), big, sizeof big, NEVER, &err), BACKLITE_RESULT_TOO_LARGE);
        /* the same for a key that had a value: the old value goes, nothing else */
        CHECK_RC(backlite_storage_set(s, K("b"), big, sizeof big, NEVER, &err), BACKLITE_RESULT_TOO_LARGE);
        backlite_stats st = STATS(s);
        CHECK_EQ(st.count, 2);
        CHECK_EQ(st.total_size, 6);
        CHECK_EQ(st.evictions, before.evictions);
        CHECK_EQ(st.hits, before.hits);
        CHECK_EQ(st.misses, before.misses);
        GET_EQ(s, "a", "aaa");
        GET_EQ(s, "c", "ccc");
        GET_MISSING(s, "b");
        GET_MISSING(s, "big");
        /* exactly max_size fits, and evicts everything else */
        SET_BYTES(s, "full", big, 10, NEVER);
        st = STATS(s);
        CHECK_EQ(st.count, 1);
        CHECK_EQ(st.total_size, 10);
        CHECK_EQ(st.evictions, 2);
        backlite_storage_free(s);
    }
}

/* The same through set_many, cached_call, the lease and an exclusive call. */
static int32_t compute_11(void *ud, backlite_sink *sink) {
    if (ud) ++*(int *)ud;
    return backlite_sink_write(sink, (const uint8_t *)"0123456789A", 11);
}

static void an_oversized_value_by_any_route_wipes_nothing(void) {
    backlite_storage *s = OPEN_WITH(":memory:", 10, LRU);
    REQUIRE(s != NULL);
    SET_N(s, "a", 3);
    SET_N(s, "b", 3);
    uint8_t big[11];
    memset(big, 'x', sizeof big);
    backlite_entry e[2] = {{(const uint8_t *)"n", 1, (const uint8_t *)"n", 1, NEVER},
                           {(const uint8_t *)"big", 3, big, sizeof big, NEVER}};
    CHECK_RC(backlite_storage_set_many(s, e, 2, &err), BACKLITE_RESULT_TOO_LARGE);
    CHECK(!HAS(s, "n"));
    int calls = 0;
    backlite_buf b = {NULL, 0};
    CHECK_OK(backlite_cached_call(s, K("cc"), compute_11, &calls, NULL, NEVER, &b, &err));
    CHECK_BUF(b, "0123456789A", 11);
    backlite_buf_free(&b);
    CHECK_OK(backlite_cached_call_exclusive(s, K("ce"), compute_11, &calls, NEVER, 0, &b, &err));
    CHECK_BUF(b, "0123456789A", 11);
    backlite_buf_free(&b);
    CHECK_EQ(calls, 2);
    backlite_lease *lease = NULL;
    CHECK_RC(backlite_lease_try_acquire(s, K("l"), 10000, &b, &lease, &err), BACKLITE_RESULT_NOT_FOUND);
    REQUIRE(lease != NULL);
    CHECK_RC(backlite_lease_fulfill(lease, big, sizeof big, NEVER, &err), BACKLITE_RESULT_TOO_LARGE);
    backlite_stats st = STATS(s);
    CHECK_EQ(st.count, 2);
    CHECK_EQ(st.total_size, 6);
    CHECK_EQ(st.evictions, 0);
    GET_EQ(s, "a", "aaa");
    GET_EQ(s, "b", "bbb");
    /* the key's lease was given back: a new caller gets it at once */
    CHECK_RC(backlite_lease_try_acquire(s, K("l"), 10000, &b, &lease, &err), BACKLITE_RESULT_NOT_FOUND);
    backlite_lease_abandon(lease);
    backlite_storage_free(s);
}

/* ------------------------------------------------------------- computes */

static int32_t compute_x(void *ud, backlite_sink *sink) {
    if (ud) ++*(int *)ud;
    return backlite_sink_write(sink, (const uint8_t *)"x", 1);
}

/* -------------------------------------------------------- keys and bytes */

typedef struct {
    int n;
    size_t lens[8];
    uint8_t keys[8][8];
} key_list;

static int32_t collect(void *ud, const uint8_t *key, size_t len) {
    key_list *l = ud;
    if (l->n < 8 && len <= 8) {
        l->lens[l->n] = len;
        if (len) memcpy(l->keys[l->n], key, len);
    }
    l->n++;
    return 0;
}

static void keys_with_nuls_are_distinct_and_listed_whole(void) {
    backlite_storage *s = OPEN(":memory:", NULL);
    REQUIRE(s != NULL);
    const uint8_t k1[] = {'a', 0, 'b'}, k2[] = {'a', 0, 'c'}, k3[] = {'a'}, k4[] = {0};
    CHECK_OK(backlite_storage_set(s, k1, 3, (const uint8_t *)"1", 1, NEVER, &err));
    CHECK_OK(backlite_storage_set(s, k2, 3, (const uint8_t *)"2", 1, NEVER, &err));
    CHECK_OK(backlite_storage_set(s, k3, 1, (const uint8_t *)"3", 1, NEVER, &err));
    CHECK_OK(backlite_storage_set(s, k4, 1, (const uint8_t *)"4", 1, NEVER, &err));
    CHECK_OK(backlite_storage_set(s, NULL, 0, (const uint8_t *)"5", 1, NEVER, &err));
    backlite_buf b = {NULL, 0};
    CHECK_OK(backlite_storage_get(s, k2, 3, &b, NULL, &err));
    CHECK_BUF(b, "2", 1);
    backlite_buf_free(&b);
    CHECK_OK(backlite_storage_get(s, (const uint8_t *)"", 0, &b, NULL, &err));
    CHECK_BUF(b, "5", 1);
    backlite_buf_free(&b);
    key_list l;
    memset(&l, 0, sizeof l);
    CHECK_OK(backlite_storage_keys(s, collect, &l, &err));
    CHECK_EQ(l.n, 5);
    int found = 0;
    for (int i = 0; i < l.n && i < 8; i++) {
        if (l.lens[i] == 3 && memcmp(l.keys[i], k1, 3) == 0) found |= 1;
        if (l.lens[i] == 3 && memcmp(l.keys[i], k2, 3) == 0) found |= 2;
        if (l.lens[i] == 1 && l.keys[i][0] == 'a') found |= 4;
        if (l.lens[i] == 1 && l.keys[i][0] == 0) found |= 8;
        if (l.lens[i] == 0) found |= 16;
    }
    CHECK_EQ(found, 31);
    CHECK_OK(backlite_storage_delete(s, k1, 3, &err));
    CHECK_OK(backlite_storage_get(s, k2, 3, &b, NULL, &err));
    backlite_buf_free(&b);
    CHECK_EQ(STATS(s).count, 4);
    backlite_storage_free(s);
}

/* ------------------------------------------------------ NULLs and bad values */

static void every_bad_expiration_is_invalid_everywhere(void) {
    backlite_storage *s = OPEN(":memory:", NULL);
    REQUIRE(s != NULL);
    int64_t bad[] = {-3, -100, INT64_MIN};
    backlite_buf b = {NULL, 0};
    for (int i = 0; i < 3; i++) {
        CHECK_RC(backlite_storage_set(s, K("k"), K("v"), bad[i], &err), BACKLITE_RESULT_INVALID_ARGUMENT);
        CHECK_RC(backlite_cached_call_exclusive(s, K("k"), compute_x, NULL, bad[i], 0, &b, &err),
                 BACKLITE_RESULT_INVALID_ARGUMENT);
        backlite_options *o = backlite_options_new();
        CHECK_RESULT(backlite_options_set_default_expiration_ms(o, bad[i]), BACKLITE_RESULT_INVALID_ARGUMENT);
        backlite_options_free(o);
        backlite_lease *lease = NULL;
        CHECK_RC(backlite_lease_try_acquire(s, K("k"), 1000, &b, &lease, &err), BACKLITE_RESULT_NOT_FOUND);
        REQUIRE(lease != NULL);
        CHECK_RC(backlite_lease_fulfill(lease, K("v"), bad[i], &err), BACKLITE_RESULT_INVALID_ARGUMENT);
        /* fulfil frees the lease whatever the result: the key is free again */
        lease = NULL;
        CHECK_RC(backlite_lease_try_acquire(s, K("k"), 1000, &b, &lease, &err), BACKLITE_RESULT_NOT_FOUND);
        backlite_lease_abandon(lease);
    }
    /* DEFAULT is no default of its own */
    backlite_options *o = backlite_options_new();
    CHECK_RESULT(backlite_options_set_default_expiration_ms(o, DEFAULT), BACKLITE_RESULT_INVALID_ARGUMENT);
    CHECK_RESULT(backlite_options_set_default_expiration_ms(o, NEVER), BACKLITE_RESULT_OK);
    CHECK_RESULT(backlite_options_set_default_expiration_ms(o, 0), BACKLITE_RESULT_OK);
    CHECK_RESULT(backlite_options_set_default_expiration_ms(o, INT64_MAX), BACKLITE_RESULT_OK);
    CHECK_RESULT(backlite_options_set_default_expiration_ms(NULL, 5), BACKLITE_RESULT_NULL_PARAMETER);
    backlite_options_free(o);
    CHECK(!HAS(s, "k"));
    CHECK_RC(backlite_cached_call_exclusive(s, K("k"), compute_x, NULL, NEVER, -1, &b, &err),
             BACKLITE_RESULT_INVALID_ARGUMENT);
    backlite_storage_free(s);
}

/* ------------------------------------------------------------ results, errors */

static void result_texts_and_error_accessors(void) {
    for (int r = 0; r <= 14; r++) {
        const char *t = backlite_result_str(r);
        CHECK(t != NULL && t[0] != '\0');
        for (int q = 0; q < r; q++)
            if (t && backlite_result_str(q)) CHECK(strcmp(t, backlite_result_str(q)) != 0);
    }
    int32_t odd[] = {-1, 15, 99, INT32_MIN, INT32_MAX};
    for (int i = 0; i < 5; i++) {
        const char *t = backlite_result_str(odd[i]);
        CHECK(t != NULL && t[0] != '\0');
    }
    CHECK_EQ(backlite_error_result(NULL), BACKLITE_RESULT_NULL_PARAMETER);
    CHECK(backlite_error_message(NULL) != NULL);
    CHECK_EQ(backlite_error_lease_time_left_ms(NULL), -1);
    CHECK_EQ(backlite_error_retry_in_ms(NULL), -1);
    backlite_error_free(NULL);
    backlite_error *e = NULL;
    CHECK_EQ(backlite_storage_clear(NULL, &e), BACKLITE_RESULT_NULL_PARAMETER);
    REQUIRE(e != NULL);
    CHECK_EQ(backlite_error_lease_time_left_ms(e), -1);
    CHECK_EQ(backlite_error_retry_in_ms(e), -1);
    backlite_error_free(e);
    /* err == NULL is fine for every failure */
    CHECK_EQ(backlite_storage_clear(NULL, NULL), BACKLITE_RESULT_NULL_PARAMETER);
}

/* --------------------------------------------------------- expiry and stats */

static void expiry_and_the_counters_of_each_operation(void) {
    backlite_storage *s = OPEN(tmp_path("exp.db"), NULL);
    REQUIRE(s != NULL);
    SET(s, "long", "vv");
    /* 0: already expired, stored nothing, removed the older value */
    SET(s, "zero", "old");
    SET_EXP(s, "zero", "v", 0);
    GET_MISSING(s, "zero");
    backlite_stats st = STATS(s);
    CHECK_EQ(st.count, 1);
    CHECK_EQ(st.total_size, 2);
    CHECK_EQ(st.misses, 1);
    CHECK_EQ(st.expirations, 0); /* an overwrite with 0 is no expiry removal */
    SET_EXP(s, "short", "v", 30);
    h_sleep_ms(60);
    /* expired: never counted, listed or returned */
    st = STATS(s);
    CHECK_EQ(st.count, 1);
    CHECK_EQ(st.total_size, 2);
    CHECK(!HAS(s, "short"));
    key_list l;
    memset(&l, 0, sizeof l);
    CHECK_OK(backlite_storage_keys(s, collect, &l, &err));
    CHECK_EQ(l.n, 1);
    CHECK_RC(backlite_storage_delete(s, K("short"), &err), BACKLITE_RESULT_NOT_FOUND);
    GET_MISSING(s, "short");
    st = STATS(s);
    CHECK_EQ(st.misses, 2);
    CHECK_EQ(st.hits, 0);
    /* contains, keys, delete, set, clear, stats are no lookups */
    SET(s, "x", "1");
    CHECK(HAS(s, "x"));
    CHECK(!HAS(s, "nothing"));
    CHECK_OK(backlite_storage_delete(s, K("x"), &err));
    CHECK_RC(backlite_storage_delete(s, K("x"), &err), BACKLITE_RESULT_NOT_FOUND);
    st = STATS(s);
    CHECK_EQ(st.hits, 0);
    CHECK_EQ(st.misses, 2);
    CHECK_EQ(st.evictions, 0);
    hit(s, "long");
    CHECK_OK(backlite_storage_clear(s, &err));
    st = STATS(s);
    CHECK_EQ(st.count, 0);
    CHECK_EQ(st.total_size, 0);
    CHECK_EQ(st.hits, 1);
    CHECK_EQ(st.evictions, 0);
    CHECK_EQ(st.max_size, 1ull << 30);
    backlite_storage_free(s);
}

/* ----------------------------------------------------- cached_call callbacks */

typedef struct {
    backlite_storage *s;
    int computes, locks, unlocks;
    int lock_rc;
    int mode; /* 0 write v, 1 write nothing, 2 fail after writing, 3 set same key then write,
                 4 delete own key, 5 nested cached_call on the same key */
} cc_ctx;

static int32_t cc_compute(void *ud, backlite_sink *sink) {
    cc_ctx *c = ud;
    c->computes++;
    switch (c->mode) {
    case 0: return backlite_sink_write(sink, K("v"));
    case 1: return 0;
    case 2: backlite_sink_write(sink, K("partial")); return -5;
    case 3:
        CHECK_OK(backlite_storage_set(c->s, K("k"), K("from-inside"), NEVER, &err));
        return backlite_sink_write(sink, K("computed"));
    case 4:
        backlite_storage_delete(c->s, K("k"), NULL);
        return backlite_sink_write(sink, K("v"));
    case 5: {
        cc_ctx inner = {c->s, 0, 0, 0, 0, 0};
        backlite_buf b = {NULL, 0};
        CHECK_OK(backlite_cached_call(c->s, K("k"), cc_compute, &inner, NULL, NEVER, &b, &err));
        CHECK_BUF_STR(b, "v");
        backlite_buf_free(&b);
        return backlite_sink_write(sink, K("outer"));
    }
    }
    return 1;
}
static int32_t cc_lock(void *ud) {
    cc_ctx *c = ud;
    c->locks++;
    return c->lock_rc;
}
static void cc_unlock(void *ud) { ((cc_ctx *)ud)->unlocks++; }

static void cached_call_with_each_kind_of_compute(void) {
    for (int with_barrier = 0; with_barrier < 2; with_barrier++) {
        for (int mode = 0; mode <= 5; mode++) {
            backlite_storage *s = OPEN(":memory:", NULL);
            REQUIRE(s != NULL);
            cc_ctx c = {s, 0, 0, 0, 0, mode};
            backlite_barrier bar = {&c, cc_lock, cc_unlock};
            backlite_buf b = {(uint8_t *)&c, 99};
            backlite_error *err = NULL;
            backlite_result rc = backlite_cached_call(s, K("k"), cc_compute, &c, with_barrier ? &bar : NULL,
                                                      NEVER, &b, &err);
            CHECK_EQ(c.computes, 1);
            CHECK_EQ(c.locks, with_barrier);
            CHECK_EQ(c.unlocks, with_barrier);
            backlite_stats st = STATS(s);
            switch (mode) {
            case 0:
            case 4:
                CHECK_EQ(rc, BACKLITE_RESULT_OK);
                CHECK_BUF_STR(b, "v");
                GET_EQ(s, "k", "v");
                break;
            case 1:
                CHECK_EQ(rc, BACKLITE_RESULT_OK);
                CHECK(b.data != NULL);
                CHECK_EQ(b.len, 0);
                GET_EQ(s, "k", "");
                break;
            case 2:
                CHECK_EQ(rc, BACKLITE_RESULT_CALLBACK_FAILED);
                CHECK(err != NULL && backlite_error_result(err) == BACKLITE_RESULT_CALLBACK_FAILED);
                CHECK(b.data == (uint8_t *)&c && b.len == 99); /* untouched */
                CHECK(!HAS(s, "k"));
                CHECK_EQ(st.count, 0);
                break;
            case 3:
                CHECK_EQ(rc, BACKLITE_RESULT_OK);
                CHECK_BUF_STR(b, "computed");
                GET_EQ(s, "k", "computed");
                CHECK_EQ(st.count, 1);
                CHECK_EQ(st.total_size, 8);
                break;
            case 5:
                CHECK_EQ(rc, BACKLITE_RESULT_OK);
                CHECK_BUF_STR(b, "outer");
                GET_EQ(s, "k", "outer");
                break;
            }
            if (mode != 5) CHECK_EQ(st.misses, 1);
            CHECK_EQ(st.hits, 0);
            if (rc == BACKLITE_RESULT_OK) backlite_buf_free(&b);
            backlite_error_free(err);
            /* a second call is a hit with no callback */
            if (mode != 2) {
                int before = c.computes;
                CHECK_OK(backlite_cached_call(s, K("k"), cc_compute, &c, with_barrier ? &bar : NULL, NEVER, &b,
                                              &err));
                backlite_buf_free(&b);
                CHECK_EQ(c.computes, before);
                CHECK_EQ(c.locks, with_barrier);
            }
            backlite_storage_free(s);
        }
    }
}

/* a value filled while we waited for the lock is returned, not computed again */
typedef struct {
    backlite_storage *s;
    int unlocks;
} fill_ctx;
static int32_t fill_on_lock(void *ud) {
    fill_ctx *f = ud;
    CHECK_OK(backlite_storage_set(f->s, K("k"), K("filled"), NEVER, &err));
    return 0;
}
static void fill_unlock(void *ud) { ((fill_ctx *)ud)->unlocks++; }

static void the_lookup_after_lock_returns_what_another_stored(void) {
    backlite_storage *s = OPEN(":memory:", NULL);
    REQUIRE(s != NULL);
    fill_ctx f = {s, 0};
    backlite_barrier bar = {&f, fill_on_lock, fill_unlock};
    int computes = 0;
    backlite_buf b = {NULL, 0};
    CHECK_OK(backlite_cached_call(s, K("k"), compute_x, &computes, &bar, NEVER, &b, &err));
    CHECK_BUF_STR(b, "filled");
    backlite_buf_free(&b);
    CHECK_EQ(computes, 0);
    CHECK_EQ(f.unlocks, 1);
    backlite_stats st = STATS(s);
    /* as an exclusive waiter counts (tests/leases.rs): the look-up that missed, and the
       one under the lock that found the value */
    CHECK_EQ(st.misses, 1);
    CHECK_EQ(st.hits, 1);
    backlite_storage_free(s);
}

/* expiration 0 (or a default of 0): returned, never stored; each call computes */
static void a_computed_value_already_expired_is_returned_not_stored(void) {
    backlite_options *o = backlite_options_new();
    REQUIRE(o != NULL);
    CHECK_RESULT(backlite_options_set_default_expiration_ms(o, 0), BACKLITE_RESULT_OK);
    backlite_storage *s = OPEN(":memory:", o);
    backlite_options_free(o);
    REQUIRE(s != NULL);
    int computes = 0;
    backlite_buf b = {NULL, 0};
    for (int i = 0; i < 2; i++) {
        CHECK_OK(backlite_cached_call(s, K("k"), compute_x, &computes, NULL, 0, &b, &err));
        CHECK_BUF_STR(b, "x");
        backlite_buf_free(&b);
        CHECK_OK(backlite_cached_call(s, K("d"), compute_x, &computes, NULL, DEFAULT, &b, &err));
        CHECK_BUF_STR(b, "x");
        backlite_buf_free(&b);
        CHECK_OK(backlite_cached_call_exclusive(s, K("e"), compute_x, &computes, 0, 0, &b, &err));
        CHECK_BUF_STR(b, "x");
        backlite_buf_free(&b);
    }
    CHECK_EQ(computes, 6);
    backlite_stats st = STATS(s);
    CHECK_EQ(st.count, 0);
    CHECK_EQ(st.misses, 6);
    CHECK_EQ(st.expirations, 0);
    SET_EXP(s, "def", "v", DEFAULT);
    CHECK(!HAS(s, "def"));
    backlite_storage_free(s);
}

/* --------------------------------------------------------------- leases */

static void lease_functions_check_their_inputs(void) {
    backlite_storage *s = OPEN(":memory:", NULL);
    REQUIRE(s != NULL);
    backlite_buf b = {NULL, 0};
    backlite_lease *lease = (backlite_lease *)&b;
    CHECK_RC(backlite_lease_try_acquire(NULL, K("k"), 1000, &b, &lease, &err), BACKLITE_RESULT_NULL_PARAMETER);
    CHECK_RC(backlite_lease_try_acquire(s, NULL, 1, 1000, &b, &lease, &err), BACKLITE_RESULT_NULL_PARAMETER);
    CHECK_RC(backlite_lease_try_acquire(s, K("k"), 1000, NULL, &lease, &err), BACKLITE_RESULT_NULL_PARAMETER);
    CHECK_RC(backlite_lease_try_acquire(s, K("k"), 1000, &b, NULL, &err), BACKLITE_RESULT_NULL_PARAMETER);
    CHECK_RC(backlite_lease_try_acquire(s, K("k"), 0, &b, &lease, &err), BACKLITE_RESULT_INVALID_ARGUMENT);
    CHECK_RC(backlite_lease_try_acquire(s, K("k"), -1, &b, &lease, &err), BACKLITE_RESULT_INVALID_ARGUMENT);
    CHECK_RC(backlite_lease_try_acquire(s, K("k"), INT64_MIN, &b, &lease, &err), BACKLITE_RESULT_INVALID_ARGUMENT);
    CHECK(lease == (backlite_lease *)&b);
    CHECK_RC(backlite_lease_step(NULL, K("k"), 0, &b, &lease, &err), BACKLITE_RESULT_NULL_PARAMETER);
    CHECK_RC(backlite_lease_step(s, K("k"), 0, NULL, &lease, &err), BACKLITE_RESULT_NULL_PARAMETER);
    CHECK_RC(backlite_lease_step(s, K("k"), 0, &b, NULL, &err), BACKLITE_RESULT_NULL_PARAMETER);
    CHECK_RC(backlite_lease_extend(NULL, 1000, &err), BACKLITE_RESULT_NULL_PARAMETER);
    CHECK_RC(backlite_lease_fulfill(NULL, K("v"), NEVER, &err), BACKLITE_RESULT_NULL_PARAMETER);
    backlite_lease_abandon(NULL);
    CHECK_EQ(STATS(s).misses, 0);
    lease = NULL;
    CHECK_RC(backlite_lease_try_acquire(s, K("k"), 1000, &b, &lease, &err), BACKLITE_RESULT_NOT_FOUND);
    REQUIRE(lease != NULL);
    CHECK_RC(backlite_lease_extend(lease, 0, &err), BACKLITE_RESULT_INVALID_ARGUMENT);
    CHECK_RC(backlite_lease_extend(lease, -5, &err), BACKLITE_RESULT_INVALID_ARGUMENT);
    CHECK_OK(backlite_lease_extend(lease, INT64_MAX, &err));
    CHECK_RC(backlite_lease_fulfill(lease, NULL, 3, NEVER, &err), BACKLITE_RESULT_NULL_PARAMETER);
    /* the lease is gone whatever fulfil said: the key is free */
    backlite_lease *l2 = NULL;
    backlite_error *e2 = NULL;
    backlite_result rc = backlite_lease_try_acquire(s, K("k"), 1000, &b, &l2, &e2);
    CHECK_EQ(rc, BACKLITE_RESULT_NOT_FOUND);
    CHECK(e2 == NULL);
    backlite_error_free(e2);
    CHECK_OK(backlite_lease_fulfill(l2, NULL, 0, NEVER, &err));
    GET_EQ(s, "k", "");
    backlite_storage_free(s);
}

/* ----------------------------------------------------- exclusive callbacks */

typedef struct {
    backlite_storage *s;
    int computes;
    int mode; /* 0 nothing, 1 fail, 2 set own key from inside, 3 get own key from inside */
} ex_ctx;

static int32_t ex_compute(void *ud, backlite_sink *sink) {
    ex_ctx *c = ud;
    c->computes++;
    if (c->mode == 1) return 3;
    if (c->mode == 2) {
        CHECK_OK(backlite_storage_set(c->s, K("k"), K("inside"), NEVER, &err));
        return backlite_sink_write(sink, K("outside"));
    }
    if (c->mode == 3) {
        backlite_buf b = {NULL, 0};
        CHECK_RC(backlite_storage_get(c->s, K("k"), &b, NULL, &err), BACKLITE_RESULT_NOT_FOUND);
        return backlite_sink_write(sink, K("v"));
    }
    (void)sink;
    return 0;
}

static void exclusive_with_each_kind_of_compute(void) {
    for (int mode = 0; mode <= 3; mode++) {
        char name[32];
        snprintf(name, sizeof name, "ex%d.db", mode);
        backlite_storage *s = OPEN(tmp_path(name), NULL);
        REQUIRE(s != NULL);
        ex_ctx c = {s, 0, mode};
        backlite_buf b = {(uint8_t *)&c, 5};
        backlite_error *err = NULL;
        backlite_result rc = backlite_cached_call_exclusive(s, K("k"), ex_compute, &c, NEVER, 0, &b, &err);
        CHECK_EQ(c.computes, 1);
        backlite_stats st = STATS(s);
        CHECK_EQ(st.misses, mode == 3 ? 2 : 1);
        if (mode == 1) {
            CHECK_EQ(rc, BACKLITE_RESULT_CALLBACK_FAILED);
            CHECK(err != NULL);
            CHECK(b.data == (uint8_t *)&c && b.len == 5);
            CHECK(!HAS(s, "k"));
            /* the key is free at once */
            c.mode = 0;
            backlite_buf b2 = {NULL, 0};
            CHECK_OK(backlite_cached_call_exclusive(s, K("k"), ex_compute, &c, NEVER, 0, &b2, &err));
            CHECK(b2.data != NULL);
            CHECK_EQ(b2.len, 0);
            backlite_buf_free(&b2);
        } else {
            CHECK_EQ(rc, BACKLITE_RESULT_OK);
            CHECK(err == NULL);
            if (mode == 0) {
                CHECK(b.data != NULL);
                CHECK_EQ(b.len, 0);
                GET_EQ(s, "k", "");
            }
            if (mode == 2) {
                CHECK_BUF_STR(b, "outside");
                GET_EQ(s, "k", "outside");
            }
            backlite_buf_free(&b);
        }
        backlite_error_free(err);
        backlite_storage_free(s);
    }
}

/* ------------------------------------------------ room, expired entries */

/* "exceed" is strictly more: a set that makes total_size equal max_size evicts none */
static void filling_to_exactly_max_size_evicts_nothing(void) {
    backlite_storage *s = OPEN_WITH(":memory:", 4, LRU);
    REQUIRE(s != NULL);
    SET_N(s, "a", 2);
    SET_N(s, "b", 2);
    SET(s, "e", ""); /* an empty value takes no room */
    backlite_stats st = STATS(s);
    CHECK_EQ(st.count, 3);
    CHECK_EQ(st.total_size, 4);
    CHECK_EQ(st.evictions, 0);
    SET_N(s, "c", 1);
    st = STATS(s);
    CHECK_EQ(st.evictions, 1);
    CHECK_EQ(st.total_size, 3);
    CHECK(!HAS(s, "a"));
    CHECK(HAS(s, "e"));
    backlite_storage_free(s);
}

/* A get of an expired entry: one miss, one expiration, the entry gone. */
static void a_get_of_an_expired_entry_counts_a_miss_and_an_expiration(void) {
    backlite_storage *s = OPEN(tmp_path("exp-get.db"), NULL);
    REQUIRE(s != NULL);
    SET_EXP(s, "k", "v", 10);
    h_sleep_ms(30);
    GET_MISSING(s, "k");
    backlite_stats st = STATS(s);
    CHECK_EQ(st.misses, 1);
    CHECK_EQ(st.hits, 0);
    CHECK_EQ(st.expirations, 1);
    CHECK_EQ(st.count, 0);
    CHECK_EQ(st.total_size, 0);
    backlite_storage_free(s);
}

/* A file reopened with a smaller max_size is brought under it by the next set. */
static void a_smaller_max_size_on_reopen_applies_at_the_next_set(void) {
    const char *path = tmp_path("shrink.db");
    backlite_storage *s = OPEN_WITH(path, 100, FIFO);
    REQUIRE(s != NULL);
    char key[8];
    for (int i = 0; i < 10; i++) {
        snprintf(key, sizeof key, "k%d", i);
        SET_N(s, key, 1);
    }
    backlite_storage_free(s);
    s = OPEN_WITH(path, 3, FIFO);
    REQUIRE(s != NULL);
    backlite_stats st = STATS(s);
    CHECK_EQ(st.max_size, 3);
    CHECK_EQ(st.count, 10); /* opening evicts nothing */
    SET_N(s, "new", 1);
    st = STATS(s);
    CHECK_EQ(st.count, 3);
    CHECK_EQ(st.total_size, 3);
    CHECK_EQ(st.evictions, 8);
    CHECK(HAS(s, "k8"));
    CHECK(HAS(s, "k9"));
    CHECK(HAS(s, "new"));
    backlite_storage_free(s);
}

/* A batch over max_size: written whole, then evicted by the policy, batch included. */
static void a_batch_over_max_size_is_evicted_by_each_policy(void) {
    const char *left[5][3] = {{"c", NULL}, {"x", "c", NULL}, {"x", "a", NULL}, {"c", NULL}, {"x", "a", NULL}};
    const int evicted[5] = {3, 2, 2, 3, 2};
    for (size_t p = 0; p < 5; p++) {
        backlite_storage *s = OPEN_WITH(":memory:", 3, ALL_POLICIES[p]);
        REQUIRE(s != NULL);
        SET_N(s, "x", 1);
        hit(s, "x");
        backlite_entry e[3] = {{(const uint8_t *)"a", 1, (const uint8_t *)"aa", 2, NEVER},
                               {(const uint8_t *)"b", 1, (const uint8_t *)"bb", 2, NEVER},
                               {(const uint8_t *)"c", 1, (const uint8_t *)"cc", 2, NEVER}};
        CHECK_OK(backlite_storage_set_many(s, e, 3, &err));
        backlite_stats st = STATS(s);
        CHECK_EQ(st.evictions, evicted[p]);
        CHECK(st.total_size <= 3);
        int n = 0;
        for (const char **k = left[p]; *k; k++, n++) {
            if (!HAS(s, *k)) fprintf(stderr, "  # policy %d: %s should be left\n", (int)ALL_POLICIES[p], *k);
            CHECK(HAS(s, *k));
        }
        CHECK_EQ(st.count, n);
        backlite_storage_free(s);
    }
}

/* a key deleted by the visitor before it was reached is not listed */
typedef struct {
    backlite_storage *s;
    int seen;
} del_ctx;
static int32_t delete_the_others(void *ud, const uint8_t *key, size_t len) {
    del_ctx *c = ud;
    c->seen++;
    const char *all[] = {"a", "b", "c"};
    for (int i = 0; i < 3; i++)
        if (len != 1 || key[0] != (uint8_t)all[i][0]) backlite_storage_delete(c->s, K(all[i]), NULL);
    return 0;
}

static void a_key_removed_before_it_is_reached_is_not_listed(void) {
    const char *paths[] = {tmp_path("gone.db"), ":memory:"};
    for (int p = 0; p < 2; p++) {
        backlite_storage *s = OPEN(paths[p], NULL);
        REQUIRE(s != NULL);
        SET(s, "a", "1");
        SET(s, "b", "2");
        SET(s, "c", "3");
        del_ctx c = {s, 0};
        CHECK_OK(backlite_storage_keys(s, delete_the_others, &c, &err));
        CHECK_EQ(c.seen, 1);
        CHECK_EQ(STATS(s).count, 1);
        backlite_storage_free(s);
    }
}

/* a compute that clears the storage: its own value is still stored (it is written
 * after the clear) */
typedef struct {
    backlite_storage *s;
} clear_ctx;
static int32_t clear_then_write(void *ud, backlite_sink *sink) {
    clear_ctx *c = ud;
    CHECK_OK(backlite_storage_clear(c->s, &err));
    return backlite_sink_write(sink, K("after-clear"));
}

static void a_compute_that_clears_still_stores_its_value(void) {
    const char *paths[] = {tmp_path("clr.db"), ":memory:"};
    for (int p = 0; p < 2; p++) {
        backlite_storage *s = OPEN(paths[p], NULL);
        REQUIRE(s != NULL);
        SET(s, "other", "o");
        clear_ctx c = {s};
        backlite_buf b = {NULL, 0};
        CHECK_OK(backlite_cached_call(s, K("k"), clear_then_write, &c, NULL, NEVER, &b, &err));
        CHECK_BUF_STR(b, "after-clear");
        backlite_buf_free(&b);
        GET_EQ(s, "k", "after-clear");
        CHECK(!HAS(s, "other"));
        CHECK_OK(backlite_cached_call_exclusive(s, K("e"), clear_then_write, &c, NEVER, 0, &b, &err));
        CHECK_BUF_STR(b, "after-clear");
        backlite_buf_free(&b);
        GET_EQ(s, "e", "after-clear");
        CHECK(!HAS(s, "k"));
        backlite_stats st = STATS(s);
        CHECK_EQ(st.count, 1);
        CHECK_EQ(st.total_size, 11);
        backlite_storage_free(s);
    }
}

/* ----------------------------------------- sizes against a tally, every route */

typedef struct {
    backlite_storage *s;
    uint64_t n, bytes;
    int bad;
} tally;

static int32_t tally_key(void *ud, const uint8_t *key, size_t len) {
    tally *t = ud;
    int64_t left = 0;
    backlite_buf b = {NULL, 0};
    backlite_error *e = NULL;
    /* contains first: a get is an access, but the sizes do not depend on order */
    backlite_result rc = backlite_storage_get(t->s, key, len, &b, &left, &e);
    if (rc == BACKLITE_RESULT_OK) {
        t->n++;
        t->bytes += b.len;
        if (len > 0 && b.len > 0 && b.data[0] != key[0]) t->bad++;
    } else if (rc != BACKLITE_RESULT_NOT_FOUND) {
        t->bad++;
    }
    backlite_buf_free(&b);
    backlite_error_free(e);
    return 0;
}

/* writes 11 bytes of the key's letter (user_data) */
static int32_t compute_letters(void *ud, backlite_sink *sink) {
    uint8_t v[11];
    memset(v, *(const char *)ud, sizeof v);
    return backlite_sink_write(sink, v, sizeof v);
}

static void sizes_match_a_tally_through_random_operations(void) {
    for (int p = 0; p < 5; p++) {
        char name[32];
        snprintf(name, sizeof name, "tally%d.db", p);
        const char *path = tmp_path(name);
        backlite_storage *s = OPEN_SET(path, .max_size = 200, .policy = ALL_POLICIES[p], .file_threshold = 24);
        REQUIRE(s != NULL);
        uint64_t rng = 42 + (uint64_t)p;
        static uint8_t val[400];
        int steps = h_under_valgrind() ? 150 : 600;
        for (int i = 0; i < steps; i++) {
            char key[4] = {(char)('a' + h_rand_below(&rng, 12)), 0};
            size_t n = (size_t)h_rand_below(&rng, 60);
            if (h_rand_below(&rng, 20) == 0) n = 201 + (size_t)h_rand_below(&rng, 50);
            memset(val, key[0], n);
            int op = (int)h_rand_below(&rng, 10);
            backlite_error *e = NULL;
            backlite_result rc = BACKLITE_RESULT_OK;
            if (op < 5) {
                int64_t exp = h_rand_below(&rng, 8) == 0 ? 0 : NEVER;
                rc = backlite_storage_set(s, (const uint8_t *)key, 1, val, n, exp, &e);
                CHECK(rc == (n > 200 && exp != 0 ? BACKLITE_RESULT_TOO_LARGE : BACKLITE_RESULT_OK));
                if (rc == BACKLITE_RESULT_TOO_LARGE || (rc == BACKLITE_RESULT_OK && exp == 0))
                    CHECK(!HAS(s, key));
            } else if (op == 5) {
                rc = backlite_storage_delete(s, (const uint8_t *)key, 1, &e);
                CHECK(rc == BACKLITE_RESULT_OK || rc == BACKLITE_RESULT_NOT_FOUND);
            } else if (op == 6) {
                backlite_entry batch[3];
                char keys[3] = {key[0], (char)('a' + h_rand_below(&rng, 12)), (char)('a' + h_rand_below(&rng, 12))};
                size_t lens[3] = {n > 200 ? 10 : n, (size_t)h_rand_below(&rng, 80), (size_t)h_rand_below(&rng, 30)};
                static uint8_t vals[3][100];
                for (int j = 0; j < 3; j++) {
                    memset(vals[j], keys[j], lens[j]);
                    batch[j] = (backlite_entry){(const uint8_t *)&keys[j], 1, vals[j], lens[j], NEVER};
                }
                rc = backlite_storage_set_many(s, batch, 3, &e);
                CHECK_EQ(rc, BACKLITE_RESULT_OK);
            } else if (op == 7) {
                backlite_buf b = {NULL, 0};
                rc = backlite_storage_get(s, (const uint8_t *)key, 1, &b, NULL, &e);
                if (rc == BACKLITE_RESULT_OK && b.len > 0) CHECK(b.data[0] == (uint8_t)key[0]);
                backlite_buf_free(&b);
            } else if (op == 8) {
                backlite_buf b = {NULL, 0};
                rc = backlite_cached_call(s, (const uint8_t *)key, 1, compute_letters, key, NULL, NEVER, &b, &e);
                CHECK_EQ(rc, BACKLITE_RESULT_OK);
                backlite_buf_free(&b);
            } else {
                backlite_buf b = {NULL, 0};
                backlite_lease *l = NULL;
                rc = backlite_lease_try_acquire(s, (const uint8_t *)key, 1, 10000, &b, &l, &e);
                if (rc == BACKLITE_RESULT_NOT_FOUND) {
                    backlite_result f = backlite_lease_fulfill(l, val, n, NEVER, NULL);
                    CHECK(f == (n > 200 ? BACKLITE_RESULT_TOO_LARGE : BACKLITE_RESULT_OK));
                }
                backlite_buf_free(&b);
            }
            backlite_error_free(e);
            backlite_stats st = STATS(s);
            tally t = {s, 0, 0, 0};
            CHECK_OK(backlite_storage_keys(s, tally_key, &t, &err));
            CHECK_EQ(t.bad, 0);
            if (st.count != t.n || st.total_size != t.bytes || st.total_size > 200) {
                fprintf(stderr, "  # policy %d step %d op %d key %s n %zu: stats %llu/%llu, tally %llu/%llu\n", p,
                        i, op, key, n, (unsigned long long)st.count, (unsigned long long)st.total_size,
                        (unsigned long long)t.n, (unsigned long long)t.bytes);
                CHECK(0);
                break;
            }
        }
        backlite_storage_free(s);
    }
}

/* the extreme lease lengths work: a lease of INT64_MAX ms, one of 1 ms */
static void extreme_lease_lengths_work(void) {
    int64_t lens[] = {INT64_MAX, INT64_MAX / 2, 1};
    for (int i = 0; i < 3; i++) {
        backlite_options *o = backlite_options_new();
        REQUIRE(o != NULL);
        CHECK_RESULT(backlite_options_set_lease_ms(o, lens[i]), BACKLITE_RESULT_OK);
        char name[32];
        snprintf(name, sizeof name, "lease%d.db", i);
        backlite_storage *s = OPEN(tmp_path(name), o);
        backlite_options_free(o);
        REQUIRE(s != NULL);
        int n = 0;
        backlite_buf b = {NULL, 0};
        CHECK_OK(backlite_cached_call_exclusive(s, K("k"), compute_x, &n, NEVER, 0, &b, &err));
        CHECK_BUF_STR(b, "x");
        backlite_buf_free(&b);
        backlite_lease *l = NULL;
        CHECK_RC(backlite_lease_step(s, K("j"), 0, &b, &l, &err), BACKLITE_RESULT_NOT_FOUND);
        REQUIRE(l != NULL);
        backlite_lease *l2 = NULL;
        backlite_error *e = NULL;
        CHECK_EQ(backlite_lease_try_acquire(s, K("j"), INT64_MAX, &b, &l2, &e), BACKLITE_RESULT_LEASE_HELD);
        if (e) CHECK(backlite_error_lease_time_left_ms(e) > 0);
        backlite_error_free(e);
        CHECK_OK(backlite_lease_fulfill(l, K("y"), NEVER, &err));
        GET_EQ(s, "j", "y");
        CHECK_RC(backlite_lease_try_acquire(s, K("m"), INT64_MAX, &b, &l2, &err), BACKLITE_RESULT_NOT_FOUND);
        CHECK_OK(backlite_lease_extend(l2, INT64_MAX, &err));
        backlite_lease_abandon(l2);
        CHECK_EQ(n, 1);
        backlite_storage_free(s);
    }
}

/* a file with no tag adopts the first tag and keeps its entries */
static void a_file_without_a_tag_adopts_one_and_keeps_its_entries(void) {
    const char *path = tmp_path("adopt.db");
    backlite_storage *s = OPEN(path, NULL);
    REQUIRE(s != NULL);
    SET(s, "k", "v");
    backlite_storage_free(s);
    s = OPEN_SET(path, .version_tag = "t1");
    REQUIRE(s != NULL);
    GET_EQ(s, "k", "v");
    backlite_storage_free(s);
    s = OPEN_SET(path, .version_tag = "t2");
    REQUIRE(s != NULL);
    GET_MISSING(s, "k");
    SET(s, "k2", "v2");
    backlite_storage_free(s);
    s = OPEN(path, NULL);
    REQUIRE(s != NULL);
    GET_EQ(s, "k2", "v2");
    backlite_storage_free(s);
    s = OPEN_SET(path, .version_tag = "t2");
    REQUIRE(s != NULL);
    GET_EQ(s, "k2", "v2");
    backlite_storage_free(s);
}

/* a lease from lease_step is renewed until it is fulfilled, even after its storage
 * handle is freed */
static void a_stepped_lease_is_renewed_after_its_handle_is_freed(void) {
    const char *path = tmp_path("renew.db");
    backlite_options *o = backlite_options_new();
    REQUIRE(o != NULL);
    /* renewed every 333 ms: a renewal late by more than 600 ms (a loaded machine)
       would let the lease lapse, so it is no shorter */
    CHECK_RESULT(backlite_options_set_lease_ms(o, 1000), BACKLITE_RESULT_OK);
    backlite_storage *s = OPEN(path, o);
    backlite_options_free(o);
    REQUIRE(s != NULL);
    backlite_buf b = {NULL, 0};
    backlite_lease *l = NULL;
    CHECK_RC(backlite_lease_step(s, K("k"), 0, &b, &l, &err), BACKLITE_RESULT_NOT_FOUND);
    REQUIRE(l != NULL);
    backlite_storage_free(s);
    h_sleep_ms(3500); /* three lease lengths and more: held only if renewed */
    /* another process must find it held: a forked child with a handle of its own */
    fflush(NULL);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        backlite_storage *c = NULL;
        if (backlite_storage_open(path, NULL, &c, NULL) != BACKLITE_RESULT_OK) h_child_exit(2);
        backlite_buf cb = {NULL, 0};
        backlite_lease *cl = NULL;
        backlite_result rc = backlite_lease_try_acquire(c, K("k"), 1000, &cb, &cl, NULL);
        if (rc == BACKLITE_RESULT_NOT_FOUND) backlite_lease_abandon(cl);
        backlite_storage_free(c);
        h_child_exit(rc == BACKLITE_RESULT_LEASE_HELD ? 0 : 3);
    }
    CHECK_EQ(CHILD_EXIT_CODE(pid), 0);
    CHECK_OK(backlite_lease_fulfill(l, K("v"), NEVER, &err));
    s = OPEN(path, NULL);
    REQUIRE(s != NULL);
    GET_EQ(s, "k", "v");
    backlite_storage_free(s);
}

/* a visitor that lists again, and a chunk visitor that deletes and rewrites its key */
typedef struct {
    backlite_storage *s;
    int outer, inner, depth;
} nest_ctx;
static int32_t nested_visit(void *ud, const uint8_t *k, size_t l) {
    (void)k; (void)l;
    nest_ctx *c = ud;
    if (c->depth == 0) {
        c->outer++;
        c->depth = 1;
        CHECK_OK(backlite_storage_keys(c->s, nested_visit, c, &err));
        c->depth = 0;
    } else {
        c->inner++;
    }
    return 0;
}

typedef struct {
    backlite_storage *s;
    size_t got;
    uint8_t first;
} chunk_ctx;
static int32_t delete_while_reading(void *ud, const uint8_t *chunk, size_t len) {
    chunk_ctx *c = ud;
    if (c->got == 0) {
        c->first = chunk[0];
        CHECK_OK(backlite_storage_delete(c->s, K("big"), &err));
        uint8_t other[300000];
        memset(other, 'z', sizeof other);
        CHECK_OK(backlite_storage_set(c->s, K("big"), other, sizeof other, NEVER, &err));
    }
    for (size_t i = 0; i < len; i++)
        if (chunk[i] != c->first) {
            c->first = 0;
            break;
        }
    c->got += len;
    return 0;
}

static void visitors_may_list_again_and_rewrite_what_they_read(void) {
    const char *paths[] = {tmp_path("nest.db"), ":memory:"};
    for (int p = 0; p < 2; p++) {
        backlite_storage *s = OPEN(paths[p], NULL);
        REQUIRE(s != NULL);
        SET(s, "a", "1");
        SET(s, "b", "2");
        nest_ctx c = {s, 0, 0, 0};
        CHECK_OK(backlite_storage_keys(s, nested_visit, &c, &err));
        CHECK_EQ(c.outer, 2);
        CHECK_EQ(c.inner, 4);
        size_t sizes[] = {1000, 200000, 2000000};
        for (int i = 0; i < 3; i++) {
            uint8_t *v = malloc(sizes[i]);
            REQUIRE(v != NULL);
            memset(v, 'q', sizes[i]);
            SET_BYTES(s, "big", v, sizes[i], NEVER);
            free(v);
            chunk_ctx cc = {s, 0, 0};
            int64_t left = 0;
            CHECK_OK(backlite_storage_get_chunks(s, K("big"), delete_while_reading, &cc, &left, &err));
            CHECK_EQ(cc.got, sizes[i]); /* the value as it was */
            CHECK_EQ(cc.first, 'q');
            CHECK_EQ(left, NEVER);
            backlite_stats st = STATS(s);
            CHECK_EQ(st.count, 3);
            CHECK_EQ(st.total_size, 2 + 300000);
        }
        backlite_storage_free(s);
    }
}

/* threads writing, clearing, evicting and computing on one handle: the counters
 * match the entries once they stop */
typedef struct {
    backlite_storage *s;
    int id;
    int bad;
} worker;

static void *churn_worker(void *arg) {
    worker *w = arg;
    uint64_t rng = (uint64_t)w->id * 7919u + 1;
    uint8_t v[64];
    for (int i = 0; i < (h_under_valgrind() ? 150 : 1500); i++) {
        char key[4] = {(char)('a' + h_rand_below(&rng, 16)), 0};
        size_t n = (size_t)h_rand_below(&rng, 64);
        memset(v, key[0], n);
        int op = (int)h_rand_below(&rng, 40);
        backlite_result rc;
        backlite_buf b = {NULL, 0};
        if (op == 0) {
            rc = backlite_storage_clear(w->s, NULL);
        } else if (op < 15) {
            rc = backlite_storage_set(w->s, (const uint8_t *)key, 1, v, n, NEVER, NULL);
        } else if (op < 20) {
            rc = backlite_storage_delete(w->s, (const uint8_t *)key, 1, NULL);
            if (rc == BACKLITE_RESULT_NOT_FOUND) rc = BACKLITE_RESULT_OK;
        } else if (op < 25) {
            rc = backlite_cached_call_exclusive(w->s, (const uint8_t *)key, 1, compute_letters, key, NEVER, 60000, &b,
                                                NULL);
        } else {
            rc = backlite_storage_get(w->s, (const uint8_t *)key, 1, &b, NULL, NULL);
            if (rc == BACKLITE_RESULT_NOT_FOUND) rc = BACKLITE_RESULT_OK;
        }
        if (rc == BACKLITE_RESULT_OK && b.len > 0 && b.data[0] != (uint8_t)key[0]) w->bad++;
        if (rc != BACKLITE_RESULT_OK) w->bad++;
        backlite_buf_free(&b);
    }
    return NULL;
}

static void threads_leave_counters_that_match_the_entries(void) {
    const char *paths[] = {tmp_path("churn.db"), ":memory:"};
    for (int p = 0; p < 2; p++) {
        backlite_storage *s = OPEN_SET(paths[p], .max_size = 300, .policy = ALL_POLICIES[p * 2], .busy_timeout_ms = 60000);
        REQUIRE(s != NULL);
        pthread_t th[4];
        worker w[4];
        for (int i = 0; i < 4; i++) {
            w[i] = (worker){s, i + 10 * p, 0};
            REQUIRE(pthread_create(&th[i], NULL, churn_worker, &w[i]) == 0);
        }
        for (int i = 0; i < 4; i++) {
            pthread_join(th[i], NULL);
            CHECK_EQ(w[i].bad, 0);
        }
        tally t = {s, 0, 0, 0};
        CHECK_OK(backlite_storage_keys(s, tally_key, &t, &err));
        backlite_stats st = STATS(s);
        CHECK_EQ(t.bad, 0);
        CHECK_EQ(st.count, t.n);
        CHECK_EQ(st.total_size, t.bytes);
        CHECK(st.total_size <= 300);
        backlite_storage_free(s);
    }
}

int main(void) {
    h_begin();
    RUN(an_overwrite_evicts_only_what_the_new_size_needs);
    RUN(the_key_being_rewritten_is_never_its_own_victim);
    RUN(a_value_over_max_size_wipes_nothing);
    RUN(an_oversized_value_by_any_route_wipes_nothing);
    RUN(keys_with_nuls_are_distinct_and_listed_whole);
    RUN(every_bad_expiration_is_invalid_everywhere);
    RUN(result_texts_and_error_accessors);
    RUN(expiry_and_the_counters_of_each_operation);
    RUN(cached_call_with_each_kind_of_compute);
    RUN(the_lookup_after_lock_returns_what_another_stored);
    RUN(a_computed_value_already_expired_is_returned_not_stored);
    RUN(lease_functions_check_their_inputs);
    RUN(exclusive_with_each_kind_of_compute);
    RUN(filling_to_exactly_max_size_evicts_nothing);
    RUN(a_get_of_an_expired_entry_counts_a_miss_and_an_expiration);
    RUN(a_smaller_max_size_on_reopen_applies_at_the_next_set);
    RUN(a_batch_over_max_size_is_evicted_by_each_policy);
    RUN(a_key_removed_before_it_is_reached_is_not_listed);
    RUN(a_compute_that_clears_still_stores_its_value);
    RUN(sizes_match_a_tally_through_random_operations);
    RUN(extreme_lease_lengths_work);
    RUN(a_file_without_a_tag_adopts_one_and_keeps_its_entries);
    RUN(a_stepped_lease_is_renewed_after_its_handle_is_freed);
    RUN(visitors_may_list_again_and_rewrite_what_they_read);
    RUN(threads_leave_counters_that_match_the_entries);
    return h_end();
}
