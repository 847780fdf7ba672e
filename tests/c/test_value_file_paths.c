/*
 * Values kept in files (issue 16) and the ways a cache's path can be given: through a
 * symbolic link (one process by the link, another by the file's own name), by a
 * relative path before a chdir, and a cache file renamed or copied without its folder.
 * Whatever the name, one cache has one folder of values, and a large value set by one
 * name reads back by the other.
 */
#include "backlite.h"
#include "harness.h"
#include "value_folder.h"

#include <grp.h>


#define THRESHOLD 4096

static backlite_storage *open_threshold(const char *path) {
    return OPEN_SET(path, .max_size = 1u << 30, .file_threshold = THRESHOLD);
}

/* A cache opened through a link and by its own name: one folder, beside the file, and
 * each name reads the values the other set. */
static void a_cache_opened_through_a_link_keeps_its_values_beside_the_file(void) {
    char real[PATH_MAX + 64], link[PATH_MAX], sub[PATH_MAX];
    snprintf(sub, sizeof sub, "%s", tmp_path("real"));
    REQUIRE(mkdir(sub, 0700) == 0);
    snprintf(real, sizeof real, "%s/cache.db", sub);
    snprintf(link, sizeof link, "%s", tmp_path("link.db"));
    backlite_storage *s = open_threshold(real);
    REQUIRE(s != NULL);
    backlite_storage_free(s);
    REQUIRE(symlink(real, link) == 0);
    size_t n = 50000;
    uint8_t *a = h_pattern(n, 1), *b = h_pattern(n, 2);
    s = open_threshold(link);
    REQUIRE(s != NULL);
    SET_BYTES(s, "by-link", a, n, NEVER);
    backlite_storage_free(s);
    /* The folder is the file's, never the link's. */
    CHECK(h_exists(folder_of(real)));
    CHECK(!h_exists(folder_of(link)));
    s = open_threshold(real);
    REQUIRE(s != NULL);
    GET_BYTES_EQ(s, "by-link", a, n);
    SET_BYTES(s, "by-name", b, n, NEVER);
    backlite_storage_free(s);
    s = open_threshold(link);
    REQUIRE(s != NULL);
    GET_BYTES_EQ(s, "by-link", a, n);
    GET_BYTES_EQ(s, "by-name", b, n);
    backlite_check_report rep;
    CHECK_OK(backlite_storage_check(s, 0, &rep, &err));
    CHECK_EQ(rep.healthy, 1);
    CHECK_EQ(rep.orphan_values, 0);
    backlite_storage_free(s);
    CHECK_EQ(value_files(real), 2);
    free(a);
    free(b);
}

/* A link to a link, in another folder, relative: the same. */
static void a_chain_of_relative_links_leads_to_the_same_folder(void) {
    char dir1[PATH_MAX], dir2[PATH_MAX], real[PATH_MAX + 64], l1[PATH_MAX + 64], l2[PATH_MAX + 64];
    snprintf(dir1, sizeof dir1, "%s", tmp_path("d1"));
    snprintf(dir2, sizeof dir2, "%s", tmp_path("d2"));
    REQUIRE(mkdir(dir1, 0700) == 0 && mkdir(dir2, 0700) == 0);
    snprintf(real, sizeof real, "%s/c.db", dir1);
    snprintf(l1, sizeof l1, "%s/l1.db", dir1);
    snprintf(l2, sizeof l2, "%s/l2.db", dir2);
    backlite_storage *s = open_threshold(real);
    REQUIRE(s != NULL);
    backlite_storage_free(s);
    char target[PATH_MAX + 64];
    REQUIRE(symlink("c.db", l1) == 0);
    snprintf(target, sizeof target, "../%s/l1.db", strrchr(dir1, '/') + 1);
    REQUIRE(symlink(target, l2) == 0);
    size_t n = 20000;
    uint8_t *v = h_pattern(n, 3);
    s = open_threshold(l2);
    REQUIRE(s != NULL);
    SET_BYTES(s, "k", v, n, NEVER);
    backlite_storage_free(s);
    CHECK_EQ(value_files(real), 1);
    CHECK(!h_exists(folder_of(l1)) && !h_exists(folder_of(l2)));
    s = open_threshold(real);
    REQUIRE(s != NULL);
    GET_BYTES_EQ(s, "k", v, n);
    backlite_storage_free(s);
    free(v);
}

/* Opened by a relative path, then the process changes its directory: the values are
 * still found, written and removed in the folder beside the file. */
static void a_relative_path_then_chdir_keeps_the_folder(void) {
    char dir[PATH_MAX], cwd[PATH_MAX], real[PATH_MAX + 64];
    snprintf(dir, sizeof dir, "%s", tmp_path("rel"));
    REQUIRE(mkdir(dir, 0700) == 0);
    REQUIRE(getcwd(cwd, sizeof cwd) != NULL);
    REQUIRE(chdir(dir) == 0);
    backlite_storage *s = open_threshold("c.db");
    REQUIRE(chdir(h_tmp_root()) == 0);
    REQUIRE(s != NULL);
    snprintf(real, sizeof real, "%s/c.db", dir);
    size_t n = 30000;
    uint8_t *v = h_pattern(n, 4);
    SET_BYTES(s, "k", v, n, NEVER);
    CHECK(!h_exists("c.db.values"));
    CHECK_EQ(value_files(real), 1);
    GET_BYTES_EQ(s, "k", v, n);
    CHECK_OK(backlite_storage_delete(s, K("k"), &err));
    CHECK_EQ(value_files(real), 0);
    backlite_storage_free(s);
    REQUIRE(chdir(cwd) == 0);
    free(v);
}

/* A cache file renamed (or copied) without its folder: its large values are misses
 * (their rows go), its small ones still read, and the folder left at the old name is
 * not touched by the renamed file. */
static void a_cache_renamed_without_its_folder_misses_its_large_values_only(void) {
    char a[PATH_MAX], b[PATH_MAX], c[PATH_MAX];
    snprintf(a, sizeof a, "%s", tmp_path("a.db"));
    snprintf(b, sizeof b, "%s", tmp_path("b.db"));
    snprintf(c, sizeof c, "%s", tmp_path("c.db"));
    size_t n = 30000;
    uint8_t *v = h_pattern(n, 5);
    backlite_storage *s = open_threshold(a);
    REQUIRE(s != NULL);
    SET_BYTES(s, "large", v, n, NEVER);
    SET_BYTES(s, "small", v, 100, NEVER);
    backlite_storage_free(s);
    /* A copy, byte for byte, and the original renamed. */
    size_t len = 0;
    uint8_t *bytes = h_read_file(a, &len);
    REQUIRE(bytes != NULL);
    REQUIRE(h_write_file(c, bytes, len));
    free(bytes);
    REQUIRE(rename(a, b) == 0);
    for (int i = 0; i < 2; i++) {
        const char *path = i == 0 ? b : c;
        s = open_threshold(path);
        REQUIRE(s != NULL);
        GET_BYTES_EQ(s, "small", v, 100);
        GET_MISSING(s, "large");
        CHECK_EQ(STATS(s).count, 1);
        CHECK_EQ(STATS(s).total_size, 100);
        backlite_check_report rep;
        CHECK_OK(backlite_storage_check(s, 1, &rep, &err));
        CHECK_EQ(rep.healthy, 1);
        CHECK_OK(backlite_storage_vacuum(s, &err));
        /* A new large value goes beside the new name. */
        SET_BYTES(s, "large", v, n, NEVER);
        GET_BYTES_EQ(s, "large", v, n);
        backlite_storage_free(s);
        CHECK_EQ(value_files(path), 1);
    }
    /* The old name's folder, which no cache names now, is left as it was. */
    CHECK_EQ(value_files(a), 1);
    free(v);
}

/* The names in `dir` other than "." and "..". */
static int entries_in(const char *dir) {
    DIR *d = opendir(dir);
    if (d == NULL) return -1;
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return n;
}

/* The folder of values replaced by a link to another folder, before the cache opens
 * and while it is open (the other folder holding a copy of the marker, or not):
 * nothing is ever written into the other folder, and its files stay. */
static void a_link_in_place_of_the_folder_is_never_written_through(void) {
    char path[PATH_MAX], other[PATH_MAX], marker[PATH_MAX + 64], theirs[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s", tmp_path("c.db"));
    snprintf(other, sizeof other, "%s", tmp_path("other"));
    size_t n = 20000;
    uint8_t *v = h_pattern(n, 6);
    for (int with_marker = 0; with_marker < 2; with_marker++) {
        for (int while_open = 0; while_open < 2; while_open++) {
            backlite_storage *s = open_threshold(path);
            REQUIRE(s != NULL);
            SET_BYTES(s, "before", v, n, NEVER);
            if (!while_open) backlite_storage_free(s);
            REQUIRE(mkdir(other, 0700) == 0);
            snprintf(theirs, sizeof theirs, "%s/theirs.txt", other);
            REQUIRE(h_write_file(theirs, "mine", 4));
            if (with_marker) {
                char ours[PATH_MAX + 64];
                REQUIRE(snprintf(ours, sizeof ours, "%s/BACKLITE-VALUES", folder_of(path)) <
                        (int)sizeof ours);
                size_t len = 0;
                uint8_t *text = h_read_file(ours, &len);
                REQUIRE(text != NULL);
                snprintf(marker, sizeof marker, "%s/BACKLITE-VALUES", other);
                REQUIRE(h_write_file(marker, text, len));
                free(text);
            }
            int before = entries_in(other);
            h_rm_rf(folder_of(path));
            REQUIRE(symlink(other, folder_of(path)) == 0);
            if (!while_open) {
                s = open_threshold(path);
                REQUIRE(s != NULL);
            }
            /* Never the value: a miss, or IO for a folder not ours (as for one its
               reader cannot enter). */
            backlite_buf b = {0};
            backlite_error *e0 = NULL;
            backlite_result rc = backlite_storage_get(s, K("before"), &b, NULL, &e0);
            CHECK(rc == BACKLITE_RESULT_NOT_FOUND || rc == BACKLITE_RESULT_IO);
            backlite_buf_free(&b);
            backlite_error_free(e0);
            CHECK_RC(backlite_storage_set(s, K("k"), v, n, NEVER, &err), BACKLITE_RESULT_IO);
            backlite_entry e = {K("batch"), v, n, NEVER};
            CHECK_RC(backlite_storage_set_many(s, &e, 1, &err), BACKLITE_RESULT_IO);
            backlite_check_report rep;
            CHECK_RC(backlite_storage_check(s, 1, &rep, &err), BACKLITE_RESULT_IO);
            CHECK_RC(backlite_storage_vacuum(s, &err), BACKLITE_RESULT_IO);
            CHECK_OK(backlite_storage_clear(s, &err));
            SET(s, "small", "works");
            GET_EQ(s, "small", "works");
            backlite_storage_free(s);
            CHECK_EQ(entries_in(other), before);
            CHECK(h_exists(theirs));
            struct stat st;
            CHECK(lstat(folder_of(path), &st) == 0 && S_ISLNK(st.st_mode));
            REQUIRE(unlink(folder_of(path)) == 0);
            h_rm_rf(other);
            unlink(path);
        }
    }
    free(v);
}

/* In a child, with a bound on hangs: opens the cache, sets and gets a large value,
 * and checks it. 0 when all went well. */
static int use_in_child(const char *path) {
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) abort();
    if (pid == 0) {
        alarm(20); /* a hang, not a slow call */
        backlite_storage *s = open_threshold(path);
        if (!s) _exit(2);
        uint8_t *v = h_pattern(20000, 8);
        backlite_error *e = NULL;
        backlite_buf b = {0};
        if (backlite_storage_set(s, K("k"), v, 20000, NEVER, &e) != BACKLITE_RESULT_OK) _exit(3);
        if (backlite_storage_get(s, K("k"), &b, NULL, &e) != BACKLITE_RESULT_OK) _exit(4);
        if (b.len != 20000 || memcmp(b.data, v, 20000) != 0) _exit(5);
        backlite_buf_free(&b);
        backlite_check_report rep;
        if (backlite_storage_check(s, 1, &rep, &e) != BACKLITE_RESULT_OK || !rep.healthy) _exit(6);
        backlite_storage_free(s);
        free(v);
        _exit(0);
    }
    return CHILD_EXIT_CODE(pid);
}

/* The folder's record of where the orphan sweep stopped (BACKLITE-SWEEP) replaced by
 * a FIFO, a link to an endless file or to a file of the user's, or a folder: each
 * open goes on without reading or waiting on it, and it is left as it was. */
static void the_sweeps_place_replaced_by_something_else_is_never_read(void) {
    char path[PATH_MAX], cursor[PATH_MAX + 64], mine[PATH_MAX];
    snprintf(path, sizeof path, "%s", tmp_path("c.db"));
    snprintf(mine, sizeof mine, "%s", tmp_path("mine.txt"));
    REQUIRE(h_write_file(mine, "12", 2));
    backlite_storage *s = open_threshold(path);
    REQUIRE(s != NULL);
    uint8_t *v = h_pattern(20000, 9);
    SET_BYTES(s, "first", v, 20000, NEVER);
    backlite_storage_free(s);
    REQUIRE(snprintf(cursor, sizeof cursor, "%s/BACKLITE-SWEEP", folder_of(path)) <
            (int)sizeof cursor);
    for (int kind = 0; kind < 4; kind++) {
        unlink(cursor);
        rmdir(cursor);
        switch (kind) {
        case 0: REQUIRE(mkfifo(cursor, 0600) == 0); break;
        case 1: REQUIRE(symlink("/dev/zero", cursor) == 0); break;
        case 2: REQUIRE(symlink(mine, cursor) == 0); break;
        default: REQUIRE(mkdir(cursor, 0700) == 0); break;
        }
        /* Several opens: the sweep's place would be written after the first. */
        for (int i = 0; i < 3; i++) CHECK_EQ(use_in_child(path), 0);
        struct stat st;
        REQUIRE(lstat(cursor, &st) == 0);
        CHECK(kind == 0 ? S_ISFIFO(st.st_mode) : kind == 3 ? S_ISDIR(st.st_mode) : S_ISLNK(st.st_mode));
    }
    size_t len = 0;
    uint8_t *text = h_read_file(mine, &len);
    CHECK(text != NULL && len == 2 && memcmp(text, "12", 2) == 0);
    free(text);
    s = open_threshold(path);
    REQUIRE(s != NULL);
    GET_BYTES_EQ(s, "first", v, 20000);
    backlite_storage_free(s);
    free(v);
}

/* A cache whose name is as long as a name may be with ".values" added (255 bytes in
 * all) keeps its large values in files like any other. */
static void a_cache_of_a_long_name_keeps_its_large_values(void) {
    char name[256], path[PATH_MAX + 300];
    size_t len = 255 - strlen(".values");
    memset(name, 'n', len);
    memcpy(name + len - 3, ".db", 3);
    name[len] = '\0';
    REQUIRE(snprintf(path, sizeof path, "%s/%s", h_tmp_root(), name) < (int)sizeof path);
    backlite_storage *s = open_threshold(path);
    REQUIRE(s != NULL);
    size_t n = 20000;
    uint8_t *v = h_pattern(n, 10);
    SET_BYTES(s, "k", v, n, NEVER);
    GET_BYTES_EQ(s, "k", v, n);
    CHECK_EQ(value_files(path), 1);
    CHECK_OK(backlite_storage_clear(s, &err));
    backlite_storage_free(s);
    unlink(path);
    h_rm_rf(folder_of(path));
    free(v);
}

/* A set of a large value with expiration 0 ("already expired": it succeeds, stores
 * nothing, and removes the older value) writes no file: it succeeds where no file
 * could be written (here a file of the user's where the folder would be). */
static void a_large_set_already_expired_writes_no_file(void) {
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s", tmp_path("c.db"));
    REQUIRE(h_write_file(folder_of(path), "mine", 4));
    backlite_storage *s = open_threshold(path);
    REQUIRE(s != NULL);
    size_t n = 20000;
    uint8_t *v = h_pattern(n, 11);
    SET(s, "k", "older");
    CHECK_RC(backlite_storage_set(s, K("fresh"), v, n, NEVER, &err), BACKLITE_RESULT_IO);
    CHECK_OK(backlite_storage_set(s, K("k"), v, n, 0, &err));
    GET_MISSING(s, "k");
    CHECK_OK(backlite_storage_set(s, K("never-stored"), v, n, 0, &err));
    backlite_entry e = {K("batch"), v, n, 0};
    CHECK_OK(backlite_storage_set_many(s, &e, 1, &err));
    CHECK_EQ(STATS(s).count, 0);
    backlite_storage_free(s);
    size_t len = 0;
    uint8_t *text = h_read_file(folder_of(path), &len);
    CHECK(text != NULL && len == 4 && memcmp(text, "mine", 4) == 0);
    free(text);
    free(v);
}

/* The work of a_folder_its_user_cannot_write_keeps_its_values, as a user that is not
 * root (permissions bind it). */
static void in_a_folder_that_cannot_be_written(const char *path) {
    backlite_storage *s = open_threshold(path);
    REQUIRE(s != NULL);
    size_t n = 20000;
    uint8_t *v = h_pattern(n, 12), *w = h_pattern(n, 13);
    SET_BYTES(s, "a", v, n, NEVER);
    REQUIRE(chmod(folder_of(path), 0500) == 0);
    CHECK_RC(backlite_storage_set(s, K("b"), v, n, NEVER, &err), BACKLITE_RESULT_IO);
    CHECK_RC(backlite_storage_set(s, K("a"), w, n, NEVER, &err), BACKLITE_RESULT_IO);
    GET_BYTES_EQ(s, "a", v, n); /* the older value, whole */
    SET(s, "small", "works");
    CHECK_EQ(STATS(s).count, 2);
    CHECK_EQ(STATS(s).total_size, n + 5);
    backlite_storage_free(s);
    /* Opened again: served as before; a delete takes the row, and its file waits. */
    s = open_threshold(path);
    REQUIRE(s != NULL);
    GET_BYTES_EQ(s, "a", v, n);
    CHECK_OK(backlite_storage_delete(s, K("a"), &err));
    GET_MISSING(s, "a");
    CHECK_EQ(value_files(path), 1);
    REQUIRE(chmod(folder_of(path), 0700) == 0);
    backlite_check_report rep;
    CHECK_OK(backlite_storage_check(s, 1, &rep, &err));
    CHECK_EQ(rep.healthy, 1);
    CHECK_EQ(value_files(path), 0);
    SET_BYTES(s, "b", w, n, NEVER);
    GET_BYTES_EQ(s, "b", w, n);
    backlite_storage_free(s);
    free(v);
    free(w);
}

/* The folder made unwritable (mode 0500) for its user: large sets are IO and keep
 * the older value, reads go on, small sets too; a delete leaves the file, which check
 * with repair removes once the folder can be written again. */
static void a_folder_its_user_cannot_write_keeps_its_values(void) { as_nobody("ro-folder", in_a_folder_that_cannot_be_written); }

/* The folder removed while open and a folder of the user's made in its place (which
 * ext4 may give the very inode number of the folder removed): a large set is IO and
 * writes nothing into it, whatever number it has. Ten rounds, for the number to come
 * back on a file system that reuses them. */
static void a_folder_made_in_place_of_ours_is_never_written(void) {
    char path[PATH_MAX];
    REQUIRE(snprintf(path, sizeof path, "%s", tmp_path("reused.db")) < (int)sizeof path);
    backlite_storage *s = open_threshold(path);
    REQUIRE(s != NULL);
    size_t n = 20000;
    uint8_t *v = h_pattern(n, 12);
    SET_BYTES(s, "k", v, n, NEVER);
    for (int round = 0; round < 10; round++) {
        h_rm_rf(folder_of(path));
        REQUIRE(mkdir(folder_of(path), 0700) == 0);
        CHECK_RC(backlite_storage_set(s, K("k"), v, n, NEVER, &err), BACKLITE_RESULT_IO);
        DIR *d = opendir(folder_of(path));
        REQUIRE(d != NULL);
        int names = 0;
        for (struct dirent *e; (e = readdir(d)) != NULL;)
            names += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
        closedir(d);
        CHECK_EQ(names, 0);
    }
    SET(s, "small", "works");
    GET_EQ(s, "small", "works");
    backlite_storage_free(s);
    free(v);
}

int main(void) {
    h_begin();
    RUN(a_cache_opened_through_a_link_keeps_its_values_beside_the_file);
    RUN(a_chain_of_relative_links_leads_to_the_same_folder);
    RUN(a_relative_path_then_chdir_keeps_the_folder);
    RUN(a_cache_renamed_without_its_folder_misses_its_large_values_only);
    RUN(a_link_in_place_of_the_folder_is_never_written_through);
    RUN(the_sweeps_place_replaced_by_something_else_is_never_read);
    RUN(a_cache_of_a_long_name_keeps_its_large_values);
    RUN(a_large_set_already_expired_writes_no_file);
    RUN(a_folder_its_user_cannot_write_keeps_its_values);
    RUN(a_folder_made_in_place_of_ours_is_never_written);
    return h_end();
}
