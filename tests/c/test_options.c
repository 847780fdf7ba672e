/* backlite_options: defaults, validation of every setter, and what open takes from them. */
#include "backlite.h"
#include "harness.h"

#define GIB (1024ull * 1024ull * 1024ull)

static const char *const POLICY_NAMES[5] = {
    "least-recently-used", "least-frequently-used", "most-recently-used",
    "first-in-first-out",  "last-in-first-out",
};

/*
 * Five 10-byte entries a..e in a 50-byte cache, touched so that each policy picks a
 * different victim when f is set:
 *   set a b c d e; get b b; get a a; get c; get e e; get d d
 *   hits: a2 b2 c1 d2 e2; last access oldest..newest: b a c e d
 *   LRU -> b, LFU -> c, MRU -> d, FIFO -> a, LIFO -> e
 */
static const char VICTIM[5] = {'b', 'c', 'd', 'a', 'e'};

static void h_touch(backlite_storage *s, const char *key) {
    backlite_buf b = {NULL, 0};
    CHECK_OK(backlite_storage_get(s, K(key), &b, NULL, &err));
    backlite_buf_free(&b);
}

/* runs the scenario above; returns the key evicted ('?' when not exactly one was) */
static char five_policy_victim(backlite_storage *s) {
    const char *keys[] = {"a", "b", "c", "d", "e"};
    for (int i = 0; i < 5; i++) SET_N(s, keys[i], 10);
    h_touch(s, "b"); h_touch(s, "b");
    h_touch(s, "a"); h_touch(s, "a");
    h_touch(s, "c");
    h_touch(s, "e"); h_touch(s, "e");
    h_touch(s, "d"); h_touch(s, "d");
    SET_N(s, "f", 10);
    char victim = '?';
    int gone = 0;
    for (int i = 0; i < 5; i++)
        if (!HAS(s, keys[i])) { victim = keys[i][0]; gone++; }
    CHECK(HAS(s, "f"));
    backlite_stats st = STATS(s);
    CHECK_EQ(st.count, 5);
    CHECK_EQ(st.total_size, 50);
    CHECK_EQ(st.evictions, 1);
    return gone == 1 ? victim : '?';
}

static void options_new_returns_an_object_and_free_accepts_null(void) {
    backlite_options *o = backlite_options_new();
    CHECK(o != NULL);
    backlite_options_free(o);
    backlite_options_free(NULL);
}

static void default_options_give_1_gib_and_never_expiring_entries(void) {
    backlite_options *o = backlite_options_new();
    REQUIRE(o != NULL);
    backlite_storage *s = OPEN(":memory:", o);
    backlite_options_free(o);
    REQUIRE(s != NULL);
    backlite_stats st = STATS(s);
    CHECK_EQ(st.max_size, GIB);
    CHECK_EQ(st.count, 0);
    CHECK_EQ(st.total_size, 0);
    CHECK_EQ(st.hits, 0);
    CHECK_EQ(st.misses, 0);
    CHECK_EQ(st.evictions, 0);
    CHECK_EQ(st.expirations, 0);
    CHECK_OK(backlite_storage_set(s, K("k"), K("v"), BACKLITE_EXPIRATION_DEFAULT, &err));
    backlite_buf b = {NULL, 0};
    int64_t left = 0;
    CHECK_OK(backlite_storage_get(s, K("k"), &b, &left, &err));
    CHECK_EQ(left, BACKLITE_EXPIRATION_NEVER);
    backlite_buf_free(&b);
    backlite_storage_free(s);
}

static void default_policy_is_least_recently_used(void) {
    backlite_options *o = backlite_options_new();
    REQUIRE(o != NULL);
    CHECK_RESULT(backlite_options_set_max_size(o, 50), BACKLITE_RESULT_OK);
    backlite_storage *s = OPEN(":memory:", o);
    backlite_options_free(o);
    REQUIRE(s != NULL);
    CHECK_EQ(five_policy_victim(s), 'b');
    backlite_storage_free(s);
}

static void null_options_at_open_mean_the_defaults(void) {
    backlite_storage *s = OPEN(":memory:", NULL);
    REQUIRE(s != NULL);
    CHECK_EQ(STATS(s).max_size, GIB);
    CHECK_OK(backlite_storage_set(s, K("k"), K("v"), BACKLITE_EXPIRATION_DEFAULT, &err));
    backlite_buf b = {NULL, 0};
    int64_t left = 0;
    CHECK_OK(backlite_storage_get(s, K("k"), &b, &left, &err));
    CHECK_EQ(left, BACKLITE_EXPIRATION_NEVER);
    backlite_buf_free(&b);
    backlite_storage_free(s);
}

static void max_size_zero_is_rejected(void) {
    backlite_options *o = backlite_options_new();
    REQUIRE(o != NULL);
    CHECK_RESULT(backlite_options_set_max_size(o, 0), BACKLITE_RESULT_INVALID_ARGUMENT);
    CHECK_RESULT(backlite_options_set_max_size(o, 1), BACKLITE_RESULT_OK);
    CHECK_RESULT(backlite_options_set_max_size(o, 1ull << 40), BACKLITE_RESULT_OK);
    backlite_options_free(o);
}

static void max_size_is_reported_by_stats(void) {
    backlite_storage *s = OPEN_WITH(":memory:", 12345, BACKLITE_EVICTION_POLICY_LEAST_RECENTLY_USED);
    REQUIRE(s != NULL);
    CHECK_EQ(STATS(s).max_size, 12345);
    backlite_storage_free(s);
}

static void eviction_policy_accepts_the_five_values_and_rejects_others(void) {
    backlite_options *o = backlite_options_new();
    REQUIRE(o != NULL);
    for (int32_t p = 0; p <= 4; p++) CHECK_RESULT(backlite_options_set_eviction_policy(o, p), BACKLITE_RESULT_OK);
    const int32_t bad[] = {5, 6, 100, -1, -2, INT32_MAX, INT32_MIN};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK_RESULT(backlite_options_set_eviction_policy(o, bad[i]), BACKLITE_RESULT_INVALID_ARGUMENT);
    backlite_options_free(o);
}

static void each_policy_value_evicts_its_own_victim(void) {
    for (int32_t p = 0; p <= 4; p++) {
        backlite_storage *s = OPEN_WITH(":memory:", 50, p);
        REQUIRE(s != NULL);
        char v = five_policy_victim(s);
        if (v != VICTIM[p])
            h_fail_(__FILE__, __LINE__, "policy %d evicted '%c', expected '%c'", (int)p, v, VICTIM[p]);
        backlite_storage_free(s);
    }
}

static void each_policy_name_selects_the_same_policy_as_its_value(void) {
    for (int p = 0; p <= 4; p++) {
        backlite_options *o = backlite_options_new();
        REQUIRE(o != NULL);
        CHECK_RESULT(backlite_options_set_max_size(o, 50), BACKLITE_RESULT_OK);
        /* start from another policy, so that a name that does nothing is seen */
        CHECK_RESULT(backlite_options_set_eviction_policy(o, (p + 1) % 5), BACKLITE_RESULT_OK);
        CHECK_RESULT(backlite_options_set_eviction_policy_name(o, POLICY_NAMES[p]), BACKLITE_RESULT_OK);
        backlite_storage *s = OPEN(":memory:", o);
        backlite_options_free(o);
        REQUIRE(s != NULL);
        char v = five_policy_victim(s);
        if (v != VICTIM[p])
            h_fail_(__FILE__, __LINE__, "policy \"%s\" evicted '%c', expected '%c'", POLICY_NAMES[p], v,
                    VICTIM[p]);
        backlite_storage_free(s);
    }
}

static void eviction_policy_name_rejects_unknown_names(void) {
    backlite_options *o = backlite_options_new();
    REQUIRE(o != NULL);
    const char *bad[] = {"",       "random", "least recently used", "least_recently_used",
                         "least-recently-used ", " least-recently-used", "least-recently-use",
                         "least-recently-usedx"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        backlite_result rc = backlite_options_set_eviction_policy_name(o, bad[i]);
        if (rc != BACKLITE_RESULT_INVALID_ARGUMENT)
            h_fail_(__FILE__, __LINE__, "policy name \"%s\" gave %s, expected INVALID_ARGUMENT", bad[i],
                    h_rc_name(rc));
    }
    CHECK_RESULT(backlite_options_set_eviction_policy_name(o, NULL), BACKLITE_RESULT_NULL_PARAMETER);
    backlite_options_free(o);
}

static void default_expiration_accepts_zero_positive_and_never_only(void) {
    backlite_options *o = backlite_options_new();
    REQUIRE(o != NULL);
    CHECK_RESULT(backlite_options_set_default_expiration_ms(o, 0), BACKLITE_RESULT_OK);
    CHECK_RESULT(backlite_options_set_default_expiration_ms(o, 1), BACKLITE_RESULT_OK);
    CHECK_RESULT(backlite_options_set_default_expiration_ms(o, 60000), BACKLITE_RESULT_OK);
    CHECK_RESULT(backlite_options_set_default_expiration_ms(o, BACKLITE_EXPIRATION_NEVER), BACKLITE_RESULT_OK);
    const int64_t bad[] = {BACKLITE_EXPIRATION_DEFAULT, -3, -5, -1000, INT64_MIN};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        backlite_result rc = backlite_options_set_default_expiration_ms(o, bad[i]);
        if (rc != BACKLITE_RESULT_INVALID_ARGUMENT)
            h_fail_(__FILE__, __LINE__, "default expiration %" PRId64 " gave %s, expected INVALID_ARGUMENT",
                    bad[i], h_rc_name(rc));
    }
    backlite_options_free(o);
}

static void busy_timeout_and_version_tag_accept_ordinary_values(void) {
    backlite_options *o = backlite_options_new();
    REQUIRE(o != NULL);
    CHECK_RESULT(backlite_options_set_busy_timeout_ms(o, 0), BACKLITE_RESULT_OK);
    CHECK_RESULT(backlite_options_set_busy_timeout_ms(o, 100), BACKLITE_RESULT_OK);
    CHECK_RESULT(backlite_options_set_busy_timeout_ms(o, 5000), BACKLITE_RESULT_OK);
    CHECK_RESULT(backlite_options_set_version_tag(o, "v1"), BACKLITE_RESULT_OK);
    CHECK_RESULT(backlite_options_set_version_tag(o, "python-3.12.1 / app 2.0"), BACKLITE_RESULT_OK);
    CHECK_RESULT(backlite_options_set_version_tag(o, NULL), BACKLITE_RESULT_NULL_PARAMETER);
    backlite_storage *s = OPEN(":memory:", o);
    backlite_options_free(o);
    backlite_storage_free(s);
}

static void every_setter_rejects_null_options(void) {
    CHECK_RESULT(backlite_options_set_max_size(NULL, 100), BACKLITE_RESULT_NULL_PARAMETER);
    CHECK_RESULT(backlite_options_set_eviction_policy(NULL, 0), BACKLITE_RESULT_NULL_PARAMETER);
    CHECK_RESULT(backlite_options_set_eviction_policy_name(NULL, "least-recently-used"),
                 BACKLITE_RESULT_NULL_PARAMETER);
    CHECK_RESULT(backlite_options_set_eviction_policy_name(NULL, NULL), BACKLITE_RESULT_NULL_PARAMETER);
    CHECK_RESULT(backlite_options_set_default_expiration_ms(NULL, 10), BACKLITE_RESULT_NULL_PARAMETER);
    CHECK_RESULT(backlite_options_set_busy_timeout_ms(NULL, 10), BACKLITE_RESULT_NULL_PARAMETER);
    CHECK_RESULT(backlite_options_set_version_tag(NULL, "v1"), BACKLITE_RESULT_NULL_PARAMETER);
}

static void a_rejected_value_leaves_the_option_unchanged(void) {
    backlite_options *o = backlite_options_new();
    REQUIRE(o != NULL);
    CHECK_RESULT(backlite_options_set_max_size(o, 50), BACKLITE_RESULT_OK);
    CHECK_RESULT(backlite_options_set_max_size(o, 0), BACKLITE_RESULT_INVALID_ARGUMENT);
    CHECK_RESULT(backlite_options_set_eviction_policy(o, BACKLITE_EVICTION_POLICY_FIRST_IN_FIRST_OUT),
                 BACKLITE_RESULT_OK);
    CHECK_RESULT(backlite_options_set_eviction_policy(o, 9), BACKLITE_RESULT_INVALID_ARGUMENT);
    CHECK_RESULT(backlite_options_set_eviction_policy_name(o, "nope"), BACKLITE_RESULT_INVALID_ARGUMENT);
    CHECK_RESULT(backlite_options_set_default_expiration_ms(o, 60000), BACKLITE_RESULT_OK);
    CHECK_RESULT(backlite_options_set_default_expiration_ms(o, -7), BACKLITE_RESULT_INVALID_ARGUMENT);
    backlite_storage *s = OPEN(":memory:", o);
    backlite_options_free(o);
    REQUIRE(s != NULL);
    CHECK_EQ(STATS(s).max_size, 50);
    CHECK_OK(backlite_storage_set(s, K("x"), K("v"), BACKLITE_EXPIRATION_DEFAULT, &err));
    backlite_buf b = {NULL, 0};
    int64_t left = 0;
    CHECK_OK(backlite_storage_get(s, K("x"), &b, &left, &err));
    CHECK(left > 0 && left <= 60000);
    backlite_buf_free(&b);
    CHECK_OK(backlite_storage_delete(s, K("x"), &err));
    CHECK_EQ(five_policy_victim(s), 'a'); /* still first-in-first-out */
    backlite_storage_free(s);
}

static void options_are_copied_at_open(void) {
    backlite_options *o = OPTIONS(100, BACKLITE_EVICTION_POLICY_LEAST_RECENTLY_USED);
    REQUIRE(o != NULL);
    backlite_storage *s1 = OPEN(":memory:", o);
    CHECK_RESULT(backlite_options_set_max_size(o, 200), BACKLITE_RESULT_OK);
    backlite_storage *s2 = OPEN(":memory:", o);
    backlite_options_free(o); /* the storages must not keep a pointer to it */
    REQUIRE(s1 != NULL && s2 != NULL);
    CHECK_EQ(STATS(s1).max_size, 100);
    CHECK_EQ(STATS(s2).max_size, 200);
    SET(s1, "k", "v");
    GET_EQ(s1, "k", "v");
    backlite_storage_free(s1);
    backlite_storage_free(s2);
}

int main(void) {
    h_begin();
    RUN(options_new_returns_an_object_and_free_accepts_null);
    RUN(default_options_give_1_gib_and_never_expiring_entries);
    RUN(default_policy_is_least_recently_used);
    RUN(null_options_at_open_mean_the_defaults);
    RUN(max_size_zero_is_rejected);
    RUN(max_size_is_reported_by_stats);
    RUN(eviction_policy_accepts_the_five_values_and_rejects_others);
    RUN(each_policy_value_evicts_its_own_victim);
    RUN(each_policy_name_selects_the_same_policy_as_its_value);
    RUN(eviction_policy_name_rejects_unknown_names);
    RUN(default_expiration_accepts_zero_positive_and_never_only);
    RUN(busy_timeout_and_version_tag_accept_ordinary_values);
    RUN(every_setter_rejects_null_options);
    RUN(a_rejected_value_leaves_the_option_unchanged);
    RUN(options_are_copied_at_open);
    return h_end();
}
