/* The folder of values kept in files beside a cache (`<cache>.values`), as the C tests
 * that look into it see it. */
#ifndef BACKLITE_TEST_VALUE_FOLDER_H
#define BACKLITE_TEST_VALUE_FOLDER_H

#include <dirent.h>
#include <grp.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>
#include <time.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

static inline const char *folder_of(const char *cache) {
    static char dir[PATH_MAX + 64];
    /* A name cut short would name another folder. */
    if (snprintf(dir, sizeof dir, "%s.values", cache) >= (int)sizeof dir) abort();
    return dir;
}

/* How many names in the cache's folder start with `prefix` and end with `suffix`. */
static inline int count_named(const char *cache, const char *prefix, const char *suffix) {
    DIR *d = opendir(folder_of(cache));
    if (!d) return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name), sl = strlen(suffix);
        if (strncmp(e->d_name, prefix, strlen(prefix)) == 0 && len >= sl &&
            strcmp(e->d_name + len - sl, suffix) == 0)
            n++;
    }
    closedir(d);
    return n;
}

/* A value file's record (magic, length, CRC-32) follows the value, which starts at
 * offset 0 (format 2, `v2-<32 hex>.blv`; format 1, `v-<32 hex>.blv`, written by schema 3
 * to 5, held its record first). */
#define VALUE_RECORD_LEN 24

/* Whether `name` is a value file's name, of either format. */
static inline bool is_value_file_name(const char *name) {
    size_t len = strlen(name);
    return (strncmp(name, "v2-", 3) == 0 || strncmp(name, "v-", 2) == 0) && len > 4 &&
           strcmp(name + len - 4, ".blv") == 0;
}

/* The value files and temporary files of sets in flight (`t-<32 hex>.tmp`) in the
 * cache's folder. */
static inline int value_files(const char *cache) {
    return count_named(cache, "v2-", ".blv") + count_named(cache, "v-", ".blv");
}
static inline int temp_files(const char *cache) { return count_named(cache, "t-", ".tmp"); }

/* The sizes of the live values under keys "k0" .. "k<keys-1>" (`*sum`), and how many of
 * them are at least `threshold` bytes, so kept in files (`*filed`). */
static inline void live_values(backlite_storage *s, int keys, size_t threshold, uint64_t *sum,
                               uint64_t *filed) {
    *sum = *filed = 0;
    for (int k = 0; k < keys; k++) {
        char key[16];
        snprintf(key, sizeof key, "k%d", k);
        backlite_buf b = {0};
        backlite_error *e = NULL;
        if (backlite_storage_get(s, (const uint8_t *)key, strlen(key), &b, NULL, &e) ==
            BACKLITE_RESULT_OK) {
            *sum += b.len;
            *filed += b.len >= threshold;
        }
        backlite_buf_free(&b);
        backlite_error_free(e);
    }
}

/* The path of the one value file in the cache's folder (valid until the next call). A
 * test that looks for it has just made it: anything but one ends the program. */
static inline const char *only_value_file(const char *cache) {
    static char path[PATH_MAX + 400];
    DIR *d = opendir(folder_of(cache));
    int found = 0;
    for (struct dirent *e; d != NULL && (e = readdir(d)) != NULL;) {
        if (is_value_file_name(e->d_name)) {
            snprintf(path, sizeof path, "%s/%s", folder_of(cache), e->d_name);
            found++;
        }
    }
    if (d != NULL) closedir(d);
    if (found != 1) {
        fprintf(stderr, "fatal: %d value files beside %s, not one\n", found, cache);
        abort();
    }
    return path;
}

/* Makes every value file of the cache at `cache` look last modified `ago` seconds ago
 * (what a long batch leaves); its temporary files and marker keep their times. */
static inline void age_value_files(const char *cache, int ago) {
    DIR *d = opendir(folder_of(cache));
    if (d == NULL) return;
    struct timespec t[2];
    clock_gettime(CLOCK_REALTIME, &t[0]);
    t[0].tv_sec -= ago;
    t[1] = t[0];
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        if (is_value_file_name(e->d_name)) utimensat(dirfd(d), e->d_name, t, 0);
    closedir(d);
}

/* Makes every file in the cache's folder look two hours old: older than the sweep on
 * open waits for (an hour), so that only a lock keeps a file of a set in flight. */
static inline void age_folder(const char *cache) {
    DIR *d = opendir(folder_of(cache));
    REQUIRE(d != NULL);
    struct timespec old[2];
    clock_gettime(CLOCK_REALTIME, &old[0]);
    old[0].tv_sec -= 2 * 3600;
    old[1] = old[0];
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        REQUIRE(utimensat(dirfd(d), e->d_name, old, AT_SYMLINK_NOFOLLOW) == 0);
    }
    closedir(d);
}

/*
 * A writer of large values into a cache, run in a child process: `len`-byte values
 * (byte 0 counts the sets, the rest is 'v') under "k<i % keys>", or under a new key
 * each time when `keys` is 0, into the cache `open` opens.
 */
typedef struct {
    backlite_storage *(*open)(const char *path);
    size_t len;
    unsigned keys;
} value_writer;

/* The child's whole work: `times` sets (forever when times < 0), a byte down `out`
 * (when >= 0) after each; exits 0 when done, 3 to 5 when something failed. */
__attribute__((noreturn)) static inline void writer_run(value_writer w, const char *path, int out, int times) {
    backlite_storage *s = w.open(path);
    uint8_t *v = malloc(w.len);
    if (!s || !v) _exit(3);
    memset(v, 'v', w.len);
    for (unsigned i = 0; times < 0 || i < (unsigned)times; i++) {
        char key[16];
        snprintf(key, sizeof key, "k%u", w.keys ? i % w.keys : i);
        v[0] = (uint8_t)i;
        backlite_error *e = NULL;
        if (backlite_storage_set(s, K(key), v, w.len, NEVER, &e) != BACKLITE_RESULT_OK) {
            fprintf(stderr, "set failed: %s\n", e ? backlite_error_message(e) : "?");
            _exit(4);
        }
        if (out >= 0 && write(out, "x", 1) != 1) _exit(5);
    }
    free(v);
    backlite_storage_free(s);
    _exit(0);
}

/* Forks the writer, lets it finish `sets` sets, then kills it (SIGKILL) wherever it is
 * in the next one; true when it died of that signal. */
static inline bool h_writer_killed_after_(const char *file, int line, value_writer w, const char *path, int sets) {
    int gate[2];
    if (pipe(gate) != 0) {
        h_fail_(file, line, "pipe: %s", strerror(errno));
        return false;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        h_fail_(file, line, "fork: %s", strerror(errno));
        return false;
    }
    if (pid == 0) {
        close(gate[0]);
        writer_run(w, path, gate[1], -1);
    }
    close(gate[1]);
    char c;
    int done = 0;
    while (done < sets && read(gate[0], &c, 1) == 1) done++;
    if (done < sets) h_fail_(file, line, "the writer stopped after %d of %d sets", done, sets);
    bool killed = h_kill_child_(file, line, pid);
    close(gate[0]);
    return done == sets && killed;
}
#define WRITER_KILLED_AFTER(w, path, sets) h_writer_killed_after_(__FILE__, __LINE__, (w), (path), (sets))

/* Each of the writer's keys (of a writer with a few keys) is a miss or a whole value
 * of the writer's: never part of one. */
static inline void h_check_writer_entries_(const char *file, int line, value_writer w, backlite_storage *s) {
    for (unsigned k = 0; k < w.keys; k++) {
        char key[16];
        snprintf(key, sizeof key, "k%u", k);
        backlite_buf b = {0};
        backlite_error *e = NULL;
        backlite_result rc = backlite_storage_get(s, K(key), &b, NULL, &e);
        if (rc != BACKLITE_RESULT_OK && rc != BACKLITE_RESULT_NOT_FOUND)
            h_fail_(file, line, "get(%s): %s", key, h_rc_name(rc));
        if (rc == BACKLITE_RESULT_OK && (b.len != w.len || b.data[1] != 'v' || b.data[w.len - 1] != 'v'))
            h_fail_(file, line, "%s: %zu bytes, not the writer's %zu", key, b.len, w.len);
        backlite_buf_free(&b);
        backlite_error_free(e);
    }
}
#define CHECK_WRITER_ENTRIES(w, s) h_check_writer_entries_(__FILE__, __LINE__, (w), (s))

/* After a writer killed mid-set: check finds no row that names a missing or partial
 * file, and check with repair leaves no orphan: a value file per entry, no temporary
 * file. */
static inline void h_check_repaired_(const char *file, int line, backlite_storage *s, const char *path) {
    backlite_check_report rep;
    backlite_error *err = NULL;
    backlite_result rc = backlite_storage_check(s, 0, &rep, &err);
    h_check_rc_(file, line, "check", rc, BACKLITE_RESULT_OK, err);
    backlite_error_free(err);
    if (rc == BACKLITE_RESULT_OK && rep.damaged != 0) h_fail_(file, line, "%" PRIu64 " damaged", (uint64_t)rep.damaged);
    err = NULL;
    rc = backlite_storage_check(s, 1, &rep, &err);
    h_check_rc_(file, line, "check with repair", rc, BACKLITE_RESULT_OK, err);
    backlite_error_free(err);
    uint64_t count = h_stats_(file, line, s).count;
    if ((uint64_t)value_files(path) != count)
        h_fail_(file, line, "%d value files for %" PRIu64 " entries", value_files(path), count);
    if (temp_files(path) != 0) h_fail_(file, line, "%d temporary files left", temp_files(path));
}
#define CHECK_REPAIRED(s, path) h_check_repaired_(__FILE__, __LINE__, (s), (path))

/* The user a test runs as when it must not be root (who may read and remove anything). */
#define NOBODY 65534

/* Runs `body` on the cache `<tmp>/<name>/c.db` in a child process as user nobody (when
 * root: the folder is given to nobody first, as the test root made searchable): the
 * child's failures fail the case, which is skipped when it cannot drop to nobody. */
static inline int as_nobody_code_(const char *name, void (*body)(const char *path)) {
    char dir[PATH_MAX], path[PATH_MAX + 64];
    snprintf(dir, sizeof dir, "%s", tmp_path(name));
    snprintf(path, sizeof path, "%s/c.db", dir);
    if (mkdir(dir, 0700) != 0) return 1;
    bool root = geteuid() == 0;
    if (root && (chmod(h_tmp_root(), 0755) != 0 || chown(dir, NOBODY, NOBODY) != 0)) return 1;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) return 1;
    if (pid == 0) {
        if (root && (setgroups(0, NULL) != 0 || setgid(NOBODY) != 0 || setuid(NOBODY) != 0)) _exit(77);
        int before = atomic_load(&h_st()->failures);
        body(path);
        _exit(atomic_load(&h_st()->failures) == before ? 0 : 1);
    }
    return CHILD_EXIT_CODE(pid);
}

static inline void as_nobody(const char *name, void (*body)(const char *path)) {
    int code = as_nobody_code_(name, body);
    if (code == 77)
        h_skip_("cannot drop to user nobody");
    else
        CHECK_EQ(code, 0);
}

#endif
