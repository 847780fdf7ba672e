/*
 * A cache moved over the path of one that a handle still has open (`mv new.db
 * cache.db` while a program runs). SQLite pairs the -wal and -shm with a database by
 * name only, so the moved cache took the open handle's log for its own: a new handle
 * read the old file's entries and missed the moved cache's, and the old pages were
 * folded into the moved file, its own entries lost. Such an open now fails with IO
 * until the handle of the old file is closed; then the path opens as the moved cache.
 */
#include "harness.h"

static void fill_old(backlite_storage *s) {
    for (int i = 0; i < 20; i++) {
        char k[16];
        snprintf(k, sizeof k, "old%d", i);
        SET(s, k, "OLD VALUE");
    }
}

/* a cache at `other` holding only b = "new" */
static void make_other(const char *other) {
    backlite_storage *o = OPEN(other, NULL);
    REQUIRE(o != NULL);
    SET(o, "b", "new");
    backlite_storage_free(o);
}

/* opening `path` now: never the old file's entries; refused (IO) or the moved cache */
static void expect_never_the_old_file(const char *path) {
    backlite_storage *u = NULL;
    backlite_error *e = NULL;
    backlite_result rc = backlite_storage_open(path, NULL, &u, &e);
    if (rc == BACKLITE_RESULT_OK) {
        CHECK(!HAS(u, "old1")); /* was there: the open handle's entry */
        GET_EQ(u, "b", "new");  /* was NOT_FOUND */
        backlite_storage_free(u);
    } else {
        CHECK_EQ(rc, BACKLITE_RESULT_IO);
        CHECK(e != NULL && strstr(backlite_error_message(e), "close that handle") != NULL);
    }
    backlite_error_free(e);
}

/* once the old file's handles are closed: the moved cache, whole */
static void expect_the_moved_cache(const char *path) {
    backlite_storage *u = OPEN(path, NULL);
    REQUIRE(u != NULL);
    GET_EQ(u, "b", "new"); /* was NOT_FOUND: the old pages folded into it */
    CHECK(!HAS(u, "old1"));
    backlite_stats st = STATS(u);
    CHECK_EQ(st.count, 1);
    CHECK_EQ(st.total_size, 3);
    backlite_storage_free(u);
}

static void a_cache_moved_over_one_open_here_never_takes_its_log(void) {
    const char *path = tmp_path("moved_over.db");
    char other[PATH_MAX];
    snprintf(other, sizeof other, "%s", tmp_path("other.db"));
    backlite_storage *s = OPEN(path, NULL);
    REQUIRE(s != NULL);
    fill_old(s);
    make_other(other);
    REQUIRE(rename(other, path) == 0);
    expect_never_the_old_file(path);
    /* the old handle writes its own file meanwhile (or fails IO), never the moved one */
    backlite_error *e = NULL;
    backlite_result rc = backlite_storage_set(s, K("more"), K("x"), NEVER, &e);
    CHECK(rc == BACKLITE_RESULT_OK || rc == BACKLITE_RESULT_IO);
    backlite_error_free(e);
    expect_never_the_old_file(path);
    backlite_storage_free(s);
    expect_the_moved_cache(path);
}

static void a_cache_moved_over_one_open_in_another_process_never_takes_its_log(void) {
    const char *path = tmp_path("moved_over_child.db");
    char other[PATH_MAX];
    snprintf(other, sizeof other, "%s", tmp_path("other_child.db"));
    int to_child[2], to_parent[2];
    REQUIRE(pipe(to_child) == 0 && pipe(to_parent) == 0);
    fflush(NULL);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        backlite_storage *s = NULL;
        if (backlite_storage_open(path, NULL, &s, NULL) != BACKLITE_RESULT_OK) _exit(10);
        for (int i = 0; i < 20; i++) {
            char k[16];
            snprintf(k, sizeof k, "old%d", i);
            if (backlite_storage_set(s, K(k), K("OLD VALUE"), NEVER, NULL) != BACKLITE_RESULT_OK) _exit(11);
        }
        char c = 1;
        if (write(to_parent[1], &c, 1) != 1 || read(to_child[0], &c, 1) != 1) _exit(12);
        backlite_storage_free(s);
        _exit(0);
    }
    char c = 0;
    REQUIRE(read(to_parent[0], &c, 1) == 1);
    make_other(other);
    REQUIRE(rename(other, path) == 0);
    expect_never_the_old_file(path);
    REQUIRE(write(to_child[1], &c, 1) == 1);
    CHECK_EQ(CHILD_EXIT_CODE(pid), 0);
    expect_the_moved_cache(path);
    close(to_child[0]);
    close(to_child[1]);
    close(to_parent[0]);
    close(to_parent[1]);
}

/* the usual opens are not refused: a crash's log, a file open in another process */
static void a_log_of_this_file_is_kept(void) {
    const char *path = tmp_path("own_log.db");
    int to_parent[2];
    REQUIRE(pipe(to_parent) == 0);
    fflush(NULL);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        backlite_storage *s = NULL;
        if (backlite_storage_open(path, NULL, &s, NULL) != BACKLITE_RESULT_OK) _exit(10);
        if (backlite_storage_set(s, K("a"), K("1"), NEVER, NULL) != BACKLITE_RESULT_OK) _exit(11);
        char c = 1;
        if (write(to_parent[1], &c, 1) != 1) _exit(12);
        for (;;) pause();
    }
    char c = 0;
    REQUIRE(read(to_parent[0], &c, 1) == 1);
    backlite_storage *s = OPEN(path, NULL); /* open in the child meanwhile */
    REQUIRE(s != NULL);
    GET_EQ(s, "a", "1");
    backlite_storage_free(s);
    CHECK(KILL_CHILD(pid)); /* its log left beside the file */
    s = OPEN(path, NULL);
    REQUIRE(s != NULL);
    GET_EQ(s, "a", "1");
    backlite_storage_free(s);
    close(to_parent[0]);
    close(to_parent[1]);
}

int main(void) {
    h_begin();
    RUN(a_cache_moved_over_one_open_here_never_takes_its_log);
    RUN(a_cache_moved_over_one_open_in_another_process_never_takes_its_log);
    RUN(a_log_of_this_file_is_kept);
    return h_end();
}
