/* What lives in the file: entries, expirations, eviction order, version tag, integrity. */
#include <sys/wait.h>

#include "backlite.h"
#include "harness.h"

#define LRU BACKLITE_EVICTION_POLICY_LEAST_RECENTLY_USED

static void entries_survive_close_and_reopen(void) {
    const char *path = tmp_path("p.db");
    backlite_storage *s = OPEN(path, NULL);
    REQUIRE(s != NULL);
    const uint8_t bin[] = {0, 1, 2, 255};
    CHECK_OK(backlite_storage_set(s, K("bin"), bin, sizeof bin, NEVER, &err));
    SET(s, "text", "hello");
    SET_EXP(s, "minute", "m", 60000);
    CHECK_OK(backlite_storage_set(s, NULL, 0, K("empty key"), NEVER, &err));
    SET(s, "deleted", "x");
    CHECK_OK(backlite_storage_delete(s, K("deleted"), &err));
    GET_EQ(s, "text", "hello");
    backlite_storage_free(s);

    s = OPEN(path, NULL);
    REQUIRE(s != NULL);
    backlite_stats st = STATS(s);
    CHECK_EQ(st.count, 4);
    CHECK_EQ(st.total_size, 4 + 5 + 1 + 9);
    CHECK_EQ(st.hits, 0); /* counters belong to the handle: a new handle starts at 0 */
    CHECK_EQ(st.misses, 0);
    CHECK_EQ(st.evictions, 0);
    CHECK_EQ(st.expirations, 0);
    backlite_buf b = {NULL, 0};
    int64_t left = 0;
    CHECK_OK(backlite_storage_get(s, K("bin"), &b, &left, &err));
    CHECK_BUF(b, bin, sizeof bin);
    CHECK_EQ(left, NEVER);
    backlite_buf_free(&b);
    CHECK_OK(backlite_storage_get(s, K("minute"), &b, &left, &err));
    CHECK(left > 0 && left <= 60000);
    backlite_buf_free(&b);
    CHECK_OK(backlite_storage_get(s, NULL, 0, &b, NULL, &err));
    CHECK_BUF_STR(b, "empty key");
    backlite_buf_free(&b);
    GET_EQ(s, "text", "hello");
    GET_MISSING(s, "deleted");
    backlite_storage_free(s);
}

static void the_eviction_order_survives_reopen(void) {
    const char *path = tmp_path("order.db");
    backlite_storage *s = OPEN_WITH(path, 30, LRU);
    REQUIRE(s != NULL);
    SET_N(s, "a", 10);
    SET_N(s, "b", 10);
    SET_N(s, "c", 10);
    GET_EQ(s, "a", "aaaaaaaaaa");
    backlite_storage_free(s);
    s = OPEN_WITH(path, 30, LRU);
    REQUIRE(s != NULL);
    SET_N(s, "d", 10); /* b is the oldest access, recorded in the file */
    CHECK(HAS(s, "a"));
    CHECK(!HAS(s, "b"));
    CHECK(HAS(s, "c"));
    CHECK(HAS(s, "d"));
    backlite_storage_free(s);
}

static void reopening_with_a_smaller_max_size_evicts_at_the_next_write(void) {
    const char *path = tmp_path("shrink.db");
    backlite_storage *s = OPEN_WITH(path, 30, LRU);
    REQUIRE(s != NULL);
    SET_N(s, "a", 10);
    SET_N(s, "b", 10);
    SET_N(s, "c", 10);
    backlite_storage_free(s);
    s = OPEN_WITH(path, 20, LRU);
    REQUIRE(s != NULL);
    CHECK_EQ(STATS(s).max_size, 20);
    SET_N(s, "d", 10); /* must fit in 20: a and b go */
    CHECK(!HAS(s, "a"));
    CHECK(!HAS(s, "b"));
    CHECK(HAS(s, "c"));
    CHECK(HAS(s, "d"));
    backlite_stats st = STATS(s);
    CHECK_EQ(st.count, 2);
    CHECK_EQ(st.total_size, 20);
    backlite_storage_free(s);
}

static void reopening_with_the_same_version_tag_keeps_entries(void) {
    const char *path = tmp_path("tag.db");
    backlite_storage *s = OPEN_SET(path, .version_tag = "v1");
    REQUIRE(s != NULL);
    SET(s, "k", "v");
    backlite_storage_free(s);
    s = OPEN_SET(path, .version_tag = "v1");
    REQUIRE(s != NULL);
    GET_EQ(s, "k", "v");
    CHECK_EQ(STATS(s).count, 1);
    backlite_storage_free(s);
}

static void reopening_with_another_version_tag_drops_every_entry(void) {
    const char *path = tmp_path("tag.db");
    backlite_storage *s = OPEN_SET(path, .version_tag = "python-3.11");
    REQUIRE(s != NULL);
    SET(s, "a", "1");
    SET(s, "b", "22");
    SET_EXP(s, "c", "333", 60000);
    backlite_storage_free(s);

    s = OPEN_SET(path, .version_tag = "python-3.12");
    REQUIRE(s != NULL);
    backlite_stats st = STATS(s);
    CHECK_EQ(st.count, 0);
    CHECK_EQ(st.total_size, 0);
    GET_MISSING(s, "a");
    GET_MISSING(s, "b");
    GET_MISSING(s, "c");
    SET(s, "new", "n");
    backlite_storage_free(s);

    s = OPEN_SET(path, .version_tag = "python-3.12"); /* the new tag is now the file's tag */
    REQUIRE(s != NULL);
    GET_EQ(s, "new", "n");
    CHECK_EQ(STATS(s).count, 1);
    backlite_storage_free(s);

    s = OPEN_SET(path, .version_tag = "python-3.11"); /* going back is a change too */
    REQUIRE(s != NULL);
    GET_MISSING(s, "new");
    CHECK_EQ(STATS(s).count, 0);
    backlite_storage_free(s);
}

static void a_tag_change_leaves_a_usable_file(void) {
    const char *path = tmp_path("tag2.db");
    backlite_storage *s = OPEN_SET(path, .version_tag = "1");
    REQUIRE(s != NULL);
    for (int i = 0; i < 20; i++) {
        char k[32];
        snprintf(k, sizeof k, "k%d", i);
        SET(s, k, "value");
    }
    backlite_storage_free(s);
    s = OPEN_SET(path, .version_tag = "2");
    REQUIRE(s != NULL);
    SET(s, "k1", "fresh");
    GET_EQ(s, "k1", "fresh");
    GET_MISSING(s, "k2");
    backlite_stats st = STATS(s);
    CHECK_EQ(st.count, 1);
    CHECK_EQ(st.total_size, 5);
    backlite_storage_free(s);
}

/*
 * Flips the bytes of one stored value inside the file with python's sqlite3, knowing
 * nothing of the schema: every BLOB or TEXT cell equal to `old` becomes `new` (same
 * length). Returns the number of cells changed, or -1 when python is not usable.
 */
static int damage_value(const char *path, const char *old_hex, const char *new_hex) {
    char cmd[PATH_MAX + 1200];
    snprintf(cmd, sizeof cmd,
             "python3 -c 'import sqlite3, sys\n"
             "c = sqlite3.connect(sys.argv[1])\n"
             "old, new = bytes.fromhex(sys.argv[2]), bytes.fromhex(sys.argv[3])\n"
             "n = 0\n"
             "for (t,) in c.execute(\"select name from sqlite_master where type = ? \", (\"table\",)).fetchall():\n"
             "    for col in [r[1] for r in c.execute(\"pragma table_info(\\\"%%s\\\")\" %% t)]:\n"
             "        q = \"update \\\"%%s\\\" set \\\"%%s\\\" = ? where cast(\\\"%%s\\\" as blob) = ?\" %% (t, col, col)\n"
             "        n += c.execute(q, (new, old)).rowcount\n"
             "c.commit()\n"
             "c.close()\n"
             "sys.exit(10 + n)' '%s' %s %s",
             path, old_hex, new_hex);
    int st = system(cmd);
    if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) < 10) return -1;
    return WEXITSTATUS(st) - 10;
}

static void a_damaged_value_is_a_miss_and_is_removed(void) {
    if (!h_have_python_sqlite()) SKIP("python3 with sqlite3 is not available to edit the file");
    const char *path = tmp_path("crc.db");
    backlite_storage *s = OPEN(path, NULL);
    REQUIRE(s != NULL);
    SET(s, "victim", "UNIQUE-VALUE-0123456789");
    SET(s, "other", "another value");
    backlite_storage_free(s);
    /* "UNIQUE-VALUE-0123456789" -> "UNIQUE-VALUE-0123456788" */
    int n = damage_value(path, "554e495155452d56414c55452d30313233343536373839",
                         "554e495155452d56414c55452d30313233343536373838");
    if (n < 0) SKIP("python3 could not edit the cache file");
    if (n != 1) SKIP("the stored value was not found as one plain cell (compressed or split?)");
    s = OPEN(path, NULL);
    REQUIRE(s != NULL);
    GET_MISSING(s, "victim"); /* never the damaged bytes */
    backlite_stats st = STATS(s);
    CHECK_EQ(st.misses, 1);
    CHECK_EQ(st.count, 1); /* the damaged entry was removed */
    CHECK_EQ(st.total_size, strlen("another value"));
    CHECK(!HAS(s, "victim"));
    GET_EQ(s, "other", "another value");
    SET(s, "victim", "rewritten");
    GET_EQ(s, "victim", "rewritten");
    backlite_storage_free(s);
}

/* every page after the first (the header and the schema) overwritten with garbage */
static bool damage_pages_after_the_first(const char *path) {
    size_t len = 0;
    uint8_t *bytes = h_read_file(path, &len);
    if (bytes == NULL || len < 100) {
        free(bytes);
        return false;
    }
    size_t page = ((size_t)bytes[16] << 8) | bytes[17];
    if (page == 1) page = 65536;
    if (page < 512 || len <= page) {
        free(bytes);
        return false;
    }
    uint64_t rng = 99;
    for (size_t i = page; i < len; i++) bytes[i] = (uint8_t)h_rand(&rng);
    bool ok = h_write_file(path, bytes, len);
    free(bytes);
    return ok;
}

static bool ok_or_corrupt_(const char *file, int line, const char *what, backlite_result rc,
                           backlite_error *err, int *corrupt) {
    if (rc == BACKLITE_RESULT_CORRUPT) {
        (*corrupt)++;
        h_check_rc_(file, line, what, rc, rc, err);
        return true;
    }
    if (rc == BACKLITE_RESULT_OK || rc == BACKLITE_RESULT_NOT_FOUND) return true;
    h_fail_(file, line, "%s on a damaged file: %s (%d), expected OK, NOT_FOUND or CORRUPT%s%s", what,
            h_rc_name(rc), (int)rc, err ? ": " : "", err ? backlite_error_message(err) : "");
    return false;
}

static void a_damaged_file_reports_corrupt(void) {
    const char *path = tmp_path("damaged.db");
    backlite_storage *s = OPEN(path, NULL);
    REQUIRE(s != NULL);
    static uint8_t v[300];
    memset(v, 'v', sizeof v);
    for (int i = 0; i < 200; i++) {
        char k[32];
        snprintf(k, sizeof k, "key-%03d", i);
        CHECK_OK(backlite_storage_set(s, K(k), v, sizeof v, BACKLITE_EXPIRATION_NEVER, &err));
    }
    backlite_storage_free(s);
    char wal[PATH_MAX + 8];
    snprintf(wal, sizeof wal, "%s-wal", path);
    if (h_exists(wal)) SKIP("the -wal file stayed after the last handle closed");
    REQUIRE(damage_pages_after_the_first(path));

    int corrupt = 0;
    s = NULL;
    backlite_error *err = NULL;
    backlite_result rc = backlite_storage_open(path, NULL, &s, &err);
    ok_or_corrupt_(__FILE__, __LINE__, "open", rc, err, &corrupt);
    backlite_error_free(err);
    if (rc == BACKLITE_RESULT_OK) {
        backlite_stats st;
        err = NULL;
        rc = backlite_storage_stats(s, &st, &err);
        ok_or_corrupt_(__FILE__, __LINE__, "stats", rc, err, &corrupt);
        backlite_error_free(err);
        for (int i = 0; i < 200; i += 20) {
            char k[32];
            snprintf(k, sizeof k, "key-%03d", i);
            backlite_buf b = {NULL, 0};
            err = NULL;
            rc = backlite_storage_get(s, K(k), &b, NULL, &err);
            ok_or_corrupt_(__FILE__, __LINE__, "get", rc, err, &corrupt);
            if (rc == BACKLITE_RESULT_OK) CHECK_BUF(b, v, sizeof v); /* never garbage */
            backlite_error_free(err);
            backlite_buf_free(&b);
        }
        err = NULL;
        rc = backlite_storage_set(s, K("new"), K("v"), BACKLITE_EXPIRATION_NEVER, &err);
        ok_or_corrupt_(__FILE__, __LINE__, "set", rc, err, &corrupt);
        backlite_error_free(err);
        backlite_storage_free(s);
    }
    CHECK(corrupt > 0);
}

int main(void) {
    h_begin();
    RUN(entries_survive_close_and_reopen);
    RUN(the_eviction_order_survives_reopen);
    RUN(reopening_with_a_smaller_max_size_evicts_at_the_next_write);
    RUN(reopening_with_the_same_version_tag_keeps_entries);
    RUN(reopening_with_another_version_tag_drops_every_entry);
    RUN(a_tag_change_leaves_a_usable_file);
    RUN(a_damaged_value_is_a_miss_and_is_removed);
    RUN(a_damaged_file_reports_corrupt);
    return h_end();
}
