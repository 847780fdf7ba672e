/*
 * Values kept in files (issue 16), twelfth probe round: readers opened until the
 * process runs out of file descriptors (EMFILE), and every other call made there;
 * large sets, overwrites and deletes with few descriptors left (the files of replaced
 * values go with the next write); a value evicted by another process while it is
 * streamed and pulled; a large memoised value whose computer is killed half-way.
 */
#include "backlite.h"
#include "harness.h"
#include "value_folder.h"

#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>

#define THRESHOLD 4096
#define LARGE 20000

static backlite_storage *open_threshold(const char *path, int64_t threshold) {
    return OPEN_SET(path, .file_threshold = threshold);
}

/* How many file descriptors the process has open. */
static int open_fds(void) {
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL) return -1;
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n - 1; /* the one opendir holds */
}

static const char *result_of(backlite_result rc, backlite_error *e) {
    static char text[512];
    snprintf(text, sizeof text, "%s%s%s", h_rc_name(rc), e ? ": " : "", e ? backlite_error_message(e) : "");
    return text;
}

static int count_chunk(void *user, const uint8_t *chunk, size_t len) {
    (void)chunk;
    (void)len;
    ++*(int *)user;
    return 0;
}

/* ------------------------------------------------------------------------- */

#define KEYS 6

/*
 * Readers of values in files, and of a value of the database, opened until the process
 * has no descriptor left: the open that finds none fails with IO (an error that says
 * so), never NOT_FOUND, and removes nothing; so do get, get_chunks (which hands
 * nothing over), contains, a large set and check there. Once the readers are freed,
 * every value is there, whole, and the folder holds one file per value in a file, no
 * temporary file.
 */
static void readers_past_the_descriptor_limit_fail_with_io_and_lose_nothing(void) {
    /* Valgrind fails an open that would take a descriptor past its own count of the
     * limit with EMFILE after the kernel made the file: no real process sees that. */
    if (h_under_valgrind()) SKIP("valgrind fakes EMFILE after the kernel's open");
    const char *path = tmp_path("c.db");
    backlite_storage *s = open_threshold(path, THRESHOLD);
    REQUIRE(s != NULL);
    uint8_t *v[KEYS];
    for (int k = 0; k < KEYS; k++) {
        v[k] = h_pattern(LARGE + (size_t)k, 40u + (unsigned)k);
        char key[16];
        snprintf(key, sizeof key, "k%d", k);
        SET_BYTES(s, key, v[k], LARGE + (size_t)k, NEVER);
    }
    /* A value of 300 KiB in the database (a reader of it holds a read transaction). */
    backlite_storage *never = open_threshold(path, BACKLITE_FILE_THRESHOLD_NEVER);
    REQUIRE(never != NULL);
    uint8_t *blob = h_pattern(300u << 10, 77);
    SET_BYTES(never, "blob", blob, 300u << 10, NEVER);
    backlite_storage_free(never);
    REQUIRE(value_files(path) == KEYS);

    struct rlimit old;
    REQUIRE(getrlimit(RLIMIT_NOFILE, &old) == 0);
    int used = open_fds();
    REQUIRE(used > 0);
    struct rlimit low = old;
    low.rlim_cur = (rlim_t)used + 64;
    if (setrlimit(RLIMIT_NOFILE, &low) != 0) {
        SKIP("cannot lower RLIMIT_NOFILE");
    }
    enum { MAX_READERS = 4096 };
    backlite_value_reader **readers = calloc(MAX_READERS, sizeof *readers);
    REQUIRE(readers != NULL);
    int opened = 0;
    backlite_result last = BACKLITE_RESULT_OK;
    backlite_error *e = NULL;
    while (opened < MAX_READERS) {
        char key[16];
        if (opened % 4 == 3)
            snprintf(key, sizeof key, "blob");
        else
            snprintf(key, sizeof key, "k%d", opened % KEYS);
        backlite_value_reader *r = NULL;
        e = NULL;
        last = backlite_storage_open_reader(s, K(key), &r, NULL, NULL, &e);
        if (last != BACKLITE_RESULT_OK) break;
        readers[opened++] = r;
    }
    if (last != BACKLITE_RESULT_IO) h_fail_(__FILE__, __LINE__, "reader %d: %s, not IO", opened, result_of(last, e));
    CHECK(e != NULL);
    if (e) printf("# reader %d: %s\n", opened, result_of(last, e));
    backlite_error_free(e);
    CHECK(opened > 0 && opened < MAX_READERS);

    /* Use the last descriptors for other calls: each of them must fail or work, never
     * answer a miss for a value that is there. */
    int spare[64], nspare = 0;
    for (; nspare < 64; nspare++) {
        spare[nspare] = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (spare[nspare] < 0) break;
    }
    for (int k = 0; k < KEYS; k++) {
        char key[16];
        snprintf(key, sizeof key, "k%d", k);
        backlite_buf b = {0};
        e = NULL;
        backlite_result rc = backlite_storage_get(s, K(key), &b, NULL, &e);
        if (rc != BACKLITE_RESULT_IO) h_fail_(__FILE__, __LINE__, "get(%s) at the limit: %s", key, result_of(rc, e));
        backlite_buf_free(&b);
        backlite_error_free(e);
        e = NULL;
        int chunks = 0;
        rc = backlite_storage_get_chunks(s, K(key), count_chunk, &chunks, NULL, &e);
        if (rc != BACKLITE_RESULT_IO || chunks != 0)
            h_fail_(__FILE__, __LINE__, "get_chunks(%s) at the limit: %s after %d chunks", key, result_of(rc, e),
                    chunks);
        backlite_error_free(e);
        e = NULL;
        rc = backlite_storage_contains(s, K(key), &e);
        if (rc == BACKLITE_RESULT_NOT_FOUND) h_fail_(__FILE__, __LINE__, "contains(%s) at the limit: NOT_FOUND", key);
        backlite_error_free(e);
    }
    {
        uint8_t *big = h_pattern(LARGE, 99);
        e = NULL;
        backlite_result rc = backlite_storage_set(s, K("k0"), big, LARGE, NEVER, &e);
        if (rc != BACKLITE_RESULT_IO) h_fail_(__FILE__, __LINE__, "large set at the limit: %s", result_of(rc, e));
        backlite_error_free(e);
        free(big);
        backlite_check_report rep;
        e = NULL;
        rc = backlite_storage_check(s, 1, &rep, &e);
        if (rc == BACKLITE_RESULT_OK && rep.damaged != 0)
            h_fail_(__FILE__, __LINE__, "check with repair at the limit found %" PRIu64 " damaged", (uint64_t)rep.damaged);
        printf("# check with repair at the limit: %s\n", result_of(rc, e));
        backlite_error_free(e);
    }
    while (nspare > 0) close(spare[--nspare]);

    for (int i = 0; i < opened; i++) backlite_value_reader_free(readers[i]);
    free(readers);
    REQUIRE(setrlimit(RLIMIT_NOFILE, &old) == 0);

    for (int k = 0; k < KEYS; k++) {
        char key[16];
        snprintf(key, sizeof key, "k%d", k);
        GET_BYTES_EQ(s, key, v[k], LARGE + (size_t)k);
        free(v[k]);
    }
    GET_BYTES_EQ(s, "blob", blob, 300u << 10);
    free(blob);
    CHECK_EQ(value_files(path), KEYS);
    CHECK_EQ(temp_files(path), 0);
    CHECK_EQ(STATS(s).count, KEYS + 1);
    backlite_storage_free(s);
}

/* Takes every free descriptor but `leave`; the number taken (close them with
 * give_back). */
static int take_descriptors(int *held, int cap, int leave) {
    int n = 0;
    while (n < cap) {
        held[n] = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (held[n] < 0) break;
        n++;
    }
    for (int i = 0; i < leave && n > 0; i++) close(held[--n]);
    return n;
}

static void give_back(int *held, int n) {
    while (n > 0) close(held[--n]);
}

/*
 * Large sets, overwrites and deletes of a key with 0, 1, 2, ... descriptors free: each
 * either works (the new value is there, whole) or fails with IO and leaves the older
 * value whole; never a temporary file left, and the counters stay exact. The file of
 * a value replaced or deleted when no descriptor was left to open the folder with is
 * removed by the next write: no value file stays that no row names.
 */
static void large_writes_with_few_descriptors_left_fail_whole(void) {
    /* Valgrind fails an open that would take a descriptor past its own count of the
     * limit with EMFILE after the kernel made the file: no real process sees that. */
    if (h_under_valgrind()) SKIP("valgrind fakes EMFILE after the kernel's open");
    const char *path = tmp_path("c.db");
    backlite_storage *s = open_threshold(path, THRESHOLD);
    REQUIRE(s != NULL);
    uint8_t *older = h_pattern(LARGE, 1);
    SET_BYTES(s, "k", older, LARGE, NEVER);
    size_t older_len = LARGE;
    unsigned older_seed = 1;
    struct rlimit old;
    REQUIRE(getrlimit(RLIMIT_NOFILE, &old) == 0);
    struct rlimit low = old;
    low.rlim_cur = (rlim_t)open_fds() + 48;
    if (setrlimit(RLIMIT_NOFILE, &low) != 0) SKIP("cannot lower RLIMIT_NOFILE");
    static int held[256];
    int failures = 0, successes = 0;
    for (int leave = 0; leave <= 12; leave++) {
        for (int what = 0; what < 3; what++) {
            unsigned seed = 100u + (unsigned)(leave * 3 + what);
            size_t len = what == 2 ? 100 : LARGE + (size_t)leave; /* 2: back to a small value */
            uint8_t *v = h_pattern(len, seed);
            int n = take_descriptors(held, 256, leave);
            backlite_error *e = NULL;
            backlite_result rc = backlite_storage_set(s, K("k"), v, len, NEVER, &e);
            give_back(held, n);
            /* Any write, with descriptors free again, removes the files a write could
             * not for want of one. */
            SET(s, "tick", "t");
            if (rc == BACKLITE_RESULT_OK) {
                successes++;
                free(older);
                older = v;
                older_len = len;
                older_seed = seed;
            } else {
                failures++;
                if (rc != BACKLITE_RESULT_IO)
                    h_fail_(__FILE__, __LINE__, "set of %zu with %d descriptors free: %s", len, leave,
                            result_of(rc, e));
                free(v);
            }
            backlite_error_free(e);
            backlite_buf b = {0};
            e = NULL;
            rc = backlite_storage_get(s, K("k"), &b, NULL, &e);
            if (rc != BACKLITE_RESULT_OK || b.len != older_len || memcmp(b.data, older, older_len) != 0)
                h_fail_(__FILE__, __LINE__, "after a set with %d free: %s, %zu bytes (want %zu, seed %u)", leave,
                        result_of(rc, e), b.len, older_len, older_seed);
            backlite_buf_free(&b);
            backlite_error_free(e);
            if (temp_files(path) != 0)
                h_fail_(__FILE__, __LINE__, "%d temporary files after a set with %d free", temp_files(path), leave);
            int want = older_len >= THRESHOLD;
            if (value_files(path) != want)
                h_fail_(__FILE__, __LINE__, "%d value files after a set with %d free, want %d", value_files(path),
                        leave, want);
            backlite_stats st = STATS(s);
            if (st.count != 2 || st.total_size != older_len + 1)
                h_fail_(__FILE__, __LINE__, "count %" PRIu64 " size %" PRIu64 " after a set with %d free", st.count,
                        st.total_size, leave);
        }
    }
    printf("# %d sets failed, %d worked\n", failures, successes);
    CHECK(successes > 0);
    /* A delete with no descriptor free. */
    int n = take_descriptors(held, 256, 0);
    backlite_error *e = NULL;
    backlite_result rc = backlite_storage_delete(s, K("k"), &e);
    give_back(held, n);
    printf("# delete with none free: %s\n", result_of(rc, e));
    backlite_error_free(e);
    REQUIRE(setrlimit(RLIMIT_NOFILE, &old) == 0);
    SET(s, "tick", "t");
    if (rc == BACKLITE_RESULT_OK) {
        GET_MISSING(s, "k");
        CHECK_EQ(value_files(path), 0);
    } else {
        CHECK_EQ(rc, BACKLITE_RESULT_IO);
        GET_BYTES_EQ(s, "k", older, older_len);
    }
    free(older);
    CHECK_OK(backlite_storage_delete(s, K("tick"), NULL));
    CHECK_REPAIRED(s, path);
    backlite_storage_free(s);
}

/* ------------------------------------------------------------------------- */

#define BIG (700u << 10) /* three chunks of get_chunks */

typedef struct {
    int child; /* a socket to the evicting child: 'g' to it, 'd' back when done */
    size_t at;
    unsigned seed;
    bool wrong, asked;
} stream_state;

static int stream_visit(void *user, const uint8_t *chunk, size_t len) {
    stream_state *st = user;
    for (size_t i = 0; i < len; i++) {
        /* h_pattern's byte */
        size_t j = st->at + i;
        if (chunk[i] != (uint8_t)((j * 131u + st->seed) ^ (j >> 9))) {
            st->wrong = true;
            break;
        }
    }
    st->at += len;
    if (!st->asked) {
        st->asked = true;
        char c = 'g';
        if (write(st->child, &c, 1) != 1 || read(st->child, &c, 1) != 1 || c != 'd') return 1;
    }
    return 0;
}

/* The child: opens the cache with the same limit, fills it past the limit (evicting
 * the streamed value), checks with repair and vacuums, then says done. */
static void evict_in_child(const char *path, int parent, uint64_t max_size) {
    int before = h_st()->failures;
    char c;
    if (read(parent, &c, 1) != 1) _exit(3);
    backlite_storage *s =
        OPEN_SET(path, .max_size = max_size, .file_threshold = THRESHOLD, .busy_timeout_ms = 300);
    if (s == NULL) _exit(4);
    for (int i = 0; i < 4; i++) {
        char key[16];
        snprintf(key, sizeof key, "e%d", i);
        uint8_t *v = h_pattern(BIG, 200u + (unsigned)i);
        SET_BYTES(s, key, v, BIG, NEVER);
        free(v);
    }
    backlite_check_report rep;
    backlite_error *e = NULL;
    if (backlite_storage_check(s, 1, &rep, &e) != BACKLITE_RESULT_OK || rep.damaged != 0) _exit(5);
    e = NULL;
    backlite_result rc = backlite_storage_vacuum(s, &e);
    /* BUSY: rebuilt, but the streaming reader kept the log from being truncated. */
    if (rc != BACKLITE_RESULT_OK && rc != BACKLITE_RESULT_BUSY) {
        fprintf(stderr, "vacuum: %s\n", result_of(rc, e));
        _exit(6);
    }
    backlite_error_free(e);
    backlite_storage_free(s);
    c = 'd';
    if (write(parent, &c, 1) != 1) _exit(7);
    _exit(h_st()->failures == before ? 0 : 8);
}

/*
 * Another process evicts (by the size limit), checks with repair and vacuums while
 * this one streams the evicted value with get_chunks and holds a pull reader of it:
 * both read the value whole; then the key is a miss, the folder holds exactly the
 * files of the entries left, and the counters are exact.
 */
static void a_value_evicted_by_another_process_while_streamed_reads_back_whole(void) {
    const char *path = tmp_path("c.db");
    uint64_t max_size = 3 * (uint64_t)BIG;
    int pair[2];
    REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) == 0);
    /* Forked first, so that the child holds nothing of this process's (valgrind). */
    fflush(NULL);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        close(pair[0]);
        evict_in_child(path, pair[1], max_size);
    }
    close(pair[1]);
    backlite_storage *s = OPEN_SET(path, .max_size = max_size, .file_threshold = THRESHOLD);
    REQUIRE(s != NULL);
    uint8_t *x = h_pattern(BIG, 7);
    SET_BYTES(s, "x", x, BIG, NEVER);
    backlite_value_reader *r = NULL;
    REQUIRE_OK(backlite_storage_open_reader(s, K("x"), &r, NULL, NULL, NULL));
    stream_state st = {.child = pair[0], .seed = 7};
    backlite_error *e = NULL;
    backlite_result rc = backlite_storage_get_chunks(s, K("x"), stream_visit, &st, NULL, &e);
    if (rc != BACKLITE_RESULT_OK) h_fail_(__FILE__, __LINE__, "get_chunks: %s", result_of(rc, e));
    backlite_error_free(e);
    CHECK(!st.wrong);
    CHECK_EQ(st.at, BIG);
    CHECK_EQ(CHILD_EXIT_CODE(pid), 0);
    close(pair[0]);
    /* The pull reader, opened before the eviction, reads it whole too. */
    uint8_t *got = malloc(BIG + 1);
    REQUIRE(got != NULL);
    size_t at = 0, n = 1;
    while (n > 0 && at <= BIG) {
        e = NULL;
        rc = backlite_value_reader_read(r, got + at, BIG + 1 - at, &n, &e);
        if (rc != BACKLITE_RESULT_OK) {
            h_fail_(__FILE__, __LINE__, "read at %zu: %s", at, result_of(rc, e));
            backlite_error_free(e);
            break;
        }
        at += n;
    }
    CHECK_EQ(at, BIG);
    CHECK(memcmp(got, x, BIG) == 0);
    free(got);
    backlite_value_reader_free(r);
    GET_MISSING(s, "x");
    backlite_stats stats = STATS(s);
    CHECK_EQ(stats.count, 3);
    CHECK_EQ(stats.total_size, 3 * (uint64_t)BIG);
    CHECK_EQ(value_files(path), 3);
    CHECK_REPAIRED(s, path);
    free(x);
    backlite_storage_free(s);
}

/* ------------------------------------------------------------------------- */

#define MEMO (1u << 20)

typedef struct {
    unsigned seed;
    int signal;   /* >= 0: a byte down it once half the value is in the sink */
    bool stop;    /* then wait for SIGKILL */
    int computed;
} memo_state;

static int32_t compute_memo(void *user, backlite_sink *sink) {
    memo_state *m = user;
    m->computed++;
    uint8_t *v = h_pattern(MEMO, m->seed);
    if (v == NULL) return 1;
    int32_t rc = 0;
    for (size_t at = 0; at < MEMO && rc == 0; at += 64u << 10) {
        if (backlite_sink_write(sink, v + at, 64u << 10) != BACKLITE_RESULT_OK) rc = 1;
        if (at == MEMO / 2 && m->signal >= 0) {
            char c = 'h';
            if (write(m->signal, &c, 1) != 1) rc = 1;
            while (m->stop) pause();
        }
    }
    free(v);
    return rc;
}

/*
 * A memoised large value computed in another process that is killed half-way through
 * writing it to its sink: a caller meanwhile finds the lease held and nothing stored;
 * once the holder is dead the next caller computes it once, gets it whole and stores
 * it in one file; keys, stats and check see it like any other entry.
 */
static void a_large_memoised_value_whose_computer_is_killed_midway_is_computed_once_more(void) {
    const char *path = tmp_path("c.db");
    backlite_storage *s = OPEN_SET(path, .file_threshold = THRESHOLD);
    REQUIRE(s != NULL);
    SET(s, "small", "s");
    int half[2];
    REQUIRE(pipe(half) == 0);
    fflush(NULL);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        close(half[0]);
        backlite_storage *c = OPEN_SET(path, .file_threshold = THRESHOLD);
        if (c == NULL) _exit(3);
        memo_state m = {.seed = 11, .signal = half[1], .stop = true};
        backlite_buf b = {0};
        backlite_cached_call_exclusive(c, K("memo"), compute_memo, &m, NEVER, 60000, &b, NULL);
        _exit(4); /* never reached: killed in compute */
    }
    close(half[1]);
    char c;
    REQUIRE(read(half[0], &c, 1) == 1);
    close(half[0]);
    memo_state mine = {.seed = 12, .signal = -1};
    backlite_buf b = {0};
    CHECK_RC(backlite_cached_call_exclusive(s, K("memo"), compute_memo, &mine, NEVER, 0, &b, &err),
             BACKLITE_RESULT_LEASE_HELD);
    CHECK_EQ(mine.computed, 0);
    CHECK_EQ(value_files(path), 0);
    CHECK(KILL_CHILD(pid));

    CHECK_OK(backlite_cached_call_exclusive(s, K("memo"), compute_memo, &mine, NEVER, 60000, &b, &err));
    CHECK_EQ(mine.computed, 1);
    uint8_t *want = h_pattern(MEMO, 12);
    CHECK(b.len == MEMO && memcmp(b.data, want, MEMO) == 0);
    backlite_buf_free(&b);
    GET_BYTES_EQ(s, "memo", want, MEMO);
    /* A second call is a hit: nothing computed. */
    CHECK_OK(backlite_cached_call(s, K("memo"), compute_memo, &mine, NULL, NEVER, &b, &err));
    CHECK_EQ(mine.computed, 1);
    CHECK(b.len == MEMO && memcmp(b.data, want, MEMO) == 0);
    backlite_buf_free(&b);
    free(want);
    backlite_stats st = STATS(s);
    CHECK_EQ(st.count, 2);
    CHECK_EQ(st.total_size, MEMO + 1);
    CHECK_EQ(value_files(path), 1);
    CHECK_OK(backlite_storage_delete(s, K("small"), &err));
    CHECK_REPAIRED(s, path);
    backlite_storage_free(s);
}

/*
 * A clear of many values in files with 0 to 4 descriptors free: OK (every entry gone)
 * or IO (every entry there); once descriptors are free, the next write leaves no file
 * of a removed entry behind.
 */
static void a_clear_of_many_files_with_few_descriptors_left_leaves_no_orphan(void) {
    if (h_under_valgrind()) SKIP("valgrind fakes EMFILE after the kernel's open");
    static int held[256];
    struct rlimit old;
    REQUIRE(getrlimit(RLIMIT_NOFILE, &old) == 0);
    for (int leave = 0; leave <= 4; leave++) {
        char name[32];
        snprintf(name, sizeof name, "c%d.db", leave);
        const char *path = tmp_path(name);
        backlite_storage *s = open_threshold(path, THRESHOLD);
        REQUIRE(s != NULL);
        uint8_t *v = h_pattern(LARGE, 5);
        for (int k = 0; k < 100; k++) {
            char key[16];
            snprintf(key, sizeof key, "k%d", k);
            SET_BYTES(s, key, v, LARGE, NEVER);
        }
        free(v);
        struct rlimit low = old;
        low.rlim_cur = (rlim_t)open_fds() + 48;
        if (setrlimit(RLIMIT_NOFILE, &low) != 0) SKIP("cannot lower RLIMIT_NOFILE");
        int n = take_descriptors(held, 256, leave);
        backlite_error *e = NULL;
        backlite_result rc = backlite_storage_clear(s, &e);
        give_back(held, n);
        REQUIRE(setrlimit(RLIMIT_NOFILE, &old) == 0);
        if (rc != BACKLITE_RESULT_OK && rc != BACKLITE_RESULT_IO)
            h_fail_(__FILE__, __LINE__, "clear with %d free: %s", leave, result_of(rc, e));
        backlite_error_free(e);
        SET(s, "tick", "t");
        uint64_t want = rc == BACKLITE_RESULT_OK ? 1 : 101;
        CHECK_EQ(STATS(s).count, want);
        if (value_files(path) != (int)want - 1)
            h_fail_(__FILE__, __LINE__, "clear with %d free (%s): %d value files for %" PRIu64 " entries", leave,
                    h_rc_name(rc), value_files(path), want - 1);
        CHECK_OK(backlite_storage_delete(s, K("tick"), &err));
        CHECK_REPAIRED(s, path);
        backlite_storage_free(s);
    }
}

int main(void) {
    h_begin();
    RUN(a_clear_of_many_files_with_few_descriptors_left_leaves_no_orphan);
    RUN(a_large_memoised_value_whose_computer_is_killed_midway_is_computed_once_more);
    RUN(a_value_evicted_by_another_process_while_streamed_reads_back_whole);
    RUN(readers_past_the_descriptor_limit_fail_with_io_and_lose_nothing);
    RUN(large_writes_with_few_descriptors_left_fail_whole);
    return h_end();
}
