/*
 * Values around BACKLITE_MAX_VALUE_SIZE, the longest value stored (a little under
 * SQLite's 1,000,000,000-byte limit), with the default max_size of 1 GiB, which is
 * above it: a longer value is TOO_LARGE like one above max_size (never IO), and
 * backlite_cached_call still returns it. A value of exactly the limit is stored.
 *
 * The values are real: about 1 GB each, 3 GB at the peak. The buffers handed to set
 * come from calloc and are not written, so a refused value costs no memory unless the
 * library reads or copies it. Under valgrind (memcheck_test_large_values) every case
 * is skipped: shadowing gigabytes there takes minutes. The plain and asan_ runs cover
 * them.
 */
#include "backlite.h"
#include "harness.h"

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#endif
#endif
#ifndef RUNNING_ON_VALGRIND
#define RUNNING_ON_VALGRIND 0
#endif

#define NEVER BACKLITE_EXPIRATION_NEVER
#define OVER ((size_t)1000000001) /* the value: one byte over SQLite's limit */

#define SKIP_UNDER_VALGRIND()                                                         \
    do {                                                                              \
        if (RUNNING_ON_VALGRIND) SKIP("gigabyte values under valgrind");              \
    } while (0)

static void the_limit_is_under_sqlites_and_under_the_default_max_size(void) {
    CHECK(BACKLITE_MAX_VALUE_SIZE < 1000000000);
    CHECK(BACKLITE_MAX_VALUE_SIZE > 1000000000 - 4096);
    CHECK(BACKLITE_MAX_VALUE_SIZE < (1ull << 30)); /* the default max_size */
}

static void a_value_over_the_limit_is_too_large_and_removes_the_old_one(void) {
    SKIP_UNDER_VALGRIND();
    backlite_storage *s = OPEN(tmp_path("over.db"), NULL);
    REQUIRE(s != NULL);
    SET(s, "k", "old");
    SET(s, "other", "stays");
    uint8_t *big = calloc(OVER, 1);
    REQUIRE(big != NULL);
    backlite_error *err = NULL;
    CHECK_EQ(backlite_storage_set(s, K("k"), big, OVER, NEVER, &err), BACKLITE_RESULT_TOO_LARGE);
    REQUIRE(err != NULL);
    CHECK_EQ(backlite_error_result(err), BACKLITE_RESULT_TOO_LARGE);
    CHECK(strstr(backlite_error_message(err), "999999000") != NULL);
    backlite_error_free(err);
    GET_MISSING(s, "k");
    GET_EQ(s, "other", "stays");
    /* one byte over the limit too, not just over SQLite's */
    CHECK_RC(backlite_storage_set(s, K("k"), big, BACKLITE_MAX_VALUE_SIZE + 1, NEVER, &err),
             BACKLITE_RESULT_TOO_LARGE);
    /* already expired: nothing to store, so nothing is too large */
    CHECK_OK(backlite_storage_set(s, K("k"), big, OVER, 0, &err));
    backlite_entry e[2] = {
        {(const uint8_t *)"a", 1, (const uint8_t *)"1", 1, NEVER},
        {(const uint8_t *)"b", 1, big, OVER, NEVER},
    };
    CHECK_RC(backlite_storage_set_many(s, e, 2, &err), BACKLITE_RESULT_TOO_LARGE);
    GET_MISSING(s, "a");
    backlite_stats st = STATS(s);
    CHECK_EQ(st.count, 1);
    CHECK_EQ(st.total_size, 5);
    free(big);
    backlite_storage_free(s);
}

/* writes OVER bytes, a pattern of their offsets, a megabyte at a time */
static int32_t compute_over(void *user_data, backlite_sink *sink) {
    (void)user_data;
    static uint8_t chunk[1 << 20];
    for (size_t i = 0; i < sizeof chunk; i++) chunk[i] = (uint8_t)(i * 7);
    for (size_t done = 0; done < OVER;) {
        size_t n = OVER - done < sizeof chunk ? OVER - done : sizeof chunk;
        if (backlite_sink_write(sink, chunk, n) != BACKLITE_RESULT_OK) return 1;
        done += n;
    }
    return 0;
}

static void cached_call_returns_a_value_over_the_limit(void) {
    SKIP_UNDER_VALGRIND();
    backlite_storage *s = OPEN(tmp_path("call.db"), NULL);
    REQUIRE(s != NULL);
    backlite_buf b = {NULL, 0};
    CHECK_OK(backlite_cached_call(s, K("k"), compute_over, NULL, NULL, NEVER, &b, &err));
    CHECK_EQ(b.len, OVER);
    if (b.len == OVER) {
        size_t at[] = {0, 1, (1 << 20) + 3, OVER / 2, OVER - 1};
        for (size_t i = 0; i < sizeof at / sizeof at[0]; i++)
            CHECK_EQ(b.data[at[i]], (uint8_t)((at[i] % (1 << 20)) * 7));
    }
    backlite_buf_free(&b);
    CHECK_RC(backlite_storage_contains(s, K("k"), &err), BACKLITE_RESULT_NOT_FOUND);
    CHECK_EQ(STATS(s).count, 0);
    backlite_storage_free(s);
}

static void a_value_of_exactly_the_limit_is_stored(void) {
    SKIP_UNDER_VALGRIND();
    /* in memory: the point is SQLite's limit, not the disk's speed */
    backlite_storage *s = OPEN(":memory:", NULL);
    REQUIRE(s != NULL);
    size_t n = BACKLITE_MAX_VALUE_SIZE;
    uint8_t *v = calloc(n, 1);
    REQUIRE(v != NULL);
    v[0] = 1;
    v[n / 2] = 2;
    v[n - 1] = 3;
    CHECK_OK(backlite_storage_set(s, K("k"), v, n, NEVER, &err));
    free(v);
    backlite_buf b = {NULL, 0};
    CHECK_OK(backlite_storage_get(s, K("k"), &b, NULL, &err));
    CHECK_EQ(b.len, n);
    if (b.len == n) {
        CHECK_EQ(b.data[0], 1);
        CHECK_EQ(b.data[1], 0);
        CHECK_EQ(b.data[n / 2], 2);
        CHECK_EQ(b.data[n - 1], 3);
    }
    backlite_buf_free(&b);
    backlite_stats st = STATS(s);
    CHECK_EQ(st.count, 1);
    CHECK_EQ(st.total_size, n);
    CHECK_OK(backlite_storage_delete(s, K("k"), &err));
    backlite_storage_free(s);
}

int main(void) {
    h_begin();
    RUN(the_limit_is_under_sqlites_and_under_the_default_max_size);
    RUN(a_value_over_the_limit_is_too_large_and_removes_the_old_one);
    RUN(cached_call_returns_a_value_over_the_limit);
    RUN(a_value_of_exactly_the_limit_is_stored);
    return h_end();
}
