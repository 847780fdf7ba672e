/*
 * Values kept in files (issue 16), sixth round of probes, kept as tests: all passed as
 * they were. Processes of three thresholds (files, database, between) writing, reading
 * every way, evicting, checking and vacuuming one small set of keys, one of them
 * killed: no entry without its file or with a wrong one, no orphan once checked, the
 * counters exact. A value file replaced by another value file of its length (copied
 * over it, renamed over it) or written over in its middle is a miss by every read, and
 * its entry goes with the counters right. The size limit counts file values exactly on
 * both sides of the threshold, through a reopen and a lower limit. A set that cannot
 * take the write lock leaves no file. Sets on a disk with room for about one value
 * file, at every slack: IO or whole, never a file left. An expired file value goes
 * with its file by every read.
 */
#include "backlite.h"
#include "harness.h"
#include "small_disk.h"
#include "value_folder.h"
#include "signed_values.h"

#include <sched.h>
#include <sys/mount.h>
#include <sys/wait.h>

#define THRESHOLD 4096
#define KEYS 8
#define LIMIT 1500000

static const size_t sizes[] = {16, 3000, THRESHOLD, 5000, 40000, 120000, 300000, 700000};

typedef struct {
    uint8_t *buf;
    size_t len, cap;
} gathered;

static int32_t gather(void *user_data, const uint8_t *chunk, size_t len) {
    gathered *g = user_data;
    if (g->len + len > g->cap) {
        size_t cap = (g->len + len) * 2;
        uint8_t *more = realloc(g->buf, cap);
        if (more == NULL) return 1;
        g->buf = more;
        g->cap = cap;
    }
    memcpy(g->buf + g->len, chunk, len);
    g->len += len;
    return 0;
}

static backlite_storage *open_at(const char *path, int64_t threshold) {
    return OPEN_SET(path, .max_size = LIMIT, .file_threshold = threshold, .busy_timeout_ms = 30000);
}

/* One writer's random steps on keys k0..k7; exits non-zero at the first wrong answer. */
__attribute__((noreturn)) static void writer(const char *path, int64_t threshold, uint64_t seed, int steps) {
    backlite_storage *s = open_at(path, threshold);
    if (s == NULL) h_child_exit(3);
    uint8_t *v = malloc(sizes[sizeof sizes / sizeof sizes[0] - 1]);
    if (v == NULL) h_child_exit(3);
    for (int i = 0; i < steps; i++) {
        uint32_t k = (uint32_t)h_rand_below(&seed, KEYS);
        char key[16];
        snprintf(key, sizeof key, "k%u", (unsigned)k);
        uint64_t op = h_rand_below(&seed, 20);
        backlite_error *e = NULL;
        backlite_result rc;
        if (op < 7) {
            size_t len = sizes[h_rand_below(&seed, sizeof sizes / sizeof sizes[0])];
            fill(v, len, k, seed);
            int64_t exp = h_rand_below(&seed, 8) == 0 ? 1 : NEVER;
            if (backlite_storage_set(s, K(key), v, len, exp, &e) != BACKLITE_RESULT_OK) h_child_exit(10);
        } else if (op < 9) {
            rc = backlite_storage_delete(s, K(key), &e);
            if (rc != BACKLITE_RESULT_OK && rc != BACKLITE_RESULT_NOT_FOUND) h_child_exit(11);
        } else if (op < 12) {
            backlite_buf b = {0};
            rc = backlite_storage_get(s, K(key), &b, NULL, &e);
            if (rc == BACKLITE_RESULT_OK && !whole(b.data, b.len, k)) h_child_exit(12);
            if (rc != BACKLITE_RESULT_OK && rc != BACKLITE_RESULT_NOT_FOUND) h_child_exit(13);
            backlite_buf_free(&b);
        } else if (op < 14) {
            gathered g = {0};
            rc = backlite_storage_get_chunks(s, K(key), gather, &g, NULL, &e);
            if (rc == BACKLITE_RESULT_OK && !whole(g.buf, g.len, k)) h_child_exit(14);
            if (rc != BACKLITE_RESULT_OK && rc != BACKLITE_RESULT_NOT_FOUND) h_child_exit(15);
            free(g.buf);
        } else if (op < 16) {
            backlite_value_reader *r = NULL;
            uint64_t size = 0;
            rc = backlite_storage_open_reader(s, K(key), &r, &size, NULL, &e);
            if (rc == BACKLITE_RESULT_OK) {
                uint8_t *buf = malloc(size + 1);
                size_t got = 0, n = 0;
                do {
                    size_t cap = size + 1 - got < 7000 ? size + 1 - got : 7000;
                    if (backlite_value_reader_read(r, buf + got, cap, &n, &e) != BACKLITE_RESULT_OK) h_child_exit(16);
                    got += n;
                } while (n > 0);
                if (got != size || !whole(buf, got, k)) h_child_exit(17);
                free(buf);
                backlite_value_reader_free(r);
            } else if (rc != BACKLITE_RESULT_NOT_FOUND) {
                h_child_exit(18);
            }
        } else if (op < 18) {
            backlite_entry batch[3];
            char keys[3][16];
            uint8_t *vs[3];
            for (int j = 0; j < 3; j++) {
                uint32_t kk = (uint32_t)h_rand_below(&seed, KEYS);
                snprintf(keys[j], sizeof keys[j], "k%u", (unsigned)kk);
                size_t len = sizes[h_rand_below(&seed, sizeof sizes / sizeof sizes[0])];
                vs[j] = malloc(len);
                fill(vs[j], len, kk, seed + (uint64_t)j);
                batch[j] = (backlite_entry){(const uint8_t *)keys[j], strlen(keys[j]), vs[j], len, NEVER};
            }
            rc = backlite_storage_set_many(s, batch, 3, &e);
            for (int j = 0; j < 3; j++) free(vs[j]);
            if (rc != BACKLITE_RESULT_OK) h_child_exit(19);
        } else if (op < 19) {
            backlite_check_report rep;
            int32_t repair = (int32_t)h_rand_below(&seed, 2);
            if (backlite_storage_check(s, repair, &rep, &e) != BACKLITE_RESULT_OK) h_child_exit(20);
            /* Only a check that reads: one with repair may take the file of a row
               another process has just removed, before that process unlinks it, for
               an orphan (the known window of 6956cee). */
            if (!repair && rep.healthy != 1) h_child_exit(21);
        } else if (h_rand_below(&seed, 5) == 0) {
            rc = backlite_storage_vacuum(s, &e);
            if (rc != BACKLITE_RESULT_OK && rc != BACKLITE_RESULT_BUSY) h_child_exit(22);
        } else if (h_rand_below(&seed, 3) == 0) {
            if (backlite_storage_clear(s, &e) != BACKLITE_RESULT_OK) h_child_exit(23);
        } else {
            backlite_storage_free(s);
            s = open_at(path, threshold);
            if (s == NULL) h_child_exit(24);
        }
        backlite_error_free(e);
    }
    free(v);
    backlite_storage_free(s);
    h_child_exit(0);
}

static void writers_of_three_thresholds_one_killed_leave_whole_values_and_exact_counters(void) {
    const int64_t thresholds[3] = {THRESHOLD, BACKLITE_FILE_THRESHOLD_NEVER, 200000};
    int rounds = h_under_valgrind() ? 1 : 4, steps = h_under_valgrind() ? 40 : 300;
    for (int round = 0; round < rounds; round++) {
        char name[32];
        snprintf(name, sizeof name, "three%d.db", round);
        const char *path = tmp_path(name);
        backlite_storage *s = open_at(path, THRESHOLD);
        REQUIRE(s != NULL);
        backlite_storage_free(s);
        pid_t kids[3];
        for (int i = 0; i < 3; i++) {
            fflush(NULL);
            kids[i] = fork();
            REQUIRE(kids[i] >= 0);
            if (kids[i] == 0) writer(path, thresholds[(i + round) % 3], 77 + 1000003 * (uint64_t)(round * 3 + i), steps);
        }
        /* Killed wherever it is: a set, an eviction, a batch, a clear, a check. */
        h_sleep_ms(100 + 150 * round);
        kill(kids[0], SIGKILL);
        for (int i = 0; i < 3; i++) {
            int status = 0;
            REQUIRE(waitpid(kids[i], &status, 0) == kids[i]);
            if (i == 0) continue;
            CHECK(WIFEXITED(status));
            if (WIFEXITED(status)) CHECK_EQ(WEXITSTATUS(status), 0);
        }
        s = open_at(path, THRESHOLD);
        REQUIRE(s != NULL);
        backlite_check_report rep;
        /* Before any repair: no entry whose file is missing or wrong, counters exact. */
        CHECK_OK(backlite_storage_check(s, 0, &rep, &err));
        CHECK_EQ(rep.integrity_ok, 1);
        CHECK_EQ(rep.damaged, 0);
        CHECK_EQ(rep.recorded_count, rep.actual_count);
        CHECK_EQ(rep.recorded_total_size, rep.actual_total_size);
        CHECK_OK(backlite_storage_check(s, 1, &rep, &err));
        CHECK_OK(backlite_storage_check(s, 0, &rep, &err));
        CHECK_EQ(rep.healthy, 1);
        CHECK_EQ(rep.orphan_values, 0);
        CHECK_EQ(temp_files(path), 0);
        uint64_t sum = 0, live = 0;
        for (uint32_t k = 0; k < KEYS; k++) {
            char key[16];
            snprintf(key, sizeof key, "k%u", (unsigned)k);
            backlite_buf b = {0};
            backlite_error *e = NULL;
            backlite_result rc = backlite_storage_get(s, K(key), &b, NULL, &e);
            CHECK(rc == BACKLITE_RESULT_OK || rc == BACKLITE_RESULT_NOT_FOUND);
            if (rc == BACKLITE_RESULT_OK) {
                CHECK(whole(b.data, b.len, k));
                sum += b.len;
                live++;
            }
            backlite_buf_free(&b);
            backlite_error_free(e);
        }
        backlite_stats st = STATS(s);
        CHECK_EQ(st.count, live);
        CHECK_EQ(st.total_size, sum);
        CHECK(st.total_size <= LIMIT);
        CHECK(value_files(path) <= (int)live);
        backlite_storage_free(s);
    }
}

/* The names of the value files in the cache's folder. */
static int value_names(const char *cache, char names[][64], int room) {
    DIR *d = opendir(folder_of(cache));
    if (d == NULL) return 0;
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        if (is_value_file_name(e->d_name) && n < room) snprintf(names[n++], 64, "%.63s", e->d_name);
    closedir(d);
    return n;
}

static int32_t ignore(void *user_data, const uint8_t *chunk, size_t len) {
    (void)user_data;
    (void)chunk;
    (void)len;
    return 0;
}

/* Reads "a" one way: 0 get, 1 contains, 2 a reader to its end, 3 get_chunks. */
static backlite_result read_a(backlite_storage *s, int how) {
    backlite_error *e = NULL;
    backlite_result rc;
    if (how == 0) {
        backlite_buf b = {0};
        rc = backlite_storage_get(s, K("a"), &b, NULL, &e);
        backlite_buf_free(&b);
    } else if (how == 1) {
        rc = backlite_storage_contains(s, K("a"), &e);
    } else if (how == 2) {
        backlite_value_reader *r = NULL;
        rc = backlite_storage_open_reader(s, K("a"), &r, NULL, NULL, &e);
        if (rc == BACKLITE_RESULT_OK) {
            uint8_t *buf = malloc(1 << 16);
            size_t n = 0;
            do rc = backlite_value_reader_read(r, buf, 1 << 16, &n, &e);
            while (rc == BACKLITE_RESULT_OK && n > 0);
            free(buf);
            backlite_value_reader_free(r);
        }
    } else {
        rc = backlite_storage_get_chunks(s, K("a"), ignore, NULL, NULL, &e);
    }
    CHECK(e == NULL);
    backlite_error_free(e);
    return rc;
}

static void a_file_replaced_by_another_of_its_length_is_a_miss_by_every_read(void) {
    const size_t n = 100000;
    uint8_t *a = h_pattern(n, 1), *b = h_pattern(n, 2);
    for (int how = 0; how < 4; how++) {
        for (int change = 0; change < 3; change++) {
            char name[32];
            snprintf(name, sizeof name, "swap%d%d.db", how, change);
            const char *path = tmp_path(name);
            backlite_storage *s = OPEN_SET(path, .max_size = 1u << 30, .file_threshold = THRESHOLD);
            REQUIRE(s != NULL);
            char names[4][64];
            SET_BYTES(s, "a", a, n, NEVER);
            REQUIRE(value_names(path, names, 4) == 1);
            char of_a[PATH_MAX + 160], of_b[PATH_MAX + 160];
            REQUIRE(snprintf(of_a, sizeof of_a, "%s/%s", folder_of(path), names[0]) < (int)sizeof of_a);
            SET_BYTES(s, "b", b, n, NEVER);
            REQUIRE(value_names(path, names, 4) == 2);
            const char *b_name = strcmp(names[0], strrchr(of_a, '/') + 1) == 0 ? names[1] : names[0];
            REQUIRE(snprintf(of_b, sizeof of_b, "%s/%s", folder_of(path), b_name) < (int)sizeof of_b);
            size_t len = 0;
            uint8_t *bytes = h_read_file(of_b, &len);
            REQUIRE(bytes != NULL && len == n + VALUE_RECORD_LEN);
            if (change == 0) {
                /* b's file, record and all, copied over a's (cp: the same inode). */
                REQUIRE(h_write_file(of_a, bytes, len));
            } else if (change == 1) {
                /* ... written beside it and renamed over it (another inode). */
                char beside[PATH_MAX + 200];
                REQUIRE(snprintf(beside, sizeof beside, "%s.new", of_a) < (int)sizeof beside);
                REQUIRE(h_write_file(beside, bytes, len));
                REQUIRE(rename(beside, of_a) == 0);
            } else {
                /* Other bytes in the middle of a's value, its record intact. */
                int fd = open(of_a, O_WRONLY);
                REQUIRE(fd >= 0);
                REQUIRE(pwrite(fd, b + 5000, 1000, 5000) == 1000);
                close(fd);
            }
            free(bytes);
            backlite_stats before = STATS(s);
            CHECK_EQ(read_a(s, how), BACKLITE_RESULT_NOT_FOUND);
            backlite_stats after = STATS(s);
            CHECK_EQ(after.count, before.count - 1);
            CHECK_EQ(after.total_size, before.total_size - n);
            /* A get and a visitor count a miss; a reader counted its hit when opened
               (as the header says) when the damage shows only at its end. */
            if (how == 0 || how == 3 || (how == 2 && change < 2)) {
                CHECK_EQ(after.misses, before.misses + 1);
                CHECK_EQ(after.hits, before.hits);
            }
            CHECK(!h_exists(of_a));
            CHECK_EQ(value_files(path), 1);
            GET_MISSING(s, "a");
            GET_BYTES_EQ(s, "b", b, n);
            backlite_check_report rep;
            CHECK_OK(backlite_storage_check(s, 0, &rep, &err));
            CHECK_EQ(rep.healthy, 1);
            backlite_storage_free(s);
        }
    }
    free(a);
    free(b);
}

static void the_limit_counts_file_values_exactly_on_both_sides_of_the_threshold(void) {
    const int64_t thresholds[] = {THRESHOLD, 100000, 100001, BACKLITE_FILE_THRESHOLD_NEVER};
    uint8_t *v = h_pattern(300001, 3);
    for (size_t t = 0; t < sizeof thresholds / sizeof thresholds[0]; t++) {
        char name[32];
        snprintf(name, sizeof name, "limit%zu.db", t);
        const char *path = tmp_path(name);
        backlite_storage *s = OPEN_SET(path, .max_size = 300000, .file_threshold = thresholds[t]);
        REQUIRE(s != NULL);
        SET_BYTES(s, "a", v, 100000, NEVER);
        SET_BYTES(s, "b", v, 100000, NEVER);
        SET_BYTES(s, "c", v, 100000, NEVER);
        backlite_storage_free(s);
        s = OPEN_SET(path, .max_size = 300000, .file_threshold = thresholds[t]);
        REQUIRE(s != NULL);
        backlite_stats st = STATS(s);
        CHECK_EQ(st.count, 3);
        CHECK_EQ(st.total_size, 300000);
        /* Exactly at the limit: nothing evicted. */
        SET_BYTES(s, "b", v, 99999, NEVER);
        SET_BYTES(s, "d", v, 1, NEVER);
        st = STATS(s);
        CHECK_EQ(st.count, 4);
        CHECK_EQ(st.total_size, 300000);
        CHECK_EQ(st.evictions, 0);
        /* One byte over: one entry goes, with its file. */
        SET_BYTES(s, "e", v, 1, NEVER);
        st = STATS(s);
        CHECK(st.total_size <= 300000);
        CHECK_EQ(st.evictions, 1);
        CHECK_EQ(value_files(path), thresholds[t] == THRESHOLD ? 2 : thresholds[t] == 100000 ? 1 : 0);
        CHECK_OK(backlite_storage_clear(s, &err));
        SET_BYTES(s, "x", v, 300000, NEVER);
        CHECK_RC(backlite_storage_set(s, K("y"), v, 300001, NEVER, &err), BACKLITE_RESULT_TOO_LARGE);
        st = STATS(s);
        CHECK_EQ(st.count, 1);
        CHECK_EQ(st.total_size, 300000);
        CHECK_EQ(value_files(path), thresholds[t] == BACKLITE_FILE_THRESHOLD_NEVER ? 0 : 1);
        CHECK_OK(backlite_storage_delete(s, K("x"), &err));
        st = STATS(s);
        CHECK_EQ(st.count, 0);
        CHECK_EQ(st.total_size, 0);
        CHECK_EQ(value_files(path), 0);
        backlite_storage_free(s);
    }

    /* Ten file values, reopened under a limit of three: the next write evicts down to
       it, and their files go with them. */
    const char *path = tmp_path("lower.db");
    backlite_storage *s = OPEN_SET(path, .max_size = 2000000, .file_threshold = THRESHOLD);
    REQUIRE(s != NULL);
    for (int i = 0; i < 10; i++) {
        char key[8];
        snprintf(key, sizeof key, "k%d", i);
        SET_BYTES(s, key, v, 100000, NEVER);
    }
    backlite_storage_free(s);
    s = OPEN_SET(path, .max_size = 300000, .file_threshold = THRESHOLD);
    REQUIRE(s != NULL);
    SET_BYTES(s, "small", v, 10, NEVER);
    backlite_stats st = STATS(s);
    CHECK(st.total_size <= 300000);
    CHECK_EQ(st.total_size, 100000 * (uint64_t)value_files(path) + 10);
    backlite_check_report rep;
    CHECK_OK(backlite_storage_check(s, 0, &rep, &err));
    CHECK_EQ(rep.healthy, 1);
    backlite_storage_free(s);
    free(v);
}

/* Another connection holding the write lock (python3's sqlite3, as another program on
 * the file would): a set, a batch and a check of large values give BUSY and leave the
 * folder as it was. */
static void a_write_that_cannot_take_the_lock_leaves_no_file(void) {
    if (system("python3 -c 'import sqlite3' 2>/dev/null") != 0) {
        SKIP("python3 with sqlite3 is not installed: not tested");
    }
    const char *path = tmp_path("locked.db");
    char ready[PATH_MAX + 16], cmd[3 * PATH_MAX];
    snprintf(ready, sizeof ready, "%s.held", path);
    backlite_storage *s = OPEN_SET(path, .max_size = 1u << 30, .file_threshold = THRESHOLD, .busy_timeout_ms = 200);
    REQUIRE(s != NULL);
    uint8_t *v = h_pattern(500000, 3), *w = h_pattern(500000, 4);
    SET_BYTES(s, "k", v, 500000, NEVER);
    snprintf(cmd, sizeof cmd,
             "python3 -c \"import sqlite3,time; c=sqlite3.connect('%s', isolation_level=None); "
             "c.execute('BEGIN IMMEDIATE'); open('%s','w').close(); time.sleep(4)\" &",
             path, ready);
    REQUIRE(system(cmd) == 0);
    for (int i = 0; i < 3000 && !h_exists(ready); i++) h_sleep_ms(10);
    REQUIRE(h_exists(ready));
    CHECK_RC(backlite_storage_set(s, K("k"), w, 500000, NEVER, &err), BACKLITE_RESULT_BUSY);
    CHECK_EQ(value_files(path), 1);
    backlite_entry batch[2] = {{K("k"), w, 500000, NEVER}, {K("j"), w, 400000, NEVER}};
    CHECK_RC(backlite_storage_set_many(s, batch, 2, &err), BACKLITE_RESULT_BUSY);
    CHECK_EQ(value_files(path), 1);
    CHECK_EQ(temp_files(path), 0);
    /* Once the other connection is gone: the older value, whole, and nothing else. */
    for (int i = 0; i < 100; i++) {
        backlite_error *e = NULL;
        backlite_result rc = backlite_storage_set(s, K("probe"), v, 10, NEVER, &e);
        backlite_error_free(e);
        if (rc == BACKLITE_RESULT_OK) break;
        h_sleep_ms(100);
    }
    GET_BYTES_EQ(s, "k", v, 500000);
    GET_MISSING(s, "j");
    backlite_check_report rep;
    CHECK_OK(backlite_storage_check(s, 0, &rep, &err));
    CHECK_EQ(rep.healthy, 1);
    CHECK_EQ(value_files(path), 1);
    backlite_storage_free(s);
    free(v);
    free(w);
}

/* Sets with room left for the value file and 0 to 476 KiB more: each is IO or whole,
 * the older value stays on IO, and no file is left either way. */
static void slack_body(const char *dir) {
    char path[PATH_MAX + 16], filler[PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/cache.db", dir);
    snprintf(filler, sizeof filler, "%s/filler", dir);
    backlite_storage *s = OPEN_SET(path, .max_size = 1u << 30, .file_threshold = THRESHOLD);
    if (s == NULL) return;
    const size_t big = 300000;
    uint8_t *v = h_pattern(big + 200, 5);
    for (int i = 0; i < 40; i++) {
        char key[16];
        snprintf(key, sizeof key, "s%d", i);
        SET_BYTES(s, key, v, 3000, NEVER);
    }
    SET_BYTES(s, "k", v, big, NEVER);
    const uint8_t *now = v;
    int rounds = h_under_valgrind() ? 30 : 120;
    for (int r = 0; r < rounds; r++) {
        unlink(filler);
        REQUIRE(fill_up(filler, big + (size_t)r * 4096) > 0);
        const uint8_t *w = v + 1 + r % 100;
        backlite_error *e = NULL;
        backlite_result rc;
        if (r % 2 == 0) {
            rc = backlite_storage_set(s, K("k"), w, big, NEVER, &e);
        } else {
            backlite_entry batch[2] = {{K("k"), w, big, NEVER}, {K("s1"), w, 3000, NEVER}};
            rc = backlite_storage_set_many(s, batch, 2, &e);
        }
        if (rc == BACKLITE_RESULT_OK) now = w;
        else CHECK_EQ(rc, BACKLITE_RESULT_IO);
        backlite_error_free(e);
        CHECK_EQ(value_files(path), 1);
        CHECK_EQ(temp_files(path), 0);
        unlink(filler);
        GET_BYTES_EQ(s, "k", now, big);
    }
    backlite_storage_free(s);
    s = OPEN_SET(path, .max_size = 1u << 30, .file_threshold = THRESHOLD);
    REQUIRE(s != NULL);
    backlite_check_report rep;
    CHECK_OK(backlite_storage_check(s, 0, &rep, &err));
    CHECK_EQ(rep.healthy, 1);
    backlite_storage_free(s);
    free(v);
    umount(dir);
}

static void sets_on_a_nearly_full_disk_fail_whole_at_every_slack(void) { on_a_tmpfs("slack", "6m", slack_body); }

/* An expired file value read any way (or passed by a write, or a repair): a miss, its
 * file gone at once, the counters without it. */
static void an_expired_file_value_goes_with_its_file_by_every_read(void) {
    uint8_t *v = h_pattern(100000, 1);
    for (int how = 0; how < 6; how++) {
        char name[32];
        snprintf(name, sizeof name, "expired%d.db", how);
        const char *path = tmp_path(name);
        backlite_storage *s = OPEN_SET(path, .max_size = 1u << 30, .file_threshold = THRESHOLD);
        REQUIRE(s != NULL);
        /* "keep" first: a set after "a" would purge it if it took its 30 ms. */
        SET_BYTES(s, "keep", v, 100000, NEVER);
        SET_BYTES(s, "a", v, 100000, 30);
        CHECK_EQ(value_files(path), 2);
        h_sleep_ms(60);
        if (how < 4) {
            CHECK_EQ(read_a(s, how), BACKLITE_RESULT_NOT_FOUND);
        } else if (how == 4) {
            SET(s, "other", "x");
        } else {
            backlite_check_report rep;
            CHECK_OK(backlite_storage_check(s, 1, &rep, &err));
        }
        CHECK_EQ(value_files(path), 1);
        backlite_stats st = STATS(s);
        CHECK_EQ(st.total_size, 100000 + (how == 4 ? 1 : 0));
        CHECK_EQ(st.expirations, 1);
        GET_BYTES_EQ(s, "keep", v, 100000);
        backlite_storage_free(s);
    }
    free(v);
}

int main(void) {
    h_begin();
    RUN(writers_of_three_thresholds_one_killed_leave_whole_values_and_exact_counters);
    RUN(a_file_replaced_by_another_of_its_length_is_a_miss_by_every_read);
    RUN(the_limit_counts_file_values_exactly_on_both_sides_of_the_threshold);
    RUN(a_write_that_cannot_take_the_lock_leaves_no_file);
    RUN(sets_on_a_nearly_full_disk_fail_whole_at_every_slack);
    RUN(an_expired_file_value_goes_with_its_file_by_every_read);
    return h_end();
}
