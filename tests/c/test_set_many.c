/* backlite_storage_set_many: one transaction, all or nothing, then eviction. */
#include "backlite.h"
#include "harness.h"

#define DEFAULT BACKLITE_EXPIRATION_DEFAULT

#define E(k, v, exp) ((backlite_entry){(const uint8_t *)(k), strlen(k), (const uint8_t *)(v), strlen(v), (exp)})

static const char TEN_A[] = "aaaaaaaaaa", TEN_B[] = "bbbbbbbbbb", TEN_C[] = "cccccccccc",
                  TEN_D[] = "dddddddddd", TEN_E[] = "eeeeeeeeee";

static void set_many_writes_every_entry(void) {
    backlite_storage *s = OPEN(":memory:", NULL);
    REQUIRE(s != NULL);
    const uint8_t nul_key[] = {0, 'k', 0};
    const uint8_t bin_val[] = {0, 255, 0};
    backlite_entry e[5] = {
        E("one", "1", NEVER),
        E("two", "22", 60000),
        E("three", "333", DEFAULT),
        {nul_key, sizeof nul_key, bin_val, sizeof bin_val, NEVER},
        {NULL, 0, NULL, 0, NEVER}, /* the empty key with the empty value */
    };
    CHECK_OK(backlite_storage_set_many(s, e, 5, &err));
    GET_EQ(s, "one", "1");
    GET_EQ(s, "two", "22");
    GET_EQ(s, "three", "333");
    backlite_buf b = {NULL, 0};
    int64_t left = 0;
    CHECK_OK(backlite_storage_get(s, nul_key, sizeof nul_key, &b, &left, &err));
    CHECK_BUF(b, bin_val, sizeof bin_val);
    CHECK_EQ(left, NEVER);
    backlite_buf_free(&b);
    CHECK_OK(backlite_storage_get(s, K("two"), &b, &left, &err));
    CHECK(left > 0 && left <= 60000);
    backlite_buf_free(&b);
    CHECK_OK(backlite_storage_get(s, NULL, 0, &b, NULL, &err));
    CHECK_EQ(b.len, 0);
    backlite_buf_free(&b);
    backlite_stats st = STATS(s);
    CHECK_EQ(st.count, 5);
    CHECK_EQ(st.total_size, 1 + 2 + 3 + 3 + 0);
    CHECK_EQ(st.evictions, 0);
    backlite_storage_free(s);
}

static void set_many_replaces_existing_values(void) {
    backlite_storage *s = OPEN(":memory:", NULL);
    REQUIRE(s != NULL);
    SET(s, "a", "old a");
    SET(s, "b", "old b");
    backlite_entry e[2] = {E("a", "new", NEVER), E("c", "c", NEVER)};
    CHECK_OK(backlite_storage_set_many(s, e, 2, &err));
    GET_EQ(s, "a", "new");
    GET_EQ(s, "b", "old b");
    GET_EQ(s, "c", "c");
    backlite_stats st = STATS(s);
    CHECK_EQ(st.count, 3);
    CHECK_EQ(st.total_size, 3 + 5 + 1);
    backlite_storage_free(s);
}

static void set_many_of_no_entries_does_nothing(void) {
    backlite_storage *s = OPEN(":memory:", NULL);
    REQUIRE(s != NULL);
    SET(s, "a", "1");
    backlite_entry e[1] = {E("b", "2", NEVER)};
    CHECK_OK(backlite_storage_set_many(s, e, 0, &err));
    GET_MISSING(s, "b");
    CHECK_EQ(STATS(s).count, 1);
    backlite_storage_free(s);
}

/* the cache after a failed batch: a = "old a", nothing else */
static void expect_untouched(backlite_storage *s) {
    GET_EQ(s, "a", "old a");
    GET_MISSING(s, "b");
    GET_MISSING(s, "c");
    backlite_stats st = STATS(s);
    CHECK_EQ(st.count, 1);
    CHECK_EQ(st.total_size, 5);
}

static void set_many_with_a_bad_expiration_writes_nothing(void) {
    backlite_storage *s = OPEN(":memory:", NULL);
    REQUIRE(s != NULL);
    SET(s, "a", "old a");
    backlite_entry e[3] = {E("a", "new", NEVER), E("b", "2", NEVER), E("c", "3", -5)};
    CHECK_RC(backlite_storage_set_many(s, e, 3, &err), BACKLITE_RESULT_INVALID_ARGUMENT);
    expect_untouched(s);
    e[2].expiration_ms = INT64_MIN;
    CHECK_RC(backlite_storage_set_many(s, e, 3, &err), BACKLITE_RESULT_INVALID_ARGUMENT);
    expect_untouched(s);
    e[2].expiration_ms = NEVER;
    e[0].expiration_ms = -3; /* the first entry bad */
    CHECK_RC(backlite_storage_set_many(s, e, 3, &err), BACKLITE_RESULT_INVALID_ARGUMENT);
    expect_untouched(s);
    backlite_storage_free(s);
}

static void set_many_with_a_null_key_or_value_writes_nothing(void) {
    backlite_storage *s = OPEN(":memory:", NULL);
    REQUIRE(s != NULL);
    SET(s, "a", "old a");
    backlite_entry e[3] = {E("a", "new", NEVER), E("b", "2", NEVER), {NULL, 3, (const uint8_t *)"3", 1, NEVER}};
    CHECK_RC(backlite_storage_set_many(s, e, 3, &err), BACKLITE_RESULT_NULL_PARAMETER);
    expect_untouched(s);
    e[2] = (backlite_entry){(const uint8_t *)"c", 1, NULL, 5, NEVER};
    CHECK_RC(backlite_storage_set_many(s, e, 3, &err), BACKLITE_RESULT_NULL_PARAMETER);
    expect_untouched(s);
    CHECK_RC(backlite_storage_set_many(s, NULL, 3, &err), BACKLITE_RESULT_NULL_PARAMETER);
    expect_untouched(s);
    CHECK_RC(backlite_storage_set_many(NULL, e, 2, &err), BACKLITE_RESULT_NULL_PARAMETER);
    CHECK_EQ(backlite_storage_set_many(NULL, e, 2, NULL), BACKLITE_RESULT_NULL_PARAMETER);
    expect_untouched(s);
    backlite_storage_free(s);
}

static void set_many_evicts_entries_of_its_own_batch(void) {
    backlite_storage *s = OPEN_WITH(":memory:", 30, BACKLITE_EVICTION_POLICY_FIRST_IN_FIRST_OUT);
    REQUIRE(s != NULL);
    backlite_entry e[5] = {E("a", TEN_A, NEVER), E("b", TEN_B, NEVER), E("c", TEN_C, NEVER),
                           E("d", TEN_D, NEVER), E("e", TEN_E, NEVER)};
    CHECK_OK(backlite_storage_set_many(s, e, 5, &err));
    CHECK(!HAS(s, "a"));
    CHECK(!HAS(s, "b"));
    GET_EQ(s, "c", TEN_C);
    GET_EQ(s, "d", TEN_D);
    GET_EQ(s, "e", TEN_E);
    backlite_stats st = STATS(s);
    CHECK_EQ(st.count, 3);
    CHECK_EQ(st.total_size, 30);
    CHECK_EQ(st.evictions, 2);
    backlite_storage_free(s);
}

static void set_many_evicts_older_entries_by_the_policy(void) {
    backlite_storage *s = OPEN_WITH(":memory:", 40, BACKLITE_EVICTION_POLICY_LEAST_RECENTLY_USED);
    REQUIRE(s != NULL);
    SET_N(s, "x", 10);
    SET_N(s, "y", 10);
    GET_EQ(s, "x", "xxxxxxxxxx");
    backlite_entry e[3] = {E("a", TEN_A, NEVER), E("b", TEN_B, NEVER), E("c", TEN_C, NEVER)};
    CHECK_OK(backlite_storage_set_many(s, e, 3, &err)); /* 50 bytes: y, the oldest access, goes */
    CHECK(!HAS(s, "y"));
    CHECK(HAS(s, "x"));
    CHECK(HAS(s, "a"));
    CHECK(HAS(s, "b"));
    CHECK(HAS(s, "c"));
    backlite_stats st = STATS(s);
    CHECK_EQ(st.count, 4);
    CHECK_EQ(st.total_size, 40);
    CHECK_EQ(st.evictions, 1);
    backlite_storage_free(s);
}

static void set_many_writes_count_as_new_sets(void) {
    backlite_storage *s = OPEN_WITH(":memory:", 30, BACKLITE_EVICTION_POLICY_FIRST_IN_FIRST_OUT);
    REQUIRE(s != NULL);
    SET_N(s, "a", 10);
    SET_N(s, "b", 10);
    SET_N(s, "c", 10);
    backlite_entry again[1] = {E("a", TEN_A, NEVER)};
    CHECK_OK(backlite_storage_set_many(s, again, 1, &err)); /* a is now the latest set */
    backlite_entry d[1] = {E("d", TEN_D, NEVER)};
    CHECK_OK(backlite_storage_set_many(s, d, 1, &err));
    CHECK(HAS(s, "a"));
    CHECK(!HAS(s, "b"));
    CHECK(HAS(s, "c"));
    CHECK(HAS(s, "d"));
    backlite_storage_free(s);
}

static void set_many_applies_each_entry_expiration(void) {
    backlite_options *o = backlite_options_new();
    REQUIRE(o != NULL);
    CHECK_RESULT(backlite_options_set_default_expiration_ms(o, 30000), BACKLITE_RESULT_OK);
    backlite_storage *s = OPEN(":memory:", o);
    backlite_options_free(o);
    REQUIRE(s != NULL);
    backlite_entry e[4] = {E("zero", "0", 0), E("default", "d", DEFAULT), E("never", "n", NEVER),
                           E("minute", "m", 60000)};
    CHECK_OK(backlite_storage_set_many(s, e, 4, &err));
    GET_MISSING(s, "zero");
    backlite_buf b = {NULL, 0};
    int64_t left = 0;
    CHECK_OK(backlite_storage_get(s, K("default"), &b, &left, &err));
    CHECK(left > 0 && left <= 30000);
    backlite_buf_free(&b);
    CHECK_OK(backlite_storage_get(s, K("never"), &b, &left, &err));
    CHECK_EQ(left, NEVER);
    backlite_buf_free(&b);
    CHECK_OK(backlite_storage_get(s, K("minute"), &b, &left, &err));
    CHECK(left > 30000 && left <= 60000);
    backlite_buf_free(&b);
    CHECK_EQ(STATS(s).count, 3);
    backlite_storage_free(s);
}

static void set_many_copies_its_inputs(void) {
    backlite_storage *s = OPEN(":memory:", NULL);
    REQUIRE(s != NULL);
    char k[] = "key", v[] = "value";
    backlite_entry e[1] = {E(k, v, NEVER)};
    CHECK_OK(backlite_storage_set_many(s, e, 1, &err));
    memcpy(k, "KEY", 3);
    memcpy(v, "VALUE", 5);
    memset(e, 0xAB, sizeof e);
    GET_EQ(s, "key", "value");
    backlite_storage_free(s);
}

int main(void) {
    h_begin();
    RUN(set_many_writes_every_entry);
    RUN(set_many_replaces_existing_values);
    RUN(set_many_of_no_entries_does_nothing);
    RUN(set_many_with_a_bad_expiration_writes_nothing);
    RUN(set_many_with_a_null_key_or_value_writes_nothing);
    RUN(set_many_evicts_entries_of_its_own_batch);
    RUN(set_many_evicts_older_entries_by_the_policy);
    RUN(set_many_writes_count_as_new_sets);
    RUN(set_many_applies_each_entry_expiration);
    RUN(set_many_copies_its_inputs);
    return h_end();
}
