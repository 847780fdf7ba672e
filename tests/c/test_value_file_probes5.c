/*
 * Values kept in files (issue 16), fifth round of probes. Found broken: a cache made
 * at the path of one deleted with rm (or emptied), whose folder of values was left
 * behind, took the old files for its own orphans: its first check said it was
 * unhealthy, and the files held their disk space for an hour. Found sound, kept so
 * that they stay so: a plain file in place of the folder; two processes setting one
 * large key many times leave one file; a reader and a visitor keep the value they
 * started on while another process overwrites, deletes, checks and vacuums; foreign
 * things in the folder, aged, stay through eviction, check, vacuum, clear and the
 * sweep on open; large writes on a full disk (the folder's creation, a batch, a cached
 * call) fail with IO and leave nothing behind.
 */
#include "backlite.h"
#include "harness.h"
#include "small_disk.h"
#include "value_folder.h"

#include <sched.h>
#include <sys/mount.h>
#include <sys/wait.h>

#define THRESHOLD 4096

static backlite_storage *open_threshold(const char *path, uint64_t max_size) {
    return OPEN_SET(path, .max_size = max_size, .file_threshold = THRESHOLD);
}

/* Makes every file in the cache's folder ten minutes old: past a check's grace for
 * files being written, younger than the lazy sweep's hour. */
static void ten_minutes_old(const char *cache) {
    DIR *d = opendir(folder_of(cache));
    REQUIRE(d != NULL);
    struct timespec old[2];
    clock_gettime(CLOCK_REALTIME, &old[0]);
    old[0].tv_sec -= 600;
    old[1] = old[0];
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        if (e->d_name[0] != '.') REQUIRE(utimensat(dirfd(d), e->d_name, old, AT_SYMLINK_NOFOLLOW) == 0);
    closedir(d);
}

/* A cache removed with rm (`emptied`: cut to nothing) while closed, its folder left
 * behind, then made again at its path: none of the old files is read, counted or kept,
 * and the new cache is healthy from its first check. */
static void made_again(bool emptied) {
    const char *path = tmp_path(emptied ? "emptied.db" : "removed.db");
    backlite_storage *s = open_threshold(path, 1u << 20);
    REQUIRE(s != NULL);
    uint8_t *v = h_pattern(300000, 3), *w = h_pattern(300000, 4);
    SET_BYTES(s, "a", v, 300000, NEVER);
    SET_BYTES(s, "b", v, 300000, NEVER);
    SET_BYTES(s, "c", v, 300000, NEVER);
    backlite_storage_free(s);
    CHECK_EQ(value_files(path), 3);
    if (emptied) {
        REQUIRE(truncate(path, 0) == 0);
    } else {
        REQUIRE(unlink(path) == 0);
    }
    char log[PATH_MAX + 8];
    snprintf(log, sizeof log, "%s-wal", path);
    unlink(log);
    snprintf(log, sizeof log, "%s-shm", path);
    unlink(log);
    ten_minutes_old(path);

    s = open_threshold(path, 1u << 20);
    REQUIRE(s != NULL);
    CHECK_EQ(value_files(path), 0);
    GET_MISSING(s, "a");
    backlite_stats st = STATS(s);
    CHECK_EQ(st.count, 0);
    CHECK_EQ(st.total_size, 0);
    backlite_check_report rep;
    CHECK_OK(backlite_storage_check(s, 0, &rep, &err));
    CHECK_EQ(rep.healthy, 1);
    CHECK_EQ(rep.orphan_values, 0);
    /* The limit holds three new ones, evicting nothing. */
    SET_BYTES(s, "a", w, 300000, NEVER);
    SET_BYTES(s, "x", w, 300000, NEVER);
    SET_BYTES(s, "y", w, 300000, NEVER);
    st = STATS(s);
    CHECK_EQ(st.count, 3);
    CHECK_EQ(st.total_size, 900000);
    CHECK_EQ(st.evictions, 0);
    GET_BYTES_EQ(s, "a", w, 300000);
    GET_MISSING(s, "b");
    CHECK_EQ(value_files(path), 3);
    backlite_storage_free(s);
    free(v);
    free(w);
}

static void a_cache_made_at_a_removed_ones_path_owns_none_of_its_files(void) {
    made_again(false);
    made_again(true);
}

/* A plain file in place of the folder: large sets, check and vacuum fail with IO and
 * say so; small values work; the file is never written or removed. */
static void a_plain_file_in_place_of_the_folder_is_left_alone(void) {
    const char *path = tmp_path("plain.db");
    REQUIRE(h_write_file(folder_of(path), "mine", 4));
    backlite_storage *s = open_threshold(path, 1u << 20);
    REQUIRE(s != NULL);
    uint8_t *v = h_pattern(100000, 3);
    CHECK_RC(backlite_storage_set(s, K("big"), v, 100000, NEVER, &err), BACKLITE_RESULT_IO);
    backlite_entry batch[2] = {{(const uint8_t *)"b1", 2, v, 100000, NEVER}, {(const uint8_t *)"b2", 2, v, 10, NEVER}};
    CHECK_RC(backlite_storage_set_many(s, batch, 2, &err), BACKLITE_RESULT_IO);
    GET_MISSING(s, "big");
    GET_MISSING(s, "b2");
    SET(s, "small", "x");
    GET_EQ(s, "small", "x");
    backlite_check_report rep;
    CHECK_RC(backlite_storage_check(s, 1, &rep, &err), BACKLITE_RESULT_IO);
    CHECK_RC(backlite_storage_vacuum(s, &err), BACKLITE_RESULT_IO);
    CHECK_OK(backlite_storage_clear(s, &err));
    GET_MISSING(s, "small");
    backlite_storage_free(s);
    s = open_threshold(path, 1u << 20);
    REQUIRE(s != NULL);
    backlite_storage_free(s);
    size_t n = 0;
    uint8_t *got = h_read_file(folder_of(path), &n);
    CHECK(got != NULL && n == 4 && memcmp(got, "mine", 4) == 0);
    free(got);
    free(v);
}

/* Two processes writing one key, many rounds: one file at the end, no orphan. */
static void two_writers_of_one_key_leave_one_file(void) {
    const char *path = tmp_path("two.db");
    backlite_storage *s = open_threshold(path, 1u << 30);
    REQUIRE(s != NULL);
    backlite_storage_free(s);
    int rounds = h_under_valgrind() ? 20 : 200;
    pid_t kids[2];
    for (int i = 0; i < 2; i++) {
        fflush(NULL);
        kids[i] = fork();
        if (kids[i] == 0) {
            backlite_storage *c = open_threshold(path, 1u << 30);
            if (!c) h_child_exit(3);
            size_t len = 50000 + 1000 * (size_t)i;
            uint8_t *v = malloc(len);
            memset(v, 'a' + i, len);
            for (int r = 0; r < rounds; r++) {
                backlite_error *e = NULL;
                if (backlite_storage_set(c, K("k"), v, len, NEVER, &e) != BACKLITE_RESULT_OK) h_child_exit(4);
                backlite_buf b = {0};
                backlite_result rc = backlite_storage_get(c, K("k"), &b, NULL, &e);
                if (rc != BACKLITE_RESULT_OK) h_child_exit(5);
                for (size_t j = 1; j < b.len; j++)
                    if (b.data[j] != b.data[0]) h_child_exit(6);
                if (b.len != 50000 + 1000 * (size_t)(b.data[0] - 'a')) h_child_exit(7);
                backlite_buf_free(&b);
            }
            free(v);
            backlite_storage_free(c);
            h_child_exit(0);
        }
    }
    for (int i = 0; i < 2; i++) {
        int status = 0;
        waitpid(kids[i], &status, 0);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    s = open_threshold(path, 1u << 30);
    REQUIRE(s != NULL);
    CHECK_EQ(value_files(path), 1);
    CHECK_EQ(temp_files(path), 0);
    backlite_check_report rep;
    CHECK_OK(backlite_storage_check(s, 0, &rep, &err));
    CHECK_EQ(rep.healthy, 1);
    CHECK_EQ(rep.orphan_values, 0);
    backlite_stats st = STATS(s);
    CHECK(st.total_size == 50000 || st.total_size == 51000);
    backlite_storage_free(s);
}

/* A child that, once it reads a byte from `go`, changes "k" every way another process
 * can (overwrites, deletes, check with repair, vacuum), then writes a byte down `done`. */
__attribute__((noreturn)) static void changer(const char *path, int64_t threshold, size_t len, int go, int done) {
    char c;
    if (read(go, &c, 1) != 1) h_child_exit(3);
    backlite_storage *s = OPEN_SET(path, .max_size = 1u << 30, .file_threshold = threshold, .busy_timeout_ms = 300);
    if (!s) h_child_exit(3);
    uint8_t *w = h_pattern(len, 99);
    for (int i = 0; i < 20; i++) {
        w[0] = (uint8_t)i;
        backlite_error *e = NULL;
        if (backlite_storage_set(s, K("k"), w, len, NEVER, &e) != BACKLITE_RESULT_OK) h_child_exit(4);
    }
    backlite_error *e = NULL;
    if (backlite_storage_delete(s, K("k"), &e) != BACKLITE_RESULT_OK) h_child_exit(5);
    backlite_check_report rep;
    if (backlite_storage_check(s, 1, &rep, &e) != BACKLITE_RESULT_OK) h_child_exit(6);
    backlite_result rc = backlite_storage_vacuum(s, &e);
    if (rc != BACKLITE_RESULT_OK && rc != BACKLITE_RESULT_BUSY) h_child_exit(7);
    backlite_error_free(e);
    e = NULL;
    if (backlite_storage_set(s, K("k"), w, len, NEVER, &e) != BACKLITE_RESULT_OK) h_child_exit(8);
    free(w);
    backlite_storage_free(s);
    if (write(done, "x", 1) != 1) h_child_exit(9);
    h_child_exit(0);
}

typedef struct {
    int go, done, calls;
    uint8_t *got;
    size_t at, cap;
} stream_state;

static int32_t collect_and_wait(void *user, const uint8_t *chunk, size_t len) {
    stream_state *st = user;
    if (st->at + len > st->cap) return 1;
    memcpy(st->got + st->at, chunk, len);
    st->at += len;
    if (st->calls++ == 0) {
        char c;
        if (write(st->go, "x", 1) != 1 || read(st->done, &c, 1) != 1) return 1;
    }
    return 0;
}

static void read_across_another_process(int64_t threshold, size_t len, bool reader) {
    const char *path = tmp_path(reader ? "xr.db" : "xc.db");
    backlite_storage *s = OPEN_SET(path, .max_size = 1u << 30, .file_threshold = threshold, .busy_timeout_ms = 300);
    REQUIRE(s != NULL);
    uint8_t *v = h_pattern(len, 7);
    SET_BYTES(s, "k", v, len, NEVER);
    int go[2], done[2];
    REQUIRE(pipe(go) == 0 && pipe(done) == 0);
    fflush(NULL);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        close(go[1]);
        close(done[0]);
        changer(path, threshold, len, go[0], done[1]);
    }
    close(go[0]);
    close(done[1]);
    uint8_t *got = malloc(len + 1);
    size_t at = 0;
    if (reader) {
        backlite_value_reader *r = NULL;
        uint64_t size = 0;
        CHECK_OK(backlite_storage_open_reader(s, K("k"), &r, &size, NULL, &err));
        REQUIRE(r != NULL);
        CHECK_EQ(size, len);
        size_t n = 0;
        CHECK_OK(backlite_value_reader_read(r, got, 100, &n, &err));
        at = n;
        char c;
        REQUIRE(write(go[1], "x", 1) == 1);
        REQUIRE(read(done[0], &c, 1) == 1);
        for (;;) {
            n = 0;
            backlite_error *e = NULL;
            backlite_result rc = backlite_value_reader_read(r, got + at, len + 1 - at, &n, &e);
            if (rc != BACKLITE_RESULT_OK) {
                h_fail_(__FILE__, __LINE__, "read at %zu: %s %s", at, h_rc_name(rc), e ? backlite_error_message(e) : "");
                backlite_error_free(e);
                break;
            }
            if (n == 0) break;
            at += n;
        }
        backlite_value_reader_free(r);
    } else {
        stream_state st = {go[1], done[0], 0, got, 0, len + 1};
        CHECK_OK(backlite_storage_get_chunks(s, K("k"), collect_and_wait, &st, NULL, &err));
        CHECK(st.calls > 1);
        at = st.at;
    }
    CHECK_EQ(CHILD_EXIT_CODE(pid), 0);
    CHECK(at == len && memcmp(got, v, len) == 0);
    close(go[1]);
    close(done[0]);
    backlite_check_report rep;
    CHECK_OK(backlite_storage_check(s, 0, &rep, &err));
    CHECK_EQ(rep.healthy, 1);
    backlite_storage_free(s);
    free(got);
    free(v);
}

static void a_stream_keeps_its_value_across_another_processs_writes(void) {
    read_across_another_process(THRESHOLD, 3000000, true);
    read_across_another_process(THRESHOLD, 3000000, false);
    read_across_another_process(BACKLITE_FILE_THRESHOLD_NEVER, 3000000, true);
    read_across_another_process(BACKLITE_FILE_THRESHOLD_NEVER, 3000000, false);
}

/* Foreign things in the folder, aged: untouched by every remover. */
static void aged_foreign_things_stay_through_every_remover(void) {
    const char *path = tmp_path("foreign.db");
    backlite_storage *s = open_threshold(path, 200000);
    REQUIRE(s != NULL);
    uint8_t *v = h_pattern(60000, 6);
    SET_BYTES(s, "k", v, 60000, NEVER);
    char p[PATH_MAX + 400], q[PATH_MAX + 400];
    const char *dir = folder_of(path);
    snprintf(p, sizeof p, "%s/notes.txt", dir);
    REQUIRE(h_write_file(p, "mine", 4));
    snprintf(p, sizeof p, "%s/v2-0123456789abcdef0123456789abcdef.blv.bak", dir);
    REQUIRE(h_write_file(p, "mine", 4));
    snprintf(p, sizeof p, "%s/v2-0123456789ABCDEF0123456789ABCDEF.blv", dir);
    REQUIRE(h_write_file(p, "mine", 4));
    snprintf(p, sizeof p, "%s/v2-0123456789abcdef0123456789abcdee.blv", dir);
    REQUIRE(mkdir(p, 0700) == 0);
    snprintf(p, sizeof p, "%s/t-0123456789abcdef0123456789abcdef.tmp", dir);
    REQUIRE(mkfifo(p, 0600) == 0);
    snprintf(q, sizeof q, "%s", tmp_path("outside"));
    REQUIRE(h_write_file(q, "mine", 4));
    snprintf(p, sizeof p, "%s/v2-0123456789abcdef0123456789abcded.blv", dir);
    REQUIRE(symlink(q, p) == 0);
    snprintf(p, sizeof p, "%s/.hidden", dir);
    REQUIRE(h_write_file(p, "mine", 4));
    age_folder(path);
    backlite_storage_free(s);
    for (int round = 0; round < 3; round++) {
        s = open_threshold(path, 200000);
        REQUIRE(s != NULL);
        for (int i = 0; i < 8; i++) {
            char key[8];
            snprintf(key, sizeof key, "e%d", i);
            SET_BYTES(s, key, v, 60000, NEVER);
        }
        CHECK(STATS(s).evictions > 0);
        backlite_check_report rep;
        CHECK_OK(backlite_storage_check(s, 1, &rep, &err));
        CHECK_OK(backlite_storage_vacuum(s, &err));
        CHECK_OK(backlite_storage_clear(s, &err));
        backlite_storage_free(s);
    }
    snprintf(p, sizeof p, "%s/notes.txt", dir);
    CHECK(h_exists(p));
    snprintf(p, sizeof p, "%s/v2-0123456789ABCDEF0123456789ABCDEF.blv", dir);
    CHECK(h_exists(p));
    snprintf(p, sizeof p, "%s/v2-0123456789abcdef0123456789abcdef.blv.bak", dir);
    CHECK(h_exists(p));
    snprintf(p, sizeof p, "%s/v2-0123456789abcdef0123456789abcdee.blv", dir);
    CHECK(h_exists(p));
    snprintf(p, sizeof p, "%s/t-0123456789abcdef0123456789abcdef.tmp", dir);
    struct stat sb;
    CHECK(lstat(p, &sb) == 0);
    snprintf(p, sizeof p, "%s/v2-0123456789abcdef0123456789abcded.blv", dir);
    CHECK(lstat(p, &sb) == 0);
    CHECK(h_exists(q));
    snprintf(p, sizeof p, "%s/.hidden", dir);
    CHECK(h_exists(p));
    free(v);
}


static int32_t compute_big(void *ud, backlite_sink *sink) {
    (*(int *)ud)++;
    static uint8_t v[1 << 20];
    return backlite_sink_write(sink, v, sizeof v) == BACKLITE_RESULT_OK ? 0 : 1;
}

/* Names in `dir` that hold "values": the folder, or one being built. */
static int folders_of_values_in(const char *dir) {
    DIR *d = opendir(dir);
    if (d == NULL) return -1;
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) n += strstr(e->d_name, "values") != NULL;
    closedir(d);
    return n;
}

static void full_disk_body(const char *dir) {
    char path[PATH_MAX + 16], filler[PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/cache.db", dir);
    snprintf(filler, sizeof filler, "%s/filler", dir);
    backlite_storage *s = open_threshold(path, 1u << 30);
    if (s == NULL) return;
    SET(s, "small", "x");
    size_t big = 1u << 20;
    uint8_t *v = h_pattern(big + 3, 5);
    /* No folder yet: the first large set, on a full disk, cannot make it. */
    REQUIRE(fill_up(filler, 0) > 0);
    CHECK_RC(backlite_storage_set(s, K("big"), v, big, NEVER, &err), BACKLITE_RESULT_IO);
    CHECK_EQ(folders_of_values_in(dir), 0);
    GET_MISSING(s, "big");
    REQUIRE(unlink(filler) == 0);
    SET_BYTES(s, "big", v, big, NEVER);
    CHECK_EQ(folders_of_values_in(dir), 1);

    /* A batch of three 1 MiB values with room for about two: none of its files stays,
       and the value it would have replaced does. */
    REQUIRE(fill_up(filler, (5u << 20) / 2) > 0);
    backlite_entry batch[3] = {{(const uint8_t *)"b1", 2, v + 1, big, NEVER},
                               {(const uint8_t *)"b2", 2, v + 2, big, NEVER},
                               {(const uint8_t *)"big", 3, v + 3, big, NEVER}};
    CHECK_RC(backlite_storage_set_many(s, batch, 3, &err), BACKLITE_RESULT_IO);
    CHECK_EQ(value_files(path), 1);
    CHECK_EQ(temp_files(path), 0);
    GET_MISSING(s, "b1");
    GET_MISSING(s, "b2");
    GET_BYTES_EQ(s, "big", v, big);

    /* A cached call of a large value on a full disk: computed once, IO, nothing kept. */
    REQUIRE(unlink(filler) == 0);
    REQUIRE(fill_up(filler, 0) > 0);
    int computed = 0;
    backlite_buf b = {0};
    CHECK_RC(backlite_cached_call(s, K("memo"), compute_big, &computed, NULL, NEVER, &b, &err), BACKLITE_RESULT_IO);
    CHECK_EQ(computed, 1);
    backlite_buf_free(&b);
    CHECK_EQ(value_files(path), 1);
    CHECK_EQ(temp_files(path), 0);
    GET_BYTES_EQ(s, "big", v, big);

    /* Space back: it all works, and checks healthy. */
    REQUIRE(unlink(filler) == 0);
    CHECK_OK(backlite_storage_set_many(s, batch, 3, &err));
    GET_BYTES_EQ(s, "big", v + 3, big);
    computed = 0;
    CHECK_OK(backlite_cached_call(s, K("memo"), compute_big, &computed, NULL, NEVER, &b, &err));
    CHECK_EQ(computed, 1);
    backlite_buf_free(&b);
    backlite_check_report rep;
    CHECK_OK(backlite_storage_check(s, 0, &rep, &err));
    CHECK_EQ(rep.healthy, 1);
    CHECK_EQ(value_files(path), 4);
    CHECK_EQ(STATS(s).total_size, 4 * (uint64_t)big + 1);
    backlite_storage_free(s);
    free(v);
    umount(dir);
}

static void large_writes_on_a_full_disk_fail_whole_and_leave_nothing(void) { on_a_tmpfs("full", "8m", full_disk_body); }

int main(void) {
    h_begin();
    RUN(a_cache_made_at_a_removed_ones_path_owns_none_of_its_files);
    RUN(a_plain_file_in_place_of_the_folder_is_left_alone);
    RUN(two_writers_of_one_key_leave_one_file);
    RUN(a_stream_keeps_its_value_across_another_processs_writes);
    RUN(aged_foreign_things_stay_through_every_remover);
    RUN(large_writes_on_a_full_disk_fail_whole_and_leave_nothing);
    return h_end();
}
