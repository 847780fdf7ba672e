/*
 * Fifteenth probe round of the local cache contract (API.md), kept as tests: the
 * round found these holding, and they pin them.
 *
 * long_runs_follow_every_model: thousands of random gets, sets, batches, already
 * expired sets, cached calls, deletes and clears through several handles, most of them
 * evicting nothing (so that many writes pass between two evictions), follow a model of
 * API.md's five policies exactly: the order, the stats, the values.
 * long_runs_on_threads_taking_turns_follow_every_model: the same with each step on
 * one of four threads (one at a time): hits in several shards of the hit buffer.
 * the_order_holds_after_thousands_of_writes_without_eviction: more writes than the
 * hit buffer keeps reservations of ticks for, then evictions as the model says.
 * sums_stay_exact_under_threads, sums_stay_exact_across_processes: count and
 * total_size are exact after threads (group commits) and processes churn one file.
 * each_handle_evicts_to_its_own_limit: two handles of different max_size on one file.
 * lifetime_counters_add_every_handle_and_process: the lifetime counters sum every
 * handle's and a child's hits, misses, evictions and expirations; zero keeps the
 * per-handle ones.
 */
#include "backlite.h"
#include "harness.h"

#include <pthread.h>

#define LRU BACKLITE_EVICTION_POLICY_LEAST_RECENTLY_USED
#define LFU BACKLITE_EVICTION_POLICY_LEAST_FREQUENTLY_USED
#define MRU BACKLITE_EVICTION_POLICY_MOST_RECENTLY_USED
#define FIFO BACKLITE_EVICTION_POLICY_FIRST_IN_FIRST_OUT
#define LIFO BACKLITE_EVICTION_POLICY_LAST_IN_FIRST_OUT

/* ------------------------------------------------------------- the model */

#define MK 24     /* keys k0..k23 */
#define MMAX 100  /* max_size */

#include "policy_model.h"

static void fill_value(uint8_t *v, int k, size_t size, unsigned gen) {
    for (size_t i = 0; i < size; i++) v[i] = (uint8_t)(k * 37 + size * 11 + i + gen * 7);
}

typedef struct {
    int k;
    size_t size;
    unsigned gen;
    int computed;
} compute_ctx;

static int32_t compute_value(void *ud, backlite_sink *sink) {
    compute_ctx *c = ud;
    c->computed++;
    uint8_t v[MMAX + 16];
    fill_value(v, c->k, c->size, c->gen);
    return backlite_sink_write(sink, v, c->size) == BACKLITE_RESULT_OK ? 0 : 1;
}

/* The state of one run: the model, the handles, the random numbers. */
typedef struct {
    model m;
    unsigned gen[MK];
    int nh;
    const char *path;
    backlite_storage *handles[3];
    uint64_t evicted_before, rng;
    int step, steps;
    bool failed;
    /* the threads: each step runs on the thread `turn` (-1: the caller's) */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int turn;
} run_state;

/* One random operation and its check against the model; false once the run failed. */
static bool step_once(run_state *r) {
    model *mm = &r->m;
#define m (*mm)
#define rng (r->rng)
    int step = r->step;
    backlite_eviction_policy policy = m.policy;
    int nh = r->nh;
    int hi = (int)h_rand_below(&rng, (uint64_t)nh);
    if (r->path && step % 400 == 399) {
        r->evicted_before += STATS(r->handles[hi]).evictions;
        backlite_storage_free(r->handles[hi]);
        r->handles[hi] = OPEN_WITH(r->path, MMAX, policy);
        if (r->handles[hi] == NULL) return false;
    }
    backlite_storage *s = r->handles[hi];
    uint8_t value[MMAX + 16], want[MMAX + 16];
    int k = (int)h_rand_below(&rng, MK);
    char key[32], what[160];
    snprintf(key, sizeof key, "k%d", k);
    unsigned op = (unsigned)h_rand_below(&rng, 1000);
    if (op < 300) {
        /* most sets keep the size the key had: no eviction */
        size_t size = m.e[k].live && h_rand_below(&rng, 10) < 8 ? m.e[k].size : 1 + h_rand_below(&rng, 8);
        bool expired = h_rand_below(&rng, 40) == 0;
        if (h_rand_below(&rng, 200) == 0) size = MMAX + 1;
        r->gen[k]++;
        fill_value(value, k, size, r->gen[k]);
        backlite_result expected = m_set(&m, k, size, expired);
        backlite_error *err = NULL;
        backlite_result rc = backlite_storage_set(s, K(key), value, size, expired ? 0 : NEVER, &err);
        snprintf(what, sizeof what, "policy %d step %d: set(%s, %zu bytes%s)", (int)policy, step, key, size,
                 expired ? ", expired" : "");
        h_check_rc_(__FILE__, __LINE__, what, rc, expected, err);
        backlite_error_free(err);
    } else if (op < 800) {
        backlite_buf b = {NULL, 0};
        backlite_error *err = NULL;
        backlite_result rc = backlite_storage_get(s, K(key), &b, NULL, &err);
        backlite_result expected = m.e[k].live ? BACKLITE_RESULT_OK : BACKLITE_RESULT_NOT_FOUND;
        snprintf(what, sizeof what, "policy %d step %d: get(%s)", (int)policy, step, key);
        if (h_check_rc_(__FILE__, __LINE__, what, rc, expected, err) && rc == BACKLITE_RESULT_OK) {
            fill_value(want, k, m.e[k].size, r->gen[k]);
            h_check_bytes_(__FILE__, __LINE__, what, b.data, b.len, want, m.e[k].size);
        }
        if (m.e[k].live) m_hit(&m, k);
        backlite_error_free(err);
        backlite_buf_free(&b);
    } else if (op < 850) {
        /* a cached call: a hit is an access, a miss stores like a set */
        compute_ctx c = {k, 1 + h_rand_below(&rng, 8), r->gen[k] + 1, 0};
        bool was_live = m.e[k].live;
        if (was_live) {
            m_hit(&m, k);
            c.size = m.e[k].size;
            c.gen = r->gen[k];
        } else {
            r->gen[k]++;
            m_set(&m, k, c.size, false);
        }
        backlite_buf b = {NULL, 0};
        backlite_error *err = NULL;
        backlite_result rc = backlite_cached_call(s, K(key), compute_value, &c, NULL, NEVER, &b, &err);
        snprintf(what, sizeof what, "policy %d step %d: cached_call(%s)", (int)policy, step, key);
        if (h_check_rc_(__FILE__, __LINE__, what, rc, BACKLITE_RESULT_OK, err)) {
            fill_value(want, k, c.size, c.gen);
            h_check_bytes_(__FILE__, __LINE__, what, b.data, b.len, want, c.size);
            if (c.computed != (was_live ? 0 : 1))
                h_fail_(__FILE__, __LINE__, "%s: computed %d times", what, c.computed);
        }
        backlite_error_free(err);
        backlite_buf_free(&b);
    } else if (op < 900) {
        /* a batch of 1 to 4 entries (a key may come twice), then the eviction */
        backlite_entry entries[4];
        uint8_t vals[4][16];
        char keys[4][16];
        int n = 1 + (int)h_rand_below(&rng, 4);
        for (int i = 0; i < n; ++i) {
            int kk = (int)h_rand_below(&rng, MK);
            size_t size = 1 + h_rand_below(&rng, 8);
            bool expired = h_rand_below(&rng, 20) == 0;
            snprintf(keys[i], sizeof keys[i], "k%d", kk);
            r->gen[kk]++;
            fill_value(vals[i], kk, size, r->gen[kk]);
            entries[i] = (backlite_entry){(const uint8_t *)keys[i], strlen(keys[i]), vals[i], size,
                                          expired ? 0 : NEVER};
            m_remove(&m, kk);
            if (!expired) m_store(&m, kk, size);
        }
        m_evict_to(&m, 0, -1);
        backlite_error *err = NULL;
        backlite_result rc = backlite_storage_set_many(s, entries, (size_t)n, &err);
        snprintf(what, sizeof what, "policy %d step %d: set_many(%d)", (int)policy, step, n);
        h_check_rc_(__FILE__, __LINE__, what, rc, BACKLITE_RESULT_OK, err);
        backlite_error_free(err);
    } else if (op < 960) {
        backlite_error *err = NULL;
        backlite_result rc = backlite_storage_delete(s, K(key), &err);
        backlite_result expected = m.e[k].live ? BACKLITE_RESULT_OK : BACKLITE_RESULT_NOT_FOUND;
        snprintf(what, sizeof what, "policy %d step %d: delete(%s)", (int)policy, step, key);
        h_check_rc_(__FILE__, __LINE__, what, rc, expected, err);
        backlite_error_free(err);
        m_remove(&m, k);
    } else if (op < 999) {
        bool got = h_has_(__FILE__, __LINE__, s, key, strlen(key));
        if (got != m.e[k].live)
            h_fail_(__FILE__, __LINE__, "policy %d step %d: contains(%s) is %d", (int)policy, step, key, got);
    } else {
        CHECK_OK(backlite_storage_clear(s, &err));
        for (int j = 0; j < MK; j++) m_remove(&m, j);
    }
    backlite_stats st = STATS(s);
    uint64_t evictions = r->evicted_before;
    for (int i = 0; i < nh; ++i) evictions += STATS(r->handles[i]).evictions;
    uint64_t live = 0;
    for (int j = 0; j < MK; j++) live += m.e[j].live;
    if (st.count != live || st.total_size != m.total || evictions != m.evictions) {
        h_fail_(__FILE__, __LINE__,
                "policy %d step %d: stats count=%" PRIu64 " total_size=%" PRIu64 " evictions=%" PRIu64
                ", model count=%" PRIu64 " total_size=%" PRIu64 " evictions=%" PRIu64,
                (int)policy, step, st.count, st.total_size, evictions, live, m.total, m.evictions);
        return false;
    }
    if (step % 25 == 24) {
        bool same = true;
        for (int j = 0; j < MK && same; j++) {
            char kj[32];
            snprintf(kj, sizeof kj, "k%d", j);
            if (h_has_(__FILE__, __LINE__, s, kj, strlen(kj)) != m.e[j].live) {
                h_fail_(__FILE__, __LINE__, "policy %d step %d: %s is %s in the library, %s in the model",
                        (int)policy, step, kj, m.e[j].live ? "gone" : "live", m.e[j].live ? "live" : "gone");
                same = false;
            }
        }
        if (!same) return false;
    }
    return true;
#undef m
#undef rng
}

/* a worker: runs the steps whose turn is its own, then hands the turn on */
typedef struct {
    run_state *r;
    int me, threads;
} worker;

static void *work(void *arg) {
    worker *w = arg;
    run_state *r = w->r;
    pthread_mutex_lock(&r->mu);
    for (;;) {
        while (r->turn != w->me && r->step < r->steps && !r->failed) pthread_cond_wait(&r->cv, &r->mu);
        if (r->step >= r->steps || r->failed) break;
        if (!step_once(r)) r->failed = true;
        r->step++;
        r->turn = (int)h_rand_below(&r->rng, (uint64_t)w->threads);
        pthread_cond_broadcast(&r->cv);
    }
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

/*
 * `path` NULL: one in-memory handle; else three handles on the file, one of them
 * closed and opened again every 400 steps. Values are small against max_size and most
 * sets replace a value of the same size, so evictions are rare: hundreds of writes,
 * each with hits waiting, pass between two of them. `threads` > 0: each step runs on
 * one of that many threads, chosen at random, one step at a time (each waits for the
 * one before: the order is still exact).
 */
static void long_run(backlite_eviction_policy policy, uint64_t seed, const char *path, int steps, int threads) {
    run_state *r = calloc(1, sizeof *r);
    REQUIRE(r != NULL);
    r->m.policy = policy;
    r->nh = path ? 3 : 1;
    r->path = path;
    r->rng = seed;
    r->steps = steps;
    for (int i = 0; i < r->nh; ++i) {
        r->handles[i] = OPEN_WITH(path ? path : ":memory:", MMAX, policy);
        if (r->handles[i] == NULL) r->failed = true;
    }
    if (threads == 0) {
        for (; r->step < steps && !r->failed; r->step++)
            if (!step_once(r)) r->failed = true;
    } else {
        pthread_mutex_init(&r->mu, NULL);
        pthread_cond_init(&r->cv, NULL);
        pthread_t t[8];
        worker w[8];
        for (int i = 0; i < threads; ++i) {
            w[i] = (worker){r, i, threads};
            if (pthread_create(&t[i], NULL, work, &w[i]) != 0) abort();
        }
        for (int i = 0; i < threads; ++i) pthread_join(t[i], NULL);
        pthread_mutex_destroy(&r->mu);
        pthread_cond_destroy(&r->cv);
    }
    CHECK(r->failed || r->m.evictions > (uint64_t)(steps >= 3000 ? 20 : 0)); /* the run did evict */
    for (int i = 0; i < r->nh; ++i) backlite_storage_free(r->handles[i]);
    free(r);
}

static void long_runs_follow_every_model(void) {
    const backlite_eviction_policy policies[5] = {LRU, LFU, MRU, FIFO, LIFO};
    int steps = h_under_valgrind() ? 600 : 6000;
    for (int p = 0; p < 5; p++) {
        char name[32];
        snprintf(name, sizeof name, "long-%d.db", p);
        long_run(policies[p], 101 + (uint64_t)p, NULL, steps, 0);
        long_run(policies[p], 201 + (uint64_t)p, tmp_path(name), steps, 0);
    }
}


/*
 * Over a thousand writes pass without an eviction, each finding hits waiting (so each
 * reserves ticks for them, up to the reservations kept, MAX_RESERVATIONS in access.rs,
 * and past them): then every eviction still takes the victim the model says, for
 * least-recently- and least-frequently-used, through two handles of one file and in
 * memory.
 */
static void the_order_holds_after_thousands_of_writes_without_eviction(void) {
    const backlite_eviction_policy policies[2] = {LRU, LFU};
    int rounds = h_under_valgrind() ? 600 : 3000;
    for (int p = 0; p < 2; ++p)
        for (int mem = 0; mem < 2; ++mem) {
            model m;
            memset(&m, 0, sizeof m);
            m.policy = policies[p];
            char name[32];
            snprintf(name, sizeof name, "quiet-%d.db", p);
            const char *path = mem ? ":memory:" : tmp_path(name);
            backlite_storage *h[2] = {OPEN_WITH(path, 100, m.policy), NULL};
            h[1] = mem ? h[0] : OPEN_WITH(path, 100, m.policy);
            REQUIRE(h[0] && h[1]);
            uint64_t rng = 77 + (uint64_t)p;
            for (int k = 0; k < 20; ++k) { /* 20 keys of 5 bytes: full */
                char key[16];
                snprintf(key, sizeof key, "k%d", k);
                SET_N(h[k % 2], key, 5);
                m_set(&m, k, 5, false);
            }
            for (int i = 0; i < rounds; ++i) {
                int k = (int)h_rand_below(&rng, 20), j = (int)h_rand_below(&rng, 20);
                char key[16];
                snprintf(key, sizeof key, "k%d", k);
                backlite_buf b = {NULL, 0};
                CHECK_OK(backlite_storage_get(h[i % 2], K(key), &b, NULL, &err));
                backlite_buf_free(&b);
                m_hit(&m, k);
                if (h_rand_below(&rng, 4) == 0) continue; /* some hits wait for later writes */
                snprintf(key, sizeof key, "k%d", j);
                SET_N(h[(i / 2) % 2], key, 5); /* same size: evicts nothing */
                m_set(&m, j, 5, false);
            }
            CHECK_EQ(STATS(h[0]).evictions + (mem ? 0 : STATS(h[1]).evictions), 0);
            /* now each new key (k20..k23) evicts one: the model's victim */
            for (int n = 20; n < MK; ++n) {
                int victim = m_victim(&m, -1);
                char key[16], vkey[16];
                snprintf(key, sizeof key, "k%d", n);
                snprintf(vkey, sizeof vkey, "k%d", victim);
                SET_N(h[n % 2], key, 5);
                m_set(&m, n, 5, false);
                if (m.e[victim].live || HAS(h[0], vkey)) {
                    h_fail_(__FILE__, __LINE__, "policy %d%s: set of %s: %s (the model's victim) is still there",
                            (int)m.policy, mem ? " in memory" : "", key, vkey);
                    break;
                }
                for (int k = 0; k < MK; ++k) {
                    char kk[16];
                    snprintf(kk, sizeof kk, "k%d", k);
                    if (HAS(h[1], kk) != m.e[k].live)
                        h_fail_(__FILE__, __LINE__, "policy %d%s: after %s: %s is %s", (int)m.policy,
                                mem ? " in memory" : "", key, kk, m.e[k].live ? "gone" : "there");
                }
            }
            backlite_storage_free(h[0]);
            if (!mem) backlite_storage_free(h[1]);
        }
}

/* ------------------------------------------------- accounting under threads */

#define TK 8

typedef struct {
    backlite_storage *s;
    uint64_t seed;
    int ops;
} churn_arg;

static void *churn(void *arg) {
    churn_arg *a = arg;
    uint64_t rng = a->seed;
    uint8_t v[64];
    for (int i = 0; i < a->ops; ++i) {
        char key[16];
        snprintf(key, sizeof key, "t%d", (int)h_rand_below(&rng, TK));
        unsigned op = (unsigned)h_rand_below(&rng, 10);
        size_t size = h_rand_below(&rng, 40);
        memset(v, key[1], sizeof v);
        if (op < 4) {
            backlite_storage_set(a->s, K(key), v, size, h_rand_below(&rng, 10) == 0 ? 0 : NEVER, NULL);
        } else if (op < 5) {
            backlite_entry e[2] = {{(const uint8_t *)key, strlen(key), v, size, NEVER},
                                   {(const uint8_t *)"t0", 2, v, size / 2, NEVER}};
            backlite_storage_set_many(a->s, e, 2, NULL);
        } else if (op < 7) {
            backlite_storage_delete(a->s, K(key), NULL);
        } else if (op < 8) {
            /* larger than max_size: refused, and the older value goes */
            uint8_t big[200];
            memset(big, 'b', sizeof big);
            backlite_storage_set(a->s, K(key), big, sizeof big, NEVER, NULL);
        } else {
            backlite_buf b = {NULL, 0};
            backlite_storage_get(a->s, K(key), &b, NULL, NULL);
            backlite_buf_free(&b);
        }
    }
    return NULL;
}

/* count and total_size are the live entries and the sum of their lengths */
static void expect_exact_sums(backlite_storage *s, const char *what) {
    uint64_t count = 0, total = 0;
    for (int k = 0; k < TK; ++k) {
        char key[16];
        snprintf(key, sizeof key, "t%d", k);
        backlite_buf b = {NULL, 0};
        if (backlite_storage_get(s, K(key), &b, NULL, NULL) == BACKLITE_RESULT_OK) {
            count++;
            total += b.len;
            backlite_buf_free(&b);
        }
    }
    backlite_stats st = STATS(s);
    if (st.count != count || st.total_size != total)
        h_fail_(__FILE__, __LINE__, "%s: stats count=%" PRIu64 " total_size=%" PRIu64 ", entries %" PRIu64
                " of %" PRIu64 " bytes", what, st.count, st.total_size, count, total);
    CHECK(st.total_size <= st.max_size);
}

/*
 * Four threads on two handles of one file (and one in-memory cache) set, batch,
 * delete, get and overwrite with values too large the same few keys at once, their
 * sets meeting in group commits: at the end the stats count exactly the entries there
 * are and the sum of their lengths, within max_size.
 */
static void sums_stay_exact_under_threads(void) {
    const char *path = tmp_path("threads.db");
    for (int mem = 0; mem < 2; ++mem) {
        backlite_storage *a = OPEN_WITH(mem ? ":memory:" : path, 150, LRU);
        backlite_storage *b = mem ? a : OPEN_WITH(path, 150, LRU);
        REQUIRE(a && b);
        int ops = h_under_valgrind() ? 300 : 3000;
        churn_arg args[4];
        pthread_t t[4];
        for (int i = 0; i < 4; ++i) {
            args[i] = (churn_arg){i % 2 ? b : a, 7 + (uint64_t)i * 13 + (uint64_t)mem, ops};
            REQUIRE(pthread_create(&t[i], NULL, churn, &args[i]) == 0);
        }
        for (int i = 0; i < 4; ++i) pthread_join(t[i], NULL);
        expect_exact_sums(a, mem ? "in memory" : "handle a");
        if (!mem) expect_exact_sums(b, "handle b");
        if (b != a) backlite_storage_free(b);
        backlite_storage_free(a);
    }
    backlite_storage *again = OPEN_WITH(path, 150, LRU);
    REQUIRE(again);
    expect_exact_sums(again, "reopened");
    backlite_storage_free(again);
}

/*
 * The same from two processes at once (a child forked with no handle open): the sums
 * are exact for both, and after both are closed.
 */
static void sums_stay_exact_across_processes(void) {
    const char *path = tmp_path("procs.db");
    char keep[PATH_MAX];
    snprintf(keep, sizeof keep, "%s", path);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        backlite_storage *s = OPEN_WITH(keep, 150, LRU);
        if (!s) h_child_exit(2);
        churn_arg a = {s, 99, h_under_valgrind() ? 300 : 3000};
        churn(&a);
        backlite_storage_free(s);
        h_child_exit(0);
    }
    backlite_storage *s = OPEN_WITH(keep, 150, LRU);
    if (s) {
        churn_arg a = {s, 5, h_under_valgrind() ? 300 : 3000};
        churn(&a);
    }
    CHECK_EQ(CHILD_EXIT_CODE(pid), 0);
    REQUIRE(s);
    expect_exact_sums(s, "after both");
    backlite_storage_free(s);
    s = OPEN_WITH(keep, 150, LRU);
    REQUIRE(s);
    expect_exact_sums(s, "reopened");
    backlite_storage_free(s);
}

/* ------------------------------------------------ limits and lifetime counts */

/*
 * Two handles on one file with different max_size: each set evicts down to the limit
 * of the handle that makes it, never below, and each handle reports its own limit.
 */
static void each_handle_evicts_to_its_own_limit(void) {
    const char *path = tmp_path("limits.db");
    backlite_storage *big = OPEN_WITH(path, 1000, FIFO);
    backlite_storage *small = OPEN_WITH(path, 50, FIFO);
    REQUIRE(big && small);
    for (int i = 0; i < 10; ++i) {
        char key[16];
        snprintf(key, sizeof key, "a%d", i);
        SET_N(big, key, 10);
    }
    CHECK_EQ(STATS(big).total_size, 100);
    CHECK_EQ(STATS(big).max_size, 1000);
    CHECK_EQ(STATS(small).max_size, 50);
    SET_N(small, "x", 5); /* evicts a0..a5 (FIFO): 40 + 5 */
    backlite_stats st = STATS(small);
    CHECK_EQ(st.total_size, 45);
    CHECK_EQ(st.count, 5);
    CHECK_EQ(st.evictions, 6);
    CHECK(!HAS(small, "a5"));
    CHECK(HAS(small, "a6"));
    SET_N(big, "y", 5); /* within 1000: nothing goes */
    CHECK_EQ(STATS(big).total_size, 50);
    CHECK_EQ(STATS(big).evictions, 0);
    /* a value over the small limit only: refused there, stored through the other */
    uint8_t v[60];
    memset(v, 'v', sizeof v);
    CHECK_RC(backlite_storage_set(small, K("z"), v, sizeof v, NEVER, &err), BACKLITE_RESULT_TOO_LARGE);
    CHECK_OK(backlite_storage_set(big, K("z"), v, sizeof v, NEVER, &err));
    CHECK_EQ(STATS(big).total_size, 110);
    backlite_storage_free(big);
    backlite_storage_free(small);
}

/*
 * The lifetime counters add up what every handle of every process did: evictions and
 * expirations as their writes make them, hits and misses of a child once it closed.
 */
static void lifetime_counters_add_every_handle_and_process(void) {
    const char *path = tmp_path("life.db");
    char keep[PATH_MAX];
    snprintf(keep, sizeof keep, "%s", path);
    backlite_storage *a = OPEN_WITH(keep, 31, LRU);
    backlite_storage *b = OPEN_WITH(keep, 31, LRU);
    REQUIRE(a && b);
    SET_N(a, "a", 10);
    SET_N(b, "b", 10);
    SET_N(a, "c", 10);
    SET_N(b, "d", 10); /* evicts a */
    GET_EQ(a, "b", "bbbbbbbbbb");
    GET_MISSING(b, "a");
    SET_EXP(a, "e", "e", 1);
    h_sleep_ms(20);
    GET_MISSING(b, "e"); /* expired: a miss, and removed */
    SET_N(b, "f", 1);    /* a write: the expired entry is gone by now */
    backlite_lifetime_stats l = LIFETIME(a);
    CHECK_EQ(l.hits, 1);
    CHECK_EQ(l.misses, 2);
    CHECK_EQ(l.evictions, 1);
    CHECK_EQ(l.expirations, 1);
    backlite_stats sa = STATS(a), sb = STATS(b);
    CHECK_EQ(sa.evictions + sb.evictions, 1);
    CHECK_EQ(sa.expirations + sb.expirations, 1);
    CHECK_EQ(sa.hits, 1);
    CHECK_EQ(sb.misses, 2);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        backlite_storage *c = OPEN_WITH(keep, 31, LRU);
        if (!c) h_child_exit(2);
        backlite_buf v = {NULL, 0};
        for (int i = 0; i < 3; ++i) {
            if (backlite_storage_get(c, K("b"), &v, NULL, NULL) != BACKLITE_RESULT_OK) h_child_exit(3);
            backlite_buf_free(&v);
        }
        if (backlite_storage_get(c, K("nothing"), &v, NULL, NULL) != BACKLITE_RESULT_NOT_FOUND) h_child_exit(4);
        backlite_storage_free(c);
        h_child_exit(0);
    }
    CHECK_EQ(CHILD_EXIT_CODE(pid), 0);
    l = LIFETIME(b);
    CHECK_EQ(l.hits, 4);
    CHECK_EQ(l.misses, 3);
    CHECK_OK(backlite_storage_zero_stats(b, &err));
    l = LIFETIME(a);
    CHECK_EQ(l.hits + l.misses + l.evictions + l.expirations, 0);
    /* the per-handle counters are kept */
    CHECK_EQ(STATS(a).hits, 1);
    CHECK_EQ(STATS(b).misses, 2);
    backlite_storage_free(a);
    backlite_storage_free(b);
}

/*
 * The same, each step on one of four threads in turn (one at a time): hits of several
 * threads land in several shards of the hit buffer, and their order must still be
 * exact once merged, however many writes reserved their ticks meanwhile.
 */
static void long_runs_on_threads_taking_turns_follow_every_model(void) {
    const backlite_eviction_policy policies[5] = {LRU, LFU, MRU, FIFO, LIFO};
    int steps = h_under_valgrind() ? 400 : 6000;
    for (int p = 0; p < 5; p++) {
        char name[32];
        snprintf(name, sizeof name, "turns-%d.db", p);
        long_run(policies[p], 301 + (uint64_t)p, NULL, steps, 4);
        long_run(policies[p], 401 + (uint64_t)p, tmp_path(name), steps, 4);
    }
}

int main(void) {
    h_begin();
    RUN(long_runs_follow_every_model);
    RUN(long_runs_on_threads_taking_turns_follow_every_model);
    RUN(the_order_holds_after_thousands_of_writes_without_eviction);
    RUN(sums_stay_exact_under_threads);
    RUN(sums_stay_exact_across_processes);
    RUN(each_handle_evicts_to_its_own_limit);
    RUN(lifetime_counters_add_every_handle_and_process);
    return h_end();
}
