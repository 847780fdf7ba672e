/*
 * Probes of issue 12's hit writer, through the C API, from what the README promises
 * ("Hits are buffered", "Threads and processes", "fork()"): hits of other processes
 * and of a replaced entry keep the documented order; more distinct keys read than the
 * buffer holds keep the exact order; n gets count n hits for LFU; a process killed
 * with unwritten hits loses no entry; handles freed while the hit writer writes,
 * from another thread, or in a child forked meanwhile, keep working; no get waits
 * for a writer (the slowest get is printed, never asserted, but for a get held for
 * seconds where a lock would hold it for ever).
 */
#include "backlite.h"
#include "harness.h"

#include <pthread.h>
#include <sys/resource.h>

#define LRU BACKLITE_EVICTION_POLICY_LEAST_RECENTLY_USED
#define LFU BACKLITE_EVICTION_POLICY_LEAST_FREQUENTLY_USED
#define MRU BACKLITE_EVICTION_POLICY_MOST_RECENTLY_USED

static bool slow_build(void) { return h_under_valgrind() || UNDER_ASAN; }

/* a forked child that exits with the parent's handle open (never freed there) is a
 * leak to valgrind, whose error exit code then fails the case: the asan_ run covers it */
#define NOT_UNDER_VALGRIND_CHILD()                                                    \
    do {                                                                              \
        if (h_under_valgrind()) SKIP("a forked child: its inherited handle is a leak to valgrind"); \
    } while (0)

/* tens of thousands of keys many times over: too slow under valgrind (the plain and
 * asan_ runs cover them) */
#define NOT_UNDER_VALGRIND()                                                          \
    do {                                                                              \
        if (h_under_valgrind()) SKIP("tens of thousands of keys: not under valgrind"); \
    } while (0)

static void hit(backlite_storage *s, const char *key) {
    backlite_buf b = {NULL, 0};
    CHECK_OK(backlite_storage_get(s, K(key), &b, NULL, &err));
    backlite_buf_free(&b);
}

static void nkey(char out[24], int i) { snprintf(out, 24, "key-%07d", i); }

/* stores keys 0..n-1 with 1-byte values, in batches */
static void fill(backlite_storage *s, int n) {
    enum { BATCH = 5000 };
    static char keys[BATCH][24];
    static backlite_entry batch[BATCH];
    static const uint8_t one = 'v';
    for (int at = 0; at < n; at += BATCH) {
        int m = n - at < BATCH ? n - at : BATCH;
        for (int i = 0; i < m; i++) {
            nkey(keys[i], at + i);
            batch[i] = (backlite_entry){(const uint8_t *)keys[i], strlen(keys[i]), &one, 1, NEVER};
        }
        CHECK_OK(backlite_storage_set_many(s, batch, (size_t)m, &err));
    }
}

static bool live(backlite_storage *s, int i) {
    char k[24];
    nkey(k, i);
    return backlite_storage_contains(s, K(k), NULL) == BACKLITE_RESULT_OK;
}

static int *shuffled(int n, uint64_t seed) {
    int *p = malloc(sizeof(int) * (size_t)n);
    for (int i = 0; i < n; i++) p[i] = i;
    for (int i = n - 1; i > 0; i--) {
        int j = (int)h_rand_below(&seed, (uint64_t)i + 1);
        int t = p[i];
        p[i] = p[j];
        p[j] = t;
    }
    return p;
}

/* Reads keys order[from], ..., order[to - 1] once each. */
static void hit_in_order(backlite_storage *s, const int *order, int from, int to) {
    for (int i = from; i < to; i++) {
        char k[24];
        nkey(k, order[i]);
        hit(s, k);
    }
}

/* --------------------------------------------------------- other processes */

/* runs `f(path)` in a forked child that opens its own handle; its exit code */
static int in_child(void (*f)(const char *), const char *path) {
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        alarm(60);
        atomic_store(&h_st()->failures, 0);
        f(path);
        _exit(atomic_load(&h_st()->failures) == 0 ? 0 : 1);
    }
    return CHILD_EXIT_CODE(pid);
}

static void child_sets_a_again_and_reads_b_c(const char *path) {
    backlite_storage *s = OPEN_WITH(path, 30, LFU);
    if (s == NULL) return;
    SET_N(s, "a", 10);
    hit(s, "b");
    hit(s, "c");
    backlite_storage_free(s);
}

/* A process's hits on an entry that another process then sets again are hits on the
 * old entry: the new one starts with none ("Writing a key again counts as a new set
 * (its creation order and hit count start over)"). */
static void hits_on_an_entry_set_again_by_another_process_do_not_count_for_the_new_one(void) {
    NOT_UNDER_VALGRIND_CHILD();
    const char *path = tmp_path("reset.db");
    backlite_storage *s = OPEN_WITH(path, 30, LFU);
    REQUIRE(s != NULL);
    SET_N(s, "a", 10);
    SET_N(s, "b", 10);
    SET_N(s, "c", 10);
    for (int i = 0; i < 5; i++) hit(s, "a"); /* buffered in this process */
    CHECK_EQ(in_child(child_sets_a_again_and_reads_b_c, path), 0);
    backlite_storage_free(s); /* writes this process's five hits on the old "a" */
    s = OPEN_WITH(path, 30, LFU);
    REQUIRE(s != NULL);
    SET_N(s, "d", 10); /* hits: a 0 (set again), b 1, c 1: a goes */
    CHECK(!HAS(s, "a"));
    CHECK(HAS(s, "b"));
    CHECK(HAS(s, "c"));
    backlite_storage_free(s);
    remove_cache_file(path);
}

static void child_reads_a(const char *path) {
    backlite_storage *s = OPEN_WITH(path, 40, LRU);
    if (s == NULL) return;
    hit(s, "a");
    backlite_storage_free(s); /* written: a is the newest access */
}

/* A process's hit written after a later hit of another process on the same entry
 * must not move that entry back before the later access. */
static void an_older_hit_written_later_does_not_move_an_entry_back(void) {
    NOT_UNDER_VALGRIND_CHILD();
    const char *path = tmp_path("back.db");
    backlite_storage *s = OPEN_WITH(path, 40, LRU);
    REQUIRE(s != NULL);
    SET_N(s, "a", 10);
    SET_N(s, "b", 10);
    SET_N(s, "c", 10);
    hit(s, "a");
    SET_N(s, "d", 10); /* this write orders the hit on a before d */
    CHECK_EQ(in_child(child_reads_a, path), 0); /* a read again, after d, and written */
    backlite_storage_free(s);                    /* writes this process's older hit */
    s = OPEN_WITH(path, 40, LRU);
    REQUIRE(s != NULL);
    /* order of last accesses: b, c, d, a (the child's read) */
    SET_N(s, "e", 10);
    CHECK(!HAS(s, "b"));
    SET_N(s, "f", 10);
    CHECK(!HAS(s, "c"));
    SET_N(s, "g", 10);
    CHECK(!HAS(s, "d"));
    CHECK(HAS(s, "a"));
    backlite_storage_free(s);
    remove_cache_file(path);
}


/* ------------------------------------------------------ beyond the buffer */

#define MANY 20000 /* more distinct keys than the buffer's 16,384 */

static void more_keys_read_than_the_buffer_holds(const char *path, backlite_eviction_policy p) {
    backlite_storage *s = OPEN_WITH(path, MANY, p);
    REQUIRE(s != NULL);
    fill(s, MANY);
    int *order = shuffled(MANY, 99 + (uint64_t)p);
    hit_in_order(s, order, 0, MANY);
    if (p == LFU)
        hit_in_order(s, order, 200, MANY); /* all but the first 200 read twice */
    SET(s, "new-1", "x"); /* one eviction */
    SET(s, "new-2", "x"); /* and one more */
    switch (p) {
    case LRU:
        CHECK(!live(s, order[0]));
        CHECK(!live(s, order[1]));
        CHECK(live(s, order[2]));
        CHECK(live(s, order[MANY - 1]));
        break;
    case LFU: /* order[0], then new-1 (no hit) */
        CHECK(!live(s, order[0]));
        CHECK(!HAS(s, "new-1"));
        CHECK(live(s, order[1]));
        CHECK(live(s, order[MANY - 1]));
        break;
    case MRU:
        CHECK(!live(s, order[MANY - 1]));
        CHECK(!HAS(s, "new-1"));
        CHECK(live(s, order[MANY - 2]));
        CHECK(live(s, order[0]));
        break;
    }
    if (getenv("PROBE_DEBUG"))
        for (int i = 0; i < MANY; i++)
            if (!live(s, order[i])) printf("# gone: order[%d]\n", i);
    backlite_stats st = STATS(s);
    CHECK_EQ(st.count, MANY);
    CHECK_EQ(st.evictions, 2);
    free(order);
    backlite_storage_free(s);
    if (strcmp(path, ":memory:") != 0) remove_cache_file(path);
}

static void lru_order_is_exact_past_the_buffer(void) { more_keys_read_than_the_buffer_holds(tmp_path("lru.db"), LRU); }
static void lfu_order_is_exact_past_the_buffer(void) {
    NOT_UNDER_VALGRIND();
    more_keys_read_than_the_buffer_holds(tmp_path("lfu.db"), LFU);
}
static void mru_order_is_exact_past_the_buffer(void) {
    NOT_UNDER_VALGRIND();
    more_keys_read_than_the_buffer_holds(tmp_path("mru.db"), MRU);
}
static void in_memory_order_is_exact_past_the_buffer(void) {
    NOT_UNDER_VALGRIND();
    more_keys_read_than_the_buffer_holds(":memory:", LRU);
}

/* freed at once after the reads that start the hit writer: its hits are written */
static void a_free_while_the_hit_writer_writes_loses_no_hit(void) {
    const char *path = tmp_path("free.db");
    backlite_storage *s = OPEN_WITH(path, MANY, LRU);
    REQUIRE(s != NULL);
    fill(s, MANY);
    int *order = shuffled(MANY, 5);
    hit_in_order(s, order, 0, MANY);
    backlite_storage_free(s);
    s = OPEN_WITH(path, MANY, LRU);
    REQUIRE(s != NULL);
    SET(s, "new-1", "x");
    CHECK(!live(s, order[0]));
    CHECK(live(s, order[1]));
    CHECK(live(s, order[MANY - 1]));
    free(order);
    backlite_storage_free(s);
    remove_cache_file(path);
}

/* ----------------------------------------------------- LFU counts exactly */

typedef struct noisy {
    backlite_storage *s;
    atomic_int done;
} noisy;

static void *keep_setting(void *arg) {
    noisy *n = arg;
    int i = 0;
    while (!atomic_load(&n->done)) {
        char k[24];
        snprintf(k, sizeof k, "w-%d", i++ % 500);
        backlite_storage_set(n->s, K(k), (const uint8_t *)"1234567890", 10, NEVER, NULL);
    }
    return NULL;
}

/* n gets count n, whatever the hit writer does meanwhile (gives way to sets, writes in
 * batches): keys read 59, 60 and 61 times among many distinct reads while another
 * thread sets, then evicted in that order */
static void lfu_counts_every_get_once_while_the_hit_writer_gives_way(void) {
    NOT_UNDER_VALGRIND();
    const char *path = tmp_path("counts.db");
    enum { FILLERS = 40000, N = 60 };
    backlite_storage *s = OPEN_WITH(path, 1u << 30, LFU);
    REQUIRE(s != NULL);
    fill(s, FILLERS);
    SET(s, "x", "x");
    SET(s, "y", "y");
    SET(s, "z", "z");
    noisy n = {.s = s};
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, keep_setting, &n) == 0);
    uint64_t rng = 17;
    int reads = slow_build() ? 20000 : 60000;
    int gx = 0, gy = 0, gz = 0;
    for (int i = 0; i < reads; i++) {
        char k[24];
        nkey(k, (int)h_rand_below(&rng, FILLERS));
        hit(s, k);
        if (i % (reads / N) == 7) {
            if (gx < N - 1) hit(s, "x"), gx++;
            if (gy < N) hit(s, "y"), gy++;
            if (gz < N + 1) hit(s, "z"), gz++;
        }
    }
    while (gx < N - 1) hit(s, "x"), gx++;
    while (gy < N) hit(s, "y"), gy++;
    while (gz < N + 1) hit(s, "z"), gz++;
    atomic_store(&n.done, 1);
    pthread_join(t, NULL);
    backlite_storage_free(s);
    /* fillers (a few hits each) and the w- keys (none) go first */
    s = OPEN_WITH(path, 3, LFU);
    REQUIRE(s != NULL);
    SET(s, "empty", ""); /* evicts down to 3 bytes: x, y, z stay */
    CHECK(HAS(s, "x") && HAS(s, "y") && HAS(s, "z"));
    SET(s, "u", "u"); /* "empty" (no hit), then x (59 hits) */
    CHECK(!HAS(s, "x"));
    CHECK(HAS(s, "y") && HAS(s, "z"));
    SET(s, "t", "tt"); /* u (no hit), then y (60) */
    CHECK(!HAS(s, "y"));
    CHECK(HAS(s, "z"));
    backlite_storage_free(s);
    remove_cache_file(path);
}

/* ------------------------------------------------------------------- memory */

static long rss_kib(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    if (f == NULL) return -1;
    long size = 0, resident = 0;
    int got = fscanf(f, "%ld %ld", &size, &resident);
    fclose(f);
    return got == 2 ? resident * (sysconf(_SC_PAGESIZE) / 1024) : -1;
}

static void memory_stays_bounded_through_300000_gets_of_100000_keys(void) {
    if (slow_build()) SKIP("300,000 gets: not under a sanitizer or valgrind");
    const char *path = tmp_path("rss.db");
    enum { KEYS = 100000, GETS = 300000 }; /* more keys than the 65,536 that may wait */
    backlite_storage *s = OPEN_WITH(path, 1u << 30, LRU);
    REQUIRE(s != NULL);
    fill(s, KEYS);
    long before = rss_kib();
    uint64_t rng = 3;
    for (int i = 0; i < GETS; i++) {
        char k[24];
        nkey(k, (int)h_rand_below(&rng, KEYS));
        backlite_buf b = {NULL, 0};
        if (backlite_storage_get(s, K(k), &b, NULL, NULL) != BACKLITE_RESULT_OK) {
            CHECK(!"a stored key missed");
            break;
        }
        backlite_buf_free(&b);
    }
    long after = rss_kib();
    printf("# rss before the gets %ld KiB, after %ld KiB (+%ld)\n", before, after, after - before);
    CHECK(after - before < 256 * 1024); /* README: tables of a few MiB, caches of 32 MiB */
    backlite_stats st = STATS(s);
    CHECK_EQ(st.hits, GETS);
    backlite_storage_free(s);
    remove_cache_file(path);
}

/* ---------------------------------------------------------------- SIGKILL */

static void killed_with_unwritten_hits_loses_no_entry(void) {
    NOT_UNDER_VALGRIND();
    const char *path = tmp_path("killed.db");
    enum { KEYS = 20000 };
    for (int round = 0; round < 3; round++) {
        remove_cache_file(path);
        backlite_storage *s = OPEN_WITH(path, 1u << 30, LFU);
        REQUIRE(s != NULL);
        fill(s, KEYS);
        backlite_storage_free(s);
        int ready[2];
        REQUIRE(pipe(ready) == 0);
        fflush(NULL);
        pid_t pid = fork();
        REQUIRE(pid >= 0);
        if (pid == 0) {
            close(ready[0]);
            backlite_storage *c = OPEN_WITH(path, 1u << 30, LFU);
            uint64_t rng = 11 + (uint64_t)round;
            for (long i = 0;; i++) {
                char k[24];
                nkey(k, (int)h_rand_below(&rng, KEYS));
                backlite_buf b = {NULL, 0};
                backlite_storage_get(c, K(k), &b, NULL, NULL);
                backlite_buf_free(&b);
                if (i == 17000) { /* past the buffer: a hit writer runs */
                    char x = 1;
                    if (write(ready[1], &x, 1) != 1) _exit(3);
                }
                if (i % 1000 == 0) { /* sets too, so a write may be cut short */
                    char nk[24];
                    nkey(nk, (int)h_rand_below(&rng, KEYS));
                    backlite_storage_set(c, K(nk), (const uint8_t *)"v", 1, NEVER, NULL);
                }
            }
        }
        close(ready[1]);
        char x;
        CHECK(read(ready[0], &x, 1) == 1);
        close(ready[0]);
        h_sleep_ms(5 + round * 40);
        CHECK(KILL_CHILD(pid));
        s = OPEN_WITH(path, 1u << 30, LFU);
        REQUIRE(s != NULL);
        backlite_stats st = STATS(s);
        CHECK_EQ(st.count, KEYS);
        CHECK_EQ(st.total_size, KEYS);
        backlite_check_report rep;
        memset(&rep, 0, sizeof rep);
        CHECK_OK(backlite_storage_check(s, 0, &rep, &err));
        CHECK_EQ(rep.healthy, 1);
        CHECK_EQ(rep.entries, KEYS);
        int missing = 0;
        for (int i = 0; i < KEYS; i++) missing += !live(s, i);
        CHECK_EQ(missing, 0);
        backlite_storage_free(s);
    }
    remove_cache_file(path);
}

/* ------------------------------------------------------------ no get stalls */

typedef struct reader {
    backlite_storage *s;
    atomic_int stop;
    int keys;
    long gets;
    int64_t slowest_us;
    int errors;
} reader;

static int64_t now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void *read_on(void *arg) {
    reader *r = arg;
    uint64_t rng = 1234;
    while (!atomic_load(&r->stop)) {
        char k[24];
        nkey(k, (int)h_rand_below(&rng, (uint64_t)r->keys));
        backlite_buf b = {NULL, 0};
        int64_t t0 = now_us();
        backlite_result rc = backlite_storage_get(r->s, K(k), &b, NULL, NULL);
        int64_t dt = now_us() - t0;
        if (rc != BACKLITE_RESULT_OK && rc != BACKLITE_RESULT_NOT_FOUND) r->errors++;
        if (dt > r->slowest_us) r->slowest_us = dt;
        r->gets++;
        backlite_buf_free(&b);
    }
    return NULL;
}

static void gets_go_on_while_the_handle_writes_vacuums_checks_and_clears(void) {
    NOT_UNDER_VALGRIND();
    const char *path = tmp_path("stall.db");
    enum { KEYS = 30000 };
    backlite_storage *s = OPEN_WITH(path, KEYS / 2, LRU);
    REQUIRE(s != NULL);
    fill(s, KEYS / 2);
    reader r = {.s = s, .keys = KEYS};
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, read_on, &r) == 0);
    int64_t t0 = now_us();
    fill(s, KEYS); /* evicts half */
    int64_t t_fill = now_us();
    backlite_check_report rep;
    CHECK_OK(backlite_storage_check(s, 0, &rep, &err));
    int64_t t_check = now_us();
    /* BUSY is documented when readers (here, the reading thread's connections) keep
     * the log from being truncated: the rebuild is done either way */
    backlite_result vacuumed = backlite_storage_vacuum(s, NULL);
    CHECK(vacuumed == BACKLITE_RESULT_OK || vacuumed == BACKLITE_RESULT_BUSY);
    int64_t t_vacuum = now_us();
    CHECK_OK(backlite_storage_clear(s, &err));
    fill(s, KEYS / 2);
    int64_t t_end = now_us();
    atomic_store(&r.stop, 1);
    pthread_join(t, NULL);
    CHECK_EQ(r.errors, 0);
    printf("# %ld gets, the slowest %.2f ms, while set_many (%.0f ms), check (%.0f ms), vacuum (%.0f ms), "
           "clear and set_many (%.0f ms)\n",
           r.gets, r.slowest_us / 1000.0, (t_fill - t0) / 1000.0, (t_check - t_fill) / 1000.0,
           (t_vacuum - t_check) / 1000.0, (t_end - t_vacuum) / 1000.0);
    backlite_storage_free(s);
    remove_cache_file(path);
}

/* Another process holds the write lock (python3's sqlite3, BEGIN IMMEDIATE) for three
 * seconds: gets, hits past the buffer included, never wait for it; a set waits its busy
 * timeout and is BUSY; a free returns. */
static void gets_never_wait_for_another_process_holding_the_write_lock(void) {
    if (!h_have_python_sqlite()) SKIP("no python3 with sqlite3");
    const char *path = tmp_path("locked.db");
    enum { KEYS = 20000 };
    backlite_storage *s = OPEN_SET(path, .busy_timeout_ms = 300);
    REQUIRE(s != NULL);
    fill(s, KEYS);
    int ready[2];
    REQUIRE(pipe(ready) == 0);
    fflush(NULL);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        dup2(ready[1], 1);
        close(ready[0]);
        execlp("python3", "python3", "-c",
               "import sqlite3, sys, time\n"
               "c = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
               "c.execute('BEGIN IMMEDIATE')\n"
               "print('locked', flush=True)\n"
               "time.sleep(3)\n"
               "c.execute('ROLLBACK')\n",
               path, (char *)NULL);
        _exit(127);
    }
    close(ready[1]);
    char line[16] = {0};
    size_t got = 0;
    while (got < 7) {
        ssize_t n = read(ready[0], line + got, 7 - got);
        if (n <= 0) break;
        got += (size_t)n;
    }
    if (strcmp(line, "locked\n") != 0) {
        CHECK(!"python3 did not say it holds the lock");
        CHILD_EXIT_CODE(pid);
        close(ready[0]);
        return;
    }
    int64_t t0 = now_us(), slowest = 0;
    /* past the buffer: a hit writer starts, and waits (under valgrind, 20,000 gets
     * outlast the lock: fewer, no hit writer) */
    int reads = h_under_valgrind() ? 1000 : KEYS;
    for (int i = 0; i < reads; i++) {
        char k[24];
        nkey(k, i);
        int64_t a = now_us();
        hit(s, k);
        int64_t dt = now_us() - a;
        if (dt > slowest) slowest = dt;
    }
    int64_t reads_done = now_us();
    CHECK_RC(backlite_storage_set(s, K("during"), (const uint8_t *)"x", 1, NEVER, &err), BACKLITE_RESULT_BUSY);
    int64_t set_done = now_us();
    printf("# %d gets under another process's write lock in %.0f ms (slowest %.2f ms); a set was BUSY "
           "after %.0f ms\n",
           reads, (reads_done - t0) / 1000.0, slowest / 1000.0, (set_done - reads_done) / 1000.0);
    /* (the set's BUSY shows the lock was still held: the reads never waited for it) */
    int64_t free_at = now_us();
    backlite_storage_free(s); /* writes the hits if it can: at most its busy timeout */
    printf("# the busy timeout is 300 ms: the free took %.0f ms\n", (now_us() - free_at) / 1000.0);
    CHECK_EQ(CHILD_EXIT_CODE(pid), 0);
    close(ready[0]);
    remove_cache_file(path);
}

/* ------------------------------------------------------- threads and fork */

static void *free_it(void *arg) {
    backlite_storage_free(arg);
    return NULL;
}

static void a_handle_freed_on_another_thread_writes_its_hits(void) {
    NOT_UNDER_VALGRIND();
    const char *path = tmp_path("thread.db");
    backlite_storage *s = OPEN_WITH(path, MANY, LRU);
    REQUIRE(s != NULL);
    fill(s, MANY);
    int *order = shuffled(MANY, 8);
    hit_in_order(s, order, 0, MANY);
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, free_it, s) == 0);
    pthread_join(t, NULL);
    s = OPEN_WITH(path, MANY, LRU);
    REQUIRE(s != NULL);
    SET(s, "new-1", "x");
    CHECK(!live(s, order[0]));
    CHECK(live(s, order[1]));
    free(order);
    backlite_storage_free(s);
    remove_cache_file(path);
}

/* a fork right after the reads that start the hit writer: the child's calls work
 * (its own hit writer included) and it never writes the parent's hits */
static void a_child_forked_while_the_hit_writer_runs_works(void) {
    NOT_UNDER_VALGRIND();
    const char *path = tmp_path("fork.db");
    backlite_storage *s = OPEN_WITH(path, 1u << 30, LRU);
    REQUIRE(s != NULL);
    fill(s, MANY);
    for (int round = 0; round < (slow_build() ? 2 : 4); round++) {
        for (int i = 0; i < MANY; i++) {
            char k[24];
            nkey(k, (i * 7 + round) % MANY);
            hit(s, k);
        }
        fflush(NULL);
        pid_t pid = fork();
        REQUIRE(pid >= 0);
        if (pid == 0) {
            alarm(30); /* a lock copied held would hang it */
            atomic_store(&h_st()->failures, 0);
            for (int i = 0; i < MANY; i++) {
                char k[24];
                nkey(k, (i * 3 + round) % MANY);
                hit(s, k);
            }
            SET(s, "child", "x");
            backlite_storage *own = OPEN_WITH(path, 1u << 30, LRU);
            if (own != NULL) {
                hit(own, "child");
                backlite_storage_free(own);
            }
            _exit(atomic_load(&h_st()->failures) == 0 ? 0 : 1);
        }
        CHECK_EQ(CHILD_EXIT_CODE(pid), 0);
    }
    CHECK_EQ(STATS(s).count, MANY + 1);
    backlite_storage_free(s);
    remove_cache_file(path);
}

/* PROBE_ONLY=name runs that case alone */
#define RUN_SOME(fn)                                                                  \
    do {                                                                              \
        const char *only_ = getenv("PROBE_ONLY");                                     \
        if (only_ == NULL || strcmp(only_, #fn) == 0) RUN(fn);                        \
    } while (0)

int main(void) {
    h_begin();
    RUN_SOME(hits_on_an_entry_set_again_by_another_process_do_not_count_for_the_new_one);
    RUN_SOME(an_older_hit_written_later_does_not_move_an_entry_back);
    RUN_SOME(lru_order_is_exact_past_the_buffer);
    RUN_SOME(lfu_order_is_exact_past_the_buffer);
    RUN_SOME(mru_order_is_exact_past_the_buffer);
    RUN_SOME(in_memory_order_is_exact_past_the_buffer);
    RUN_SOME(a_free_while_the_hit_writer_writes_loses_no_hit);
    RUN_SOME(lfu_counts_every_get_once_while_the_hit_writer_gives_way);
    RUN_SOME(memory_stays_bounded_through_300000_gets_of_100000_keys);
    RUN_SOME(killed_with_unwritten_hits_loses_no_entry);
    RUN_SOME(gets_go_on_while_the_handle_writes_vacuums_checks_and_clears);
    RUN_SOME(gets_never_wait_for_another_process_holding_the_write_lock);
    RUN_SOME(a_handle_freed_on_another_thread_writes_its_hits);
    RUN_SOME(a_child_forked_while_the_hit_writer_runs_works);
    return h_end();
}
