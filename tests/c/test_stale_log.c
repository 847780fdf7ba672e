/*
 * test_stale_log.c: a cache file deleted while its write-ahead log (`-wal`, `-shm`)
 * stays beside it, and the path opened again. SQLite pairs a log with a database by
 * name only, so the new cache took the old file's log as its own: its "empty" cache
 * held the deleted file's entries, or, once the old file had been checkpointed, the
 * log's pages over a new file made it corrupt (853 of 858 gets failed and SQLite's
 * integrity check listed damaged pages). The opening rule (API.md, "Opening": a
 * missing file is created) means a new, empty cache: a log nobody uses is removed
 * first; one still in use (the file was deleted while a handle has it open, here or
 * in another process) makes the open fail with IO until that handle is closed.
 */
#include "harness.h"

#define OLD_ENTRIES 6000 /* 300 bytes each: past SQLite's automatic checkpoint */

static const char *side(const char *path, const char *suffix) {
    static char names[2][PATH_MAX + 8];
    static int next;
    char *out = names[next++ % 2];
    snprintf(out, PATH_MAX + 8, "%s%s", path, suffix);
    return out;
}

/* fills `s` with OLD_ENTRIES entries "old<i>", then a few "late<i>" (in the log) */
static void fill_old(backlite_storage *s) {
    uint8_t v[300];
    memset(v, 'o', sizeof v);
    backlite_entry batch[100];
    char keys[100][16];
    for (int i = 0; i < OLD_ENTRIES; i += 100) {
        for (int j = 0; j < 100; j++) {
            snprintf(keys[j], sizeof keys[j], "old%d", i + j);
            batch[j] = (backlite_entry){(const uint8_t *)keys[j], strlen(keys[j]), v, sizeof v, NEVER};
        }
        CHECK_OK(backlite_storage_set_many(s, batch, 100, &err));
    }
    for (int i = 0; i < 20; i++) {
        char k[16];
        snprintf(k, sizeof k, "late%d", i);
        SET_BYTES(s, k, v, sizeof v, NEVER);
    }
}

/* `path` is a new, empty, healthy cache: no old entry, and it stores and reads */
static void expect_new_and_empty(const char *path) {
    backlite_storage *s = OPEN(path, NULL);
    REQUIRE(s != NULL);
    backlite_stats st = STATS(s);
    CHECK_EQ(st.count, 0);
    CHECK_EQ(st.total_size, 0);
    for (int i = 0; i < OLD_ENTRIES; i += 97) {
        char k[16];
        snprintf(k, sizeof k, "old%d", i);
        backlite_buf b = {NULL, 0};
        CHECK_RC(backlite_storage_get(s, K(k), &b, NULL, &err), BACKLITE_RESULT_NOT_FOUND);
    }
    CHECK(!HAS(s, "late3"));
    for (int i = 0; i < 200; i++) {
        char k[16];
        snprintf(k, sizeof k, "new%d", i);
        SET(s, k, "new value");
    }
    GET_EQ(s, "new7", "new value");
    backlite_check_report rep;
    memset(&rep, 0, sizeof rep);
    CHECK_OK(backlite_storage_check(s, 0, &rep, &err));
    CHECK_EQ(rep.healthy, 1);
    CHECK_EQ(rep.integrity_ok, 1);
    st = STATS(s);
    CHECK_EQ(st.count, 200);
    backlite_storage_free(s);
}

/* A writer killed with its log beside the file; the file deleted (rm cache.db, the log
 * left): the next open makes a new, empty cache. */
static void a_log_left_by_a_killed_writer_is_not_the_new_caches(void) {
    const char *path = tmp_path("killed.db");
    fflush(NULL);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        backlite_storage *s = OPEN(path, NULL);
        if (s != NULL) fill_old(s);
        raise(SIGKILL);
    }
    int status;
    waitpid(pid, &status, 0);
    REQUIRE(h_exists(side(path, "-wal")));
    REQUIRE(unlink(path) == 0);
    expect_new_and_empty(path);
}

/* This process still has the deleted file open: its log is in use, so the open fails
 * (IO, saying why) and changes nothing; once the handle is closed, the path opens as a
 * new, empty cache. */
static void a_log_in_use_here_fails_the_open_until_its_handle_is_closed(void) {
    const char *path = tmp_path("here.db");
    backlite_storage *old = OPEN(path, NULL);
    REQUIRE(old != NULL);
    fill_old(old);
    REQUIRE(unlink(path) == 0);
    backlite_storage *sentinel = (backlite_storage *)(uintptr_t)0x1234, *s = sentinel;
    backlite_error *e = NULL;
    CHECK_EQ(backlite_storage_open(path, NULL, &s, &e), BACKLITE_RESULT_IO);
    CHECK(s == sentinel);
    CHECK(e != NULL && strstr(backlite_error_message(e), "deleted while a handle still has it open") != NULL);
    backlite_error_free(e);
    CHECK(!h_exists(path));
    backlite_storage_free(old);
    expect_new_and_empty(path);
}

/* The same with the handle in another process. */
static void a_log_in_use_by_another_process_fails_the_open_until_it_closes(void) {
    const char *path = tmp_path("there.db");
    int ready[2], go[2];
    REQUIRE(pipe(ready) == 0 && pipe(go) == 0);
    fflush(NULL);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        backlite_storage *s = OPEN(path, NULL);
        if (s != NULL) fill_old(s);
        char byte = 'r';
        (void)!write(ready[1], &byte, 1);
        (void)!read(go[0], &byte, 1);
        backlite_storage_free(s);
        _exit(h_st()->failures ? 1 : 0);
    }
    char byte;
    REQUIRE(read(ready[0], &byte, 1) == 1);
    REQUIRE(unlink(path) == 0);
    backlite_storage *sentinel = (backlite_storage *)(uintptr_t)0x1234, *s = sentinel;
    CHECK_RC(backlite_storage_open(path, NULL, &s, &err), BACKLITE_RESULT_IO);
    CHECK(s == sentinel);
    CHECK(!h_exists(path));
    (void)!write(go[1], "g", 1);
    CHECK_EQ(CHILD_EXIT_CODE(pid), 0);
    expect_new_and_empty(path);
}

/* Six processes open the path at once over a stale log: each opens (one removes the
 * log while the others wait for it, never taking that moment for a log in use), and
 * none finds an old entry. */
static void openers_racing_over_a_stale_log_all_open(void) {
    const char *path = tmp_path("race.db");
    int rounds = h_under_valgrind() ? 2 : 10;
    for (int round = 0; round < rounds; round++) {
        remove_cache_file(path);
        fflush(NULL);
        pid_t writer = fork();
        REQUIRE(writer >= 0);
        if (writer == 0) {
            backlite_storage *s = OPEN(path, NULL);
            for (int i = 0; s != NULL && i < 50; i++) {
                char k[16];
                snprintf(k, sizeof k, "old%d", i);
                SET(s, k, "old");
            }
            raise(SIGKILL);
        }
        int status;
        waitpid(writer, &status, 0);
        REQUIRE(unlink(path) == 0);
        int go[2];
        REQUIRE(pipe(go) == 0);
        pid_t kids[6];
        for (int c = 0; c < 6; c++) {
            fflush(NULL);
            kids[c] = fork();
            REQUIRE(kids[c] >= 0);
            if (kids[c] == 0) {
                char byte;
                close(go[1]);
                (void)!read(go[0], &byte, 1);
                backlite_storage *s = OPEN(path, NULL);
                if (s != NULL) {
                    CHECK(!HAS(s, "old3"));
                    char k[16];
                    snprintf(k, sizeof k, "c%d", c);
                    SET(s, k, "v");
                    backlite_storage_free(s);
                }
                _exit(s != NULL && h_st()->failures == 0 ? 0 : 1);
            }
        }
        close(go[0]);
        close(go[1]); /* all start */
        for (int c = 0; c < 6; c++) CHECK_EQ(CHILD_EXIT_CODE(kids[c]), 0);
        backlite_storage *s = OPEN(path, NULL);
        REQUIRE(s != NULL);
        backlite_stats st = STATS(s);
        CHECK_EQ(st.count, 6);
        backlite_storage_free(s);
    }
}

int main(void) {
    h_begin();
    RUN(a_log_left_by_a_killed_writer_is_not_the_new_caches);
    RUN(a_log_in_use_here_fails_the_open_until_its_handle_is_closed);
    RUN(a_log_in_use_by_another_process_fails_the_open_until_it_closes);
    RUN(openers_racing_over_a_stale_log_all_open);
    return h_end();
}
