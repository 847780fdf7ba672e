/*
 * The lazy orphan sweep (issue 16): each open looks at a bounded batch of the
 * `<cache>.values/` folder, from where the last open stopped, and removes the value
 * files and temporary files no row names once they are an hour old. Orphans of a
 * writer killed mid-set go after some opens; a file of a set in flight in another
 * process (young) is never taken; files BackLite did not make are never touched.
 */
#include "backlite.h"
#include "harness.h"
#include "value_folder.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#define NEVER BACKLITE_EXPIRATION_NEVER
#define THRESHOLD 4096
#define VALUE_LEN (1 << 20)
/* More than one open's batch (64), so that the sweep has to resume. */
#define MANY_ORPHANS 200

static backlite_storage *open_files(const char *path) {
    backlite_options *o = OPTIONS(1u << 30, BACKLITE_EVICTION_POLICY_LEAST_RECENTLY_USED);
    if (!o) abort();
    CHECK_OK(backlite_options_set_file_threshold(o, THRESHOLD));
    backlite_storage *s = OPEN(path, o);
    backlite_options_free(o);
    return s;
}

/* Writes `text` to `name` in the cache's folder. */
static void put(const char *cache, const char *name, const char *text) {
    char p[PATH_MAX + 400];
    snprintf(p, sizeof p, "%s/%s", folder_of(cache), name);
    REQUIRE(h_write_file(p, text, strlen(text)));
}

/* Whether `name` in the cache's folder holds exactly `text`. */
static bool holds(const char *cache, const char *name, const char *text) {
    char p[PATH_MAX + 400];
    snprintf(p, sizeof p, "%s/%s", folder_of(cache), name);
    size_t n = 0;
    uint8_t *got = h_read_file(p, &n);
    bool same = got != NULL && n == strlen(text) && memcmp(got, text, n) == 0;
    free(got);
    return same;
}

/* A name of ours: `v-<32 hex>.blv` (or `t-<32 hex>.tmp`) from `n`. */
static const char *our_name(char kind, unsigned n) {
    static char name[64];
    snprintf(name, sizeof name, "%c-%032x.%s", kind, n, kind == 'v' ? "blv" : "tmp");
    return name;
}

/* The child: sets 1 MiB values under k0..k4, a byte down `out` after each, until
 * killed (`times` < 0) or `times` sets are done. */
static void set_large(const char *path, int out, int times) {
    backlite_storage *s = open_files(path);
    if (!s) _exit(3);
    uint8_t *v = malloc(VALUE_LEN);
    if (!v) _exit(3);
    memset(v, 'v', VALUE_LEN);
    for (int i = 0; times < 0 || i < times; i++) {
        char key[8];
        snprintf(key, sizeof key, "k%d", i % 5);
        v[0] = (uint8_t)i;
        backlite_error *e = NULL;
        if (backlite_storage_set(s, K(key), v, VALUE_LEN, NEVER, &e) != BACKLITE_RESULT_OK) {
            fprintf(stderr, "set failed: %s\n", e ? backlite_error_message(e) : "?");
            _exit(4);
        }
        if (out >= 0 && write(out, "x", 1) != 1) _exit(5);
    }
    free(v);
    backlite_storage_free(s);
    _exit(0);
}

/* Every key k0..k4 present is a whole 1 MiB value, and check finds nothing wrong. */
static void entries_are_whole(const char *path) {
    backlite_storage *s = open_files(path);
    REQUIRE(s != NULL);
    for (int k = 0; k < 5; k++) {
        char key[8];
        snprintf(key, sizeof key, "k%d", k);
        backlite_buf b = {0};
        backlite_error *e = NULL;
        backlite_result rc = backlite_storage_get(s, K(key), &b, NULL, &e);
        CHECK(rc == BACKLITE_RESULT_OK || rc == BACKLITE_RESULT_NOT_FOUND);
        if (rc == BACKLITE_RESULT_OK) CHECK(b.len == VALUE_LEN && b.data[1] == 'v');
        backlite_buf_free(&b);
        backlite_error_free(e);
    }
    backlite_check_report rep;
    CHECK_OK(backlite_storage_check(s, 0, &rep, &err));
    CHECK_EQ(rep.damaged, 0);
    CHECK_EQ(rep.orphan_values, 0);
    CHECK_EQ(count_named(path, "v-", ".blv"), (int)STATS(s).count);
    backlite_storage_free(s);
}

static void orphans_of_a_killed_writer_go_after_some_opens(void) {
    const char *tmp = tmp_path("killed.db");
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s", tmp);
    int gate[2];
    REQUIRE(pipe(gate) == 0);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        close(gate[0]);
        set_large(path, gate[1], -1);
    }
    close(gate[1]);
    char buf[1];
    for (int got = 0; got < 7; got++) REQUIRE(read(gate[0], buf, 1) == 1);
    kill(pid, SIGKILL); /* wherever it is in its next set */
    int status = 0;
    waitpid(pid, &status, 0);
    close(gate[0]);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

    /* More orphans than one open looks at, and files that are not BackLite's. */
    for (unsigned i = 0; i < MANY_ORPHANS; i++) put(path, our_name(i % 2 ? 'v' : 't', i + 1), "orphan");
    const char *foreign[] = {"notes.txt", "v-12.blv", "t-zz.tmp", "V-AB.BLV"};
    for (int i = 0; i < 4; i++) put(path, foreign[i], "mine");
    age_folder(path);
    /* A set in flight in another process: a temporary file being written, and a file
     * renamed into place whose row has not committed yet. Both are young. */
    put(path, our_name('t', 0xf1f1), "in flight");
    put(path, our_name('v', 0xf2f2), "in flight");

    int before = count_named(path, "v-", ".blv") + count_named(path, "t-", ".tmp");
    backlite_storage *s = open_files(path);
    REQUIRE(s != NULL);
    backlite_storage_free(s);
    int after = count_named(path, "v-", ".blv") + count_named(path, "t-", ".tmp");
    CHECK(before - after > 0 && before - after <= 64); /* one batch per open */
    for (int i = 0; i < 2 * (MANY_ORPHANS / 64 + 2); i++) {
        s = open_files(path);
        REQUIRE(s != NULL);
        backlite_storage_free(s);
    }
    CHECK(holds(path, our_name('t', 0xf1f1), "in flight"));
    CHECK(holds(path, our_name('v', 0xf2f2), "in flight"));
    for (int i = 0; i < 4; i++) CHECK(holds(path, foreign[i], "mine"));
    /* Only the young temporary file is left of the t- files; of the v- files, the
     * entries' and the young one (the foreign "v-12.blv" does not match the count). */
    CHECK_EQ(count_named(path, "t-", ".tmp"), 1 + 1 /* "t-zz.tmp" */);
    char p[PATH_MAX + 400];
    snprintf(p, sizeof p, "%s/%s", folder_of(path), our_name('v', 0xf2f2));
    REQUIRE(unlink(p) == 0);
    snprintf(p, sizeof p, "%s/v-12.blv", folder_of(path));
    REQUIRE(unlink(p) == 0);
    entries_are_whole(path);
}

static void a_concurrent_writer_loses_no_file_to_the_sweep(void) {
    const char *tmp = tmp_path("concurrent.db");
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s", tmp);
    backlite_storage *s = open_files(path); /* the folder exists before the writer */
    REQUIRE(s != NULL);
    uint8_t v[THRESHOLD];
    memset(v, 1, sizeof v);
    CHECK_OK(backlite_storage_set(s, K("first"), v, sizeof v, NEVER, &err));
    backlite_storage_free(s);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) set_large(path, -1, 60);
    /* Open (and sweep) over and over while it writes. */
    int opens = 0, status = 0;
    while (waitpid(pid, &status, WNOHANG) == 0) {
        s = open_files(path);
        REQUIRE(s != NULL);
        backlite_storage_free(s);
        opens++;
    }
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0); /* every set succeeded */
    printf("# %d opens while another process set 60 large values\n", opens);
    entries_are_whole(path);
    s = open_files(path);
    REQUIRE(s != NULL);
    CHECK_EQ(STATS(s).count, 6);
    backlite_storage_free(s);
}

int main(void) {
    h_begin();
    RUN(orphans_of_a_killed_writer_go_after_some_opens);
    RUN(a_concurrent_writer_loses_no_file_to_the_sweep);
    return h_end();
}
