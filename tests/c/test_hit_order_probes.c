/*
 * Probes of issue 12's promises about hits, from the README ("Hits are buffered",
 * "Policies", "Threads and processes", "fork()") and the header: the eviction order
 * stays exact however hits reach the file (one handle, two handles, two processes
 * taking turns, handles closed and opened again between steps), a buffer of more hits
 * than it holds keeps the order and bounded memory, a process killed with unwritten
 * hits loses no entry, and no get waits for a writer.
 *
 * The model is a list of keys with their set tick, last access tick and hit count:
 * one logical clock, a get hit and a set are accesses; contains, a miss and a delete
 * are not; setting a key again starts its order and its hits over.
 */
#include "backlite.h"
#include "harness.h"

#include <pthread.h>

#define LRU BACKLITE_EVICTION_POLICY_LEAST_RECENTLY_USED
#define LFU BACKLITE_EVICTION_POLICY_LEAST_FREQUENTLY_USED
#define MRU BACKLITE_EVICTION_POLICY_MOST_RECENTLY_USED
#define FIFO BACKLITE_EVICTION_POLICY_FIRST_IN_FIRST_OUT
#define LIFO BACKLITE_EVICTION_POLICY_LAST_IN_FIRST_OUT

static const backlite_eviction_policy POLICIES[5] = {LRU, LFU, MRU, FIFO, LIFO};
static const char *const POLICY_NAMES[5] = {"LRU", "LFU", "MRU", "FIFO", "LIFO"};

/* ------------------------------------------------------------------ model */

#define NK 24
#define MAX_SIZE 100

typedef struct m_entry {
    bool live;
    size_t len;
    unsigned version;
    int64_t created, last, hits;
} m_entry;

typedef struct model {
    m_entry e[NK];
    int64_t clock;
    backlite_eviction_policy policy;
    unsigned next_version;
} model;

static void key_name(char out[8], int k) { snprintf(out, 8, "k%02d", k % 100); }

static uint8_t value_byte(int k, unsigned version) { return (uint8_t)(k * 31 + version * 7 + 1); }

static size_t m_total(const model *m) {
    size_t t = 0;
    for (int k = 0; k < NK; k++)
        if (m->e[k].live) t += m->e[k].len;
    return t;
}

static int m_count(const model *m) {
    int n = 0;
    for (int k = 0; k < NK; k++) n += m->e[k].live;
    return n;
}

static int m_victim(const model *m) {
    int best = -1;
    for (int k = 0; k < NK; k++) {
        const m_entry *e = &m->e[k];
        if (!e->live) continue;
        if (best < 0) {
            best = k;
            continue;
        }
        const m_entry *b = &m->e[best];
        bool better = false;
        switch (m->policy) {
        case LRU: better = e->last < b->last; break;
        case MRU: better = e->last > b->last; break;
        case LFU: better = e->hits < b->hits || (e->hits == b->hits && e->last < b->last); break;
        case FIFO: better = e->created < b->created; break;
        case LIFO: better = e->created > b->created; break;
        }
        if (better) best = k;
    }
    return best;
}

static void m_evict_to(model *m, size_t room) {
    while (m_total(m) + room > MAX_SIZE) {
        int v = m_victim(m);
        if (v < 0) break;
        m->e[v].live = false;
    }
}

static void m_insert(model *m, int k, size_t len, unsigned version) {
    m->e[k] = (m_entry){.live = true, .len = len, .version = version, .created = ++m->clock};
    m->e[k].last = m->e[k].created;
}

/* ------------------------------------------------------ the cache's side */

typedef struct run {
    model m;
    uint64_t rng;
    int step;
    const char *what; /* names the case in failure messages */
} run;

#define STEP_FAIL(r, ...)                                                               \
    do {                                                                              \
        char h_m_[1024]; /* holds a 512-byte model dump and its words */            \
        snprintf(h_m_, sizeof h_m_, __VA_ARGS__);                                     \
        h_fail_(__FILE__, __LINE__, "%s, %s, step %d: %s", (r)->what,                 \
                POLICY_NAMES[(r)->m.policy], (r)->step, h_m_);                        \
    } while (0)

static void op_get(run *r, backlite_storage *s, int k) {
    char key[8];
    key_name(key, k);
    backlite_buf b = {NULL, 0};
    m_entry *e = &r->m.e[k];
    if (s == NULL) { /* the model alone */
        if (e->live) {
            e->hits++;
            e->last = ++r->m.clock;
        }
        return;
    }
    backlite_result rc = backlite_storage_get(s, K(key), &b, NULL, NULL);
    if (e->live) {
        if (rc != BACKLITE_RESULT_OK) {
            STEP_FAIL(r, "get(%s) gave %s, the model has it", key, h_rc_name(rc));
        } else {
            bool same = b.len == e->len;
            for (size_t i = 0; same && i < b.len; i++) same = b.data[i] == value_byte(k, e->version);
            if (!same) STEP_FAIL(r, "get(%s) gave another value", key);
        }
        e->hits++;
        e->last = ++r->m.clock;
    } else if (rc != BACKLITE_RESULT_NOT_FOUND) {
        STEP_FAIL(r, "get(%s) gave %s, the model has no entry", key, h_rc_name(rc));
    }
    backlite_buf_free(&b);
}

/* a compute callback's value: `len` bytes of value_byte(k, version) */
typedef struct computed {
    uint8_t byte;
    size_t len;
    int calls;
} computed;

static int32_t compute(void *user_data, backlite_sink *sink) {
    computed *c = user_data;
    uint8_t v[MAX_SIZE];
    memset(v, c->byte, c->len);
    c->calls++;
    return backlite_sink_write(sink, v, c->len) == BACKLITE_RESULT_OK ? 0 : 1;
}

static int32_t count_chunks(void *user_data, const uint8_t *chunk, size_t len) {
    (void)chunk;
    *(size_t *)user_data += len;
    return 0;
}

/* a read that the docs name an access on a hit: cached_call (on a miss: a set of what
 * it computes), get_chunks, open_reader */
static void op_other_read(run *r, backlite_storage *s, int k, int how) {
    char key[8];
    key_name(key, k);
    m_entry *e = &r->m.e[k];
    bool was_live = e->live;
    size_t len = 1 + (size_t)k % 20;
    unsigned version = ++r->m.next_version;
    if (was_live) {
        e->hits++;
        e->last = ++r->m.clock;
    } else if (how == 0) { /* cached_call stores what it computed */
        m_evict_to(&r->m, len);
        m_insert(&r->m, k, len, version);
    }
    if (s == NULL) return;
    backlite_result rc;
    size_t got = 0;
    if (how == 0) {
        computed c = {.byte = value_byte(k, version), .len = len};
        backlite_buf b = {NULL, 0};
        rc = backlite_cached_call(s, K(key), compute, &c, NULL, NEVER, &b, NULL);
        if (rc == BACKLITE_RESULT_OK) got = b.len;
        backlite_buf_free(&b);
        if (c.calls != (was_live ? 0 : 1)) STEP_FAIL(r, "cached_call(%s) computed %d times", key, c.calls);
    } else if (how == 1) {
        rc = backlite_storage_get_chunks(s, K(key), count_chunks, &got, NULL, NULL);
    } else {
        backlite_value_reader *reader = NULL;
        uint64_t size = 0;
        rc = backlite_storage_open_reader(s, K(key), &reader, &size, NULL, NULL);
        got = (size_t)size;
        backlite_value_reader_free(reader);
    }
    backlite_result want = was_live || how == 0 ? BACKLITE_RESULT_OK : BACKLITE_RESULT_NOT_FOUND;
    if (rc != want) STEP_FAIL(r, "read %d of %s gave %s, not %s", how, key, h_rc_name(rc), h_rc_name(want));
    else if (rc == BACKLITE_RESULT_OK && got != (was_live ? e->len : len))
        STEP_FAIL(r, "read %d of %s gave %zu bytes", how, key, got);
}

static void op_set(run *r, backlite_storage *s, int k, size_t len, int64_t exp) {
    char key[8];
    key_name(key, k);
    unsigned version = ++r->m.next_version;
    uint8_t v[MAX_SIZE + 8];
    memset(v, value_byte(k, version), sizeof v);
    backlite_result rc = s ? backlite_storage_set(s, K(key), v, len, exp, NULL) : BACKLITE_RESULT_OK;
    model *m = &r->m;
    m->e[k].live = false;
    backlite_result want = BACKLITE_RESULT_OK;
    if (len > MAX_SIZE) {
        want = BACKLITE_RESULT_TOO_LARGE;
    } else if (exp != 0) {
        m_evict_to(m, len);
        m_insert(m, k, len, version);
    }
    if (s && rc != want) STEP_FAIL(r, "set(%s, %zu bytes) gave %s, not %s", key, len, h_rc_name(rc), h_rc_name(want));
}

static void op_set_many(run *r, backlite_storage *s, int n) {
    backlite_entry batch[6];
    uint8_t values[6][MAX_SIZE];
    char keys[6][8];
    int ks[6];
    unsigned versions[6];
    size_t lens[6];
    for (int i = 0; i < n; i++) {
        ks[i] = (int)h_rand_below(&r->rng, NK);
        lens[i] = 1 + h_rand_below(&r->rng, 40);
        versions[i] = ++r->m.next_version;
        key_name(keys[i], ks[i]);
        memset(values[i], value_byte(ks[i], versions[i]), lens[i]);
        batch[i] = (backlite_entry){(const uint8_t *)keys[i], strlen(keys[i]), values[i], lens[i], NEVER};
    }
    backlite_result rc = s ? backlite_storage_set_many(s, batch, (size_t)n, NULL) : BACKLITE_RESULT_OK;
    if (rc != BACKLITE_RESULT_OK) STEP_FAIL(r, "set_many of %d gave %s", n, h_rc_name(rc));
    for (int i = 0; i < n; i++) {
        r->m.e[ks[i]].live = false;
        m_insert(&r->m, ks[i], lens[i], versions[i]);
    }
    m_evict_to(&r->m, 0);
}

static void op_delete(run *r, backlite_storage *s, int k) {
    char key[8];
    key_name(key, k);
    backlite_result want = r->m.e[k].live ? BACKLITE_RESULT_OK : BACKLITE_RESULT_NOT_FOUND;
    backlite_result rc = s ? backlite_storage_delete(s, K(key), NULL) : want;
    if (rc != want) STEP_FAIL(r, "delete(%s) gave %s, not %s", key, h_rc_name(rc), h_rc_name(want));
    r->m.e[k].live = false;
}

static void op_contains(run *r, backlite_storage *s, int k) {
    char key[8];
    key_name(key, k);
    backlite_result want = r->m.e[k].live ? BACKLITE_RESULT_OK : BACKLITE_RESULT_NOT_FOUND;
    backlite_result rc = s ? backlite_storage_contains(s, K(key), NULL) : want;
    if (rc != want) STEP_FAIL(r, "contains(%s) gave %s, not %s", key, h_rc_name(rc), h_rc_name(want));
}

/* every key's presence (contains: no access), the count and the total size */
static bool compare_all(run *r, backlite_storage *s) {
    int wrong = 0;
    for (int k = 0; k < NK; k++) {
        char key[8];
        key_name(key, k);
        backlite_result rc = backlite_storage_contains(s, K(key), NULL);
        bool live = rc == BACKLITE_RESULT_OK;
        if (live != r->m.e[k].live) {
            if (wrong++ == 0) {
                char order[512] = "";
                size_t at = 0;
                for (int j = 0; j < NK && at < sizeof order - 40; j++) {
                    const m_entry *e = &r->m.e[j];
                    if (!e->live) continue;
                    at += (size_t)snprintf(order + at, sizeof order - at, " k%02d(c%" PRId64 " l%" PRId64 " h%" PRId64 ")", j,
                                           e->created, e->last, e->hits);
                }
                STEP_FAIL(r, "%s is %s, the model says %s; model:%s", key, live ? "live" : "gone",
                          r->m.e[k].live ? "live" : "gone", order);
            }
        }
    }
    backlite_stats st;
    if (backlite_storage_stats(s, &st, NULL) == BACKLITE_RESULT_OK) {
        if (st.count != (uint64_t)m_count(&r->m) || st.total_size != m_total(&r->m)) {
            STEP_FAIL(r, "stats say %" PRIu64 " entries, %" PRIu64 " bytes; the model %d, %zu", st.count,
                      st.total_size, m_count(&r->m), m_total(&r->m));
            wrong++;
        }
    }
    return wrong == 0;
}

/* one random step on `s` (NULL: on the model alone) */
static void random_step(run *r, backlite_storage *s) {
    uint64_t dice = h_rand_below(&r->rng, 100);
    int k = (int)h_rand_below(&r->rng, NK);
    if (dice < 45) {
        op_get(r, s, k);
    } else if (dice < 70) {
        op_set(r, s, k, 1 + h_rand_below(&r->rng, 30), NEVER);
    } else if (dice < 74) {
        op_set_many(r, s, 1 + (int)h_rand_below(&r->rng, 5));
    } else if (dice < 80) {
        op_delete(r, s, k);
    } else if (dice < 92) {
        op_contains(r, s, k);
    } else if (dice < 94) {
        op_set(r, s, k, 5, 0); /* already expired: stores nothing, the old value goes */
    } else if (dice < 96) {
        op_other_read(r, s, k, (int)h_rand_below(&r->rng, 3));
    } else if (dice < 97) {
        if (h_rand_below(&r->rng, 4) == 0) { /* clear: every entry goes, hits too */
            if (s != NULL) {
                backlite_result rc = backlite_storage_clear(s, NULL);
                if (rc != BACKLITE_RESULT_OK) STEP_FAIL(r, "clear gave %s", h_rc_name(rc));
            }
            for (int i = 0; i < NK; i++) r->m.e[i].live = false;
        } else { /* a set that expires in 1 ms, then 3 ms go by: as if never stored */
            op_set(r, s, k, 1 + h_rand_below(&r->rng, 30), 1);
            r->m.e[k].live = false;
            if (s != NULL) h_sleep_ms(3);
        }
    } else if (dice < 98) {
        op_set(r, s, k, MAX_SIZE + 1 + h_rand_below(&r->rng, 5), NEVER); /* too large */
    } else {
        /* a get of a key never set: a miss, no access */
        if (s == NULL) return;
        backlite_buf b = {NULL, 0};
        backlite_result rc = backlite_storage_get(s, K("never-set"), &b, NULL, NULL);
        if (rc != BACKLITE_RESULT_NOT_FOUND) STEP_FAIL(r, "get(never-set) gave %s", h_rc_name(rc));
    }
}

#define STEPS (h_under_valgrind() ? 150 : 600)

static backlite_storage *open_policy(const char *path, backlite_eviction_policy p) {
    return OPEN_SET(path, .max_size = MAX_SIZE, .policy = p);
}

/* one handle, ":memory:" or a file; with `reopen`, freed and opened again now and
 * then (its unwritten hits must not be lost: a close writes them) */
static void one_handle(const char *what, bool memory, bool reopen) {
    for (int pi = 0; pi < 5; pi++) {
        run r = {.m = {.policy = POLICIES[pi]}, .rng = 0x1234 + (uint64_t)pi, .what = what};
        const char *path = memory ? ":memory:" : tmp_path("one.db");
        if (!memory) remove_cache_file(path);
        backlite_storage *s = open_policy(path, POLICIES[pi]);
        REQUIRE(s != NULL);
        for (r.step = 0; r.step < STEPS; r.step++) {
            random_step(&r, s);
            if (!compare_all(&r, s)) break;
            if (reopen && h_rand_below(&r.rng, 25) == 0) {
                backlite_storage_free(s);
                s = open_policy(path, POLICIES[pi]);
                REQUIRE(s != NULL);
            }
        }
        backlite_storage_free(s);
        if (!memory) remove_cache_file(path);
    }
}

static void exact_order_on_one_handle_in_memory(void) { one_handle("in memory", true, false); }
static void exact_order_on_one_handle_of_a_file(void) { one_handle("a file", false, false); }
static void exact_order_across_closes_and_reopens(void) { one_handle("reopened", false, true); }

/* two handles of one process on one file, steps on either */
static void exact_order_on_two_handles_of_one_process(void) {
    for (int pi = 0; pi < 5; pi++) {
        run r = {.m = {.policy = POLICIES[pi]}, .rng = 0x777 + (uint64_t)pi, .what = "two handles"};
        const char *path = tmp_path("two.db");
        remove_cache_file(path);
        backlite_storage *a = open_policy(path, POLICIES[pi]);
        backlite_storage *b = open_policy(path, POLICIES[pi]);
        REQUIRE(a != NULL && b != NULL);
        for (r.step = 0; r.step < STEPS; r.step++) {
            backlite_storage *s = h_rand_below(&r.rng, 2) ? a : b;
            random_step(&r, s);
            if (!compare_all(&r, h_rand_below(&r.rng, 2) ? a : b)) break;
            if (h_rand_below(&r.rng, 60) == 0) {
                /* one of them closes (writing the hits both made) and opens again */
                backlite_storage **which = s == a ? &a : &b;
                backlite_storage_free(*which);
                *which = open_policy(path, POLICIES[pi]);
                REQUIRE(*which != NULL);
            }
        }
        backlite_storage_free(a);
        backlite_storage_free(b);
        remove_cache_file(path);
    }
}

/*
 * Two processes taking turns on one file: the parent and a forked child run the same
 * random sequence, each the steps of its turns, and each closes its handle at the end
 * of its turn (the README: a handle that closes writes the hits; other processes see a
 * process's hits once they are written). So the order must be exact.
 */
static void exact_order_across_two_processes_taking_turns(void) {
    for (int pi = 0; pi < 5; pi++) {
        const char *path = tmp_path("turns.db");
        remove_cache_file(path);
        int to_child[2], to_parent[2];
        REQUIRE(pipe(to_child) == 0 && pipe(to_parent) == 0);
        fflush(NULL);
        pid_t pid = fork();
        REQUIRE(pid >= 0);
        int me = pid == 0 ? 1 : 0;
        int in = me ? to_child[0] : to_parent[0], out = me ? to_parent[1] : to_child[1];
        /* each keeps only its own ends: one that stops early ends the other's read */
        close(me ? to_child[1] : to_parent[1]);
        close(me ? to_parent[0] : to_child[0]);
        run r = {.m = {.policy = POLICIES[pi]}, .rng = 0x9999 + (uint64_t)pi, .what = "two processes"};
        uint64_t turns = 0x4242 + (uint64_t)pi; /* the same sequence of turns in both */
        int owner = 0, left = 0;
        backlite_storage *s = NULL;
        bool ok = true;
        /* fewer: each handover closes and opens a handle (a checkpoint, a sync) */
        for (r.step = 0; r.step < STEPS / 2 && ok; r.step++) {
            if (left == 0) {
                int next = (int)h_rand_below(&turns, 2);
                left = 1 + (int)h_rand_below(&turns, 8);
                if (next != owner) {
                    /* the turn passes: the owner closes and hands over */
                    char c = 1;
                    if (owner == me) {
                        backlite_storage_free(s);
                        s = NULL;
                        ok = write(out, &c, 1) == 1;
                    } else {
                        ok = read(in, &c, 1) == 1 && c == 1;
                    }
                    owner = next;
                }
            }
            left--;
            /* both advance the model (and its random numbers); only the owner calls */
            if (owner == me) {
                if (s == NULL) s = open_policy(path, POLICIES[pi]);
                if (s == NULL) break;
                random_step(&r, s);
                if (!compare_all(&r, s)) ok = false;
            } else {
                random_step(&r, NULL); /* the model alone, with the same draws */
            }
        }
        if (owner == me) backlite_storage_free(s);
        if (me == 1) _exit(atomic_load(&h_st()->failures) == 0 && ok ? 0 : 1);
        close(out);
        CHECK_EQ(CHILD_EXIT_CODE(pid), 0);
        close(in);
        remove_cache_file(path);
    }
}

int main(void) {
    h_begin();
    RUN(exact_order_on_one_handle_in_memory);
    RUN(exact_order_on_one_handle_of_a_file);
    RUN(exact_order_across_closes_and_reopens);
    RUN(exact_order_on_two_handles_of_one_process);
    RUN(exact_order_across_two_processes_taking_turns);
    return h_end();
}
