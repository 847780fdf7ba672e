/*
 * Values kept in files (issue 16), tenth probe round: a socket put in a value file's
 * place (which no open reaches: ENXIO) is a miss whose row goes, as a FIFO, a link or
 * a folder there is, and check counts and repairs it; a row whose size was damaged to
 * more than any memory is a miss by every read, get and cached calls included; an
 * orphan that check with repair cannot remove makes it IO, not healthy; hard links
 * made behind BackLite's back change no value and no count; thresholds changed at
 * reopen, with batches mixing small and large values, keep files and counts exact;
 * reads of odd lengths around the 64 KiB tail and past the end read each byte once;
 * a folder of values closed while a handle is open is IO and removes nothing.
 */
#include "backlite.h"
#include "harness.h"
#include "value_folder.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>

#define THRESHOLD 4096

#if UNDER_ASAN
/* A row whose size was damaged to 2^62 makes a get ask malloc for that much: NULL, as
 * without ASan (then the get finds the row damaged), not an abort of the program. */
const char *__asan_default_options(void);
const char *__asan_default_options(void) { return "allocator_may_return_null=1"; }
#endif

typedef struct {
    uint8_t *bytes;
    size_t len, cap;
    int calls;
} gathered;

static int32_t gather(void *user, const uint8_t *chunk, size_t len) {
    gathered *g = user;
    g->calls++;
    if (g->len + len <= g->cap) memcpy(g->bytes + g->len, chunk, len);
    g->len += len;
    return 0;
}

/* Every read of `key` misses: get, get_chunks (no chunk handed over), open_reader,
 * contains; a miss is an answer, never an error. */
static void every_read_misses(backlite_storage *s, const char *key) {
    GET_MISSING(s, key);
    gathered g = {0};
    CHECK_RC(backlite_storage_get_chunks(s, K(key), gather, &g, NULL, &err), BACKLITE_RESULT_NOT_FOUND);
    CHECK_EQ(g.calls, 0);
    backlite_value_reader *r = NULL;
    CHECK_RC(backlite_storage_open_reader(s, K(key), &r, NULL, NULL, &err), BACKLITE_RESULT_NOT_FOUND);
    CHECK(r == NULL);
    CHECK(!HAS(s, key));
}

/* Binds a Unix socket at `path` (relative to its folder: a socket's name is short). */
static bool bind_socket_at(const char *path) {
    char dir[PATH_MAX + 400];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash == NULL) return false;
    *slash = '\0';
    int here = open(".", O_RDONLY | O_DIRECTORY);
    if (here < 0 || chdir(dir) != 0) return false;
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    snprintf(addr.sun_path, sizeof addr.sun_path, "%s", slash + 1);
    bool bound = fd >= 0 && bind(fd, (struct sockaddr *)&addr, sizeof addr) == 0;
    if (fd >= 0) close(fd);
    bool back = fchdir(here) == 0;
    close(here);
    return bound && back;
}

/* A socket in place of a value file is no file of ours, as a FIFO, a link or a folder
 * there is not: every read misses (opening a socket fails, ENXIO), its row goes, and a
 * check counts it damaged and repairs the cache. */
static void a_socket_in_place_of_a_value_file_is_a_miss_and_check_repairs(void) {
    for (int how = 0; how < 2; how++) {
        const char *path = tmp_path(how == 0 ? "sock-get.db" : "sock-check.db");
        backlite_storage *s = OPEN_SET(path, .max_size = 1u << 30, .file_threshold = THRESHOLD);
        REQUIRE(s != NULL);
        size_t n = 50000;
        uint8_t *v = h_pattern(n, 101);
        SET_BYTES(s, "k", v, n, NEVER);
        SET_BYTES(s, "other", v, n, NEVER);
        char file[PATH_MAX + 400];
        /* "k"'s file: the one that is not "other"'s, found by removing "other" first. */
        CHECK_OK(backlite_storage_delete(s, K("other"), &err));
        snprintf(file, sizeof file, "%s", only_value_file(path));
        SET_BYTES(s, "other", v, n, NEVER);
        REQUIRE(unlink(file) == 0);
        REQUIRE(bind_socket_at(file));
        struct stat st;
        REQUIRE(lstat(file, &st) == 0 && S_ISSOCK(st.st_mode));
        backlite_check_report rep;
        if (how == 0) {
            every_read_misses(s, "k");
            every_read_misses(s, "k");
            /* A miss each by get, get_chunks and open_reader; contains counts nothing. */
            backlite_stats st = STATS(s);
            CHECK(st.hits == 0 && st.misses == 6 && st.count == 1 && st.total_size == n);
        } else {
            CHECK_OK(backlite_storage_check(s, 0, &rep, &err));
            CHECK(rep.healthy == 0 && rep.damaged == 1);
        }
        CHECK_OK(backlite_storage_check(s, 1, &rep, &err));
        CHECK_EQ(rep.healthy, 1);
        CHECK_OK(backlite_storage_check(s, 0, &rep, &err));
        CHECK(rep.healthy == 1 && rep.damaged == 0 && rep.entries == 1);
        every_read_misses(s, "k");
        GET_BYTES_EQ(s, "other", v, n);
        backlite_stats stats = STATS(s);
        CHECK(stats.count == 1 && stats.total_size == n);
        CHECK_OK(backlite_storage_clear(s, &err));
        CHECK_OK(backlite_storage_vacuum(s, &err));
        backlite_storage_free(s);
        free(v);
    }
}

static int32_t compute_fresh(void *user, backlite_sink *sink) {
    (*(int *)user)++;
    return backlite_sink_write(sink, (const uint8_t *)"fresh", 5) == BACKLITE_RESULT_OK ? 0 : 1;
}

/* A row whose size was made huge behind BackLite's back (larger than any memory), of a
 * value in a file or in the database: a damaged row, a miss by every read (get
 * included, which allocates the value's memory first) that removes it, as one whose
 * size is one byte off; never a failure of the call, "out of memory" for a value that
 * is not there. A cached call computes and stores in its place; check counts the row
 * and repairs it. */
static void a_huge_size_in_the_row_of_a_large_value_is_a_miss(void) {
    if (!h_have_python_sqlite()) SKIP("python3 with sqlite3 is needed to damage a row");
    const char *huge = "UPDATE entries SET size = 4611686018427387904 WHERE key = CAST('k' AS BLOB)";
    for (int place = 0; place < 2; place++) {
        const char *path = tmp_path(place == 0 ? "huge-file.db" : "huge-blob.db");
        int64_t threshold = place == 0 ? THRESHOLD : BACKLITE_FILE_THRESHOLD_NEVER;
        size_t n = 50000;
        uint8_t *v = h_pattern(n, 121);
        for (int how = 0; how < 2; how++) {
            backlite_storage *s = OPEN_SET(path, .max_size = 1u << 30, .file_threshold = threshold);
            REQUIRE(s != NULL);
            CHECK_OK(backlite_storage_clear(s, &err));
            SET_BYTES(s, "k", v, n, NEVER);
            SET_BYTES(s, "other", v, n, NEVER);
            backlite_storage_free(s);
            REQUIRE(h_python_sqlite(path, huge));
            s = OPEN_SET(path, .max_size = 1u << 30, .file_threshold = threshold);
            REQUIRE(s != NULL);
            backlite_check_report rep;
            CHECK_OK(backlite_storage_check(s, 0, &rep, &err));
            CHECK(rep.healthy == 0 && rep.damaged == 1);
            if (how == 0) {
                every_read_misses(s, "k");
                CHECK_OK(backlite_storage_check(s, 1, &rep, &err));
                CHECK_EQ(rep.healthy, 1);
                backlite_stats st = STATS(s);
                CHECK(st.count == 1 && st.total_size == n);
            } else {
                int computed = 0;
                backlite_buf b = {0};
                CHECK_OK(backlite_cached_call(s, K("k"), compute_fresh, &computed, NULL, NEVER, &b, &err));
                CHECK_EQ(computed, 1);
                CHECK_BUF_STR(b, "fresh");
                backlite_buf_free(&b);
                GET_EQ(s, "k", "fresh");
                CHECK_OK(backlite_storage_check(s, 0, &rep, &err));
                CHECK_EQ(rep.healthy, 1);
                backlite_stats st = STATS(s);
                CHECK(st.count == 2 && st.total_size == n + 5);
            }
            GET_BYTES_EQ(s, "other", v, n);
            CHECK_EQ(value_files(path), place == 0 ? 1 : 0);
            backlite_storage_free(s);
        }
        free(v);
    }
}

/* In a folder its user cannot write (0500), a deleted value's file stays, an orphan:
 * check reports it, with repair too (which cannot remove it), not healthy; once the
 * folder can be written, repair removes it and check is healthy. */
static void orphans_in_a_folder_that_cannot_be_written(const char *path) {
    backlite_storage *s = OPEN_SET(path, .max_size = 1u << 30, .file_threshold = THRESHOLD);
    REQUIRE(s != NULL);
    size_t n = 20000;
    uint8_t *v = h_pattern(n, 131);
    SET_BYTES(s, "a", v, n, NEVER);
    SET_BYTES(s, "b", v, n, NEVER);
    REQUIRE(chmod(folder_of(path), 0500) == 0);
    CHECK_OK(backlite_storage_delete(s, K("a"), &err));
    CHECK_EQ(value_files(path), 2);
    REQUIRE(chmod(folder_of(path), 0700) == 0);
    age_folder(path); /* past the grace a check that only counts gives a young file */
    REQUIRE(chmod(folder_of(path), 0500) == 0);
    backlite_check_report rep;
    CHECK_OK(backlite_storage_check(s, 0, &rep, &err));
    printf("# check: healthy %d, orphans %" PRIu64 "\n", rep.healthy, rep.orphan_values);
    CHECK(rep.healthy == 0 && rep.orphan_values == 1);
    backlite_error *e = NULL;
    backlite_result rc = backlite_storage_check(s, 1, &rep, &e);
    printf("# check with repair: %s %s, healthy %d, orphans %" PRIu64 ", repaired %d\n", h_rc_name(rc),
           e ? backlite_error_message(e) : "", rep.healthy, rep.orphan_values, rep.repaired);
    CHECK(rc != BACKLITE_RESULT_OK || rep.healthy == 0);
    backlite_error_free(e);
    CHECK_EQ(value_files(path), 2);
    REQUIRE(chmod(folder_of(path), 0700) == 0);
    CHECK_OK(backlite_storage_check(s, 1, &rep, &err));
    CHECK(rep.healthy == 1 && rep.orphan_values == 1);
    CHECK_OK(backlite_storage_check(s, 0, &rep, &err));
    CHECK(rep.healthy == 1 && rep.orphan_values == 0);
    CHECK_EQ(value_files(path), 1);
    GET_BYTES_EQ(s, "b", v, n);
    backlite_storage_free(s);
    free(v);
}

static void an_orphan_check_cannot_remove_is_reported(void) { as_nobody("ro-orphans", orphans_in_a_folder_that_cannot_be_written); }

/* The names of the value files in the cache's folder, sorted ("" past the end). */
#define MAX_NAMES 16
typedef struct {
    char name[MAX_NAMES][64];
    int n;
} names;

static names listed(const char *cache) {
    names out = {.n = 0};
    DIR *d = opendir(folder_of(cache));
    for (struct dirent *e; d != NULL && (e = readdir(d)) != NULL;)
        if (is_value_file_name(e->d_name) && out.n < MAX_NAMES) snprintf(out.name[out.n++], 64, "%.63s", e->d_name);
    if (d != NULL) closedir(d);
    return out;
}

static bool among(const names *ns, const char *name) {
    for (int i = 0; i < ns->n; i++)
        if (strcmp(ns->name[i], name) == 0) return true;
    return false;
}

/* Sets `key` to the n bytes at v and returns the path of the one value file the set
 * made (a static buffer of four: copy it to keep it). */
static const char *set_filed(backlite_storage *s, const char *cache, const char *key, const uint8_t *v, size_t n) {
    static char paths[4][PATH_MAX + 400];
    static int next;
    names before = listed(cache);
    SET_BYTES(s, key, v, n, NEVER);
    names after = listed(cache);
    char *path = paths[next++ % 4];
    path[0] = '\0';
    for (int i = 0; i < after.n; i++)
        if (!among(&before, after.name[i])) snprintf(path, PATH_MAX + 400, "%s/%s", folder_of(cache), after.name[i]);
    if (path[0] == '\0') {
        fprintf(stderr, "fatal: the set of %s made no value file\n", key);
        abort();
    }
    return path;
}

/* Hard links made behind BackLite's back: a value file linked under a name outside the
 * folder (a backup by `cp -al`, say) keeps that name's bytes when the entry goes, and
 * nothing outside the folder is counted or removed; a value file replaced by a hard
 * link to another entry's file is a miss for its key, never the other's value, and the
 * other entry keeps its value and its file; one replaced by a link to a file of the
 * same bytes reads them, and outlives the other name's removal. */
static void hard_links_behind_backlites_back_change_no_value(void) {
    const char *cache = tmp_path("hard.db");
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s", cache);
    backlite_storage *s = OPEN_SET(path, .max_size = 1u << 30, .file_threshold = THRESHOLD);
    REQUIRE(s != NULL);
    size_t n = 70000;
    uint8_t *va = h_pattern(n, 111), *vb = h_pattern(n, 112), *vc = h_pattern(n, 113);
    char fa[PATH_MAX + 400], fb[PATH_MAX + 400], fc[PATH_MAX + 400], fd_[PATH_MAX + 400];
    snprintf(fa, sizeof fa, "%s", set_filed(s, path, "a", va, n));
    snprintf(fb, sizeof fb, "%s", set_filed(s, path, "b", vb, n));
    snprintf(fc, sizeof fc, "%s", set_filed(s, path, "c", vc, n));
    snprintf(fd_, sizeof fd_, "%s", set_filed(s, path, "d", vc, n)); /* c's bytes */

    /* a's file linked outside the folder. */
    char outside[PATH_MAX];
    snprintf(outside, sizeof outside, "%s", tmp_path("backup.blv"));
    REQUIRE(link(fa, outside) == 0);
    GET_BYTES_EQ(s, "a", va, n);
    /* b's file replaced by a link to c's: b's key misses, c's keeps its value. */
    REQUIRE(unlink(fb) == 0);
    REQUIRE(link(fc, fb) == 0);
    GET_MISSING(s, "b");
    gathered g = {.bytes = malloc(n), .cap = n};
    REQUIRE(g.bytes != NULL);
    CHECK_RC(backlite_storage_get_chunks(s, K("b"), gather, &g, NULL, &err), BACKLITE_RESULT_NOT_FOUND);
    CHECK_EQ(g.calls, 0);
    GET_BYTES_EQ(s, "c", vc, n);
    struct stat st;
    CHECK(lstat(fc, &st) == 0 && st.st_nlink == 1); /* b's name went with b's row */
    /* d's file replaced by a link to c's, the same bytes: d reads them. */
    REQUIRE(unlink(fd_) == 0);
    REQUIRE(link(fc, fd_) == 0);
    GET_BYTES_EQ(s, "d", vc, n);
    backlite_check_report rep;
    CHECK_OK(backlite_storage_check(s, 0, &rep, &err));
    CHECK(rep.healthy == 1 && rep.damaged == 0 && rep.orphan_values == 0 && rep.entries == 3);
    CHECK_OK(backlite_storage_delete(s, K("c"), &err));
    GET_BYTES_EQ(s, "d", vc, n);
    CHECK_OK(backlite_storage_delete(s, K("a"), &err));
    CHECK(lstat(fa, &st) != 0);
    size_t got = 0;
    uint8_t *kept = h_read_file(outside, &got);
    CHECK(kept != NULL && got == n + VALUE_RECORD_LEN && memcmp(kept, va, n) == 0);
    free(kept);
    /* A reader of d open while its other name is removed and d is cleared. */
    backlite_value_reader *r = NULL;
    uint64_t size = 0;
    CHECK_OK(backlite_storage_open_reader(s, K("d"), &r, &size, NULL, &err));
    REQUIRE(r != NULL);
    CHECK_OK(backlite_storage_clear(s, &err));
    CHECK_OK(backlite_storage_vacuum(s, &err));
    size_t at = 0;
    for (;;) {
        size_t len = 0;
        CHECK_OK(backlite_value_reader_read(r, g.bytes + at, n - at < 3333 ? n - at + 7 : 3333, &len, &err));
        if (len == 0) break;
        at += len;
    }
    CHECK(at == n && memcmp(g.bytes, vc, n) == 0);
    backlite_value_reader_free(r);
    CHECK_EQ(value_files(path), 0);
    CHECK(h_exists(outside));
    CHECK_OK(backlite_storage_check(s, 1, &rep, &err));
    CHECK(rep.healthy == 1 && rep.entries == 0);
    backlite_stats stats = STATS(s);
    CHECK(stats.count == 0 && stats.total_size == 0);
    backlite_storage_free(s);
    free(g.bytes);
    free(va);
    free(vb);
    free(vc);
}

/* The threshold changed at reopen, with values stored on its other side, and batches
 * that mix small and large values over them: each value reads back whole wherever it
 * was written, a batch puts each of its values where this handle's threshold says
 * (the later of a key named twice wins, an entry already expired removes the older
 * value), and the files, the counters and check agree with what is left. */
static void thresholds_changed_at_reopen_and_mixed_batches_keep_files_and_counts(void) {
    const char *path = tmp_path("reopen.db");
    const int64_t t = 5000;
    uint8_t *v = h_pattern(300000, 141);
    backlite_storage *s = OPEN_SET(path, .max_size = 1u << 30, .file_threshold = BACKLITE_FILE_THRESHOLD_NEVER);
    REQUIRE(s != NULL);
    SET_BYTES(s, "below", v, t - 1, NEVER);
    SET_BYTES(s, "at", v, t, NEVER);
    SET_BYTES(s, "above", v, t + 1, NEVER);
    SET_BYTES(s, "big", v, 300000, NEVER);
    CHECK_EQ(value_files(path), 0);
    backlite_storage_free(s);

    s = OPEN_SET(path, .max_size = 1u << 30, .file_threshold = t);
    REQUIRE(s != NULL);
    GET_BYTES_EQ(s, "below", v, t - 1);
    GET_BYTES_EQ(s, "at", v, t);
    GET_BYTES_EQ(s, "above", v, t + 1);
    GET_BYTES_EQ(s, "big", v, 300000);
    backlite_entry batch[] = {
        {(const uint8_t *)"below", 5, v + 1, (size_t)t, NEVER},     /* to a file */
        {(const uint8_t *)"at", 2, v + 2, (size_t)t - 1, NEVER},    /* stays in the database */
        {(const uint8_t *)"new", 3, v + 3, 1, NEVER},               /* in its row */
        {(const uint8_t *)"above", 5, v + 4, (size_t)t + 7, 0},      /* expired: removes "above" */
        {(const uint8_t *)"new2", 4, v + 5, (size_t)t + 1, NEVER},  /* a file */
        {(const uint8_t *)"new", 3, v + 6, 300, NEVER},             /* the later "new" */
        {(const uint8_t *)"big", 3, v + 7, 2, NEVER},               /* in its row */
        {(const uint8_t *)"new2", 4, v + 8, (size_t)t + 2, NEVER},  /* the later "new2": a file */
    };
    CHECK_OK(backlite_storage_set_many(s, batch, sizeof batch / sizeof batch[0], &err));
    GET_BYTES_EQ(s, "below", v + 1, t);
    GET_BYTES_EQ(s, "at", v + 2, t - 1);
    GET_BYTES_EQ(s, "new", v + 6, 300);
    GET_MISSING(s, "above");
    GET_BYTES_EQ(s, "new2", v + 8, t + 2);
    GET_BYTES_EQ(s, "big", v + 7, 2);
    CHECK_EQ(value_files(path), 2);
    backlite_stats st = STATS(s);
    uint64_t total = (uint64_t)t + (t - 1) + 300 + (t + 2) + 2;
    CHECK(st.count == 5 && st.total_size == total);
    backlite_check_report rep;
    CHECK_OK(backlite_storage_check(s, 0, &rep, &err));
    CHECK(rep.healthy == 1 && rep.actual_count == 5 && rep.actual_total_size == total);
    backlite_storage_free(s);

    /* Threshold 1: every value of a byte or more in a file, an empty one in its row. */
    s = OPEN_SET(path, .max_size = 1u << 30, .file_threshold = 1);
    REQUIRE(s != NULL);
    backlite_entry ones[] = {
        {(const uint8_t *)"empty", 5, v, 0, NEVER},
        {(const uint8_t *)"one", 3, v + 9, 1, NEVER},
        {(const uint8_t *)"big", 3, v + 10, 2, NEVER}, /* was in its row: now a file */
        {(const uint8_t *)"below", 5, v, 0, NEVER},    /* was a file: now empty, in its row */
    };
    CHECK_OK(backlite_storage_set_many(s, ones, 4, &err));
    GET_BYTES_EQ(s, "empty", v, 0);
    GET_BYTES_EQ(s, "one", v + 9, 1);
    GET_BYTES_EQ(s, "big", v + 10, 2);
    GET_BYTES_EQ(s, "below", v, 0);
    CHECK_EQ(value_files(path), 3); /* "new2", "one", "big" */
    total = (uint64_t)(t - 1) + 300 + (t + 2) + 2 + 1;
    st = STATS(s);
    CHECK(st.count == 7 && st.total_size == total);
    backlite_storage_free(s);

    /* Never again: a batch over every key puts all of them in the database. */
    s = OPEN_SET(path, .max_size = 1u << 30, .file_threshold = BACKLITE_FILE_THRESHOLD_NEVER);
    REQUIRE(s != NULL);
    const char *keys[] = {"empty", "one", "big", "below", "at", "new", "new2"};
    backlite_entry all[7];
    for (int i = 0; i < 7; i++)
        all[i] = (backlite_entry){(const uint8_t *)keys[i], strlen(keys[i]), v + i, 10, NEVER};
    CHECK_OK(backlite_storage_set_many(s, all, 7, &err));
    CHECK_EQ(value_files(path), 0);
    for (int i = 0; i < 7; i++) GET_BYTES_EQ(s, keys[i], v + i, 10);
    st = STATS(s);
    CHECK(st.count == 7 && st.total_size == 70);
    CHECK_OK(backlite_storage_check(s, 1, &rep, &err));
    CHECK(rep.healthy == 1 && rep.repaired == 0 && rep.orphan_values == 0);
    backlite_storage_free(s);
    free(v);
}

/* Every read of `r`, at its end, is an OK read of nothing; then it is freed. */
static void at_its_end_for_good(backlite_value_reader *r) {
    uint8_t spare[100];
    for (int again = 0; again < 3; again++) {
        size_t read = 99;
        CHECK_OK(backlite_value_reader_read(r, spare, sizeof spare, &read, &err));
        CHECK_EQ(read, 0);
    }
    backlite_value_reader_free(r);
}

/* Reads of odd lengths, around the 64 KiB that the read reaching the end holds back,
 * and past the end, of values in a file, copied from the database and pumped from it:
 * every byte in order, each read OK with at most its cap, the end an OK read of 0,
 * again and again. */
static void reads_of_odd_lengths_around_the_tail_read_every_byte_once(void) {
    const size_t lens[] = {65535, 65536, 65537, 131073, 300001};
    const size_t caps[] = {1, 65535, 65536, 65537, 3, 131072, 7};
    for (int place = 0; place < 2; place++) {
        const char *path = tmp_path(place == 0 ? "odd-file.db" : "odd-blob.db");
        int64_t threshold = place == 0 ? THRESHOLD : BACKLITE_FILE_THRESHOLD_NEVER;
        backlite_storage *s = OPEN_SET(path, .max_size = 1u << 30, .file_threshold = threshold);
        REQUIRE(s != NULL);
        for (size_t l = 0; l < sizeof lens / sizeof lens[0]; l++) {
            size_t n = lens[l];
            uint8_t *v = h_pattern(n, 151 + (unsigned)l), *got = malloc(n + 200000);
            REQUIRE(got != NULL);
            SET_BYTES(s, "k", v, n, NEVER);
            for (size_t first = 0; first < sizeof caps / sizeof caps[0]; first++) {
                backlite_value_reader *r = NULL;
                CHECK_OK(backlite_storage_open_reader(s, K("k"), &r, NULL, NULL, &err));
                if (r == NULL) continue;
                size_t at = 0;
                for (size_t i = first;; i++) {
                    size_t cap = caps[i % (sizeof caps / sizeof caps[0])];
                    if (n - at < 70000 && i % 2 == 0) cap = n - at + (i % 3); /* exactly, or past, the rest */
                    size_t read = SIZE_MAX;
                    backlite_error *e = NULL;
                    backlite_result rc = backlite_value_reader_read(r, got + at, cap, &read, &e);
                    backlite_error_free(e);
                    if (rc != BACKLITE_RESULT_OK || read > cap) {
                        h_fail_(__FILE__, __LINE__, "%zu bytes (%d) at %zu, cap %zu: %s, %zu read", n, place, at, cap,
                                h_rc_name(rc), read);
                        break;
                    }
                    if (read == 0 && cap > 0) break;
                    at += read;
                    if (at > n) break;
                }
                CHECK(at == n && memcmp(got, v, n) == 0);
                at_its_end_for_good(r);
            }
            free(got);
            free(v);
        }
        backlite_check_report rep;
        CHECK_OK(backlite_storage_check(s, 0, &rep, &err));
        CHECK_EQ(rep.healthy, 1);
        backlite_storage_free(s);
    }
}

/* The folder of values closed to its user (mode 0) while a handle that has used it is
 * open: a get of a large value is IO, not a miss, and removes nothing; once the folder
 * is open again the value reads back whole. (A handle opened then finds it IO too.) */
static void a_folder_closed_while_open(const char *path) {
    backlite_storage *s = OPEN_SET(path, .max_size = 1u << 30, .file_threshold = THRESHOLD);
    REQUIRE(s != NULL);
    size_t n = 20000;
    uint8_t *v = h_pattern(n, 161);
    SET_BYTES(s, "k", v, n, NEVER);
    GET_BYTES_EQ(s, "k", v, n);
    REQUIRE(chmod(folder_of(path), 0) == 0);
    for (int round = 0; round < 2; round++) {
        backlite_buf b = {0};
        backlite_error *e = NULL;
        backlite_result rc = backlite_storage_get(s, K("k"), &b, NULL, &e);
        printf("# get with the folder closed: %s %s\n", h_rc_name(rc), e ? backlite_error_message(e) : "");
        CHECK_STR_EQ(h_rc_name(rc), h_rc_name(BACKLITE_RESULT_IO));
        backlite_buf_free(&b);
        backlite_error_free(e);
        e = NULL;
        backlite_value_reader *r = NULL;
        rc = backlite_storage_open_reader(s, K("k"), &r, NULL, NULL, &e);
        CHECK_STR_EQ(h_rc_name(rc), h_rc_name(BACKLITE_RESULT_IO));
        backlite_value_reader_free(r);
        backlite_error_free(e);
    }
    CHECK_EQ(STATS(s).count, 1);
    REQUIRE(chmod(folder_of(path), 0700) == 0);
    GET_BYTES_EQ(s, "k", v, n);
    backlite_check_report rep;
    CHECK_OK(backlite_storage_check(s, 0, &rep, &err));
    CHECK(rep.healthy == 1 && rep.entries == 1);
    backlite_storage_free(s);
    free(v);
}

static void a_folder_closed_while_a_handle_is_open_is_io_and_removes_nothing(void) { as_nobody("closed-open", a_folder_closed_while_open); }

int main(void) {
    h_begin();
    RUN(a_socket_in_place_of_a_value_file_is_a_miss_and_check_repairs);
    RUN(a_huge_size_in_the_row_of_a_large_value_is_a_miss);
    RUN(an_orphan_check_cannot_remove_is_reported);
    RUN(hard_links_behind_backlites_back_change_no_value);
    RUN(thresholds_changed_at_reopen_and_mixed_batches_keep_files_and_counts);
    RUN(reads_of_odd_lengths_around_the_tail_read_every_byte_once);
    RUN(a_folder_closed_while_a_handle_is_open_is_io_and_removes_nothing);
    return h_end();
}
