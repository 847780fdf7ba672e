/*
 * Fifth probe round of the local cache contract (API.md without the remote tier), kept
 * as tests: hits made before a key is written again (by this handle, another handle,
 * another process) do not count for the new value; an already expired write removes
 * the older value from set, set_many and cached_call alike; expired rows go before any
 * live entry under every policy; a smaller max_size at reopen is met by the next set;
 * a key over BACKLITE_MAX_KEY_SIZE (or SIZE_MAX) is INVALID_ARGUMENT for every call that
 * takes one, and a NULL key of length 0 the empty key; result texts; options at
 * garbage; a default expiration of 0; a compute filling its own key; an outer sink
 * used from an inner compute; time left never above what was asked; each handle
 * bounding by its own max_size; set_many's own batch under LIFO and MRU; a held lease
 * is no entry; callbacks on the calling thread; lifetime counts through close orders
 * and a child using the parent's handle; and a random model of every call that reads
 * or writes (sets, already expired and 1 ms sets, batches, the five kinds of hits,
 * leases, deletes, clears, reopening with another policy and max_size) through one
 * handle, two, and child processes. All passed before.
 */
#include <pthread.h>

#include "backlite.h"
#include "harness.h"

static int32_t compute_v(void *ud, backlite_sink *sink) {
    ++*(int *)ud;
    return backlite_sink_write(sink, (const uint8_t *)"v", 1) == BACKLITE_RESULT_OK ? 0 : 1;
}

/* LFU: hits taken before a key is written again do not count for the new value */
static void lfu_hits_before_an_overwrite_do_not_count_for_the_new_value(void) {
    backlite_storage *s = OPEN_WITH(tmp_path("lfu-over.db"), 20, BACKLITE_EVICTION_POLICY_LEAST_FREQUENTLY_USED);
    REQUIRE(s != NULL);
    SET_N(s, "a", 10);
    SET_N(s, "b", 10);
    for (int i = 0; i < 3; i++) GET_EQ(s, "a", "aaaaaaaaaa");
    SET_N(s, "a", 10); /* a new set: 0 hits */
    GET_EQ(s, "b", "bbbbbbbbbb"); /* b: 1 hit */
    SET_N(s, "c", 10);
    CHECK(!HAS(s, "a"));
    CHECK(HAS(s, "b"));
    CHECK(HAS(s, "c"));
    backlite_storage_free(s);
}

/* the same with the hits taken by a second handle of the process */
static void lfu_hits_of_another_handle_before_an_overwrite_do_not_count(void) {
    const char *path = tmp_path("lfu-over2.db");
    backlite_storage *s = OPEN_WITH(path, 20, BACKLITE_EVICTION_POLICY_LEAST_FREQUENTLY_USED);
    backlite_storage *t = OPEN_WITH(path, 20, BACKLITE_EVICTION_POLICY_LEAST_FREQUENTLY_USED);
    REQUIRE(s != NULL && t != NULL);
    SET_N(s, "a", 10);
    SET_N(s, "b", 10);
    for (int i = 0; i < 3; i++) GET_EQ(t, "a", "aaaaaaaaaa");
    SET_N(s, "a", 10);
    GET_EQ(s, "b", "bbbbbbbbbb");
    backlite_storage_free(t); /* t's hits reach the file now at the latest */
    SET_N(s, "c", 10);
    CHECK(!HAS(s, "a"));
    CHECK(HAS(s, "b"));
    CHECK(HAS(s, "c"));
    backlite_storage_free(s);
}

/* hits of another process before the overwrite */
static void lfu_hits_of_another_process_before_an_overwrite_do_not_count(void) {
    if (h_under_valgrind()) SKIP("forks children that leave with _exit");
    const char *path = tmp_path("lfu-over3.db");
    backlite_storage *s = OPEN_WITH(path, 20, BACKLITE_EVICTION_POLICY_LEAST_FREQUENTLY_USED);
    REQUIRE(s != NULL);
    SET_N(s, "a", 10);
    SET_N(s, "b", 10);
    int p1[2], p2[2];
    REQUIRE(pipe(p1) == 0 && pipe(p2) == 0);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        backlite_storage *c = NULL;
        backlite_options *o = backlite_options_new();
        backlite_options_set_max_size(o, 20);
        backlite_options_set_eviction_policy(o, BACKLITE_EVICTION_POLICY_LEAST_FREQUENTLY_USED);
        if (backlite_storage_open(path, o, &c, NULL) != 0) _exit(2);
        backlite_options_free(o);
        for (int i = 0; i < 3; i++) {
            backlite_buf b = {NULL, 0};
            if (backlite_storage_get(c, K("a"), &b, NULL, NULL) != 0) _exit(3);
            backlite_buf_free(&b);
        }
        char x = 'x';
        (void)!write(p1[1], &x, 1);
        (void)!read(p2[0], &x, 1);
        backlite_storage_free(c);
        _exit(0);
    }
    char x;
    (void)!read(p1[0], &x, 1);
    SET_N(s, "a", 10);
    GET_EQ(s, "b", "bbbbbbbbbb");
    (void)!write(p2[1], &x, 1);
    CHECK_EQ(CHILD_EXIT_CODE(pid), 0);
    SET_N(s, "c", 10);
    CHECK(!HAS(s, "a"));
    CHECK(HAS(s, "b"));
    CHECK(HAS(s, "c"));
    backlite_storage_free(s);
}

/* an already expired set removes the older value, also in a batch */
static void an_already_expired_write_removes_the_older_value_everywhere(void) {
    backlite_storage *s = OPEN(tmp_path("exp0.db"), NULL);
    REQUIRE(s != NULL);
    SET(s, "k", "v1");
    SET_EXP(s, "k", "v2", 0);
    GET_MISSING(s, "k");
    CHECK(!HAS(s, "k"));
    SET(s, "m", "v1");
    backlite_entry e[2] = {{(const uint8_t *)"m", 1, (const uint8_t *)"v2", 2, NEVER},
                           {(const uint8_t *)"m", 1, (const uint8_t *)"v3", 2, 0}};
    CHECK_OK(backlite_storage_set_many(s, e, 2, &err));
    GET_MISSING(s, "m");
    SET(s, "n", "v1");
    int n = 0;
    backlite_buf b = {NULL, 0};
    CHECK_OK(backlite_storage_delete(s, K("n"), &err));
    CHECK_OK(backlite_cached_call(s, K("n"), compute_v, &n, NULL, 0, &b, &err));
    CHECK_BUF_STR(b, "v");
    backlite_buf_free(&b);
    GET_MISSING(s, "n");
    CHECK_OK(backlite_cached_call(s, K("n"), compute_v, &n, NULL, 0, &b, &err));
    backlite_buf_free(&b);
    CHECK_EQ(n, 2);
    backlite_stats st = STATS(s);
    CHECK_EQ(st.count, 0);
    CHECK_EQ(st.total_size, 0);
    backlite_storage_free(s);
}

/* under every policy, an expired entry goes before a live one is evicted */
static void expired_entries_go_first_under_every_policy(void) {
    for (int p = 0; p < 5; p++) {
        char name[32];
        snprintf(name, sizeof name, "expfirst%d.db", p);
        backlite_storage *s = OPEN_WITH(tmp_path(name), 30, p);
        REQUIRE(s != NULL);
        uint8_t v[10];
        memset(v, 'x', 10);
        SET_BYTES(s, "a", v, 10, NEVER);
        SET_BYTES(s, "b", v, 10, 30);
        SET_BYTES(s, "c", v, 10, NEVER);
        GET_BYTES_EQ(s, "a", v, 10);
        GET_BYTES_EQ(s, "c", v, 10);
        h_sleep_ms(60);
        SET_BYTES(s, "d", v, 10, NEVER);
        CHECK(HAS(s, "a"));
        CHECK(HAS(s, "c"));
        CHECK(HAS(s, "d"));
        backlite_stats st = STATS(s);
        CHECK_EQ(st.count, 3);
        CHECK_EQ(st.total_size, 30);
        CHECK_EQ(st.evictions, 0);
        backlite_storage_free(s);
    }
}

/* a file reopened with a smaller max_size is brought under it by the next set */
static void a_smaller_max_size_at_reopen_is_met_at_the_next_set(void) {
    const char *path = tmp_path("shrink.db");
    backlite_storage *s = OPEN_WITH(path, 100, BACKLITE_EVICTION_POLICY_LEAST_RECENTLY_USED);
    REQUIRE(s != NULL);
    char k[8];
    for (int i = 0; i < 10; i++) {
        snprintf(k, sizeof k, "k%d", i);
        SET_N(s, k, 10);
    }
    backlite_storage_free(s);
    s = OPEN_WITH(path, 50, BACKLITE_EVICTION_POLICY_LEAST_RECENTLY_USED);
    REQUIRE(s != NULL);
    backlite_stats st = STATS(s);
    CHECK_EQ(st.total_size, 100);
    CHECK_EQ(st.max_size, 50);
    SET_N(s, "x", 10);
    st = STATS(s);
    CHECK_EQ(st.total_size, 50);
    CHECK_EQ(st.count, 5);
    CHECK_EQ(st.evictions, 6);
    for (int i = 0; i < 10; i++) {
        snprintf(k, sizeof k, "k%d", i);
        CHECK(HAS(s, k) == (i >= 6));
    }
    backlite_storage_free(s);
}

/* a key longer than the limit is refused before it is read, by every call */
static int32_t visit_chunk(void *ud, const uint8_t *c, size_t n) {
    (void)ud;
    (void)c;
    (void)n;
    return 0;
}
static void a_key_over_the_limit_is_invalid_everywhere(void) {
    backlite_storage *s = OPEN(tmp_path("longkey.db"), NULL);
    REQUIRE(s != NULL);
    static const uint8_t small[4] = "abc";
    size_t lens[] = {(size_t)BACKLITE_MAX_KEY_SIZE + 1, SIZE_MAX, (size_t)PTRDIFF_MAX + 1};
    for (int i = 0; i < 3; i++) {
        size_t L = lens[i];
        backlite_buf b = {NULL, 0};
        backlite_lease *lease = NULL;
        backlite_value_reader *r = NULL;
        int n = 0;
        CHECK_RC(backlite_storage_get(s, small, L, &b, NULL, &err), BACKLITE_RESULT_INVALID_ARGUMENT);
        CHECK_RC(backlite_storage_set(s, small, L, small, 1, NEVER, &err), BACKLITE_RESULT_INVALID_ARGUMENT);
        CHECK_RC(backlite_storage_delete(s, small, L, &err), BACKLITE_RESULT_INVALID_ARGUMENT);
        CHECK_RC(backlite_storage_contains(s, small, L, &err), BACKLITE_RESULT_INVALID_ARGUMENT);
        CHECK_RC(backlite_cached_call(s, small, L, compute_v, &n, NULL, NEVER, &b, &err),
                 BACKLITE_RESULT_INVALID_ARGUMENT);
        CHECK_RC(backlite_cached_call_exclusive(s, small, L, compute_v, &n, NEVER, 0, &b, &err),
                 BACKLITE_RESULT_INVALID_ARGUMENT);
        CHECK_RC(backlite_lease_try_acquire(s, small, L, 1000, &b, &lease, &err), BACKLITE_RESULT_INVALID_ARGUMENT);
        CHECK_RC(backlite_lease_step(s, small, L, 0, &b, &lease, &err), BACKLITE_RESULT_INVALID_ARGUMENT);
        CHECK_RC(backlite_storage_get_chunks(s, small, L, visit_chunk, NULL, NULL, &err),
                 BACKLITE_RESULT_INVALID_ARGUMENT);
        CHECK_RC(backlite_storage_open_reader(s, small, L, &r, NULL, NULL, &err), BACKLITE_RESULT_INVALID_ARGUMENT);
        backlite_entry e[1] = {{small, L, small, 1, NEVER}};
        CHECK_RC(backlite_storage_set_many(s, e, 1, &err), BACKLITE_RESULT_INVALID_ARGUMENT);
        CHECK_EQ(n, 0);
        CHECK(lease == NULL);
        CHECK(r == NULL);
    }
    backlite_stats st = STATS(s);
    CHECK_EQ(st.hits + st.misses, 0);
    backlite_storage_free(s);
}

/* a NULL key of length 0 is the empty key, for every call */
static void a_null_key_of_length_zero_is_the_empty_key_everywhere(void) {
    backlite_storage *s = OPEN(tmp_path("nullkey.db"), NULL);
    REQUIRE(s != NULL);
    backlite_buf b = {NULL, 0};
    int n = 0;
    CHECK_RC(backlite_storage_get(s, NULL, 0, &b, NULL, &err), BACKLITE_RESULT_NOT_FOUND);
    CHECK_RC(backlite_storage_contains(s, NULL, 0, &err), BACKLITE_RESULT_NOT_FOUND);
    CHECK_RC(backlite_storage_delete(s, NULL, 0, &err), BACKLITE_RESULT_NOT_FOUND);
    CHECK_OK(backlite_storage_set(s, NULL, 0, NULL, 0, NEVER, &err));
    CHECK_OK(backlite_storage_get(s, NULL, 0, &b, NULL, &err));
    CHECK(b.data != NULL);
    CHECK_EQ(b.len, 0);
    backlite_buf_free(&b);
    CHECK_OK(backlite_storage_get(s, (const uint8_t *)"", 0, &b, NULL, &err));
    backlite_buf_free(&b);
    CHECK_OK(backlite_cached_call(s, NULL, 0, compute_v, &n, NULL, NEVER, &b, &err));
    CHECK_EQ(b.len, 0);
    CHECK_EQ(n, 0);
    backlite_buf_free(&b);
    CHECK_OK(backlite_storage_delete(s, NULL, 0, &err));
    CHECK_OK(backlite_cached_call_exclusive(s, NULL, 0, compute_v, &n, NEVER, 0, &b, &err));
    CHECK_BUF_STR(b, "v");
    backlite_buf_free(&b);
    GET_EQ(s, "", "v");
    backlite_entry e[1] = {{NULL, 0, NULL, 0, NEVER}};
    CHECK_OK(backlite_storage_set_many(s, e, 1, &err));
    GET_EQ(s, "", "");
    CHECK_OK(backlite_storage_set_many(s, NULL, 0, &err));
    CHECK_RC(backlite_storage_set_many(s, NULL, 1, &err), BACKLITE_RESULT_NULL_PARAMETER);
    backlite_storage_free(s);
}

/* result texts */
static void every_result_code_has_its_own_text_and_unknown_ones_one_too(void) {
    const char *seen[15];
    for (int i = 0; i <= 14; i++) {
        seen[i] = backlite_result_str(i);
        REQUIRE(seen[i] != NULL);
        CHECK(seen[i][0] != 0);
        for (int j = 0; j < i; j++) CHECK(strcmp(seen[i], seen[j]) != 0);
    }
    int32_t odd[] = {-1, 15, 100, INT32_MIN, INT32_MAX};
    for (int i = 0; i < 5; i++) {
        const char *t = backlite_result_str(odd[i]);
        REQUIRE(t != NULL);
        CHECK(t[0] != 0);
    }
    CHECK_EQ(backlite_error_result(NULL), BACKLITE_RESULT_NULL_PARAMETER);
    CHECK(backlite_error_message(NULL) != NULL);
}

/* options at garbage */
static void options_refuse_every_out_of_range_value(void) {
    backlite_options *o = backlite_options_new();
    REQUIRE(o != NULL);
    int32_t pols[] = {-1, 5, 6, INT32_MAX, INT32_MIN};
    for (int i = 0; i < 5; i++)
        CHECK_RESULT(backlite_options_set_eviction_policy(o, pols[i]), BACKLITE_RESULT_INVALID_ARGUMENT);
    int64_t exps[] = {-1, -3, INT64_MIN};
    for (int i = 0; i < 3; i++)
        CHECK_RESULT(backlite_options_set_default_expiration_ms(o, exps[i]), BACKLITE_RESULT_INVALID_ARGUMENT);
    CHECK_RESULT(backlite_options_set_default_expiration_ms(o, INT64_MAX), BACKLITE_RESULT_OK);
    CHECK_RESULT(backlite_options_set_max_size(o, 0), BACKLITE_RESULT_INVALID_ARGUMENT);
    CHECK_RESULT(backlite_options_set_max_size(o, (uint64_t)INT64_MAX + 1), BACKLITE_RESULT_INVALID_ARGUMENT);
    CHECK_RESULT(backlite_options_set_max_size(o, UINT64_MAX), BACKLITE_RESULT_INVALID_ARGUMENT);
    CHECK_RESULT(backlite_options_set_lease_ms(o, 0), BACKLITE_RESULT_INVALID_ARGUMENT);
    CHECK_RESULT(backlite_options_set_lease_ms(o, -1), BACKLITE_RESULT_INVALID_ARGUMENT);
    CHECK_RESULT(backlite_options_set_lease_ms(o, INT64_MIN), BACKLITE_RESULT_INVALID_ARGUMENT);
    CHECK_RESULT(backlite_options_set_file_threshold(o, 0), BACKLITE_RESULT_INVALID_ARGUMENT);
    CHECK_RESULT(backlite_options_set_file_threshold(o, -2), BACKLITE_RESULT_INVALID_ARGUMENT);
    CHECK_RESULT(backlite_options_set_file_threshold(o, INT64_MIN), BACKLITE_RESULT_INVALID_ARGUMENT);
    CHECK_RESULT(backlite_options_set_version_tag(o, NULL), BACKLITE_RESULT_NULL_PARAMETER);
    CHECK_RESULT(backlite_options_set_version_tag(o, "\xff\xfe"), BACKLITE_RESULT_INVALID_ARGUMENT);
    CHECK_RESULT(backlite_options_set_eviction_policy_name(o, NULL), BACKLITE_RESULT_NULL_PARAMETER);
    CHECK_RESULT(backlite_options_set_eviction_policy_name(o, ""), BACKLITE_RESULT_INVALID_ARGUMENT);
    CHECK_RESULT(backlite_options_set_eviction_policy_name(o, "\xff"), BACKLITE_RESULT_INVALID_ARGUMENT);
    backlite_storage *s = OPEN(tmp_path("garbage-opts.db"), o);
    backlite_options_free(o);
    REQUIRE(s != NULL);
    SET(s, "k", "v");
    backlite_buf b = {NULL, 0};
    int64_t left = 0;
    CHECK_OK(backlite_storage_get(s, K("k"), &b, &left, &err));
    CHECK_EQ(left, NEVER);
    backlite_buf_free(&b);
    SET_EXP(s, "d", "v", BACKLITE_EXPIRATION_DEFAULT);
    CHECK_OK(backlite_storage_get(s, K("d"), &b, &left, &err));
    CHECK(left > 0 || left == NEVER);
    backlite_buf_free(&b);
    backlite_stats st = STATS(s);
    CHECK_EQ(st.max_size, 1073741824u);
    backlite_storage_free(s);
}

/* a default expiration of 0 makes every default set already expired */
static void a_default_expiration_of_zero_stores_nothing_live(void) {
    backlite_options *o = backlite_options_new();
    REQUIRE(o != NULL);
    CHECK_RESULT(backlite_options_set_default_expiration_ms(o, 0), BACKLITE_RESULT_OK);
    backlite_storage *s = OPEN(tmp_path("def0.db"), o);
    backlite_options_free(o);
    REQUIRE(s != NULL);
    SET_EXP(s, "a", "v", BACKLITE_EXPIRATION_DEFAULT);
    GET_MISSING(s, "a");
    SET(s, "b", "v");
    GET_EQ(s, "b", "v");
    int n = 0;
    backlite_buf b = {NULL, 0};
    CHECK_OK(backlite_cached_call(s, K("c"), compute_v, &n, NULL, BACKLITE_EXPIRATION_DEFAULT, &b, &err));
    backlite_buf_free(&b);
    CHECK_OK(backlite_cached_call(s, K("c"), compute_v, &n, NULL, BACKLITE_EXPIRATION_DEFAULT, &b, &err));
    backlite_buf_free(&b);
    CHECK_EQ(n, 2);
    backlite_stats st = STATS(s);
    CHECK_EQ(st.count, 1);
    backlite_storage_free(s);
}

/* a compute that calls cached_call on its own key */
typedef struct {
    backlite_storage *s;
    int depth;
    int calls;
} reent;
static int32_t compute_reent(void *ud, backlite_sink *sink) {
    reent *r = ud;
    r->calls++;
    if (r->depth == 0) {
        r->depth++;
        backlite_buf b = {NULL, 0};
        backlite_result rc = backlite_cached_call(r->s, K("k"), compute_reent, r, NULL, NEVER, &b, NULL);
        if (rc != BACKLITE_RESULT_OK || b.len != 5 || memcmp(b.data, "inner", 5) != 0) return 7;
        backlite_buf_free(&b);
        return backlite_sink_write(sink, K("outer")) == BACKLITE_RESULT_OK ? 0 : 1;
    }
    return backlite_sink_write(sink, K("inner")) == BACKLITE_RESULT_OK ? 0 : 1;
}
static void a_compute_that_fills_its_own_key_is_overwritten_by_its_result(void) {
    backlite_storage *s = OPEN(tmp_path("reent.db"), NULL);
    REQUIRE(s != NULL);
    reent r = {s, 0, 0};
    backlite_buf b = {NULL, 0};
    CHECK_OK(backlite_cached_call(s, K("k"), compute_reent, &r, NULL, NEVER, &b, &err));
    CHECK_BUF_STR(b, "outer");
    backlite_buf_free(&b);
    CHECK_EQ(r.calls, 2);
    GET_EQ(s, "k", "outer");
    backlite_stats st = STATS(s);
    CHECK_EQ(st.count, 1);
    CHECK_EQ(st.total_size, 5);
    backlite_storage_free(s);
}

/* a compute that writes to an outer compute's sink from an inner compute */
typedef struct {
    backlite_storage *s;
    backlite_sink *outer;
} nest;
static int32_t compute_inner(void *ud, backlite_sink *sink) {
    nest *n = ud;
    (void)sink;
    return backlite_sink_write(n->outer, K("from-inner")) == BACKLITE_RESULT_OK ? 0 : 1;
}
static int32_t compute_outer(void *ud, backlite_sink *sink) {
    nest *n = ud;
    n->outer = sink;
    backlite_buf b = {NULL, 0};
    if (backlite_cached_call(n->s, K("inner"), compute_inner, n, NULL, NEVER, &b, NULL) != 0) return 1;
    backlite_buf_free(&b);
    return backlite_sink_write(sink, K("+outer")) == BACKLITE_RESULT_OK ? 0 : 1;
}
static void an_outer_sink_is_usable_inside_an_inner_compute(void) {
    backlite_storage *s = OPEN(tmp_path("nest.db"), NULL);
    REQUIRE(s != NULL);
    nest n = {s, NULL};
    backlite_buf b = {NULL, 0};
    CHECK_OK(backlite_cached_call(s, K("outer"), compute_outer, &n, NULL, NEVER, &b, &err));
    CHECK_BUF_STR(b, "from-inner+outer");
    backlite_buf_free(&b);
    GET_EQ(s, "inner", "");
    GET_EQ(s, "outer", "from-inner+outer");
    backlite_storage_free(s);
}

/* the time left of a hit is above 0 and never above the expiration asked for */
static void time_left_never_exceeds_what_was_asked(void) {
    backlite_storage *s = OPEN(tmp_path("left.db"), NULL);
    REQUIRE(s != NULL);
    int64_t asks[] = {1000, 60000, 5, INT64_MAX, INT64_MAX - 1000};
    for (int i = 0; i < 5; i++) {
        char k[8];
        snprintf(k, sizeof k, "k%d", i);
        SET_EXP(s, k, "v", asks[i]);
        backlite_buf b = {NULL, 0};
        int64_t left = 0;
        backlite_result rc = backlite_storage_get(s, K(k), &b, &left, NULL);
        if (rc == BACKLITE_RESULT_OK) {
            CHECK(left > 0);
            CHECK(left <= asks[i]);
            backlite_buf_free(&b);
        } else {
            CHECK(asks[i] < 100);
        }
    }
    backlite_storage_free(s);
}


static int32_t count_keys(void *ud, const uint8_t *k, size_t n) {
    (void)k;
    (void)n;
    ++*(int *)ud;
    return 0;
}

/* an expired entry not removed yet is not counted */
static void stats_right_after_an_expiry(void) {
    backlite_storage *s = OPEN(tmp_path("expstats.db"), NULL);
    REQUIRE(s != NULL);
    SET_N(s, "a", 10);
    SET_BYTES(s, "b", "bbbbbbb", 7, 20);
    h_sleep_ms(50);
    backlite_stats st = STATS(s);
    CHECK_EQ(st.count, 1);
    backlite_storage_free(s);
}

/* two handles with their own max_size on one file: each bounds by its own */
static void each_handle_bounds_the_file_by_its_own_max_size(void) {
    const char *path = tmp_path("twomax.db");
    backlite_storage *big = OPEN_WITH(path, 100, 0);
    backlite_storage *small = OPEN_WITH(path, 30, 0);
    REQUIRE(big != NULL && small != NULL);
    char k[8];
    for (int i = 0; i < 8; i++) {
        snprintf(k, sizeof k, "k%d", i);
        SET_N(big, k, 10);
    }
    CHECK_EQ(STATS(big).total_size, 80);
    SET_N(small, "s", 10);
    backlite_stats st = STATS(small);
    CHECK_EQ(st.total_size, 30);
    CHECK_EQ(st.max_size, 30);
    CHECK_EQ(st.evictions, 6);
    CHECK_EQ(STATS(big).max_size, 100);
    CHECK(HAS(big, "k6") && HAS(big, "k7") && HAS(big, "s"));
    backlite_storage_free(small);
    backlite_storage_free(big);
}

static pthread_t main_thread;
static int off_thread;
static int32_t c_thread(void *ud, backlite_sink *sink) {
    (void)ud;
    if (!pthread_equal(pthread_self(), main_thread)) off_thread++;
    return backlite_sink_write(sink, K("v")) == 0 ? 0 : 1;
}
static int32_t k_thread(void *ud, const uint8_t *k, size_t n) {
    (void)ud, (void)k, (void)n;
    if (!pthread_equal(pthread_self(), main_thread)) off_thread++;
    return 0;
}
static int32_t ch_thread(void *ud, const uint8_t *k, size_t n) {
    (void)ud, (void)k, (void)n;
    if (!pthread_equal(pthread_self(), main_thread)) off_thread++;
    return 0;
}
static int32_t l_thread(void *ud) {
    (void)ud;
    if (!pthread_equal(pthread_self(), main_thread)) off_thread++;
    return 0;
}
static void u_thread(void *ud) {
    (void)ud;
    if (!pthread_equal(pthread_self(), main_thread)) off_thread++;
}
static void callbacks_run_on_the_calling_thread(void) {
    main_thread = pthread_self();
    off_thread = 0;
    backlite_storage *s = OPEN(tmp_path("threadcb.db"), NULL);
    REQUIRE(s != NULL);
    backlite_buf b = {NULL, 0};
    backlite_barrier bar = {NULL, l_thread, u_thread};
    CHECK_OK(backlite_cached_call(s, K("a"), c_thread, NULL, &bar, NEVER, &b, &err));
    backlite_buf_free(&b);
    CHECK_OK(backlite_cached_call_exclusive(s, K("b"), c_thread, NULL, NEVER, 1000, &b, &err));
    backlite_buf_free(&b);
    CHECK_OK(backlite_storage_keys(s, k_thread, NULL, &err));
    CHECK_OK(backlite_storage_get_chunks(s, K("a"), ch_thread, NULL, NULL, &err));
    CHECK_EQ(off_thread, 0);
    backlite_storage_free(s);
}

static void set_many_evicts_its_own_latest_under_lifo_and_mru(void) {
    for (int p = 0; p < 5; p++) {
        char name[32];
        snprintf(name, sizeof name, "smpol%d.db", p);
        backlite_storage *s = OPEN_WITH(tmp_path(name), 30, p);
        REQUIRE(s != NULL);
        SET_N(s, "a", 10);
        SET_N(s, "b", 10);
        static uint8_t v[10];
        memset(v, 'z', 10);
        backlite_entry e[2] = {{(const uint8_t *)"c", 1, v, 10, NEVER}, {(const uint8_t *)"d", 1, v, 10, NEVER}};
        CHECK_OK(backlite_storage_set_many(s, e, 2, &err));
        bool a = HAS(s, "a"), b = HAS(s, "b"), c = HAS(s, "c"), d = HAS(s, "d");
        if (p == 2 || p == 4) {
            CHECK(a && b && c && !d);
        } else {
            CHECK(!a && b && c && d);
        }
        CHECK_EQ(STATS(s).total_size, 30);
        backlite_storage_free(s);
    }
}

static void a_held_lease_is_no_entry(void) {
    backlite_storage *s = OPEN_WITH(tmp_path("lease-ent.db"), 30, BACKLITE_EVICTION_POLICY_LEAST_RECENTLY_USED);
    REQUIRE(s != NULL);
    backlite_buf b = {NULL, 0};
    backlite_lease *lease = NULL;
    CHECK_RC(backlite_lease_try_acquire(s, K("L"), 60000, &b, &lease, &err), BACKLITE_RESULT_NOT_FOUND);
    REQUIRE(lease != NULL);
    CHECK(!HAS(s, "L"));
    int n = 0;
    CHECK_OK(backlite_storage_keys(s, count_keys, &n, &err));
    CHECK_EQ(n, 0);
    backlite_stats st = STATS(s);
    CHECK_EQ(st.count, 0);
    CHECK_EQ(st.total_size, 0);
    GET_MISSING(s, "L");
    CHECK_RC(backlite_storage_delete(s, K("L"), &err), BACKLITE_RESULT_NOT_FOUND);
    SET_N(s, "a", 10);
    SET_N(s, "b", 10);
    SET_N(s, "c", 10);
    SET_N(s, "d", 10);
    CHECK(!HAS(s, "a"));
    CHECK_OK(backlite_lease_fulfill(lease, K("0123456789"), NEVER, &err));
    CHECK(!HAS(s, "b"));
    GET_EQ(s, "L", "0123456789");
    st = STATS(s);
    CHECK_EQ(st.count, 3);
    CHECK_EQ(st.total_size, 30);
    backlite_storage_free(s);
}

static void buf_free_of_a_buf_without_data_resets_it(void) {
    backlite_buf b = {NULL, 5};
    backlite_buf_free(&b);
    CHECK(b.data == NULL);
    CHECK_EQ(b.len, 0);
    backlite_buf_free(NULL);
}

/* ---- a wider random model */
#define NK 12
typedef struct {
    bool live;
    size_t size;
    uint64_t hits, last, set;
    int gen; /* bumps with each set: the value's bytes */
} mentry;
typedef struct {
    mentry e[NK];
    uint64_t clock, total;
} mfile;
typedef struct {
    int policy;
    uint64_t max;
    backlite_storage *s;
} mhandle;

static void mv_fill(uint8_t *v, int k, int gen, size_t n) {
    for (size_t i = 0; i < n; i++) v[i] = (uint8_t)(k * 31 + gen * 7 + i);
}
static void m_drop(mfile *m, int k) {
    if (m->e[k].live) {
        m->e[k].live = false;
        m->total -= m->e[k].size;
    }
}
static int m_victim(mfile *m, int policy, int except) {
    int v = -1;
    for (int i = 0; i < NK; i++) {
        if (!m->e[i].live || i == except) continue;
        if (v < 0) {
            v = i;
            continue;
        }
        mentry *c = &m->e[i], *b = &m->e[v];
        bool better = false;
        switch (policy) {
        case 0: better = c->last < b->last; break;
        case 1: better = c->hits < b->hits || (c->hits == b->hits && c->last < b->last); break;
        case 2: better = c->last > b->last; break;
        case 3: better = c->set < b->set; break;
        case 4: better = c->set > b->set; break;
        }
        if (better) v = i;
    }
    return v;
}
static void m_put(mfile *m, int k, size_t size) {
    m->e[k].live = true;
    m->e[k].size = size;
    m->e[k].hits = 0;
    m->e[k].last = m->e[k].set = ++m->clock;
    m->e[k].gen++;
    m->total += size;
}
/* returns the expected result */
static backlite_result m_set1(mfile *m, mhandle *h, int k, size_t size, bool expired) {
    m_drop(m, k);
    if (expired) return BACKLITE_RESULT_OK; /* nothing to store: nothing too large */
    if (size > h->max) return BACKLITE_RESULT_TOO_LARGE;
    while (m->total + size > h->max) {
        int v = m_victim(m, h->policy, k);
        if (v < 0) break;
        m_drop(m, v);
    }
    m_put(m, k, size);
    return BACKLITE_RESULT_OK;
}
static void m_hit(mfile *m, int k) {
    m->e[k].hits++;
    m->e[k].last = ++m->clock;
}

static size_t computed_size;
static int computed_k, computed_gen;
static int32_t compute_model(void *ud, backlite_sink *sink) {
    (void)ud;
    uint8_t v[64];
    mv_fill(v, computed_k, computed_gen, computed_size);
    return backlite_sink_write(sink, v, computed_size) == 0 ? 0 : 1;
}
typedef struct {
    uint8_t buf[128];
    size_t n;
} gathered;
static int32_t gather(void *ud, const uint8_t *c, size_t n) {
    gathered *g = ud;
    if (g->n + n <= sizeof g->buf) memcpy(g->buf + g->n, c, n);
    g->n += n;
    return 0;
}

static bool m_compare(mfile *m, backlite_storage *s, int step, const char *what) {
    backlite_stats st = STATS(s);
    uint64_t live = 0;
    for (int j = 0; j < NK; j++) live += m->e[j].live;
    bool ok = true;
    if (st.count != live || st.total_size != m->total) {
        h_fail_(__FILE__, __LINE__, "step %d (%s): count %" PRIu64 " total %" PRIu64 ", model %" PRIu64 " %" PRIu64,
                step, what, st.count, st.total_size, live, m->total);
        ok = false;
    }
    for (int j = 0; j < NK && ok; j++) {
        char kj[16];
        snprintf(kj, sizeof kj, "k%d", j);
        if (h_has_(__FILE__, __LINE__, s, kj, strlen(kj)) != m->e[j].live) {
            h_fail_(__FILE__, __LINE__, "step %d (%s): %s is %s in the library", step, what, kj,
                    m->e[j].live ? "gone" : "live");
            ok = false;
        }
    }
    return ok;
}

static int model_step(mfile *m, mhandle *h, uint64_t *rng, int step, char *what, size_t wn) {
    backlite_storage *s = h->s;
    int k = (int)h_rand_below(rng, NK);
    char key[16];
    snprintf(key, sizeof key, "k%d", k);
    unsigned op = (unsigned)h_rand_below(rng, 100);
    uint8_t v[64];
    backlite_error *err = NULL;
    backlite_result rc, want;
    backlite_buf b = {NULL, 0};
    if (op < 25) {
        size_t size = h_rand_below(rng, 100) < 4 ? h->max + 1 : h_rand_below(rng, 26);
        bool expired = h_rand_below(rng, 100) < 8;
        bool soon = !expired && h_rand_below(rng, 100) < 10; /* expires 1 ms later: its row stays a while */
        int gen = m->e[k].gen + 1;
        mv_fill(v, k, gen, size < 64 ? size : 64);
        snprintf(what, wn, "set(%s, %zu%s)", key, size, expired ? ", expired" : "");
        want = m_set1(m, h, k, size, expired);
        if (want == BACKLITE_RESULT_OK && !expired) m->e[k].gen = gen; /* m_put bumped */
        if (size > 64) {
            uint8_t *big = calloc(1, size);
            rc = backlite_storage_set(s, K(key), big, size, expired ? 0 : NEVER, &err);
            free(big);
        } else {
            rc = backlite_storage_set(s, K(key), v, size, expired ? 0 : soon ? 1 : NEVER, &err);
        }
        if (soon && want == BACKLITE_RESULT_OK) {
            h_sleep_ms(3);
            m_drop(m, k);
        }
        if (want == BACKLITE_RESULT_OK && !expired) {
            m->e[k].gen = gen;
        }
        h_check_rc_(__FILE__, __LINE__, what, rc, want, err);
    } else if (op < 35) {
        int n = 1 + (int)h_rand_below(rng, 4);
        backlite_entry e[4];
        uint8_t vals[4][96]; /* up to h->max + 1 bytes (at most 80) */
        char keys[4][16];
        int ks[4];
        size_t sizes[4];
        bool exps[4];
        bool too_large = false;
        for (int i = 0; i < n; i++) {
            ks[i] = (int)h_rand_below(rng, NK);
            snprintf(keys[i], 16, "k%d", ks[i]);
            sizes[i] = h_rand_below(rng, 200) < 3 ? h->max + 1 : h_rand_below(rng, 20);
            exps[i] = h_rand_below(rng, 100) < 10;
            /* One that would be stored fails the batch; an already expired one stores
               nothing, so nothing of it is too large (as for set). */
            if (sizes[i] > h->max && !exps[i]) too_large = true;
        }
        snprintf(what, wn, "set_many(%d)", n);
        if (too_large) {
            /* Refused whole, no value stored; the too-large entries' keys lose their
               older values (API.md "Too large"), nothing is evicted. */
            for (int i = 0; i < n; i++)
                if (sizes[i] > h->max && !exps[i]) m_drop(m, ks[i]);
            want = BACKLITE_RESULT_TOO_LARGE;
            for (int i = 0; i < n; i++) {
                e[i] = (backlite_entry){(const uint8_t *)keys[i], strlen(keys[i]), vals[0], sizes[i] > 64 ? 0 : sizes[i], NEVER};
            }
            uint8_t *big = calloc(1, h->max + 1);
            for (int i = 0; i < n; i++)
                if (sizes[i] > h->max) e[i].value = big, e[i].value_len = sizes[i];
            for (int i = 0; i < n; i++) e[i].expiration_ms = exps[i] ? 0 : NEVER;
            rc = backlite_storage_set_many(s, e, (size_t)n, &err);
            free(big);
        } else {
            for (int i = 0; i < n; i++) {
                int k2 = ks[i];
                m_drop(m, k2);
                if (!exps[i]) {
                    m_put(m, k2, sizes[i]);
                }
                mv_fill(vals[i], k2, m->e[k2].gen, sizes[i]);
                e[i] = (backlite_entry){(const uint8_t *)keys[i], strlen(keys[i]), vals[i], sizes[i], exps[i] ? 0 : NEVER};
            }
            while (m->total > h->max) {
                int vi = m_victim(m, h->policy, -1);
                m_drop(m, vi);
            }
            want = BACKLITE_RESULT_OK;
            rc = backlite_storage_set_many(s, e, (size_t)n, &err);
        }
        h_check_rc_(__FILE__, __LINE__, what, rc, want, err);
    } else if (op < 65) {
        int kind = (int)h_rand_below(rng, 5);
        static const char *kinds[] = {"get", "cached_call", "exclusive", "get_chunks", "open_reader"};
        snprintf(what, wn, "%s(%s)", kinds[kind], key);
        bool live = m->e[k].live;
        size_t size = m->e[k].size;
        int gen = m->e[k].gen;
        gathered g = {{0}, 0};
        const uint8_t *got = NULL;
        size_t got_n = 0;
        if (kind == 1 || kind == 2) {
            computed_k = k;
            computed_size = h_rand_below(rng, 20);
            computed_gen = m->e[k].gen + 1;
        }
        if (kind == 0) {
            rc = backlite_storage_get(s, K(key), &b, NULL, &err);
            got = b.data, got_n = b.len;
        } else if (kind == 1) {
            rc = backlite_cached_call(s, K(key), compute_model, NULL, NULL, NEVER, &b, &err);
            got = b.data, got_n = b.len;
        } else if (kind == 2) {
            rc = backlite_cached_call_exclusive(s, K(key), compute_model, NULL, NEVER, 0, &b, &err);
            got = b.data, got_n = b.len;
        } else if (kind == 3) {
            rc = backlite_storage_get_chunks(s, K(key), gather, &g, NULL, &err);
            got = g.buf, got_n = g.n;
        } else {
            backlite_value_reader *r = NULL;
            rc = backlite_storage_open_reader(s, K(key), &r, NULL, NULL, &err);
            if (rc == 0) {
                size_t nread = 0;
                while (backlite_value_reader_read(r, g.buf + g.n, sizeof g.buf - g.n, &nread, NULL) == 0 && nread)
                    g.n += nread;
                backlite_value_reader_free(r);
            }
            got = g.buf, got_n = g.n;
        }
        if (live) {
            m_hit(m, k);
            want = BACKLITE_RESULT_OK;
            mv_fill(v, k, gen, size);
            if (h_check_rc_(__FILE__, __LINE__, what, rc, want, err)) h_check_bytes_(__FILE__, __LINE__, what, got, got_n, v, size);
        } else if (kind == 1 || kind == 2) {
            want = m_set1(m, h, k, computed_size, false);
            m->e[k].gen = computed_gen;
            mv_fill(v, k, computed_gen, computed_size);
            if (h_check_rc_(__FILE__, __LINE__, what, rc, want, err)) h_check_bytes_(__FILE__, __LINE__, what, got, got_n, v, computed_size);
        } else {
            h_check_rc_(__FILE__, __LINE__, what, rc, BACKLITE_RESULT_NOT_FOUND, err);
        }
        backlite_buf_free(&b);
    } else if (op < 72) {
        snprintf(what, wn, "lease(%s)", key);
        backlite_lease *lease = NULL;
        rc = backlite_lease_try_acquire(s, K(key), 60000, &b, &lease, &err);
        if (m->e[k].live) {
            m_hit(m, k);
            h_check_rc_(__FILE__, __LINE__, what, rc, BACKLITE_RESULT_OK, err);
            backlite_buf_free(&b);
        } else {
            h_check_rc_(__FILE__, __LINE__, what, rc, BACKLITE_RESULT_NOT_FOUND, err);
            size_t size = h_rand_below(rng, 20);
            int gen = m->e[k].gen + 1;
            mv_fill(v, k, gen, size);
            backlite_error_free(err);
            err = NULL;
            if (lease) {
                rc = backlite_lease_fulfill(lease, v, size, NEVER, &err);
                want = m_set1(m, h, k, size, false);
                m->e[k].gen = gen;
                h_check_rc_(__FILE__, __LINE__, "fulfill", rc, want, err);
            }
        }
    } else if (op < 82) {
        snprintf(what, wn, "delete(%s)", key);
        rc = backlite_storage_delete(s, K(key), &err);
        h_check_rc_(__FILE__, __LINE__, what, rc, m->e[k].live ? BACKLITE_RESULT_OK : BACKLITE_RESULT_NOT_FOUND, err);
        m_drop(m, k);
    } else if (op < 84) {
        snprintf(what, wn, "clear");
        rc = backlite_storage_clear(s, &err);
        h_check_rc_(__FILE__, __LINE__, what, rc, BACKLITE_RESULT_OK, err);
        for (int j = 0; j < NK; j++) m_drop(m, j);
    } else if (op < 94) {
        snprintf(what, wn, "contains(%s)", key);
        bool got = h_has_(__FILE__, __LINE__, s, key, strlen(key));
        if (got != m->e[k].live) h_fail_(__FILE__, __LINE__, "step %d: contains(%s) %d", step, key, got);
    } else {
        return 1; /* reopen */
    }
    backlite_error_free(err);
    return 0;
}

static void m_reopen(mhandle *h, const char *path, uint64_t *rng) {
    backlite_storage_free(h->s);
    h->policy = (int)h_rand_below(rng, 5);
    h->max = 20 + h_rand_below(rng, 60);
    h->s = OPEN_WITH(path, h->max, h->policy);
}

static void a_wide_random_model_holds(const char *path, uint64_t seed, bool two_handles, bool processes) {
    mfile m;
    memset(&m, 0, sizeof m);
    uint64_t rng = seed;
    mhandle hs[2] = {{0, 60, NULL}, {0, 60, NULL}};
    int nh = two_handles ? 2 : 1;
    for (int i = 0; i < nh; i++) m_reopen(&hs[i], path, &rng);
    char what[128];
    int failed_before = atomic_load(&h_st()->failures);
    for (int step = 0; step < 800; step++) {
        if (processes && step % 100 == 50) {
            /* a child takes 20 steps through a handle of its own, then closes */
            int pfd[2];
            REQUIRE(pipe(pfd) == 0);
            /* this process's hits reach the file when its handles close */
            for (int i = 0; i < nh; i++) {
                backlite_storage_free(hs[i].s);
                hs[i].s = NULL;
            }
            pid_t pid = fork();
            REQUIRE(pid >= 0);
            if (pid == 0) {
                mhandle c = {0, 60, NULL};
                m_reopen(&c, path, &rng);
                for (int i = 0; i < 20; i++) {
                    if (model_step(&m, &c, &rng, step, what, sizeof what)) m_reopen(&c, path, &rng);
                }
                backlite_storage_free(c.s);
                (void)!write(pfd[1], &m, sizeof m);
                (void)!write(pfd[1], &rng, sizeof rng);
                _exit(atomic_load(&h_st()->failures) == 0 ? 0 : 1);
            }
            close(pfd[1]);
            CHECK(read(pfd[0], &m, sizeof m) == (ssize_t)sizeof m);
            CHECK(read(pfd[0], &rng, sizeof rng) == (ssize_t)sizeof rng);
            close(pfd[0]);
            CHECK_EQ(CHILD_EXIT_CODE(pid), 0);
            for (int i = 0; i < nh; i++) hs[i].s = OPEN_WITH(path, hs[i].max, hs[i].policy);
            if (atomic_load(&h_st()->failures) != failed_before) break;
        }
        mhandle *h = &hs[h_rand_below(&rng, (uint64_t)nh)];
        if (model_step(&m, h, &rng, step, what, sizeof what)) {
            m_reopen(h, path, &rng);
            snprintf(what, sizeof what, "reopen(policy %d, max %" PRIu64 ")", h->policy, h->max);
        }
        if (!m_compare(&m, h->s, step, what)) break;
        if (atomic_load(&h_st()->failures) != failed_before) {
            fprintf(stderr, "first failure at step %d: %s\n", step, what);
            break;
        }
    }
    for (int i = 0; i < nh; i++) backlite_storage_free(hs[i].s);
}

static int seeds(int dflt) {
    const char *e = getenv("PROBE_SEEDS");
    return e ? atoi(e) : h_under_valgrind() ? 1 : dflt;
}
static void wide_model_one_handle(void) {
    for (int i = 0; i < seeds(4); i++) {
        char name[32];
        snprintf(name, sizeof name, "wide1-%d.db", i);
        a_wide_random_model_holds(tmp_path(name), 100 + (uint64_t)i, false, false);
    }
}
static void wide_model_two_handles(void) {
    for (int i = 0; i < seeds(4); i++) {
        char name[32];
        snprintf(name, sizeof name, "wide2-%d.db", i);
        a_wide_random_model_holds(tmp_path(name), 200 + (uint64_t)i, true, false);
    }
}
static void wide_model_with_processes(void) {
    if (h_under_valgrind()) SKIP("forks children that leave with _exit");
    for (int i = 0; i < seeds(3); i++) {
        char name[32];
        snprintf(name, sizeof name, "wide3-%d.db", i);
        a_wide_random_model_holds(tmp_path(name), 300 + (uint64_t)i, true, true);
    }
}


/* close orders: every handle's hits and misses reach the lifetime counters and the order */
static void lifetime_counts_survive_every_close_order(void) {
    const char *path = tmp_path("order.db");
    for (int order = 0; order < 2; order++) {
        remove_cache_file(path);
        backlite_storage *a = OPEN_WITH(path, 30, BACKLITE_EVICTION_POLICY_LEAST_FREQUENTLY_USED);
        backlite_storage *b = OPEN_WITH(path, 30, BACKLITE_EVICTION_POLICY_LEAST_FREQUENTLY_USED);
        REQUIRE(a && b);
        SET_N(a, "x", 10);
        SET_N(a, "y", 10);
        SET_N(a, "z", 10);
        for (int i = 0; i < 3; i++) GET_EQ(a, "x", "xxxxxxxxxx");
        for (int i = 0; i < 2; i++) GET_EQ(b, "y", "yyyyyyyyyy");
        GET_MISSING(b, "nope");
        if (order == 0) {
            backlite_storage_free(a);
            backlite_storage_free(b);
        } else {
            backlite_storage_free(b);
            backlite_storage_free(a);
        }
        backlite_storage *c = OPEN_WITH(path, 30, BACKLITE_EVICTION_POLICY_LEAST_FREQUENTLY_USED);
        REQUIRE(c);
        backlite_lifetime_stats ls;
        CHECK_OK(backlite_storage_lifetime_stats(c, &ls, &err));
        CHECK_EQ(ls.hits, 5);
        CHECK_EQ(ls.misses, 1);
        SET_N(c, "w", 10); /* z: no hits */
        CHECK(!HAS(c, "z"));
        SET_N(c, "v", 10); /* w: no hits, newer than y(2) x(3) */
        CHECK(!HAS(c, "w"));
        CHECK(HAS(c, "x") && HAS(c, "y"));
        backlite_storage_free(c);
    }
}

/* a child's use of the parent's handle, after the parent closed it */
static void a_child_using_the_parents_handle_after_the_parent_closed(void) {
    if (h_under_valgrind()) SKIP("forks children that leave with _exit");
    const char *path = tmp_path("forkclose.db");
    backlite_storage *s = OPEN(path, NULL);
    REQUIRE(s);
    SET(s, "a", "1");
    GET_EQ(s, "a", "1");
    int p1[2];
    REQUIRE(pipe(p1) == 0);
    pid_t pid = fork();
    if (pid == 0) {
        char x;
        close(p1[1]);
        (void)!read(p1[0], &x, 1);
        int bad = 0;
        backlite_buf b = {NULL, 0};
        if (backlite_storage_get(s, K("a"), &b, NULL, NULL) != 0) bad |= 1;
        backlite_buf_free(&b);
        if (backlite_storage_set(s, K("c"), K("3"), NEVER, NULL) != 0) bad |= 2;
        backlite_stats st;
        if (backlite_storage_stats(s, &st, NULL) != 0 || st.count != 3) bad |= 4;
        backlite_storage_free(s);
        _exit(bad);
    }
    close(p1[0]);
    SET(s, "b", "2");
    backlite_storage_free(s);
    (void)!write(p1[1], "x", 1);
    close(p1[1]);
    CHECK_EQ(CHILD_EXIT_CODE(pid), 0);
    s = OPEN(path, NULL);
    REQUIRE(s);
    GET_EQ(s, "c", "3");
    CHECK_EQ(STATS(s).count, 3);
    backlite_lifetime_stats ls;
    CHECK_OK(backlite_storage_lifetime_stats(s, &ls, &err));
    CHECK_EQ(ls.hits, 3); /* the parent's, the child's, and the get of c above */
    backlite_storage_free(s);
}

int main(void) {
    h_begin();
    RUN(lfu_hits_before_an_overwrite_do_not_count_for_the_new_value);
    RUN(lfu_hits_of_another_handle_before_an_overwrite_do_not_count);
    RUN(lfu_hits_of_another_process_before_an_overwrite_do_not_count);
    RUN(an_already_expired_write_removes_the_older_value_everywhere);
    RUN(expired_entries_go_first_under_every_policy);
    RUN(a_smaller_max_size_at_reopen_is_met_at_the_next_set);
    RUN(a_key_over_the_limit_is_invalid_everywhere);
    RUN(a_null_key_of_length_zero_is_the_empty_key_everywhere);
    RUN(every_result_code_has_its_own_text_and_unknown_ones_one_too);
    RUN(options_refuse_every_out_of_range_value);
    RUN(a_default_expiration_of_zero_stores_nothing_live);
    RUN(a_compute_that_fills_its_own_key_is_overwritten_by_its_result);
    RUN(an_outer_sink_is_usable_inside_an_inner_compute);
    RUN(time_left_never_exceeds_what_was_asked);
    RUN(stats_right_after_an_expiry);
    RUN(each_handle_bounds_the_file_by_its_own_max_size);
    RUN(callbacks_run_on_the_calling_thread);
    RUN(set_many_evicts_its_own_latest_under_lifo_and_mru);
    RUN(a_held_lease_is_no_entry);
    RUN(buf_free_of_a_buf_without_data_resets_it);
    RUN(lifetime_counts_survive_every_close_order);
    RUN(a_child_using_the_parents_handle_after_the_parent_closed);
    RUN(wide_model_one_handle);
    RUN(wide_model_two_handles);
    RUN(wide_model_with_processes);
    return h_end();
}
