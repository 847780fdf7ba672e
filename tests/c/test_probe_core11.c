/*
 * Eleventh probe round of the local cache contract (API.md), kept as tests.
 */
#include "backlite.h"
#include "harness.h"
#include "lock_holder.h"

static int32_t compute_v(void *ud, backlite_sink *sink) {
    if (ud) ++*(int *)ud;
    return backlite_sink_write(sink, (const uint8_t *)"v", 1) == BACKLITE_RESULT_OK ? 0 : 1;
}

static int32_t compute_fails(void *ud, backlite_sink *sink) {
    if (ud) ++*(int *)ud;
    (void)backlite_sink_write(sink, (const uint8_t *)"half", 4);
    return 7;
}

static int32_t lock_fails(void *ud) {
    (void)ud;
    return 1;
}
static void unlock_never(void *ud) { ++*(int *)ud; }

static int32_t count_chunks(void *ud, const uint8_t *c, size_t n) {
    (void)ud;
    (void)c;
    (void)n;
    return 0;
}

/* ------------------------------------------------ counters after refused calls */

/* A call refused before it looks anything up (a NULL, a bad expiration, a key over
 * the limit, a value too large) counts nothing; a memoising call that looked and
 * missed counts one miss, whatever became of its compute or lock. */
static void refused_calls_count_nothing_and_failed_computes_one_miss(void) {
    backlite_storage *s = OPEN_SET(tmp_path("refused.db"), .max_size = 10);
    REQUIRE(s != NULL);
    SET(s, "a", "12345");
    backlite_stats before = STATS(s);
    backlite_lifetime_stats lbefore = LIFETIME(s);
    backlite_buf b = {NULL, 0};
    CHECK_RC(backlite_storage_get(s, K("a"), NULL, NULL, &err), BACKLITE_RESULT_NULL_PARAMETER);
    CHECK_RC(backlite_storage_get(s, NULL, 1, &b, NULL, &err), BACKLITE_RESULT_NULL_PARAMETER);
    CHECK_RC(backlite_storage_set(s, K("a"), K("x"), -3, &err), BACKLITE_RESULT_INVALID_ARGUMENT);
    CHECK_RC(backlite_storage_set(s, K("b"), K("12345678901"), NEVER, &err), BACKLITE_RESULT_TOO_LARGE);
    CHECK_RC(backlite_cached_call(s, K("a"), NULL, NULL, NULL, NEVER, &b, &err), BACKLITE_RESULT_NULL_PARAMETER);
    CHECK_RC(backlite_cached_call(s, K("a"), compute_v, NULL, NULL, -3, &b, &err),
             BACKLITE_RESULT_INVALID_ARGUMENT);
    CHECK_RC(backlite_cached_call_exclusive(s, K("a"), compute_v, NULL, NEVER, -1, &b, &err),
             BACKLITE_RESULT_INVALID_ARGUMENT);
    CHECK_RC(backlite_cached_call_exclusive(s, K("a"), compute_v, NULL, -3, 0, &b, &err),
             BACKLITE_RESULT_INVALID_ARGUMENT);
    backlite_lease *lease = NULL;
    CHECK_RC(backlite_lease_try_acquire(s, K("z"), 0, &b, &lease, &err), BACKLITE_RESULT_INVALID_ARGUMENT);
    CHECK_RC(backlite_lease_try_acquire(s, K("z"), -5, &b, &lease, &err), BACKLITE_RESULT_INVALID_ARGUMENT);
    CHECK(lease == NULL);
    backlite_entry bad[2] = {{(const uint8_t *)"m", 1, (const uint8_t *)"v", 1, NEVER},
                             {(const uint8_t *)"n", 1, (const uint8_t *)"v", 1, -7}};
    CHECK_RC(backlite_storage_set_many(s, bad, 2, &err), BACKLITE_RESULT_INVALID_ARGUMENT);
    backlite_stats after = STATS(s);
    SAME_STATS(before, after);
    backlite_lifetime_stats lafter = LIFETIME(s);
    CHECK_EQ(lafter.hits, lbefore.hits);
    CHECK_EQ(lafter.misses, lbefore.misses);
    CHECK_EQ(lafter.evictions, lbefore.evictions);
    GET_EQ(s, "a", "12345");
    GET_MISSING(s, "m");

    /* memoising calls that missed: one miss each, nothing stored */
    before = STATS(s);
    int computed = 0, unlocked = 0;
    CHECK_RC(backlite_cached_call(s, K("c"), compute_fails, &computed, NULL, NEVER, &b, &err),
             BACKLITE_RESULT_CALLBACK_FAILED);
    backlite_barrier bar = {&unlocked, lock_fails, unlock_never};
    CHECK_RC(backlite_cached_call(s, K("c"), compute_v, &computed, &bar, NEVER, &b, &err),
             BACKLITE_RESULT_CALLBACK_FAILED);
    CHECK_RC(backlite_cached_call_exclusive(s, K("c"), compute_fails, &computed, NEVER, 0, &b, &err),
             BACKLITE_RESULT_CALLBACK_FAILED);
    CHECK_EQ(computed, 2);
    CHECK_EQ(unlocked, 0);
    after = STATS(s);
    CHECK_EQ(after.misses, before.misses + 3);
    CHECK_EQ(after.hits, before.hits);
    CHECK_EQ(after.count, before.count);
    CHECK_EQ(after.total_size, before.total_size);
    CHECK(!HAS(s, "c"));
    /* the key is free again: an exclusive call computes it at once */
    CHECK_OK(backlite_cached_call_exclusive(s, K("c"), compute_v, &computed, NEVER, 0, &b, &err));
    CHECK_BUF_STR(b, "v");
    backlite_buf_free(&b);
    CHECK_EQ(computed, 3);
    backlite_storage_free(s);
}

/* ------------------------------------------------ memoised values already expired */

/* cached_call and cached_call_exclusive with expiration 0: the computed value is
 * returned, nothing is stored (count, size unchanged), nothing is evicted to make room
 * for it, and each call computes again, a miss each. */
static void a_memoised_value_already_expired_is_returned_and_not_kept(void) {
    backlite_storage *s = OPEN_SET(tmp_path("expired-memo.db"), .max_size = 2);
    REQUIRE(s != NULL);
    SET(s, "a", "1");
    SET(s, "b", "2");
    int computed = 0;
    backlite_buf b = {NULL, 0};
    for (int i = 0; i < 2; i++) {
        CHECK_OK(backlite_cached_call(s, K("k"), compute_v, &computed, NULL, 0, &b, &err));
        CHECK_BUF_STR(b, "v");
        backlite_buf_free(&b);
        CHECK_OK(backlite_cached_call_exclusive(s, K("x"), compute_v, &computed, 0, 0, &b, &err));
        CHECK_BUF_STR(b, "v");
        backlite_buf_free(&b);
    }
    CHECK_EQ(computed, 4);
    backlite_stats st = STATS(s);
    CHECK_EQ(st.count, 2);
    CHECK_EQ(st.total_size, 2);
    CHECK_EQ(st.misses, 4);
    CHECK_EQ(st.evictions, 0);
    GET_EQ(s, "a", "1");
    GET_EQ(s, "b", "2");
    CHECK(!HAS(s, "k"));
    CHECK(!HAS(s, "x"));
    backlite_storage_free(s);
}

/* ------------------------------------------------ an expired entry counted once */

/* An entry whose time is up is one expiration, however many calls meet it (contains,
 * get, delete, a set of another key), in this handle's stats and the file's. */
static void an_expired_entry_is_one_expiration_whatever_meets_it(void) {
    backlite_storage *s = OPEN_SET(tmp_path("once.db"), .max_size = 100);
    REQUIRE(s != NULL);
    SET_EXP(s, "e", "12345", 30);
    SET(s, "live", "x");
    int64_t deadline = h_now_ms() + 60000;
    while (HAS(s, "e") && h_now_ms() < deadline) h_sleep_ms(5);
    REQUIRE(!HAS(s, "e"));
    backlite_stats st = STATS(s);
    CHECK_EQ(st.count, 1);
    CHECK_EQ(st.total_size, 1);
    GET_MISSING(s, "e");
    CHECK_RC(backlite_storage_delete(s, K("e"), &err), BACKLITE_RESULT_NOT_FOUND);
    SET(s, "other", "y");
    GET_MISSING(s, "e");
    st = STATS(s);
    CHECK_EQ(st.count, 2);
    CHECK_EQ(st.total_size, 2);
    CHECK_EQ(st.expirations, 1);
    CHECK_EQ(st.misses, 2);
    CHECK_EQ(st.evictions, 0);
    backlite_lifetime_stats l = LIFETIME(s);
    CHECK_EQ(l.expirations, 1);
    CHECK_EQ(l.misses, 2);
    backlite_storage_free(s);
}

/* ------------------------------------------------ leases at the edges of time */

/* The longest lease (INT64_MAX ms) holds the key, its time left is positive and the
 * retry pause is the library's bound; an extend by INT64_MAX too. */
static void the_longest_lease_is_held_and_its_time_left_positive(void) {
    const char *path = tmp_path("long-lease.db");
    backlite_storage *s = OPEN(path, NULL);
    backlite_storage *t = OPEN(path, NULL);
    REQUIRE(s != NULL && t != NULL);
    backlite_buf b = {NULL, 0};
    backlite_lease *lease = NULL;
    CHECK_RC(backlite_lease_try_acquire(s, K("k"), INT64_MAX, &b, &lease, &err), BACKLITE_RESULT_NOT_FOUND);
    REQUIRE(lease != NULL);
    backlite_lease *other = NULL;
    backlite_error *e = NULL;
    CHECK_EQ(backlite_lease_try_acquire(t, K("k"), 1000, &b, &other, &e), BACKLITE_RESULT_LEASE_HELD);
    CHECK(other == NULL);
    if (e != NULL) {
        CHECK(backlite_error_lease_time_left_ms(e) > 0);
        backlite_error_free(e);
        e = NULL;
    }
    CHECK_EQ(backlite_lease_step(t, K("k"), UINT32_MAX, &b, &other, &e), BACKLITE_RESULT_LEASE_HELD);
    if (e != NULL) {
        int64_t retry = backlite_error_retry_in_ms(e);
        CHECK(retry >= 0 && retry <= 50);
        CHECK(backlite_error_lease_time_left_ms(e) > 0);
        backlite_error_free(e);
        e = NULL;
    }
    CHECK_OK(backlite_lease_extend(lease, INT64_MAX, &err));
    CHECK_RC(backlite_lease_extend(lease, 0, &err), BACKLITE_RESULT_INVALID_ARGUMENT);
    CHECK_RC(backlite_lease_extend(lease, -1, &err), BACKLITE_RESULT_INVALID_ARGUMENT);
    CHECK_EQ(backlite_lease_try_acquire(t, K("k"), 1000, &b, &other, &e), BACKLITE_RESULT_LEASE_HELD);
    if (e != NULL) {
        CHECK(backlite_error_lease_time_left_ms(e) > 0);
        backlite_error_free(e);
        e = NULL;
    }
    CHECK_OK(backlite_lease_fulfill(lease, K("v"), NEVER, &err));
    GET_EQ(t, "k", "v");
    backlite_storage_free(t);
    backlite_storage_free(s);
}

/* A lease length of INT64_MAX in the options: an exclusive call computes, renews
 * nothing it cannot, and stores. */
static void the_longest_lease_length_in_options(void) {
    backlite_options *o = backlite_options_new();
    REQUIRE(o != NULL);
    CHECK_RESULT(backlite_options_set_lease_ms(o, 0), BACKLITE_RESULT_INVALID_ARGUMENT);
    CHECK_RESULT(backlite_options_set_lease_ms(o, -1), BACKLITE_RESULT_INVALID_ARGUMENT);
    CHECK_RESULT(backlite_options_set_lease_ms(o, INT64_MIN), BACKLITE_RESULT_INVALID_ARGUMENT);
    CHECK_RESULT(backlite_options_set_lease_ms(NULL, 5), BACKLITE_RESULT_NULL_PARAMETER);
    CHECK_RESULT(backlite_options_set_lease_ms(o, INT64_MAX), BACKLITE_RESULT_OK);
    backlite_storage *s = OPEN(tmp_path("long-lease-opt.db"), o);
    backlite_options_free(o);
    REQUIRE(s != NULL);
    int n = 0;
    backlite_buf b = {NULL, 0};
    CHECK_OK(backlite_cached_call_exclusive(s, K("k"), compute_v, &n, NEVER, 0, &b, &err));
    CHECK_BUF_STR(b, "v");
    backlite_buf_free(&b);
    backlite_lease *lease = NULL;
    CHECK_RC(backlite_lease_step(s, K("j"), 0, &b, &lease, &err), BACKLITE_RESULT_NOT_FOUND);
    REQUIRE(lease != NULL);
    CHECK_OK(backlite_lease_fulfill(lease, K("w"), NEVER, &err));
    GET_EQ(s, "j", "w");
    GET_EQ(s, "k", "v");
    backlite_storage_free(s);
}

/* ------------------------------------------------ strings that are not UTF-8 */

static void strings_that_are_not_utf8_are_invalid(void) {
    backlite_options *o = backlite_options_new();
    REQUIRE(o != NULL);
    CHECK_RESULT(backlite_options_set_version_tag(o, "\xff\xfe"), BACKLITE_RESULT_INVALID_ARGUMENT);
    CHECK_RESULT(backlite_options_set_version_tag(o, NULL), BACKLITE_RESULT_NULL_PARAMETER);
    CHECK_RESULT(backlite_options_set_eviction_policy_name(o, "\xff"), BACKLITE_RESULT_INVALID_ARGUMENT);
    CHECK_RESULT(backlite_options_set_eviction_policy_name(o, ""), BACKLITE_RESULT_INVALID_ARGUMENT);
    CHECK_RESULT(backlite_options_set_eviction_policy(o, -1), BACKLITE_RESULT_INVALID_ARGUMENT);
    CHECK_RESULT(backlite_options_set_eviction_policy(o, 5), BACKLITE_RESULT_INVALID_ARGUMENT);
    CHECK_RESULT(backlite_options_set_default_expiration_ms(o, BACKLITE_EXPIRATION_DEFAULT),
                 BACKLITE_RESULT_INVALID_ARGUMENT);
    backlite_storage *s = (backlite_storage *)0;
    CHECK_RC(backlite_storage_open(tmp_path("\xff\xfe.db"), o, &s, &err), BACKLITE_RESULT_INVALID_ARGUMENT);
    CHECK(s == NULL);
    CHECK_RC(backlite_storage_open("", o, &s, &err), BACKLITE_RESULT_INVALID_ARGUMENT);
    CHECK(s == NULL);
    backlite_options_free(o);
}

/* ------------------------------------------------ a delete with nothing to delete */

/* A delete of a key with no entry writes nothing, so another process's write lock is
 * nothing to wait for: NOT_FOUND at once, as for a get (it was BUSY after the busy
 * timeout). A key with an entry, expired or live, must still lose it: a write, BUSY
 * while the lock is held, the live value still readable. */
static void a_delete_of_an_absent_key_does_not_wait_for_the_lock(void) {
    if (!h_have_python_sqlite()) SKIP("python3 with sqlite3 is not available to hold a lock");
    const char *path = tmp_path("delete-locked.db");
    backlite_storage *s = OPEN_SET(path, .busy_timeout_ms = 100);
    REQUIRE(s != NULL);
    SET(s, "live", "1");
    SET_EXP(s, "gone", "2", 1);
    lock_holder h;
    REQUIRE(holder_start(&h, path));
    CHECK_RC(backlite_storage_delete(s, K("absent"), &err), BACKLITE_RESULT_NOT_FOUND);
    CHECK_RC(backlite_storage_delete(s, NULL, 0, &err), BACKLITE_RESULT_NOT_FOUND);
    CHECK_RC(backlite_storage_delete(s, K("live"), &err), BACKLITE_RESULT_BUSY);
    GET_EQ(s, "live", "1");
    holder_release(&h);
    holder_finish(&h);
    CHECK_RC(backlite_storage_delete(s, K("absent"), &err), BACKLITE_RESULT_NOT_FOUND);
    CHECK_RC(backlite_storage_delete(s, K("gone"), &err), BACKLITE_RESULT_NOT_FOUND);
    CHECK_OK(backlite_storage_delete(s, K("live"), &err));
    GET_MISSING(s, "live");
    backlite_stats st = STATS(s);
    CHECK_EQ(st.count, 0);
    CHECK_EQ(st.total_size, 0);
    backlite_storage_free(s);
}

/* ------------------------------------------------ what a lease's fulfil stores */

/* A fulfil stores as a set would: it evicts by the policy (counted by the handle that
 * took the lease), a value too large is TOO_LARGE with nothing stored and nothing
 * evicted, one already expired is OK with nothing stored; and a lease may outlive the
 * handle that took it. */
static void a_fulfil_stores_as_a_set_and_counts_on_its_handle(void) {
    const char *path = tmp_path("fulfil.db");
    backlite_storage *s = OPEN_SET(path, .max_size = 4);
    backlite_storage *t = OPEN_SET(path, .max_size = 4);
    REQUIRE(s != NULL && t != NULL);
    SET(t, "a", "11");
    SET(t, "b", "22");
    backlite_buf b = {NULL, 0};
    backlite_lease *lease = NULL;
    CHECK_RC(backlite_lease_try_acquire(s, K("k"), 60000, &b, &lease, &err), BACKLITE_RESULT_NOT_FOUND);
    REQUIRE(lease != NULL);
    CHECK_OK(backlite_lease_fulfill(lease, K("vv"), NEVER, &err));
    backlite_stats ss = STATS(s), ts = STATS(t);
    CHECK_EQ(ss.evictions, 1);
    CHECK_EQ(ts.evictions, 0);
    CHECK_EQ(ss.count, 2);
    CHECK_EQ(ss.total_size, 4);
    CHECK(!HAS(s, "a"));
    GET_EQ(t, "k", "vv");

    lease = NULL;
    CHECK_RC(backlite_lease_try_acquire(s, K("big"), 60000, &b, &lease, &err), BACKLITE_RESULT_NOT_FOUND);
    REQUIRE(lease != NULL);
    CHECK_RC(backlite_lease_fulfill(lease, K("12345"), NEVER, &err), BACKLITE_RESULT_TOO_LARGE);
    ss = STATS(s);
    CHECK_EQ(ss.evictions, 1);
    CHECK_EQ(ss.count, 2);
    CHECK_EQ(ss.total_size, 4);
    CHECK(!HAS(s, "big"));
    /* the lease went with the refusal: the key is free */
    lease = NULL;
    CHECK_RC(backlite_lease_try_acquire(t, K("big"), 60000, &b, &lease, &err), BACKLITE_RESULT_NOT_FOUND);
    REQUIRE(lease != NULL);
    CHECK_OK(backlite_lease_fulfill(lease, K("x"), 0, &err));
    CHECK(!HAS(s, "big"));
    ts = STATS(t);
    CHECK_EQ(ts.count, 2);
    CHECK_EQ(ts.evictions, 0);

    /* a lease whose handle was freed */
    lease = NULL;
    CHECK_RC(backlite_lease_try_acquire(s, K("late"), 60000, &b, &lease, &err), BACKLITE_RESULT_NOT_FOUND);
    REQUIRE(lease != NULL);
    backlite_storage_free(s);
    backlite_result rc = backlite_lease_fulfill(lease, K("ll"), NEVER, NULL);
    CHECK(rc == BACKLITE_RESULT_OK || rc == BACKLITE_RESULT_IO || rc == BACKLITE_RESULT_INVALID_ARGUMENT);
    if (rc == BACKLITE_RESULT_OK) GET_EQ(t, "late", "ll");
    /* whatever it answered, the key is not held for ever */
    lease = NULL;
    rc = backlite_lease_try_acquire(t, K("late"), 60000, &b, &lease, NULL);
    CHECK(rc == BACKLITE_RESULT_OK || rc == BACKLITE_RESULT_NOT_FOUND);
    if (rc == BACKLITE_RESULT_OK) backlite_buf_free(&b);
    backlite_lease_abandon(lease);
    backlite_storage_free(t);
}

/* ------------------------------------------------ keys deleted through another handle */

typedef struct {
    backlite_storage *other;
    int listed, deleted_listed, failed;
} other_handle_visitor;

/* deletes k0001, k0003 ... k0599 through `other`; false if one was not there */
static bool delete_the_odd_keys(backlite_storage *other) {
    for (int i = 1; i < 600; i += 2) {
        char d[16];
        snprintf(d, sizeof d, "k%04d", i);
        if (backlite_storage_delete(other, K(d), NULL) != BACKLITE_RESULT_OK) return false;
    }
    return true;
}

static int32_t delete_at_the_first_through_another_handle(void *ud, const uint8_t *key, size_t len) {
    other_handle_visitor *v = ud;
    bool odd = len == 5 && (key[4] - '0') % 2 == 1;
    v->deleted_listed += odd;
    if (v->listed++ == 0 && !delete_the_odd_keys(v->other)) v->failed = 1;
    return v->failed;
}

/* A keys visitor that deletes keys it has not reached yet through another handle of
 * this process on the same file is not shown them either ("still live when reached"):
 * only writes through the listing handle were noticed, so keys of the page being shown
 * were listed deleted. */
static void a_key_deleted_through_another_handle_is_not_listed(void) {
    const char *path = tmp_path("keys-other.db");
    backlite_storage *s = OPEN(path, NULL);
    backlite_storage *t = OPEN(path, NULL);
    REQUIRE(s != NULL && t != NULL);
    for (int i = 0; i < 600; i++) {
        char k[16];
        snprintf(k, sizeof k, "k%04d", i);
        SET(s, k, "v");
    }
    other_handle_visitor v = {t, 0, 0, 0};
    CHECK_OK(backlite_storage_keys(s, delete_at_the_first_through_another_handle, &v, &err));
    CHECK_EQ(v.failed, 0);
    CHECK_EQ(v.deleted_listed, 0);
    CHECK_EQ(v.listed, 300);
    backlite_storage_free(t);
    backlite_storage_free(s);
}

/* ------------------------------------------------ reads of expired entries under a lock */

/* Looking up an expired entry while another process holds the write lock is a miss at
 * once (its removal can wait): get, contains, get_chunks, open_reader, and a memoising
 * call's look-up before its store. */
static void reads_of_an_expired_entry_under_anothers_lock_are_misses(void) {
    if (!h_have_python_sqlite()) SKIP("python3 with sqlite3 is not available to hold a lock");
    const char *path = tmp_path("expired-locked.db");
    backlite_storage *s = OPEN_SET(path, .busy_timeout_ms = 100);
    REQUIRE(s != NULL);
    SET_EXP(s, "e", "12345", 1);
    SET(s, "live", "1");
    int64_t deadline = h_now_ms() + 60000;
    while (HAS(s, "e") && h_now_ms() < deadline) h_sleep_ms(2);
    lock_holder h;
    REQUIRE(holder_start(&h, path));
    GET_MISSING(s, "e");
    CHECK(!HAS(s, "e"));
    CHECK_RC(backlite_storage_get_chunks(s, K("e"), count_chunks, NULL, NULL, &err), BACKLITE_RESULT_NOT_FOUND);
    backlite_value_reader *r = NULL;
    CHECK_RC(backlite_storage_open_reader(s, K("e"), &r, NULL, NULL, &err), BACKLITE_RESULT_NOT_FOUND);
    CHECK(r == NULL);
    GET_EQ(s, "live", "1");
    holder_release(&h);
    holder_finish(&h);
    backlite_stats st = STATS(s);
    CHECK_EQ(st.count, 1);
    CHECK_EQ(st.misses, 3);
    backlite_storage_free(s);
}

int main(void) {
    h_begin();
    RUN(refused_calls_count_nothing_and_failed_computes_one_miss);
    RUN(a_memoised_value_already_expired_is_returned_and_not_kept);
    RUN(an_expired_entry_is_one_expiration_whatever_meets_it);
    RUN(the_longest_lease_is_held_and_its_time_left_positive);
    RUN(the_longest_lease_length_in_options);
    RUN(strings_that_are_not_utf8_are_invalid);
    RUN(a_delete_of_an_absent_key_does_not_wait_for_the_lock);
    RUN(a_fulfil_stores_as_a_set_and_counts_on_its_handle);
    RUN(a_key_deleted_through_another_handle_is_not_listed);
    RUN(reads_of_an_expired_entry_under_anothers_lock_are_misses);
    return h_end();
}
