/*
 * Contention: 8 processes x 8 threads on one file, mixed get / set / set_many /
 * delete / contains / cached_call / stats on a few keys, with a size limit so small
 * that nearly every write evicts. Each process opens the file at the same moment (the
 * first creates it) and uses one handle from its 8 threads, with its own policy
 * (process i uses policy i % 5) and the default busy timeout.
 *
 * Must hold: zero errors (no BUSY, nothing but OK / NOT_FOUND where a miss is
 * possible); every value read (get or cached_call) is one that was written for that
 * key, byte for byte (a value names its key, writer and sequence number, and its bytes
 * follow from those); stats never show total_size above max_size; at the end
 * backlite_storage_check is healthy and stats count / total_size equal a recount
 * through keys + get.
 *
 * Environment: BACKLITE_CONTENTION_OPS, operations per thread (default 2500).
 */
#include <pthread.h>
#include <sys/mman.h>

#include "robust.h"

#define NPROC 8
#define NTHREADS 8
#define NKEYS 40
#define MAX_SIZE (12 * 1024)
#define HEADER 16
#define MAX_VALUE 1500

/* what every process reports through shared memory */
typedef struct {
    uint64_t ops, gets, hits, sets, batches, deletes, contains, calls, computes, stats;
    uint64_t errors, wrong_values, over_limit;
    uint64_t evictions;
    int opened, done;
    char first_error[256];
} proc_report;

static proc_report *reports; /* NPROC of them, MAP_SHARED */

/* a value: magic, key, process, thread, sequence number, length, then bytes that follow
   from all of them */
static size_t make_value(uint8_t *v, int key, int proc, int thread, uint32_t seq, size_t len) {
    if (len < HEADER) len = HEADER;
    v[0] = 0xB1;
    v[1] = (uint8_t)key;
    v[2] = (uint8_t)proc;
    v[3] = (uint8_t)thread;
    memcpy(v + 4, &seq, 4);
    uint32_t l32 = (uint32_t)len;
    memcpy(v + 8, &l32, 4);
    uint32_t crc = r_crc32(v, 12);
    memcpy(v + 12, &crc, 4);
    r_fill(v + HEADER, len - HEADER, r_fnv(v, HEADER));
    return len;
}

/* whether v is exactly a value some writer made for key */
static bool value_ok(const uint8_t *v, size_t len, int key) {
    static _Thread_local uint8_t want[MAX_VALUE];
    if (v == NULL || len < HEADER || len > MAX_VALUE || v[0] != 0xB1 || v[1] != (uint8_t)key) return false;
    if (v[2] >= NPROC || v[3] >= NTHREADS) return false;
    uint32_t seq, l32;
    memcpy(&seq, v + 4, 4);
    memcpy(&l32, v + 8, 4);
    if (l32 != len) return false;
    make_value(want, key, v[2], v[3], seq, len);
    return memcmp(want, v, len) == 0;
}

typedef struct {
    backlite_storage *s;
    proc_report *r;
    pthread_mutex_t *lock; /* guards r */
    int proc, thread;
    long ops;
} worker;

typedef struct {
    int key, proc, thread;
    uint32_t seq;
    size_t len;
    int computed;
} compute_arg;

static int32_t compute(void *ud, backlite_sink *sink) {
    compute_arg *a = ud;
    uint8_t v[MAX_VALUE];
    size_t len = make_value(v, a->key, a->proc, a->thread, a->seq, a->len);
    a->computed++;
    return backlite_sink_write(sink, v, len) == BACKLITE_RESULT_OK ? 0 : 1;
}

static void note_error(worker *w, const char *what, backlite_result rc, backlite_error *err) {
    pthread_mutex_lock(w->lock);
    if (w->r->errors++ == 0)
        snprintf(w->r->first_error, sizeof w->r->first_error, "%s: %s: %s", what, h_rc_name(rc),
                 err ? backlite_error_message(err) : "(no error object)");
    pthread_mutex_unlock(w->lock);
}

static void note_wrong(worker *w, const char *what, int key, size_t len) {
    pthread_mutex_lock(w->lock);
    if (w->r->wrong_values++ == 0)
        snprintf(w->r->first_error, sizeof w->r->first_error, "%s(key %d) returned %zu wrong bytes", what, key, len);
    pthread_mutex_unlock(w->lock);
}

static void *run_worker(void *p) {
    worker *w = p;
    uint64_t rng = 1000003u * (uint64_t)(w->proc + 1) + (uint64_t)w->thread;
    uint32_t seq = 0;
    uint64_t c[10] = {0}; /* gets hits sets batches deletes contains calls computes stats over */
    uint8_t v[4][MAX_VALUE];
    for (long i = 0; i < w->ops; i++) {
        int key = (int)h_rand_below(&rng, NKEYS);
        char name[16];
        snprintf(name, sizeof name, "key-%02d", key);
        size_t len = HEADER + (size_t)h_rand_below(&rng, MAX_VALUE - HEADER + 1);
        unsigned op = (unsigned)h_rand_below(&rng, 100);
        backlite_error *err = NULL;
        backlite_result rc;
        if (op < 35) {
            backlite_buf b = {NULL, 0};
            rc = backlite_storage_get(w->s, K(name), &b, NULL, &err);
            c[0]++;
            if (rc == BACKLITE_RESULT_OK) {
                c[1]++;
                if (!value_ok(b.data, b.len, key)) note_wrong(w, "get", key, b.len);
                backlite_buf_free(&b);
            } else if (rc != BACKLITE_RESULT_NOT_FOUND) {
                note_error(w, "get", rc, err);
            }
        } else if (op < 60) {
            size_t n = make_value(v[0], key, w->proc, w->thread, seq++, len);
            rc = backlite_storage_set(w->s, K(name), v[0], n, NEVER, &err);
            c[2]++;
            if (rc != BACKLITE_RESULT_OK) note_error(w, "set", rc, err);
        } else if (op < 65) {
            backlite_entry e[4];
            char names[4][16];
            int nb = 2 + (int)h_rand_below(&rng, 3);
            for (int j = 0; j < nb; j++) {
                int k = (key + j * 7) % NKEYS;
                snprintf(names[j], sizeof names[j], "key-%02d", k);
                size_t n = make_value(v[j], k, w->proc, w->thread, seq++,
                                      HEADER + (size_t)h_rand_below(&rng, MAX_VALUE / 2));
                e[j] = (backlite_entry){(const uint8_t *)names[j], strlen(names[j]), v[j], n, NEVER};
            }
            rc = backlite_storage_set_many(w->s, e, (size_t)nb, &err);
            c[3]++;
            if (rc != BACKLITE_RESULT_OK) note_error(w, "set_many", rc, err);
        } else if (op < 75) {
            rc = backlite_storage_delete(w->s, K(name), &err);
            c[4]++;
            if (rc != BACKLITE_RESULT_OK && rc != BACKLITE_RESULT_NOT_FOUND) note_error(w, "delete", rc, err);
        } else if (op < 80) {
            rc = backlite_storage_contains(w->s, K(name), &err);
            c[5]++;
            if (rc != BACKLITE_RESULT_OK && rc != BACKLITE_RESULT_NOT_FOUND) note_error(w, "contains", rc, err);
        } else if (op < 97) {
            compute_arg a = {key, w->proc, w->thread, seq++, len, 0};
            backlite_buf b = {NULL, 0};
            rc = backlite_cached_call(w->s, K(name), compute, &a, NULL, NEVER, &b, &err);
            c[6]++;
            c[7] += (uint64_t)a.computed;
            if (rc == BACKLITE_RESULT_OK) {
                if (!value_ok(b.data, b.len, key)) note_wrong(w, "cached_call", key, b.len);
                backlite_buf_free(&b);
            } else {
                note_error(w, "cached_call", rc, err);
            }
        } else {
            backlite_stats st;
            rc = backlite_storage_stats(w->s, &st, &err);
            c[8]++;
            if (rc != BACKLITE_RESULT_OK)
                note_error(w, "stats", rc, err);
            else if (st.total_size > MAX_SIZE)
                c[9]++;
        }
        backlite_error_free(err);
    }
    pthread_mutex_lock(w->lock);
    proc_report *r = w->r;
    r->ops += (uint64_t)w->ops;
    r->gets += c[0];
    r->hits += c[1];
    r->sets += c[2];
    r->batches += c[3];
    r->deletes += c[4];
    r->contains += c[5];
    r->calls += c[6];
    r->computes += c[7];
    r->stats += c[8];
    r->over_limit += c[9];
    pthread_mutex_unlock(w->lock);
    return NULL;
}

static void child(const char *path, int proc, long ops, int gate) {
    proc_report *r = &reports[proc];
    backlite_options *o = backlite_options_new();
    backlite_options_set_max_size(o, MAX_SIZE);
    backlite_options_set_eviction_policy(o, proc % 5);
    backlite_storage *s = NULL;
    backlite_error *err = NULL;
    char buf;
    /* every process opens at the same moment: the first creates the file */
    while (read(gate, &buf, 1) < 0 && errno == EINTR) {
    }
    backlite_result rc = backlite_storage_open(path, o, &s, &err);
    backlite_options_free(o);
    if (rc != BACKLITE_RESULT_OK) {
        r->errors++;
        snprintf(r->first_error, sizeof r->first_error, "open: %s: %s", h_rc_name(rc), backlite_error_message(err));
        backlite_error_free(err);
        _exit(1);
    }
    r->opened = 1;
    pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    worker w[NTHREADS];
    pthread_t th[NTHREADS];
    for (int t = 0; t < NTHREADS; t++) {
        w[t] = (worker){s, r, &lock, proc, t, ops};
        pthread_create(&th[t], NULL, run_worker, &w[t]);
    }
    for (int t = 0; t < NTHREADS; t++) pthread_join(th[t], NULL);
    backlite_stats st;
    if (backlite_storage_stats(s, &st, NULL) == BACKLITE_RESULT_OK) r->evictions = st.evictions;
    backlite_storage_free(s);
    r->done = 1;
    _exit(0);
}

typedef struct {
    backlite_storage *s;
    uint64_t count, size, bad;
} recount;

static int32_t recount_key(void *ud, const uint8_t *key, size_t len) {
    recount *rc = ud;
    int k = -1;
    if (len == 6 && memcmp(key, "key-", 4) == 0) k = (key[4] - '0') * 10 + (key[5] - '0');
    backlite_buf b = {NULL, 0};
    if (backlite_storage_get(rc->s, key, len, &b, NULL, NULL) != BACKLITE_RESULT_OK || k < 0 ||
        !value_ok(b.data, b.len, k)) {
        rc->bad++;
    } else {
        rc->count++;
        rc->size += b.len;
    }
    backlite_buf_free(&b);
    return 0;
}

static void eight_processes_of_eight_threads_hold_without_errors(void) {
    long ops = r_env_long("BACKLITE_CONTENTION_OPS", 2500);
    alarm((unsigned)(120 + ops / 4));
    const char *path = tmp_path("contention.db");
    reports = mmap(NULL, NPROC * sizeof *reports, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    REQUIRE(reports != MAP_FAILED);
    memset(reports, 0, NPROC * sizeof *reports);
    int gate[2];
    REQUIRE(pipe(gate) == 0);
    pid_t pids[NPROC];
    for (int p = 0; p < NPROC; p++) {
        pids[p] = fork();
        REQUIRE(pids[p] >= 0);
        if (pids[p] == 0) {
            close(gate[1]);
            child(path, p, ops, gate[0]);
        }
    }
    close(gate[0]);
    int64_t start = h_now_ms();
    close(gate[1]); /* go: every child's read returns */
    for (int p = 0; p < NPROC; p++) {
        int status = 0;
        waitpid(pids[p], &status, 0);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || !reports[p].done)
            h_fail_(__FILE__, __LINE__, "process %d: exit %d%s", p, WIFEXITED(status) ? WEXITSTATUS(status) : -1,
                    WIFSIGNALED(status) ? " (killed by a signal)" : "");
    }
    double secs = r_seconds_since(start);
    proc_report sum = {0};
    for (int p = 0; p < NPROC; p++) {
        proc_report *r = &reports[p];
        if (r->errors || r->wrong_values || r->over_limit)
            h_fail_(__FILE__, __LINE__, "process %d: %" PRIu64 " errors, %" PRIu64 " wrong values, %" PRIu64
                    " stats over max_size; first: %s", p, r->errors, r->wrong_values, r->over_limit, r->first_error);
        sum.ops += r->ops;
        sum.gets += r->gets;
        sum.hits += r->hits;
        sum.sets += r->sets;
        sum.batches += r->batches;
        sum.deletes += r->deletes;
        sum.contains += r->contains;
        sum.calls += r->calls;
        sum.computes += r->computes;
        sum.stats += r->stats;
        sum.errors += r->errors;
        sum.wrong_values += r->wrong_values;
        sum.evictions += r->evictions;
    }
    printf("# %d processes x %d threads: %" PRIu64 " operations in %.1f s (%.0f/s): %" PRIu64 " gets (%" PRIu64
           " hits), %" PRIu64 " sets, %" PRIu64 " set_many, %" PRIu64 " deletes, %" PRIu64 " contains, %" PRIu64
           " cached calls (%" PRIu64 " computed), %" PRIu64 " stats; %" PRIu64 " evictions; %" PRIu64
           " errors, %" PRIu64 " wrong values\n",
           NPROC, NTHREADS, sum.ops, secs, (double)sum.ops / (secs > 0 ? secs : 1), sum.gets, sum.hits, sum.sets,
           sum.batches, sum.deletes, sum.contains, sum.calls, sum.computes, sum.stats, sum.evictions, sum.errors,
           sum.wrong_values);
    CHECK_EQ(sum.ops, (uint64_t)NPROC * NTHREADS * (uint64_t)ops);
    CHECK(sum.evictions > 0);

    /* the file afterwards: sound, counters exact, every value one that was written */
    backlite_storage *s = OPEN_WITH(path, MAX_SIZE, BACKLITE_EVICTION_POLICY_LEAST_RECENTLY_USED);
    REQUIRE(s != NULL);
    backlite_check_report report;
    memset(&report, 0, sizeof report);
    CHECK_OK(backlite_storage_check(s, 0, &report, &err));
    CHECK_EQ(report.integrity_ok, 1);
    CHECK_EQ(report.healthy, 1);
    backlite_stats st = STATS(s);
    recount rc = {s, 0, 0, 0};
    CHECK_OK(backlite_storage_keys(s, recount_key, &rc, &err));
    CHECK_EQ(rc.bad, 0);
    CHECK_EQ(st.count, rc.count);
    CHECK_EQ(st.total_size, rc.size);
    CHECK(st.total_size <= MAX_SIZE);
    printf("# at the end: %" PRIu64 " entries, %" PRIu64 " bytes (max %d), check healthy=%d\n", st.count,
           st.total_size, MAX_SIZE, report.healthy);
    backlite_storage_free(s);
    munmap(reports, NPROC * sizeof *reports);
}

int main(void) {
    h_begin();
    RUN(eight_processes_of_eight_threads_hold_without_errors);
    return h_end();
}
