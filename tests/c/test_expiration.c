/*
 * Expiration. These are the only tests that sleep: entries expire after SHORT ms and
 * the test waits WAIT ms. A check that an entry is still there before SHORT ms have
 * passed is only made when the clock says they have not (slow runs, valgrind).
 */
#include "backlite.h"
#include "harness.h"

#define DEFAULT BACKLITE_EXPIRATION_DEFAULT
#define SHORT 100
#define WAIT 300

/* get(key) while less than `within` ms have passed since t0: must be live, time left in (0, within] */
static void expect_live_before_(const char *file, int line, backlite_storage *s, const char *key,
                                int64_t t0, int64_t within) {
    backlite_buf b = {NULL, 0};
    int64_t left = -100;
    backlite_error *err = NULL;
    backlite_result rc = backlite_storage_get(s, (const uint8_t *)key, strlen(key), &b, &left, &err);
    int64_t elapsed = h_now_ms() - t0;
    if (elapsed < within) {
        if (h_check_rc_(file, line, key, rc, BACKLITE_RESULT_OK, err) && !(left > 0 && left <= within))
            h_fail_(file, line, "%s: %" PRId64 " ms left, expected in (0, %" PRId64 "]", key, left, within);
    } else if (rc == BACKLITE_RESULT_OK && !(left >= 0 && left <= within)) {
        h_fail_(file, line, "%s: %" PRId64 " ms left, expected in [0, %" PRId64 "]", key, left, within);
    }
    backlite_error_free(err);
    backlite_buf_free(&b);
}
#define EXPECT_LIVE_BEFORE(s, key, t0, within) expect_live_before_(__FILE__, __LINE__, (s), (key), (t0), (within))

static int64_t time_left_(const char *file, int line, backlite_storage *s, const char *key) {
    backlite_buf b = {NULL, 0};
    int64_t left = -100;
    backlite_error *err = NULL;
    backlite_result rc = backlite_storage_get(s, (const uint8_t *)key, strlen(key), &b, &left, &err);
    h_check_rc_(file, line, key, rc, BACKLITE_RESULT_OK, err);
    backlite_error_free(err);
    backlite_buf_free(&b);
    return left;
}
#define TIME_LEFT(s, key) time_left_(__FILE__, __LINE__, (s), (key))

typedef struct {
    int n;
    char seen[16][16];
} key_list;

static int32_t list_keys(void *ud, const uint8_t *key, size_t len) {
    key_list *l = ud;
    if (l->n < 16 && len < 16) {
        memcpy(l->seen[l->n], key, len);
        l->seen[l->n][len] = 0;
    }
    l->n++;
    return 0;
}

static bool listed(const key_list *l, const char *key) {
    for (int i = 0; i < l->n && i < 16; i++)
        if (strcmp(l->seen[i], key) == 0) return true;
    return false;
}

static void an_entry_expires_after_its_expiration(void) {
    backlite_storage *s = OPEN(":memory:", NULL);
    REQUIRE(s != NULL);
    int64_t t0 = h_now_ms();
    SET_EXP(s, "k", "v", SHORT);
    SET(s, "stay", "v");
    EXPECT_LIVE_BEFORE(s, "k", t0, SHORT);
    h_sleep_ms(WAIT);
    GET_MISSING(s, "k");
    CHECK_RC(backlite_storage_contains(s, K("k"), &err), BACKLITE_RESULT_NOT_FOUND);
    CHECK_RC(backlite_storage_delete(s, K("k"), &err), BACKLITE_RESULT_NOT_FOUND);
    GET_EQ(s, "stay", "v");
    backlite_storage_free(s);
}

static void get_reports_the_time_left_or_never(void) {
    backlite_storage *s = OPEN(":memory:", NULL);
    REQUIRE(s != NULL);
    SET_EXP(s, "minute", "v", 60000);
    SET_EXP(s, "never", "v", NEVER);
    SET_EXP(s, "default", "v", DEFAULT); /* default options: never */
    int64_t left = TIME_LEFT(s, "minute");
    CHECK(left > 0 && left <= 60000);
    CHECK(left > 50000); /* not milliseconds read as seconds or so */
    CHECK_EQ(TIME_LEFT(s, "never"), NEVER);
    CHECK_EQ(TIME_LEFT(s, "default"), NEVER);
    /* expires_in_ms_out may be NULL */
    backlite_buf b = {NULL, 0};
    CHECK_OK(backlite_storage_get(s, K("minute"), &b, NULL, &err));
    CHECK_BUF_STR(b, "v");
    backlite_buf_free(&b);
    backlite_storage_free(s);
}

static void the_default_expiration_of_the_options_applies(void) {
    backlite_options *o = backlite_options_new();
    REQUIRE(o != NULL);
    CHECK_RESULT(backlite_options_set_default_expiration_ms(o, SHORT), BACKLITE_RESULT_OK);
    backlite_storage *s = OPEN(":memory:", o);
    backlite_options_free(o);
    REQUIRE(s != NULL);
    int64_t t0 = h_now_ms();
    SET_EXP(s, "default", "v", DEFAULT);
    SET_EXP(s, "never", "v", NEVER); /* NEVER overrides the default */
    SET_EXP(s, "minute", "v", 60000); /* so does an explicit time */
    EXPECT_LIVE_BEFORE(s, "default", t0, SHORT);
    CHECK_EQ(TIME_LEFT(s, "never"), NEVER);
    CHECK(TIME_LEFT(s, "minute") > SHORT);
    h_sleep_ms(WAIT);
    GET_MISSING(s, "default");
    CHECK_EQ(TIME_LEFT(s, "never"), NEVER);
    int64_t left = TIME_LEFT(s, "minute");
    CHECK(left > 0 && left <= 60000);
    backlite_storage_free(s);
}

static void expiration_zero_means_already_expired(void) {
    backlite_storage *s = OPEN(":memory:", NULL);
    REQUIRE(s != NULL);
    SET(s, "old", "an older value");
    CHECK_OK(backlite_storage_set(s, K("old"), K("new"), 0, &err));
    CHECK_OK(backlite_storage_set(s, K("fresh"), K("new"), 0, &err));
    GET_MISSING(s, "old"); /* not the older value either */
    GET_MISSING(s, "fresh");
    CHECK_RC(backlite_storage_contains(s, K("fresh"), &err), BACKLITE_RESULT_NOT_FOUND);
    key_list l = {0};
    CHECK_OK(backlite_storage_keys(s, list_keys, &l, &err));
    CHECK_EQ(l.n, 0);
    CHECK_EQ(STATS(s).count, 0);
    backlite_storage_free(s);

    /* a default expiration of 0 too */
    backlite_options *o = backlite_options_new();
    REQUIRE(o != NULL);
    CHECK_RESULT(backlite_options_set_default_expiration_ms(o, 0), BACKLITE_RESULT_OK);
    s = OPEN(":memory:", o);
    backlite_options_free(o);
    REQUIRE(s != NULL);
    SET_EXP(s, "d", "v", DEFAULT);
    GET_MISSING(s, "d");
    SET_EXP(s, "n", "v", NEVER);
    GET_EQ(s, "n", "v");
    backlite_storage_free(s);
}

static void expired_entries_are_not_listed_or_counted(void) {
    backlite_storage *s = OPEN(tmp_path("e.db"), NULL);
    REQUIRE(s != NULL);
    SET_EXP(s, "x1", "11", SHORT);
    SET_EXP(s, "x2", "22", SHORT);
    SET_EXP(s, "x3", "33", SHORT);
    SET(s, "live1", "1");
    SET(s, "live2", "2");
    h_sleep_ms(WAIT);
    /* no lookup of the expired keys before these checks */
    CHECK_EQ(STATS(s).count, 2);
    key_list l = {0};
    CHECK_OK(backlite_storage_keys(s, list_keys, &l, &err));
    CHECK_EQ(l.n, 2);
    CHECK(listed(&l, "live1"));
    CHECK(listed(&l, "live2"));
    backlite_stats before = STATS(s);
    GET_MISSING(s, "x1");
    GET_MISSING(s, "x2");
    backlite_stats after = STATS(s);
    CHECK_EQ(after.misses, before.misses + 2); /* an expired entry is a miss */
    CHECK_EQ(after.hits, before.hits);
    CHECK_EQ(after.count, 2);
    CHECK(after.expirations <= 3);
    backlite_storage_free(s);
}

static void expired_entries_make_room_without_evicting_live_ones(void) {
    backlite_storage *s = OPEN_WITH(":memory:", 30, BACKLITE_EVICTION_POLICY_FIRST_IN_FIRST_OUT);
    REQUIRE(s != NULL);
    SET_N(s, "k", 10); /* live, and the first one in */
    static const char ten[] = "xxxxxxxxxx";
    SET_EXP(s, "x", ten, SHORT);
    SET_EXP(s, "y", ten, SHORT);
    h_sleep_ms(WAIT);
    SET_N(s, "a", 10);
    SET_N(s, "b", 10);
    /* k, a, b are 30 bytes: both expired entries must be gone, k stays */
    CHECK(HAS(s, "k"));
    CHECK(HAS(s, "a"));
    CHECK(HAS(s, "b"));
    backlite_stats st = STATS(s);
    CHECK_EQ(st.count, 3);
    CHECK_EQ(st.total_size, 30);
    CHECK(st.expirations <= 2);
    CHECK_EQ(st.evictions + st.expirations, 2);
    backlite_storage_free(s);
}

static void a_bad_expiration_is_rejected_and_writes_nothing(void) {
    backlite_storage *s = OPEN(":memory:", NULL);
    REQUIRE(s != NULL);
    SET(s, "k", "old");
    const int64_t bad[] = {-3, -5, -1000, INT64_MIN};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK_RC(backlite_storage_set(s, K("k"), K("new"), bad[i], &err), BACKLITE_RESULT_INVALID_ARGUMENT);
        CHECK_RC(backlite_storage_set(s, K("other"), K("new"), bad[i], &err), BACKLITE_RESULT_INVALID_ARGUMENT);
    }
    GET_EQ(s, "k", "old");
    CHECK_EQ(TIME_LEFT(s, "k"), NEVER);
    GET_MISSING(s, "other");
    CHECK_EQ(STATS(s).count, 1);
    backlite_storage_free(s);
}

static void a_very_long_expiration_does_not_overflow(void) {
    backlite_storage *s = OPEN(":memory:", NULL);
    REQUIRE(s != NULL);
    SET_EXP(s, "max", "v", INT64_MAX);
    SET_EXP(s, "max-1", "v", INT64_MAX - 1);
    SET_EXP(s, "century", "v", 100LL * 365 * 24 * 3600 * 1000);
    int64_t left = TIME_LEFT(s, "max");
    CHECK(left > 0 || left == NEVER);
    left = TIME_LEFT(s, "max-1");
    CHECK(left > 0 || left == NEVER);
    left = TIME_LEFT(s, "century");
    CHECK(left > 99LL * 365 * 24 * 3600 * 1000 && left <= 100LL * 365 * 24 * 3600 * 1000);
    CHECK_EQ(STATS(s).count, 3);
    backlite_storage_free(s);
}

static void writing_a_key_again_replaces_its_expiration(void) {
    backlite_storage *s = OPEN(":memory:", NULL);
    REQUIRE(s != NULL);
    SET_EXP(s, "was-short", "1", SHORT);
    SET_EXP(s, "was-short", "2", NEVER);
    SET_EXP(s, "was-never", "1", NEVER);
    SET_EXP(s, "was-never", "2", SHORT);
    h_sleep_ms(WAIT);
    GET_EQ(s, "was-short", "2");
    CHECK_EQ(TIME_LEFT(s, "was-short"), NEVER);
    GET_MISSING(s, "was-never");
    SET(s, "was-never", "3"); /* an expired key is written again like any other */
    GET_EQ(s, "was-never", "3");
    backlite_storage_free(s);
}

static void expiration_holds_for_every_handle_on_the_file(void) {
    const char *path = tmp_path("shared.db");
    backlite_storage *h1 = OPEN(path, NULL);
    backlite_storage *h2 = OPEN(path, NULL);
    REQUIRE(h1 != NULL && h2 != NULL);
    int64_t t0 = h_now_ms();
    SET_EXP(h1, "k", "v", SHORT);
    SET_EXP(h1, "long", "v", 60000);
    EXPECT_LIVE_BEFORE(h2, "k", t0, SHORT);
    int64_t left = TIME_LEFT(h2, "long");
    CHECK(left > 0 && left <= 60000);
    h_sleep_ms(WAIT);
    GET_MISSING(h2, "k");
    GET_MISSING(h1, "k");
    CHECK_EQ(STATS(h2).count, 1);
    backlite_storage_free(h1);
    backlite_storage_free(h2);
    /* and after reopening */
    backlite_storage *h3 = OPEN(path, NULL);
    REQUIRE(h3 != NULL);
    GET_MISSING(h3, "k");
    left = TIME_LEFT(h3, "long");
    CHECK(left > 0 && left <= 60000);
    backlite_storage_free(h3);
}

int main(void) {
    h_begin();
    RUN(an_entry_expires_after_its_expiration);
    RUN(get_reports_the_time_left_or_never);
    RUN(the_default_expiration_of_the_options_applies);
    RUN(expiration_zero_means_already_expired);
    RUN(expired_entries_are_not_listed_or_counted);
    RUN(expired_entries_make_room_without_evicting_live_ones);
    RUN(a_bad_expiration_is_rejected_and_writes_nothing);
    RUN(a_very_long_expiration_does_not_overflow);
    RUN(writing_a_key_again_replaces_its_expiration);
    RUN(expiration_holds_for_every_handle_on_the_file);
    return h_end();
}
