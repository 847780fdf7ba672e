/*
 * A cache file emptied behind its handles' back (`: > cache.db`, truncate(path, 0))
 * while one is open. SQLite does not notice: the handle went on acknowledging sets
 * (OK) that no get could read, reads failed with INTERNAL ("no such table"), and when
 * the handle closed, its log was folded into the emptied file, which was refused as
 * NOT_A_CACHE for good. Now the handle's calls fail with IO saying so, nothing is
 * written to the file, and once it is closed the path opens as a new, empty cache.
 */
#include "harness.h"

static long long file_size(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 ? (long long)sb.st_size : -1;
}

/* IO naming the file; NOT_FOUND is allowed for a look-up (a miss is no value) */
static void expect_emptied_(const char *file, int line, const char *what, backlite_result rc,
                            backlite_error *e, bool miss_ok) {
    if (rc == BACKLITE_RESULT_IO) {
        if (e == NULL || strstr(backlite_error_message(e), "emptied") == NULL)
            h_fail_(file, line, "%s: IO without saying the file was emptied", what);
    } else if (!(miss_ok && rc == BACKLITE_RESULT_NOT_FOUND)) {
        h_fail_(file, line, "%s: %s (%s), not IO", what, h_rc_name(rc), e ? backlite_error_message(e) : "");
    }
    backlite_error_free(e);
}
#define EXPECT_EMPTIED(call, miss_ok)                                                 \
    do {                                                                              \
        backlite_error *err = NULL;                                                   \
        backlite_result rc_ = (call);                                                 \
        expect_emptied_(__FILE__, __LINE__, #call, rc_, err, (miss_ok));              \
    } while (0)

static int32_t count_key(void *ud, const uint8_t *key, size_t len) {
    (void)key;
    (void)len;
    (*(int *)ud)++;
    return 0;
}

static void expect_new_empty_cache(const char *path) {
    backlite_storage *t = OPEN(path, NULL);
    REQUIRE(t != NULL);
    GET_MISSING(t, "a");
    backlite_stats st = STATS(t);
    CHECK_EQ(st.count, 0);
    CHECK_EQ(st.total_size, 0);
    SET(t, "new", "2");
    GET_EQ(t, "new", "2");
    backlite_storage_free(t);
    t = OPEN(path, NULL);
    REQUIRE(t != NULL);
    GET_EQ(t, "new", "2");
    backlite_storage_free(t);
}

static void a_cache_emptied_while_open_opens_as_a_new_cache_once_closed(void) {
    const char *path = tmp_path("emptied.db");
    backlite_storage *s = OPEN(path, NULL);
    REQUIRE(s != NULL);
    SET(s, "a", "1");
    SET(s, "b", "22");
    REQUIRE(truncate(path, 0) == 0);
    backlite_storage_free(s);
    CHECK_EQ(file_size(path), 0); /* was 36864: the log folded into the emptied file */
    expect_new_empty_cache(path); /* was NOT_A_CACHE */
}

static void a_handle_whose_file_was_emptied_reads_nothing_back_and_leaves_it_empty(void) {
    const char *path = tmp_path("emptied_calls.db");
    backlite_storage *s = OPEN(path, NULL);
    REQUIRE(s != NULL);
    SET(s, "a", "1");
    REQUIRE(truncate(path, 0) == 0);
    backlite_buf b = {NULL, 0};
    /* A set is acknowledged, and lost with the file as a set to a deleted file is: no
       stat before each write (it cost a set 10-20%). Nothing reads it back. */
    CHECK_EQ(backlite_storage_set(s, K("n"), K("v"), NEVER, NULL), BACKLITE_RESULT_OK);
    EXPECT_EMPTIED(backlite_storage_get(s, K("n"), &b, NULL, &err), true); /* was INTERNAL */
    EXPECT_EMPTIED(backlite_storage_get(s, K("a"), &b, NULL, &err), true);
    CHECK(b.data == NULL);
    EXPECT_EMPTIED(backlite_storage_contains(s, K("a"), &err), true);
    backlite_entry batch[] = {{(const uint8_t *)"m", 1, (const uint8_t *)"w", 1, NEVER}};
    CHECK_EQ(backlite_storage_set_many(s, batch, 1, NULL), BACKLITE_RESULT_OK);
    backlite_stats st;
    EXPECT_EMPTIED(backlite_storage_stats(s, &st, &err), false);
    int n = 0;
    EXPECT_EMPTIED(backlite_storage_keys(s, count_key, &n, &err), false);
    CHECK_EQ(n, 0);
    EXPECT_EMPTIED(backlite_storage_clear(s, &err), false);
    EXPECT_EMPTIED(backlite_storage_vacuum(s, &err), false); /* would write a database into it */
    CHECK_EQ(file_size(path), 0);
    backlite_storage_free(s);
    CHECK_EQ(file_size(path), 0);
    expect_new_empty_cache(path);
}

/* emptied while another process holds it: that process's sets are lost with the file
   (acknowledged, as to a deleted file), and its close leaves the file empty for the
   next opener */
static void a_file_emptied_under_another_process_is_new_once_it_closes(void) {
    const char *path = tmp_path("emptied_child.db");
    int to_child[2], to_parent[2];
    REQUIRE(pipe(to_child) == 0 && pipe(to_parent) == 0);
    fflush(NULL);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        backlite_storage *s = NULL;
        if (backlite_storage_open(path, NULL, &s, NULL) != BACKLITE_RESULT_OK) _exit(10);
        if (backlite_storage_set(s, K("a"), K("1"), NEVER, NULL) != BACKLITE_RESULT_OK) _exit(11);
        char c = 1;
        if (write(to_parent[1], &c, 1) != 1 || read(to_child[0], &c, 1) != 1) _exit(12);
        backlite_result rc = backlite_storage_set(s, K("b"), K("2"), NEVER, NULL);
        backlite_storage_free(s);
        _exit(rc == BACKLITE_RESULT_OK ? 0 : 13);
    }
    char c;
    REQUIRE(read(to_parent[0], &c, 1) == 1);
    REQUIRE(truncate(path, 0) == 0);
    REQUIRE(write(to_child[1], &c, 1) == 1);
    CHECK_EQ(CHILD_EXIT_CODE(pid), 0);
    CHECK_EQ(file_size(path), 0);
    expect_new_empty_cache(path);
    close(to_child[0]);
    close(to_child[1]);
    close(to_parent[0]);
    close(to_parent[1]);
}

int main(void) {
    h_begin();
    RUN(a_cache_emptied_while_open_opens_as_a_new_cache_once_closed);
    RUN(a_handle_whose_file_was_emptied_reads_nothing_back_and_leaves_it_empty);
    RUN(a_file_emptied_under_another_process_is_new_once_it_closes);
    return h_end();
}
