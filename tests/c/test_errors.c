/*
 * The error contract: error objects, NULL handling of every function, err == NULL,
 * out-parameters untouched on failure, *_free(NULL).
 */
#include "backlite.h"
#include "harness.h"

#define NP BACKLITE_RESULT_NULL_PARAMETER

/* a pointer value that the library must never write over on success, nor free */
#define ERR_SENTINEL ((backlite_error *)(uintptr_t)0x10)

static int32_t compute_v(void *ud, backlite_sink *sink) {
    if (ud) ++*(int *)ud;
    return backlite_sink_write(sink, (const uint8_t *)"v", 1) == BACKLITE_RESULT_OK ? 0 : 1;
}

static int32_t visit_count(void *ud, const uint8_t *key, size_t len) {
    (void)key;
    (void)len;
    if (ud) ++*(int *)ud;
    return 0;
}

static void error_objects_carry_the_code_and_a_message(void) {
    backlite_error *e = NULL;
    CHECK_EQ(backlite_storage_get(NULL, K("k"), &(backlite_buf){NULL, 0}, NULL, &e), NP);
    REQUIRE(e != NULL);
    CHECK_EQ(backlite_error_result(e), NP);
    const char *m1 = backlite_error_message(e);
    const char *m2 = backlite_error_message(e);
    CHECK(m1 != NULL && m1[0] != '\0');
    CHECK(m1 == m2); /* valid until backlite_error_free: the same text each time */
    backlite_error_free(e);

    backlite_storage *s = OPEN_WITH(":memory:", 10, BACKLITE_EVICTION_POLICY_LEAST_RECENTLY_USED);
    REQUIRE(s != NULL);
    /* every kind of failure the API can be made to give here comes with its object */
    CHECK_RC(backlite_storage_set(s, K("k"), K("v"), -5, &err), BACKLITE_RESULT_INVALID_ARGUMENT);
    CHECK_RC(backlite_storage_set(s, K("k"), K("0123456789a"), NEVER, &err), BACKLITE_RESULT_TOO_LARGE);
    CHECK_RC(backlite_storage_set(s, NULL, 1, K("v"), NEVER, &err), NP);
    backlite_buf b = {NULL, 0};
    CHECK_RC(backlite_cached_call(s, K("k"), compute_v, NULL,
                                  &(backlite_barrier){NULL, (int32_t(*)(void *))NULL, NULL}, NEVER, &b, &err),
             NP);
    backlite_storage_free(s);
    const char *text = tmp_path("text.txt");
    REQUIRE(h_write_file(text, "text\n", 5));
    backlite_storage *t = NULL;
    CHECK_RC(backlite_storage_open(text, NULL, &t, &err), BACKLITE_RESULT_NOT_A_CACHE);
    CHECK_RC(backlite_storage_open(tmp_path("missing-dir/x.db"), NULL, &t, &err), BACKLITE_RESULT_IO);
}

static void a_miss_leaves_err_untouched(void) {
    /* A miss is an answer, not a failure (API.md, changes for 0.2): NOT_FOUND from get,
       delete and contains neither writes *err nor allocates an error object. The
       sentinel is no object: were it overwritten, the pointer would change; were it
       freed, valgrind and ASan would report the bad free. */
    backlite_storage *s = OPEN(":memory:", NULL);
    REQUIRE(s != NULL);
    SET(s, "live", "v");
    backlite_error *e = ERR_SENTINEL;
    uint8_t sentinel_byte = 0;
    backlite_buf b = {&sentinel_byte, 7};
    int64_t left = 777;
    const char *missing[] = {"missing", ""}; /* the empty key is a key like any other */
    for (size_t i = 0; i < sizeof missing / sizeof missing[0]; i++) {
        const uint8_t *k = (const uint8_t *)missing[i];
        size_t kl = strlen(missing[i]);
        CHECK_EQ(backlite_storage_get(s, k, kl, &b, &left, &e), BACKLITE_RESULT_NOT_FOUND);
        CHECK(e == ERR_SENTINEL);
        CHECK_EQ(backlite_storage_delete(s, k, kl, &e), BACKLITE_RESULT_NOT_FOUND);
        CHECK(e == ERR_SENTINEL);
        CHECK_EQ(backlite_storage_contains(s, k, kl, &e), BACKLITE_RESULT_NOT_FOUND);
        CHECK(e == ERR_SENTINEL);
    }
    /* a key just deleted, and one set already expired (0 ms), miss the same way */
    CHECK_EQ(backlite_storage_delete(s, K("live"), &e), BACKLITE_RESULT_OK);
    CHECK_EQ(backlite_storage_set(s, K("gone"), K("v"), 0, &e), BACKLITE_RESULT_OK);
    const char *gone[] = {"live", "gone"};
    for (size_t i = 0; i < 2; i++) {
        const uint8_t *k = (const uint8_t *)gone[i];
        size_t kl = strlen(gone[i]);
        CHECK_EQ(backlite_storage_get(s, k, kl, &b, NULL, &e), BACKLITE_RESULT_NOT_FOUND);
        CHECK_EQ(backlite_storage_contains(s, k, kl, &e), BACKLITE_RESULT_NOT_FOUND);
        CHECK_EQ(backlite_storage_delete(s, k, kl, &e), BACKLITE_RESULT_NOT_FOUND);
    }
    CHECK(e == ERR_SENTINEL);
    CHECK(b.data == &sentinel_byte && b.len == 7 && left == 777); /* no partial results */
    /* err == NULL is fine for a miss as for everything else */
    CHECK_EQ(backlite_storage_get(s, K("missing"), &b, NULL, NULL), BACKLITE_RESULT_NOT_FOUND);
    CHECK_EQ(backlite_storage_delete(s, K("missing"), NULL), BACKLITE_RESULT_NOT_FOUND);
    CHECK_EQ(backlite_storage_contains(s, K("missing"), NULL), BACKLITE_RESULT_NOT_FOUND);

    /* every other failure of the same calls still fills *err, over whatever it held */
    backlite_error *f = ERR_SENTINEL;
    CHECK_EQ(backlite_storage_get(s, K("missing"), NULL, NULL, &f), BACKLITE_RESULT_NULL_PARAMETER);
    REQUIRE(f != ERR_SENTINEL && f != NULL);
    CHECK_EQ(backlite_error_result(f), BACKLITE_RESULT_NULL_PARAMETER);
    backlite_error_free(f);
    f = ERR_SENTINEL;
    CHECK_EQ(backlite_storage_delete(s, NULL, 3, &f), BACKLITE_RESULT_NULL_PARAMETER);
    REQUIRE(f != ERR_SENTINEL && f != NULL);
    CHECK_EQ(backlite_error_result(f), BACKLITE_RESULT_NULL_PARAMETER);
    backlite_error_free(f);
    f = ERR_SENTINEL;
    CHECK_EQ(backlite_storage_contains(NULL, K("missing"), &f), BACKLITE_RESULT_NULL_PARAMETER);
    REQUIRE(f != ERR_SENTINEL && f != NULL);
    CHECK_EQ(backlite_error_result(f), BACKLITE_RESULT_NULL_PARAMETER);
    backlite_error_free(f);
    backlite_storage_free(s);
}

static void success_leaves_err_untouched(void) {
    backlite_error *e = ERR_SENTINEL;
    backlite_storage *s = NULL;
    CHECK_EQ(backlite_storage_open(":memory:", NULL, &s, &e), BACKLITE_RESULT_OK);
    REQUIRE(s != NULL);
    CHECK_EQ(backlite_storage_set(s, K("k"), K("v"), NEVER, &e), BACKLITE_RESULT_OK);
    backlite_buf b = {NULL, 0};
    CHECK_EQ(backlite_storage_get(s, K("k"), &b, NULL, &e), BACKLITE_RESULT_OK);
    backlite_buf_free(&b);
    backlite_entry entries[1] = {{(const uint8_t *)"m", 1, (const uint8_t *)"v", 1, NEVER}};
    CHECK_EQ(backlite_storage_set_many(s, entries, 1, &e), BACKLITE_RESULT_OK);
    CHECK_EQ(backlite_storage_contains(s, K("m"), &e), BACKLITE_RESULT_OK);
    CHECK_EQ(backlite_storage_delete(s, K("m"), &e), BACKLITE_RESULT_OK);
    CHECK_EQ(backlite_storage_keys(s, visit_count, NULL, &e), BACKLITE_RESULT_OK);
    backlite_stats st;
    CHECK_EQ(backlite_storage_stats(s, &st, &e), BACKLITE_RESULT_OK);
    CHECK_EQ(backlite_cached_call(s, K("c"), compute_v, NULL, NULL, NEVER, &b, &e), BACKLITE_RESULT_OK);
    backlite_buf_free(&b);
    CHECK_EQ(backlite_storage_clear(s, &e), BACKLITE_RESULT_OK);
    CHECK(e == ERR_SENTINEL);
    backlite_storage_free(s);
}

static void every_storage_function_rejects_a_null_storage(void) {
    uint8_t sentinel = 0;
    backlite_buf b = {&sentinel, 3};
    int64_t left = 12345;
    backlite_entry entries[1] = {{(const uint8_t *)"k", 1, (const uint8_t *)"v", 1, NEVER}};
    backlite_stats st;
    memset(&st, 0xAB, sizeof st);
    int calls = 0;
    CHECK_RC(backlite_storage_get(NULL, K("k"), &b, &left, &err), NP);
    CHECK_RC(backlite_storage_set(NULL, K("k"), K("v"), NEVER, &err), NP);
    CHECK_RC(backlite_storage_set_many(NULL, entries, 1, &err), NP);
    CHECK_RC(backlite_storage_delete(NULL, K("k"), &err), NP);
    CHECK_RC(backlite_storage_contains(NULL, K("k"), &err), NP);
    CHECK_RC(backlite_storage_keys(NULL, visit_count, &calls, &err), NP);
    CHECK_RC(backlite_storage_clear(NULL, &err), NP);
    CHECK_RC(backlite_storage_stats(NULL, &st, &err), NP);
    CHECK_RC(backlite_cached_call(NULL, K("k"), compute_v, &calls, NULL, NEVER, &b, &err), NP);
    /* the same with err == NULL */
    CHECK_EQ(backlite_storage_get(NULL, K("k"), &b, &left, NULL), NP);
    CHECK_EQ(backlite_storage_set(NULL, K("k"), K("v"), NEVER, NULL), NP);
    CHECK_EQ(backlite_storage_set_many(NULL, entries, 1, NULL), NP);
    CHECK_EQ(backlite_storage_delete(NULL, K("k"), NULL), NP);
    CHECK_EQ(backlite_storage_contains(NULL, K("k"), NULL), NP);
    CHECK_EQ(backlite_storage_keys(NULL, visit_count, &calls, NULL), NP);
    CHECK_EQ(backlite_storage_clear(NULL, NULL), NP);
    CHECK_EQ(backlite_storage_stats(NULL, &st, NULL), NP);
    CHECK_EQ(backlite_cached_call(NULL, K("k"), compute_v, &calls, NULL, NEVER, &b, NULL), NP);
    /* out-parameters untouched, callbacks never called */
    CHECK(b.data == &sentinel && b.len == 3);
    CHECK_EQ(left, 12345);
    backlite_stats ab;
    memset(&ab, 0xAB, sizeof ab);
    CHECK(memcmp(&st, &ab, sizeof st) == 0);
    CHECK_EQ(calls, 0);
}

static void a_null_key_or_value_with_a_length_is_rejected(void) {
    backlite_storage *s = OPEN(":memory:", NULL);
    REQUIRE(s != NULL);
    SET(s, "k", "v");
    uint8_t sentinel = 0;
    backlite_buf b = {&sentinel, 3};
    int64_t left = 12345;
    int calls = 0;
    CHECK_RC(backlite_storage_get(s, NULL, 1, &b, &left, &err), NP);
    CHECK_RC(backlite_storage_set(s, NULL, 1, K("v"), NEVER, &err), NP);
    CHECK_RC(backlite_storage_set(s, K("k"), NULL, 1, NEVER, &err), NP);
    CHECK_RC(backlite_storage_set(s, K("new"), NULL, 5, NEVER, &err), NP);
    CHECK_RC(backlite_storage_delete(s, NULL, 1, &err), NP);
    CHECK_RC(backlite_storage_contains(s, NULL, 1, &err), NP);
    CHECK_RC(backlite_cached_call(s, NULL, 1, compute_v, &calls, NULL, NEVER, &b, &err), NP);
    CHECK_EQ(backlite_storage_get(s, NULL, 1, &b, &left, NULL), NP);
    CHECK_EQ(backlite_storage_set(s, K("k"), NULL, 1, NEVER, NULL), NP);
    CHECK_EQ(backlite_storage_delete(s, NULL, 1, NULL), NP);
    CHECK(b.data == &sentinel && b.len == 3);
    CHECK_EQ(left, 12345);
    CHECK_EQ(calls, 0);
    /* nothing was written or removed */
    GET_EQ(s, "k", "v");
    GET_MISSING(s, "new");
    backlite_stats st = STATS(s);
    CHECK_EQ(st.count, 1);
    CHECK_EQ(st.total_size, 1);
    backlite_storage_free(s);
}

static void null_out_parameters_are_rejected(void) {
    backlite_storage *s = OPEN(":memory:", NULL);
    REQUIRE(s != NULL);
    SET(s, "k", "v");
    CHECK_RC(backlite_storage_get(s, K("k"), NULL, NULL, &err), NP);
    CHECK_RC(backlite_storage_get(s, K("missing"), NULL, NULL, &err), NP);
    CHECK_RC(backlite_storage_stats(s, NULL, &err), NP);
    CHECK_RC(backlite_cached_call(s, K("k"), compute_v, NULL, NULL, NEVER, NULL, &err), NP);
    CHECK_EQ(backlite_storage_get(s, K("k"), NULL, NULL, NULL), NP);
    CHECK_EQ(backlite_storage_stats(s, NULL, NULL), NP);
    backlite_storage *sentinel = (backlite_storage *)(uintptr_t)0x1234, *t = sentinel;
    CHECK_RC(backlite_storage_open(":memory:", NULL, NULL, &err), NP);
    CHECK_RC(backlite_storage_open(NULL, NULL, &t, &err), NP);
    CHECK(t == sentinel);
    CHECK_RC(backlite_storage_keys(s, NULL, NULL, &err), NP);
    GET_EQ(s, "k", "v");
    backlite_storage_free(s);
}

static void null_options_arguments_are_rejected(void) {
    CHECK_EQ(backlite_options_set_max_size(NULL, 1), NP);
    CHECK_EQ(backlite_options_set_eviction_policy(NULL, 0), NP);
    CHECK_EQ(backlite_options_set_eviction_policy_name(NULL, "least-recently-used"), NP);
    CHECK_EQ(backlite_options_set_default_expiration_ms(NULL, 0), NP);
    CHECK_EQ(backlite_options_set_busy_timeout_ms(NULL, 0), NP);
    CHECK_EQ(backlite_options_set_version_tag(NULL, "x"), NP);
    backlite_options *o = backlite_options_new();
    REQUIRE(o != NULL);
    CHECK_EQ(backlite_options_set_eviction_policy_name(o, NULL), NP);
    CHECK_EQ(backlite_options_set_version_tag(o, NULL), NP);
    backlite_options_free(o);
    CHECK_EQ(backlite_sink_write(NULL, (const uint8_t *)"x", 1), NP);
}

static void every_free_accepts_null(void) {
    backlite_error_free(NULL);
    backlite_options_free(NULL);
    backlite_storage_free(NULL);
    backlite_buf_free(NULL);
    backlite_buf b = {NULL, 0};
    backlite_buf_free(&b);
    CHECK(b.data == NULL && b.len == 0);
}

static void error_accessors_accept_null(void) {
    CHECK_EQ(backlite_error_result(NULL), NP);
    const char *m = backlite_error_message(NULL); /* must not crash; may be NULL or a text */
    (void)m;
}

static void an_error_outlives_the_storage_that_made_it(void) {
    backlite_storage *s = OPEN(":memory:", NULL);
    REQUIRE(s != NULL);
    backlite_error *e1 = NULL, *e2 = NULL;
    CHECK_EQ(backlite_storage_set(s, K("k"), K("v"), -9, &e1), BACKLITE_RESULT_INVALID_ARGUMENT);
    CHECK_EQ(backlite_storage_delete(s, NULL, 4, &e2), NP);
    backlite_storage_free(s);
    REQUIRE(e1 != NULL && e2 != NULL);
    CHECK(e1 != e2);
    /* both still readable (valgrind watches these reads) */
    const char *m1 = backlite_error_message(e1), *m2 = backlite_error_message(e2);
    CHECK(m1 != NULL && strlen(m1) > 0);
    CHECK(m2 != NULL && strlen(m2) > 0);
    CHECK_EQ(backlite_error_result(e1), BACKLITE_RESULT_INVALID_ARGUMENT);
    backlite_error_free(e2); /* in either order */
    CHECK_EQ(backlite_error_result(e1), BACKLITE_RESULT_INVALID_ARGUMENT);
    CHECK(strlen(backlite_error_message(e1)) > 0);
    backlite_error_free(e1);
}

static void failed_calls_do_not_change_the_cache(void) {
    backlite_storage *s = OPEN_WITH(":memory:", 20, BACKLITE_EVICTION_POLICY_LEAST_RECENTLY_USED);
    REQUIRE(s != NULL);
    SET_N(s, "a", 10);
    SET_N(s, "b", 10);
    backlite_stats before = STATS(s);
    CHECK_RC(backlite_storage_set(s, K("c"), K("v"), -4, &err), BACKLITE_RESULT_INVALID_ARGUMENT);
    CHECK_RC(backlite_storage_set(s, NULL, 2, K("v"), NEVER, &err), NP);
    CHECK_RC(backlite_storage_get(s, K("a"), NULL, NULL, &err), NP);
    backlite_stats after = STATS(s);
    CHECK_EQ(after.count, before.count);
    CHECK_EQ(after.total_size, before.total_size);
    CHECK_EQ(after.evictions, before.evictions);
    CHECK(HAS(s, "a"));
    CHECK(HAS(s, "b"));
    backlite_storage_free(s);
}

int main(void) {
    h_begin();
    RUN(error_objects_carry_the_code_and_a_message);
    RUN(a_miss_leaves_err_untouched);
    RUN(success_leaves_err_untouched);
    RUN(every_storage_function_rejects_a_null_storage);
    RUN(a_null_key_or_value_with_a_length_is_rejected);
    RUN(null_out_parameters_are_rejected);
    RUN(null_options_arguments_are_rejected);
    RUN(every_free_accepts_null);
    RUN(error_accessors_accept_null);
    RUN(an_error_outlives_the_storage_that_made_it);
    RUN(failed_calls_do_not_change_the_cache);
    return h_end();
}
