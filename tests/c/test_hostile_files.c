/*
 * Hostile files not covered by test_open.c: bytes flipped inside stored values (found
 * in the file by their bytes, edited in place with the file closed), truncated cache
 * files, a cache of a newer schema, a garbage write-ahead log, and files or folders
 * that cannot be written.
 *
 * The rule each case pins: a damaged value is a miss, never wrong bytes; a file that
 * is not a healthy cache of ours gets the documented result and keeps every byte.
 *
 * Root ignores permission bits, so the "cannot be written" cases run twice: in a child
 * with a private mount namespace where the folder or file is bind-mounted read-only
 * (needs root; skipped with a message otherwise), and in a child that drops to user
 * nobody (65534) and meets ordinary permission bits (skipped if it cannot drop).
 */
#include <grp.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/wait.h>

#include "backlite.h"
#include "harness.h"
#include "value_folder.h"

#define NOBODY 65534

/* ------------------------------------------------------------ helpers */

static void fill_bytes(uint8_t *v, size_t n, uint64_t seed) {
    for (size_t i = 0; i < n; i++) v[i] = (uint8_t)h_rand(&seed);
}

static bool side_file_exists(const char *path, const char *suffix) {
    char p[PATH_MAX + 16];
    snprintf(p, sizeof p, "%s%s", path, suffix);
    return h_exists(p);
}

/* a closed cache file holding `n` entries "k0".."k{n-1}" of `size` bytes, and nothing
   beside it (the last close checkpointed and removed the -wal) */
static bool make_cache(const char *path, int n, size_t size) {
    backlite_storage *s = OPEN(path, NULL);
    if (s == NULL) return false;
    uint8_t *v = malloc(size + 1);
    for (int i = 0; i < n; i++) {
        char k[32];
        snprintf(k, sizeof k, "k%d", i);
        fill_bytes(v, size, (uint64_t)i);
        CHECK_OK(backlite_storage_set(s, K(k), v, size, NEVER, &err));
    }
    free(v);
    backlite_storage_free(s);
    return !side_file_exists(path, "-wal") && !side_file_exists(path, "-shm");
}

static void expect_entry_(const char *file, int line, backlite_storage *s, int i, size_t size) {
    char k[32];
    snprintf(k, sizeof k, "k%d", i);
    uint8_t *want = malloc(size + 1);
    fill_bytes(want, size, (uint64_t)i);
    h_get_eq_(file, line, s, k, want, size);
    free(want);
}
/* get("k<i>") returns the bytes make_cache stored */
#define EXPECT_ENTRY(s, i, size) expect_entry_(__FILE__, __LINE__, (s), (i), (size))

static backlite_check_report check_report(backlite_storage *s) {
    backlite_check_report r;
    memset(&r, 0, sizeof r);
    CHECK_OK(backlite_storage_check(s, 0, &r, &err));
    return r;
}

/* the file has exactly these bytes */
static void expect_bytes_(const char *file, int line, const char *path, const uint8_t *want, size_t want_len) {
    size_t len = 0;
    uint8_t *got = h_read_file(path, &len);
    if (got == NULL)
        h_fail_(file, line, "%s cannot be read", path);
    else if (len != want_len || memcmp(got, want, len) != 0)
        h_fail_(file, line, "%s was modified (%zu bytes before, %zu after)", path, want_len, len);
    free(got);
}
#define EXPECT_BYTES(path, want, len) expect_bytes_(__FILE__, __LINE__, (path), (want), (len))

/* opening fails with `expected` (with and without an error object), writes nothing to
   storage_out, and leaves the file's bytes and no -wal / -shm beside it */
static void expect_refused_(const char *file, int line, const char *path, backlite_result expected) {
    size_t len = 0;
    uint8_t *before = h_read_file(path, &len);
    backlite_storage *sentinel = (backlite_storage *)(uintptr_t)0x1234, *s = sentinel;
    backlite_error *err = NULL;
    backlite_result rc = backlite_storage_open(path, NULL, &s, &err);
    h_check_rc_(file, line, "backlite_storage_open", rc, expected, err);
    backlite_error_free(err);
    if (rc == BACKLITE_RESULT_OK) backlite_storage_free(s);
    else if (s != sentinel) h_fail_(file, line, "storage_out written although the open failed");
    s = sentinel;
    rc = backlite_storage_open(path, NULL, &s, NULL);
    if (rc != expected) h_fail_(file, line, "second open (err NULL): %s", h_rc_name(rc));
    if (rc == BACKLITE_RESULT_OK) backlite_storage_free(s);
    if (before != NULL) expect_bytes_(file, line, path, before, len);
    free(before);
    if (side_file_exists(path, "-wal") || side_file_exists(path, "-shm"))
        h_fail_(file, line, "%s: a -wal or -shm file was left beside the refused file", path);
}
#define EXPECT_REFUSED(path, expected) expect_refused_(__FILE__, __LINE__, (path), (expected))

/* ------------------------------------------------- children with a setting */

typedef enum { PRIVATE_MOUNTS, UNPRIVILEGED } child_setting;

/*
 * Runs fn(arg) in a child process: in a private mount namespace (mounts made there
 * vanish with it), or as user nobody. Returns 0 when the child's checks passed, 1 when
 * they failed, 77 when the setting cannot be had (the reason is in `why`).
 */
static int in_child(child_setting setting, void (*fn)(const char *), const char *arg, char *why, size_t why_len) {
    int pipefd[2];
    if (pipe(pipefd) != 0) return 1;
    pid_t pid = fork();
    if (pid < 0) return 1;
    if (pid == 0) {
        close(pipefd[0]);
        const char *no = NULL;
        char msg[200];
        if (setting == PRIVATE_MOUNTS) {
            if (unshare(CLONE_NEWNS) != 0) {
                snprintf(msg, sizeof msg, "cannot make a private mount namespace (unshare: %s): needs root",
                         strerror(errno));
                no = msg;
            } else if (mount("none", "/", "none", MS_REC | MS_PRIVATE, NULL) != 0) {
                snprintf(msg, sizeof msg, "cannot make mounts private: %s", strerror(errno));
                no = msg;
            }
        } else if (geteuid() == 0) {
            if (setgroups(0, NULL) != 0 || setgid(NOBODY) != 0 || setuid(NOBODY) != 0) {
                snprintf(msg, sizeof msg, "cannot drop to user nobody: %s", strerror(errno));
                no = msg;
            } else if (access(arg, F_OK) != 0) {
                snprintf(msg, sizeof msg, "user nobody cannot reach %s (is TMPDIR in a private folder?): %s", arg,
                         strerror(errno));
                no = msg;
            }
        }
        if (no != NULL) {
            if (write(pipefd[1], no, strlen(no)) < 0) _exit(1);
            _exit(77);
        }
        int before = atomic_load(&h_st()->failures);
        fn(arg);
        _exit(atomic_load(&h_st()->failures) == before ? 0 : 1);
    }
    close(pipefd[1]);
    ssize_t n = read(pipefd[0], why, why_len - 1);
    why[n > 0 ? n : 0] = '\0';
    close(pipefd[0]);
    int code = CHILD_EXIT_CODE(pid);
    return code == 77 || code == 0 ? code : 1;
}

#define RUN_IN_CHILD(setting, fn, arg)                                                  \
    do {                                                                                \
        char why_[256];                                                                 \
        int rc_ = in_child((setting), (fn), (arg), why_, sizeof why_);                  \
        if (rc_ == 77) SKIP(why_);                                                      \
        if (rc_ != 0) h_fail_(__FILE__, __LINE__, "the child's checks failed (above)"); \
    } while (0)

/* bind-mounts `path` (a file or a folder) read-only onto itself */
static bool mount_read_only(const char *path) {
    if (mount(path, path, "none", MS_BIND, NULL) != 0) {
        fprintf(stderr, "bind mount of %s: %s\n", path, strerror(errno));
        return false;
    }
    if (mount("none", path, "none", MS_REMOUNT | MS_BIND | MS_RDONLY, NULL) != 0) {
        fprintf(stderr, "read-only remount of %s: %s\n", path, strerror(errno));
        return false;
    }
    return true;
}

/* ------------------------------------------------- flipped bytes in values */

/*
 * Stores a value of `size` bytes among others, closes, finds a 24-byte window of the
 * value in the file (exactly once) and flips one bit in it. Returns false (and says
 * why) if the window cannot be found once.
 */
static bool store_and_flip(const char *path, size_t size, const char *key, uint64_t seed) {
    backlite_storage *s = OPEN(path, NULL);
    if (s == NULL) return false;
    uint8_t *v = malloc(size);
    fill_bytes(v, size, seed);
    SET(s, "before", "a value stored before");
    CHECK_OK(backlite_storage_set(s, K(key), v, size, NEVER, &err));
    SET(s, "after", "a value stored after");
    backlite_storage_free(s); /* no get: a hit would rewrite the row and leave a stale copy */
    if (side_file_exists(path, "-wal")) {
        fprintf(stderr, "# the -wal file stayed after the last handle closed\n");
        free(v);
        return false;
    }
    size_t len = 0;
    uint8_t *file = h_read_file(path, &len);
    bool done = false;
    /* windows from the end of the value backwards, so a large value is hit on an
       overflow page; one straddling a page boundary is not found, and the next is */
    for (size_t at = size >= 24 ? size - 24 : 0; !done; at = at >= 997 ? at - 997 : 0) {
        uint8_t *hit = memmem(file, len, v + at, size < 24 ? size : 24);
        if (hit != NULL && memmem(hit + 1, len - (size_t)(hit - file) - 1, v + at, size < 24 ? size : 24) == NULL) {
            size_t off = (size_t)(hit - file) + (size < 24 ? size : 24) / 2;
            int fd = open(path, O_WRONLY);
            uint8_t b = file[off] ^ 0x10;
            done = fd >= 0 && pwrite(fd, &b, 1, (off_t)off) == 1;
            if (fd >= 0) close(fd);
        }
        if (at == 0) break;
    }
    free(file);
    free(v);
    return done;
}

static void flipped_value_is_a_miss(size_t size) {
    const char *path = tmp_path("flip.db");
    if (!store_and_flip(path, size, "victim", 42)) SKIP("the value's bytes were not found once in the file");
    backlite_storage *s = OPEN(path, NULL);
    REQUIRE(s != NULL);
    backlite_check_report r = check_report(s);
    CHECK_EQ(r.integrity_ok, 1); /* the structure is sound: only a value changed */
    CHECK_EQ(r.damaged, 1);
    CHECK_EQ(r.healthy, 0);
    GET_MISSING(s, "victim"); /* never the damaged bytes */
    GET_MISSING(s, "victim");
    GET_EQ(s, "before", "a value stored before");
    GET_EQ(s, "after", "a value stored after");
    r = check_report(s); /* the get removed the damaged entry */
    CHECK_EQ(r.healthy, 1);
    CHECK_EQ(r.actual_count, 2);
    backlite_stats st = STATS(s);
    CHECK_EQ(st.count, 2);
    CHECK_EQ(st.total_size, strlen("a value stored before") + strlen("a value stored after"));
    SET(s, "victim", "stored again");
    GET_EQ(s, "victim", "stored again");
    backlite_storage_free(s);
}

static void a_flipped_bit_in_a_small_value_is_a_miss_never_wrong_bytes(void) { flipped_value_is_a_miss(200); }

static void a_flipped_bit_in_a_large_value_is_a_miss_never_wrong_bytes(void) { flipped_value_is_a_miss(3000); }

static int32_t compute_fresh(void *ud, backlite_sink *sink) {
    (*(int *)ud)++;
    return backlite_sink_write(sink, (const uint8_t *)"fresh", 5) == BACKLITE_RESULT_OK ? 0 : 1;
}

static void a_flipped_bit_on_an_overflow_page_makes_cached_call_compute_again(void) {
    const char *path = tmp_path("overflow.db");
    if (!store_and_flip(path, 40000, "big", 7)) SKIP("the value's bytes were not found once in the file");
    backlite_storage *s = OPEN(path, NULL);
    REQUIRE(s != NULL);
    CHECK_EQ(check_report(s).damaged, 1);
    int computed = 0;
    backlite_buf b = {NULL, 0};
    CHECK_OK(backlite_cached_call(s, K("big"), compute_fresh, &computed, NULL, NEVER, &b, &err));
    CHECK_EQ(computed, 1);
    CHECK_BUF_STR(b, "fresh");
    backlite_buf_free(&b);
    GET_EQ(s, "big", "fresh");
    CHECK_EQ(check_report(s).healthy, 1);
    backlite_storage_free(s);
}

/* ------------------------------------------------------- truncated files */

static void a_truncated_cache_file_is_refused_and_left_untouched(void) {
    const char *path = tmp_path("whole.db");
    REQUIRE(make_cache(path, 100, 1000));
    size_t len = 0;
    uint8_t *whole = h_read_file(path, &len);
    REQUIRE(whole != NULL && len > 8 * 4096 && len % 4096 == 0);
    /* whole pages missing: shorter than the 100-byte header is not recognised; longer,
       SQLite finds pages missing */
    size_t cuts[] = {1, 50, 99, 100, 4096, 8192, (len / 2) & ~(size_t)4095, len - 4096};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        char name[32];
        snprintf(name, sizeof name, "cut-%zu.db", cuts[i]);
        const char *cut = tmp_path(name);
        REQUIRE(h_write_file(cut, whole, cuts[i]));
        EXPECT_REFUSED(cut, cuts[i] < 100 ? BACKLITE_RESULT_NOT_A_CACHE : BACKLITE_RESULT_CORRUPT);
    }
    free(whole);
    /* the original, untouched, still opens with every entry */
    backlite_storage *s = OPEN(path, NULL);
    REQUIRE(s != NULL);
    for (int i = 0; i < 100; i++) EXPECT_ENTRY(s, i, 1000);
    CHECK_EQ(check_report(s).healthy, 1);
    backlite_storage_free(s);
}

/*
 * A last page cut short (a torn write at the end of the file): SQLite reads the missing
 * bytes as zeros, so the structure may still be sound; the values there fail their
 * checksums. Every get is then the stored bytes or a miss, never anything else, and
 * the misses leave a healthy file.
 */
static void a_torn_last_page_gives_misses_never_wrong_bytes(void) {
    const char *path = tmp_path("whole.db");
    REQUIRE(make_cache(path, 100, 1000));
    size_t len = 0;
    uint8_t *whole = h_read_file(path, &len);
    REQUIRE(whole != NULL && len > 8 * 4096);
    const char *cut = tmp_path("torn.db");
    REQUIRE(h_write_file(cut, whole, len - 700));
    free(whole);
    backlite_storage *s = NULL;
    backlite_error *err = NULL;
    backlite_result rc = backlite_storage_open(cut, NULL, &s, &err);
    h_check_rc_(__FILE__, __LINE__, "open", rc, rc == BACKLITE_RESULT_CORRUPT ? rc : BACKLITE_RESULT_OK, err);
    backlite_error_free(err);
    if (rc != BACKLITE_RESULT_OK) return;
    backlite_check_report r = check_report(s);
    int missing = 0;
    for (int i = 0; i < 100; i++) {
        char k[32];
        snprintf(k, sizeof k, "k%d", i);
        uint8_t want[1000];
        fill_bytes(want, sizeof want, (uint64_t)i);
        backlite_buf b = {NULL, 0};
        err = NULL;
        rc = backlite_storage_get(s, K(k), &b, NULL, &err);
        if (rc == BACKLITE_RESULT_OK)
            CHECK_BUF(b, want, sizeof want);
        else if (rc == BACKLITE_RESULT_NOT_FOUND)
            missing++;
        else
            h_check_rc_(__FILE__, __LINE__, k, rc, BACKLITE_RESULT_OK, err);
        backlite_error_free(err);
        backlite_buf_free(&b);
    }
    CHECK_EQ(missing, (int)r.damaged); /* exactly the entries check called damaged */
    if (r.integrity_ok) {
        r = check_report(s);
        CHECK_EQ(r.healthy, 1);
        CHECK_EQ(r.actual_count, 100 - missing);
    }
    printf("# torn last page: integrity_ok %d, %d of 100 values damaged (misses)\n", r.integrity_ok, missing);
    backlite_storage_free(s);
}

/* ----------------------------------------------------------- newer schema */

static void a_cache_of_a_newer_schema_is_incompatible_and_left_untouched(void) {
    const char *path = tmp_path("newer.db");
    REQUIRE(make_cache(path, 5, 100));
    size_t len = 0;
    uint8_t *bytes = h_read_file(path, &len);
    REQUIRE(bytes != NULL && len >= 100);
    /* PRAGMA user_version lives at offset 60, big-endian */
    bytes[60] = 0, bytes[61] = 0, bytes[62] = 0, bytes[63] = 99;
    REQUIRE(h_write_file(path, bytes, len));
    free(bytes);
    EXPECT_REFUSED(path, BACKLITE_RESULT_INCOMPATIBLE);
    backlite_error *err = NULL;
    backlite_storage *s = NULL;
    backlite_storage_open(path, NULL, &s, &err);
    CHECK(err != NULL && strstr(backlite_error_message(err), "newer") != NULL);
    backlite_error_free(err);
    backlite_storage_free(s);
}

static void a_newer_schema_set_through_sqlite_is_incompatible(void) {
    if (!h_have_python_sqlite()) SKIP("python3 with sqlite3 is not available to edit the file");
    const char *path = tmp_path("newer-sql.db");
    REQUIRE(make_cache(path, 5, 100));
    char cmd[PATH_MAX + 200];
    snprintf(cmd, sizeof cmd,
             "python3 -c 'import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
             "c.execute(\"pragma user_version = 99\"); c.commit(); c.close()' '%s'",
             path);
    REQUIRE(system(cmd) == 0);
    REQUIRE(!side_file_exists(path, "-wal"));
    EXPECT_REFUSED(path, BACKLITE_RESULT_INCOMPATIBLE);
}

/* ------------------------------------------- schema 4, values kept in files */

/* Rewrites the closed cache at `path` (schema 5) into schema 4 as 0.2 wrote it: a value
   kept in a file is named by a `blobs` row (an empty value and the file's name) that the
   entry's `value_id` points at. */
static bool rewrite_as_schema_4(const char *path) {
    char cmd[PATH_MAX + 900];
    snprintf(cmd, sizeof cmd,
             "python3 -c 'import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.executescript(\""
             "INSERT INTO blobs (value, file) SELECT zeroblob(0), file FROM entries WHERE file IS NOT NULL; "
             "UPDATE entries SET value_id = (SELECT id FROM blobs WHERE blobs.file = entries.file) "
             "WHERE file IS NOT NULL; DROP INDEX entries_by_file; ALTER TABLE entries DROP COLUMN file; "
             "CREATE INDEX blobs_by_file ON blobs(file) WHERE file IS NOT NULL; PRAGMA user_version = 4;\"); "
             "c.close()' '%s'",
             path);
    return system(cmd) == 0;
}

/* `user_version`, from the file's header (offset 60, big-endian) */
static int schema_of(const char *path) {
    size_t len = 0;
    uint8_t *b = h_read_file(path, &len);
    int v = b != NULL && len >= 64 ? (b[60] << 24) | (b[61] << 16) | (b[62] << 8) | b[63] : -1;
    free(b);
    return v;
}

/* 70,000 bytes: above the default file threshold, so each value is kept in a file */
#define IN_FILE 70000

static void a_schema_4_cache_with_values_in_files_is_upgraded_and_reads_back(void) {
    if (!h_have_python_sqlite()) SKIP("python3 with sqlite3 is not available to edit the file");
    const char *path = tmp_path("schema4.db");
    REQUIRE(make_cache(path, 3, IN_FILE));
    REQUIRE(rewrite_as_schema_4(path));
    REQUIRE(schema_of(path) == 4);
    backlite_storage *s = OPEN(path, NULL);
    REQUIRE(s != NULL);
    for (int i = 0; i < 3; i++) EXPECT_ENTRY(s, i, IN_FILE);
    backlite_check_report r = check_report(s);
    CHECK_EQ(r.healthy, 1);
    CHECK_EQ(r.damaged, 0);
    CHECK_EQ(r.actual_count, 3);
    /* the name moved into the row: a delete still removes the file */
    CHECK_EQ(value_files(path), 3);
    CHECK_OK(backlite_storage_delete(s, K("k1"), &err));
    CHECK_EQ(value_files(path), 2);
    GET_MISSING(s, "k1");
    EXPECT_ENTRY(s, 2, IN_FILE);
    CHECK_EQ(check_report(s).healthy, 1);
    backlite_storage_free(s);
    CHECK_EQ(schema_of(path), 6); /* the latest, in the header once the last close folded the log in */
}

/* README: a read-only file of an older schema cannot be upgraded in place: IO, and
   the file is left as it was (its folder can be written) */
static void in_read_only_mount_schema_4(const char *dir) {
    char path[PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/cache.db", dir);
    size_t len = 0;
    uint8_t *before = h_read_file(path, &len);
    if (!mount_read_only(path)) {
        h_fail_(__FILE__, __LINE__, "cannot bind-mount %s read-only", path);
    } else {
        backlite_storage *s = NULL;
        backlite_error *e = NULL;
        CHECK_EQ(backlite_storage_open(path, NULL, &s, &e), BACKLITE_RESULT_IO);
        CHECK(s == NULL);
        CHECK(e != NULL && strstr(backlite_error_message(e), "migrating the schema from version 4") != NULL);
        if (e != NULL) printf("# %s\n", backlite_error_message(e));
        backlite_error_free(e);
        EXPECT_BYTES(path, before, len);
    }
    free(before);
}

static void a_read_only_schema_4_cache_with_values_in_files_is_io_and_untouched(void) {
    if (!h_have_python_sqlite()) SKIP("python3 with sqlite3 is not available to edit the file");
    const char *dir = tmp_path("ro-schema4");
    REQUIRE(mkdir(dir, 0755) == 0);
    char path[PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/cache.db", dir);
    REQUIRE(make_cache(path, 2, IN_FILE));
    REQUIRE(rewrite_as_schema_4(path));
    RUN_IN_CHILD(PRIVATE_MOUNTS, in_read_only_mount_schema_4, dir);
}

/* ------------------------------------------------------ a garbage log */

static void a_garbage_write_ahead_log_beside_a_cache_is_ignored(void) {
    const char *path = tmp_path("wal.db");
    REQUIRE(make_cache(path, 20, 500));
    char wal[PATH_MAX + 8];
    snprintf(wal, sizeof wal, "%s-wal", path);
    uint8_t junk[3 * 4096 + 32];
    fill_bytes(junk, sizeof junk, 5);
    REQUIRE(h_write_file(wal, junk, sizeof junk));
    backlite_storage *s = OPEN(path, NULL);
    REQUIRE(s != NULL);
    for (int i = 0; i < 20; i++) EXPECT_ENTRY(s, i, 500);
    backlite_check_report r = check_report(s);
    CHECK_EQ(r.healthy, 1);
    CHECK_EQ(r.actual_count, 20);
    SET(s, "new", "value");
    backlite_storage_free(s);
    s = OPEN(path, NULL);
    REQUIRE(s != NULL);
    GET_EQ(s, "new", "value");
    backlite_storage_free(s);
}

/* --------------------------------------------- folders and files we cannot write */

/* a missing file in a folder we cannot write: IO, and nothing is created */
static void new_file_cannot_be_created(const char *dir) {
    char path[PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/new.db", dir);
    backlite_storage *s = NULL;
    CHECK_RC(backlite_storage_open(path, NULL, &s, &err), BACKLITE_RESULT_IO);
    CHECK(s == NULL);
    CHECK(!h_exists(path));
}

static void in_read_only_mount_new_file(const char *dir) {
    if (!mount_read_only(dir)) {
        h_fail_(__FILE__, __LINE__, "cannot bind-mount %s read-only", dir);
        return;
    }
    new_file_cannot_be_created(dir);
}

static void a_new_file_in_a_read_only_folder_is_io(void) {
    const char *dir = tmp_path("ro-dir");
    REQUIRE(mkdir(dir, 0755) == 0);
    RUN_IN_CHILD(PRIVATE_MOUNTS, in_read_only_mount_new_file, dir);
    CHECK(!h_exists(tmp_path("ro-dir/new.db")));
}

static void a_new_file_in_a_folder_without_write_permission_is_io(void) {
    const char *dir = tmp_path("no-write-dir");
    REQUIRE(chmod(h_tmp_root(), 0755) == 0);
    REQUIRE(mkdir(dir, 0555) == 0);
    if (geteuid() == 0) REQUIRE(chown(dir, NOBODY, NOBODY) == 0);
    RUN_IN_CHILD(UNPRIVILEGED, new_file_cannot_be_created, dir);
}

/* a cache in a read-only folder cannot get its -wal / -shm: IO, file unchanged */
static void in_read_only_mount_existing(const char *dir) {
    char path[PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/cache.db", dir);
    size_t len = 0;
    uint8_t *before = h_read_file(path, &len);
    if (!mount_read_only(dir)) {
        h_fail_(__FILE__, __LINE__, "cannot bind-mount %s read-only", dir);
    } else {
        backlite_storage *s = NULL;
        CHECK_RC(backlite_storage_open(path, NULL, &s, &err), BACKLITE_RESULT_IO);
        CHECK(s == NULL);
        EXPECT_BYTES(path, before, len);
    }
    free(before);
}

static void a_cache_in_a_read_only_folder_is_io_and_untouched(void) {
    const char *dir = tmp_path("ro-cache-dir");
    REQUIRE(mkdir(dir, 0755) == 0);
    char path[PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/cache.db", dir);
    REQUIRE(make_cache(path, 10, 100));
    RUN_IN_CHILD(PRIVATE_MOUNTS, in_read_only_mount_existing, dir);
}

/*
 * A cache file that cannot be written (its folder can): it opens and serves reads, and
 * every write fails with IO; its bytes never change. (Or the open itself fails with IO:
 * both are "cannot write the file".)
 */
static void read_only_cache_serves_reads_only(const char *path) {
    size_t len = 0;
    uint8_t *before = h_read_file(path, &len);
    backlite_storage *s = NULL;
    backlite_error *err = NULL;
    backlite_result rc = backlite_storage_open(path, NULL, &s, &err);
    h_check_rc_(__FILE__, __LINE__, "open", rc, rc == BACKLITE_RESULT_IO ? BACKLITE_RESULT_IO : BACKLITE_RESULT_OK, err);
    backlite_error_free(err);
    if (rc == BACKLITE_RESULT_OK) {
        for (int i = 0; i < 10; i++) EXPECT_ENTRY(s, i, 100);
        CHECK(HAS(s, "k3"));
        CHECK_RC(backlite_storage_set(s, K("k1"), K("new"), NEVER, &err), BACKLITE_RESULT_IO);
        CHECK_RC(backlite_storage_set(s, K("other"), K("new"), NEVER, &err), BACKLITE_RESULT_IO);
        CHECK_RC(backlite_storage_delete(s, K("k2"), &err), BACKLITE_RESULT_IO);
        CHECK_RC(backlite_storage_clear(s, &err), BACKLITE_RESULT_IO);
        /* the gets above left hits waiting, which a vacuum writes first: its error
         * names the vacuum, not that step ("recording hits") */
        err = NULL;
        CHECK_EQ(backlite_storage_vacuum(s, &err), BACKLITE_RESULT_IO);
        CHECK(err != NULL && strncmp(backlite_error_message(err), "vacuuming: ", 11) == 0);
        if (err != NULL) printf("# vacuum: %s\n", backlite_error_message(err));
        backlite_error_free(err);
        EXPECT_ENTRY(s, 1, 100); /* the failed writes changed nothing */
        EXPECT_ENTRY(s, 2, 100);
        GET_MISSING(s, "other");
        backlite_storage_free(s);
    } else {
        printf("# (the read-only file was refused at open: IO)\n");
    }
    EXPECT_BYTES(path, before, len);
    free(before);
}

static void in_read_only_mount_file(const char *path) {
    if (!mount_read_only(path)) {
        h_fail_(__FILE__, __LINE__, "cannot bind-mount %s read-only", path);
        return;
    }
    read_only_cache_serves_reads_only(path);
}

static void a_read_only_mounted_cache_file_is_read_but_never_written(void) {
    const char *path = tmp_path("ro-file.db");
    REQUIRE(make_cache(path, 10, 100));
    RUN_IN_CHILD(PRIVATE_MOUNTS, in_read_only_mount_file, path);
}

static void a_cache_file_without_write_permission_is_read_but_never_written(void) {
    const char *dir = tmp_path("ro-perm");
    REQUIRE(chmod(h_tmp_root(), 0755) == 0);
    REQUIRE(mkdir(dir, 0755) == 0);
    char path[PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/cache.db", dir);
    REQUIRE(make_cache(path, 10, 100));
    REQUIRE(chmod(path, 0444) == 0);
    if (geteuid() == 0) REQUIRE(chown(dir, NOBODY, NOBODY) == 0 && chown(path, NOBODY, NOBODY) == 0);
    RUN_IN_CHILD(UNPRIVILEGED, read_only_cache_serves_reads_only, path);
}

/*
 * Every call that only reads works on a cache file that cannot be written, with an
 * expired entry in it (whose removal would be a write): stats, check without repair,
 * get and contains, and opening with a policy whose index the file lacks.
 */
static void every_read_works_on_a_read_only_cache(const char *path) {
    size_t len = 0;
    uint8_t *before = h_read_file(path, &len);
    backlite_storage *s = OPEN(path, NULL);
    if (s != NULL) {
        backlite_stats st = STATS(s);
        CHECK_EQ(st.count, 10);
        CHECK_EQ(st.total_size, 1000);
        backlite_check_report report;
        memset(&report, 0, sizeof report);
        CHECK_OK(backlite_storage_check(s, 0, &report, &err));
        CHECK_EQ(report.healthy, 1);
        CHECK_EQ(report.actual_count, 10);
        CHECK_EQ(report.recorded_count, 10);
        GET_MISSING(s, "soon");
        CHECK(!HAS(s, "soon"));
        EXPECT_ENTRY(s, 3, 100);
        CHECK_EQ(STATS(s).count, 10);
        backlite_storage_free(s);
    }
    /* made with LRU: the file has no index for LFU, and cannot be given one */
    s = OPEN_WITH(path, 1 << 20, BACKLITE_EVICTION_POLICY_LEAST_FREQUENTLY_USED);
    if (s != NULL) {
        EXPECT_ENTRY(s, 4, 100);
        CHECK_EQ(STATS(s).count, 10);
        CHECK_RC(backlite_storage_set(s, K("other"), K("new"), NEVER, &err), BACKLITE_RESULT_IO);
        backlite_storage_free(s);
    }
    EXPECT_BYTES(path, before, len);
    free(before);
}

static void every_read_works_on_a_cache_file_without_write_permission(void) {
    const char *dir = tmp_path("ro-expired");
    REQUIRE(chmod(h_tmp_root(), 0755) == 0);
    REQUIRE(mkdir(dir, 0755) == 0);
    char path[PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/cache.db", dir);
    REQUIRE(make_cache(path, 10, 100));
    backlite_storage *s = OPEN(path, NULL);
    REQUIRE(s != NULL);
    SET_EXP(s, "soon", "gone", 1);
    backlite_storage_free(s);
    h_sleep_ms(5); /* expiry is by wall clock: "soon" is due from here on */
    REQUIRE(chmod(path, 0444) == 0);
    if (geteuid() == 0) REQUIRE(chown(dir, NOBODY, NOBODY) == 0 && chown(path, NOBODY, NOBODY) == 0);
    RUN_IN_CHILD(UNPRIVILEGED, every_read_works_on_a_read_only_cache, path);
}

int main(void) {
    h_begin();
    RUN(a_flipped_bit_in_a_small_value_is_a_miss_never_wrong_bytes);
    RUN(a_flipped_bit_in_a_large_value_is_a_miss_never_wrong_bytes);
    RUN(a_flipped_bit_on_an_overflow_page_makes_cached_call_compute_again);
    RUN(a_truncated_cache_file_is_refused_and_left_untouched);
    RUN(a_torn_last_page_gives_misses_never_wrong_bytes);
    RUN(a_cache_of_a_newer_schema_is_incompatible_and_left_untouched);
    RUN(a_newer_schema_set_through_sqlite_is_incompatible);
    RUN(a_schema_4_cache_with_values_in_files_is_upgraded_and_reads_back);
    RUN(a_read_only_schema_4_cache_with_values_in_files_is_io_and_untouched);
    RUN(a_garbage_write_ahead_log_beside_a_cache_is_ignored);
    RUN(a_new_file_in_a_read_only_folder_is_io);
    RUN(a_new_file_in_a_folder_without_write_permission_is_io);
    RUN(a_cache_in_a_read_only_folder_is_io_and_untouched);
    RUN(a_read_only_mounted_cache_file_is_read_but_never_written);
    RUN(a_cache_file_without_write_permission_is_read_but_never_written);
    RUN(every_read_works_on_a_cache_file_without_write_permission);
    return h_end();
}
