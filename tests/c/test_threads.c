/*
 * One handle used by 8 threads at once, and 8 handles on one file in 8 threads. No
 * sleeps: threads start together at a pthread barrier, and the checks hold for any
 * interleaving.
 */
#include <pthread.h>

#include "backlite.h"
#include "harness.h"

#define NTHREADS 8
#define NKEYS 48
#define OPS 250
#define MAX_SIZE 2000

/* a value that says which key it belongs to and how long it is: torn writes show */
static size_t make_value(uint8_t *v, int key, size_t len) {
    v[0] = (uint8_t)key;
    v[1] = (uint8_t)len;
    for (size_t i = 2; i < len; i++) v[i] = (uint8_t)(key * 31 + len + i);
    return len;
}

static bool value_ok(const uint8_t *v, size_t len, int key) {
    if (len < 2 || v == NULL || v[0] != (uint8_t)key || v[1] != (uint8_t)len) return false;
    for (size_t i = 2; i < len; i++)
        if (v[i] != (uint8_t)(key * 31 + len + i)) return false;
    return true;
}

typedef struct {
    int key;
    size_t len;
    int computed;
} compute_arg;

static int32_t compute_value(void *ud, backlite_sink *sink) {
    compute_arg *a = ud;
    uint8_t v[80];
    make_value(v, a->key, a->len);
    a->computed++;
    /* in two pieces */
    if (backlite_sink_write(sink, v, 1) != BACKLITE_RESULT_OK) return 1;
    return backlite_sink_write(sink, v + 1, a->len - 1) == BACKLITE_RESULT_OK ? 0 : 1;
}

typedef struct {
    backlite_storage *s;
    pthread_barrier_t *start;
    uint64_t seed;
    uint64_t hits, misses, errors;
} worker;

static void key_name(char *buf, size_t n, int k) { snprintf(buf, n, "key-%02d", k); }

static void *mixed_worker(void *p) {
    worker *w = p;
    pthread_barrier_wait(w->start);
    uint64_t rng = w->seed;
    uint8_t v[80];
    for (int i = 0; i < OPS; i++) {
        int k = (int)h_rand_below(&rng, NKEYS);
        char key[32];
        key_name(key, sizeof key, k);
        unsigned op = (unsigned)h_rand_below(&rng, 100);
        backlite_error *err = NULL;
        backlite_result rc;
        if (op < 40) {
            backlite_buf b = {NULL, 0};
            rc = backlite_storage_get(w->s, K(key), &b, NULL, &err);
            if (rc == BACKLITE_RESULT_OK) {
                w->hits++;
                if (!value_ok(b.data, b.len, k))
                    h_fail_(__FILE__, __LINE__, "get(%s) returned a value of %zu bytes not written for it", key,
                            b.len);
                backlite_buf_free(&b);
            } else if (rc == BACKLITE_RESULT_NOT_FOUND) {
                w->misses++;
            }
        } else if (op < 70) {
            size_t len = make_value(v, k, 2 + h_rand_below(&rng, 63));
            rc = backlite_storage_set(w->s, K(key), v, len, NEVER, &err);
        } else if (op < 80) {
            rc = backlite_storage_delete(w->s, K(key), &err);
            if (rc == BACKLITE_RESULT_NOT_FOUND) rc = BACKLITE_RESULT_OK;
        } else {
            compute_arg a = {k, 2 + h_rand_below(&rng, 63), 0};
            backlite_buf b = {NULL, 0};
            rc = backlite_cached_call(w->s, K(key), compute_value, &a, NULL, NEVER, &b, &err);
            if (rc == BACKLITE_RESULT_OK) {
                if (a.computed) w->misses++;
                else w->hits++;
                if (a.computed > 1) h_fail_(__FILE__, __LINE__, "compute called %d times in one call", a.computed);
                if (!value_ok(b.data, b.len, k))
                    h_fail_(__FILE__, __LINE__, "cached_call(%s) returned a value not written for it", key);
                backlite_buf_free(&b);
            }
        }
        if (rc != BACKLITE_RESULT_OK && rc != BACKLITE_RESULT_NOT_FOUND) {
            w->errors++;
            h_fail_(__FILE__, __LINE__, "op %u on %s: %s: %s", op, key, h_rc_name(rc),
                    err ? backlite_error_message(err) : "(no error object)");
        }
        backlite_error_free(err);
    }
    return NULL;
}

typedef struct {
    uint64_t count;
} recount;

static int32_t recount_key(void *ud, const uint8_t *key, size_t len) {
    recount *r = ud;
    r->count++;
    char name[16];
    int k = -1;
    if (len < sizeof name) {
        memcpy(name, key, len);
        name[len] = 0;
        if (sscanf(name, "key-%d", &k) != 1) k = -1;
    }
    if (k < 0 || k >= NKEYS) h_fail_(__FILE__, __LINE__, "keys visited an unknown key of %zu bytes", len);
    return 0;
}

static void mixed_operations_from_8_threads_keep_exact_counters(void) {
    backlite_storage *s = OPEN_WITH(tmp_path("threads.db"), MAX_SIZE, BACKLITE_EVICTION_POLICY_LEAST_RECENTLY_USED);
    REQUIRE(s != NULL);
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, NTHREADS);
    pthread_t t[NTHREADS];
    worker w[NTHREADS];
    for (int i = 0; i < NTHREADS; i++) {
        w[i] = (worker){s, &start, 1000 + (uint64_t)i, 0, 0, 0};
        REQUIRE(pthread_create(&t[i], NULL, mixed_worker, &w[i]) == 0);
    }
    uint64_t hits = 0, misses = 0, errors = 0;
    for (int i = 0; i < NTHREADS; i++) {
        pthread_join(t[i], NULL);
        hits += w[i].hits;
        misses += w[i].misses;
        errors += w[i].errors;
    }
    pthread_barrier_destroy(&start);
    CHECK_EQ(errors, 0);

    backlite_stats st = STATS(s);
    CHECK_EQ(st.hits, hits);
    CHECK_EQ(st.misses, misses);
    CHECK(st.total_size <= MAX_SIZE);

    /* recount: keys, then a get of each */
    recount r = {0};
    CHECK_OK(backlite_storage_keys(s, recount_key, &r, &err));
    uint64_t count = 0, total = 0;
    for (int k = 0; k < NKEYS; k++) {
        char key[32];
        key_name(key, sizeof key, k);
        backlite_buf b = {NULL, 0};
        backlite_error *err = NULL;
        backlite_result rc = backlite_storage_get(s, K(key), &b, NULL, &err);
        if (rc == BACKLITE_RESULT_OK) {
            count++;
            total += b.len;
            if (!value_ok(b.data, b.len, k)) h_fail_(__FILE__, __LINE__, "%s holds a value not written for it", key);
        } else if (rc != BACKLITE_RESULT_NOT_FOUND) {
            h_check_rc_(__FILE__, __LINE__, "recount get", rc, BACKLITE_RESULT_OK, err);
        }
        backlite_error_free(err);
        backlite_buf_free(&b);
    }
    CHECK_EQ(r.count, count);
    CHECK_EQ(st.count, count);
    CHECK_EQ(st.total_size, total);
    backlite_stats after = STATS(s);
    CHECK_EQ(after.hits, st.hits + count);
    CHECK_EQ(after.misses, st.misses + (NKEYS - count));
    backlite_storage_free(s);
}

typedef struct {
    pthread_mutex_t mutex;
    atomic_int locks, unlocks, computes;
} shared_barrier;

static int32_t mutex_lock(void *ud) {
    shared_barrier *b = ud;
    atomic_fetch_add(&b->locks, 1);
    return pthread_mutex_lock(&b->mutex) == 0 ? 0 : 1;
}

static void mutex_unlock(void *ud) {
    shared_barrier *b = ud;
    atomic_fetch_add(&b->unlocks, 1);
    pthread_mutex_unlock(&b->mutex);
}

static int32_t compute_once(void *ud, backlite_sink *sink) {
    shared_barrier *b = ud;
    atomic_fetch_add(&b->computes, 1);
    return backlite_sink_write(sink, (const uint8_t *)"computed once", 13) == BACKLITE_RESULT_OK ? 0 : 1;
}

typedef struct {
    backlite_storage *s;
    pthread_barrier_t *start;
    shared_barrier *sb;
    int ok;
} barrier_worker;

static void *cached_worker(void *p) {
    barrier_worker *w = p;
    pthread_barrier_wait(w->start);
    backlite_barrier bar = {w->sb, mutex_lock, mutex_unlock};
    backlite_buf b = {NULL, 0};
    backlite_error *err = NULL;
    backlite_result rc = backlite_cached_call(w->s, K("shared"), compute_once, w->sb, &bar, NEVER, &b, &err);
    if (h_check_rc_(__FILE__, __LINE__, "cached_call", rc, BACKLITE_RESULT_OK, err)) {
        h_check_bytes_(__FILE__, __LINE__, "cached value", b.data, b.len, "computed once", 13);
        w->ok = 1;
    }
    backlite_error_free(err);
    backlite_buf_free(&b);
    return NULL;
}

static void a_barrier_makes_8_threads_compute_once(void) {
    backlite_storage *s = OPEN(tmp_path("barrier.db"), NULL);
    REQUIRE(s != NULL);
    shared_barrier sb;
    pthread_mutex_init(&sb.mutex, NULL);
    atomic_init(&sb.locks, 0);
    atomic_init(&sb.unlocks, 0);
    atomic_init(&sb.computes, 0);
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, NTHREADS);
    pthread_t t[NTHREADS];
    barrier_worker w[NTHREADS];
    for (int i = 0; i < NTHREADS; i++) {
        w[i] = (barrier_worker){s, &start, &sb, 0};
        REQUIRE(pthread_create(&t[i], NULL, cached_worker, &w[i]) == 0);
    }
    int ok = 0;
    for (int i = 0; i < NTHREADS; i++) {
        pthread_join(t[i], NULL);
        ok += w[i].ok;
    }
    pthread_barrier_destroy(&start);
    pthread_mutex_destroy(&sb.mutex);
    CHECK_EQ(ok, NTHREADS);
    CHECK_EQ(atomic_load(&sb.computes), 1);
    CHECK_EQ(atomic_load(&sb.locks), atomic_load(&sb.unlocks));
    CHECK(atomic_load(&sb.locks) >= 1 && atomic_load(&sb.locks) <= NTHREADS);
    GET_EQ(s, "shared", "computed once");
    backlite_storage_free(s);
}

typedef struct {
    const char *path;
    pthread_barrier_t *start;
    int id;
    int ok;
} opener;

static void *open_and_write(void *p) {
    opener *o = p;
    pthread_barrier_wait(o->start);
    backlite_storage *s = OPEN(o->path, NULL); /* 8 threads create the same new file */
    if (s == NULL) return NULL;
    int ok = 1;
    for (int i = 0; i < 30; i++) {
        char key[32];
        snprintf(key, sizeof key, "t%d-%d", o->id, i);
        backlite_error *err = NULL;
        backlite_result rc = backlite_storage_set(s, K(key), K(key), NEVER, &err);
        if (!h_check_rc_(__FILE__, __LINE__, "set", rc, BACKLITE_RESULT_OK, err)) ok = 0;
        backlite_error_free(err);
    }
    backlite_storage_free(s);
    o->ok = ok;
    return NULL;
}

static void threads_with_their_own_handles_share_one_new_file(void) {
    const char *path = tmp_path("handles.db");
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, NTHREADS);
    pthread_t t[NTHREADS];
    opener o[NTHREADS];
    for (int i = 0; i < NTHREADS; i++) {
        o[i] = (opener){path, &start, i, 0};
        REQUIRE(pthread_create(&t[i], NULL, open_and_write, &o[i]) == 0);
    }
    int ok = 0;
    for (int i = 0; i < NTHREADS; i++) {
        pthread_join(t[i], NULL);
        ok += o[i].ok;
    }
    pthread_barrier_destroy(&start);
    CHECK_EQ(ok, NTHREADS);
    backlite_storage *s = OPEN(path, NULL);
    REQUIRE(s != NULL);
    CHECK_EQ(STATS(s).count, NTHREADS * 30);
    GET_EQ(s, "t0-0", "t0-0");
    GET_EQ(s, "t7-29", "t7-29");
    backlite_storage_free(s);
}

int main(void) {
    h_begin();
    RUN(mixed_operations_from_8_threads_keep_exact_counters);
    RUN(a_barrier_makes_8_threads_compute_once);
    RUN(threads_with_their_own_handles_share_one_new_file);
    return h_end();
}
