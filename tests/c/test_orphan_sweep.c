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

#define THRESHOLD 4096
#define VALUE_LEN (1 << 20)
/* More than one open's batch (64), so that the sweep has to resume. */
#define MANY_ORPHANS 200

static backlite_storage *open_files(const char *path) {
    return OPEN_SET(path, .max_size = 1u << 30, .file_threshold = THRESHOLD);
}

/* Sets 1 MiB values under k0..k4. */
static const value_writer large_sets = {open_files, VALUE_LEN, 5};

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

/* Every key k0..k4 present is a whole 1 MiB value, and check finds nothing wrong. */
static void entries_are_whole(const char *path) {
    backlite_storage *s = open_files(path);
    REQUIRE(s != NULL);
    CHECK_WRITER_ENTRIES(large_sets, s);
    backlite_check_report rep;
    CHECK_OK(backlite_storage_check(s, 0, &rep, &err));
    CHECK_EQ(rep.damaged, 0);
    CHECK_EQ(rep.orphan_values, 0);
    CHECK_EQ(value_files(path), (int)STATS(s).count);
    backlite_storage_free(s);
}

static void orphans_of_a_killed_writer_go_after_some_opens(void) {
    const char *tmp = tmp_path("killed.db");
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s", tmp);
    REQUIRE(WRITER_KILLED_AFTER(large_sets, path, 7)); /* wherever it is in its next set */

    /* More orphans than one open looks at, and files that are not BackLite's. */
    for (unsigned i = 0; i < MANY_ORPHANS; i++) put(path, our_name(i % 2 ? 'v' : 't', i + 1), "orphan");
    const char *foreign[] = {"notes.txt", "v-12.blv", "t-zz.tmp", "V-AB.BLV"};
    for (int i = 0; i < 4; i++) put(path, foreign[i], "mine");
    age_folder(path);
    /* A set in flight in another process: a temporary file being written, and a file
     * renamed into place whose row has not committed yet. Both are young. */
    put(path, our_name('t', 0xf1f1), "in flight");
    put(path, our_name('v', 0xf2f2), "in flight");

    int before = value_files(path) + temp_files(path);
    backlite_storage *s = open_files(path);
    REQUIRE(s != NULL);
    backlite_storage_free(s);
    int after = value_files(path) + temp_files(path);
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
    CHECK_EQ(temp_files(path), 1 + 1 /* "t-zz.tmp" */);
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
    if (pid == 0) writer_run(large_sets, path, -1, 60);
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
