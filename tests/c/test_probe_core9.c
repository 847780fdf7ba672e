/*
 * Ninth probe round of the local cache contract (API.md), kept as tests; all passed as
 * they were.
 *
 * a_cached_call_whose_store_is_busy: the known debt of a cached call whose store meets
 * another process's write lock, decided as the header documents it (BUSY, value not
 * returned); reads meanwhile answer as ever.
 * two_processes_of_threads_keep_every_counter_exact: two processes of four threads on
 * shared keys doing every call (clear, check, vacuum among them) with short
 * expirations and eviction: each handle's hits and misses are what its callers saw,
 * the file's lifetime counters the sum of both handles', count and total_size those
 * of the entries.
 * Size edges (a limit of one byte, a batch that overwrites its own keys) and a default
 * expiration changed at reopen.
 */
#include <pthread.h>
#include <sys/wait.h>

#include "backlite.h"
#include "harness.h"
#include "lock_holder.h"

#define LRU BACKLITE_EVICTION_POLICY_LEAST_RECENTLY_USED
#define LFU BACKLITE_EVICTION_POLICY_LEAST_FREQUENTLY_USED
#define MRU BACKLITE_EVICTION_POLICY_MOST_RECENTLY_USED
#define FIFO BACKLITE_EVICTION_POLICY_FIRST_IN_FIRST_OUT
#define LIFO BACKLITE_EVICTION_POLICY_LAST_IN_FIRST_OUT

/* ------------------------------------------ a cached call under another's lock */

typedef struct { int computed, locked, unlocked; } calls;
static int32_t compute_v(void *ud, backlite_sink *sink) {
    ((calls *)ud)->computed++;
    return backlite_sink_write(sink, (const uint8_t *)"v", 1) == BACKLITE_RESULT_OK ? 0 : 1;
}
static int32_t lock_c(void *ud) { ((calls *)ud)->locked++; return 0; }
static void unlock_c(void *ud) { ((calls *)ud)->unlocked++; }

static bool damage_crc(const char *path, const char *key) {
    char cmd[PATH_MAX + 300];
    snprintf(cmd, sizeof cmd,
             "python3 -c 'import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
             "c.execute(\"update entries set crc = (crc + 1) %% 4294967296 where key = cast(? as blob)\", (sys.argv[2],)); c.commit(); "
             "c.close()' '%s' '%s'",
             path, key);
    return system(cmd) == 0;
}

/* The known debt of a cached call whose store waits out the busy timeout, decided as
 * the header says (ff320f6): the call fails BUSY (*err filled), the value is not
 * returned (value_out untouched) nor stored, `unlock` is called once after its `lock`,
 * and the call counts its one miss. Reads meanwhile go on: an expired or damaged entry
 * is a miss (never BUSY, though its removal must wait), a hit is a hit. Once the lock
 * is gone the same call computes again and stores. */
static void a_cached_call_whose_store_is_busy(void) {
    if (!h_have_python_sqlite()) SKIP("python3 with sqlite3 is not available to hold a lock");
    const char *path = tmp_path("busy-store.db");
    backlite_storage *s = OPEN_SET(path, .busy_timeout_ms = 100);
    REQUIRE(s != NULL);
    SET(s, "hit", "h");
    SET(s, "dmg", "d");
    SET(s, "dmg2", "d");
    backlite_storage_free(s);
    REQUIRE(damage_crc(path, "dmg"));
    REQUIRE(damage_crc(path, "dmg2"));
    s = OPEN_SET(path, .busy_timeout_ms = 100);
    REQUIRE(s != NULL);
    SET_EXP(s, "soon", "s", 1);
    SET_EXP(s, "soon2", "s", 1);
    h_sleep_ms(20);
    lock_holder h;
    REQUIRE(holder_start(&h, path));
    const char *keys[3] = {"x", "soon", "dmg"};
    calls c = {0, 0, 0};
    int tries = 0;
    for (int with = 0; with < 2; with++) {
        for (int k = 0; k < 3; k++) {
            backlite_barrier b = {&c, lock_c, unlock_c};
            uint8_t mark = 0;
            backlite_buf v = {&mark, 7};
            CHECK_RC(backlite_cached_call(s, K(keys[k]), compute_v, &c, with ? &b : NULL, NEVER, &v, &err),
                     BACKLITE_RESULT_BUSY);
            CHECK(v.data == &mark && v.len == 7);
            tries++;
            CHECK_EQ(c.computed, tries);
        }
    }
    CHECK_EQ(c.locked, 3);
    CHECK_EQ(c.unlocked, 3);
    GET_MISSING(s, "soon2");
    GET_MISSING(s, "dmg2");
    GET_EQ(s, "hit", "h");
    CHECK(!HAS(s, "x"));
    backlite_stats st = STATS(s);
    CHECK_EQ(st.hits, 1);
    CHECK_EQ(st.misses, 8);
    holder_release(&h);
    holder_finish(&h);
    /* nothing of the failed calls was stored */
    GET_MISSING(s, "x");
    uint8_t *none = NULL;
    backlite_buf v = {none, 0};
    CHECK_OK(backlite_cached_call(s, K("x"), compute_v, &c, NULL, NEVER, &v, &err));
    CHECK_BUF_STR(v, "v");
    backlite_buf_free(&v);
    CHECK_EQ(c.computed, tries + 1);
    GET_EQ(s, "x", "v");
    backlite_storage_free(s);
}

static int32_t compute_big(void *ud, backlite_sink *sink) {
    ((calls *)ud)->computed++;
    return backlite_sink_write(sink, (const uint8_t *)"big", 3) == BACKLITE_RESULT_OK ? 0 : 1;
}

/* API.md: "A computed value too large to store is still returned to the caller (result
 * OK), just not stored", whatever else holds the file: another process's write lock
 * made it BUSY (the set's removal of an older value waited for the lock, though the
 * call's look-up had just found none live), the value lost. */
static void a_computed_value_too_large_is_returned_under_anothers_lock(void) {
    if (!h_have_python_sqlite()) SKIP("python3 with sqlite3 is not available to hold a lock");
    const char *path = tmp_path("busy-large.db");
    backlite_storage *s = OPEN_SET(path, .max_size = 2, .busy_timeout_ms = 100);
    REQUIRE(s != NULL);
    SET(s, "other", "o");
    lock_holder h;
    REQUIRE(holder_start(&h, path));
    calls c = {0, 0, 0};
    for (int with = 0; with < 2; with++) {
        backlite_barrier b = {&c, lock_c, unlock_c};
        backlite_buf v = {NULL, 0};
        CHECK_OK(backlite_cached_call(s, K("k"), compute_big, &c, with ? &b : NULL, NEVER, &v, &err));
        CHECK_BUF_STR(v, "big");
        backlite_buf_free(&v);
        CHECK_EQ(c.computed, with + 1);
    }
    CHECK_EQ(c.locked, 1);
    CHECK_EQ(c.unlocked, 1);
    holder_release(&h);
    holder_finish(&h);
    GET_MISSING(s, "k");
    GET_EQ(s, "other", "o"); /* nothing evicted */
    backlite_stats st = STATS(s);
    CHECK_EQ(st.count, 1);
    CHECK_EQ(st.evictions, 0);
    backlite_storage_free(s);
}

/* ------------------------------- two processes of 4 threads on shared keys: counters */

#define MP_THREADS 4
#define MP_KEYS 24

typedef struct {
    backlite_storage *s;
    pthread_barrier_t *start;
    uint64_t rng;
    int ops;
    uint64_t hits, misses;
    int computed;
    int failures;
} mp_worker;

static int32_t mp_compute(void *ud, backlite_sink *sink) {
    mp_worker *w = ud;
    w->computed++;
    uint8_t v[64];
    size_t n = (size_t)h_rand_below(&w->rng, sizeof v);
    memset(v, 'c', n);
    return backlite_sink_write(sink, v, n) == BACKLITE_RESULT_OK ? 0 : 1;
}
static int32_t mp_chunks(void *ud, const uint8_t *c, size_t n) { (void)ud; (void)c; (void)n; return 0; }
static int32_t mp_keys(void *ud, const uint8_t *k, size_t n) { (void)k; (void)n; ++*(int *)ud; return 0; }

#define MP_FAIL(...) do { w->failures++; fprintf(stderr, __VA_ARGS__); } while (0)

static void *mp_run(void *p) {
    mp_worker *w = p;
    pthread_barrier_wait(w->start);
    for (int i = 0; i < w->ops; i++) {
        char key[16];
        snprintf(key, sizeof key, "k%d", (int)h_rand_below(&w->rng, MP_KEYS));
        unsigned op = (unsigned)h_rand_below(&w->rng, 100);
        backlite_error *e = NULL;
        backlite_result rc = BACKLITE_RESULT_OK;
        uint8_t v[200];
        memset(v, 'v', sizeof v);
        if (op < 25) {
            size_t n = (size_t)h_rand_below(&w->rng, sizeof v);
            unsigned x = (unsigned)h_rand_below(&w->rng, 4);
            int64_t exp = x == 0 ? (int64_t)h_rand_below(&w->rng, 20) : NEVER;
            rc = backlite_storage_set(w->s, K(key), v, n, exp, &e);
        } else if (op < 35) {
            backlite_entry es[4];
            char ks[4][16];
            int cnt = 1 + (int)h_rand_below(&w->rng, 4);
            for (int j = 0; j < cnt; j++) {
                snprintf(ks[j], sizeof ks[j], "k%d", (int)h_rand_below(&w->rng, MP_KEYS));
                es[j] = (backlite_entry){(const uint8_t *)ks[j], strlen(ks[j]), v,
                                         (size_t)h_rand_below(&w->rng, sizeof v),
                                         h_rand_below(&w->rng, 4) == 0 ? (int64_t)h_rand_below(&w->rng, 20) : NEVER};
            }
            rc = backlite_storage_set_many(w->s, es, (size_t)cnt, &e);
        } else if (op < 75) {
            unsigned kind = (unsigned)h_rand_below(&w->rng, 4);
            backlite_buf b = {NULL, 0};
            if (kind == 0) {
                rc = backlite_storage_get(w->s, K(key), &b, NULL, &e);
            } else if (kind == 1) {
                w->computed = 0;
                rc = backlite_cached_call(w->s, K(key), mp_compute, w, NULL, h_rand_below(&w->rng, 2) ? 15 : NEVER, &b, &e);
                if (rc == BACKLITE_RESULT_OK) rc = w->computed ? BACKLITE_RESULT_NOT_FOUND : BACKLITE_RESULT_OK;
            } else if (kind == 2) {
                rc = backlite_storage_get_chunks(w->s, K(key), mp_chunks, NULL, NULL, &e);
            } else {
                backlite_value_reader *r = NULL;
                rc = backlite_storage_open_reader(w->s, K(key), &r, NULL, NULL, &e);
                if (rc == BACKLITE_RESULT_OK) {
                    uint8_t tmp[256];
                    size_t got = 1;
                    while (got != 0 && backlite_value_reader_read(r, tmp, sizeof tmp, &got, NULL) == BACKLITE_RESULT_OK) {}
                    backlite_value_reader_free(r);
                }
            }
            backlite_buf_free(&b);
            if (rc == BACKLITE_RESULT_OK) w->hits++;
            else if (rc == BACKLITE_RESULT_NOT_FOUND) { w->misses++; rc = BACKLITE_RESULT_OK; }
        } else if (op < 85) {
            rc = backlite_storage_delete(w->s, K(key), &e);
            if (rc == BACKLITE_RESULT_NOT_FOUND) rc = BACKLITE_RESULT_OK;
        } else if (op < 90) {
            rc = backlite_storage_contains(w->s, K(key), &e);
            if (rc == BACKLITE_RESULT_NOT_FOUND) rc = BACKLITE_RESULT_OK;
        } else if (op < 93) {
            int n = 0;
            rc = backlite_storage_keys(w->s, mp_keys, &n, &e);
        } else if (op < 95) {
            backlite_stats st;
            rc = backlite_storage_stats(w->s, &st, &e);
        } else if (op < 96) {
            rc = backlite_storage_clear(w->s, &e);
        } else if (op < 98) {
            backlite_check_report r;
            int repair = (int)h_rand_below(&w->rng, 2);
            rc = backlite_storage_check(w->s, repair, &r, &e);
            if (rc == BACKLITE_RESULT_OK && (!r.healthy || r.repaired))
                MP_FAIL("check(repair %d) of a healthy file: healthy %d repaired %d damaged %llu orphans %llu\n", repair,
                        r.healthy, r.repaired, (unsigned long long)r.damaged, (unsigned long long)r.orphan_values);
        } else if (op < 99) {
            rc = backlite_storage_vacuum(w->s, &e);
            if (rc == BACKLITE_RESULT_BUSY) rc = BACKLITE_RESULT_OK; /* documented: readers kept the log */
        } else {
            backlite_lifetime_stats l;
            rc = backlite_storage_lifetime_stats(w->s, &l, &e);
        }
        if (rc != BACKLITE_RESULT_OK) MP_FAIL("op %u on %s: %s: %s\n", op, key, h_rc_name(rc), e ? backlite_error_message(e) : "");
        backlite_error_free(e);
    }
    return NULL;
}

typedef struct { uint64_t hits, misses, h_hits, h_misses, evictions, expirations; int failures; } mp_result;

/* One process's part: its own handle, MP_THREADS threads. Once they are done, it tells
 * the other process (`done_fd`) and waits for its word (`wait_fd`, -1: none); then,
 * past every deadline set (at most 20 ms), a set purges what is due, counted by this
 * handle, so that no close removes an expired entry no handle's stats can show. */
static mp_result mp_process(const char *path, uint64_t seed, int ops, int done_fd, int wait_fd) {
    mp_result res;
    memset(&res, 0, sizeof res);
    backlite_storage *s = NULL;
    backlite_options *o = OPTIONS_SET(.max_size = 1500, .busy_timeout_ms = 600000);
    backlite_result rc = backlite_storage_open(path, o, &s, NULL);
    backlite_options_free(o);
    if (rc != BACKLITE_RESULT_OK) { res.failures = 1000; return res; }
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, MP_THREADS);
    pthread_t t[MP_THREADS];
    mp_worker w[MP_THREADS];
    for (int i = 0; i < MP_THREADS; i++) {
        memset(&w[i], 0, sizeof w[i]);
        w[i].s = s;
        w[i].start = &start;
        w[i].rng = seed * 7919 + (uint64_t)i * 104729 + 1;
        w[i].ops = ops;
        if (pthread_create(&t[i], NULL, mp_run, &w[i]) != 0) { res.failures++; return res; }
    }
    for (int i = 0; i < MP_THREADS; i++) {
        pthread_join(t[i], NULL);
        res.hits += w[i].hits;
        res.misses += w[i].misses;
        res.failures += w[i].failures;
    }
    pthread_barrier_destroy(&start);
    char c = 'd';
    if (write(done_fd, &c, 1) != 1) res.failures++;
    if (wait_fd >= 0 && read(wait_fd, &c, 1) != 1) res.failures++;
    h_sleep_ms(40);
    if (backlite_storage_set(s, K("last"), NULL, 0, NEVER, NULL) != BACKLITE_RESULT_OK) res.failures++;
    backlite_stats st;
    if (backlite_storage_stats(s, &st, NULL) != BACKLITE_RESULT_OK) res.failures++;
    res.h_hits = st.hits;
    res.h_misses = st.misses;
    res.evictions = st.evictions;
    res.expirations = st.expirations;
    backlite_storage_free(s);
    return res;
}

static void two_processes_of_threads_keep_every_counter_exact(void) {
    const char *path = tmp_path("mp.db");
    int ops = h_under_valgrind() ? 40 : 400;
    int fd[2], go[2];
    REQUIRE(pipe(fd) == 0 && pipe(go) == 0);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        close(fd[0]);
        close(go[1]);
        /* done: a byte on fd; then it waits for the parent's threads to be done (go) */
        mp_result r = mp_process(path, 2, ops, fd[1], go[0]);
        if (write(fd[1], &r, sizeof r) != (ssize_t)sizeof r) h_child_exit(3);
        close(fd[1]);
        h_child_exit(0);
    }
    close(fd[1]);
    close(go[0]);
    mp_result a = mp_process(path, 1, ops, go[1], fd[0]);
    close(go[1]);
    mp_result b;
    memset(&b, 0, sizeof b);
    CHECK(read(fd[0], &b, sizeof b) == (ssize_t)sizeof b);
    close(fd[0]);
    CHECK_EQ(CHILD_EXIT_CODE(pid), 0);
    CHECK_EQ(a.failures, 0);
    CHECK_EQ(b.failures, 0);
    /* each handle counted what its callers saw */
    CHECK_EQ(a.h_hits, a.hits);
    CHECK_EQ(a.h_misses, a.misses);
    CHECK_EQ(b.h_hits, b.hits);
    CHECK_EQ(b.h_misses, b.misses);
    printf("# hits %llu+%llu misses %llu+%llu evictions %llu+%llu expirations %llu+%llu\n",
           (unsigned long long)a.hits, (unsigned long long)b.hits, (unsigned long long)a.misses,
           (unsigned long long)b.misses, (unsigned long long)a.evictions, (unsigned long long)b.evictions,
           (unsigned long long)a.expirations, (unsigned long long)b.expirations);
    /* the file's lifetime counters are the sum of both handles' */
    backlite_storage *s = OPEN_SET(path, .max_size = 1500);
    REQUIRE(s != NULL);
    backlite_lifetime_stats l;
    memset(&l, 0, sizeof l);
    CHECK_OK(backlite_storage_lifetime_stats(s, &l, &err));
    CHECK_EQ(l.hits, a.hits + b.hits);
    CHECK_EQ(l.misses, a.misses + b.misses);
    CHECK_EQ(l.evictions, a.evictions + b.evictions);
    CHECK_EQ(l.expirations, a.expirations + b.expirations);
    /* count and total_size are those of the entries */
    backlite_check_report r;
    CHECK_OK(backlite_storage_check(s, 0, &r, &err));
    CHECK_EQ(r.healthy, 1);
    CHECK_EQ(r.recorded_count, r.actual_count);
    CHECK_EQ(r.recorded_total_size, r.actual_total_size);
    CHECK(r.actual_total_size <= 1500);
    int listed = 0;
    CHECK_OK(backlite_storage_keys(s, mp_keys, &listed, &err));
    backlite_stats st = STATS(s);
    CHECK_EQ(st.count, (uint64_t)listed);
    backlite_storage_free(s);
}

/* The same calls from 8 threads on an in-memory cache: its counters are exact too. */
static void threads_of_an_in_memory_cache_keep_every_counter_exact(void) {
    backlite_storage *s = OPEN_SET(":memory:", .max_size = 1500);
    REQUIRE(s != NULL);
    int ops = h_under_valgrind() ? 40 : 400;
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, 2 * MP_THREADS);
    pthread_t t[2 * MP_THREADS];
    mp_worker w[2 * MP_THREADS];
    for (int i = 0; i < 2 * MP_THREADS; i++) {
        memset(&w[i], 0, sizeof w[i]);
        w[i].s = s;
        w[i].start = &start;
        w[i].rng = 31 + (uint64_t)i * 104729;
        w[i].ops = ops;
        REQUIRE(pthread_create(&t[i], NULL, mp_run, &w[i]) == 0);
    }
    uint64_t hits = 0, misses = 0;
    int failures = 0;
    for (int i = 0; i < 2 * MP_THREADS; i++) {
        pthread_join(t[i], NULL);
        hits += w[i].hits;
        misses += w[i].misses;
        failures += w[i].failures;
    }
    pthread_barrier_destroy(&start);
    CHECK_EQ(failures, 0);
    backlite_stats st = STATS(s);
    CHECK_EQ(st.hits, hits);
    CHECK_EQ(st.misses, misses);
    backlite_lifetime_stats l;
    memset(&l, 0, sizeof l);
    CHECK_OK(backlite_storage_lifetime_stats(s, &l, &err));
    CHECK_EQ(l.hits, hits);
    CHECK_EQ(l.misses, misses);
    CHECK_EQ(l.evictions, st.evictions);
    CHECK_EQ(l.expirations, st.expirations);
    backlite_check_report r;
    CHECK_OK(backlite_storage_check(s, 0, &r, &err));
    CHECK_EQ(r.healthy, 1);
    CHECK_EQ(r.recorded_count, r.actual_count);
    CHECK_EQ(r.recorded_total_size, r.actual_total_size);
    CHECK(r.actual_total_size <= 1500);
    int listed = 0;
    CHECK_OK(backlite_storage_keys(s, mp_keys, &listed, &err));
    CHECK_EQ(STATS(s).count, (uint64_t)listed);
    backlite_storage_free(s);
}

/* ---------------------------------------------------------------- size edges */

static void a_limit_of_one_byte(void) {
    const backlite_eviction_policy ps[5] = {LRU, LFU, MRU, FIFO, LIFO};
    for (int p = 0; p < 5; p++) {
        char name[32];
        snprintf(name, sizeof name, "one-%d.db", p);
        backlite_storage *s = OPEN_WITH(tmp_path(name), 1, ps[p]);
        REQUIRE(s != NULL);
        /* empty values take no room: a value that fits evicts none */
        for (int i = 0; i < 20; i++) {
            char k[8];
            snprintf(k, sizeof k, "e%d", i);
            SET(s, k, "");
        }
        SET(s, "one", "1");
        backlite_stats st = STATS(s);
        CHECK_EQ(st.count, 21);
        CHECK_EQ(st.total_size, 1);
        CHECK_EQ(st.evictions, 0);
        /* "two" evicts by the policy until it fits: the empty values first where the
         * policy puts them first (they free no room), "one" alone where it is first */
        bool one_first = ps[p] == MRU || ps[p] == LIFO;
        SET(s, "two", "2");
        st = STATS(s);
        CHECK_EQ(st.count, one_first ? 21 : 1);
        CHECK_EQ(st.total_size, 1);
        CHECK_EQ(st.evictions, one_first ? 1 : 21);
        CHECK(!HAS(s, "one"));
        GET_EQ(s, "two", "2");
        CHECK_RC(backlite_storage_set(s, K("two"), K("22"), NEVER, &err), BACKLITE_RESULT_TOO_LARGE);
        CHECK(!HAS(s, "two"));
        st = STATS(s);
        CHECK_EQ(st.count, one_first ? 20 : 0);
        CHECK_EQ(st.total_size, 0);
        CHECK_EQ(st.evictions, one_first ? 1 : 21);
        backlite_storage_free(s);
    }
}

/* A batch that overwrites its own key: only what stays counts against the limit. */
static void a_batch_is_measured_by_what_it_leaves(void) {
    const backlite_eviction_policy ps[5] = {LRU, LFU, MRU, FIFO, LIFO};
    for (int p = 0; p < 5; p++) {
        char name[32];
        snprintf(name, sizeof name, "batch-%d.db", p);
        backlite_storage *s = OPEN_WITH(tmp_path(name), 10, ps[p]);
        REQUIRE(s != NULL);
        SET(s, "old", "123");
        backlite_entry e[4] = {
            {(const uint8_t *)"a", 1, (const uint8_t *)"aaaaaaa", 7, NEVER},
            {(const uint8_t *)"a", 1, (const uint8_t *)"a", 1, NEVER},
            {(const uint8_t *)"b", 1, (const uint8_t *)"bbbbbb", 6, NEVER},
            {(const uint8_t *)"old", 3, (const uint8_t *)"o", 1, NEVER},
        };
        CHECK_OK(backlite_storage_set_many(s, e, 4, &err));
        backlite_stats st = STATS(s);
        CHECK_EQ(st.evictions, 0);
        CHECK_EQ(st.count, 3);
        CHECK_EQ(st.total_size, 8);
        GET_EQ(s, "a", "a");
        GET_EQ(s, "b", "bbbbbb");
        GET_EQ(s, "old", "o");
        /* the same with an expired last write of a key: it removes the first */
        backlite_entry f[3] = {
            {(const uint8_t *)"c", 1, (const uint8_t *)"cccccccccc", 10, NEVER},
            {(const uint8_t *)"c", 1, (const uint8_t *)"c", 1, 0},
            {(const uint8_t *)"d", 1, (const uint8_t *)"d", 1, NEVER},
        };
        CHECK_OK(backlite_storage_set_many(s, f, 3, &err));
        st = STATS(s);
        CHECK_EQ(st.evictions, 0);
        CHECK_EQ(st.count, 4);
        CHECK_EQ(st.total_size, 9);
        CHECK(!HAS(s, "c"));
        GET_EQ(s, "d", "d");
        backlite_storage_free(s);
    }
}

/* ------------------------------------------------------------ expiration edges */

static backlite_storage *open_default_exp(const char *path, int64_t ms) {
    backlite_options *o = backlite_options_new();
    CHECK_RESULT(backlite_options_set_default_expiration_ms(o, ms), BACKLITE_RESULT_OK);
    backlite_storage *s = OPEN(path, o);
    backlite_options_free(o);
    return s;
}

/* An entry keeps the deadline it was set with: a reopen with another default changes
 * no stored entry, for every call that takes DEFAULT. */
static void the_default_is_read_at_the_set_not_at_the_reopen(void) {
    const char *path = tmp_path("default-reopen.db");
    backlite_storage *s = open_default_exp(path, 150);
    REQUIRE(s != NULL);
    SET_EXP(s, "short", "1", BACKLITE_EXPIRATION_DEFAULT);
    backlite_entry e[1] = {{(const uint8_t *)"short-many", 10, (const uint8_t *)"1", 1, BACKLITE_EXPIRATION_DEFAULT}};
    CHECK_OK(backlite_storage_set_many(s, e, 1, &err));
    backlite_storage_free(s);
    s = open_default_exp(path, NEVER);
    REQUIRE(s != NULL);
    SET_EXP(s, "never", "2", BACKLITE_EXPIRATION_DEFAULT);
    backlite_buf b = {NULL, 0};
    int64_t left = 0;
    CHECK_OK(backlite_storage_get(s, K("never"), &b, &left, &err));
    CHECK_EQ(left, NEVER);
    backlite_buf_free(&b);
    backlite_storage_free(s);
    h_sleep_ms(300);
    s = open_default_exp(path, 3600000);
    REQUIRE(s != NULL);
    CHECK(!HAS(s, "short"));
    CHECK(!HAS(s, "short-many"));
    left = 0;
    CHECK_OK(backlite_storage_get(s, K("never"), &b, &left, &err));
    CHECK_EQ(left, NEVER);
    backlite_buf_free(&b);
    backlite_stats st = STATS(s);
    CHECK_EQ(st.count, 1);
    CHECK_EQ(st.total_size, 1);
    backlite_storage_free(s);
}

int main(void) {
    h_begin();
    RUN(a_cached_call_whose_store_is_busy);
    RUN(a_computed_value_too_large_is_returned_under_anothers_lock);
    RUN(a_limit_of_one_byte);
    RUN(a_batch_is_measured_by_what_it_leaves);
    RUN(the_default_is_read_at_the_set_not_at_the_reopen);
    RUN(two_processes_of_threads_keep_every_counter_exact);
    RUN(threads_of_an_in_memory_cache_keep_every_counter_exact);
    return h_end();
}
