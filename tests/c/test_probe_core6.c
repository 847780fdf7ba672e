/*
 * Sixth probe round of the local cache contract, kept as tests.
 *
 * every_call_from_8_threads_on_one_handle: one handle used by 8 threads at once, each
 * doing every call (set, set_many, the five kinds of look-up, leases, delete, contains,
 * keys, stats, check with and without repair, vacuum, lifetime stats) on keys of its
 * own, values of files among them; each thread checks every answer against its own
 * model, and the end state (values, count, total_size, hits and misses of the handle
 * and of the file's lifetime) against the sum. It found a check with repair reporting
 * a healthy cache in use as repaired (orphan_values 1): it took the value files of
 * rows another thread's write had just removed (unlinked once that write's writer is
 * free) and files being made (unlocked for an instant) for orphans.
 *
 * counters_follow_a_model_through_two_handles_and_reopens: hits, misses, evictions and
 * expirations of each handle, and the file's lifetime counters, exact after every step
 * of a random sequence of every reading and writing call through two handles (each
 * reopened now and then with another policy and max_size), against a plain model:
 * a write transaction first removes every entry that is due, counted by its handle, as
 * does a look-up or contains that meets one. Passed as it was.
 */
#include <pthread.h>

#include "backlite.h"
#include "harness.h"

/* ------------------------------------------- one handle, 8 threads, every call */

#define NT 8
#define NKT 8
#define LARGE 70000

typedef struct { bool live; size_t size; int gen; } ment;
typedef struct {
    backlite_storage *s;
    pthread_barrier_t *start;
    int tid, ops;
    uint64_t rng, hits, misses;
    ment e[NKT];
    pthread_mutex_t mu;
    int computed;
    size_t csize; int ck, cgen;
} worker;

static void vfill(uint8_t *v, int tid, int k, int gen, size_t n) {
    for (size_t i = 0; i < n; i++) v[i] = (uint8_t)(tid * 131 + k * 31 + gen * 7 + i);
}
static bool vok(const uint8_t *v, size_t n, int tid, int k, int gen, size_t want) {
    if (n != want) return false;
    for (size_t i = 0; i < n; i++) if (v[i] != (uint8_t)(tid * 131 + k * 31 + gen * 7 + i)) return false;
    return true;
}
static int32_t compute(void *ud, backlite_sink *sink) {
    worker *w = ud;
    w->computed++;
    uint8_t *v = malloc(w->csize + 1);
    vfill(v, w->tid, w->ck, w->cgen, w->csize);
    int32_t r = backlite_sink_write(sink, v, w->csize) ? 1 : 0;
    free(v);
    return r;
}
static int32_t lk(void *ud) { return pthread_mutex_lock(ud); }
static void ulk(void *ud) { pthread_mutex_unlock(ud); }
typedef struct { uint8_t *buf; size_t n, cap; } gat;
static int32_t gather(void *ud, const uint8_t *c, size_t n) {
    gat *g = ud;
    if (g->n + n > g->cap) { g->cap = (g->n + n) * 2; g->buf = realloc(g->buf, g->cap); }
    memcpy(g->buf + g->n, c, n); g->n += n; return 0;
}
typedef struct { worker *w; bool seen[NKT]; } kv;
static int32_t visit(void *ud, const uint8_t *key, size_t len) {
    kv *x = ud; char b[32]; int t, k;
    if (len >= sizeof b) return 0;
    memcpy(b, key, len); b[len] = 0;
    if (sscanf(b, "t%d-k%d", &t, &k) == 2 && t == x->w->tid) x->seen[k] = true;
    return 0;
}
static size_t pick_size(worker *w) {
    return h_rand_below(&w->rng, 100) < 3 ? LARGE + h_rand_below(&w->rng, 100) : h_rand_below(&w->rng, 40);
}
static void *run(void *p) {
    worker *w = p;
    pthread_barrier_wait(w->start);
    for (int i = 0; i < w->ops; i++) {
        int k = (int)h_rand_below(&w->rng, NKT);
        char key[32]; snprintf(key, sizeof key, "t%d-k%d", w->tid, k);
        unsigned op = (unsigned)h_rand_below(&w->rng, 150);
        ment *m = &w->e[k];
        backlite_error *err = NULL;
        backlite_result rc = 0, want = 0;
        char what[64];
        if (op < 20) {
            size_t n = pick_size(w);
            bool exp = h_rand_below(&w->rng, 10) == 0;
            uint8_t *v = malloc(n + 1); vfill(v, w->tid, k, m->gen + 1, n);
            rc = backlite_storage_set(w->s, K(key), v, n, exp ? 0 : NEVER, &err);
            free(v);
            snprintf(what, sizeof what, "set %s %zu%s", key, n, exp ? " exp" : "");
            if (exp) m->live = false; else { m->live = true; m->size = n; m->gen++; }
        } else if (op < 30) {
            int cnt = 1 + (int)h_rand_below(&w->rng, 3);
            backlite_entry e[3]; uint8_t *vs[3]; char ks[3][32];
            for (int j = 0; j < cnt; j++) {
                int kk = (int)h_rand_below(&w->rng, NKT);
                snprintf(ks[j], 32, "t%d-k%d", w->tid, kk);
                size_t n = pick_size(w);
                bool exp = h_rand_below(&w->rng, 10) == 0;
                ment *mm = &w->e[kk];
                vs[j] = malloc(n + 1); vfill(vs[j], w->tid, kk, mm->gen + 1, n);
                if (exp) mm->live = false; else { mm->live = true; mm->size = n; mm->gen++; }
                e[j] = (backlite_entry){(const uint8_t *)ks[j], strlen(ks[j]), vs[j], n, exp ? 0 : NEVER};
            }
            rc = backlite_storage_set_many(w->s, e, (size_t)cnt, &err);
            for (int j = 0; j < cnt; j++) free(vs[j]);
            snprintf(what, sizeof what, "set_many %d", cnt);
        } else if (op < 75) {
            int kind = (int)h_rand_below(&w->rng, 6);
            gat g = {0};
            backlite_buf b = {0};
            w->computed = 0; w->ck = k; w->cgen = m->gen + 1; w->csize = pick_size(w);
            backlite_barrier bar = {&w->mu, lk, ulk};
            if (kind == 0) rc = backlite_storage_get(w->s, K(key), &b, NULL, &err);
            else if (kind == 1) rc = backlite_cached_call(w->s, K(key), compute, w, h_rand_below(&w->rng, 2) ? &bar : NULL, NEVER, &b, &err);
            else if (kind == 2) rc = backlite_cached_call_exclusive(w->s, K(key), compute, w, NEVER, 1000, &b, &err);
            else if (kind == 3) rc = backlite_storage_get_chunks(w->s, K(key), gather, &g, NULL, &err);
            else if (kind == 4) {
                backlite_value_reader *r = NULL; uint64_t sz = 0;
                rc = backlite_storage_open_reader(w->s, K(key), &r, &sz, NULL, &err);
                if (rc == 0) {
                    uint8_t tmp[4096]; size_t nr = 0; backlite_result r2;
                    while ((r2 = backlite_value_reader_read(r, tmp, sizeof tmp, &nr, NULL)) == 0 && nr) gather(&g, tmp, nr);
                    if (r2 != 0) h_fail_(__FILE__, __LINE__, "reader read %d", r2);
                    if (sz != m->size) h_fail_(__FILE__, __LINE__, "reader size");
                    backlite_value_reader_free(r);
                }
            } else {
                backlite_lease *l = NULL;
                if (h_rand_below(&w->rng, 2)) rc = backlite_lease_try_acquire(w->s, K(key), 60000, &b, &l, &err);
                else rc = backlite_lease_step(w->s, K(key), 0, &b, &l, &err);
                if (rc == BACKLITE_RESULT_NOT_FOUND) {
                    if (!l) h_fail_(__FILE__, __LINE__, "no lease");
                    else if (h_rand_below(&w->rng, 4) == 0) backlite_lease_abandon(l);
                    else {
                        uint8_t *v = malloc(w->csize + 1); vfill(v, w->tid, k, m->gen + 1, w->csize);
                        backlite_error *e2 = NULL;
                        backlite_result r2 = backlite_lease_fulfill(l, v, w->csize, NEVER, &e2);
                        if (r2) h_fail_(__FILE__, __LINE__, "fulfill %d %s", r2, backlite_error_message(e2));
                        backlite_error_free(e2);
                        free(v);
                        w->computed = 1;
                    }
                }
            }
            snprintf(what, sizeof what, "read kind %d %s", kind, key);
            const uint8_t *got = kind == 3 || kind == 4 ? g.buf : b.data;
            size_t gn = kind == 3 || kind == 4 ? g.n : b.len;
            if (m->live) {
                want = 0; w->hits++;
                if (rc == 0 && !vok(got, gn, w->tid, k, m->gen, m->size)) h_fail_(__FILE__, __LINE__, "%s: wrong value (%zu bytes, want %zu)", what, gn, m->size);
                if (w->computed) h_fail_(__FILE__, __LINE__, "%s: computed on a hit", what);
            } else {
                w->misses++;
                if (kind == 1 || kind == 2) {
                    want = 0;
                    if (w->computed != 1) h_fail_(__FILE__, __LINE__, "%s: computed %d", what, w->computed);
                    if (rc == 0 && !vok(got, gn, w->tid, k, m->gen + 1, w->csize)) h_fail_(__FILE__, __LINE__, "%s: wrong computed value", what);
                    m->live = true; m->size = w->csize; m->gen++;
                } else {
                    want = BACKLITE_RESULT_NOT_FOUND;
                    if (kind == 5 && w->computed) { m->live = true; m->size = w->csize; m->gen++; }
                }
            }
            backlite_buf_free(&b); free(g.buf);
        } else if (op < 90) {
            rc = backlite_storage_delete(w->s, K(key), &err);
            want = m->live ? 0 : BACKLITE_RESULT_NOT_FOUND;
            m->live = false;
            snprintf(what, sizeof what, "delete %s", key);
        } else if (op < 105) {
            rc = backlite_storage_contains(w->s, K(key), &err);
            want = m->live ? 0 : BACKLITE_RESULT_NOT_FOUND;
            snprintf(what, sizeof what, "contains %s", key);
        } else if (op < 115) {
            kv x = {w, {0}};
            rc = backlite_storage_keys(w->s, visit, &x, &err);
            for (int j = 0; j < NKT; j++) if (x.seen[j] != w->e[j].live) h_fail_(__FILE__, __LINE__, "keys: t%d-k%d seen %d live %d", w->tid, j, x.seen[j], w->e[j].live);
            snprintf(what, sizeof what, "keys");
        } else if (op < 125) {
            backlite_stats st;
            rc = backlite_storage_stats(w->s, &st, &err);
            snprintf(what, sizeof what, "stats");
            if (rc == 0 && st.count > NT * NKT) h_fail_(__FILE__, __LINE__, "count %llu", (unsigned long long)st.count);
        } else if (op < 130) {
            backlite_check_report r;
            rc = backlite_storage_check(w->s, 0, &r, &err);
            snprintf(what, sizeof what, "check");
            if (rc == 0 && (!r.healthy || !r.integrity_ok)) h_fail_(__FILE__, __LINE__, "check unhealthy: damaged %llu orphans %llu rec %llu/%llu act %llu/%llu", (unsigned long long)r.damaged, (unsigned long long)r.orphan_values, (unsigned long long)r.recorded_count, (unsigned long long)r.recorded_total_size, (unsigned long long)r.actual_count, (unsigned long long)r.actual_total_size);
        } else if (op < 133) {
            rc = backlite_storage_vacuum(w->s, &err);
            if (rc == BACKLITE_RESULT_BUSY) rc = 0;
            snprintf(what, sizeof what, "vacuum");
        } else if (op < 140) {
            backlite_lifetime_stats ls;
            rc = backlite_storage_lifetime_stats(w->s, &ls, &err);
            snprintf(what, sizeof what, "lifetime");
        } else {
            /* check with repair: must find nothing to repair */
            backlite_check_report r;
            rc = backlite_storage_check(w->s, 1, &r, &err);
            snprintf(what, sizeof what, "check repair");
            if (rc == 0 && (!r.healthy || r.repaired)) h_fail_(__FILE__, __LINE__, "check repair: repaired %d damaged %llu orphans %llu", r.repaired, (unsigned long long)r.damaged, (unsigned long long)r.orphan_values);
        }
        if (rc != want) h_fail_(__FILE__, __LINE__, "t%d op %d %s: %s want %s: %s", w->tid, i, what, h_rc_name(rc), h_rc_name(want), err ? backlite_error_message(err) : "");
        backlite_error_free(err);
    }
    return NULL;
}
static void every_call_from_8_threads_on_one_handle(void) {
    const char *path = tmp_path("t8.db");
    backlite_storage *s = OPEN(path, NULL);
    REQUIRE(s);
    pthread_barrier_t start; pthread_barrier_init(&start, NULL, NT);
    pthread_t t[NT]; worker w[NT];
    int ops = getenv("PROBE_OPS") ? atoi(getenv("PROBE_OPS")) : h_under_valgrind() ? 60 : 600;
    for (int i = 0; i < NT; i++) {
        memset(&w[i], 0, sizeof w[i]);
        w[i].s = s; w[i].start = &start; w[i].tid = i; w[i].ops = ops; w[i].rng = 77 + (uint64_t)i * 1000003;
        pthread_mutex_init(&w[i].mu, NULL);
        REQUIRE(pthread_create(&t[i], NULL, run, &w[i]) == 0);
    }
    uint64_t hits = 0, misses = 0, count = 0, total = 0;
    for (int i = 0; i < NT; i++) {
        pthread_join(t[i], NULL);
        hits += w[i].hits; misses += w[i].misses;
        for (int k = 0; k < NKT; k++) if (w[i].e[k].live) { count++; total += w[i].e[k].size; }
    }
    backlite_stats st = STATS(s);
    CHECK_EQ(st.hits, hits); CHECK_EQ(st.misses, misses);
    CHECK_EQ(st.count, count); CHECK_EQ(st.total_size, total);
    CHECK_EQ(st.evictions, 0);
    printf("# hits %llu misses %llu count %llu exp %llu\n", (unsigned long long)hits, (unsigned long long)misses, (unsigned long long)count, (unsigned long long)st.expirations);
    backlite_lifetime_stats ls; CHECK_OK(backlite_storage_lifetime_stats(s, &ls, &err));
    CHECK_EQ(ls.hits, hits); CHECK_EQ(ls.misses, misses);
    backlite_storage_free(s);
    s = OPEN(path, NULL);
    CHECK_OK(backlite_storage_lifetime_stats(s, &ls, &err));
    CHECK_EQ(ls.hits, hits); CHECK_EQ(ls.misses, misses);
    backlite_check_report r; CHECK_OK(backlite_storage_check(s, 0, &r, &err));
    CHECK(r.healthy == 1); CHECK_EQ(r.actual_count, count); CHECK_EQ(r.actual_total_size, total);
    for (int i = 0; i < NT; i++) for (int k = 0; k < NKT; k++) {
        char key[32]; snprintf(key, sizeof key, "t%d-k%d", i, k);
        backlite_buf b = {0};
        backlite_result rc = backlite_storage_get(s, K(key), &b, NULL, NULL);
        if (w[i].e[k].live) { CHECK_EQ(rc, 0); if (rc == 0) CHECK(vok(b.data, b.len, i, k, w[i].e[k].gen, w[i].e[k].size)); }
        else CHECK_EQ(rc, BACKLITE_RESULT_NOT_FOUND);
        backlite_buf_free(&b);
    }
    backlite_storage_free(s);
}

/* ------------------------------------------------------ counters, exactly */

#define MK 10
typedef struct { bool live, due; size_t size; uint64_t hits, last, set; } cment;
typedef struct { cment e[MK]; uint64_t clock, total; } cfile;
typedef struct { int policy; uint64_t max; backlite_storage *s; uint64_t hits, misses, ev, exp; } mh;
static uint64_t L_hits, L_misses, L_ev, L_exp;

static void c_drop(cfile *m, int k) { if (m->e[k].live) { m->e[k].live = false; m->e[k].due = false; m->total -= m->e[k].size; } }
static void c_purge(cfile *m, mh *h) {
    for (int k = 0; k < MK; k++) if (m->e[k].live && m->e[k].due) { c_drop(m, k); h->exp++; L_exp++; }
}
static int c_victim(cfile *m, int policy, int except) {
    int v = -1;
    for (int i = 0; i < MK; i++) {
        if (!m->e[i].live || i == except) continue;
        if (v < 0) { v = i; continue; }
        cment *c = &m->e[i], *b = &m->e[v];
        bool better = false;
        switch (policy) {
        case 0: better = c->last < b->last; break;
        case 1: better = c->hits < b->hits || (c->hits == b->hits && c->last < b->last); break;
        case 2: better = c->last > b->last; break;
        case 3: better = c->set < b->set; break;
        case 4: better = c->set > b->set; break;
        }
        if (better) v = i;
    }
    return v;
}
static void c_put(cfile *m, int k, size_t size) {
    cment *e = &m->e[k];
    e->live = true; e->due = false; e->size = size; e->hits = 0; e->last = e->set = ++m->clock; m->total += size;
}
static backlite_result c_set(cfile *m, mh *h, int k, size_t size, bool expired) {
    c_purge(m, h);
    c_drop(m, k);
    if (expired) return 0;
    if (size > h->max) return BACKLITE_RESULT_TOO_LARGE;
    while (m->total + size > h->max) { int v = c_victim(m, h->policy, k); if (v < 0) break; c_drop(m, v); h->ev++; L_ev++; }
    c_put(m, k, size);
    return 0;
}
/* c_set of a set (or a cached_call's store): one that stores nothing (already expired,
 * or too large) of a key with no row writes nothing, a read: nothing purged */
static backlite_result c_set_plain(cfile *m, mh *h, int k, size_t size, bool expired) {
    if (!m->e[k].live && (expired || size > h->max)) return expired ? 0 : BACKLITE_RESULT_TOO_LARGE;
    return c_set(m, h, k, size, expired);
}
static void c_hit(cfile *m, mh *h, int k) { m->e[k].hits++; m->e[k].last = ++m->clock; h->hits++; L_hits++; }
static void c_miss(mh *h) { h->misses++; L_misses++; }
static size_t c_size;
static int32_t c_chunk_ok(void *ud, const uint8_t *c, size_t n) { (void)ud; (void)c; (void)n; return 0; }
static int32_t c_compute(void *ud, backlite_sink *s) { (void)ud; uint8_t v[64] = {0}; return backlite_sink_write(s, v, c_size) ? 1 : 0; }

static bool c_compare(mh *hs, int nh, int step, const char *what, cfile *m) {
    bool ok = true;
    for (int i = 0; i < nh; i++) {
        backlite_stats st = STATS(hs[i].s);
        if (st.hits != hs[i].hits || st.misses != hs[i].misses || st.evictions != hs[i].ev || st.expirations != hs[i].exp) {
            h_fail_(__FILE__, __LINE__, "step %d after %s: handle %d: h %llu m %llu ev %llu exp %llu, model %llu %llu %llu %llu", step, what, i,
                (unsigned long long)st.hits, (unsigned long long)st.misses, (unsigned long long)st.evictions, (unsigned long long)st.expirations,
                (unsigned long long)hs[i].hits, (unsigned long long)hs[i].misses, (unsigned long long)hs[i].ev, (unsigned long long)hs[i].exp);
            ok = false;
        }
        uint64_t live = 0; for (int k = 0; k < MK; k++) live += m->e[k].live && !m->e[k].due;
        uint64_t tot = 0; for (int k = 0; k < MK; k++) if (m->e[k].live && !m->e[k].due) tot += m->e[k].size;
        if (st.count != live || st.total_size != tot) { h_fail_(__FILE__, __LINE__, "step %d after %s: count %llu/%llu total %llu/%llu", step, what, (unsigned long long)st.count, (unsigned long long)live, (unsigned long long)st.total_size, (unsigned long long)tot); ok = false; }
    }
    backlite_lifetime_stats l; memset(&l, 0, sizeof l);
    backlite_error *err = NULL;
    if (backlite_storage_lifetime_stats(hs[0].s, &l, &err) != 0) { ok = false; }
    backlite_error_free(err);
    if (l.hits != L_hits || l.misses != L_misses || l.evictions != L_ev || l.expirations != L_exp) {
        h_fail_(__FILE__, __LINE__, "step %d after %s: lifetime h %llu m %llu ev %llu exp %llu, model %llu %llu %llu %llu", step, what,
            (unsigned long long)l.hits, (unsigned long long)l.misses, (unsigned long long)l.evictions, (unsigned long long)l.expirations,
            (unsigned long long)L_hits, (unsigned long long)L_misses, (unsigned long long)L_ev, (unsigned long long)L_exp);
        ok = false;
    }
    return ok;
}
static void c_reopen(mh *h, const char *path, uint64_t *rng) {
    backlite_storage_free(h->s);
    h->policy = (int)h_rand_below(rng, 5);
    h->max = 20 + h_rand_below(rng, 60);
    h->s = OPEN_WITH(path, h->max, h->policy);
    h->hits = h->misses = h->ev = h->exp = 0;
}
static void c_run_model(uint64_t seed, int nh) {
    char name[64]; snprintf(name, sizeof name, "cm-%llu-%d.db", (unsigned long long)seed, nh);
    const char *path = tmp_path(name);
    cfile m; memset(&m, 0, sizeof m);
    L_hits = L_misses = L_ev = L_exp = 0;
    uint64_t rng = seed;
    mh hs[2]; memset(hs, 0, sizeof hs);
    for (int i = 0; i < nh; i++) c_reopen(&hs[i], path, &rng);
    char what[96];
    for (int step = 0; step < 600; step++) {
        mh *h = &hs[h_rand_below(&rng, (uint64_t)nh)];
        int k = (int)h_rand_below(&rng, MK);
        char key[8]; snprintf(key, sizeof key, "k%d", k);
        unsigned op = (unsigned)h_rand_below(&rng, 100);
        backlite_error *err = NULL; backlite_result rc = 0, want = 0;
        uint8_t v[128] = {0};
        backlite_buf b = {0};
        bool due = m.e[k].live && m.e[k].due;
        if (op < 25) {
            size_t size = h_rand_below(&rng, 100) < 5 ? h->max + 1 : h_rand_below(&rng, 25);
            int x = (int)h_rand_below(&rng, 100);
            bool expired = x < 8 && size <= h->max, soon = x >= 8 && x < 20;
            snprintf(what, sizeof what, "set %s %zu%s", key, size, expired ? " exp0" : soon ? " 1ms" : "");
            want = c_set_plain(&m, h, k, size, expired);
            rc = backlite_storage_set(h->s, K(key), v, size, expired ? 0 : soon ? 1 : NEVER, &err);
            if (soon && want == 0) { h_sleep_ms(3); m.e[k].due = true; }
        } else if (op < 32) {
            int n = 1 + (int)h_rand_below(&rng, 3);
            backlite_entry e[3]; char ks[3][8]; int kks[3]; bool exs[3]; size_t sizes[3];
            /* a batch of expired entries of keys with no row, in a file within this
             * handle's max_size, writes nothing: nothing purged */
            bool writes = m.total > h->max;
            for (int i = 0; i < n; i++) {
                kks[i] = (int)h_rand_below(&rng, MK); snprintf(ks[i], 8, "k%d", kks[i]);
                sizes[i] = h_rand_below(&rng, 15);
                exs[i] = h_rand_below(&rng, 10) == 0;
                writes = writes || !exs[i] || m.e[kks[i]].live;
                e[i] = (backlite_entry){(const uint8_t *)ks[i], strlen(ks[i]), v, sizes[i], exs[i] ? 0 : NEVER};
            }
            if (writes) c_purge(&m, h);
            for (int i = 0; i < n; i++) {
                c_drop(&m, kks[i]); if (!exs[i]) c_put(&m, kks[i], sizes[i]);
            }
            while (m.total > h->max) { int vi = c_victim(&m, h->policy, -1); c_drop(&m, vi); h->ev++; L_ev++; }
            snprintf(what, sizeof what, "set_many %d", n);
            rc = backlite_storage_set_many(h->s, e, (size_t)n, &err);
        } else if (op < 55) {
            int kind = (int)h_rand_below(&rng, 3);
            snprintf(what, sizeof what, "get%d %s", kind, key);
            if (kind == 0) rc = backlite_storage_get(h->s, K(key), &b, NULL, &err);
            else if (kind == 1) rc = backlite_storage_get_chunks(h->s, K(key), c_chunk_ok, NULL, NULL, &err);
            else {
                backlite_value_reader *r = NULL;
                rc = backlite_storage_open_reader(h->s, K(key), &r, NULL, NULL, &err);
                backlite_value_reader_free(r);
            }
            if (due) { c_purge(&m, h); c_miss(h); want = BACKLITE_RESULT_NOT_FOUND; }
            else if (m.e[k].live) { c_hit(&m, h, k); }
            else { c_miss(h); want = BACKLITE_RESULT_NOT_FOUND; }
        } else if (op < 68) {
            c_size = h_rand_below(&rng, 25);
            snprintf(what, sizeof what, "cached_call %s %zu", key, c_size);
            int kind = (int)h_rand_below(&rng, 3);
            if (kind == 0) rc = backlite_cached_call(h->s, K(key), c_compute, NULL, NULL, NEVER, &b, &err);
            else if (kind == 1) rc = backlite_cached_call_exclusive(h->s, K(key), c_compute, NULL, NEVER, 0, &b, &err);
            else {
                backlite_lease *l = NULL;
                rc = backlite_lease_try_acquire(h->s, K(key), 10000, &b, &l, &err);
                if (rc == BACKLITE_RESULT_NOT_FOUND && l) rc = backlite_lease_fulfill(l, v, c_size, NEVER, &err);
            }
            if (due) c_purge(&m, h);
            if (m.e[k].live) c_hit(&m, h, k);
            else {
                c_miss(h);
                backlite_result w2 = kind == 0 ? c_set_plain(&m, h, k, c_size, false) : c_set(&m, h, k, c_size, false);
                if (kind == 2) want = w2;
            }
        } else if (op < 76) {
            snprintf(what, sizeof what, "delete %s", key);
            rc = backlite_storage_delete(h->s, K(key), &err);
            /* a key with no row (live or due) is a read: nothing purged */
            if (m.e[k].live) c_purge(&m, h);
            want = m.e[k].live ? 0 : BACKLITE_RESULT_NOT_FOUND;
            c_drop(&m, k);
        } else if (op < 88) {
            snprintf(what, sizeof what, "contains %s", key);
            rc = backlite_storage_contains(h->s, K(key), &err);
            if (due) c_purge(&m, h);
            want = m.e[k].live ? 0 : BACKLITE_RESULT_NOT_FOUND;
        } else if (op < 90) {
            snprintf(what, sizeof what, "clear");
            rc = backlite_storage_clear(h->s, &err);
            c_purge(&m, h);
            for (int j = 0; j < MK; j++) c_drop(&m, j);
        } else if (op < 97) {
            int j = 0;
            snprintf(what, sizeof what, "keys");
            rc = backlite_storage_keys(h->s, NULL, NULL, &err);
            want = BACKLITE_RESULT_NULL_PARAMETER; (void)j;
        } else {
            snprintf(what, sizeof what, "reopen");
            uint64_t ndue = 0; for (int j = 0; j < MK; j++) ndue += m.e[j].live && m.e[j].due;
            c_reopen(h, path, &rng);
            backlite_lifetime_stats l; memset(&l, 0, sizeof l);
            backlite_storage_lifetime_stats(h->s, &l, NULL);
            if (ndue && l.expirations == L_exp + ndue) {
                /* the closing handle's last write purged them: its own counter is gone */
                for (int j = 0; j < MK; j++) if (m.e[j].live && m.e[j].due) c_drop(&m, j);
                L_exp += ndue;
            }
        }
        if (rc != want) h_fail_(__FILE__, __LINE__, "step %d %s: %s want %s", step, what, h_rc_name(rc), h_rc_name(want));
        backlite_buf_free(&b);
        backlite_error_free(err);
        if (!c_compare(hs, nh, step, what, &m)) { fprintf(stderr, "seed %llu nh %d\n", (unsigned long long)seed, nh); break; }
    }
    for (int i = 0; i < nh; i++) backlite_storage_free(hs[i].s);
}
static void counters_follow_a_model_through_two_handles_and_reopens(void) {
    int n = getenv("PROBE_SEEDS") ? atoi(getenv("PROBE_SEEDS")) : h_under_valgrind() ? 1 : 4;
    for (int i = 0; i < n; i++) { c_run_model(100 + (uint64_t)i, 1); c_run_model(200 + (uint64_t)i, 2); }
}

int main(void) {
    h_begin();
    RUN(every_call_from_8_threads_on_one_handle);
    RUN(counters_follow_a_model_through_two_handles_and_reopens);
    return h_end();
}
