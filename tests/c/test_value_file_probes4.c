/*
 * Values kept in files (issue 16), fourth round of probes. Found broken: a new version
 * tag, which drops every entry on open, left their value files behind (for the sweep,
 * an hour later, or a check); a reader of an in-memory cache's value copied it twice.
 * Found sound, kept so that they stay so: a visitor that writes the key it streams
 * (delete, set, clear, check, vacuum, a nested stream or reader) on a file value, a
 * large blob and an in-memory cache; a damaged value found after its key was set again
 * removes only itself; check on rows whose file is gone, longer or shorter, an orphan
 * and a foreign file, by a handle with files and by one whose threshold is "never"; a
 * read-only cache whose value file is damaged; a "never" handle evicting file values;
 * threads of one handle setting, reading and deleting large values at once.
 */
#include "backlite.h"
#include "harness.h"
#include "proc_self.h"
#include "value_folder.h"

#include <grp.h>
#include <pthread.h>
#include <sys/wait.h>

#define THRESHOLD 4096
#define NOBODY 65534

static backlite_storage *open_threshold(const char *path, uint64_t max_size, int64_t threshold) {
    return OPEN_SET(path, .max_size = max_size, .file_threshold = threshold);
}

/* The path of the one value file in the cache's folder. */
static const char *the_value_file(const char *cache) {
    static char path[PATH_MAX + 400];
    DIR *d = opendir(folder_of(cache));
    if (!d) abort();
    struct dirent *e;
    path[0] = '\0';
    while ((e = readdir(d)) != NULL)
        if (is_value_file_name(e->d_name))
            snprintf(path, sizeof path, "%s/%s", folder_of(cache), e->d_name);
    closedir(d);
    if (path[0] == '\0') abort();
    return path;
}

/* What the visitor does during its first call. */
typedef enum { DO_DELETE, DO_SET, DO_CLEAR, DO_CHECK, DO_VACUUM, DO_STREAM, DO_READER } action;
static const char *action_names[] = {"delete", "set", "clear", "check", "vacuum", "stream", "reader"};

typedef struct {
    backlite_storage *s;
    action what;
    uint8_t *bytes;
    size_t len, cap;
    int calls;
    backlite_result inner;
    const uint8_t *with;
    size_t with_len;
} visitor;

static int32_t count_only(void *user, const uint8_t *chunk, size_t len) {
    (void)chunk;
    *(size_t *)user += len;
    return 0;
}

static int32_t visit(void *user, const uint8_t *chunk, size_t len) {
    visitor *v = user;
    if (v->len + len > v->cap) return 1;
    memcpy(v->bytes + v->len, chunk, len);
    v->len += len;
    if (v->calls++ != 0) return 0;
    backlite_error *e = NULL;
    backlite_check_report rep;
    size_t seen = 0;
    switch (v->what) {
    case DO_DELETE: v->inner = backlite_storage_delete(v->s, K("k"), &e); break;
    case DO_SET: v->inner = backlite_storage_set(v->s, K("k"), v->with, v->with_len, NEVER, &e); break;
    case DO_CLEAR: v->inner = backlite_storage_clear(v->s, &e); break;
    case DO_CHECK: v->inner = backlite_storage_check(v->s, 1, &rep, &e); break;
    case DO_VACUUM: v->inner = backlite_storage_vacuum(v->s, &e); break;
    case DO_STREAM:
        v->inner = backlite_storage_get_chunks(v->s, K("k"), count_only, &seen, NULL, &e);
        if (v->inner == BACKLITE_RESULT_OK && seen != v->cap) v->inner = -1;
        break;
    case DO_READER: {
        backlite_value_reader *r = NULL;
        v->inner = backlite_storage_open_reader(v->s, K("k"), &r, NULL, NULL, &e);
        backlite_value_reader_free(r);
        break;
    }
    }
    if (e) printf("# inner %s: %s\n", action_names[v->what], backlite_error_message(e));
    backlite_error_free(e);
    return 0;
}

/* A visitor may call the library (the header says so): whatever it does to the key it
 * streams, the stream hands over the value it started on, whole, and what the visitor
 * did holds afterwards. Each case in a child, so that a self-deadlock fails instead of
 * stalling the run. */
static void a_visitor_that_writes_the_key_it_streams(void) {
    size_t n = 1 << 20, m = 300000;
    uint8_t *v = h_pattern(n, 21), *w = h_pattern(m, 22);
    const char *where[] = {"file", "blob", "memory"};
    for (int place = 0; place < 3; place++) {
        for (action what = DO_DELETE; what <= DO_READER; what++) {
            char name[64];
            snprintf(name, sizeof name, "visit-%d-%d.db", place, (int)what);
            const char *path = place == 2 ? ":memory:" : tmp_path(name);
            fflush(stdout);
            pid_t pid = fork();
            REQUIRE(pid >= 0);
            if (pid == 0) {
                alarm(60);
                int before = atomic_load(&h_st()->failures);
                backlite_storage *s = OPEN_SET(path, .max_size = 1u << 30, .busy_timeout_ms = 500, .file_threshold = place == 0 ? THRESHOLD : BACKLITE_FILE_THRESHOLD_NEVER);
                if (s == NULL) {
                    free(v);
                    free(w);
                    _exit(2);
                }
                SET_BYTES(s, "k", v, n, NEVER);
                SET(s, "small", "x");
                visitor vis = {.s = s, .what = what, .bytes = malloc(n), .cap = n, .with = w,
                               .with_len = m, .inner = -2};
                backlite_result rc = backlite_storage_get_chunks(s, K("k"), visit, &vis, NULL, NULL);
                if (rc != BACKLITE_RESULT_OK || vis.len != n || memcmp(vis.bytes, v, n) != 0)
                    printf("# %s/%s: stream %s, %zu of %zu bytes, %s\n", where[place],
                           action_names[what], h_rc_name(rc), vis.len, n,
                           vis.len == n && memcmp(vis.bytes, v, n) == 0 ? "same" : "differ");
                CHECK_OK(rc);
                CHECK(vis.len == n && memcmp(vis.bytes, v, n) == 0);
                if (vis.inner != BACKLITE_RESULT_OK)
                    printf("# %s/%s: the visitor's call gave %d\n", where[place], action_names[what],
                           (int)vis.inner);
                /* The header's one exception: a vacuum waits out the read transaction
                 * a visitor on a cache file runs in, then says BUSY (rebuilt all the same). */
                if (!(place != 2 && what == DO_VACUUM && vis.inner == BACKLITE_RESULT_BUSY))
                    CHECK_EQ(vis.inner, BACKLITE_RESULT_OK);
                backlite_stats st = STATS(s);
                switch (what) {
                case DO_DELETE:
                    GET_MISSING(s, "k");
                    CHECK_EQ(st.count, 1);
                    CHECK_EQ(st.total_size, 1);
                    break;
                case DO_SET:
                    GET_BYTES_EQ(s, "k", w, m);
                    CHECK_EQ(st.count, 2);
                    CHECK_EQ(st.total_size, m + 1);
                    break;
                case DO_CLEAR:
                    GET_MISSING(s, "k");
                    CHECK_EQ(st.count, 0);
                    CHECK_EQ(st.total_size, 0);
                    break;
                default:
                    GET_BYTES_EQ(s, "k", v, n);
                    CHECK_EQ(st.count, 2);
                    CHECK_EQ(st.total_size, n + 1);
                }
                if (place == 0) {
                    int files = (what == DO_DELETE || what == DO_CLEAR) ? 0 : 1;
                    CHECK_EQ(value_files(path), files);
                }
                backlite_check_report rep;
                CHECK_OK(backlite_storage_check(s, 0, &rep, &err));
                CHECK_EQ(rep.healthy, 1);
                free(vis.bytes);
                backlite_storage_free(s);
                free(v);
                free(w);
                _exit(atomic_load(&h_st()->failures) == before ? 0 : 1);
            }
            int status = 0;
            REQUIRE(waitpid(pid, &status, 0) == pid);
            if (WIFSIGNALED(status))
                printf("# %s/%s: the child died of signal %d%s\n", where[place], action_names[what],
                       WTERMSIG(status), WTERMSIG(status) == SIGALRM ? " (a hang)" : "");
            CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        }
    }
    free(v);
    free(w);
}

/* A reader of a damaged value file, whose key was set anew meanwhile: the reader's
 * end is NOT_FOUND, and the new value stays. Streaming likewise. */
static void a_damaged_value_found_after_its_key_was_set_again_removes_only_itself(void) {
    const char *path = tmp_path("damaged-replaced.db");
    backlite_storage *s = open_threshold(path, 1u << 30, THRESHOLD);
    REQUIRE(s != NULL);
    size_t n = 600000;
    uint8_t *v = h_pattern(n, 31), *w = h_pattern(n, 32);
    SET_BYTES(s, "k", v, n, NEVER);
    const char *file = the_value_file(path);
    int fd = open(file, O_WRONLY);
    REQUIRE(fd >= 0);
    REQUIRE(pwrite(fd, "!", 1, 400000) == 1);
    close(fd);
    backlite_value_reader *r = NULL;
    REQUIRE_OK(backlite_storage_open_reader(s, K("k"), &r, NULL, NULL, &err));
    SET_BYTES(s, "k", w, n, NEVER);
    uint8_t *buf = malloc(n);
    size_t got = 0, total = 0;
    backlite_result rc;
    while ((rc = backlite_value_reader_read(r, buf, n, &got, NULL)) == BACKLITE_RESULT_OK && got > 0)
        total += got;
    CHECK_RC(rc, BACKLITE_RESULT_NOT_FOUND);
    backlite_value_reader_free(r);
    GET_BYTES_EQ(s, "k", w, n);
    CHECK_EQ(STATS(s).count, 1);
    CHECK_EQ(STATS(s).total_size, n);
    CHECK_EQ(value_files(path), 1);
    free(buf);
    free(v);
    free(w);
    backlite_storage_free(s);
}

/* check on rows whose file is gone, longer or cut short, an orphan value file and a
 * foreign file, by a handle with files and by one whose threshold is "never": the rows
 * are damaged, the orphan an orphan, the foreign file never touched; a repair leaves a
 * healthy cache with exact counters. */
static void check_finds_every_wrong_file_whatever_the_threshold(void) {
    for (int never = 0; never < 2; never++) {
        const char *path = tmp_path(never ? "check-never.db" : "check-files.db");
        backlite_storage *s = open_threshold(path, 1u << 30, THRESHOLD);
        REQUIRE(s != NULL);
        size_t n = 10000;
        uint8_t *v = h_pattern(n, 41);
        const char *keys[] = {"gone", "longer", "shorter", "fine"};
        char files[4][PATH_MAX + 400];
        for (int i = 0; i < 4; i++) {
            SET_BYTES(s, keys[i], v, n, NEVER);
            DIR *d = opendir(folder_of(path));
            REQUIRE(d != NULL);
            struct dirent *e;
            bool found = false;
            while ((e = readdir(d)) != NULL) {
                if (!is_value_file_name(e->d_name)) continue;
                char p[PATH_MAX + 400];
                snprintf(p, sizeof p, "%s/%s", folder_of(path), e->d_name);
                bool known = false;
                for (int j = 0; j < i; j++) known |= strcmp(files[j], p) == 0;
                if (!known) {
                    snprintf(files[i], sizeof files[i], "%s", p);
                    found = true;
                }
            }
            closedir(d);
            REQUIRE(found);
        }
        SET(s, "inline", "small");
        backlite_storage_free(s);
        /* An orphan: a copy of a value file under a name of our pattern no row names. */
        char orphan[PATH_MAX + 400], foreign[PATH_MAX + 400];
        snprintf(orphan, sizeof orphan, "%s/v2-0123456789abcdef0123456789abcdef.blv", folder_of(path));
        size_t len = 0;
        uint8_t *bytes = h_read_file(files[3], &len);
        REQUIRE(bytes != NULL && h_write_file(orphan, bytes, len));
        free(bytes);
        /* Older than the minute a check that only reads leaves a writer's new file. */
        struct timespec old[2] = {{.tv_sec = time(NULL) - 120}, {.tv_sec = time(NULL) - 120}};
        REQUIRE(utimensat(AT_FDCWD, orphan, old, 0) == 0);
        snprintf(foreign, sizeof foreign, "%s/notes.txt", folder_of(path));
        REQUIRE(h_write_file(foreign, "mine", 4));
        REQUIRE(unlink(files[0]) == 0);
        int fd = open(files[1], O_WRONLY | O_APPEND);
        REQUIRE(fd >= 0 && write(fd, "xx", 2) == 2);
        close(fd);
        REQUIRE(truncate(files[2], 5000) == 0);

        s = open_threshold(path, 1u << 30, never ? BACKLITE_FILE_THRESHOLD_NEVER : THRESHOLD);
        REQUIRE(s != NULL);
        backlite_check_report rep;
        CHECK_OK(backlite_storage_check(s, 0, &rep, &err));
        printf("# %s: entries %" PRIu64 " damaged %" PRIu64 " orphans %" PRIu64 " healthy %d\n",
               never ? "never" : "files", rep.entries, rep.damaged, rep.orphan_values, rep.healthy);
        CHECK_EQ(rep.healthy, 0);
        CHECK_EQ(rep.entries, 5);
        CHECK_EQ(rep.damaged, 3);
        CHECK_EQ(rep.orphan_values, 1);
        CHECK_EQ(rep.actual_count, 2);
        CHECK_EQ(rep.actual_total_size, n + 5);
        CHECK(h_exists(orphan)); /* a check without repair removes nothing */
        CHECK_OK(backlite_storage_check(s, 1, &rep, &err));
        CHECK_EQ(rep.repaired, 1);
        CHECK(!h_exists(orphan));
        CHECK(h_exists(foreign));
        CHECK_EQ(value_files(path), 1);
        CHECK_EQ(STATS(s).count, 2);
        CHECK_EQ(STATS(s).total_size, n + 5);
        CHECK_OK(backlite_storage_check(s, 0, &rep, &err));
        CHECK_EQ(rep.healthy, 1);
        GET_BYTES_EQ(s, "fine", v, n);
        GET_EQ(s, "inline", "small");
        backlite_storage_free(s);
        free(v);
    }
}

/* A read-only cache whose value file was damaged or removed: a miss (no IO failure),
 * by get, streaming and a reader; nothing is removed, and a check without repair
 * reports it. */
static void a_read_only_cache_misses_its_damaged_file_values(void) {
    const char *tmp = tmp_path("ro-damaged");
    char dir[PATH_MAX - 64], path[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", tmp);
    snprintf(path, sizeof path, "%s/cache.db", dir);
    REQUIRE(chmod(h_tmp_root(), 0755) == 0);
    REQUIRE(mkdir(dir, 0755) == 0);
    size_t n = 100000;
    uint8_t *v = h_pattern(n, 51);
    backlite_storage *s = open_threshold(path, 1u << 30, THRESHOLD);
    REQUIRE(s != NULL);
    SET_BYTES(s, "bad", v, n, NEVER);
    const char *badfile = the_value_file(path);
    char bad[PATH_MAX + 400];
    snprintf(bad, sizeof bad, "%s", badfile);
    SET_BYTES(s, "good", v, n, NEVER);
    SET(s, "small", "x");
    backlite_storage_free(s);
    int fd = open(bad, O_WRONLY);
    REQUIRE(fd >= 0 && pwrite(fd, "!", 1, 5000) == 1);
    close(fd);
    int files = value_files(path);
    REQUIRE(files == 2);
    /* Everything read-only, the cache's folder aside (SQLite needs its -shm there). */
    const char *dirs[] = {folder_of(path), dir};
    for (int i = 0; i < 2; i++) {
        char d_[PATH_MAX + 64];
        snprintf(d_, sizeof d_, "%s", dirs[i]);
        DIR *d = opendir(d_);
        REQUIRE(d != NULL);
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (e->d_name[0] == '.' || (i == 1 && strstr(e->d_name, ".values"))) continue;
            char item[PATH_MAX + 400];
            snprintf(item, sizeof item, "%s/%s", d_, e->d_name);
            if (geteuid() == 0) REQUIRE(chown(item, NOBODY, NOBODY) == 0);
            REQUIRE(chmod(item, 0444) == 0);
        }
        closedir(d);
    }
    if (geteuid() == 0) REQUIRE(chown(folder_of(path), NOBODY, NOBODY) == 0);
    REQUIRE(chmod(folder_of(path), 0555) == 0);
    /* The cache's own folder stays writable to its reader: SQLite makes its -shm there
     * to read a WAL file, as for any read-only cache file. */
    if (geteuid() == 0) REQUIRE(chown(dir, NOBODY, NOBODY) == 0);
    fflush(stdout);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        alarm(60);
        if (geteuid() == 0 && (setgroups(0, NULL) != 0 || setgid(NOBODY) != 0 || setuid(NOBODY) != 0)) {
            free(v);
            _exit(77);
        }
        int before = atomic_load(&h_st()->failures);
        backlite_storage *r = NULL;
        backlite_error *e = NULL;
        if (backlite_storage_open(path, NULL, &r, &e) != BACKLITE_RESULT_OK) {
            printf("# open: %s\n", backlite_error_message(e));
            backlite_error_free(e);
            free(v);
            _exit(1);
        }
        GET_MISSING(r, "bad");
        GET_BYTES_EQ(r, "good", v, n);
        size_t seen = 0;
        CHECK_RC(backlite_storage_get_chunks(r, K("bad"), count_only, &seen, NULL, &e),
                 BACKLITE_RESULT_NOT_FOUND);
        CHECK(e == NULL);
        backlite_value_reader *rd = NULL;
        backlite_result rc = backlite_storage_open_reader(r, K("bad"), &rd, NULL, NULL, &e);
        if (rc == BACKLITE_RESULT_OK) {
            uint8_t *buf = malloc(n);
            size_t got = 0;
            while ((rc = backlite_value_reader_read(rd, buf, n, &got, &e)) == BACKLITE_RESULT_OK && got > 0) {
            }
            free(buf);
        }
        CHECK_RC(rc, BACKLITE_RESULT_NOT_FOUND);
        backlite_value_reader_free(rd);
        rd = NULL;
        CHECK_OK(backlite_storage_open_reader(r, K("good"), &rd, NULL, NULL, &e));
        backlite_value_reader_free(rd);
        backlite_check_report rep;
        CHECK_OK(backlite_storage_check(r, 0, &rep, &e));
        CHECK_EQ(rep.damaged, 1);
        CHECK_EQ(rep.actual_count, 2);
        backlite_stats st;
        CHECK_OK(backlite_storage_stats(r, &st, &e));
        if (e) printf("# %s\n", backlite_error_message(e));
        backlite_error_free(e);
        backlite_storage_free(r);
        free(v);
        _exit(atomic_load(&h_st()->failures) == before ? 0 : 1);
    }
    int code = CHILD_EXIT_CODE(pid);
    if (code == 77) SKIP("cannot drop to user nobody");
    CHECK_EQ(code, 0);
    CHECK_EQ(value_files(path), 2);
    REQUIRE(chmod(folder_of(path), 0700) == 0);
    free(v);
}

/* The threshold lowered, then "never": entries of each kind, overwritten across the
 * kinds and evicted by a "never" handle, keep total_size exact and leave no file. */
static void a_never_handle_evicts_file_values_with_their_files(void) {
    const char *path = tmp_path("evict-never.db");
    backlite_storage *s = open_threshold(path, 1u << 30, THRESHOLD);
    REQUIRE(s != NULL);
    size_t n = 10000;
    uint8_t *v = h_pattern(3 * n, 61);
    for (int i = 0; i < 6; i++) {
        char key[8];
        snprintf(key, sizeof key, "k%d", i);
        SET_BYTES(s, key, v, n, NEVER);
    }
    CHECK_EQ(value_files(path), 6);
    backlite_storage_free(s);
    s = open_threshold(path, 6 * n, BACKLITE_FILE_THRESHOLD_NEVER);
    REQUIRE(s != NULL);
    CHECK_EQ(STATS(s).total_size, 6 * n);
    SET_BYTES(s, "k0", v, n, NEVER); /* to the database: its file goes */
    CHECK_EQ(value_files(path), 5);
    SET_BYTES(s, "new", v, 3 * n, NEVER); /* evicts k1, k2, k3 (least recently used) */
    CHECK_EQ(STATS(s).total_size, 6 * n);
    CHECK_EQ(STATS(s).count, 4);
    CHECK_EQ(value_files(path), 2);
    backlite_check_report rep;
    CHECK_OK(backlite_storage_check(s, 0, &rep, &err));
    CHECK_EQ(rep.healthy, 1);
    CHECK_EQ(rep.orphan_values, 0);
    backlite_storage_free(s);
    free(v);
}

/* Threads of one handle setting, reading, deleting and evicting large values at once:
 * every get is one whole value, and at the end every file belongs to exactly one live
 * entry (none lost, none left over) and the counters are the values'. */
#define SHARED_KEYS 6
#define ROUNDS 60
typedef struct {
    backlite_storage *s;
    int id;
    uint8_t *values[4];
    size_t lens[4];
    int bad;
} worker;

static void *work(void *arg) {
    worker *w = arg;
    uint64_t rng = 1000 + (uint64_t)w->id;
    for (int i = 0; i < ROUNDS; i++) {
        char key[16];
        snprintf(key, sizeof key, "k%d", (int)h_rand_below(&rng, SHARED_KEYS));
        int which = (int)h_rand_below(&rng, 4);
        backlite_error *e = NULL;
        switch (h_rand_below(&rng, 4)) {
        case 0:
        case 1:
            if (backlite_storage_set(w->s, K(key), w->values[which], w->lens[which], NEVER, &e) != BACKLITE_RESULT_OK)
                w->bad++;
            break;
        case 2: {
            backlite_buf b = {0};
            backlite_result rc = backlite_storage_get(w->s, K(key), &b, NULL, &e);
            if (rc == BACKLITE_RESULT_OK) {
                bool one = false;
                for (int j = 0; j < 4; j++)
                    one |= b.len == w->lens[j] && memcmp(b.data, w->values[j], b.len) == 0;
                if (!one) w->bad++;
            } else if (rc != BACKLITE_RESULT_NOT_FOUND) {
                w->bad++;
            }
            backlite_buf_free(&b);
            break;
        }
        default: {
            backlite_result rc = backlite_storage_delete(w->s, K(key), &e);
            if (rc != BACKLITE_RESULT_OK && rc != BACKLITE_RESULT_NOT_FOUND) w->bad++;
        }
        }
        if (e) printf("# thread %d: %s\n", w->id, backlite_error_message(e));
        backlite_error_free(e);
    }
    return NULL;
}

static void threads_of_one_handle_leave_one_file_per_large_entry(void) {
    const char *path = tmp_path("threads.db");
    /* Room for about four of the largest: sets evict. */
    backlite_storage *s = open_threshold(path, 4 * 50000, THRESHOLD);
    REQUIRE(s != NULL);
    size_t lens[4] = {100, THRESHOLD, 20000, 50000};
    uint8_t *values[4];
    for (int j = 0; j < 4; j++) values[j] = h_pattern(lens[j], 90 + j);
    pthread_t t[4];
    worker w[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (worker){.s = s, .id = i};
        memcpy(w[i].values, values, sizeof values);
        memcpy(w[i].lens, lens, sizeof lens);
        REQUIRE(pthread_create(&t[i], NULL, work, &w[i]) == 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        CHECK_EQ(w[i].bad, 0);
    }
    uint64_t sum = 0, filed = 0;
    live_values(s, SHARED_KEYS, THRESHOLD, &sum, &filed);
    CHECK_EQ(STATS(s).total_size, sum);
    CHECK_EQ((uint64_t)value_files(path), filed);
    CHECK_EQ(temp_files(path), 0);
    backlite_check_report rep;
    CHECK_OK(backlite_storage_check(s, 0, &rep, &err));
    CHECK_EQ(rep.healthy, 1);
    backlite_storage_free(s);
    for (int j = 0; j < 4; j++) free(values[j]);
}

/* A new version tag drops every entry on open: their value files go too (the sweep
 * would leave them an hour, and only a check would find them). A reader opened before
 * still reads its value whole. */
static void a_new_version_tag_removes_the_files_of_the_entries_it_drops(void) {
    const char *path = tmp_path("tagged.db");
    size_t n = 100000;
    uint8_t *v = h_pattern(n, 71);
    backlite_storage *s = OPEN_SET(path, .version_tag = "one");
    REQUIRE(s != NULL);
    SET_BYTES(s, "a", v, n, NEVER);
    SET_BYTES(s, "b", v, n, NEVER);
    SET(s, "small", "x");
    backlite_value_reader *r = NULL;
    REQUIRE_OK(backlite_storage_open_reader(s, K("a"), &r, NULL, NULL, &err));
    backlite_storage_free(s);
    CHECK_EQ(value_files(path), 2);

    s = OPEN_SET(path, .version_tag = "two");
    REQUIRE(s != NULL);
    CHECK_EQ(STATS(s).count, 0);
    CHECK_EQ(STATS(s).total_size, 0);
    GET_MISSING(s, "a");
    CHECK_EQ(value_files(path), 0);
    uint8_t *got = malloc(n);
    REQUIRE(got != NULL);
    size_t at = 0, len = 0;
    while (at < n && backlite_value_reader_read(r, got + at, n - at, &len, NULL) == BACKLITE_RESULT_OK && len > 0)
        at += len;
    CHECK(at == n && memcmp(got, v, n) == 0);
    free(got);
    backlite_value_reader_free(r);

    /* The new tag's own large values are kept as ever. */
    SET_BYTES(s, "c", v, n, NEVER);
    CHECK_EQ(value_files(path), 1);
    backlite_check_report rep;
    CHECK_OK(backlite_storage_check(s, 0, &rep, &err));
    CHECK_EQ(rep.healthy, 1);
    backlite_storage_free(s);
    s = OPEN_SET(path, .version_tag = "two");
    REQUIRE(s != NULL);
    GET_BYTES_EQ(s, "c", v, n);
    CHECK_EQ(value_files(path), 1);
    backlite_storage_free(s);
    free(v);
}

/* An in-memory cache's value is copied out of the cache before a reader or a get hands
 * it over (a visitor or the caller may use the storage meanwhile): once, not twice. A
 * reader of a 64 MiB value grew the peak resident size by 128 MiB. */
static void a_reader_of_an_in_memory_value_copies_it_once(void) {
    if (h_under_valgrind() || UNDER_ASAN) SKIP("resident memory is the checker's under valgrind and ASan");
    size_t n = (size_t)64 << 20;
    backlite_storage *s = OPEN(":memory:", NULL);
    REQUIRE(s != NULL);
    uint8_t *v = h_pattern(n, 73);
    SET_BYTES(s, "big", v, n, NEVER);
    if (!reset_peak_rss()) {
        free(v);
        backlite_storage_free(s);
        SKIP("the kernel does not reset the peak RSS (/proc/self/clear_refs)");
    }
    long before = proc_status_kib("VmRSS");
    backlite_value_reader *r = NULL;
    uint64_t size = 0;
    CHECK_OK(backlite_storage_open_reader(s, K("big"), &r, &size, NULL, &err));
    CHECK_EQ(size, n);
    uint8_t buf[65536];
    size_t at = 0, got = 0;
    bool same = true;
    while (backlite_value_reader_read(r, buf, sizeof buf, &got, NULL) == BACKLITE_RESULT_OK && got > 0) {
        same = same && at + got <= n && memcmp(buf, v + at, got) == 0;
        at += got;
    }
    long grown_mib = (proc_status_kib("VmHWM") - before) / 1024;
    backlite_value_reader_free(r);
    CHECK(at == n && same);
    printf("# a reader of 64 MiB in memory grew the peak RSS by %ld MiB\n", grown_mib);
    CHECK(grown_mib <= 64 + 16);
    free(v);
    backlite_storage_free(s);
}

int main(void) {
    h_begin();
    RUN(a_new_version_tag_removes_the_files_of_the_entries_it_drops);
    RUN(a_reader_of_an_in_memory_value_copies_it_once);
    RUN(a_visitor_that_writes_the_key_it_streams);
    RUN(a_damaged_value_found_after_its_key_was_set_again_removes_only_itself);
    RUN(check_finds_every_wrong_file_whatever_the_threshold);
    RUN(a_read_only_cache_misses_its_damaged_file_values);
    RUN(a_never_handle_evicts_file_values_with_their_files);
    RUN(threads_of_one_handle_leave_one_file_per_large_entry);
    return h_end();
}
