/*
 * Values at or above backlite_options_set_file_threshold live in files of their own in
 * `<cache>.values/` (issue 16, item 2): the option's values and its default (64 KiB);
 * a round trip above and below the threshold through get and get_chunks; the size
 * limit counts them; delete, overwrite, eviction and clear remove their files; a file
 * deleted or cut short behind BackLite's back is a miss and its row goes; files
 * BackLite did not make are never touched; a writer killed (SIGKILL) in the middle of
 * large sets leaves no entry without its file, and check with repair leaves no orphan;
 * a cache its user cannot write still serves them; two processes setting one key never
 * hand a reader half a file.
 */
#include "backlite.h"
#include "harness.h"
#include "value_folder.h"

#include <dirent.h>
#include <grp.h>
#include <signal.h>
#include <sys/wait.h>

#define NOBODY 65534

#define THRESHOLD 4096

static backlite_storage *open_files(const char *path, uint64_t max_size) {
    return OPEN_SET(path, .max_size = max_size, .file_threshold = THRESHOLD);
}

typedef struct {
    uint8_t *bytes;
    size_t len, cap;
    int calls;
} received;

static int32_t collect(void *user, const uint8_t *chunk, size_t len) {
    received *r = user;
    r->calls++;
    if (r->len + len <= r->cap) memcpy(r->bytes + r->len, chunk, len);
    r->len += len;
    return 0;
}

static void the_threshold_takes_bytes_or_never(void) {
    backlite_options *o = backlite_options_new();
    REQUIRE(o != NULL);
    CHECK_RESULT(backlite_options_set_file_threshold(o, 0), BACKLITE_RESULT_INVALID_ARGUMENT);
    CHECK_RESULT(backlite_options_set_file_threshold(o, -2), BACKLITE_RESULT_INVALID_ARGUMENT);
    CHECK_RESULT(backlite_options_set_file_threshold(o, 1), BACKLITE_RESULT_OK);
    CHECK_RESULT(backlite_options_set_file_threshold(o, BACKLITE_FILE_THRESHOLD_NEVER),
                 BACKLITE_RESULT_OK);
    CHECK_RESULT(backlite_options_set_file_threshold(NULL, 1), BACKLITE_RESULT_NULL_PARAMETER);
    /* The last one set, Never: a large value makes no folder. */
    const char *path = tmp_path("never.db");
    backlite_storage *s = OPEN(path, o);
    REQUIRE(s != NULL);
    uint8_t *v = h_pattern(1 << 20, 1);
    SET_BYTES(s, "k", v, 1 << 20, NEVER);
    CHECK(!h_exists(folder_of(path)));
    free(v);
    backlite_storage_free(s);
    backlite_options_free(o);
}

/* Without the option the threshold is BACKLITE_FILE_THRESHOLD_DEFAULT, 64 KiB (API.md,
 * README): a value one byte under it stays in the database, one of exactly it (a
 * threshold is "at least") goes to a file. */
static void the_default_threshold_is_64_kib(void) {
    CHECK_EQ(BACKLITE_FILE_THRESHOLD_DEFAULT, 64 * 1024);
    const char *path = tmp_path("default.db");
    backlite_storage *s = OPEN(path, NULL);
    REQUIRE(s != NULL);
    size_t n = BACKLITE_FILE_THRESHOLD_DEFAULT;
    uint8_t *v = h_pattern(n, 4);
    SET_BYTES(s, "under", v, n - 1, NEVER);
    CHECK(!h_exists(folder_of(path)));
    SET_BYTES(s, "at", v, n, NEVER);
    CHECK_EQ(value_files(path), 1);
    GET_BYTES_EQ(s, "under", v, n - 1);
    GET_BYTES_EQ(s, "at", v, n);
    free(v);
    backlite_storage_free(s);
}

static void values_above_the_threshold_round_trip_through_files(void) {
    const char *path = tmp_path("round.db");
    backlite_storage *s = open_files(path, 1u << 30);
    REQUIRE(s != NULL);
    size_t small_n = THRESHOLD - 1, large_n = 3 * 256 * 1024 + 5;
    uint8_t *small = h_pattern(small_n, 2), *large = h_pattern(large_n, 3);
    SET_BYTES(s, "small", small, small_n, NEVER);
    CHECK_EQ(value_files(path), 0);
    SET_BYTES(s, "large", large, large_n, NEVER);
    CHECK_EQ(value_files(path), 1);
    GET_BYTES_EQ(s, "small", small, small_n);
    GET_BYTES_EQ(s, "large", large, large_n);

    received r = {.bytes = malloc(large_n), .cap = large_n};
    REQUIRE(r.bytes != NULL);
    CHECK_OK(backlite_storage_get_chunks(s, K("large"), collect, &r, NULL, &err));
    CHECK_EQ(r.len, large_n);
    CHECK(r.len == large_n && memcmp(r.bytes, large, large_n) == 0);
    CHECK(r.calls >= 4);
    free(r.bytes);

    backlite_stats st = STATS(s);
    CHECK_EQ(st.count, 2);
    CHECK_EQ(st.total_size, small_n + large_n);
    backlite_check_report rep;
    CHECK_OK(backlite_storage_check(s, 0, &rep, &err));
    CHECK_EQ(rep.healthy, 1);
    free(small);
    free(large);
    backlite_storage_free(s);
}

/* A small set that evicts a value kept in a file removes the file with its entry. */
static void a_small_set_that_evicts_a_file_value_removes_its_file(void) {
    const char *path = tmp_path("small-evicts.db");
    backlite_storage *s = open_files(path, 30100);
    REQUIRE(s != NULL);
    uint8_t *v = h_pattern(30000, 5);
    SET_BYTES(s, "big", v, 30000, NEVER);
    SET_N(s, "a", 50);
    SET_N(s, "b", 50); /* 30100: full */
    CHECK_EQ(value_files(path), 1);
    SET_N(s, "c", 50); /* evicts big, the oldest, alone */
    CHECK_EQ(value_files(path), 0);
    CHECK(!h_has_(__FILE__, __LINE__, s, "big", 3));
    backlite_stats st = STATS(s);
    CHECK_EQ(st.evictions, 1);
    CHECK_EQ(st.total_size, 150);
    free(v);
    backlite_storage_free(s);
}

static void every_removal_removes_the_file(void) {
    const char *path = tmp_path("removal.db");
    backlite_storage *s = open_files(path, 100000);
    REQUIRE(s != NULL);
    uint8_t *v = h_pattern(30000, 4);
    SET_BYTES(s, "a", v, 30000, NEVER);
    SET_BYTES(s, "a", v, 30000, NEVER);
    CHECK_EQ(value_files(path), 1); /* overwrite */
    CHECK_OK(backlite_storage_delete(s, K("a"), &err));
    CHECK_EQ(value_files(path), 0); /* delete */

    /* Expiry goes through the same removal: tests/value_files.rs, with a test clock. */
    for (int i = 0; i < 4; i++) {
        char key[8];
        snprintf(key, sizeof key, "k%d", i);
        SET_BYTES(s, key, v, 30000, NEVER);
    }
    CHECK_EQ(value_files(path), 3); /* eviction */
    CHECK_EQ(STATS(s).total_size, 90000);
    CHECK_OK(backlite_storage_clear(s, &err));
    CHECK_EQ(value_files(path), 0); /* clear */
    CHECK_OK(backlite_storage_vacuum(s, &err));
    free(v);
    backlite_storage_free(s);
}

/* A check with repair begins by removing the entries that are due; their files go
 * once it commits, as every removal's do, and are no orphans of a sound file. */
static void a_check_finds_no_orphan_in_the_file_of_an_entry_that_expired(void) {
    const char *path = tmp_path("expired.db");
    backlite_storage *s = open_files(path, 100000);
    REQUIRE(s != NULL);
    uint8_t *v = h_pattern(THRESHOLD, 5);
    SET_BYTES(s, "kept", v, THRESHOLD, NEVER);
    SET_BYTES(s, "soon", v, THRESHOLD, 1);
    h_sleep_ms(5); /* "soon" is due, and no write has removed it yet */
    backlite_check_report r;
    CHECK_OK(backlite_storage_check(s, 1, &r, &err));
    CHECK_EQ(r.healthy, 1);
    CHECK_EQ(r.orphan_values, 0);
    CHECK_EQ(r.repaired, 0);
    CHECK_EQ(r.actual_count, 1);
    CHECK_EQ(value_files(path), 1); /* the due entry's file went with it */
    CHECK_EQ(STATS(s).expirations, 1);
    free(v);
    backlite_storage_free(s);
}

static void a_file_lost_or_cut_short_is_a_miss(void) {
    const char *path = tmp_path("lost.db");
    backlite_storage *s = open_files(path, 1u << 30);
    REQUIRE(s != NULL);
    uint8_t *v = h_pattern(50000, 5);
    SET_BYTES(s, "gone", v, 50000, NEVER);
    REQUIRE(unlink(only_value_file(path)) == 0);
    GET_MISSING(s, "gone");
    CHECK_EQ(STATS(s).count, 0);

    SET_BYTES(s, "cut", v, 50000, NEVER);
    REQUIRE(truncate(only_value_file(path), 100) == 0);
    received r = {.bytes = malloc(50000), .cap = 50000};
    REQUIRE(r.bytes != NULL);
    CHECK_RC(backlite_storage_get_chunks(s, K("cut"), collect, &r, NULL, &err),
             BACKLITE_RESULT_NOT_FOUND);
    CHECK_EQ(r.calls, 0);
    free(r.bytes);
    CHECK_EQ(STATS(s).count, 0);
    free(v);
    backlite_storage_free(s);
}

static void foreign_files_are_never_touched(void) {
    const char *path = tmp_path("foreign.db");
    backlite_storage *s = open_files(path, 1u << 30);
    REQUIRE(s != NULL);
    uint8_t *v = h_pattern(20000, 6);
    SET_BYTES(s, "k", v, 20000, NEVER);
    const char *names[] = {"notes.txt", "v-12.blv", "t-zz.tmp", "V-AB.BLV"};
    char p[PATH_MAX + 400];
    for (int i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s/%s", folder_of(path), names[i]);
        REQUIRE(h_write_file(p, "mine", 4));
    }
    backlite_check_report rep;
    CHECK_OK(backlite_storage_check(s, 1, &rep, &err));
    CHECK_OK(backlite_storage_clear(s, &err));
    CHECK_OK(backlite_storage_check(s, 1, &rep, &err));
    for (int i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s/%s", folder_of(path), names[i]);
        size_t n = 0;
        uint8_t *got = h_read_file(p, &n);
        CHECK(got != NULL && n == 4 && memcmp(got, "mine", 4) == 0);
        free(got);
    }
    free(v);
    backlite_storage_free(s);
}

static backlite_storage *open_64_mib(const char *path) { return open_files(path, 64u << 20); }

/* Large values under a few keys. */
static const value_writer large_sets = {open_64_mib, 1 << 20, 5};

static void a_writer_killed_mid_set_leaves_no_entry_without_its_file(void) {
    const char *tmp = tmp_path("killed.db");
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s", tmp);
    for (int round = 0; round < 3; round++) {
        /* A few sets done, then killed wherever it is in the next one. */
        REQUIRE(WRITER_KILLED_AFTER(large_sets, path, 3 + round));

        backlite_storage *s = open_64_mib(path);
        REQUIRE(s != NULL);
        CHECK_REPAIRED(s, path);
        uint64_t count = STATS(s).count;
        CHECK_WRITER_ENTRIES(large_sets, s);
        CHECK_EQ(STATS(s).count, count);
        backlite_storage_free(s);
    }
}

/* A child: sets key "same" to `n` bytes of `fill`, `times` times. */
static void set_same(const char *path, uint8_t fill, int times) {
    backlite_storage *s = open_files(path, 1u << 30);
    if (!s) _exit(3);
    size_t n = 1 << 20;
    uint8_t *v = malloc(n);
    if (!v) _exit(3);
    memset(v, fill, n);
    for (int i = 0; i < times; i++) {
        backlite_error *e = NULL;
        if (backlite_storage_set(s, K("same"), v, n, NEVER, &e) != BACKLITE_RESULT_OK) _exit(4);
    }
    free(v);
    backlite_storage_free(s);
    _exit(0);
}

static void two_processes_setting_one_key_never_read_half_a_file(void) {
    const char *tmp = tmp_path("same.db");
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s", tmp);
    pid_t pids[2];
    for (int c = 0; c < 2; c++) {
        pids[c] = fork();
        REQUIRE(pids[c] >= 0);
        if (pids[c] == 0) set_same(path, c ? 'B' : 'A', 20);
    }
    /* Opened after the forks: no handle crosses a fork. */
    backlite_storage *s = open_files(path, 1u << 30);
    REQUIRE(s != NULL);
    /* Read while they write: every hit is one writer's value, whole. */
    int running = 2, hits = 0;
    while (running > 0) {
        backlite_buf b = {0};
        backlite_error *e = NULL;
        if (backlite_storage_get(s, K("same"), &b, NULL, &e) == BACKLITE_RESULT_OK) {
            hits++;
            bool whole = b.len == (size_t)1 << 20;
            for (size_t i = 1; whole && i < b.len; i++) whole = b.data[i] == b.data[0];
            CHECK(whole && (b.data[0] == 'A' || b.data[0] == 'B'));
        }
        backlite_buf_free(&b);
        backlite_error_free(e);
        for (int c = 0; c < 2; c++) {
            int status = 0;
            if (pids[c] > 0 && waitpid(pids[c], &status, WNOHANG) == pids[c]) {
                CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
                pids[c] = 0;
                running--;
            }
        }
    }
    backlite_check_report rep;
    CHECK_OK(backlite_storage_check(s, 0, &rep, &err));
    CHECK_EQ(rep.healthy, 1);
    CHECK_EQ(value_files(path), 1); /* each overwrite removed the file before it */
    CHECK_EQ(STATS(s).count, 1);
    printf("# %d hits while two processes wrote\n", hits);
    backlite_storage_free(s);
}

/* Gives `path` to user nobody (when root) without write permission: `mode`. */
static void give_read_only(const char *path, mode_t mode) {
    if (geteuid() == 0) REQUIRE(chown(path, NOBODY, NOBODY) == 0);
    REQUIRE(chmod(path, mode) == 0);
}

static void a_read_only_cache_serves_its_file_values(void) {
    const char *tmp = tmp_path("ro");
    char dir[PATH_MAX - 64], path[PATH_MAX], item[PATH_MAX + 400];
    snprintf(dir, sizeof dir, "%s", tmp);
    snprintf(path, sizeof path, "%s/cache.db", dir);
    REQUIRE(chmod(h_tmp_root(), 0755) == 0);
    REQUIRE(mkdir(dir, 0755) == 0);
    size_t n = 100000;
    uint8_t *v = h_pattern(n, 8);
    backlite_storage *s = open_files(path, 1u << 30);
    REQUIRE(s != NULL);
    SET_BYTES(s, "large", v, n, NEVER);
    backlite_storage_free(s);
    REQUIRE(value_files(path) == 1);
    /* Every file BackLite made, then the folders, lose write permission. */
    DIR *d = opendir(folder_of(path));
    REQUIRE(d != NULL);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        snprintf(item, sizeof item, "%s/%s", folder_of(path), e->d_name);
        give_read_only(item, 0444);
    }
    closedir(d);
    d = opendir(dir);
    REQUIRE(d != NULL);
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' || strstr(e->d_name, ".values")) continue;
        snprintf(item, sizeof item, "%s/%s", dir, e->d_name);
        give_read_only(item, 0444);
    }
    closedir(d);
    give_read_only(folder_of(path), 0555);
    /* The cache's own folder stays writable, as for any read-only cache file: SQLite
     * needs its -shm there to read a WAL file. */
    give_read_only(dir, 0755);

    int gate[2];
    REQUIRE(pipe(gate) == 0);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        close(gate[0]);
        if (geteuid() == 0 && (setgroups(0, NULL) != 0 || setgid(NOBODY) != 0 || setuid(NOBODY) != 0))
            _exit(77);
        int before = atomic_load(&h_st()->failures);
        backlite_storage *r = NULL;
        backlite_error *err = NULL;
        backlite_result rc = backlite_storage_open(path, NULL, &r, &err);
        if (rc != BACKLITE_RESULT_OK) {
            printf("# open: %s\n", backlite_error_message(err));
            backlite_error_free(err);
            free(v);
            _exit(1);
        }
        GET_BYTES_EQ(r, "large", v, n);
        received got = {.bytes = malloc(n), .cap = n};
        CHECK_OK(backlite_storage_get_chunks(r, K("large"), collect, &got, NULL, &err));
        CHECK(got.len == n && memcmp(got.bytes, v, n) == 0);
        free(got.bytes);
        CHECK_RC(backlite_storage_set(r, K("other"), v, n, NEVER, &err), BACKLITE_RESULT_IO);
        backlite_storage_free(r);
        free(v);
        _exit(atomic_load(&h_st()->failures) == before ? 0 : 1);
    }
    close(gate[1]);
    close(gate[0]);
    int code = CHILD_EXIT_CODE(pid);
    if (code == 77) SKIP("cannot drop to user nobody");
    CHECK_EQ(code, 0);
    CHECK_EQ(value_files(path), 1); /* nothing was removed */
    /* Writable again, so that the temporary folder can be removed. */
    REQUIRE(chmod(folder_of(path), 0700) == 0);
    free(v);
}

int main(void) {
    h_begin();
    RUN(the_threshold_takes_bytes_or_never);
    RUN(the_default_threshold_is_64_kib);
    RUN(values_above_the_threshold_round_trip_through_files);
    RUN(a_small_set_that_evicts_a_file_value_removes_its_file);
    RUN(every_removal_removes_the_file);
    RUN(a_check_finds_no_orphan_in_the_file_of_an_entry_that_expired);
    RUN(a_file_lost_or_cut_short_is_a_miss);
    RUN(foreign_files_are_never_touched);
    RUN(a_writer_killed_mid_set_leaves_no_entry_without_its_file);
    RUN(a_read_only_cache_serves_its_file_values);
    RUN(two_processes_setting_one_key_never_read_half_a_file);
    return h_end();
}
