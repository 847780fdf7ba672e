/*
 * Values kept in files (issue 16), probed at their edges as a reader of the issue
 * would: the threshold's extremes and a value of exactly its size; thresholds that
 * differ between opens and between two handles on one file; a value over max_size
 * leaves no file; things other than our files put in a value file's place (a FIFO, a
 * folder, links to our files and to files elsewhere, a longer file): each a miss,
 * never a hang, never wrong bytes, and nothing that is not ours removed or followed;
 * the folder removed or replaced while a handle is open; streaming a value while the
 * visitor replaces it, stopping midway, and inline values.
 */
#include "backlite.h"
#include "harness.h"
#include "value_folder.h"

#include <ftw.h>
#include <grp.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/wait.h>

#define THRESHOLD 4096

static backlite_storage *open_threshold(const char *path, uint64_t max_size, int64_t threshold) {
    return OPEN_SET(path, .max_size = max_size, .file_threshold = threshold);
}

/* The path of a regular value file in the cache's folder (not a link). */
static const char *regular_value_file(const char *cache) {
    static char path[PATH_MAX + 400];
    DIR *d = opendir(folder_of(cache));
    if (!d) abort();
    struct dirent *e;
    struct stat st;
    path[0] = '\0';
    while ((e = readdir(d)) != NULL) {
        if (!is_value_file_name(e->d_name)) continue;
        snprintf(path, sizeof path, "%s/%s", folder_of(cache), e->d_name);
        if (lstat(path, &st) == 0 && S_ISREG(st.st_mode)) break;
        path[0] = '\0';
    }
    closedir(d);
    if (path[0] == '\0') abort();
    return path;
}


typedef struct {
    uint8_t *bytes;
    size_t len, cap;
    int calls;
    int stop_at;                /* the call that returns non-zero; 0: none */
    backlite_storage *replace;  /* set "k" to `with` during the first call */
    const uint8_t *with;
    size_t with_len;
    const char *cut;            /* truncate this file to 100 bytes during the first call */
} received;

static int32_t collect(void *user, const uint8_t *chunk, size_t len) {
    received *r = user;
    r->calls++;
    CHECK(len >= 1 && len <= 256 * 1024);
    if (r->len + len <= r->cap) memcpy(r->bytes + r->len, chunk, len);
    r->len += len;
    if (r->replace && r->calls == 1) {
        backlite_error *e = NULL;
        CHECK_RC(backlite_storage_set(r->replace, K("k"), r->with, r->with_len, NEVER, &e),
                 BACKLITE_RESULT_OK);
        backlite_error_free(e);
    }
    if (r->cut && r->calls == 1) CHECK(truncate(r->cut, 100) == 0);
    return r->calls == r->stop_at;
}

static void a_value_of_exactly_the_threshold_goes_to_a_file_one_byte_less_stays(void) {
    const char *path = tmp_path("exact.db");
    backlite_storage *s = open_threshold(path, 1u << 30, THRESHOLD);
    REQUIRE(s != NULL);
    uint8_t *v = h_pattern(THRESHOLD, 1);
    SET_BYTES(s, "below", v, THRESHOLD - 1, NEVER);
    CHECK_EQ(value_files(path), 0);
    SET_BYTES(s, "at", v, THRESHOLD, NEVER);
    CHECK_EQ(value_files(path), 1);
    GET_BYTES_EQ(s, "below", v, THRESHOLD - 1);
    GET_BYTES_EQ(s, "at", v, THRESHOLD);
    CHECK_EQ(STATS(s).total_size, 2 * THRESHOLD - 1);
    free(v);
    backlite_storage_free(s);
}

/* Threshold 1: every value but the empty one in a file; the largest threshold: none. */
static void the_thresholds_extremes(void) {
    const char *path = tmp_path("one.db");
    backlite_storage *s = open_threshold(path, 1u << 30, 1);
    REQUIRE(s != NULL);
    uint8_t *v = h_pattern(1 << 20, 2);
    SET_BYTES(s, "empty", v, 0, NEVER);
    CHECK_EQ(value_files(path), 0);
    SET_BYTES(s, "one", v, 1, NEVER);
    CHECK_EQ(value_files(path), 1);
    GET_BYTES_EQ(s, "empty", v, 0);
    GET_BYTES_EQ(s, "one", v, 1);
    received r = {.bytes = malloc(1), .cap = 1};
    REQUIRE(r.bytes != NULL);
    CHECK_OK(backlite_storage_get_chunks(s, K("empty"), collect, &r, NULL, &err));
    CHECK_EQ(r.calls, 0); /* an empty value makes no call */
    CHECK_OK(backlite_storage_get_chunks(s, K("one"), collect, &r, NULL, &err));
    CHECK(r.calls == 1 && r.len == 1 && r.bytes[0] == v[0]);
    free(r.bytes);
    backlite_storage_free(s);

    path = tmp_path("huge.db");
    s = open_threshold(path, 1u << 30, INT64_MAX);
    REQUIRE(s != NULL);
    SET_BYTES(s, "mib", v, 1 << 20, NEVER);
    CHECK(!h_exists(folder_of(path)));
    GET_BYTES_EQ(s, "mib", v, 1 << 20);
    backlite_storage_free(s);

    backlite_options *o = backlite_options_new();
    REQUIRE(o != NULL);
    CHECK_RESULT(backlite_options_set_file_threshold(o, INT64_MIN), BACKLITE_RESULT_INVALID_ARGUMENT);
    backlite_options_free(o);
    free(v);
}

/* The threshold decides where a new value goes; a value already in a file is read,
 * replaced and removed whatever threshold the handle has, even "never". */
static void handles_with_other_thresholds_share_the_files(void) {
    const char *path = tmp_path("mixed.db");
    backlite_storage *files = open_threshold(path, 1u << 30, THRESHOLD);
    backlite_storage *never = open_threshold(path, 1u << 30, BACKLITE_FILE_THRESHOLD_NEVER);
    REQUIRE(files != NULL && never != NULL);
    size_t n = 300000;
    uint8_t *v = h_pattern(n, 3);
    SET_BYTES(files, "f", v, n, NEVER);
    SET_BYTES(never, "n", v, n, NEVER);
    CHECK_EQ(value_files(path), 1);
    GET_BYTES_EQ(never, "f", v, n);
    GET_BYTES_EQ(files, "n", v, n);
    received r = {.bytes = malloc(n), .cap = n};
    REQUIRE(r.bytes != NULL);
    CHECK_OK(backlite_storage_get_chunks(never, K("f"), collect, &r, NULL, &err));
    CHECK(r.len == n && memcmp(r.bytes, v, n) == 0);
    free(r.bytes);
    CHECK_EQ(STATS(never).total_size, 2 * n);
    SET_BYTES(never, "f", v, n, NEVER); /* now inline: the file goes */
    CHECK_EQ(value_files(path), 0);
    SET_BYTES(files, "f", v, n, NEVER);
    CHECK_EQ(value_files(path), 1);
    CHECK_OK(backlite_storage_delete(never, K("f"), &err));
    CHECK_EQ(value_files(path), 0);
    backlite_storage_free(files);
    backlite_storage_free(never);

    /* Reopened with "never": the file value written before still reads back. */
    backlite_storage *s = open_threshold(path, 1u << 30, THRESHOLD);
    REQUIRE(s != NULL);
    SET_BYTES(s, "f", v, n, NEVER);
    backlite_storage_free(s);
    s = open_threshold(path, 1u << 30, BACKLITE_FILE_THRESHOLD_NEVER);
    REQUIRE(s != NULL);
    GET_BYTES_EQ(s, "f", v, n);
    CHECK_OK(backlite_storage_clear(s, &err));
    CHECK_EQ(value_files(path), 0);
    backlite_storage_free(s);
    free(v);
}

/* A value over max_size is TOO_LARGE: no file is left, and the older value under its
 * key goes with its file. */
static void a_value_over_max_size_leaves_no_file(void) {
    const char *path = tmp_path("too-large.db");
    backlite_storage *s = open_threshold(path, 100000, THRESHOLD);
    REQUIRE(s != NULL);
    uint8_t *v = h_pattern(100001, 4);
    SET_BYTES(s, "k", v, 50000, NEVER);
    CHECK_EQ(value_files(path), 1);
    CHECK_RC(backlite_storage_set(s, K("k"), v, 100001, NEVER, &err), BACKLITE_RESULT_TOO_LARGE);
    CHECK_EQ(value_files(path), 0);
    CHECK_EQ(temp_files(path), 0);
    CHECK_EQ(STATS(s).count, 0);
    CHECK_EQ(STATS(s).total_size, 0);
    backlite_entry e[2] = {
        {.key = (const uint8_t *)"a", .key_len = 1, .value = v, .value_len = 50000, .expiration_ms = NEVER},
        {.key = (const uint8_t *)"b", .key_len = 1, .value = v, .value_len = 100001, .expiration_ms = NEVER},
    };
    CHECK_RC(backlite_storage_set_many(s, e, 2, &err), BACKLITE_RESULT_TOO_LARGE);
    CHECK_EQ(value_files(path), 0);
    CHECK_EQ(temp_files(path), 0);
    free(v);
    backlite_storage_free(s);
}

/* In a child, so that a hang fails the test instead of stalling it: a get of "k"
 * (`check` false), whose result is the exit status, or a check without repair, whose
 * exit status is 10 + the damaged entries it found. */
static int in_child(const char *path, bool check) {
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) abort();
    if (pid == 0) {
        alarm(60); /* a hang, not a slow call: nothing here takes a second */
        backlite_storage *s = open_threshold(path, 1u << 30, THRESHOLD);
        if (!s) _exit(100);
        backlite_buf b = {0};
        backlite_error *e = NULL;
        backlite_check_report rep;
        backlite_result rc = check ? backlite_storage_check(s, 0, &rep, &e)
                                   : backlite_storage_get(s, K("k"), &b, NULL, &e);
        backlite_buf_free(&b);
        backlite_error_free(e);
        backlite_storage_free(s);
        _exit(check && rc == BACKLITE_RESULT_OK ? 10 + (int)rep.damaged : (int)rc);
    }
    int status = 0;
    if (waitpid(pid, &status, 0) != pid) abort();
    if (WIFSIGNALED(status)) {
        h_fail_(__FILE__, __LINE__, "the child died of signal %d (SIGALRM: it hung)", WTERMSIG(status));
        return -1;
    }
    return WEXITSTATUS(status);
}

/* A FIFO in a value file's place: a miss, without waiting for a writer. */
static void a_fifo_in_place_of_a_value_file_is_a_miss_without_a_hang(void) {
    const char *tmp = tmp_path("fifo.db");
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s", tmp);
    backlite_storage *s = open_threshold(path, 1u << 30, THRESHOLD);
    REQUIRE(s != NULL);
    uint8_t *v = h_pattern(50000, 5);
    SET_BYTES(s, "k", v, 50000, NEVER);
    free(v); /* before the children: theirs would be lost at their _exit */
    backlite_storage_free(s);
    char file[PATH_MAX + 400];
    snprintf(file, sizeof file, "%s", only_value_file(path));
    REQUIRE(unlink(file) == 0);
    REQUIRE(mkfifo(file, 0600) == 0);
    CHECK_EQ(in_child(path, true), 10 + 1);
    CHECK_EQ(in_child(path, false), BACKLITE_RESULT_NOT_FOUND);
    s = open_threshold(path, 1u << 30, THRESHOLD);
    REQUIRE(s != NULL);
    CHECK_EQ(STATS(s).count, 0); /* its row went */
    backlite_check_report rep;
    CHECK_OK(backlite_storage_check(s, 1, &rep, &err));
    CHECK_EQ(rep.healthy, 1);
    backlite_storage_free(s);
}

/* A folder in a value file's place: a miss, and the folder and its content stay. */
static void a_folder_in_place_of_a_value_file_is_a_miss_and_stays(void) {
    const char *path = tmp_path("dir.db");
    backlite_storage *s = open_threshold(path, 1u << 30, THRESHOLD);
    REQUIRE(s != NULL);
    uint8_t *v = h_pattern(50000, 6);
    SET_BYTES(s, "k", v, 50000, NEVER);
    char file[PATH_MAX + 400], inner[PATH_MAX + 500];
    snprintf(file, sizeof file, "%s", only_value_file(path));
    REQUIRE(unlink(file) == 0);
    REQUIRE(mkdir(file, 0700) == 0);
    snprintf(inner, sizeof inner, "%s/mine", file);
    REQUIRE(h_write_file(inner, "mine", 4));
    GET_MISSING(s, "k");
    CHECK_EQ(STATS(s).count, 0);
    received r = {.bytes = NULL, .cap = 0};
    SET_BYTES(s, "k2", v, 50000, NEVER);
    CHECK_RC(backlite_storage_get_chunks(s, K("k"), collect, &r, NULL, &err), BACKLITE_RESULT_NOT_FOUND);
    CHECK_EQ(r.calls, 0);
    backlite_check_report rep;
    CHECK_OK(backlite_storage_check(s, 1, &rep, &err));
    CHECK_OK(backlite_storage_clear(s, &err));
    CHECK_OK(backlite_storage_vacuum(s, &err));
    CHECK(h_exists(inner));
    backlite_storage_free(s);
    free(v);
}

/* A link in a value file's place is never followed: not to read a copy of the value
 * kept elsewhere, not to remove what it points to. */
static void a_link_in_place_of_a_value_file_is_never_followed(void) {
    const char *path = tmp_path("link.db");
    backlite_storage *s = open_threshold(path, 1u << 30, THRESHOLD);
    REQUIRE(s != NULL);
    size_t n = 50000;
    uint8_t *v = h_pattern(n, 7);
    SET_BYTES(s, "k", v, n, NEVER);
    char file[PATH_MAX + 400], copy[PATH_MAX + 400];
    snprintf(file, sizeof file, "%s", only_value_file(path));
    /* A copy of the value's file, outside the folder, and a link to it in its place. */
    snprintf(copy, sizeof copy, "%s", tmp_path("outside.blv"));
    REQUIRE(rename(file, copy) == 0);
    REQUIRE(symlink(copy, file) == 0);
    GET_MISSING(s, "k");
    CHECK(h_exists(copy));
    struct stat st;
    /* The name is the row's, and went with it; the unlink took the link itself. */
    CHECK(lstat(file, &st) != 0);
    /* A link to one of our own files, under another of our names. */
    SET_BYTES(s, "k", v, n, NEVER);
    char ours[PATH_MAX + 400], alias[PATH_MAX + 400];
    snprintf(ours, sizeof ours, "%s", regular_value_file(path));
    snprintf(alias, sizeof alias, "%s/v-0123456789abcdef0123456789abcdef.blv", folder_of(path));
    REQUIRE(symlink(ours, alias) == 0);
    CHECK_EQ(value_files(path), 2);
    backlite_check_report rep;
    CHECK_OK(backlite_storage_check(s, 1, &rep, &err));
    CHECK_EQ(rep.healthy, 1);
    GET_BYTES_EQ(s, "k", v, n);
    CHECK_OK(backlite_storage_clear(s, &err));
    CHECK_OK(backlite_storage_vacuum(s, &err));
    CHECK(h_exists(copy));
    size_t got = 0;
    uint8_t *bytes = h_read_file(copy, &got);
    CHECK(bytes != NULL && got == n + VALUE_RECORD_LEN && memcmp(bytes, v, n) == 0);
    free(bytes);
    CHECK(lstat(ours, &st) != 0);                          /* cleared */
    CHECK(lstat(alias, &st) == 0 && S_ISLNK(st.st_mode)); /* not ours: left */
    backlite_storage_free(s);
    free(v);
}

/* A file one byte longer than its row says, or with its record changed: a miss. */
static void a_longer_file_or_a_changed_record_is_a_miss(void) {
    const char *path = tmp_path("longer.db");
    backlite_storage *s = open_threshold(path, 1u << 30, THRESHOLD);
    REQUIRE(s != NULL);
    size_t n = 50000;
    uint8_t *v = h_pattern(n, 8);
    SET_BYTES(s, "k", v, n, NEVER);
    int fd = open(only_value_file(path), O_WRONLY | O_APPEND);
    REQUIRE(fd >= 0);
    REQUIRE(write(fd, "x", 1) == 1);
    close(fd);
    GET_MISSING(s, "k");
    CHECK_EQ(value_files(path), 0); /* ours: removed */
    SET_BYTES(s, "k", v, n, NEVER);
    fd = open(only_value_file(path), O_WRONLY);
    REQUIRE(fd >= 0);
    REQUIRE(pwrite(fd, "X", 1, (off_t)n) == 1); /* the record's magic, after the value */
    close(fd);
    received r = {.bytes = malloc(n), .cap = n};
    REQUIRE(r.bytes != NULL);
    CHECK_RC(backlite_storage_get_chunks(s, K("k"), collect, &r, NULL, &err), BACKLITE_RESULT_NOT_FOUND);
    CHECK_EQ(r.calls, 0);
    CHECK_EQ(value_files(path), 0);
    free(r.bytes);
    backlite_storage_free(s);
    free(v);
}

/* The folder removed while a handle is open: the next large set makes it again. */
static void the_folder_removed_while_open_is_made_again(void) {
    const char *path = tmp_path("removed.db");
    backlite_storage *s = open_threshold(path, 1u << 30, THRESHOLD);
    REQUIRE(s != NULL);
    size_t n = 50000;
    uint8_t *v = h_pattern(n, 9);
    SET_BYTES(s, "k", v, n, NEVER);
    h_rm_rf(folder_of(path));
    GET_MISSING(s, "k");
    backlite_check_report rep;
    CHECK_OK(backlite_storage_check(s, 1, &rep, &err));
    CHECK_EQ(rep.healthy, 1);
    CHECK_OK(backlite_storage_vacuum(s, &err));
    SET_BYTES(s, "k", v, n, NEVER);
    GET_BYTES_EQ(s, "k", v, n);
    CHECK_EQ(value_files(path), 1);
    char marker[PATH_MAX + 100];
    snprintf(marker, sizeof marker, "%s/BACKLITE-VALUES", folder_of(path));
    CHECK(h_exists(marker));
    backlite_storage_free(s);
    free(v);
}

/* The cache file and its folder removed while a handle is open: nothing is made at
 * their path again, a large set is IO (see README, a file deleted while open). */
static void nothing_is_made_at_the_path_of_a_cache_removed_while_open(void) {
    const char *path = tmp_path("gone.db");
    backlite_storage *s = open_threshold(path, 1u << 30, THRESHOLD);
    REQUIRE(s != NULL);
    size_t n = 50000;
    uint8_t *v = h_pattern(n, 16);
    SET_BYTES(s, "k", v, n, NEVER);
    h_rm_rf(folder_of(path));
    REQUIRE(remove_cache_file(path));
    CHECK_RC(backlite_storage_set(s, K("k2"), v, n, NEVER, &err), BACKLITE_RESULT_IO);
    CHECK(!h_exists(folder_of(path)));
    CHECK(!h_exists(path));
    backlite_storage_free(s);
    free(v);
}

/* The folder replaced by a user's file while a handle is open: a miss, large sets fail
 * with IO, the user's file is untouched, small values work on. Replaced by a folder of
 * the user's: check and vacuum refuse to sweep it. */
static void the_folder_replaced_while_open_is_never_used(void) {
    const char *path = tmp_path("replaced.db");
    backlite_storage *s = open_threshold(path, 1u << 30, THRESHOLD);
    REQUIRE(s != NULL);
    size_t n = 50000;
    uint8_t *v = h_pattern(n, 10);
    SET_BYTES(s, "k", v, n, NEVER);
    char kept[PATH_MAX + 400];
    snprintf(kept, sizeof kept, "%s", only_value_file(path));
    h_rm_rf(folder_of(path));
    REQUIRE(h_write_file(folder_of(path), "mine", 4));
    GET_MISSING(s, "k");
    CHECK_RC(backlite_storage_set(s, K("k"), v, n, NEVER, &err), BACKLITE_RESULT_IO);
    SET(s, "small", "works");
    GET_EQ(s, "small", "works");
    size_t got = 0;
    uint8_t *bytes = h_read_file(folder_of(path), &got);
    CHECK(bytes != NULL && got == 4 && memcmp(bytes, "mine", 4) == 0);
    free(bytes);
    REQUIRE(unlink(folder_of(path)) == 0);

    /* A folder of the user's in its place, holding an old file under the name of the
     * value that was removed: check and vacuum refuse to sweep it, and leave it be. */
    REQUIRE(mkdir(folder_of(path), 0700) == 0);
    REQUIRE(h_write_file(kept, "mine", 4));
    age_folder(path);
    backlite_check_report rep;
    CHECK_RC(backlite_storage_check(s, 1, &rep, &err), BACKLITE_RESULT_IO);
    CHECK_RC(backlite_storage_vacuum(s, &err), BACKLITE_RESULT_IO);
    bytes = h_read_file(kept, &got);
    CHECK(bytes != NULL && got == 4 && memcmp(bytes, "mine", 4) == 0);
    free(bytes);
    backlite_storage_free(s);
    free(v);
}

/* A visitor that stops midway: CALLBACK_FAILED, the entry stays whole. One that
 * replaces the value midway still receives the value it began, whole. */
static void streaming_stopped_or_replaced_midway(void) {
    const char *path = tmp_path("stream.db");
    backlite_storage *s = open_threshold(path, 1u << 30, THRESHOLD);
    REQUIRE(s != NULL);
    size_t n = 1 << 20;
    uint8_t *a = h_pattern(n, 11), *b = h_pattern(n, 12);
    SET_BYTES(s, "k", a, n, NEVER);
    received r = {.bytes = malloc(n), .cap = n, .stop_at = 2};
    REQUIRE(r.bytes != NULL);
    CHECK_RC(backlite_storage_get_chunks(s, K("k"), collect, &r, NULL, &err),
             BACKLITE_RESULT_CALLBACK_FAILED);
    CHECK_EQ(r.calls, 2);
    GET_BYTES_EQ(s, "k", a, n);

    r = (received){.bytes = r.bytes, .cap = n, .replace = s, .with = b, .with_len = n};
    CHECK_OK(backlite_storage_get_chunks(s, K("k"), collect, &r, NULL, &err));
    CHECK(r.len == n && memcmp(r.bytes, a, n) == 0);
    GET_BYTES_EQ(s, "k", b, n);
    CHECK_EQ(value_files(path), 1);

    /* The file cut short while it streams: NOT_FOUND, and never the whole value. */
    char file[PATH_MAX + 400];
    snprintf(file, sizeof file, "%s", only_value_file(path));
    r = (received){.bytes = r.bytes, .cap = n, .cut = file};
    CHECK_RC(backlite_storage_get_chunks(s, K("k"), collect, &r, NULL, &err), BACKLITE_RESULT_NOT_FOUND);
    CHECK(r.calls >= 1 && r.len < n);
    GET_MISSING(s, "k");
    CHECK_EQ(value_files(path), 0);

    /* Inline values stream too, and a stop there is the same. */
    SET_BYTES(s, "small", a, 100, NEVER);
    r = (received){.bytes = r.bytes, .cap = n};
    CHECK_OK(backlite_storage_get_chunks(s, K("small"), collect, &r, NULL, &err));
    CHECK(r.calls == 1 && r.len == 100 && memcmp(r.bytes, a, 100) == 0);
    r = (received){.bytes = r.bytes, .cap = n, .stop_at = 1};
    CHECK_RC(backlite_storage_get_chunks(s, K("small"), collect, &r, NULL, &err),
             BACKLITE_RESULT_CALLBACK_FAILED);
    free(r.bytes);
    free(a);
    free(b);
    backlite_storage_free(s);
}

static backlite_storage *open_8_values(const char *path) { return open_threshold(path, 8u << 18, THRESHOLD); }

/* 256 KiB values under ever new keys into a cache that holds 8: every set evicts. */
static const value_writer evicting_sets = {open_8_values, 1 << 18, 0};

/* SIGKILL while sets evict values kept in files: no entry without its whole file, and
 * after check with repair no orphan. */
static void a_writer_killed_while_evicting_leaves_no_entry_without_its_file(void) {
    const char *tmp = tmp_path("evicting.db");
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s", tmp);
    for (int round = 0; round < 4; round++) {
        REQUIRE(WRITER_KILLED_AFTER(evicting_sets, path, 10 + round));

        backlite_storage *s = open_8_values(path);
        REQUIRE(s != NULL);
        CHECK_REPAIRED(s, path);
        backlite_stats st = STATS(s);
        CHECK_EQ(st.total_size, st.count << 18);
        CHECK(st.total_size <= 8u << 18);
        backlite_storage_free(s);
    }
}

#define NOBODY 65534

static int give_to_nobody(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    return lchown(p, NOBODY, NOBODY);
}

/* The get of a value file by user nobody, in a cache of nobody's: the value file
 * itself unreadable (mode 000), or (`folder_closed`) the folder still root's, 0700. */
static void get_as_nobody(const char *name, bool folder_closed) {
    const char *tmp = tmp_path(name);
    char dir[PATH_MAX - 64], path[PATH_MAX], item[PATH_MAX + 400];
    snprintf(dir, sizeof dir, "%s", tmp);
    snprintf(path, sizeof path, "%s/cache.db", dir);
    REQUIRE(chmod(h_tmp_root(), 0755) == 0);
    REQUIRE(mkdir(dir, 0700) == 0);
    backlite_storage *s = open_threshold(path, 1u << 30, THRESHOLD);
    REQUIRE(s != NULL);
    uint8_t *v = h_pattern(50000, 13);
    SET_BYTES(s, "k", v, 50000, NEVER);
    free(v);
    backlite_storage_free(s);
    snprintf(item, sizeof item, "%s", only_value_file(path));
    if (!folder_closed) REQUIRE(chmod(item, 0) == 0);
    if (geteuid() == 0) REQUIRE(nftw(dir, give_to_nobody, 8, FTW_PHYS) == 0);
    if (folder_closed && geteuid() != 0) SKIP("needs root, to give the folder away");
    if (folder_closed) REQUIRE(chown(folder_of(path), 0, 0) == 0);
    fflush(stdout);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        if (geteuid() == 0 && (setgroups(0, NULL) != 0 || setgid(NOBODY) != 0 || setuid(NOBODY) != 0))
            _exit(77);
        backlite_storage *r = NULL;
        backlite_error *e = NULL;
        if (backlite_storage_open(path, NULL, &r, &e) != BACKLITE_RESULT_OK) _exit(100);
        backlite_buf b = {0};
        backlite_result rc = backlite_storage_get(r, K("k"), &b, NULL, &e);
        if (rc != BACKLITE_RESULT_NOT_FOUND && e) printf("# get: %s\n", backlite_error_message(e));
        /* The message says why. */
        if (rc == BACKLITE_RESULT_IO && !strstr(backlite_error_message(e), "Permission denied")) _exit(99);
        backlite_storage_free(r);
        _exit(rc);
    }
    int code = CHILD_EXIT_CODE(pid);
    REQUIRE(code >= 0);
    if (code == 77) {
        SKIP("cannot drop to user nobody");
    } else if (!folder_closed) {
        CHECK_STR_EQ(h_rc_name((backlite_result)code), h_rc_name(BACKLITE_RESULT_NOT_FOUND));
        CHECK_EQ(value_files(path), 0); /* ours: removed with its row */
    } else {
        /* Not a miss: nothing says the value is damaged, so its entry stays. */
        CHECK_STR_EQ(h_rc_name((backlite_result)code), h_rc_name(BACKLITE_RESULT_IO));
        CHECK_EQ(value_files(path), 1);
        backlite_storage *s2 = open_threshold(path, 1u << 30, THRESHOLD);
        REQUIRE(s2 != NULL);
        CHECK_EQ(STATS(s2).count, 1);
        backlite_storage_free(s2);
    }
}

/* A value file its reader may not read: a miss, and the file, which is ours, goes
 * with its row. */
static void an_unreadable_value_file_is_a_miss_and_goes(void) { get_as_nobody("unreadable", false); }

/* A folder its reader may not enter: IO, and no entry is removed for it. */
static void a_folder_its_reader_cannot_enter_is_io_and_removes_nothing(void) {
    get_as_nobody("closed", true);
}

/* The checks of a cache on a read-only mount, in the child: its file values read back
 * whole through get and get_chunks; a damaged one is a miss (its row cannot go);
 * writes are IO; check without repair works; nothing changes on disk. */
static void serves_file_values_read_only(const char *path, const uint8_t *v, size_t n) {
    backlite_storage *s = open_threshold(path, 1u << 30, THRESHOLD);
    if (s == NULL) return;
    GET_BYTES_EQ(s, "k", v, n);
    received r = {.bytes = malloc(n), .cap = n};
    REQUIRE(r.bytes != NULL);
    CHECK_OK(backlite_storage_get_chunks(s, K("k"), collect, &r, NULL, &err));
    CHECK(r.len == n && memcmp(r.bytes, v, n) == 0);
    free(r.bytes);
    GET_MISSING(s, "damaged");
    GET_MISSING(s, "damaged"); /* still a miss, never an error */
    CHECK_EQ(STATS(s).count, 2);
    CHECK_RC(backlite_storage_set(s, K("new"), v, n, NEVER, &err), BACKLITE_RESULT_IO);
    backlite_check_report rep;
    CHECK_OK(backlite_storage_check(s, 0, &rep, &err));
    CHECK_EQ(rep.damaged, 1);
    backlite_storage_free(s);
}

static void a_read_only_mounted_cache_serves_its_file_values(void) {
    const char *tmp = tmp_path("ro-mount");
    char dir[PATH_MAX - 64], path[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", tmp);
    snprintf(path, sizeof path, "%s/cache.db", dir);
    REQUIRE(mkdir(dir, 0700) == 0);
    size_t n = 300000;
    uint8_t *v = h_pattern(n, 15);
    backlite_storage *s = open_threshold(path, 1u << 30, THRESHOLD);
    REQUIRE(s != NULL);
    SET_BYTES(s, "k", v, n, NEVER);
    SET_BYTES(s, "damaged", v, n, NEVER);
    backlite_storage_free(s);
    /* "damaged"'s file is the newer: flip its last byte. */
    char file[PATH_MAX + 400];
    DIR *d = opendir(folder_of(path));
    REQUIRE(d != NULL);
    struct dirent *e;
    struct stat st;
    time_t newest = 0;
    long newest_ns = -1;
    while ((e = readdir(d)) != NULL) {
        char p[PATH_MAX + 400];
        if (!is_value_file_name(e->d_name)) continue;
        snprintf(p, sizeof p, "%s/%s", folder_of(path), e->d_name);
        REQUIRE(stat(p, &st) == 0);
        if (st.st_mtim.tv_sec > newest || (st.st_mtim.tv_sec == newest && st.st_mtim.tv_nsec > newest_ns)) {
            newest = st.st_mtim.tv_sec;
            newest_ns = st.st_mtim.tv_nsec;
            snprintf(file, sizeof file, "%s", p);
        }
    }
    closedir(d);
    int fd = open(file, O_RDWR);
    REQUIRE(fd >= 0);
    uint8_t last;
    REQUIRE(pread(fd, &last, 1, n - 1) == 1);
    last ^= 1;
    REQUIRE(pwrite(fd, &last, 1, n - 1) == 1);
    close(fd);
    fflush(stdout);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        /* The cache file and its values' folder; the folder they are in stays
         * writable, as for any read-only cache file (SQLite makes its -shm there). */
        const char *ro[] = {path, folder_of(path)};
        if (unshare(CLONE_NEWNS) != 0 || mount("none", "/", "none", MS_REC | MS_PRIVATE, NULL) != 0)
            _exit(77);
        for (int i = 0; i < 2; i++)
            if (mount(ro[i], ro[i], "none", MS_BIND, NULL) != 0 ||
                mount("none", ro[i], "none", MS_REMOUNT | MS_BIND | MS_RDONLY, NULL) != 0)
                _exit(77);
        int before = atomic_load(&h_st()->failures);
        serves_file_values_read_only(path, v, n);
        _exit(atomic_load(&h_st()->failures) == before ? 0 : 1);
    }
    int code = CHILD_EXIT_CODE(pid);
    if (code == 77) SKIP("cannot bind-mount read-only here (needs root / CAP_SYS_ADMIN)");
    CHECK_EQ(code, 0);
    CHECK_EQ(value_files(path), 2); /* nothing was removed */
    free(v);
}

int main(void) {
    h_begin();
    RUN(a_value_of_exactly_the_threshold_goes_to_a_file_one_byte_less_stays);
    RUN(the_thresholds_extremes);
    RUN(handles_with_other_thresholds_share_the_files);
    RUN(a_value_over_max_size_leaves_no_file);
    RUN(a_fifo_in_place_of_a_value_file_is_a_miss_without_a_hang);
    RUN(a_folder_in_place_of_a_value_file_is_a_miss_and_stays);
    RUN(a_link_in_place_of_a_value_file_is_never_followed);
    RUN(a_longer_file_or_a_changed_record_is_a_miss);
    RUN(the_folder_removed_while_open_is_made_again);
    RUN(nothing_is_made_at_the_path_of_a_cache_removed_while_open);
    RUN(the_folder_replaced_while_open_is_never_used);
    RUN(streaming_stopped_or_replaced_midway);
    RUN(an_unreadable_value_file_is_a_miss_and_goes);
    RUN(a_folder_its_reader_cannot_enter_is_io_and_removes_nothing);
    RUN(a_read_only_mounted_cache_serves_its_file_values);
    RUN(a_writer_killed_while_evicting_leaves_no_entry_without_its_file);
    return h_end();
}
