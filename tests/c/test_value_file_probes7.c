/*
 * Values kept in files (issue 16), seventh round of probes, kept as tests; all passed
 * as they were. On a full disk (a tmpfs filled to its last block) every kind of read
 * serves file and database values whole, through a handle open before, one opened on
 * the full disk and one opened with no other handle left; every write there (set,
 * delete, check with repair, vacuum, clear) is IO or done whole, and once the space is
 * back the cache checks healthy with exactly its files. While four processes overwrite
 * one key, two keeping it in files and two in the database, contains and cached_call
 * never miss (nor compute), and get, get_chunks and a reader never miss nor mix. A
 * lease taken over before its holder fulfils with a large value leaves no file of it.
 * Under a file size limit (EFBIG), a large set or batch past it is IO and leaves no
 * file, and one under it is stored. The one finding: a folder of values another user
 * made at the cache's place, marker and all, was used (its files read as values and
 * removed as orphans); it is now refused like a folder without the marker.
 */
#include "backlite.h"
#include "harness.h"
#include "small_disk.h"
#include "value_folder.h"
#include "churn.h"

#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <grp.h>
#include <sys/wait.h>

#define THRESHOLD 65536

#define BIG 300000
#define MID 30000

typedef struct {
    const uint8_t *want;
    size_t at, wrong;
} seen;

static int32_t compare(void *user, const uint8_t *chunk, size_t len) {
    seen *s = user;
    if (memcmp(chunk, s->want + s->at, len) != 0) s->wrong++;
    s->at += len;
    return 0;
}

/* Every read of `key` gives `v` whole: get, contains, chunks, reader. */
static void reads_whole(backlite_storage *s, const char *key, const uint8_t *v, size_t n) {
    GET_BYTES_EQ(s, key, v, n);
    CHECK(HAS(s, key));
    seen st = {v, 0, 0};
    CHECK_OK(backlite_storage_get_chunks(s, K(key), compare, &st, NULL, &err));
    CHECK_EQ(st.at, n);
    CHECK_EQ(st.wrong, 0);
    backlite_value_reader *r = NULL;
    CHECK_OK(backlite_storage_open_reader(s, K(key), &r, NULL, NULL, &err));
    if (r != NULL) {
        uint8_t *got = malloc(n + 1);
        size_t at = 0, k = 0;
        while (backlite_value_reader_read(r, got + at, n + 1 - at, &k, NULL) == BACKLITE_RESULT_OK && k > 0) at += k;
        CHECK(at == n && memcmp(got, v, n) == 0);
        free(got);
        backlite_value_reader_free(r);
    }
}

static void full_disk_reads_body(const char *dir) {
    char path[PATH_MAX + 16], filler[PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/cache.db", dir);
    snprintf(filler, sizeof filler, "%s/filler", dir);
    backlite_storage *a = OPEN_SET(path, .max_size = 1500000, .file_threshold = THRESHOLD);
    REQUIRE(a != NULL);
    uint8_t *f1 = h_pattern(BIG, 1), *f2 = h_pattern(BIG, 2), *d1 = h_pattern(MID, 3), *f3 = h_pattern(BIG, 4);
    SET_BYTES(a, "f1", f1, BIG, NEVER);
    SET_BYTES(a, "f2", f2, BIG, NEVER);
    SET_BYTES(a, "d1", d1, MID, NEVER);
    SET(a, "small", "x");
    REQUIRE(fill_up(filler, 0) > 0);
    /* Another handle, another process's view: opened on the full disk, every read whole. */
    backlite_storage *b = OPEN_SET(path, .max_size = 1500000, .file_threshold = THRESHOLD);
    REQUIRE(b != NULL);
    for (int round = 0; round < 2; round++) {
        backlite_storage *s = round == 0 ? a : b;
        reads_whole(s, "f1", f1, BIG);
        reads_whole(s, "f2", f2, BIG);
        reads_whole(s, "d1", d1, MID);
        GET_EQ(s, "small", "x");
        backlite_check_report rep;
        CHECK_OK(backlite_storage_check(s, 0, &rep, &err));
        CHECK_EQ(rep.healthy, 1);
    }
    /* Writes on the full disk: IO or done, never half. */
    backlite_error *err = NULL;
    backlite_result rc = backlite_storage_set(b, K("f3"), f3, BIG, NEVER, &err);
    printf("# set f3 on a full disk: %s\n", h_rc_name(rc));
    backlite_error_free(err);
    err = NULL;
    rc = backlite_storage_delete(b, K("f1"), &err);
    printf("# delete f1 on a full disk: %s\n", h_rc_name(rc));
    backlite_error_free(err);
    err = NULL;
    bool f1_gone = rc == BACKLITE_RESULT_OK;
    backlite_check_report rep0;
    rc = backlite_storage_check(b, 1, &rep0, &err);
    printf("# check with repair on a full disk: %s healthy %d\n", h_rc_name(rc), rep0.healthy);
    backlite_error_free(err);
    err = NULL;
    rc = backlite_storage_vacuum(b, &err);
    printf("# vacuum on a full disk: %s\n", h_rc_name(rc));
    backlite_error_free(err);
    err = NULL;
    /* A clear on the full disk is IO and keeps every value, or clears them all. */
    rc = backlite_storage_clear(b, &err);
    printf("# clear on a full disk: %s\n", h_rc_name(rc));
    backlite_error_free(err);
    err = NULL;
    if (rc == BACKLITE_RESULT_OK) {
        GET_MISSING(b, "f2");
        CHECK_EQ(value_files(path), 0);
        CHECK_EQ(STATS(b).total_size, 0);
        backlite_storage_free(b);
        backlite_storage_free(a);
        REQUIRE(unlink(filler) == 0);
        free(f1);
        free(f2);
        free(f3);
        free(d1);
        return;
    }
    rc = backlite_storage_set(b, K("small"), (const uint8_t *)"yy", 2, NEVER, &err);
    printf("# set small on a full disk: %s\n", h_rc_name(rc));
    backlite_error_free(err);
    err = NULL;
    for (int round = 0; round < 2; round++) {
        backlite_storage *s = round == 0 ? a : b;
        if (f1_gone) GET_MISSING(s, "f1");
        else reads_whole(s, "f1", f1, BIG);
        reads_whole(s, "f2", f2, BIG);
        reads_whole(s, "d1", d1, MID);
    }
    backlite_storage_free(b);
    backlite_storage_free(a);
    /* All closed on the full disk (the closes gave the log's space back: filled
       again), then opened again: IO, or every value whole. */
    REQUIRE(unlink(filler) == 0);
    REQUIRE(fill_up(filler, 0) > 0);
    a = NULL;
    backlite_options *o = backlite_options_new();
    REQUIRE(o != NULL && backlite_options_set_file_threshold(o, THRESHOLD) == BACKLITE_RESULT_OK);
    rc = backlite_storage_open(path, o, &a, &err);
    backlite_options_free(o);
    printf("# open on a full disk with no handle open: %s\n", h_rc_name(rc));
    CHECK(rc == BACKLITE_RESULT_OK || rc == BACKLITE_RESULT_IO);
    backlite_error_free(err);
    err = NULL;
    if (a != NULL) {
        if (!f1_gone) reads_whole(a, "f1", f1, BIG);
        reads_whole(a, "f2", f2, BIG);
        backlite_storage_free(a);
    }
    REQUIRE(unlink(filler) == 0);
    a = OPEN_SET(path, .max_size = 1500000, .file_threshold = THRESHOLD);
    REQUIRE(a != NULL);
    if (!f1_gone) reads_whole(a, "f1", f1, BIG);
    reads_whole(a, "f2", f2, BIG);
    reads_whole(a, "d1", d1, MID);
    backlite_check_report rep;
    CHECK_OK(backlite_storage_check(a, 0, &rep, &err));
    CHECK_EQ(rep.healthy, 1);
    CHECK_EQ(value_files(path), f1_gone ? 1 : 2);
    CHECK_EQ(temp_files(path), 0);
    SET_BYTES(a, "f3", f3, BIG, NEVER);
    reads_whole(a, "f3", f3, BIG);
    CHECK_OK(backlite_storage_check(a, 0, &rep, &err));
    CHECK_EQ(rep.healthy, 1);
    backlite_storage_free(a);
    free(f1);
    free(f2);
    free(f3);
    free(d1);
}

static void reads_on_a_full_disk_serve_every_value_whole(void) { on_a_tmpfs("fullr", "8m", full_disk_reads_body); }


/* ---- churn across thresholds: contains and cached_call never miss either ---- */
#define CLEN 300000

static int32_t compute_wrong(void *ud, backlite_sink *sink) {
    (*(int *)ud)++;
    static uint8_t v[CLEN];
    memset(v, 'X', sizeof v);
    return backlite_sink_write(sink, v, sizeof v) == BACKLITE_RESULT_OK ? 0 : 1;
}

static void churn(int64_t reader_threshold) {
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s", tmp_path("churn.db"));
    backlite_storage *s = OPEN_SET(path, .max_size = 1u << 30, .file_threshold = reader_threshold, .busy_timeout_ms = 20000);
    REQUIRE(s != NULL);
    uint8_t *v = malloc(CLEN);
    memset(v, 'S', CLEN);
    SET_BYTES(s, "same", v, CLEN, NEVER);
    int times = h_under_valgrind() ? 20 : 300;
    fflush(NULL);
    pid_t pids[4];
    for (int c = 0; c < 4; c++) {
        pids[c] = fork();
        REQUIRE(pids[c] >= 0);
        if (pids[c] == 0) churn_overwrite(path, c < 2 ? 4096 : BACKLITE_FILE_THRESHOLD_NEVER, CLEN, c % 2 ? 'B' : 'A', times);
    }
    int running = 4, reads = 0, misses[5] = {0}, wrong = 0, failed = 0, computed = 0;
    uint8_t *buf = malloc(CLEN + 1);
    while (running > 0) {
        backlite_error *e = NULL;
        backlite_result rc;
        int kind = reads % 5;
        switch (kind) {
        case 0: {
            rc = backlite_storage_contains(s, K("same"), &e);
            break;
        }
        case 1: {
            backlite_buf b = {0};
            rc = backlite_cached_call(s, K("same"), compute_wrong, &computed, NULL, NEVER, &b, &e);
            if (rc == BACKLITE_RESULT_OK && !churn_whole(b.data, b.len, CLEN)) wrong++;
            backlite_buf_free(&b);
            break;
        }
        case 2: {
            backlite_buf b = {0};
            rc = backlite_storage_get(s, K("same"), &b, NULL, &e);
            if (rc == BACKLITE_RESULT_OK && !churn_whole(b.data, b.len, CLEN)) wrong++;
            backlite_buf_free(&b);
            break;
        }
        case 3: {
            gathered g = {buf, 0, CLEN};
            rc = backlite_storage_get_chunks(s, K("same"), gather, &g, NULL, &e);
            if (rc == BACKLITE_RESULT_OK && !churn_whole(g.bytes, g.len, CLEN)) wrong++;
            break;
        }
        default: {
            backlite_value_reader *r = NULL;
            rc = backlite_storage_open_reader(s, K("same"), &r, NULL, NULL, &e);
            size_t at = 0, n = 1;
            while (rc == BACKLITE_RESULT_OK && n > 0) {
                rc = backlite_value_reader_read(r, buf + at, CLEN + 1 - at, &n, &e);
                if (rc == BACKLITE_RESULT_OK) at += n;
            }
            if (rc == BACKLITE_RESULT_OK && !churn_whole(buf, at, CLEN)) wrong++;
            backlite_value_reader_free(r);
        }
        }
        reads++;
        if (rc == BACKLITE_RESULT_NOT_FOUND) misses[kind]++;
        else if (rc != BACKLITE_RESULT_OK) {
            if (failed++ == 0) fprintf(stderr, "# read %d (%d): %s %s\n", reads, kind, h_rc_name(rc), e ? backlite_error_message(e) : "");
        }
        backlite_error_free(e);
        for (int c = 0; c < 4; c++) {
            int status = 0;
            if (pids[c] > 0 && waitpid(pids[c], &status, WNOHANG) == pids[c]) {
                CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
                pids[c] = 0;
                running--;
            }
        }
    }
    printf("# %d reads: misses contains %d cached %d get %d chunks %d reader %d; %d wrong, %d failed, %d computed\n",
           reads, misses[0], misses[1], misses[2], misses[3], misses[4], wrong, failed, computed);
    CHECK_EQ(wrong, 0);
    CHECK_EQ(misses[0] + misses[1] + misses[2] + misses[3] + misses[4], 0);
    CHECK_EQ(failed, 0);
    CHECK_EQ(computed, 0);
    backlite_check_report rep;
    CHECK_OK(backlite_storage_check(s, 1, &rep, &err));
    CHECK_EQ(rep.healthy, 1);
    CHECK(value_files(path) <= 1);
    backlite_storage_free(s);
    free(buf);
    free(v);
}

static void every_read_of_a_key_churned_across_thresholds_is_a_whole_hit(void) {
    churn(4096);
    churn(BACKLITE_FILE_THRESHOLD_NEVER);
}

/* A lease taken over before its holder fulfils with a large value: LEASE_LOST, and no
 * file of it stays; the new holder's value is the one kept. */
static void a_lost_lease_fulfilled_with_a_large_value_leaves_no_file(void) {
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s", tmp_path("lease.db"));
    backlite_storage *a = OPEN_SET(path, .max_size = 1u << 30, .file_threshold = 4096);
    backlite_storage *b = OPEN_SET(path, .max_size = 1u << 30, .file_threshold = 4096);
    REQUIRE(a != NULL && b != NULL);
    uint8_t *va = h_pattern(200000, 1), *vb = h_pattern(200000, 2);
    backlite_lease *la = NULL, *lb = NULL;
    backlite_buf buf = {0};
    CHECK_RC(backlite_lease_try_acquire(a, K("k"), 30, &buf, &la, &err), BACKLITE_RESULT_NOT_FOUND);
    REQUIRE(la != NULL);
    usleep(100000);
    CHECK_RC(backlite_lease_try_acquire(b, K("k"), 60000, &buf, &lb, &err), BACKLITE_RESULT_NOT_FOUND);
    REQUIRE(lb != NULL);
    CHECK_RC(backlite_lease_fulfill(la, va, 200000, NEVER, &err), BACKLITE_RESULT_LEASE_LOST);
    CHECK_EQ(value_files(path), 0);
    CHECK_OK(backlite_lease_fulfill(lb, vb, 200000, NEVER, &err));
    CHECK_EQ(value_files(path), 1);
    GET_BYTES_EQ(a, "k", vb, 200000);
    /* And a lease lost to an overwrite by a plain set meanwhile. */
    CHECK_RC(backlite_lease_try_acquire(a, K("j"), 60000, &buf, &la, &err), BACKLITE_RESULT_NOT_FOUND);
    SET_BYTES(b, "j", vb, 200000, NEVER);
    backlite_error *err = NULL;
    backlite_result rc = backlite_lease_fulfill(la, va, 200000, NEVER, &err);
    backlite_error_free(err);
    err = NULL;
    printf("# fulfil after a set of its key: %s\n", h_rc_name(rc));
    CHECK_EQ(value_files(path), 2);
    backlite_check_report rep;
    CHECK_OK(backlite_storage_check(a, 0, &rep, &err));
    CHECK_EQ(rep.healthy, 1);
    backlite_storage_free(a);
    backlite_storage_free(b);
    free(va);
    free(vb);
}

/* A file size limit (RLIMIT_FSIZE, SIGXFSZ ignored: writes past it fail EFBIG), as a
 * quota or a container's limit gives: a large set past it is IO and leaves no file,
 * one under it is stored, and the values stay whole. */
static void file_size_limit_body(const char *path) {
    backlite_storage *s = OPEN_SET(path, .max_size = 1u << 30, .file_threshold = THRESHOLD);
    REQUIRE(s != NULL);
    uint8_t *v = h_pattern(3u << 20, 8);
    SET_BYTES(s, "before", v, 600000, NEVER);
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit lim;
    REQUIRE(getrlimit(RLIMIT_FSIZE, &lim) == 0);
    rlim_t hard = lim.rlim_max;
    lim.rlim_cur = 1u << 20;
    REQUIRE(setrlimit(RLIMIT_FSIZE, &lim) == 0);
    backlite_error *err = NULL;
    CHECK_RC(backlite_storage_set(s, K("big"), v, 3u << 20, NEVER, &err), BACKLITE_RESULT_IO);
    backlite_error_free(err);
    err = NULL;
    backlite_entry batch[2] = {{(const uint8_t *)"b1", 2, v, 500000, NEVER},
                               {(const uint8_t *)"before", 6, v + 1, 2u << 20, NEVER}};
    CHECK_RC(backlite_storage_set_many(s, batch, 2, &err), BACKLITE_RESULT_IO);
    backlite_error_free(err);
    err = NULL;
    CHECK_EQ(value_files(path), 1);
    CHECK_EQ(temp_files(path), 0);
    GET_MISSING(s, "big");
    GET_MISSING(s, "b1");
    GET_BYTES_EQ(s, "before", v, 600000);
    SET_BYTES(s, "fits", v + 2, 700000, NEVER);
    GET_BYTES_EQ(s, "fits", v + 2, 700000);
    CHECK_EQ(value_files(path), 2);
    CHECK_EQ(STATS(s).total_size, 1300000);
    struct rlimit none = {hard, hard};
    REQUIRE(setrlimit(RLIMIT_FSIZE, &none) == 0);
    SET_BYTES(s, "big", v, 3u << 20, NEVER);
    GET_BYTES_EQ(s, "big", v, 3u << 20);
    backlite_check_report rep;
    CHECK_OK(backlite_storage_check(s, 0, &rep, &err));
    CHECK_EQ(rep.healthy, 1);
    CHECK_EQ(value_files(path), 3);
    backlite_storage_free(s);
    free(v);
}

static void a_file_size_limit_fails_large_sets_whole(void) {
    const char *path = tmp_path("fsize.db");
    fflush(NULL);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        int before = atomic_load(&h_st()->failures);
        file_size_limit_body(path);
        h_child_exit(atomic_load(&h_st()->failures) == before ? 0 : 1);
    }
    CHECK_EQ(CHILD_EXIT_CODE(pid), 0);
}

#define NOBODY 65534

/* A folder of values another user made at the cache's place, marker and all (in a
 * folder both may write, as /tmp): that user may put files of any content under the
 * names the cache's rows give (a CRC-32 is easily matched), so it is never used. A
 * large set is IO and writes nothing there; what it holds is never read. */
static void a_folder_another_user_made_is_never_used(void) {
    if (geteuid() != 0) SKIP("needs root, to act as another user");
    char dir[PATH_MAX - 64], path[PATH_MAX], marker[PATH_MAX + 400], theirs[PATH_MAX + 400];
    snprintf(dir, sizeof dir, "%s", tmp_path("shared"));
    snprintf(path, sizeof path, "%s/c.db", dir);
    REQUIRE(chmod(h_tmp_root(), 0755) == 0);
    REQUIRE(mkdir(dir, 0777) == 0);
    REQUIRE(chmod(dir, 01777) == 0);
    /* The marker's text, from a folder BackLite made. */
    const char *model = tmp_path("model.db");
    backlite_storage *m = OPEN_SET(model, .file_threshold = 4096);
    REQUIRE(m != NULL);
    uint8_t *v = h_pattern(100000, 9);
    SET_BYTES(m, "k", v, 100000, NEVER);
    backlite_storage_free(m);
    snprintf(marker, sizeof marker, "%s/BACKLITE-VALUES", folder_of(model));
    size_t len = 0;
    uint8_t *text = h_read_file(marker, &len);
    REQUIRE(text != NULL);
    snprintf(theirs, sizeof theirs, "%s/v2-0123456789abcdef0123456789abcdef.blv", folder_of(path));
    fflush(NULL);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        if (setgroups(0, NULL) != 0 || setgid(NOBODY) != 0 || setuid(NOBODY) != 0) _exit(77);
        umask(0);
        if (mkdir(folder_of(path), 0777) != 0) h_child_exit(2);
        snprintf(marker, sizeof marker, "%s/BACKLITE-VALUES", folder_of(path));
        if (!h_write_file(marker, text, len)) h_child_exit(3);
        if (!h_write_file(theirs, "theirs", 6)) h_child_exit(4);
        h_child_exit(0);
    }
    int code = CHILD_EXIT_CODE(pid);
    if (code == 77) SKIP("cannot drop to user nobody");
    REQUIRE(code == 0);
    free(text);
    backlite_storage *s = OPEN_SET(path, .file_threshold = 4096);
    REQUIRE(s != NULL);
    CHECK_RC(backlite_storage_set(s, K("k"), v, 100000, NEVER, &err), BACKLITE_RESULT_IO);
    CHECK_EQ(value_files(path), 1); /* theirs only */
    GET_MISSING(s, "k");
    SET(s, "small", "x");
    GET_EQ(s, "small", "x");
    backlite_check_report rep;
    backlite_error *err = NULL;
    backlite_result rc = backlite_storage_check(s, 1, &rep, &err);
    backlite_error_free(err);
    CHECK(rc == BACKLITE_RESULT_IO || rc == BACKLITE_RESULT_OK);
    CHECK(h_exists(theirs));
    backlite_storage_free(s);
    free(v);
}

int main(void) {
    h_begin();
    RUN(reads_on_a_full_disk_serve_every_value_whole);
    RUN(every_read_of_a_key_churned_across_thresholds_is_a_whole_hit);
    RUN(a_lost_lease_fulfilled_with_a_large_value_leaves_no_file);
    RUN(a_file_size_limit_fails_large_sets_whole);
    RUN(a_folder_another_user_made_is_never_used);
    return h_end();
}
