/*
 * Fourteenth probe round of the local cache contract (API.md), kept as tests.
 *
 * a_zero_of_the_lifetime_counters_keeps_no_hit_made_before_it: hits made before
 * backlite_storage_zero_stats never reach the zeroed counters, even when another
 * handle's write of the same process had taken them and was waiting for the file.
 * the_lifetime_counters_keep_the_hits_a_waiting_write_is_to_write: hits made and not
 * yet written stay in backlite_storage_lifetime_stats while a write of the process
 * that is to write them waits for another process's write lock.
 * the_lifetime_hits_never_go_down_while_threads_read_and_write: read again and again
 * while other threads get and set, the lifetime hits never go down.
 */
#include "backlite.h"
#include "harness.h"
#include "lock_holder.h"
#include "thread_state.h"

#include <pthread.h>

/* ------------------------------------------------ zero and waiting writes */

typedef struct {
    backlite_storage *s;
    const char *key;
    backlite_result rc;
    atomic_int tid; /* the thread's kernel id, once it runs */
} thread_call;

static void *set_in_thread(void *arg) {
    thread_call *c = arg;
    atomic_store(&c->tid, (int)thread_id());
    c->rc = backlite_storage_set(c->s, (const uint8_t *)c->key, strlen(c->key), K("v"), NEVER, NULL);
    return NULL;
}

static void *zero_in_thread(void *arg) {
    thread_call *c = arg;
    atomic_store(&c->tid, (int)thread_id());
    c->rc = backlite_storage_zero_stats(c->s, NULL);
    return NULL;
}

/* the kernel id of the thread running `c`, once it has one */
static pid_t tid_of(thread_call *c) {
    while (atomic_load(&c->tid) == 0) h_sleep_ms(1);
    return (pid_t)atomic_load(&c->tid);
}

/*
 * Handle a reads a key 5 times: 5 hits wait in memory. Another process holds the
 * file's write lock; a set through handle b of the same process begins its write
 * (taking the waiting hits to write them) and waits for the lock: it sleeps in
 * SQLite's busy handler. Then a's zero_stats is called, and once it waits too (on the
 * process's turn to write, which the set holds) the lock is let go. Both run and
 * zero_stats has returned: the 5 hits were made before it, so the zeroed counters must
 * not hold them. Before, zero_stats did not take the process's turn to write: when it
 * got the file first, it dropped the hits still waiting (none: the set had them) and
 * the set then wrote the 5 hits into the zeroed counters. The steps are ordered by the
 * threads' states (thread_state.h), not by sleeps.
 */
static void a_zero_of_the_lifetime_counters_keeps_no_hit_made_before_it(void) {
    if (!h_have_python_sqlite()) SKIP("no python3 with sqlite3 to hold the lock");
    const char *path = tmp_path("zero.db");
    backlite_storage *a = OPEN_SET(path, .busy_timeout_ms = 120000);
    backlite_storage *b = OPEN_SET(path, .busy_timeout_ms = 120000);
    REQUIRE(a && b);
    SET(a, "k", "v");
    for (int round = 0; round < 2; ++round) {
        for (int i = 0; i < 5; ++i) GET_EQ(a, "k", "v");
        lock_holder h;
        REQUIRE(holder_start(&h, path));
        char key[32];
        snprintf(key, sizeof key, "set%d", round);
        thread_call set = {b, key, -1, 0}, zero = {a, NULL, -1, 0};
        pthread_t ts, tz;
        REQUIRE(pthread_create(&ts, NULL, set_in_thread, &set) == 0);
        /* the set has taken the hits and waits for the lock */
        wait_until_thread_in(tid_of(&set), is_sleep_syscall);
        REQUIRE(pthread_create(&tz, NULL, zero_in_thread, &zero) == 0);
        /* the zero waits for the set's turn to write */
        wait_until_thread_in(tid_of(&zero), is_futex_syscall);
        holder_release(&h); /* it commits 0.3 s later */
        pthread_join(ts, NULL);
        pthread_join(tz, NULL);
        holder_finish(&h);
        CHECK_EQ(set.rc, BACKLITE_RESULT_OK);
        CHECK_EQ(zero.rc, BACKLITE_RESULT_OK);
        backlite_lifetime_stats life = LIFETIME(a);
        if (life.hits != 0) fprintf(stderr, "round %d: %" PRIu64 " hits after the zero\n", round, life.hits);
        CHECK_EQ(life.hits, 0);
        CHECK_EQ(life.misses, 0);
        backlite_storage_free(b);
        b = OPEN_SET(path, .busy_timeout_ms = 120000);
        REQUIRE(b);
        CHECK_EQ(LIFETIME(a).hits, 0);
    }
    backlite_storage_free(a);
    backlite_storage_free(b);
}

/*
 * 5 hits wait in memory; another process holds the file's write lock, and a set of
 * the same process (which is to write those hits) waits for it. Meanwhile
 * lifetime_stats, which adds this process's unwritten hits to the file's, must still
 * count them: the hits happened, and a counter read again must never go down. Before,
 * the set took the hits before it waited for the lock, so for as long as it waited
 * (up to its busy timeout) they were neither in the file nor waiting: lifetime_stats
 * said 0 hits, and 5 again once the set had committed (or failed).
 */
static void the_lifetime_counters_keep_the_hits_a_waiting_write_is_to_write(void) {
    if (!h_have_python_sqlite()) SKIP("no python3 with sqlite3 to hold the lock");
    const char *path = tmp_path("waiting.db");
    backlite_storage *s = OPEN_SET(path, .busy_timeout_ms = 120000);
    REQUIRE(s);
    SET(s, "k", "v");
    for (int i = 0; i < 5; ++i) GET_EQ(s, "k", "v");
    backlite_buf b = {NULL, 0};
    CHECK_RC(backlite_storage_get(s, K("absent"), &b, NULL, &err), BACKLITE_RESULT_NOT_FOUND);
    backlite_lifetime_stats before = LIFETIME(s);
    CHECK_EQ(before.hits, 5);
    CHECK_EQ(before.misses, 1);
    lock_holder h;
    REQUIRE(holder_start(&h, path));
    thread_call set = {s, "other", -1, 0};
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, set_in_thread, &set) == 0);
    /* the set has taken the hits and waits for the lock in SQLite's busy handler */
    wait_until_thread_in(tid_of(&set), is_sleep_syscall);
    backlite_lifetime_stats during = LIFETIME(s);
    holder_release(&h);
    pthread_join(t, NULL);
    holder_finish(&h);
    CHECK_EQ(set.rc, BACKLITE_RESULT_OK);
    CHECK_EQ(during.hits, before.hits);
    CHECK_EQ(during.misses, before.misses);
    backlite_lifetime_stats after = LIFETIME(s);
    CHECK_EQ(after.hits, before.hits);
    CHECK_EQ(after.misses, before.misses);
    backlite_storage_free(s);
}

typedef struct {
    backlite_storage *s;
    atomic_int *stop;
    bool sets;
} busy_thread;

static void *get_or_set_until_stopped(void *arg) {
    busy_thread *b = arg;
    for (int i = 0; !atomic_load(b->stop); ++i) {
        if (b->sets) {
            char key[16];
            snprintf(key, sizeof key, "s%d", i % 100);
            backlite_storage_set(b->s, (const uint8_t *)key, strlen(key), K("v"), NEVER, NULL);
        } else {
            backlite_buf v = {NULL, 0};
            backlite_storage_get(b->s, K("k"), &v, NULL, NULL);
            backlite_buf_free(&v);
        }
    }
    return NULL;
}

/*
 * Two threads get a key, a third sets others (each set writes the hits waiting), and
 * the main thread reads the lifetime counters again and again: the hits are counted
 * once each, so they never go down from one read to the next. Before, a set's hits
 * were in neither place from its take to its commit: 4 to 13 reads of 20,000 went
 * down on this machine.
 */
static void the_lifetime_hits_never_go_down_while_threads_read_and_write(void) {
    backlite_storage *s = OPEN(tmp_path("monotonic.db"), NULL);
    REQUIRE(s);
    SET(s, "k", "v");
    atomic_int stop = 0;
    busy_thread busy[3] = {{s, &stop, false}, {s, &stop, false}, {s, &stop, true}};
    pthread_t t[3];
    for (int i = 0; i < 3; ++i) REQUIRE(pthread_create(&t[i], NULL, get_or_set_until_stopped, &busy[i]) == 0);
    int reads = h_under_valgrind() ? 2000 : 20000, down = 0;
    uint64_t last = 0;
    for (int i = 0; i < reads; ++i) {
        backlite_lifetime_stats life = LIFETIME(s);
        if (life.hits < last) ++down;
        last = life.hits;
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < 3; ++i) pthread_join(t[i], NULL);
    CHECK_EQ(down, 0);
    CHECK(LIFETIME(s).hits >= last);
    backlite_storage_free(s);
}

int main(void) {
    h_begin();
    RUN(a_zero_of_the_lifetime_counters_keeps_no_hit_made_before_it);
    RUN(the_lifetime_counters_keep_the_hits_a_waiting_write_is_to_write);
    RUN(the_lifetime_hits_never_go_down_while_threads_read_and_write);
    return h_end();
}
