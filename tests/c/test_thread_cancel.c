/*
 * A thread cancelled (pthread_cancel) while it is inside a BackLite call does not take
 * the process down: the call runs to its end, and the cancel takes effect at the
 * thread's next cancellation point after it. glibc cancels by a forced unwind, and one
 * begun inside the library (its sleeps while waiting for a lease, a compute's own
 * sleep) aborted the process: "FATAL: exception not rethrown".
 */
#include <pthread.h>
#include <stdatomic.h>

#include "backlite.h"
#include "harness.h"

typedef struct {
    backlite_storage *s;
    const char *key;
    atomic_int entering;   /* set just before the call */
    atomic_int returned;   /* set once it returned */
    backlite_result rc;
} call_state;

static atomic_int computing;
static atomic_int cancel_sent;

/* computes until the test has sent its cancel, sleeping (a cancellation point) inside
 * the library's call meanwhile */
static int32_t compute_slowly(void *user_data, backlite_sink *sink) {
    atomic_int *computing = user_data;
    atomic_store(computing, 1);
    while (!atomic_load(&cancel_sent)) usleep(1000);
    return backlite_sink_write(sink, (const uint8_t *)"computed", 8);
}

/* after its call, waits at cancellation points for the cancel that must come */
static void *run_then_wait_for_the_cancel(call_state *st, backlite_result rc) {
    st->rc = rc;
    atomic_store(&st->returned, 1);
    for (int i = 0; i < 600; i++) usleep(100 * 1000);
    return NULL; /* never cancelled: the join sees NULL */
}

static void *wait_for_a_lease(void *arg) {
    call_state *st = arg;
    backlite_buf out = {0};
    atomic_store(&st->entering, 1);
    backlite_result rc = backlite_cached_call_exclusive(st->s, (const uint8_t *)st->key,
                                                        strlen(st->key), compute_slowly,
                                                        &computing, BACKLITE_EXPIRATION_NEVER,
                                                        1000, &out, NULL);
    backlite_buf_free(&out);
    return run_then_wait_for_the_cancel(st, rc);
}

static void *compute_through_a_cancel(void *arg) {
    call_state *st = arg;
    backlite_buf out = {0};
    atomic_store(&st->entering, 1);
    backlite_result rc = backlite_cached_call(st->s, (const uint8_t *)st->key, strlen(st->key),
                                              compute_slowly, &computing, NULL,
                                              BACKLITE_EXPIRATION_NEVER, &out, NULL);
    backlite_buf_free(&out);
    return run_then_wait_for_the_cancel(st, rc);
}

static void wait_until(atomic_int *flag) {
    for (int i = 0; i < 60000 && !atomic_load(flag); i++) usleep(1000);
}

/* cancels a thread inside `body`'s call; true if it ended cancelled, after the call */
static bool cancel_inside(call_state *st, void *(*body)(void *), atomic_int *inside) {
    pthread_t t;
    if (pthread_create(&t, NULL, body, st) != 0) return false;
    atomic_store(&cancel_sent, 0);
    wait_until(inside);
    /* a cancel sent before the call's first cancellation point is acted on there */
    CHECK(!atomic_load(&st->returned));
    pthread_cancel(t);
    atomic_store(&cancel_sent, 1);
    void *ended = NULL;
    pthread_join(t, &ended);
    CHECK(atomic_load(&st->returned));
    return ended == PTHREAD_CANCELED;
}

static void a_thread_cancelled_while_it_waits_for_a_lease_ends_after_the_call(void) {
    backlite_storage *s = OPEN(tmp_path("lease.db"), NULL);
    REQUIRE(s != NULL);
    backlite_lease *lease = NULL;
    backlite_buf none = {0};
    CHECK_RC(backlite_lease_try_acquire(s, (const uint8_t *)"k", 1, 60000, &none, &lease, NULL),
             BACKLITE_RESULT_NOT_FOUND);
    REQUIRE(lease != NULL);
    call_state st = {.s = s, .key = "k"};
    atomic_store(&computing, 0);
    CHECK(cancel_inside(&st, wait_for_a_lease, &st.entering));
    /* the wait ran out with the lease still held: LEASE_HELD, nothing computed */
    CHECK_EQ(st.rc, BACKLITE_RESULT_LEASE_HELD);
    CHECK(!atomic_load(&computing));
    backlite_lease_abandon(lease);
    /* the handle and the key work on */
    backlite_buf out = {0};
    CHECK_OK(backlite_cached_call_exclusive(s, (const uint8_t *)"k", 1, compute_slowly,
                                            &computing, BACKLITE_EXPIRATION_NEVER, 1000, &out,
                                            NULL));
    CHECK_BUF_STR(out, "computed");
    backlite_buf_free(&out);
    backlite_storage_free(s);
}

static void a_thread_cancelled_in_its_compute_stores_the_value_then_ends(void) {
    backlite_storage *s = OPEN(tmp_path("compute.db"), NULL);
    REQUIRE(s != NULL);
    call_state st = {.s = s, .key = "c"};
    atomic_store(&computing, 0);
    CHECK(cancel_inside(&st, compute_through_a_cancel, &computing));
    CHECK_OK(st.rc);
    backlite_buf out = {0};
    CHECK_OK(backlite_storage_get(s, (const uint8_t *)"c", 1, &out, NULL, NULL));
    CHECK_BUF_STR(out, "computed");
    backlite_buf_free(&out);
    backlite_storage_free(s);
}

int main(void) {
    h_begin();
    RUN(a_thread_cancelled_while_it_waits_for_a_lease_ends_after_the_call);
    RUN(a_thread_cancelled_in_its_compute_stores_the_value_then_ends);
    return h_end();
}
