/*
 * Fourteenth probe round of the local cache contract (API.md), kept as tests.
 *
 * a_zero_of_the_lifetime_counters_keeps_no_hit_made_before_it: hits made before
 * backlite_storage_zero_stats never reach the zeroed counters, even when another
 * handle's write of the same process had taken them and was waiting for the file.
 */
#include "backlite.h"
#include "harness.h"
#include "lock_holder.h"

#include <pthread.h>

/* ------------------------------------------------ zero and waiting writes */

typedef struct {
    backlite_storage *s;
    const char *key;
    backlite_result rc;
} thread_call;

static void *set_in_thread(void *arg) {
    thread_call *c = arg;
    c->rc = backlite_storage_set(c->s, (const uint8_t *)c->key, strlen(c->key), K("v"), NEVER, NULL);
    return NULL;
}

static void *zero_in_thread(void *arg) {
    thread_call *c = arg;
    c->rc = backlite_storage_zero_stats(c->s, NULL);
    return NULL;
}

/*
 * Handle a reads a key 5 times: 5 hits wait in memory. Another process holds the
 * file's write lock; a set through handle b of the same process begins its write
 * (taking the waiting hits to write them) and waits for the lock; then a's
 * zero_stats is called and waits too. Once the lock is free both run, in either
 * order, and zero_stats has returned: the 5 hits were made before it, so the zeroed
 * counters must not hold them. Before, zero_stats did not take the process's turn to
 * write: when it got the file first, it dropped the hits still waiting (none: the set
 * had them) and the set then wrote the 5 hits into the zeroed counters. Each round
 * gives the zero a chance to win the lock; no duration is asserted.
 */
static void a_zero_of_the_lifetime_counters_keeps_no_hit_made_before_it(void) {
    if (!h_have_python_sqlite()) SKIP("no python3 with sqlite3 to hold the lock");
    const char *path = tmp_path("zero.db");
    backlite_storage *a = OPEN_SET(path, .busy_timeout_ms = 120000);
    backlite_storage *b = OPEN_SET(path, .busy_timeout_ms = 120000);
    REQUIRE(a && b);
    SET(a, "k", "v");
    for (int round = 0; round < 4; ++round) {
        for (int i = 0; i < 5; ++i) GET_EQ(a, "k", "v");
        lock_holder h;
        REQUIRE(holder_start(&h, path));
        char key[32];
        snprintf(key, sizeof key, "set%d", round);
        thread_call set = {b, key, -1}, zero = {a, NULL, -1};
        pthread_t ts, tz;
        REQUIRE(pthread_create(&ts, NULL, set_in_thread, &set) == 0);
        /* the set waits for the lock long enough for its busy handler's longest pause */
        h_sleep_ms(1500);
        holder_release(&h); /* it commits 0.3 s later */
        h_sleep_ms(200);
        REQUIRE(pthread_create(&tz, NULL, zero_in_thread, &zero) == 0);
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

int main(void) {
    h_begin();
    RUN(a_zero_of_the_lifetime_counters_keeps_no_hit_made_before_it);
    return h_end();
}
