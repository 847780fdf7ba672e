/*
 * Thirteenth probe round of the local cache contract (API.md), kept as tests.
 *
 * a_write_that_waited_for_the_lock_counts_its_time_from_its_store: the expiration of
 * a set, and the length of a lease, run from when the write holds the file, not from
 * before it waited for another process's write lock.
 * a_damaged_lease_row_is_taken_over: a lease row of the wrong column types is no
 * owner's lease, taken over by the next caller.
 * a_damaged_version_tag_is_another_tag: a version tag that is not text is another tag.
 * sets_of_threads_behind_a_lock_are_busy_after_their_busy_timeout: a group commit
 * refused the lock is BUSY for all its sets at once.
 * a_cache_whose_state_row_was_removed_is_repaired: a missing state row is damaged
 * counters, which a check with repair puts back.
 */
#include "backlite.h"
#include "harness.h"
#include "lock_holder.h"

#include <pthread.h>

/* ------------------------------------------- time counted from the store */

typedef struct {
    backlite_storage *s;
    bool lease; /* take a lease, else set */
    backlite_result rc;
    backlite_lease *taken;
} waiting_write;

static void *write_behind_the_lock(void *arg) {
    waiting_write *w = arg;
    if (w->lease) {
        backlite_buf b = {NULL, 0};
        w->rc = backlite_lease_try_acquire(w->s, K("leased"), 3000, &b, &w->taken, NULL);
        backlite_buf_free(&b);
    } else {
        w->rc = backlite_storage_set(w->s, K("k"), K("v"), 3000, NULL);
    }
    return NULL;
}

/* runs w in a thread while another process holds the file's write lock for 4 s,
 * longer than the 3 s that w asks for */
static bool waits_for_the_lock(const char *path, waiting_write *w) {
    lock_holder h;
    if (!holder_start(&h, path)) return false;
    pthread_t t;
    if (pthread_create(&t, NULL, write_behind_the_lock, w) != 0) return false;
    h_sleep_ms(4000);
    holder_release(&h);
    pthread_join(t, NULL);
    holder_finish(&h);
    return true;
}

/*
 * Another process holds the file's write lock for longer than the expiration asked
 * for; a set waits it out within the busy timeout, and returns OK. The entry then
 * lives for its expiration from its store on: a get right after the set returned finds
 * it, with time left. So for a lease taken behind the lock: it is still held when the
 * call returns (another try is LEASE_HELD). Before, the clock was read before the wait
 * for the lock, so the entry was stored already expired (OK, then NOT_FOUND at once)
 * and the lease with its deadline passed (taken over by the next caller at once). The
 * sleep only makes the wait longer than the time asked for; no duration is asserted:
 * 3 s of slack separate the store from the look that follows it.
 */
static void a_write_that_waited_for_the_lock_counts_its_time_from_its_store(void) {
    if (!h_have_python_sqlite()) SKIP("no python3 with sqlite3 to hold the lock");
    const char *path = tmp_path("waited.db");
    backlite_storage *s = OPEN_SET(path, .busy_timeout_ms = 120000);
    REQUIRE(s);
    SET(s, "before", "1");

    waiting_write set = {s, false, -1, NULL};
    REQUIRE(waits_for_the_lock(path, &set));
    CHECK_EQ(set.rc, BACKLITE_RESULT_OK);
    backlite_buf b = {NULL, 0};
    int64_t left = 0;
    CHECK_OK(backlite_storage_get(s, K("k"), &b, &left, &err));
    CHECK_BUF_STR(b, "v");
    backlite_buf_free(&b);
    CHECK(left > 0 && left <= 3000);
    CHECK(HAS(s, "k"));
    CHECK_EQ(STATS(s).count, 2);

    waiting_write lease = {s, true, -1, NULL};
    REQUIRE(waits_for_the_lock(path, &lease));
    CHECK_EQ(lease.rc, BACKLITE_RESULT_NOT_FOUND);
    backlite_lease *again = NULL;
    CHECK_RC(backlite_lease_try_acquire(s, K("leased"), 3000, &b, &again, &err), BACKLITE_RESULT_LEASE_HELD);
    backlite_lease_abandon(again);
    if (lease.taken) CHECK_OK(backlite_lease_fulfill(lease.taken, K("computed"), NEVER, &err));
    GET_EQ(s, "leased", "computed");
    backlite_storage_free(s);
}

/* ------------------------------------------------- damaged lease rows */

static int32_t compute_v(void *ud, backlite_sink *sink) {
    ++*(int *)ud;
    return backlite_sink_write(sink, (const uint8_t *)"v", 1) == BACKLITE_RESULT_OK ? 0 : 1;
}

/*
 * A lease row whose columns are not of the types BackLite writes (a deadline, a start
 * time or an owner's boot id of another type: a damaged file, or another program's
 * write) is no owner's lease: the next caller takes the key over, computes it once and
 * stores it, as a damaged entry is a miss. Before, every exclusive call and every
 * lease call on such a key failed with INTERNAL ("reading a lease: Invalid column
 * type Text at index: 3, name: deadline"), and kept failing after a check with repair,
 * which found the file healthy.
 */
static void a_damaged_lease_row_is_taken_over(void) {
    if (!h_have_python_sqlite()) SKIP("no python3 with sqlite3 to damage the file");
    const char *path = tmp_path("leases.db");
    backlite_storage *s = OPEN(path, NULL);
    REQUIRE(s);
    SET(s, "x", "1");
    backlite_storage_free(s);
    REQUIRE(h_python_sqlite(path, "INSERT INTO leases VALUES (x'61', 1, 1, 1, 'boot', 'soon')"));
    REQUIRE(h_python_sqlite(path, "INSERT INTO leases VALUES (x'62', 1, 1, 'then', 'boot', 99999999999999)"));
    REQUIRE(h_python_sqlite(path, "INSERT INTO leases VALUES (x'63', 1, 1, 1, x'00', 99999999999999)"));
    REQUIRE(h_python_sqlite(path, "INSERT INTO leases VALUES (x'64', 1, 1.5, 1, 'boot', 99999999999999)"));
    s = OPEN(path, NULL);
    REQUIRE(s);
    const char *keys[] = {"a", "b", "c", "d"};
    for (int i = 0; i < 4; i++) {
        int computed = 0;
        backlite_buf b = {NULL, 0};
        if (i % 2 == 0) {
            CHECK_OK(backlite_cached_call_exclusive(s, K(keys[i]), compute_v, &computed, NEVER, 0, &b, &err));
            CHECK_BUF_STR(b, "v");
            backlite_buf_free(&b);
        } else {
            backlite_lease *l = NULL;
            CHECK_RC(backlite_lease_try_acquire(s, K(keys[i]), 60000, &b, &l, &err), BACKLITE_RESULT_NOT_FOUND);
            if (l) CHECK_OK(backlite_lease_fulfill(l, K("v"), NEVER, &err));
            computed = 1;
        }
        CHECK_EQ(computed, 1);
        GET_EQ(s, keys[i], "v");
        /* stored: a hit now, nothing computed again */
        CHECK_OK(backlite_cached_call_exclusive(s, K(keys[i]), compute_v, &computed, NEVER, 0, &b, &err));
        backlite_buf_free(&b);
        CHECK_EQ(computed, 1);
    }
    CHECK_EQ(STATS(s).count, 5);
    backlite_storage_free(s);
}

/* ------------------------------------------------- a damaged version tag */

/*
 * A version tag recorded as something else than text (a blob: a damaged file, or
 * another program's write) is no tag a caller can give: an open with a tag drops the
 * entries, as for another tag, and records its own, which the next open with it then
 * finds (the entries set meanwhile are kept); an open without a tag ignores it, as it
 * ignores any tag. Before, every open with a tag failed with INTERNAL ("reading the
 * version tag: Invalid column type Blob"), so the file could not be opened by a program
 * that uses tags until it was deleted.
 */
static void a_damaged_version_tag_is_another_tag(void) {
    if (!h_have_python_sqlite()) SKIP("no python3 with sqlite3 to damage the file");
    const char *path = tmp_path("tag.db");
    backlite_options *o = OPTIONS_SET(.version_tag = "1");
    backlite_storage *s = OPEN(path, o);
    REQUIRE(s);
    SET(s, "x", "1");
    backlite_storage_free(s);
    REQUIRE(h_python_sqlite(path, "UPDATE state SET version_tag = x'31'"));

    s = OPEN(path, NULL); /* without a tag: the tag is not looked at */
    REQUIRE(s);
    GET_EQ(s, "x", "1");
    backlite_storage_free(s);

    s = OPEN(path, o);
    if (s != NULL) {
        GET_MISSING(s, "x");
        backlite_stats st = STATS(s);
        CHECK_EQ(st.count, 0);
        CHECK_EQ(st.total_size, 0);
        SET(s, "y", "22");
        backlite_storage_free(s);
    }
    s = OPEN(path, o);
    if (s != NULL) {
        GET_EQ(s, "y", "22");
        CHECK_EQ(STATS(s).count, 1);
        backlite_storage_free(s);
    }
    backlite_options_free(o);
}

/* ---------------------------------------- threads behind another's lock */

typedef struct {
    backlite_storage *s;
    int i;
    backlite_result rc;
} thread_set;

static void *set_one(void *arg) {
    thread_set *t = arg;
    char key[16];
    snprintf(key, sizeof key, "t%d", t->i);
    t->rc = backlite_storage_set(t->s, K(key), K("v"), NEVER, NULL);
    return NULL;
}

/*
 * Eight threads set through one handle while another process holds the file's write
 * lock for longer than their busy timeout (1 s; the lock is held 6 s): every set is
 * BUSY, as each waited the busy timeout for the lock (the sets queued behind the first
 * share one transaction: group commit). Before, a group that failed BUSY wrote each of
 * its sets again alone, each waiting the busy timeout once more, so the last of seven
 * answered after eight busy timeouts; those still waiting when the lock was released
 * were stored (OK). The sleep only outlasts the busy timeouts; no duration is asserted.
 */
static void sets_of_threads_behind_a_lock_are_busy_after_their_busy_timeout(void) {
    if (!h_have_python_sqlite()) SKIP("no python3 with sqlite3 to hold the lock");
    const char *path = tmp_path("busy.db");
    backlite_storage *s = OPEN_SET(path, .busy_timeout_ms = 1000);
    REQUIRE(s);
    SET(s, "before", "1");
    lock_holder h;
    REQUIRE(holder_start(&h, path));
    thread_set ts[8];
    pthread_t th[8];
    for (int i = 0; i < 8; i++) {
        ts[i] = (thread_set){s, i, -1};
        REQUIRE(pthread_create(&th[i], NULL, set_one, &ts[i]) == 0);
    }
    h_sleep_ms(6000); /* three times the two busy timeouts the last set waits */
    holder_release(&h);
    for (int i = 0; i < 8; i++) pthread_join(th[i], NULL);
    holder_finish(&h);
    for (int i = 0; i < 8; i++) CHECK_EQ(ts[i].rc, BACKLITE_RESULT_BUSY);
    CHECK_EQ(STATS(s).count, 1);
    backlite_storage_free(s);
}

/* --------------------------------------------- a state row removed */

/*
 * A cache whose `state` row was removed behind BackLite's back (DELETE FROM state, by
 * another program) has damaged counters, as README's Integrity says: stats (and the
 * lifetime counters) give CORRUPT, and a write that needs the row too; a check
 * reports the counters damaged (recorded at UINT64_MAX); a check with repair puts the
 * row back and recounts, and every call works again, its counts exact. Before, stats,
 * check and check with repair all failed with INTERNAL ("reading the cache counters:
 * Query returned no rows"), and in an empty cache every write too, for good: nothing
 * short of deleting the file repaired it.
 */
static void a_cache_whose_state_row_was_removed_is_repaired(void) {
    if (!h_have_python_sqlite()) SKIP("no python3 with sqlite3 to damage the file");
    for (int with_entries = 0; with_entries < 2; with_entries++) {
        const char *path = tmp_path(with_entries ? "state1.db" : "state0.db");
        backlite_storage *s = OPEN(path, NULL);
        REQUIRE(s);
        if (with_entries) {
            SET(s, "x", "1");
            SET(s, "y", "22");
        }
        backlite_storage_free(s);
        REQUIRE(h_python_sqlite(path, "DELETE FROM state"));
        s = OPEN(path, NULL);
        REQUIRE(s);
        backlite_stats st;
        CHECK_RC(backlite_storage_stats(s, &st, &err), BACKLITE_RESULT_CORRUPT);
        backlite_lifetime_stats ls;
        CHECK_RC(backlite_storage_lifetime_stats(s, &ls, &err), BACKLITE_RESULT_CORRUPT);
        if (!with_entries) CHECK_RC(backlite_storage_set(s, K("z"), K("333"), NEVER, &err), BACKLITE_RESULT_CORRUPT);
        backlite_check_report r;
        memset(&r, 0, sizeof r);
        CHECK_OK(backlite_storage_check(s, 0, &r, &err));
        CHECK_EQ(r.healthy, 0);
        CHECK(r.recorded_count == UINT64_MAX && r.recorded_total_size == UINT64_MAX);
        CHECK_EQ(r.actual_count, with_entries ? 2 : 0);
        memset(&r, 0, sizeof r);
        CHECK_OK(backlite_storage_check(s, 1, &r, &err));
        CHECK_EQ(r.healthy, 1);
        CHECK_EQ(r.repaired, 1);
        memset(&r, 0, sizeof r);
        CHECK_OK(backlite_storage_check(s, 0, &r, &err));
        CHECK_EQ(r.healthy, 1);

        SET(s, "z", "333");
        if (with_entries) GET_EQ(s, "x", "1");
        st = STATS(s);
        CHECK_EQ(st.count, with_entries ? 3 : 1);
        CHECK_EQ(st.total_size, with_entries ? 6 : 3);
        CHECK_OK(backlite_storage_lifetime_stats(s, &ls, &err));
        CHECK_OK(backlite_storage_clear(s, &err));
        CHECK_EQ(STATS(s).count, 0);
        SET(s, "w", "4444");
        backlite_storage_free(s);
        s = OPEN(path, NULL);
        REQUIRE(s);
        st = STATS(s);
        CHECK_EQ(st.count, 1);
        CHECK_EQ(st.total_size, 4);
        backlite_storage_free(s);
    }
}

int main(void) {
    h_begin();
    RUN(a_write_that_waited_for_the_lock_counts_its_time_from_its_store);
    RUN(a_damaged_lease_row_is_taken_over);
    RUN(a_damaged_version_tag_is_another_tag);
    RUN(sets_of_threads_behind_a_lock_are_busy_after_their_busy_timeout);
    RUN(a_cache_whose_state_row_was_removed_is_repaired);
    return h_end();
}
