/*
 * Twelfth probe round of the local cache contract (API.md), kept as tests.
 *
 * a_refused_batch_names_its_entry_and_stores_nothing: a set_many refused for one of
 * its entries names it in its message, whatever refused it.
 * a_write_that_stores_nothing_of_keys_without_value_does_not_wait_for_the_lock: a set,
 * cached_call or set_many that stores nothing, of keys with no row, writes nothing.
 * every_call_on_a_cache_file_without_write_permission_answers_its_code,
 * a_refused_fulfil_releases_the_lease_and_removes_what_a_set_would and
 * a_clear_keeps_the_leases_of_keys_being_computed passed as they were.
 */
#include "backlite.h"
#include "harness.h"
#include "lock_holder.h"

#include <grp.h>

#define NOBODY 65534

static int32_t compute_v(void *ud, backlite_sink *sink) {
    if (ud) ++*(int *)ud;
    return backlite_sink_write(sink, (const uint8_t *)"v", 1) == BACKLITE_RESULT_OK ? 0 : 1;
}

static int32_t count_key(void *ud, const uint8_t *k, size_t n) {
    (void)k;
    (void)n;
    ++*(int *)ud;
    return 0;
}

static int32_t count_chunk(void *ud, const uint8_t *c, size_t n) {
    (void)c;
    *(size_t *)ud += n;
    return 0;
}

/* ------------------------------------------------ set_many partial failure */

/* the refusal of a batch: its code, and a message that begins with `prefix` (the entry) */
static void h_refused_batch_(const char *file, int line, backlite_storage *s, const backlite_entry *e, size_t n,
                             backlite_result want, const char *prefix) {
    backlite_error *err = NULL;
    backlite_result rc = backlite_storage_set_many(s, e, n, &err);
    h_check_rc_(file, line, "set_many", rc, want, err);
    const char *msg = backlite_error_message(err);
    if (err != NULL && strncmp(msg, prefix, strlen(prefix)) != 0)
        h_fail_(file, line, "set_many's error does not name the entry (%s): \"%s\"", prefix, msg);
    backlite_error_free(err);
}
#define REFUSED_BATCH(s, e, n, want, prefix) h_refused_batch_(__FILE__, __LINE__, (s), (e), (n), (want), (prefix))

/*
 * A batch refused for an invalid entry (a key too long, a bad expiration, a NULL value)
 * writes nothing, counts nothing, and its error names that entry, as set_many's own
 * checks of each entry do; the older values of every key of the batch stay. A batch
 * refused for a value too large stores no value either and names that entry, but the
 * older value under the too-large entry's key goes, as a set of that value removes it
 * (API.md, "Too large": a later get must not return a stale value); the other keys keep
 * theirs. The same handle then stores the batch put right. Before, a value too large
 * or a key too long gave only their sizes ("a value of 200 bytes is larger than
 * max_size (100 bytes): not stored"), whichever of the batch it was.
 */
static void a_refused_batch_names_its_entry_and_stores_nothing(void) {
    backlite_storage *s = OPEN_SET(tmp_path("batch.db"), .max_size = 100);
    REQUIRE(s != NULL);
    SET(s, "a", "old-a");
    SET(s, "b", "old-b");
    SET(s, "c", "old-c");
    backlite_stats before = STATS(s);
    backlite_lifetime_stats lbefore = LIFETIME(s);
    uint8_t big[200];
    memset(big, 'x', sizeof big);
    backlite_entry e[3] = {
        {(const uint8_t *)"a", 1, (const uint8_t *)"new", 3, NEVER},
        {(const uint8_t *)"b", 1, (const uint8_t *)"new", 3, NEVER},
        {(const uint8_t *)"c", 1, (const uint8_t *)"new", 3, NEVER},
    };
    /* a key over the limit: refused from its length, never read */
    e[1].key_len = (size_t)BACKLITE_MAX_KEY_SIZE + 1;
    REFUSED_BATCH(s, e, 3, BACKLITE_RESULT_INVALID_ARGUMENT, "entries[1]");
    e[1].key_len = 1;
    e[2].expiration_ms = -5;
    REFUSED_BATCH(s, e, 3, BACKLITE_RESULT_INVALID_ARGUMENT, "entries[2]");
    e[2].expiration_ms = NEVER;
    e[2].value = NULL;
    REFUSED_BATCH(s, e, 3, BACKLITE_RESULT_NULL_PARAMETER, "entries[2]");
    e[2].value = (const uint8_t *)"new";
    SAME_STATS(STATS(s), before);
    backlite_lifetime_stats l = LIFETIME(s);
    CHECK_EQ(l.hits, lbefore.hits);
    CHECK_EQ(l.misses, lbefore.misses);
    CHECK_EQ(l.evictions, lbefore.evictions);
    CHECK_EQ(l.expirations, lbefore.expirations);
    GET_EQ(s, "a", "old-a");
    GET_EQ(s, "b", "old-b");
    GET_EQ(s, "c", "old-c");
    /* too large: b's older value goes, a's and c's stay */
    e[1].value = big;
    e[1].value_len = sizeof big;
    REFUSED_BATCH(s, e, 3, BACKLITE_RESULT_TOO_LARGE, "entries[1]");
    GET_EQ(s, "a", "old-a");
    CHECK(!HAS(s, "b"));
    GET_EQ(s, "c", "old-c");
    e[1].value = (const uint8_t *)"new";
    e[1].value_len = 3;
    e[2].value = big; /* the same, last */
    e[2].value_len = sizeof big;
    REFUSED_BATCH(s, e, 3, BACKLITE_RESULT_TOO_LARGE, "entries[2]");
    GET_EQ(s, "a", "old-a");
    CHECK(!HAS(s, "c"));
    backlite_stats st = STATS(s);
    CHECK_EQ(st.count, 1);
    CHECK_EQ(st.total_size, 5);
    CHECK_EQ(LIFETIME(s).evictions, lbefore.evictions);
    e[2].value = (const uint8_t *)"new";
    e[2].value_len = 3;
    CHECK_OK(backlite_storage_set_many(s, e, 3, &err));
    GET_EQ(s, "a", "new");
    GET_EQ(s, "b", "new");
    GET_EQ(s, "c", "new");
    st = STATS(s);
    CHECK_EQ(st.count, 3);
    CHECK_EQ(st.total_size, 9);
    backlite_storage_free(s);
}

/* ------------------------------------------------ read-only file: every call */

/*
 * On a cache file that cannot be written, every call answers its own code: what only
 * reads works (hits of every memoising call, keys, get_chunks, a delete of a key with
 * no entry, and a write that stores nothing of a key with no value), every call that
 * must write is IO and writes nothing (a memoising call's miss loses its value, as on
 * a full disk); the counters count the look-ups, once each.
 */
static void every_call_on_a_read_only_file(const char *path) {
    backlite_storage *s = OPEN(path, NULL);
    REQUIRE(s != NULL);
    backlite_buf b = {NULL, 0};
    int n = 0;
    backlite_entry e[1] = {{(const uint8_t *)"z", 1, (const uint8_t *)"new", 3, NEVER}};
    CHECK_RC(backlite_storage_set_many(s, e, 1, &err), BACKLITE_RESULT_IO);
    e[0].expiration_ms = 0;
    CHECK_RC(backlite_storage_set_many(s, e, 1, &err), BACKLITE_RESULT_OK);
    CHECK_RC(backlite_storage_set(s, K("absent"), K("v"), 0, &err), BACKLITE_RESULT_OK);
    CHECK_RC(backlite_storage_set(s, K("k1"), K("v"), 0, &err), BACKLITE_RESULT_IO);
    CHECK_RC(backlite_cached_call(s, K("k1"), compute_v, &n, NULL, NEVER, &b, &err), BACKLITE_RESULT_OK);
    CHECK_BUF_STR(b, "one");
    backlite_buf_free(&b);
    CHECK_RC(backlite_cached_call(s, K("m1"), compute_v, &n, NULL, NEVER, &b, &err), BACKLITE_RESULT_IO);
    CHECK(b.data == NULL);
    CHECK_RC(backlite_cached_call_exclusive(s, K("k2"), compute_v, &n, NEVER, 1000, &b, &err), BACKLITE_RESULT_OK);
    CHECK_BUF_STR(b, "two");
    backlite_buf_free(&b);
    CHECK_RC(backlite_cached_call_exclusive(s, K("m2"), compute_v, &n, NEVER, 1000, &b, &err), BACKLITE_RESULT_IO);
    CHECK_EQ(n, 1); /* the exclusive miss could not take its lease: no compute */
    backlite_lease *lease = NULL;
    CHECK_RC(backlite_lease_try_acquire(s, K("m3"), 1000, &b, &lease, &err), BACKLITE_RESULT_IO);
    CHECK_RC(backlite_lease_step(s, K("m4"), 0, &b, &lease, &err), BACKLITE_RESULT_IO);
    CHECK(lease == NULL);
    CHECK_RC(backlite_storage_zero_stats(s, &err), BACKLITE_RESULT_IO);
    backlite_check_report rep;
    CHECK_RC(backlite_storage_check(s, 1, &rep, &err), BACKLITE_RESULT_IO);
    int keys = 0;
    CHECK_OK(backlite_storage_keys(s, count_key, &keys, &err));
    CHECK_EQ(keys, 2);
    size_t got = 0;
    CHECK_OK(backlite_storage_get_chunks(s, K("k2"), count_chunk, &got, NULL, &err));
    CHECK_EQ(got, 3);
    CHECK_RC(backlite_storage_delete(s, K("absent"), &err), BACKLITE_RESULT_NOT_FOUND);
    CHECK_RC(backlite_storage_delete(s, K("k1"), &err), BACKLITE_RESULT_IO);
    GET_EQ(s, "k1", "one");
    backlite_stats st = STATS(s);
    CHECK_EQ(st.count, 2);
    CHECK_EQ(st.total_size, 6);
    CHECK_EQ(st.hits, 4);   /* cached_call, exclusive, get_chunks, get */
    CHECK_EQ(st.misses, 4); /* cached_call, exclusive, try_acquire, lease_step */
    CHECK_EQ(st.evictions, 0);
    CHECK_EQ(st.expirations, 0);
    backlite_lifetime_stats l = LIFETIME(s);
    CHECK_EQ(l.hits, 4);
    CHECK_EQ(l.misses, 4);
    backlite_storage_free(s);
}

static void every_call_on_a_cache_file_without_write_permission_answers_its_code(void) {
    const char *dir = tmp_path("ro");
    REQUIRE(chmod(h_tmp_root(), 0755) == 0);
    REQUIRE(mkdir(dir, 0755) == 0);
    char path[PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/cache.db", dir);
    backlite_storage *s = OPEN(path, NULL);
    REQUIRE(s != NULL);
    SET(s, "k1", "one");
    SET(s, "k2", "two");
    backlite_storage_free(s);
    size_t len = 0;
    uint8_t *before = h_read_file(path, &len);
    REQUIRE(before != NULL);
    REQUIRE(chmod(path, 0444) == 0);
    if (geteuid() == 0) REQUIRE(chown(dir, NOBODY, NOBODY) == 0 && chown(path, NOBODY, NOBODY) == 0);
    fflush(NULL);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        free(before); /* the parent's, not to be reported as the child's leak */
        if (geteuid() == 0 && (setgroups(0, NULL) != 0 || setgid(NOBODY) != 0 || setuid(NOBODY) != 0)) _exit(77);
        int failures = atomic_load(&h_st()->failures);
        every_call_on_a_read_only_file(path);
        fflush(NULL);
        _exit(atomic_load(&h_st()->failures) == failures ? 0 : 1);
    }
    int code = CHILD_EXIT_CODE(pid);
    if (code == 77) {
        free(before);
        SKIP("cannot drop to user nobody");
    }
    CHECK_EQ(code, 0);
    size_t after_len = 0;
    uint8_t *after = h_read_file(path, &after_len);
    CHECK(after != NULL && after_len == len && memcmp(after, before, len) == 0);
    free(before);
    free(after);
}

/* ------------------------------------------------ lease fulfil edges */

/*
 * A fulfil refused (a bad expiration) still releases the lease, so the next caller
 * takes it at once; a fulfil that stores nothing (too large, already expired) removes
 * a value set under the key meanwhile, as a set would (a later get must not return
 * it); a fulfil stores over one.
 */
static void a_refused_fulfil_releases_the_lease_and_removes_what_a_set_would(void) {
    const char *path = tmp_path("lease.db");
    backlite_storage *s = OPEN_SET(path, .max_size = 10);
    backlite_storage *t = OPEN_SET(path, .max_size = 10);
    REQUIRE(s != NULL && t != NULL);
    backlite_buf b = {NULL, 0};
    backlite_lease *lease = NULL;
    CHECK_RC(backlite_lease_try_acquire(s, K("k"), 60000, &b, &lease, &err), BACKLITE_RESULT_NOT_FOUND);
    REQUIRE(lease != NULL);
    CHECK_RC(backlite_lease_fulfill(lease, K("v"), -7, &err), BACKLITE_RESULT_INVALID_ARGUMENT);
    lease = NULL;
    CHECK_RC(backlite_lease_try_acquire(t, K("k"), 60000, &b, &lease, &err), BACKLITE_RESULT_NOT_FOUND);
    REQUIRE(lease != NULL);
    SET(s, "k", "meanwhile");
    CHECK_RC(backlite_lease_fulfill(lease, K("0123456789abc"), NEVER, &err), BACKLITE_RESULT_TOO_LARGE);
    GET_MISSING(s, "k");
    lease = NULL;
    CHECK_RC(backlite_lease_try_acquire(s, K("k"), 60000, &b, &lease, &err), BACKLITE_RESULT_NOT_FOUND);
    REQUIRE(lease != NULL);
    SET(t, "k", "meanwhile");
    CHECK_RC(backlite_lease_fulfill(lease, K("x"), 0, &err), BACKLITE_RESULT_OK);
    GET_MISSING(t, "k");
    lease = NULL;
    CHECK_RC(backlite_lease_try_acquire(s, K("k"), 60000, &b, &lease, &err), BACKLITE_RESULT_NOT_FOUND);
    REQUIRE(lease != NULL);
    SET(t, "k", "meanwhile");
    CHECK_RC(backlite_lease_fulfill(lease, K("x"), NEVER, &err), BACKLITE_RESULT_OK);
    GET_EQ(t, "k", "x");
    backlite_stats st = STATS(s);
    CHECK_EQ(st.count, 1);
    CHECK_EQ(st.total_size, 1);
    CHECK_EQ(st.evictions, 0);
    backlite_storage_free(s);
    backlite_storage_free(t);
}

/* ------------------------------------------------ already expired, under a lock */

static int32_t compute_w(void *ud, backlite_sink *sink) {
    ++*(int *)ud;
    return backlite_sink_write(sink, (const uint8_t *)"w", 1) == BACKLITE_RESULT_OK ? 0 : 1;
}

/*
 * A write that stores nothing (already expired: 0 ms, or a default of 0 ms; an empty
 * batch, or one whose entries are all expired) of keys that have no row removes
 * nothing either: it writes nothing, so it does not wait for another process's write
 * lock, as a too-large set of such a key does not (test_probe_core10). Before, each
 * waited out the busy timeout and failed BUSY ("beginning a write: database is
 * locked"), and a cached_call lost the value it had computed, where a too-large one
 * returned it. A key with a row is a write: BUSY.
 */
static void a_write_that_stores_nothing_of_keys_without_value_does_not_wait_for_the_lock(void) {
    if (!h_have_python_sqlite()) SKIP("python3 with sqlite3 is not available to hold a lock");
    const char *path = tmp_path("expired-locked.db");
    backlite_storage *s = OPEN_SET(path, .busy_timeout_ms = 100);
    backlite_options *o = OPTIONS_SET(.busy_timeout_ms = 100);
    REQUIRE(o != NULL);
    REQUIRE_OK(backlite_options_set_default_expiration_ms(o, 0));
    backlite_storage *d = OPEN(path, o);
    backlite_options_free(o);
    REQUIRE(s != NULL && d != NULL);
    SET(s, "old", "older");
    lock_holder h;
    REQUIRE(holder_start(&h, path));
    CHECK_RC(backlite_storage_set(s, K("absent"), K("v"), 0, &err), BACKLITE_RESULT_OK);
    CHECK_RC(backlite_storage_set(d, K("absent"), K("v"), BACKLITE_EXPIRATION_DEFAULT, &err), BACKLITE_RESULT_OK);
    int n = 0;
    backlite_buf b = {NULL, 0};
    CHECK_RC(backlite_cached_call(s, K("absent"), compute_w, &n, NULL, 0, &b, &err), BACKLITE_RESULT_OK);
    CHECK_BUF_STR(b, "w");
    backlite_buf_free(&b);
    CHECK_RC(backlite_cached_call(d, K("absent"), compute_w, &n, NULL, BACKLITE_EXPIRATION_DEFAULT, &b, &err),
             BACKLITE_RESULT_OK);
    CHECK_BUF_STR(b, "w");
    backlite_buf_free(&b);
    CHECK_EQ(n, 2);
    backlite_entry e[2] = {{(const uint8_t *)"absent", 6, (const uint8_t *)"v", 1, 0},
                           {(const uint8_t *)"other", 5, (const uint8_t *)"v", 1, BACKLITE_EXPIRATION_DEFAULT}};
    CHECK_RC(backlite_storage_set_many(s, NULL, 0, &err), BACKLITE_RESULT_OK);
    CHECK_RC(backlite_storage_set_many(s, e, 1, &err), BACKLITE_RESULT_OK);
    CHECK_RC(backlite_storage_set_many(d, e, 2, &err), BACKLITE_RESULT_OK);
    /* a key with a value: the write removes it, and waits */
    CHECK_RC(backlite_storage_set(s, K("old"), K("v"), 0, &err), BACKLITE_RESULT_BUSY);
    e[1].key = (const uint8_t *)"old";
    e[1].key_len = 3;
    CHECK_RC(backlite_storage_set_many(d, e, 2, &err), BACKLITE_RESULT_BUSY);
    /* a live entry in the batch: a write */
    e[1].expiration_ms = NEVER;
    e[1].key = (const uint8_t *)"new";
    CHECK_RC(backlite_storage_set_many(s, e, 2, &err), BACKLITE_RESULT_BUSY);
    GET_EQ(s, "old", "older");
    GET_MISSING(s, "absent");
    GET_MISSING(s, "new");
    holder_release(&h);
    holder_finish(&h);
    e[1].key = (const uint8_t *)"old";
    e[1].expiration_ms = 0;
    CHECK_RC(backlite_storage_set_many(s, e, 2, &err), BACKLITE_RESULT_OK);
    GET_MISSING(s, "old");
    GET_MISSING(d, "absent");
    backlite_stats st = STATS(s);
    CHECK_EQ(st.count, 0);
    CHECK_EQ(st.total_size, 0);
    CHECK_EQ(st.evictions, 0);
    backlite_storage_free(s);
    backlite_storage_free(d);
}

/* ------------------------------------------------ clear and leases */

static int32_t compute_clears(void *ud, backlite_sink *sink) {
    backlite_error *e = NULL;
    backlite_result rc = backlite_storage_clear(ud, &e);
    CHECK_EQ(rc, BACKLITE_RESULT_OK);
    backlite_error_free(e);
    return backlite_sink_write(sink, (const uint8_t *)"v", 1) == BACKLITE_RESULT_OK ? 0 : 1;
}

/*
 * A clear removes every entry, not the leases of keys being computed: an exclusive
 * compute that clears the cache still stores and returns its value, and a lease held
 * across another handle's clear still keeps its key and is fulfilled.
 */
static void a_clear_keeps_the_leases_of_keys_being_computed(void) {
    const char *path = tmp_path("clear-lease.db");
    backlite_storage *s = OPEN(path, NULL);
    backlite_storage *t = OPEN(path, NULL);
    REQUIRE(s != NULL && t != NULL);
    SET(s, "other", "o");
    backlite_buf b = {NULL, 0};
    CHECK_OK(backlite_cached_call_exclusive(s, K("k"), compute_clears, s, NEVER, 1000, &b, &err));
    CHECK_BUF_STR(b, "v");
    backlite_buf_free(&b);
    GET_EQ(s, "k", "v");
    CHECK(!HAS(s, "other"));
    backlite_lease *lease = NULL, *l2 = NULL;
    CHECK_RC(backlite_lease_try_acquire(s, K("j"), 60000, &b, &lease, &err), BACKLITE_RESULT_NOT_FOUND);
    REQUIRE(lease != NULL);
    CHECK_OK(backlite_storage_clear(t, &err));
    CHECK_RC(backlite_lease_try_acquire(t, K("j"), 60000, &b, &l2, &err), BACKLITE_RESULT_LEASE_HELD);
    CHECK(l2 == NULL);
    CHECK_OK(backlite_lease_fulfill(lease, K("x"), NEVER, &err));
    GET_EQ(t, "j", "x");
    backlite_storage_free(s);
    backlite_storage_free(t);
}

int main(void) {
    h_begin();
    RUN(a_refused_batch_names_its_entry_and_stores_nothing);
    RUN(a_write_that_stores_nothing_of_keys_without_value_does_not_wait_for_the_lock);
    RUN(every_call_on_a_cache_file_without_write_permission_answers_its_code);
    RUN(a_refused_fulfil_releases_the_lease_and_removes_what_a_set_would);
    RUN(a_clear_keeps_the_leases_of_keys_being_computed);
    return h_end();
}
