/*
 * The five eviction policies. The order is exact (a logical clock, not the wall clock):
 * nothing here sleeps, so every operation of a case usually falls in the same
 * millisecond, and the victims must still be the ones the rules name.
 */
#include "backlite.h"
#include "harness.h"

#define LRU BACKLITE_EVICTION_POLICY_LEAST_RECENTLY_USED
#define LFU BACKLITE_EVICTION_POLICY_LEAST_FREQUENTLY_USED
#define MRU BACKLITE_EVICTION_POLICY_MOST_RECENTLY_USED
#define FIFO BACKLITE_EVICTION_POLICY_FIRST_IN_FIRST_OUT
#define LIFO BACKLITE_EVICTION_POLICY_LAST_IN_FIRST_OUT

static void touch(backlite_storage *s, const char *key) {
    backlite_buf b = {NULL, 0};
    CHECK_OK(backlite_storage_get(s, K(key), &b, NULL, &err));
    backlite_buf_free(&b);
}

/* checks which of the keys are live: `live` lists the live ones, e.g. "acd" */
static void expect_live_(const char *file, int line, backlite_storage *s, const char *all, const char *live) {
    for (const char *k = all; *k; k++) {
        char key[2] = {*k, 0};
        bool want = strchr(live, *k) != NULL;
        bool got = h_has_(file, line, s, key, 1);
        if (want != got)
            h_fail_(file, line, "key \"%s\" is %s, expected %s (live should be \"%s\")", key,
                    got ? "live" : "gone", want ? "live" : "gone", live);
    }
}
#define EXPECT_LIVE(s, all, live) expect_live_(__FILE__, __LINE__, (s), (all), (live))

/* a 30-byte cache holding a, b, c of 10 bytes each */
static backlite_storage *abc(backlite_eviction_policy p) {
    backlite_storage *s = OPEN_WITH(":memory:", 30, p);
    if (s == NULL) return NULL;
    SET_N(s, "a", 10);
    SET_N(s, "b", 10);
    SET_N(s, "c", 10);
    return s;
}

static void lru_evicts_the_oldest_access(void) {
    backlite_storage *s = abc(LRU);
    REQUIRE(s != NULL);
    touch(s, "a");
    SET_N(s, "d", 10);
    EXPECT_LIVE(s, "abcd", "acd");
    CHECK_EQ(STATS(s).evictions, 1);
    touch(s, "c");
    SET_N(s, "e", 10); /* a was read before c and d was set after: a is the oldest */
    EXPECT_LIVE(s, "abcde", "cde");
    CHECK_EQ(STATS(s).evictions, 2);
    backlite_storage_free(s);
}

static void lru_contains_is_not_an_access(void) {
    backlite_storage *s = abc(LRU);
    REQUIRE(s != NULL);
    CHECK(HAS(s, "a"));
    CHECK(HAS(s, "a"));
    SET_N(s, "d", 10);
    EXPECT_LIVE(s, "abcd", "bcd");
    backlite_storage_free(s);
}

static void lru_a_missed_get_is_not_an_access(void) {
    backlite_storage *s = abc(LRU);
    REQUIRE(s != NULL);
    GET_MISSING(s, "zz");
    SET_N(s, "d", 10);
    EXPECT_LIVE(s, "abcd", "bcd");
    backlite_storage_free(s);
}

static void mru_evicts_the_newest_access(void) {
    backlite_storage *s = abc(MRU);
    REQUIRE(s != NULL);
    touch(s, "a");
    SET_N(s, "d", 10);
    EXPECT_LIVE(s, "abcd", "bcd");
    touch(s, "b");
    SET_N(s, "e", 10); /* b was read after d was set */
    EXPECT_LIVE(s, "abcde", "cde");
    CHECK_EQ(STATS(s).evictions, 2);
    backlite_storage_free(s);
}

static void mru_never_evicts_the_entry_being_written(void) {
    backlite_storage *s = abc(MRU);
    REQUIRE(s != NULL);
    SET_N(s, "d", 10); /* newest access before d is c */
    EXPECT_LIVE(s, "abcd", "abd");
    SET_N(s, "e", 10); /* now d is the newest other entry */
    EXPECT_LIVE(s, "abcde", "abe");
    backlite_storage_free(s);
}

static void lfu_evicts_the_fewest_hits(void) {
    backlite_storage *s = abc(LFU);
    REQUIRE(s != NULL);
    touch(s, "a");
    touch(s, "a");
    touch(s, "c");
    SET_N(s, "d", 10); /* b has no hit */
    EXPECT_LIVE(s, "abcd", "acd");
    touch(s, "d");
    touch(s, "d");
    touch(s, "d");
    SET_N(s, "e", 10); /* hits: a2 c1 d3 */
    EXPECT_LIVE(s, "abcde", "ade");
    backlite_storage_free(s);
}

static void lfu_breaks_ties_by_least_recent_access(void) {
    backlite_storage *s = abc(LFU);
    REQUIRE(s != NULL);
    touch(s, "c");
    touch(s, "a");
    touch(s, "b");
    SET_N(s, "d", 10); /* a, b, c have one hit each: c, read first, goes (d is being written) */
    EXPECT_LIVE(s, "abcd", "abd");
    SET_N(s, "e", 10); /* d has no hit: d goes, not the older a and b */
    EXPECT_LIVE(s, "abcde", "abe");
    backlite_storage_free(s);
}

static void lfu_without_hits_is_least_recently_used(void) {
    backlite_storage *s = abc(LFU);
    REQUIRE(s != NULL);
    SET_N(s, "d", 10);
    EXPECT_LIVE(s, "abcd", "bcd");
    backlite_storage_free(s);
}

static void fifo_evicts_the_earliest_set_even_if_read(void) {
    backlite_storage *s = abc(FIFO);
    REQUIRE(s != NULL);
    touch(s, "a");
    touch(s, "a");
    SET_N(s, "d", 10);
    EXPECT_LIVE(s, "abcd", "bcd");
    touch(s, "b");
    SET_N(s, "e", 10);
    EXPECT_LIVE(s, "abcde", "cde");
    backlite_storage_free(s);
}

static void lifo_evicts_the_latest_set_but_not_the_new_entry(void) {
    backlite_storage *s = abc(LIFO);
    REQUIRE(s != NULL);
    touch(s, "a");
    SET_N(s, "d", 10); /* c was set last before d */
    EXPECT_LIVE(s, "abcd", "abd");
    touch(s, "a");
    SET_N(s, "e", 10); /* now d */
    EXPECT_LIVE(s, "abcde", "abe");
    backlite_storage_free(s);
}

static void writing_a_key_again_restarts_its_fifo_order(void) {
    backlite_storage *s = abc(FIFO);
    REQUIRE(s != NULL);
    SET_N(s, "a", 10); /* a is now the latest set */
    CHECK_EQ(STATS(s).evictions, 0);
    SET_N(s, "d", 10);
    EXPECT_LIVE(s, "abcd", "acd");
    SET_N(s, "e", 10);
    EXPECT_LIVE(s, "abcde", "ade");
    SET_N(s, "f", 10);
    EXPECT_LIVE(s, "abcdef", "def");
    backlite_storage_free(s);
}

static void writing_a_key_again_restarts_its_lifo_order(void) {
    backlite_storage *s = abc(LIFO);
    REQUIRE(s != NULL);
    SET_N(s, "a", 10); /* a is now the latest set */
    SET_N(s, "d", 10);
    EXPECT_LIVE(s, "abcd", "bcd");
    backlite_storage_free(s);
}

static void writing_a_key_again_resets_its_lfu_hits(void) {
    backlite_storage *s = abc(LFU);
    REQUIRE(s != NULL);
    touch(s, "a");
    touch(s, "a");
    touch(s, "a");
    touch(s, "b");
    touch(s, "c");
    SET_N(s, "a", 10); /* hits a0 (start over) b1 c1 */
    SET_N(s, "d", 10);
    EXPECT_LIVE(s, "abcd", "bcd");
    backlite_storage_free(s);
}

static void writing_a_key_again_is_an_access_for_lru(void) {
    backlite_storage *s = abc(LRU);
    REQUIRE(s != NULL);
    SET_N(s, "a", 10);
    SET_N(s, "d", 10);
    EXPECT_LIVE(s, "abcd", "acd");
    backlite_storage_free(s);
}

static void overwriting_with_the_same_size_evicts_nothing(void) {
    backlite_storage *s = abc(LRU);
    REQUIRE(s != NULL);
    SET_N(s, "b", 10);
    SET_N(s, "c", 10);
    SET_N(s, "a", 10);
    EXPECT_LIVE(s, "abc", "abc");
    backlite_stats st = STATS(s);
    CHECK_EQ(st.evictions, 0);
    CHECK_EQ(st.count, 3);
    CHECK_EQ(st.total_size, 30);
    backlite_storage_free(s);
}

static void overwriting_with_a_larger_value_evicts_others_not_itself(void) {
    backlite_storage *s = abc(LRU);
    REQUIRE(s != NULL);
    SET_N(s, "a", 20); /* 20 + 10 + 10 > 30: b (oldest other) goes */
    EXPECT_LIVE(s, "abc", "ac");
    backlite_stats st = STATS(s);
    CHECK_EQ(st.evictions, 1);
    CHECK_EQ(st.count, 2);
    CHECK_EQ(st.total_size, 30);
    backlite_storage_free(s);
}

static void a_large_value_evicts_as_many_entries_as_needed(void) {
    backlite_storage *s = abc(LRU);
    REQUIRE(s != NULL);
    touch(s, "a");
    SET_N(s, "d", 25); /* must drop b, c and a (in that order) to fit 25 */
    EXPECT_LIVE(s, "abcd", "d");
    backlite_stats st = STATS(s);
    CHECK_EQ(st.evictions, 3);
    CHECK_EQ(st.count, 1);
    CHECK_EQ(st.total_size, 25);
    backlite_storage_free(s);

    s = abc(LRU);
    REQUIRE(s != NULL);
    touch(s, "a");
    SET_N(s, "d", 15); /* drops b and c only: 10 + 15 fits */
    EXPECT_LIVE(s, "abcd", "ad");
    CHECK_EQ(STATS(s).evictions, 2);
    CHECK_EQ(STATS(s).total_size, 25);
    backlite_storage_free(s);
}

/* A set of a new key into a full cache evicts in one go when one victim makes room;
 * that victim's value, here stored apart from its row (over 256 bytes), goes with it,
 * for every policy, and the counters stay exact. */
static void a_small_set_that_evicts_a_value_stored_apart_removes_it(void) {
    backlite_eviction_policy policies[5] = {LRU, LFU, MRU, FIFO, LIFO};
    for (int i = 0; i < 5; i++) {
        char name[32];
        snprintf(name, sizeof name, "apart-%d.db", i);
        backlite_storage *s = OPEN_WITH(tmp_path(name), 520, policies[i]);
        REQUIRE(s != NULL);
        /* big is the victim: the oldest, or for MRU and LIFO the newest */
        if (policies[i] == MRU || policies[i] == LIFO) {
            SET_N(s, "a", 10);
            SET_N(s, "b", 10);
            SET_N(s, "big", 500);
        } else {
            SET_N(s, "big", 500);
            SET_N(s, "a", 10);
            SET_N(s, "b", 10);
        }
        SET_N(s, "c", 10); /* evicts big alone: 10 + 10 + 10 fit */
        EXPECT_LIVE(s, "abc", "abc");
        CHECK(!h_has_(__FILE__, __LINE__, s, "big", 3));
        backlite_stats st = STATS(s);
        CHECK_EQ(st.evictions, 1);
        CHECK_EQ(st.count, 3);
        CHECK_EQ(st.total_size, 30);
        backlite_check_report r;
        CHECK_OK(backlite_storage_check(s, 0, &r, &err));
        CHECK_EQ(r.orphan_values, 0);
        CHECK_EQ(r.healthy, 1);
        CHECK_EQ(r.recorded_count, 3);
        CHECK_EQ(r.recorded_total_size, 30);
        backlite_storage_free(s);
    }
}

/*
 * An in-memory cache has no hit writer: the hits of 39,999 distinct keys read between
 * two writes all wait for the next one (the buffer holds 65,536), so its eviction takes
 * the one key not read, not a key whose hit was left out.
 */
static void an_in_memory_cache_keeps_the_order_of_many_reads_between_writes(void) {
    enum { N = 40000 };
    backlite_storage *s = OPEN_WITH(":memory:", N, LRU);
    REQUIRE(s != NULL);
    static char keys[N][8];
    static backlite_entry batch[N];
    for (int i = 0; i < N; i++) {
        snprintf(keys[i], sizeof keys[i], "k%05d", i);
        batch[i] = (backlite_entry){(const uint8_t *)keys[i], 6, (const uint8_t *)"v", 1,
                                    BACKLITE_EXPIRATION_NEVER};
    }
    CHECK_OK(backlite_storage_set_many(s, batch, N, &err));
    for (int i = 0; i < N - 1; i++) touch(s, keys[i]); /* all but the newest */
    SET(s, "new", "v"); /* one over max_size: evicts the least recently used */
    CHECK(!HAS(s, keys[N - 1]));
    for (int i = 0; i < N - 1; i += 997) CHECK(HAS(s, keys[i]));
    CHECK(HAS(s, keys[28672]));
    CHECK(HAS(s, keys[N - 2]));
    CHECK_EQ(STATS(s).count, N);
    backlite_storage_free(s);
}

static void a_value_of_exactly_max_size_fits_alone(void) {
    backlite_storage *s = abc(FIFO);
    REQUIRE(s != NULL);
    SET_N(s, "d", 30);
    EXPECT_LIVE(s, "abcd", "d");
    backlite_stats st = STATS(s);
    CHECK_EQ(st.count, 1);
    CHECK_EQ(st.total_size, 30);
    CHECK_EQ(st.evictions, 3);
    backlite_storage_free(s);
}

static int32_t compute_never(void *ud, backlite_sink *sink) {
    (void)sink;
    ++*(int *)ud;
    return 1;
}

static void a_cached_call_hit_is_an_access(void) {
    int calls = 0;
    /* LRU: the hit makes a the newest access */
    backlite_storage *s = abc(LRU);
    REQUIRE(s != NULL);
    backlite_buf b = {NULL, 0};
    CHECK_OK(backlite_cached_call(s, K("a"), compute_never, &calls, NULL, BACKLITE_EXPIRATION_NEVER, &b, &err));
    backlite_buf_free(&b);
    SET_N(s, "d", 10);
    EXPECT_LIVE(s, "abcd", "acd");
    backlite_storage_free(s);
    /* LFU: the hit counts */
    s = abc(LFU);
    REQUIRE(s != NULL);
    touch(s, "b");
    CHECK_OK(backlite_cached_call(s, K("a"), compute_never, &calls, NULL, BACKLITE_EXPIRATION_NEVER, &b, &err));
    backlite_buf_free(&b);
    SET_N(s, "d", 10); /* c is the only entry without a hit */
    EXPECT_LIVE(s, "abcd", "abd");
    backlite_storage_free(s);
    CHECK_EQ(calls, 0);
}

static void eviction_order_is_shared_by_handles_on_one_file(void) {
    const char *path = tmp_path("shared.db");
    backlite_storage *h1 = OPEN_WITH(path, 30, LRU);
    backlite_storage *h2 = OPEN_WITH(path, 30, LRU);
    REQUIRE(h1 != NULL && h2 != NULL);
    SET_N(h1, "a", 10);
    SET_N(h2, "b", 10);
    SET_N(h1, "c", 10);
    touch(h2, "a");
    SET_N(h1, "d", 10); /* b: set by h2, the oldest access of the file */
    EXPECT_LIVE(h1, "abcd", "acd");
    EXPECT_LIVE(h2, "abcd", "acd");
    CHECK_EQ(STATS(h1).evictions, 1);
    CHECK_EQ(STATS(h2).evictions, 0);
    backlite_storage_free(h1);
    backlite_storage_free(h2);
}

/* ------------------------------------------------------------------------------------
 * A model of the rules of API.md, run against the library on random operations.
 */

#define MK 10      /* keys k0..k9 */
#define MMAX 60    /* max_size */

#include "policy_model.h"

static void fill_value(uint8_t *v, int k, size_t size) {
    for (size_t i = 0; i < size; i++) v[i] = (uint8_t)(k * 37 + size * 11 + i);
}

/* `path` NULL: one in-memory handle. Else two handles on the file at `path`, each
   operation through either, one of them closed and opened again every 50 steps: the
   order is the file's, whichever handle made each access and whenever it was written. */
static void random_operations_follow_the_model_at(backlite_eviction_policy policy, uint64_t seed,
                                                  const char *path) {
    model m;
    memset(&m, 0, sizeof m);
    m.policy = policy;
    backlite_storage *handles[2] = {OPEN_WITH(path ? path : ":memory:", MMAX, policy), NULL};
    REQUIRE(handles[0] != NULL);
    if (path) {
        handles[1] = OPEN_WITH(path, MMAX, policy);
        REQUIRE(handles[1] != NULL);
    }
    uint64_t evicted_before = 0; /* evictions of handles closed since */
    uint64_t rng = seed;
    uint8_t value[MMAX + 16], want[MMAX + 16];
    for (int step = 0; step < 600; step++) {
        backlite_storage *s = handles[path ? h_rand_below(&rng, 2) : 0];
        if (path && step % 50 == 49) {
            int r = (int)h_rand_below(&rng, 2);
            evicted_before += STATS(handles[r]).evictions;
            backlite_storage_free(handles[r]);
            handles[r] = OPEN_WITH(path, MMAX, policy);
            REQUIRE(handles[r] != NULL);
            s = handles[r];
        }
        int k = (int)h_rand_below(&rng, MK);
        char key[32];
        snprintf(key, sizeof key, "k%d", k);
        unsigned op = (unsigned)h_rand_below(&rng, 100);
        if (op < 45) {
            size_t size = h_rand_below(&rng, 100) < 3 ? MMAX + 1 + h_rand_below(&rng, 10)
                                                      : h_rand_below(&rng, 26);
            fill_value(value, k, size);
            backlite_result expected = m_set(&m, k, size, false);
            backlite_error *err = NULL;
            backlite_result rc = backlite_storage_set(s, K(key), value, size, BACKLITE_EXPIRATION_NEVER, &err);
            char what[128];
            snprintf(what, sizeof what, "step %d: set(%s, %zu bytes)", step, key, size);
            h_check_rc_(__FILE__, __LINE__, what, rc, expected, err);
            backlite_error_free(err);
        } else if (op < 85) {
            backlite_buf b = {NULL, 0};
            backlite_error *err = NULL;
            backlite_result rc = backlite_storage_get(s, K(key), &b, NULL, &err);
            backlite_result expected = m.e[k].live ? BACKLITE_RESULT_OK : BACKLITE_RESULT_NOT_FOUND;
            char what[128];
            snprintf(what, sizeof what, "step %d: get(%s)", step, key);
            if (h_check_rc_(__FILE__, __LINE__, what, rc, expected, err) && rc == BACKLITE_RESULT_OK) {
                fill_value(want, k, m.e[k].size);
                h_check_bytes_(__FILE__, __LINE__, what, b.data, b.len, want, m.e[k].size);
            }
            if (m.e[k].live) m_hit(&m, k);
            backlite_error_free(err);
            backlite_buf_free(&b);
        } else if (op < 95) {
            backlite_error *err = NULL;
            backlite_result rc = backlite_storage_delete(s, K(key), &err);
            backlite_result expected = m.e[k].live ? BACKLITE_RESULT_OK : BACKLITE_RESULT_NOT_FOUND;
            char what[128];
            snprintf(what, sizeof what, "step %d: delete(%s)", step, key);
            h_check_rc_(__FILE__, __LINE__, what, rc, expected, err);
            backlite_error_free(err);
            m_remove(&m, k);
        } else {
            bool got = h_has_(__FILE__, __LINE__, s, key, strlen(key));
            if (got != m.e[k].live) h_fail_(__FILE__, __LINE__, "step %d: contains(%s) is %d", step, key, got);
        }
        /* hits and misses are left to test_storage.c: whether contains counts there is
           not part of the contract */
        backlite_stats st = STATS(s);
        if (path) st.evictions = evicted_before + STATS(handles[0]).evictions + STATS(handles[1]).evictions;
        uint64_t live = 0;
        for (int j = 0; j < MK; j++) live += m.e[j].live;
        if (st.count != live || st.total_size != m.total || st.evictions != m.evictions) {
            h_fail_(__FILE__, __LINE__,
                    "policy %d step %d: stats count=%" PRIu64 " total_size=%" PRIu64 " evictions=%" PRIu64
                    ", model count=%" PRIu64 " total_size=%" PRIu64 " evictions=%" PRIu64,
                    (int)policy, step, st.count, st.total_size, st.evictions, live, m.total, m.evictions);
            break;
        }
        if (step % 10 == 9) {
            bool same = true;
            for (int j = 0; j < MK && same; j++) {
                char kj[32];
                snprintf(kj, sizeof kj, "k%d", j);
                if (h_has_(__FILE__, __LINE__, s, kj, strlen(kj)) != m.e[j].live) {
                    h_fail_(__FILE__, __LINE__, "policy %d step %d: %s is %s in the library, %s in the model",
                            (int)policy, step, kj, m.e[j].live ? "gone" : "live", m.e[j].live ? "live" : "gone");
                    same = false;
                }
            }
            if (!same) break;
        }
    }
    CHECK(m.evictions > 20); /* the run did exercise eviction */
    backlite_storage_free(handles[0]);
    backlite_storage_free(handles[1]);
}

static void random_operations_follow_the_model(backlite_eviction_policy policy, uint64_t seed) {
    random_operations_follow_the_model_at(policy, seed, NULL);
}

static void random_operations_on_a_file_through_two_handles_follow_every_model(void) {
    const backlite_eviction_policy policies[5] = {LRU, LFU, MRU, FIFO, LIFO};
    for (int p = 0; p < 5; p++) {
        char name[32];
        snprintf(name, sizeof name, "model-%d.db", p);
        random_operations_follow_the_model_at(policies[p], 11 + (uint64_t)p, tmp_path(name));
    }
}

static void random_operations_follow_the_lru_model(void) { random_operations_follow_the_model(LRU, 1); }
static void random_operations_follow_the_lfu_model(void) { random_operations_follow_the_model(LFU, 2); }
static void random_operations_follow_the_mru_model(void) { random_operations_follow_the_model(MRU, 3); }
static void random_operations_follow_the_fifo_model(void) { random_operations_follow_the_model(FIFO, 4); }
static void random_operations_follow_the_lifo_model(void) { random_operations_follow_the_model(LIFO, 5); }

int main(void) {
    h_begin();
    RUN(lru_evicts_the_oldest_access);
    RUN(lru_contains_is_not_an_access);
    RUN(lru_a_missed_get_is_not_an_access);
    RUN(mru_evicts_the_newest_access);
    RUN(mru_never_evicts_the_entry_being_written);
    RUN(lfu_evicts_the_fewest_hits);
    RUN(lfu_breaks_ties_by_least_recent_access);
    RUN(lfu_without_hits_is_least_recently_used);
    RUN(fifo_evicts_the_earliest_set_even_if_read);
    RUN(lifo_evicts_the_latest_set_but_not_the_new_entry);
    RUN(writing_a_key_again_restarts_its_fifo_order);
    RUN(writing_a_key_again_restarts_its_lifo_order);
    RUN(writing_a_key_again_resets_its_lfu_hits);
    RUN(writing_a_key_again_is_an_access_for_lru);
    RUN(overwriting_with_the_same_size_evicts_nothing);
    RUN(overwriting_with_a_larger_value_evicts_others_not_itself);
    RUN(a_large_value_evicts_as_many_entries_as_needed);
    RUN(a_small_set_that_evicts_a_value_stored_apart_removes_it);
    RUN(a_value_of_exactly_max_size_fits_alone);
    RUN(an_in_memory_cache_keeps_the_order_of_many_reads_between_writes);
    RUN(a_cached_call_hit_is_an_access);
    RUN(eviction_order_is_shared_by_handles_on_one_file);
    RUN(random_operations_follow_the_lru_model);
    RUN(random_operations_follow_the_lfu_model);
    RUN(random_operations_follow_the_mru_model);
    RUN(random_operations_follow_the_fifo_model);
    RUN(random_operations_follow_the_lifo_model);
    RUN(random_operations_on_a_file_through_two_handles_follow_every_model);
    return h_end();
}
