/* get / set / delete / contains / clear / stats, sizes and the too-large rule. */
#include "backlite.h"
#include "harness.h"

#define LRU BACKLITE_EVICTION_POLICY_LEAST_RECENTLY_USED

static void set_then_get_returns_the_same_bytes(void) {
    backlite_storage *s = OPEN(":memory:", NULL);
    REQUIRE(s != NULL);
    const uint8_t bin[] = {0, 1, 2, 0, 255, 254, '\n', 0};
    CHECK_OK(backlite_storage_set(s, K("bin"), bin, sizeof bin, NEVER, &err));
    size_t big_len = 1 << 20;
    uint8_t *big = malloc(big_len);
    REQUIRE(big != NULL);
    for (size_t i = 0; i < big_len; i++) big[i] = (uint8_t)(i * 131 + (i >> 9));
    CHECK_OK(backlite_storage_set(s, K("big"), big, big_len, NEVER, &err));

    backlite_buf b = {NULL, 0};
    CHECK_OK(backlite_storage_get(s, K("bin"), &b, NULL, &err));
    CHECK_BUF(b, bin, sizeof bin);
    backlite_buf_free(&b);
    CHECK_OK(backlite_storage_get(s, K("big"), &b, NULL, &err));
    CHECK_BUF(b, big, big_len);
    backlite_buf_free(&b);
    backlite_stats st = STATS(s);
    CHECK_EQ(st.count, 2);
    CHECK_EQ(st.total_size, sizeof bin + big_len);
    free(big);
    backlite_storage_free(s);
}

static void inputs_are_copied_before_the_call_returns(void) {
    backlite_storage *s = OPEN(":memory:", NULL);
    REQUIRE(s != NULL);
    char key[] = "key", value[] = "value";
    CHECK_OK(backlite_storage_set(s, K(key), K(value), NEVER, &err));
    memcpy(key, "kex", 3);
    memcpy(value, "XXXXX", 5);
    GET_EQ(s, "key", "value");
    GET_MISSING(s, "kex");
    backlite_storage_free(s);
}

static void the_empty_key_and_the_empty_value_are_valid(void) {
    backlite_storage *s = OPEN(":memory:", NULL);
    REQUIRE(s != NULL);
    /* ptr may be NULL when len is 0 */
    CHECK_OK(backlite_storage_set(s, NULL, 0, K("for the empty key"), NEVER, &err));
    CHECK_OK(backlite_storage_set(s, K("empty value"), NULL, 0, NEVER, &err));
    /* the empty key again, with non-NULL pointers: the same key */
    CHECK_OK(backlite_storage_set(s, (const uint8_t *)"", 0, (const uint8_t *)"", 0, NEVER, &err));
    backlite_buf b = {NULL, 0};
    CHECK_OK(backlite_storage_get(s, NULL, 0, &b, NULL, &err));
    CHECK_EQ(b.len, 0); /* overwritten by the empty value above */
    backlite_buf_free(&b);
    CHECK_OK(backlite_storage_set(s, NULL, 0, K("E"), NEVER, &err));
    CHECK_OK(backlite_storage_get(s, (const uint8_t *)"", 0, &b, NULL, &err));
    CHECK_BUF_STR(b, "E");
    backlite_buf_free(&b);
    CHECK_OK(backlite_storage_get(s, K("empty value"), &b, NULL, &err));
    CHECK_EQ(b.len, 0);
    backlite_buf_free(&b);
    CHECK_OK(backlite_storage_contains(s, NULL, 0, &err));
    backlite_stats st = STATS(s);
    CHECK_EQ(st.count, 2);
    CHECK_EQ(st.total_size, 1);
    CHECK_OK(backlite_storage_delete(s, NULL, 0, &err));
    CHECK_RC(backlite_storage_contains(s, NULL, 0, &err), BACKLITE_RESULT_NOT_FOUND);
    backlite_storage_free(s);
}

static void keys_are_compared_as_bytes(void) {
    backlite_storage *s = OPEN(":memory:", NULL);
    REQUIRE(s != NULL);
    const uint8_t k1[] = {'a'}, k2[] = {'a', 0}, k3[] = {'A'}, k4[] = {0}, k5[] = {0, 0}, k6[] = {0xC3, 0x28};
    const uint8_t *keys[] = {k1, k2, k3, k4, k5, k6};
    size_t lens[] = {1, 2, 1, 1, 2, 2};
    for (int i = 0; i < 6; i++) {
        uint8_t v = (uint8_t)('0' + i);
        CHECK_OK(backlite_storage_set(s, keys[i], lens[i], &v, 1, NEVER, &err));
    }
    CHECK_EQ(STATS(s).count, 6);
    for (int i = 0; i < 6; i++) {
        backlite_buf b = {NULL, 0};
        uint8_t v = (uint8_t)('0' + i);
        CHECK_OK(backlite_storage_get(s, keys[i], lens[i], &b, NULL, &err));
        CHECK_BUF(b, &v, 1);
        backlite_buf_free(&b);
    }
    backlite_storage_free(s);
}

static void setting_a_key_again_replaces_its_value(void) {
    backlite_storage *s = OPEN(":memory:", NULL);
    REQUIRE(s != NULL);
    SET(s, "k", "first value");
    SET(s, "k", "2nd");
    GET_EQ(s, "k", "2nd");
    backlite_stats st = STATS(s);
    CHECK_EQ(st.count, 1);
    CHECK_EQ(st.total_size, 3);
    SET(s, "k", "a much longer third value");
    GET_EQ(s, "k", "a much longer third value");
    CHECK_EQ(STATS(s).total_size, strlen("a much longer third value"));
    backlite_storage_free(s);
}

static void a_missing_key_is_not_found_and_leaves_the_outputs_untouched(void) {
    backlite_storage *s = OPEN(":memory:", NULL);
    REQUIRE(s != NULL);
    GET_MISSING(s, "nope");
    SET(s, "k", "v");
    GET_MISSING(s, "K");
    GET_MISSING(s, "k ");
    backlite_storage_free(s);
}

static void delete_removes_the_entry_and_reports_a_missing_key(void) {
    backlite_storage *s = OPEN(":memory:", NULL);
    REQUIRE(s != NULL);
    SET(s, "a", "1");
    SET(s, "b", "22");
    CHECK_OK(backlite_storage_delete(s, K("a"), &err));
    GET_MISSING(s, "a");
    CHECK_RC(backlite_storage_delete(s, K("a"), &err), BACKLITE_RESULT_NOT_FOUND);
    CHECK_RC(backlite_storage_delete(s, K("never there"), &err), BACKLITE_RESULT_NOT_FOUND);
    GET_EQ(s, "b", "22");
    backlite_stats st = STATS(s);
    CHECK_EQ(st.count, 1);
    CHECK_EQ(st.total_size, 2);
    CHECK_EQ(st.evictions, 0);
    SET(s, "a", "333"); /* a deleted key can be written again */
    GET_EQ(s, "a", "333");
    backlite_storage_free(s);
}

static void contains_reports_live_keys_only(void) {
    backlite_storage *s = OPEN(":memory:", NULL);
    REQUIRE(s != NULL);
    CHECK_RC(backlite_storage_contains(s, K("a"), &err), BACKLITE_RESULT_NOT_FOUND);
    SET(s, "a", "1");
    CHECK_OK(backlite_storage_contains(s, K("a"), &err));
    CHECK_RC(backlite_storage_contains(s, K("b"), &err), BACKLITE_RESULT_NOT_FOUND);
    CHECK_OK(backlite_storage_delete(s, K("a"), &err));
    CHECK_RC(backlite_storage_contains(s, K("a"), &err), BACKLITE_RESULT_NOT_FOUND);
    backlite_storage_free(s);
}

static int32_t count_keys(void *ud, const uint8_t *key, size_t len) {
    (void)key;
    (void)len;
    ++*(int *)ud;
    return 0;
}

static void clear_removes_every_entry_and_keeps_the_counters(void) {
    backlite_storage *s = OPEN_WITH(tmp_path("c.db"), 30, LRU);
    REQUIRE(s != NULL);
    SET_N(s, "a", 10);
    SET_N(s, "b", 10);
    SET_N(s, "c", 10);
    SET_N(s, "d", 10); /* one eviction */
    GET_EQ(s, "d", "dddddddddd");
    GET_MISSING(s, "a");
    backlite_stats before = STATS(s);
    CHECK_EQ(before.evictions, 1);
    CHECK_OK(backlite_storage_clear(s, &err));
    backlite_stats after = STATS(s);
    CHECK_EQ(after.count, 0);
    CHECK_EQ(after.total_size, 0);
    CHECK_EQ(after.hits, before.hits);
    CHECK_EQ(after.misses, before.misses);
    CHECK_EQ(after.evictions, before.evictions); /* clearing is not evicting for size */
    CHECK_EQ(after.max_size, 30);
    int n = 0;
    CHECK_OK(backlite_storage_keys(s, count_keys, &n, &err));
    CHECK_EQ(n, 0);
    GET_MISSING(s, "b");
    CHECK_OK(backlite_storage_clear(s, &err)); /* clearing an empty cache is fine */
    SET(s, "e", "after clear");
    GET_EQ(s, "e", "after clear");
    CHECK_EQ(STATS(s).count, 1);
    backlite_storage_free(s);
    /* the clear is in the file */
    s = OPEN_WITH(tmp_path("c.db"), 30, LRU);
    REQUIRE(s != NULL);
    CHECK_EQ(STATS(s).count, 1);
    GET_MISSING(s, "b");
    backlite_storage_free(s);
}

static void stats_count_hits_and_misses_of_gets(void) {
    backlite_storage *s = OPEN(":memory:", NULL);
    REQUIRE(s != NULL);
    SET(s, "a", "1");
    SET(s, "b", "2");
    GET_EQ(s, "a", "1");
    GET_EQ(s, "a", "1");
    GET_EQ(s, "b", "2");
    GET_MISSING(s, "c");
    GET_MISSING(s, "d");
    CHECK_OK(backlite_storage_delete(s, K("a"), &err));
    GET_MISSING(s, "a");
    backlite_stats st = STATS(s);
    CHECK_EQ(st.hits, 3);
    CHECK_EQ(st.misses, 3);
    CHECK_EQ(st.evictions, 0);
    CHECK_EQ(st.expirations, 0);
    CHECK_EQ(st.count, 1);
    backlite_storage_free(s);
}

static void stats_counters_belong_to_the_handle_and_sizes_to_the_file(void) {
    const char *path = tmp_path("two.db");
    backlite_storage *h1 = OPEN_WITH(path, 20, LRU);
    backlite_storage *h2 = OPEN_WITH(path, 20, LRU);
    REQUIRE(h1 != NULL && h2 != NULL);
    SET_N(h1, "a", 10);
    SET_N(h1, "b", 10);
    GET_EQ(h2, "a", "aaaaaaaaaa");
    GET_MISSING(h2, "x");
    GET_MISSING(h2, "y");
    SET_N(h2, "c", 10); /* h2 evicts b */
    backlite_stats s1 = STATS(h1), s2 = STATS(h2);
    CHECK_EQ(s1.count, 2);
    CHECK_EQ(s2.count, 2);
    CHECK_EQ(s1.total_size, 20);
    CHECK_EQ(s2.total_size, 20);
    CHECK_EQ(s1.hits, 0);
    CHECK_EQ(s1.misses, 0);
    CHECK_EQ(s1.evictions, 0);
    CHECK_EQ(s2.hits, 1);
    CHECK_EQ(s2.misses, 2);
    CHECK_EQ(s2.evictions, 1);
    GET_MISSING(h1, "b");
    backlite_storage_free(h1);
    backlite_storage_free(h2);
}

static void stats_follow_overwrites_deletes_and_evictions(void) {
    backlite_storage *s = OPEN_WITH(":memory:", 100, LRU);
    REQUIRE(s != NULL);
    SET_N(s, "a", 40);
    SET_N(s, "b", 30);
    SET_N(s, "a", 5);  /* 35 */
    SET_N(s, "c", 60); /* 95 */
    backlite_stats st = STATS(s);
    CHECK_EQ(st.count, 3);
    CHECK_EQ(st.total_size, 95);
    CHECK_EQ(st.evictions, 0);
    SET_N(s, "b", 35); /* 100: exactly full, no eviction */
    st = STATS(s);
    CHECK_EQ(st.total_size, 100);
    CHECK_EQ(st.evictions, 0);
    SET_N(s, "d", 1); /* evicts a (5, oldest) */
    st = STATS(s);
    CHECK_EQ(st.count, 3);
    CHECK_EQ(st.total_size, 96);
    CHECK_EQ(st.evictions, 1);
    CHECK_OK(backlite_storage_delete(s, K("c"), &err));
    st = STATS(s);
    CHECK_EQ(st.count, 2);
    CHECK_EQ(st.total_size, 36);
    SET_N(s, "d", 0); /* an empty value is an entry of size 0 */
    st = STATS(s);
    CHECK_EQ(st.count, 2);
    CHECK_EQ(st.total_size, 35);
    CHECK_OK(backlite_storage_clear(s, &err));
    st = STATS(s);
    CHECK_EQ(st.count, 0);
    CHECK_EQ(st.total_size, 0);
    CHECK_EQ(st.evictions, 1);
    backlite_storage_free(s);
}

#define DK 16
static void stats_never_drift_from_a_tally_of_random_writes(void) {
    backlite_storage *s = OPEN(tmp_path("drift.db"), NULL);
    REQUIRE(s != NULL);
    long sizes[DK];
    for (int i = 0; i < DK; i++) sizes[i] = -1;
    uint64_t rng = 42;
    static uint8_t value[700];
    memset(value, 'v', sizeof value);
    for (int step = 0; step < 1500; step++) {
        int k = (int)h_rand_below(&rng, DK);
        char key[32];
        snprintf(key, sizeof key, "key%d", k);
        unsigned op = (unsigned)h_rand_below(&rng, 100);
        if (op < 70) {
            size_t n = h_rand_below(&rng, sizeof value);
            CHECK_OK(backlite_storage_set(s, K(key), value, n, NEVER, &err));
            sizes[k] = (long)n;
        } else if (op < 95) {
            CHECK_RC(backlite_storage_delete(s, K(key), &err),
                     sizes[k] >= 0 ? BACKLITE_RESULT_OK : BACKLITE_RESULT_NOT_FOUND);
            sizes[k] = -1;
        } else if (op < 99) {
            backlite_entry e[3];
            int ks[3];
            size_t ns[3];
            char keys[3][32];
            for (int j = 0; j < 3; j++) {
                ks[j] = (int)h_rand_below(&rng, DK);
                ns[j] = h_rand_below(&rng, sizeof value);
                snprintf(keys[j], sizeof keys[j], "key%d", ks[j]);
                e[j] = (backlite_entry){(const uint8_t *)keys[j], strlen(keys[j]), value, ns[j], NEVER};
            }
            if (ks[0] == ks[1] || ks[0] == ks[2] || ks[1] == ks[2]) continue; /* duplicate keys in one
                                                                                    batch: not specified */
            CHECK_OK(backlite_storage_set_many(s, e, 3, &err));
            for (int j = 0; j < 3; j++) sizes[ks[j]] = (long)ns[j];
        } else {
            CHECK_OK(backlite_storage_clear(s, &err));
            for (int i = 0; i < DK; i++) sizes[i] = -1;
        }
        uint64_t count = 0, total = 0;
        for (int i = 0; i < DK; i++)
            if (sizes[i] >= 0) {
                count++;
                total += (uint64_t)sizes[i];
            }
        backlite_stats st = STATS(s);
        if (st.count != count || st.total_size != total) {
            h_fail_(__FILE__, __LINE__,
                    "step %d: stats count=%" PRIu64 " total_size=%" PRIu64 ", tally count=%" PRIu64
                    " total_size=%" PRIu64,
                    step, st.count, st.total_size, count, total);
            break;
        }
    }
    CHECK_EQ(STATS(s).evictions, 0);
    backlite_storage_free(s);
    /* and after reopening */
    s = OPEN(tmp_path("drift.db"), NULL);
    REQUIRE(s != NULL);
    uint64_t count = 0, total = 0;
    for (int i = 0; i < DK; i++)
        if (sizes[i] >= 0) {
            count++;
            total += (uint64_t)sizes[i];
            char key[32];
            snprintf(key, sizeof key, "key%d", i);
            backlite_buf b = {NULL, 0};
            CHECK_OK(backlite_storage_get(s, K(key), &b, NULL, &err));
            CHECK_EQ(b.len, sizes[i]);
            backlite_buf_free(&b);
        }
    backlite_stats st = STATS(s);
    CHECK_EQ(st.count, count);
    CHECK_EQ(st.total_size, total);
    backlite_storage_free(s);
}

static void too_large_value_is_refused_and_evicts_nothing(void) {
    backlite_storage *s = OPEN_WITH(":memory:", 30, LRU);
    REQUIRE(s != NULL);
    SET_N(s, "a", 10);
    SET_N(s, "b", 10);
    static uint8_t big[31];
    memset(big, 'x', sizeof big);
    CHECK_RC(backlite_storage_set(s, K("x"), big, sizeof big, NEVER, &err), BACKLITE_RESULT_TOO_LARGE);
    GET_MISSING(s, "x");
    GET_EQ(s, "a", "aaaaaaaaaa");
    GET_EQ(s, "b", "bbbbbbbbbb");
    backlite_stats st = STATS(s);
    CHECK_EQ(st.count, 2);
    CHECK_EQ(st.total_size, 20);
    CHECK_EQ(st.evictions, 0);
    backlite_storage_free(s);
}

static void too_large_value_removes_the_older_value_under_its_key(void) {
    backlite_storage *s = OPEN_WITH(":memory:", 30, LRU);
    REQUIRE(s != NULL);
    SET_N(s, "a", 10);
    SET(s, "x", "old");
    static uint8_t big[100];
    memset(big, 'x', sizeof big);
    CHECK_RC(backlite_storage_set(s, K("x"), big, sizeof big, NEVER, &err), BACKLITE_RESULT_TOO_LARGE);
    GET_MISSING(s, "x"); /* never the stale "old" */
    CHECK_RC(backlite_storage_contains(s, K("x"), &err), BACKLITE_RESULT_NOT_FOUND);
    GET_EQ(s, "a", "aaaaaaaaaa");
    backlite_stats st = STATS(s);
    CHECK_EQ(st.count, 1);
    CHECK_EQ(st.total_size, 10);
    CHECK_EQ(st.evictions, 0);
    backlite_storage_free(s);
}

static void buf_free_releases_and_resets_the_buffer(void) {
    backlite_storage *s = OPEN(":memory:", NULL);
    REQUIRE(s != NULL);
    SET(s, "k", "value");
    backlite_buf b = {NULL, 0};
    CHECK_OK(backlite_storage_get(s, K("k"), &b, NULL, &err));
    CHECK(b.data != NULL);
    CHECK_EQ(b.len, 5);
    backlite_buf_free(&b);
    CHECK(b.data == NULL);
    CHECK_EQ(b.len, 0);
    backlite_buf_free(&b); /* {NULL, 0}: nothing to do, no double free */
    backlite_buf_free(NULL);
    /* an empty value also comes back as a buffer that buf_free accepts */
    CHECK_OK(backlite_storage_set(s, K("e"), NULL, 0, NEVER, &err));
    CHECK_OK(backlite_storage_get(s, K("e"), &b, NULL, &err));
    CHECK_EQ(b.len, 0);
    backlite_buf_free(&b);
    CHECK(b.data == NULL && b.len == 0);
    backlite_storage_free(s);
}

static void storage_free_accepts_null(void) { backlite_storage_free(NULL); }

int main(void) {
    h_begin();
    RUN(set_then_get_returns_the_same_bytes);
    RUN(inputs_are_copied_before_the_call_returns);
    RUN(the_empty_key_and_the_empty_value_are_valid);
    RUN(keys_are_compared_as_bytes);
    RUN(setting_a_key_again_replaces_its_value);
    RUN(a_missing_key_is_not_found_and_leaves_the_outputs_untouched);
    RUN(delete_removes_the_entry_and_reports_a_missing_key);
    RUN(contains_reports_live_keys_only);
    RUN(clear_removes_every_entry_and_keeps_the_counters);
    RUN(stats_count_hits_and_misses_of_gets);
    RUN(stats_counters_belong_to_the_handle_and_sizes_to_the_file);
    RUN(stats_follow_overwrites_deletes_and_evictions);
    RUN(stats_never_drift_from_a_tally_of_random_writes);
    RUN(too_large_value_is_refused_and_evicts_nothing);
    RUN(too_large_value_removes_the_older_value_under_its_key);
    RUN(buf_free_releases_and_resets_the_buffer);
    RUN(storage_free_accepts_null);
    return h_end();
}
