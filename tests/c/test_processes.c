/*
 * Several processes on one file. Each child opens its own handle AFTER fork (a handle
 * is never shared across fork), waits at a start gate (a pipe the parent closes), does
 * its work, reports through a pipe and leaves with _exit. No sleeps.
 */
#include <signal.h>
#include <sys/file.h>
#include <sys/wait.h>

#include "backlite.h"
#include "harness.h"
#include "lock_holder.h"

#define NPROC 4
#define PER_CHILD 60
#define VLEN 10
#define MAX_SIZE (20 * VLEN)

typedef struct {
    uint64_t sets, hits, misses, errors, failed_checks;
    uint64_t evictions; /* from the child's own stats */
    uint64_t computes;
    char value[32];     /* the shared value the child got (barrier test) */
} report;

static void key_of(char *buf, size_t n, int child, int i) { snprintf(buf, n, "p%d-%02d", child, i); }

/* the 10-byte value of a key: the key padded with dots */
static void value_of(uint8_t v[VLEN], const char *key) {
    memset(v, '.', VLEN);
    memcpy(v, key, strlen(key) < VLEN ? strlen(key) : VLEN);
}

static backlite_storage *open_child(const char *path, uint64_t max_size) {
    return OPEN_SET(path, .max_size = max_size, .busy_timeout_ms = 30000);
}

/*
 * A process that must start while this one holds an open handle is this program run
 * again (fork + exec), never a bare fork: a forked child would inherit the open handle.
 */
static char self_exe[PATH_MAX];

/* runs `self --helper mode path`; returns its exit status (0 = it did its job) */
static int run_helper(const char *mode, const char *path) {
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        execl(self_exe, self_exe, "--helper", mode, path, (char *)NULL);
        _exit(127);
    }
    return CHILD_EXIT_CODE(pid);
}

/* the helper side: "read-a" reads key a; "write-c" sets c = 3 with a 20 s busy timeout */
static int helper_main(const char *mode, const char *path) {
    backlite_storage *s = strcmp(mode, "write-c") == 0 ? OPEN_SET(path, .busy_timeout_ms = 20000) : OPEN(path, NULL);
    if (s == NULL) return 1;
    if (strcmp(mode, "read-a") == 0) GET_EQ(s, "a", "1");
    else if (strcmp(mode, "write-c") == 0) SET(s, "c", "3");
    else h_fail_(__FILE__, __LINE__, "unknown helper mode %s", mode);
    backlite_storage_free(s);
    return atomic_load(&h_st()->failures) == 0 ? 0 : 1;
}

typedef void (*child_fn)(const char *path, int id, report *r);

/* forks NPROC children running fn; returns the number of children that failed */
static int run_children(const char *path, child_fn fn, report reports[NPROC]) {
    int gate[2];
    if (pipe(gate) != 0) return NPROC;
    int out[NPROC][2];
    pid_t pids[NPROC];
    for (int i = 0; i < NPROC; i++) {
        if (pipe(out[i]) != 0) return NPROC;
        pids[i] = fork();
        if (pids[i] < 0) return NPROC;
        if (pids[i] == 0) {
            close(gate[1]);
            close(out[i][0]);
            char c;
            while (read(gate[0], &c, 1) > 0) {
            } /* EOF: the parent opened the gate */
            int failures_before = atomic_load(&h_st()->failures);
            report r;
            memset(&r, 0, sizeof r);
            fn(path, i, &r);
            r.failed_checks = (uint64_t)(atomic_load(&h_st()->failures) - failures_before);
            ssize_t n = write(out[i][1], &r, sizeof r);
            close(out[i][1]);
            _exit(n == (ssize_t)sizeof r && r.failed_checks == 0 && r.errors == 0 ? 0 : 1);
        }
        close(out[i][1]);
    }
    close(gate[0]);
    close(gate[1]); /* go */
    int failed = 0;
    for (int i = 0; i < NPROC; i++) {
        memset(&reports[i], 0, sizeof reports[i]);
        ssize_t n = read(out[i][0], &reports[i], sizeof reports[i]);
        close(out[i][0]);
        int status = 0;
        waitpid(pids[i], &status, 0);
        if (n != (ssize_t)sizeof reports[i] || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            h_fail_(__FILE__, __LINE__,
                    "child %d: exit %d%s, %" PRIu64 " failed checks, %" PRIu64 " errors (its messages, or valgrind's, are above)", i,
                    WIFEXITED(status) ? WEXITSTATUS(status) : -1,
                    WIFSIGNALED(status) ? " (killed by a signal)" : "", reports[i].failed_checks,
                    reports[i].errors);
            failed++;
        }
    }
    return failed;
}

static void fill_child(const char *path, int id, report *r) {
    backlite_storage *s = open_child(path, MAX_SIZE);
    if (s == NULL) {
        r->errors++;
        return;
    }
    uint64_t rng = 77 + (uint64_t)id;
    uint8_t v[VLEN], want[VLEN];
    for (int i = 0; i < PER_CHILD; i++) {
        char key[32];
        key_of(key, sizeof key, id, i);
        value_of(v, key);
        backlite_error *err = NULL;
        backlite_result rc = backlite_storage_set(s, K(key), v, VLEN, NEVER, &err);
        if (!h_check_rc_(__FILE__, __LINE__, "child set", rc, BACKLITE_RESULT_OK, err)) r->errors++;
        backlite_error_free(err);
        r->sets++;
        /* look at two keys of any child, written or not yet */
        for (int j = 0; j < 2; j++) {
            char other[32];
            key_of(other, sizeof other, (int)h_rand_below(&rng, NPROC), (int)h_rand_below(&rng, PER_CHILD));
            backlite_buf b = {NULL, 0};
            err = NULL;
            rc = backlite_storage_get(s, K(other), &b, NULL, &err);
            if (rc == BACKLITE_RESULT_OK) {
                r->hits++;
                value_of(want, other);
                h_check_bytes_(__FILE__, __LINE__, other, b.data, b.len, want, VLEN);
            } else if (rc == BACKLITE_RESULT_NOT_FOUND) {
                r->misses++;
            } else {
                h_check_rc_(__FILE__, __LINE__, "child get", rc, BACKLITE_RESULT_OK, err);
                r->errors++;
            }
            backlite_error_free(err);
            backlite_buf_free(&b);
        }
    }
    backlite_stats st = STATS(s);
    CHECK_EQ(st.hits, r->hits); /* this handle's own counters, exact */
    CHECK_EQ(st.misses, r->misses);
    CHECK(st.total_size <= MAX_SIZE);
    r->evictions = st.evictions;
    backlite_storage_free(s);
}

typedef struct {
    uint64_t count;
    int bad;
} key_tally;

static int32_t tally_key(void *ud, const uint8_t *key, size_t len) {
    key_tally *t = ud;
    t->count++;
    if (len < 5 || len > 6 || key[0] != 'p') t->bad++;
    return 0;
}

static void four_processes_fill_one_file_with_exact_counts(void) {
    const char *path = tmp_path("procs.db"); /* created by the children, concurrently */
    report r[NPROC];
    CHECK_EQ(run_children(path, fill_child, r), 0);
    uint64_t evictions = 0, sets = 0;
    for (int i = 0; i < NPROC; i++) {
        evictions += r[i].evictions;
        sets += r[i].sets;
    }
    CHECK_EQ(sets, NPROC * PER_CHILD);
    /* every value is 10 bytes: once full, each new key evicts exactly one entry */
    CHECK_EQ(evictions, NPROC * PER_CHILD - MAX_SIZE / VLEN);

    backlite_storage *s = open_child(path, MAX_SIZE);
    REQUIRE(s != NULL);
    backlite_stats st = STATS(s);
    CHECK_EQ(st.count, MAX_SIZE / VLEN);
    CHECK_EQ(st.total_size, MAX_SIZE);
    key_tally t = {0, 0};
    CHECK_OK(backlite_storage_keys(s, tally_key, &t, &err));
    CHECK_EQ(t.count, MAX_SIZE / VLEN);
    CHECK_EQ(t.bad, 0);
    uint64_t found = 0;
    uint8_t want[VLEN];
    for (int c = 0; c < NPROC; c++)
        for (int i = 0; i < PER_CHILD; i++) {
            char key[32];
            key_of(key, sizeof key, c, i);
            backlite_buf b = {NULL, 0};
            backlite_error *err = NULL;
            backlite_result rc = backlite_storage_get(s, K(key), &b, NULL, &err);
            if (rc == BACKLITE_RESULT_OK) {
                found++;
                value_of(want, key);
                h_check_bytes_(__FILE__, __LINE__, key, b.data, b.len, want, VLEN);
            } else {
                h_check_rc_(__FILE__, __LINE__, key, rc, BACKLITE_RESULT_NOT_FOUND, err);
            }
            backlite_error_free(err);
            backlite_buf_free(&b);
        }
    CHECK_EQ(found, MAX_SIZE / VLEN);
    backlite_storage_free(s);
}

/* ------------------------------------------------- a file lock as the barrier */

typedef struct {
    int fd;
    report *r;
    int id;
} flock_ctx;

static int32_t flock_lock(void *ud) {
    flock_ctx *c = ud;
    while (flock(c->fd, LOCK_EX) != 0)
        if (errno != EINTR) return 1;
    return 0;
}

static void flock_unlock(void *ud) {
    flock_ctx *c = ud;
    flock(c->fd, LOCK_UN);
}

static int32_t compute_in_child(void *ud, backlite_sink *sink) {
    flock_ctx *c = ud;
    c->r->computes++;
    char v[32];
    snprintf(v, sizeof v, "computed by child %d", c->id);
    return backlite_sink_write(sink, (const uint8_t *)v, strlen(v)) == BACKLITE_RESULT_OK ? 0 : 1;
}

#define SHARED_KEYS 10

static void barrier_child(const char *path, int id, report *r) {
    char lock_path[PATH_MAX + 8];
    snprintf(lock_path, sizeof lock_path, "%s.lock", path);
    flock_ctx c = {open(lock_path, O_RDWR | O_CREAT, 0600), r, id};
    if (c.fd < 0) {
        r->errors++;
        return;
    }
    backlite_storage *s = open_child(path, 1 << 20);
    if (s == NULL) {
        r->errors++;
        close(c.fd);
        return;
    }
    backlite_barrier bar = {&c, flock_lock, flock_unlock};
    for (int k = 0; k < SHARED_KEYS; k++) {
        char key[32];
        snprintf(key, sizeof key, "shared-%d", k);
        backlite_buf b = {NULL, 0};
        backlite_error *err = NULL;
        backlite_result rc = backlite_cached_call(s, K(key), compute_in_child, &c, &bar, NEVER, &b, &err);
        if (!h_check_rc_(__FILE__, __LINE__, "child cached_call", rc, BACKLITE_RESULT_OK, err)) r->errors++;
        if (k == 0 && rc == BACKLITE_RESULT_OK && b.len < sizeof r->value) memcpy(r->value, b.data, b.len);
        backlite_error_free(err);
        backlite_buf_free(&b);
    }
    backlite_storage_free(s);
    close(c.fd);
}

static void a_file_lock_barrier_makes_4_processes_compute_once(void) {
    const char *path = tmp_path("barrier.db");
    report r[NPROC];
    CHECK_EQ(run_children(path, barrier_child, r), 0);
    uint64_t computes = 0;
    for (int i = 0; i < NPROC; i++) {
        computes += r[i].computes;
        CHECK_STR_EQ(r[i].value, r[0].value); /* everyone got the one stored value */
    }
    CHECK_EQ(computes, SHARED_KEYS); /* each key computed once, by one process */
    backlite_storage *s = open_child(path, 1 << 20);
    REQUIRE(s != NULL);
    CHECK_EQ(STATS(s).count, SHARED_KEYS);
    GET_EQ(s, "shared-0", r[0].value);
    backlite_storage_free(s);
}

/* ------------------------------------------- the eviction order across processes */

/* waits for one byte on fd; false on EOF or error */
static bool wait_byte(int fd) {
    char c;
    ssize_t n;
    while ((n = read(fd, &c, 1)) < 0 && errno == EINTR) {
    }
    return n == 1;
}

static void send_byte(int fd) {
    char c = 'x';
    while (write(fd, &c, 1) < 0 && errno == EINTR) {
    }
}

/*
 * Hits are buffered per process (a hit costs no write transaction) and written with
 * that process's next write, when its buffer fills, or when its last handle closes
 * (README: "Hits are buffered"). Once written, other processes' evictions see them.
 */
static void lru_sees_a_hit_of_another_process_once_written(void) {
    const char *path = tmp_path("lru.db");
    backlite_storage *s = open_child(path, 30);
    REQUIRE(s != NULL);
    SET_N(s, "a", 10);
    SET_N(s, "b", 10);
    SET_N(s, "c", 10);
    backlite_storage_free(s); /* no handle is open across the fork */

    int to_parent[2];
    REQUIRE(pipe(to_parent) == 0);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        close(to_parent[0]);
        int before = atomic_load(&h_st()->failures);
        backlite_storage *cs = open_child(path, 30);
        if (cs != NULL) GET_EQ(cs, "a", "aaaaaaaaaa"); /* a is now the newest access */
        backlite_storage_free(cs);                     /* closing writes the hit */
        send_byte(to_parent[1]);
        _exit(cs != NULL && atomic_load(&h_st()->failures) == before ? 0 : 1);
    }
    close(to_parent[1]);
    bool hit_done = wait_byte(to_parent[0]);
    CHECK(hit_done);
    s = open_child(path, 30);
    if (s != NULL && hit_done) {
        SET_N(s, "d", 10); /* b is the oldest access now, not a */
        CHECK(HAS(s, "a"));
        CHECK(!HAS(s, "b"));
        CHECK(HAS(s, "c"));
        CHECK(HAS(s, "d"));
    }
    close(to_parent[0]);
    CHECK_EQ(CHILD_EXIT_CODE(pid), 0);
    backlite_storage_free(s);
}

/* ---------------------------------------------------------- the busy timeout */

static void a_held_lock_is_waited_out_up_to_the_busy_timeout_then_busy(void) {
    if (!h_have_python_sqlite()) SKIP("python3 with sqlite3 is not available to hold a lock");
    const char *path = tmp_path("busy.db");
    backlite_storage *s = OPEN_SET(path, .busy_timeout_ms = 200);
    REQUIRE(s != NULL);
    SET(s, "a", "1");
    lock_holder h;
    bool locked = holder_start(&h, path);
    REQUIRE(locked);
    int64_t t0 = h_now_ms();
    CHECK_RC(backlite_storage_set(s, K("b"), K("2"), BACKLITE_EXPIRATION_NEVER, &err), BACKLITE_RESULT_BUSY);
    int64_t waited = h_now_ms() - t0;
    if (waited < 150 || waited > 4000)
        h_fail_(__FILE__, __LINE__, "BUSY after %" PRId64 " ms with a busy timeout of 200 ms", waited);
    holder_release(&h);
    /* a process with a long busy timeout waits for the lock and succeeds */
    CHECK_EQ(run_helper("write-c", path), 0);
    holder_finish(&h);
    GET_MISSING(s, "b"); /* the busy write left nothing */
    GET_EQ(s, "c", "3");
    GET_EQ(s, "a", "1");
    backlite_storage_free(s);
}

static int32_t compute_counted(void *ud, backlite_sink *sink) {
    ++*(int *)ud;
    return backlite_sink_write(sink, (const uint8_t *)"v", 1) == BACKLITE_RESULT_OK ? 0 : 1;
}

/* BUSY has one meaning, and a held file lock gives it, never LEASE_HELD: the lease
   calls on a missing key must write their lease, which waits for the lock like any
   write; reads go on. */
static void a_held_lock_is_busy_for_every_write_and_never_lease_held(void) {
    if (!h_have_python_sqlite()) SKIP("python3 with sqlite3 is not available to hold a lock");
    const char *path = tmp_path("busy-all.db");
    backlite_storage *s = OPEN_SET(path, .busy_timeout_ms = 100);
    REQUIRE(s != NULL);
    SET(s, "a", "1");
    lock_holder h;
    bool locked = holder_start(&h, path);
    REQUIRE(locked);
    int n = 0;
    backlite_buf b = {NULL, 0};
    backlite_lease *lease = NULL;
    CHECK_RC(backlite_cached_call_exclusive(s, K("x"), compute_counted, &n, BACKLITE_EXPIRATION_NEVER, 0, &b, &err),
             BACKLITE_RESULT_BUSY);
    CHECK_RC(backlite_lease_try_acquire(s, K("x"), 1000, &b, &lease, &err), BACKLITE_RESULT_BUSY);
    CHECK(lease == NULL);
    CHECK_RC(backlite_lease_step(s, K("x"), 0, &b, &lease, &err), BACKLITE_RESULT_BUSY);
    CHECK(lease == NULL);
    CHECK_EQ(n, 0); /* nothing computed that could not be stored under a lease */
    backlite_entry e[1] = {{(const uint8_t *)"m", 1, (const uint8_t *)"v", 1, BACKLITE_EXPIRATION_NEVER}};
    CHECK_RC(backlite_storage_set_many(s, e, 1, &err), BACKLITE_RESULT_BUSY);
    CHECK_RC(backlite_storage_delete(s, K("a"), &err), BACKLITE_RESULT_BUSY);
    CHECK_RC(backlite_storage_clear(s, &err), BACKLITE_RESULT_BUSY);
    /* reads are not writes: a hit and a miss answer at once */
    GET_EQ(s, "a", "1");
    GET_MISSING(s, "x");
    CHECK_OK(backlite_cached_call_exclusive(s, K("a"), compute_counted, &n, BACKLITE_EXPIRATION_NEVER, 0, &b, &err));
    CHECK_BUF_STR(b, "1");
    backlite_buf_free(&b);
    holder_release(&h);
    holder_finish(&h);
    /* the lock gone, the key was never leased: computed at once */
    CHECK_OK(backlite_cached_call_exclusive(s, K("x"), compute_counted, &n, BACKLITE_EXPIRATION_NEVER, 0, &b, &err));
    CHECK_EQ(n, 1);
    backlite_buf_free(&b);
    GET_EQ(s, "a", "1");
    backlite_storage_free(s);
}

static void hits_survive_a_write_that_failed_busy(void) {
    if (!h_have_python_sqlite()) SKIP("python3 with sqlite3 is not available to hold a lock");
    const char *path = tmp_path("hits.db");
    backlite_options *o = OPTIONS(30, BACKLITE_EVICTION_POLICY_LEAST_RECENTLY_USED);
    REQUIRE(o != NULL);
    CHECK_RESULT(backlite_options_set_busy_timeout_ms(o, 100), BACKLITE_RESULT_OK);
    backlite_storage *s = OPEN(path, o);
    backlite_options_free(o);
    REQUIRE(s != NULL);
    SET_N(s, "a", 10);
    SET_N(s, "b", 10);
    SET_N(s, "c", 10);
    GET_EQ(s, "a", "aaaaaaaaaa"); /* a is the newest access */
    lock_holder h;
    REQUIRE(holder_start(&h, path));
    CHECK_RC(backlite_storage_set(s, K("x"), K("x"), BACKLITE_EXPIRATION_NEVER, &err), BACKLITE_RESULT_BUSY);
    holder_release(&h);
    holder_finish(&h);
    SET_N(s, "d", 10); /* b is still the oldest access: the failed write lost nothing */
    CHECK(HAS(s, "a"));
    CHECK(!HAS(s, "b"));
    CHECK(HAS(s, "c"));
    CHECK(HAS(s, "d"));
    backlite_storage_free(s);
}

/* ------------------------------------------------ locks of the other handles */

/* another process opens the file, reads it and closes it */
static void another_process_reads(const char *path) {
    if (h_have_python_sqlite()) { /* another program's SQLite, as a user inspecting the file */
        char cmd[PATH_MAX + 300];
        snprintf(cmd, sizeof cmd,
                 "python3 -c 'import sqlite3, sys\n"
                 "c = sqlite3.connect(sys.argv[1])\n"
                 "c.execute(\"select count(*) from sqlite_master\").fetchall()\n"
                 "c.close()' '%s'",
                 path);
        CHECK(system(cmd) == 0);
        return;
    }
    CHECK_EQ(run_helper("read-a", path), 0);
}

/*
 * POSIX record locks belong to the process and vanish when ANY descriptor of the file
 * is closed. Opening a second handle must not open and close the file behind SQLite's
 * back, or the first handle's locks are gone: another process that closes the file
 * then believes it is the last user, checkpoints, and deletes the -wal and -shm files
 * under the open handles, which then fail (or worse, two writers run at once).
 */
static void opening_a_second_handle_keeps_the_locks_of_the_first(void) {
    const char *path = tmp_path("locks.db");
    backlite_storage *first = OPEN(path, NULL);
    REQUIRE(first != NULL);
    SET(first, "a", "1");
    GET_EQ(first, "a", "1");
    backlite_storage *second = OPEN(path, NULL); /* and nothing else, yet */
    REQUIRE(second != NULL);
    another_process_reads(path);
    SET(first, "b", "2");
    GET_EQ(second, "b", "2");
    GET_EQ(first, "a", "1");
    GET_EQ(second, "a", "1");
    SET(second, "c", "3");
    GET_EQ(first, "c", "3");
    backlite_storage_free(second);
    backlite_storage_free(first);
}

int main(int argc, char **argv) {
    if (argc == 4 && strcmp(argv[1], "--helper") == 0) return helper_main(argv[2], argv[3]);
    ssize_t n = readlink("/proc/self/exe", self_exe, sizeof self_exe - 1);
    if (n <= 0) {
        fprintf(stderr, "fatal: cannot read /proc/self/exe\n");
        return 2;
    }
    self_exe[n] = 0;
    h_begin();
    RUN(four_processes_fill_one_file_with_exact_counts);
    RUN(a_file_lock_barrier_makes_4_processes_compute_once);
    RUN(lru_sees_a_hit_of_another_process_once_written);
    RUN(opening_a_second_handle_keeps_the_locks_of_the_first);
    RUN(a_held_lock_is_waited_out_up_to_the_busy_timeout_then_busy);
    RUN(a_held_lock_is_busy_for_every_write_and_never_lease_held);
    RUN(hits_survive_a_write_that_failed_busy);
    return h_end();
}
