/*
 * Values kept in files (issue 16), ninth probe round: a cache on a read-only mount
 * (its file and its folder of values) serves every kind of read, from a file, from
 * the database: get, get_chunks, open_reader, contains. A file value that expired or
 * whose file was lost is a miss by each of them, again and again, never an error;
 * every write (set, delete, clear, vacuum, check with repair) fails with a message
 * and changes nothing on disk; a handle that can write then finds each value as it was.
 * And readers of a file value and of a large value in the database, open while another
 * process clears, vacuums, checks with repair and sets the keys again, read the values
 * they opened, whole, and leave no file behind.
 */
#include "backlite.h"
#include "harness.h"
#include "value_folder.h"

#include <sched.h>
#include <sys/mount.h>
#include <sys/wait.h>

#define THRESHOLD 4096

typedef struct {
    uint8_t *bytes;
    size_t len, cap;
} gathered;

static int32_t gather(void *user, const uint8_t *chunk, size_t len) {
    gathered *g = user;
    if (g->len + len <= g->cap) memcpy(g->bytes + g->len, chunk, len);
    g->len += len;
    return 0;
}

/* Every read of `key` gives the n bytes at v. */
static void reads_whole(backlite_storage *s, const char *key, const uint8_t *v, size_t n) {
    GET_BYTES_EQ(s, key, v, n);
    gathered g = {.bytes = malloc(n), .cap = n};
    REQUIRE(g.bytes != NULL);
    CHECK_OK(backlite_storage_get_chunks(s, K(key), gather, &g, NULL, &err));
    CHECK(g.len == n && memcmp(g.bytes, v, n) == 0);
    backlite_value_reader *r = NULL;
    uint64_t size = 0;
    CHECK_OK(backlite_storage_open_reader(s, K(key), &r, &size, NULL, &err));
    if (r != NULL) {
        CHECK_EQ(size, n);
        size_t at = 0;
        for (;;) {
            size_t got = 0;
            backlite_error *e = NULL;
            backlite_result rc = backlite_value_reader_read(r, g.bytes + at, n - at < 5000 ? n - at + 1 : 5000, &got, &e);
            if (rc != BACKLITE_RESULT_OK) {
                h_fail_(__FILE__, __LINE__, "read %s at %zu: %s %s", key, at, h_rc_name(rc),
                        e ? backlite_error_message(e) : "");
                backlite_error_free(e);
                break;
            }
            if (got == 0 || at + got > n) break;
            at += got;
        }
        CHECK(at == n && memcmp(g.bytes, v, n) == 0);
        backlite_value_reader_free(r);
    }
    CHECK(HAS(s, key));
    free(g.bytes);
}

/* Every read of `key` misses, and says nothing of an error. */
static void every_read_misses(backlite_storage *s, const char *key) {
    for (int round = 0; round < 2; round++) {
        GET_MISSING(s, key);
        gathered g = {.bytes = NULL, .cap = 0};
        CHECK_RC(backlite_storage_get_chunks(s, K(key), gather, &g, NULL, &err), BACKLITE_RESULT_NOT_FOUND);
        CHECK_EQ(g.len, 0);
        backlite_value_reader *r = NULL;
        CHECK_RC(backlite_storage_open_reader(s, K(key), &r, NULL, NULL, &err), BACKLITE_RESULT_NOT_FOUND);
        CHECK(r == NULL);
    }
}

/* A write on the read-only cache fails with a message, not OK. */
#define FAILS_WITH_A_MESSAGE(call)                                                              \
    do {                                                                                        \
        backlite_error *err = NULL;                                                             \
        backlite_result rc_ = (call);                                                           \
        if (rc_ == BACKLITE_RESULT_OK || err == NULL || backlite_error_message(err)[0] == '\0') \
            h_fail_(__FILE__, __LINE__, "%s: %s, no message", #call, h_rc_name(rc_));           \
        else                                                                                    \
            printf("# %s: %s: %s\n", #call, h_rc_name(rc_), backlite_error_message(err));       \
        backlite_error_free(err);                                                               \
    } while (0)

static uint64_t sum_of_file(const char *p) {
    FILE *f = fopen(p, "rb");
    if (f == NULL) return 0;
    uint64_t h = 1469598103934665603ull;
    int c;
    while ((c = fgetc(f)) != EOF) h = (h ^ (uint64_t)c) * 1099511628211ull;
    fclose(f);
    return h;
}

static void a_read_only_mounted_cache_serves_every_read_and_misses_what_it_cannot_remove(void) {
    const char *tmp = tmp_path("ro9");
    char dir[PATH_MAX - 64], path[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", tmp);
    snprintf(path, sizeof path, "%s/cache.db", dir);
    REQUIRE(mkdir(dir, 0700) == 0);
    size_t n = 300000;
    uint8_t *v = h_pattern(n, 91), *w = h_pattern(n, 92);
    backlite_storage *s = OPEN_SET(path, .max_size = 1u << 30, .file_threshold = THRESHOLD);
    REQUIRE(s != NULL);
    SET_BYTES(s, "gone", w, n, NEVER);
    char gone[PATH_MAX + 400];
    snprintf(gone, sizeof gone, "%s", only_value_file(path));
    SET_BYTES(s, "k", v, n, NEVER);
    SET(s, "small", "x");
    int64_t life = h_under_valgrind() ? 3000 : 600;
    SET_BYTES(s, "expired", w, n, life);
    backlite_storage_free(s);
    /* Another handle keeps a large value in the database. */
    s = OPEN_SET(path, .max_size = 1u << 30, .file_threshold = BACKLITE_FILE_THRESHOLD_NEVER);
    REQUIRE(s != NULL);
    SET_BYTES(s, "blob", w, n, NEVER);
    backlite_storage_free(s);
    REQUIRE(unlink(gone) == 0);
    h_sleep_ms(life + 200);
    REQUIRE(value_files(path) == 2);
    uint64_t before = sum_of_file(path);
    fflush(stdout);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        const char *ro[] = {path, folder_of(path)};
        if (unshare(CLONE_NEWNS) != 0 || mount("none", "/", "none", MS_REC | MS_PRIVATE, NULL) != 0) _exit(77);
        for (int i = 0; i < 2; i++)
            if (mount(ro[i], ro[i], "none", MS_BIND, NULL) != 0 ||
                mount("none", ro[i], "none", MS_REMOUNT | MS_BIND | MS_RDONLY, NULL) != 0)
                _exit(77);
        int failures = atomic_load(&h_st()->failures);
        backlite_storage *r = OPEN_SET(path, .max_size = 1u << 30, .file_threshold = THRESHOLD);
        if (r != NULL) {
            reads_whole(r, "k", v, n);
            reads_whole(r, "blob", w, n);
            GET_EQ(r, "small", "x");
            every_read_misses(r, "expired");
            CHECK(!HAS(r, "expired"));
            every_read_misses(r, "gone");
            every_read_misses(r, "never-set");
            backlite_stats st = STATS(r);
            printf("# read-only stats: count %" PRIu64 ", total %" PRIu64 "\n", st.count, st.total_size);
            backlite_check_report rep;
            CHECK_OK(backlite_storage_check(r, 0, &rep, &err));
            printf("# read-only check: healthy %d, damaged %" PRIu64 ", orphans %" PRIu64 "\n", rep.healthy,
                   rep.damaged, rep.orphan_values);
            FAILS_WITH_A_MESSAGE(backlite_storage_set(r, K("k"), w, n, NEVER, &err));
            FAILS_WITH_A_MESSAGE(backlite_storage_set(r, K("new"), (const uint8_t *)"y", 1, NEVER, &err));
            FAILS_WITH_A_MESSAGE(backlite_storage_delete(r, K("k"), &err));
            FAILS_WITH_A_MESSAGE(backlite_storage_clear(r, &err));
            FAILS_WITH_A_MESSAGE(backlite_storage_vacuum(r, &err));
            FAILS_WITH_A_MESSAGE(backlite_storage_check(r, 1, &rep, &err));
            /* Nothing those did lost a value. */
            reads_whole(r, "k", v, n);
            reads_whole(r, "blob", w, n);
            every_read_misses(r, "new");
            backlite_storage_free(r);
        }
        _exit(atomic_load(&h_st()->failures) == failures ? 0 : 1);
    }
    int code = CHILD_EXIT_CODE(pid);
    if (code == 77) SKIP("cannot bind-mount read-only here (needs root / CAP_SYS_ADMIN)");
    CHECK_EQ(code, 0);
    CHECK_EQ(value_files(path), 2); /* nothing was removed */
    CHECK(sum_of_file(path) == before);
    /* A handle that can write: the same values, and a check that repairs the lost one. */
    s = OPEN_SET(path, .max_size = 1u << 30, .file_threshold = THRESHOLD);
    REQUIRE(s != NULL);
    reads_whole(s, "k", v, n);
    reads_whole(s, "blob", w, n);
    every_read_misses(s, "expired");
    every_read_misses(s, "gone");
    backlite_check_report rep;
    CHECK_OK(backlite_storage_check(s, 1, &rep, &err));
    CHECK(rep.healthy == 1 && rep.damaged == 0 && rep.orphan_values == 0);
    CHECK_EQ(value_files(path), 1); /* "k"'s: "blob" is in the database */
    CHECK_EQ(temp_files(path), 0);
    backlite_stats st = STATS(s);
    CHECK_EQ(st.count, 3);
    CHECK_EQ(st.total_size, 2 * n + 1);
    backlite_storage_free(s);
    free(v);
    free(w);
}

/* Reads a reader's rest into `into` (from `at`), checking every read is OK. */
static size_t read_rest(backlite_value_reader *r, uint8_t *into, size_t at, size_t n) {
    for (;;) {
        size_t got = 0;
        backlite_error *e = NULL;
        backlite_result rc = backlite_value_reader_read(r, into + at, n - at < 7777 ? n - at + 1 : 7777, &got, &e);
        if (rc != BACKLITE_RESULT_OK) {
            h_fail_(__FILE__, __LINE__, "read at %zu: %s %s", at, h_rc_name(rc), e ? backlite_error_message(e) : "");
            backlite_error_free(e);
            return at;
        }
        if (got == 0 || at + got > n) return at;
        at += got;
    }
}

/* Readers of a file value and of a large value in the database, opened and partly read
 * in one process; another process then clears, vacuums, checks with repair and sets
 * each key again. The readers read the values they opened, whole; once they are freed a
 * check finds the file healthy, one value file per filed entry, nothing else. */
static void readers_keep_their_values_across_another_processs_clear_vacuum_and_repair(void) {
    const char *path = tmp_path("across.db");
    size_t n = 700000;
    uint8_t *v = h_pattern(n, 93), *w = h_pattern(n, 94);
    backlite_storage *f = OPEN_SET(path, .max_size = 1u << 30, .file_threshold = THRESHOLD, .busy_timeout_ms = 2000);
    backlite_storage *d = OPEN_SET(path, .max_size = 1u << 30, .file_threshold = BACKLITE_FILE_THRESHOLD_NEVER,
                                   .busy_timeout_ms = 2000);
    REQUIRE(f != NULL && d != NULL);
    SET_BYTES(f, "file", v, n, NEVER);
    SET_BYTES(d, "blob", v, n, NEVER);
    REQUIRE(value_files(path) == 1);
    backlite_value_reader *rf = NULL, *rd = NULL;
    CHECK_OK(backlite_storage_open_reader(f, K("file"), &rf, NULL, NULL, &err));
    CHECK_OK(backlite_storage_open_reader(d, K("blob"), &rd, NULL, NULL, &err));
    REQUIRE(rf != NULL && rd != NULL);
    uint8_t *gf = malloc(n + 1), *gd = malloc(n + 1);
    REQUIRE(gf != NULL && gd != NULL);
    size_t af = 0, ad = 0;
    CHECK_OK(backlite_value_reader_read(rf, gf, 1000, &af, &err));
    CHECK_OK(backlite_value_reader_read(rd, gd, 1000, &ad, &err));
    fflush(stdout);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        int failures = atomic_load(&h_st()->failures);
        backlite_storage *o = OPEN_SET(path, .max_size = 1u << 30, .file_threshold = THRESHOLD, .busy_timeout_ms = 500);
        if (o != NULL) {
            CHECK_OK(backlite_storage_clear(o, &err));
            backlite_error *e = NULL;
            backlite_result rc = backlite_storage_vacuum(o, &e);
            printf("# vacuum beside the readers: %s %s\n", h_rc_name(rc), e ? backlite_error_message(e) : "");
            if (rc != BACKLITE_RESULT_OK && rc != BACKLITE_RESULT_BUSY) h_fail_(__FILE__, __LINE__, "vacuum");
            backlite_error_free(e);
            backlite_check_report rep;
            CHECK_OK(backlite_storage_check(o, 1, &rep, &err));
            CHECK(rep.healthy == 1 && rep.damaged == 0 && rep.orphan_values == 0);
            SET_BYTES(o, "file", w, n, NEVER);
            SET_BYTES(o, "blob", w, n, NEVER);
            CHECK_OK(backlite_storage_check(o, 1, &rep, &err));
            CHECK(rep.healthy == 1 && rep.actual_count == 2);
            backlite_storage_free(o);
        }
        h_child_exit(atomic_load(&h_st()->failures) == failures ? 0 : 1);
    }
    CHECK_EQ(CHILD_EXIT_CODE(pid), 0);
    af = read_rest(rf, gf, af, n);
    ad = read_rest(rd, gd, ad, n);
    CHECK(af == n && memcmp(gf, v, n) == 0);
    CHECK(ad == n && memcmp(gd, v, n) == 0);
    backlite_value_reader_free(rf);
    backlite_value_reader_free(rd);
    GET_BYTES_EQ(f, "file", w, n);
    GET_BYTES_EQ(d, "blob", w, n);
    GET_BYTES_EQ(f, "blob", w, n);
    backlite_check_report rep;
    CHECK_OK(backlite_storage_check(f, 0, &rep, &err));
    CHECK(rep.healthy == 1 && rep.damaged == 0 && rep.orphan_values == 0 && rep.actual_count == 2);
    CHECK_EQ(value_files(path), 2); /* the other process set both through files */
    CHECK_EQ(temp_files(path), 0);
    backlite_stats st = STATS(f);
    CHECK(st.count == 2 && st.total_size == 2 * n);
    CHECK_OK(backlite_storage_vacuum(f, &err));
    backlite_storage_free(f);
    backlite_storage_free(d);
    free(gf);
    free(gd);
    free(v);
    free(w);
}

int main(void) {
    h_begin();
    RUN(a_read_only_mounted_cache_serves_every_read_and_misses_what_it_cannot_remove);
    RUN(readers_keep_their_values_across_another_processs_clear_vacuum_and_repair);
    return h_end();
}
