/* backlite_cached_call and backlite_sink_write: memoisation, with and without a barrier. */
#include "backlite.h"
#include "harness.h"

#define DEFAULT BACKLITE_EXPIRATION_DEFAULT
#define MAGIC 0x5eed
#define BARRIER_MAGIC 0xba77

struct ctx;
typedef struct barrier_ud { /* the barrier's own user_data, apart from compute's */
    int magic;
    struct ctx *c;
} barrier_ud;

typedef struct ctx {
    int magic;
    barrier_ud bud;
    int compute_calls, lock_calls, unlock_calls;
    const char *pieces[8];       /* what compute writes, piece by piece (NULL ends) */
    size_t big;                  /* then this many extra bytes of 'z' */
    int32_t compute_result;      /* compute returns this */
    int32_t lock_result;         /* lock returns this */
    backlite_storage *s;         /* for callbacks that look at the storage */
    const char *key;             /* the key of the call, checked by unlock */
    int stored_at_unlock;        /* contains(key) in unlock: 1 OK, 0 NOT_FOUND, -1 other */
    const char *fill_value;      /* lock sets key to this through s (another caller did it) */
    char events[32];             /* L = lock, C = compute, U = unlock */
} ctx;

static void ev(ctx *c, char e) {
    size_t n = strlen(c->events);
    if (n + 1 < sizeof c->events) {
        c->events[n] = e;
        c->events[n + 1] = 0;
    }
}

static int32_t compute(void *ud, backlite_sink *sink) {
    ctx *c = ud;
    if (c == NULL || c->magic != MAGIC) {
        h_fail_(__FILE__, __LINE__, "compute got a user_data that is not ours");
        return 1;
    }
    c->compute_calls++;
    ev(c, 'C');
    if (sink == NULL) h_fail_(__FILE__, __LINE__, "compute got a NULL sink");
    for (int i = 0; i < 8 && c->pieces[i]; i++)
        CHECK_RESULT(backlite_sink_write(sink, (const uint8_t *)c->pieces[i], strlen(c->pieces[i])),
                     BACKLITE_RESULT_OK);
    if (c->big > 0) {
        uint8_t *z = malloc(c->big);
        memset(z, 'z', c->big);
        CHECK_RESULT(backlite_sink_write(sink, z, c->big), BACKLITE_RESULT_OK);
        free(z);
    }
    return c->compute_result;
}

static int32_t lock(void *ud) {
    barrier_ud *bu = ud;
    if (bu == NULL || bu->magic != BARRIER_MAGIC) {
        h_fail_(__FILE__, __LINE__, "lock did not get the barrier's user_data");
        return 1;
    }
    ctx *c = bu->c;
    c->lock_calls++;
    ev(c, 'L');
    if (c->fill_value && c->lock_result == 0) /* another caller filled the key while we waited */
        SET(c->s, c->key, c->fill_value);
    return c->lock_result;
}

static void unlock(void *ud) {
    barrier_ud *bu = ud;
    if (bu == NULL || bu->magic != BARRIER_MAGIC) {
        h_fail_(__FILE__, __LINE__, "unlock did not get the barrier's user_data");
        return;
    }
    ctx *c = bu->c;
    c->unlock_calls++;
    ev(c, 'U');
    if (c->s && c->key) {
        backlite_result rc = backlite_storage_contains(c->s, K(c->key), NULL);
        c->stored_at_unlock = rc == BACKLITE_RESULT_OK ? 1 : rc == BACKLITE_RESULT_NOT_FOUND ? 0 : -1;
    }
}

static ctx new_ctx(backlite_storage *s, const char *key) {
    ctx c;
    memset(&c, 0, sizeof c);
    c.magic = MAGIC;
    c.s = s;
    c.key = key;
    c.stored_at_unlock = -2;
    return c;
}

/* barrier.user_data is c->bud, compute's user_data is c: a mix-up shows */
static backlite_barrier barrier_of(ctx *c) {
    c->bud.magic = BARRIER_MAGIC;
    c->bud.c = c;
    return (backlite_barrier){&c->bud, lock, unlock};
}

static void a_miss_computes_once_and_stores_the_value(void) {
    backlite_storage *s = OPEN(":memory:", NULL);
    REQUIRE(s != NULL);
    ctx c = new_ctx(s, "k");
    c.pieces[0] = "hello world";
    backlite_buf b = {NULL, 0};
    CHECK_OK(backlite_cached_call(s, K("k"), compute, &c, NULL, NEVER, &b, &err));
    CHECK_BUF_STR(b, "hello world");
    backlite_buf_free(&b);
    CHECK_EQ(c.compute_calls, 1);
    c.pieces[0] = "something else";
    CHECK_OK(backlite_cached_call(s, K("k"), compute, &c, NULL, NEVER, &b, &err));
    CHECK_BUF_STR(b, "hello world");
    backlite_buf_free(&b);
    CHECK_EQ(c.compute_calls, 1); /* a hit does not call compute */
    backlite_stats st = STATS(s);
    CHECK_EQ(st.misses, 1);
    CHECK_EQ(st.hits, 1);
    CHECK_EQ(st.count, 1);
    CHECK_EQ(st.total_size, 11);
    GET_EQ(s, "k", "hello world");
    backlite_storage_free(s);
}

static void a_stored_value_is_returned_without_compute(void) {
    backlite_storage *s = OPEN(":memory:", NULL);
    REQUIRE(s != NULL);
    SET(s, "k", "set directly");
    ctx c = new_ctx(s, "k");
    c.pieces[0] = "computed";
    backlite_buf b = {NULL, 0};
    CHECK_OK(backlite_cached_call(s, K("k"), compute, &c, NULL, NEVER, &b, &err));
    CHECK_BUF_STR(b, "set directly");
    backlite_buf_free(&b);
    CHECK_EQ(c.compute_calls, 0);
    backlite_storage_free(s);
}

static void compute_may_write_in_several_pieces(void) {
    backlite_storage *s = OPEN(":memory:", NULL);
    REQUIRE(s != NULL);
    ctx c = new_ctx(s, "k");
    c.pieces[0] = "hel";
    c.pieces[1] = "";
    c.pieces[2] = "lo";
    c.pieces[3] = " ";
    c.pieces[4] = "wor";
    c.pieces[5] = "ld";
    backlite_buf b = {NULL, 0};
    CHECK_OK(backlite_cached_call(s, K("k"), compute, &c, NULL, NEVER, &b, &err));
    CHECK_BUF_STR(b, "hello world");
    backlite_buf_free(&b);
    GET_EQ(s, "k", "hello world");

    /* a large piece after small ones */
    ctx c2 = new_ctx(s, "big");
    c2.pieces[0] = "head:";
    c2.big = 300000;
    CHECK_OK(backlite_cached_call(s, K("big"), compute, &c2, NULL, NEVER, &b, &err));
    CHECK_EQ(b.len, 5 + 300000);
    if (b.len == 5 + 300000) {
        CHECK(memcmp(b.data, "head:", 5) == 0);
        CHECK(b.data[5] == 'z' && b.data[b.len - 1] == 'z');
    }
    backlite_buf_free(&b);
    CHECK_EQ(STATS(s).total_size, 11 + 5 + 300000);
    backlite_storage_free(s);
}

static void compute_writing_nothing_stores_an_empty_value(void) {
    backlite_storage *s = OPEN(":memory:", NULL);
    REQUIRE(s != NULL);
    ctx c = new_ctx(s, "k");
    backlite_buf b = {NULL, 0};
    CHECK_OK(backlite_cached_call(s, K("k"), compute, &c, NULL, NEVER, &b, &err));
    CHECK_EQ(b.len, 0);
    backlite_buf_free(&b);
    CHECK_OK(backlite_storage_contains(s, K("k"), &err));
    CHECK_OK(backlite_cached_call(s, K("k"), compute, &c, NULL, NEVER, &b, &err));
    CHECK_EQ(b.len, 0);
    backlite_buf_free(&b);
    CHECK_EQ(c.compute_calls, 1); /* an empty value is a value: a hit */
    backlite_storage_free(s);
}

static int32_t compute_with_bad_writes(void *ud, backlite_sink *sink) {
    ++*(int *)ud;
    CHECK_RESULT(backlite_sink_write(NULL, (const uint8_t *)"x", 1), BACKLITE_RESULT_NULL_PARAMETER);
    CHECK_RESULT(backlite_sink_write(NULL, NULL, 0), BACKLITE_RESULT_NULL_PARAMETER);
    CHECK_RESULT(backlite_sink_write(sink, (const uint8_t *)"ab", 2), BACKLITE_RESULT_OK);
    CHECK_RESULT(backlite_sink_write(sink, NULL, 3), BACKLITE_RESULT_NULL_PARAMETER);
    CHECK_RESULT(backlite_sink_write(sink, NULL, 0), BACKLITE_RESULT_OK); /* ptr may be NULL when len is 0 */
    CHECK_RESULT(backlite_sink_write(sink, (const uint8_t *)"cd", 2), BACKLITE_RESULT_OK);
    return 0;
}

static void sink_write_rejects_null_and_keeps_what_was_written(void) {
    backlite_storage *s = OPEN(":memory:", NULL);
    REQUIRE(s != NULL);
    int calls = 0;
    backlite_buf b = {NULL, 0};
    CHECK_OK(backlite_cached_call(s, K("k"), compute_with_bad_writes, &calls, NULL, NEVER, &b, &err));
    CHECK_BUF_STR(b, "abcd");
    backlite_buf_free(&b);
    CHECK_EQ(calls, 1);
    GET_EQ(s, "k", "abcd");
    backlite_storage_free(s);
}

static int32_t compute_reusing_its_buffer(void *ud, backlite_sink *sink) {
    (void)ud;
    char piece[4] = "abc";
    CHECK_RESULT(backlite_sink_write(sink, (const uint8_t *)piece, 3), BACKLITE_RESULT_OK);
    memcpy(piece, "XYZ", 3);
    CHECK_RESULT(backlite_sink_write(sink, (const uint8_t *)piece, 3), BACKLITE_RESULT_OK);
    memcpy(piece, "###", 3);
    return 0;
}

static void sink_write_copies_its_input(void) {
    backlite_storage *s = OPEN(":memory:", NULL);
    REQUIRE(s != NULL);
    backlite_buf b = {NULL, 0};
    CHECK_OK(backlite_cached_call(s, K("k"), compute_reusing_its_buffer, NULL, NULL, NEVER, &b, &err));
    CHECK_BUF_STR(b, "abcXYZ");
    backlite_buf_free(&b);
    GET_EQ(s, "k", "abcXYZ");
    backlite_storage_free(s);
}

static void a_failing_compute_fails_the_call_and_stores_nothing(void) {
    backlite_storage *s = OPEN(":memory:", NULL);
    REQUIRE(s != NULL);
    ctx c = new_ctx(s, "k");
    c.pieces[0] = "partial";
    c.compute_result = 7;
    uint8_t sentinel = 0;
    backlite_buf b = {&sentinel, 99};
    CHECK_RC(backlite_cached_call(s, K("k"), compute, &c, NULL, NEVER, &b, &err), BACKLITE_RESULT_CALLBACK_FAILED);
    CHECK(b.data == &sentinel && b.len == 99); /* value_out untouched */
    CHECK_EQ(c.compute_calls, 1);
    GET_MISSING(s, "k");
    CHECK_EQ(STATS(s).count, 0);
    c.compute_result = -1;
    CHECK_RC(backlite_cached_call(s, K("k"), compute, &c, NULL, NEVER, &b, &err), BACKLITE_RESULT_CALLBACK_FAILED);
    CHECK_EQ(c.compute_calls, 2); /* nothing was stored: computed again */
    c.compute_result = 0;
    b = (backlite_buf){NULL, 0};
    CHECK_OK(backlite_cached_call(s, K("k"), compute, &c, NULL, NEVER, &b, &err));
    CHECK_BUF_STR(b, "partial");
    backlite_buf_free(&b);
    CHECK_EQ(c.compute_calls, 3);
    backlite_storage_free(s);
}

static void with_a_barrier_a_miss_locks_computes_stores_then_unlocks(void) {
    backlite_storage *s = OPEN(":memory:", NULL);
    REQUIRE(s != NULL);
    ctx c = new_ctx(s, "k");
    c.pieces[0] = "value";
    backlite_barrier bar = barrier_of(&c);
    backlite_buf b = {NULL, 0};
    CHECK_OK(backlite_cached_call(s, K("k"), compute, &c, &bar, NEVER, &b, &err));
    CHECK_BUF_STR(b, "value");
    backlite_buf_free(&b);
    CHECK_EQ(c.lock_calls, 1);
    CHECK_EQ(c.unlock_calls, 1);
    CHECK_EQ(c.compute_calls, 1);
    CHECK_STR_EQ(c.events, "LCU");
    CHECK_EQ(c.stored_at_unlock, 1); /* stored before unlock: the next caller finds it */
    GET_EQ(s, "k", "value");
    backlite_storage_free(s);
}

static void with_a_barrier_a_hit_does_not_lock(void) {
    backlite_storage *s = OPEN(":memory:", NULL);
    REQUIRE(s != NULL);
    SET(s, "k", "cached");
    ctx c = new_ctx(s, "k");
    c.pieces[0] = "computed";
    backlite_barrier bar = barrier_of(&c);
    backlite_buf b = {NULL, 0};
    CHECK_OK(backlite_cached_call(s, K("k"), compute, &c, &bar, NEVER, &b, &err));
    CHECK_BUF_STR(b, "cached");
    backlite_buf_free(&b);
    CHECK_EQ(c.lock_calls, 0);
    CHECK_EQ(c.unlock_calls, 0);
    CHECK_EQ(c.compute_calls, 0);
    backlite_storage_free(s);
}

static void a_failing_lock_fails_the_call_without_compute_or_unlock(void) {
    backlite_storage *s = OPEN(":memory:", NULL);
    REQUIRE(s != NULL);
    ctx c = new_ctx(s, "k");
    c.pieces[0] = "value";
    c.lock_result = 3;
    backlite_barrier bar = barrier_of(&c);
    uint8_t sentinel = 0;
    backlite_buf b = {&sentinel, 42};
    CHECK_RC(backlite_cached_call(s, K("k"), compute, &c, &bar, NEVER, &b, &err), BACKLITE_RESULT_CALLBACK_FAILED);
    CHECK(b.data == &sentinel && b.len == 42);
    CHECK_EQ(c.lock_calls, 1);
    CHECK_EQ(c.compute_calls, 0);
    CHECK_EQ(c.unlock_calls, 0);
    CHECK_STR_EQ(c.events, "L");
    GET_MISSING(s, "k");
    backlite_storage_free(s);
}

static void a_failing_compute_still_unlocks(void) {
    backlite_storage *s = OPEN(":memory:", NULL);
    REQUIRE(s != NULL);
    ctx c = new_ctx(s, "k");
    c.pieces[0] = "value";
    c.compute_result = 1;
    backlite_barrier bar = barrier_of(&c);
    uint8_t sentinel = 0;
    backlite_buf b = {&sentinel, 42};
    CHECK_RC(backlite_cached_call(s, K("k"), compute, &c, &bar, NEVER, &b, &err), BACKLITE_RESULT_CALLBACK_FAILED);
    CHECK(b.data == &sentinel && b.len == 42);
    CHECK_STR_EQ(c.events, "LCU");
    CHECK_EQ(c.unlock_calls, 1);
    CHECK_EQ(c.stored_at_unlock, 0);
    GET_MISSING(s, "k");
    backlite_storage_free(s);
}

static void a_value_filled_while_waiting_for_the_lock_is_returned(void) {
    backlite_storage *s = OPEN(":memory:", NULL);
    REQUIRE(s != NULL);
    ctx c = new_ctx(s, "k");
    c.pieces[0] = "computed";
    c.fill_value = "filled by another caller";
    backlite_barrier bar = barrier_of(&c);
    backlite_buf b = {NULL, 0};
    CHECK_OK(backlite_cached_call(s, K("k"), compute, &c, &bar, NEVER, &b, &err));
    CHECK_BUF_STR(b, "filled by another caller");
    backlite_buf_free(&b);
    CHECK_EQ(c.compute_calls, 0);
    CHECK_EQ(c.lock_calls, 1);
    CHECK_EQ(c.unlock_calls, 1);
    CHECK_STR_EQ(c.events, "LU");
    GET_EQ(s, "k", "filled by another caller");
    backlite_storage_free(s);
}

static void a_computed_value_too_large_is_returned_but_not_stored(void) {
    backlite_storage *s = OPEN_WITH(":memory:", 30, BACKLITE_EVICTION_POLICY_LEAST_RECENTLY_USED);
    REQUIRE(s != NULL);
    SET_N(s, "a", 10);
    ctx c = new_ctx(s, "k");
    c.pieces[0] = "0123456789";
    c.pieces[1] = "0123456789";
    c.pieces[2] = "0123456789";
    c.pieces[3] = "0"; /* 31 bytes */
    backlite_barrier bar = barrier_of(&c);
    backlite_buf b = {NULL, 0};
    CHECK_OK(backlite_cached_call(s, K("k"), compute, &c, &bar, NEVER, &b, &err));
    CHECK_BUF_STR(b, "0123456789012345678901234567890");
    backlite_buf_free(&b);
    CHECK_EQ(c.unlock_calls, 1);
    GET_MISSING(s, "k");
    GET_EQ(s, "a", "aaaaaaaaaa"); /* nothing evicted for it */
    backlite_stats st = STATS(s);
    CHECK_EQ(st.count, 1);
    CHECK_EQ(st.total_size, 10);
    CHECK_EQ(st.evictions, 0);
    /* without a barrier too */
    ctx c2 = new_ctx(s, "j");
    c2.big = 31;
    CHECK_OK(backlite_cached_call(s, K("j"), compute, &c2, NULL, NEVER, &b, &err));
    CHECK_EQ(b.len, 31);
    backlite_buf_free(&b);
    GET_MISSING(s, "j");
    GET_EQ(s, "a", "aaaaaaaaaa");
    backlite_storage_free(s);
}

static void null_parameters_are_rejected_before_any_callback(void) {
    backlite_storage *s = OPEN(":memory:", NULL);
    REQUIRE(s != NULL);
    ctx c = new_ctx(s, "k");
    c.pieces[0] = "v";
    backlite_barrier bar = barrier_of(&c);
    uint8_t sentinel = 0;
    backlite_buf b = {&sentinel, 5};
    CHECK_RC(backlite_cached_call(NULL, K("k"), compute, &c, &bar, NEVER, &b, &err), BACKLITE_RESULT_NULL_PARAMETER);
    CHECK_RC(backlite_cached_call(s, NULL, 3, compute, &c, &bar, NEVER, &b, &err), BACKLITE_RESULT_NULL_PARAMETER);
    CHECK_RC(backlite_cached_call(s, K("k"), NULL, &c, &bar, NEVER, &b, &err), BACKLITE_RESULT_NULL_PARAMETER);
    CHECK_RC(backlite_cached_call(s, K("k"), compute, &c, &bar, NEVER, NULL, &err), BACKLITE_RESULT_NULL_PARAMETER);
    backlite_barrier no_lock = {&c.bud, NULL, unlock}, no_unlock = {&c.bud, lock, NULL};
    CHECK_RC(backlite_cached_call(s, K("k"), compute, &c, &no_lock, NEVER, &b, &err), BACKLITE_RESULT_NULL_PARAMETER);
    CHECK_RC(backlite_cached_call(s, K("k"), compute, &c, &no_unlock, NEVER, &b, &err), BACKLITE_RESULT_NULL_PARAMETER);
    /* err == NULL is accepted */
    CHECK_EQ(backlite_cached_call(s, K("k"), NULL, &c, NULL, NEVER, &b, NULL), BACKLITE_RESULT_NULL_PARAMETER);
    CHECK(b.data == &sentinel && b.len == 5);
    CHECK_EQ(c.compute_calls + c.lock_calls + c.unlock_calls, 0);
    GET_MISSING(s, "k");
    /* a NULL compute is rejected on a hit too: it is a required pointer */
    SET(s, "k", "v");
    CHECK_RC(backlite_cached_call(s, K("k"), NULL, &c, NULL, NEVER, &b, &err), BACKLITE_RESULT_NULL_PARAMETER);
    CHECK(b.data == &sentinel && b.len == 5);
    backlite_storage_free(s);
}

static void a_bad_expiration_is_rejected_before_compute(void) {
    backlite_storage *s = OPEN(":memory:", NULL);
    REQUIRE(s != NULL);
    ctx c = new_ctx(s, "k");
    c.pieces[0] = "v";
    backlite_barrier bar = barrier_of(&c);
    uint8_t sentinel = 0;
    backlite_buf b = {&sentinel, 5};
    CHECK_RC(backlite_cached_call(s, K("k"), compute, &c, &bar, -5, &b, &err), BACKLITE_RESULT_INVALID_ARGUMENT);
    CHECK_RC(backlite_cached_call(s, K("k"), compute, &c, NULL, INT64_MIN, &b, &err), BACKLITE_RESULT_INVALID_ARGUMENT);
    CHECK(b.data == &sentinel && b.len == 5);
    CHECK_EQ(c.compute_calls + c.lock_calls + c.unlock_calls, 0);
    GET_MISSING(s, "k");
    backlite_storage_free(s);
}

static int64_t left_of(backlite_storage *s, const char *key) {
    backlite_buf b = {NULL, 0};
    int64_t left = -100;
    CHECK_OK(backlite_storage_get(s, K(key), &b, &left, &err));
    backlite_buf_free(&b);
    return left;
}

static void the_computed_value_is_stored_with_the_expiration(void) {
    backlite_options *o = backlite_options_new();
    REQUIRE(o != NULL);
    CHECK_RESULT(backlite_options_set_default_expiration_ms(o, 30000), BACKLITE_RESULT_OK);
    backlite_storage *s = OPEN(":memory:", o);
    backlite_options_free(o);
    REQUIRE(s != NULL);
    ctx c = new_ctx(s, NULL);
    c.pieces[0] = "v";
    backlite_buf b = {NULL, 0};
    CHECK_OK(backlite_cached_call(s, K("minute"), compute, &c, NULL, 60000, &b, &err));
    backlite_buf_free(&b);
    CHECK_OK(backlite_cached_call(s, K("default"), compute, &c, NULL, DEFAULT, &b, &err));
    backlite_buf_free(&b);
    CHECK_OK(backlite_cached_call(s, K("never"), compute, &c, NULL, NEVER, &b, &err));
    backlite_buf_free(&b);
    int64_t left = left_of(s, "minute");
    CHECK(left > 30000 && left <= 60000);
    left = left_of(s, "default");
    CHECK(left > 0 && left <= 30000);
    CHECK_EQ(left_of(s, "never"), NEVER);
    /* 0: returned, but already expired in the cache, so computed again next time */
    CHECK_OK(backlite_cached_call(s, K("zero"), compute, &c, NULL, 0, &b, &err));
    CHECK_BUF_STR(b, "v");
    backlite_buf_free(&b);
    GET_MISSING(s, "zero");
    int before = c.compute_calls;
    CHECK_OK(backlite_cached_call(s, K("zero"), compute, &c, NULL, 0, &b, &err));
    backlite_buf_free(&b);
    CHECK_EQ(c.compute_calls, before + 1);
    backlite_storage_free(s);
}

static void an_expired_value_is_computed_again(void) {
    backlite_storage *s = OPEN(":memory:", NULL);
    REQUIRE(s != NULL);
    ctx c = new_ctx(s, NULL);
    c.pieces[0] = "v";
    backlite_buf b = {NULL, 0};
    CHECK_OK(backlite_cached_call(s, K("k"), compute, &c, NULL, 100, &b, &err));
    backlite_buf_free(&b);
    h_sleep_ms(300); /* expiry test: the only kind allowed to sleep */
    CHECK_OK(backlite_cached_call(s, K("k"), compute, &c, NULL, NEVER, &b, &err));
    CHECK_BUF_STR(b, "v");
    backlite_buf_free(&b);
    CHECK_EQ(c.compute_calls, 2);
    CHECK_EQ(left_of(s, "k"), NEVER);
    backlite_storage_free(s);
}

static void binary_and_empty_keys_work(void) {
    backlite_storage *s = OPEN(":memory:", NULL);
    REQUIRE(s != NULL);
    ctx c = new_ctx(s, NULL);
    c.pieces[0] = "empty";
    backlite_buf b = {NULL, 0};
    CHECK_OK(backlite_cached_call(s, NULL, 0, compute, &c, NULL, NEVER, &b, &err));
    CHECK_BUF_STR(b, "empty");
    backlite_buf_free(&b);
    const uint8_t k0[] = {0};
    c.pieces[0] = "nul";
    CHECK_OK(backlite_cached_call(s, k0, 1, compute, &c, NULL, NEVER, &b, &err));
    CHECK_BUF_STR(b, "nul");
    backlite_buf_free(&b);
    CHECK_OK(backlite_cached_call(s, (const uint8_t *)"", 0, compute, &c, NULL, NEVER, &b, &err));
    CHECK_BUF_STR(b, "empty");
    backlite_buf_free(&b);
    CHECK_EQ(c.compute_calls, 2);
    backlite_storage_free(s);
}

typedef struct {
    backlite_storage *s;
    int outer, inner;
} nested;

static int32_t compute_inner(void *ud, backlite_sink *sink) {
    nested *n = ud;
    n->inner++;
    return backlite_sink_write(sink, (const uint8_t *)"inner", 5) == BACKLITE_RESULT_OK ? 0 : 1;
}

static int32_t compute_outer(void *ud, backlite_sink *sink) {
    nested *n = ud;
    n->outer++;
    backlite_buf b = {NULL, 0};
    backlite_result rc = backlite_cached_call(n->s, K("inner"), compute_inner, n, NULL, NEVER, &b, NULL);
    CHECK_EQ(rc, BACKLITE_RESULT_OK);
    if (rc != BACKLITE_RESULT_OK) return 1;
    CHECK_RESULT(backlite_sink_write(sink, (const uint8_t *)"outer+", 6), BACKLITE_RESULT_OK);
    CHECK_RESULT(backlite_sink_write(sink, b.data, b.len), BACKLITE_RESULT_OK);
    backlite_buf_free(&b);
    return 0;
}

static void a_compute_may_use_the_same_storage(void) {
    /* a cached function calling another cached function */
    backlite_storage *s = OPEN(tmp_path("nested.db"), NULL);
    REQUIRE(s != NULL);
    nested n = {s, 0, 0};
    backlite_buf b = {NULL, 0};
    CHECK_OK(backlite_cached_call(s, K("outer"), compute_outer, &n, NULL, NEVER, &b, &err));
    CHECK_BUF_STR(b, "outer+inner");
    backlite_buf_free(&b);
    GET_EQ(s, "inner", "inner");
    GET_EQ(s, "outer", "outer+inner");
    CHECK_EQ(n.outer, 1);
    CHECK_EQ(n.inner, 1);
    backlite_storage_free(s);
}

int main(void) {
    h_begin();
    RUN(a_miss_computes_once_and_stores_the_value);
    RUN(a_stored_value_is_returned_without_compute);
    RUN(compute_may_write_in_several_pieces);
    RUN(compute_writing_nothing_stores_an_empty_value);
    RUN(sink_write_rejects_null_and_keeps_what_was_written);
    RUN(sink_write_copies_its_input);
    RUN(a_failing_compute_fails_the_call_and_stores_nothing);
    RUN(with_a_barrier_a_miss_locks_computes_stores_then_unlocks);
    RUN(with_a_barrier_a_hit_does_not_lock);
    RUN(a_failing_lock_fails_the_call_without_compute_or_unlock);
    RUN(a_failing_compute_still_unlocks);
    RUN(a_value_filled_while_waiting_for_the_lock_is_returned);
    RUN(a_computed_value_too_large_is_returned_but_not_stored);
    RUN(null_parameters_are_rejected_before_any_callback);
    RUN(a_bad_expiration_is_rejected_before_compute);
    RUN(the_computed_value_is_stored_with_the_expiration);
    RUN(an_expired_value_is_computed_again);
    RUN(binary_and_empty_keys_work);
    RUN(a_compute_may_use_the_same_storage);
    return h_end();
}
