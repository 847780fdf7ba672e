/*
 * Tenth probe round of the local cache contract (API.md), kept as tests.
 *
 * Files of an older format: a cache whose header was set back to an older schema (or
 * to a version no BackLite wrote), and another program's tables under BackLite's
 * header, are NOT_A_CACHE and left untouched (they were INTERNAL, or opened and
 * stamped as this schema).
 */
#include "backlite.h"
#include "harness.h"
#include "lock_holder.h"

/* ------------------------------------------- a header that says an older schema */

/* writes `version` into the closed file's header (user_version: offset 60, big-endian) */
static bool stamp_version(const char *path, int32_t version) {
    size_t len = 0;
    uint8_t *b = h_read_file(path, &len);
    if (b == NULL || len < 100) {
        free(b);
        return false;
    }
    uint32_t v = (uint32_t)version;
    b[60] = (uint8_t)(v >> 24), b[61] = (uint8_t)(v >> 16), b[62] = (uint8_t)(v >> 8), b[63] = (uint8_t)v;
    bool ok = h_write_file(path, b, len);
    free(b);
    return ok;
}

/* the closed file's user_version */
static int32_t version_of(const char *path) {
    size_t len = 0;
    uint8_t *b = h_read_file(path, &len);
    uint32_t v = b != NULL && len >= 100
                     ? ((uint32_t)b[60] << 24) | ((uint32_t)b[61] << 16) | ((uint32_t)b[62] << 8) | b[63]
                     : 0;
    free(b);
    return (int32_t)v;
}

static bool same_bytes(const char *path, const uint8_t *want, size_t want_len) {
    size_t len = 0;
    uint8_t *b = h_read_file(path, &len);
    bool same = b != NULL && len == want_len && memcmp(b, want, len) == 0;
    free(b);
    return same;
}

/* Opens `path` expecting NOT_A_CACHE, a message that names the file and quotes no SQL,
 * and the file's bytes as they were (no -wal made either). */
static void refused_untouched_(const char *file, int line, const char *path) {
    size_t len = 0;
    uint8_t *before = h_read_file(path, &len);
    if (before == NULL) {
        h_fail_(file, line, "cannot read %s", path);
        return;
    }
    backlite_storage *s = NULL;
    backlite_error *err = NULL;
    backlite_result rc = backlite_storage_open(path, NULL, &s, &err);
    h_check_rc_(file, line, "open", rc, BACKLITE_RESULT_NOT_A_CACHE, err);
    if (err != NULL) {
        const char *m = backlite_error_message(err);
        if (strstr(m, path) == NULL || strstr(m, "CREATE") != NULL || strstr(m, "ALTER") != NULL)
            h_fail_(file, line, "message: %s", m);
    }
    backlite_error_free(err);
    backlite_storage_free(s);
    if (!same_bytes(path, before, len)) h_fail_(file, line, "%s was changed", path);
    char wal[PATH_MAX + 8];
    snprintf(wal, sizeof wal, "%s-wal", path);
    if (h_exists(wal)) {
        struct stat st;
        if (stat(wal, &st) == 0 && st.st_size > 0) h_fail_(file, line, "%s-wal was written", path);
    }
    free(before);
}
#define REFUSED_UNTOUCHED(path) refused_untouched_(__FILE__, __LINE__, (path))

/* A cache whose header was set back to an older schema (or to a version no BackLite
 * wrote) is refused as not a cache and left untouched: each migration from that
 * version meets tables it already made. It was INTERNAL (or, for a negative version,
 * opened and stamped as this schema), with a message quoting the migration's SQL.
 * Set back to its own version, the file is the cache it was. */
static void a_cache_stamped_with_an_older_schema_is_not_a_cache(void) {
    const int32_t versions[] = {0, 1, 2, 3, 4, -1, INT32_MIN};
    for (size_t i = 0; i < sizeof versions / sizeof versions[0]; i++) {
        const char *path = tmp_path("stamped.db");
        backlite_storage *s = OPEN(path, NULL);
        REQUIRE(s != NULL);
        SET(s, "k", "value");
        backlite_storage_free(s);
        int32_t own = version_of(path);
        REQUIRE(own > 0 && stamp_version(path, versions[i]));
        REFUSED_UNTOUCHED(path);
        REFUSED_UNTOUCHED(path); /* again: nothing was half done */
        REQUIRE(stamp_version(path, own));
        s = OPEN(path, NULL);
        REQUIRE(s != NULL);
        GET_EQ(s, "k", "value");
        backlite_storage_free(s);
        remove_cache_file(path);
    }
}

/* Another program's database under BackLite's header (its application id and a
 * schema version) is not a cache either: not migrated around the other program's
 * tables, not stamped as this schema (versions 5 and 6 ran no statement and opened,
 * every call then failing with INTERNAL), and left untouched. */
static void another_programs_tables_under_our_header_are_not_a_cache(void) {
    if (!h_have_python_sqlite()) SKIP("python3 with sqlite3 is not available to make the file");
    const int versions[] = {0, 1, 3, 5, 6, -1};
    for (size_t i = 0; i < sizeof versions / sizeof versions[0]; i++) {
        char name[32];
        snprintf(name, sizeof name, "foreign-%zu.db", i);
        const char *path = tmp_path(name);
        char cmd[PATH_MAX + 300];
        snprintf(cmd, sizeof cmd,
                 "python3 -c 'import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
                 "c.execute(\"create table t (x)\"); c.execute(\"insert into t values (1)\"); "
                 "c.execute(\"pragma application_id = %d\"); c.execute(\"pragma user_version = %d\"); "
                 "c.commit(); c.close()' '%s'",
                 0x424B4C54, versions[i], path);
        REQUIRE(system(cmd) == 0);
        REFUSED_UNTOUCHED(path);
    }
}

/* ------------------------------------------------ check of a malformed file */

/* A cache of 2000 entries with garbage written over two of its table's pages (as
 * cli/tests/probe.rs damages one): SQLite cannot walk its structure at all. The header
 * says check "returns OK when the check ran, whatever it found": so it does, with the
 * file unhealthy and its integrity not ok (delete it: it is a cache), nothing repaired
 * and no figure counted, with and without repair, and *err untouched; it was CORRUPT ("checking the database structure:
 * database disk image is malformed"), which `backlite check` already reported as its
 * answer. */
static void a_check_of_a_malformed_file_is_a_report(void) {
    const char *path = tmp_path("malformed.db");
    backlite_storage *s = OPEN(path, NULL);
    REQUIRE(s != NULL);
    static uint8_t v[300];
    memset(v, 'v', sizeof v);
    backlite_entry batch[100];
    char keys[100][16];
    for (int round = 0; round < 20; round++) {
        for (int i = 0; i < 100; i++) {
            snprintf(keys[i], sizeof keys[i], "k%d", round * 100 + i);
            batch[i] = (backlite_entry){(const uint8_t *)keys[i], strlen(keys[i]), v, sizeof v, NEVER};
        }
        CHECK_OK(backlite_storage_set_many(s, batch, 100, &err));
    }
    CHECK_OK(backlite_storage_vacuum(s, &err));
    backlite_storage_free(s);
    char wal[PATH_MAX + 8];
    snprintf(wal, sizeof wal, "%s-wal", path);
    if (h_exists(wal)) SKIP("the -wal file stayed after the last handle closed");
    size_t len = 0;
    uint8_t *bytes = h_read_file(path, &len);
    REQUIRE(bytes != NULL && len > 22 * 4096);
    memset(bytes + 20 * 4096, 0xde, 8192);
    REQUIRE(h_write_file(path, bytes, len));
    free(bytes);
    backlite_error *open_err = NULL;
    s = NULL;
    backlite_result rc = backlite_storage_open(path, NULL, &s, &open_err);
    backlite_error_free(open_err);
    if (rc != BACKLITE_RESULT_OK) SKIP("this damage already fails the open");
    for (int repair = 0; repair <= 1; repair++) {
        backlite_check_report r;
        memset(&r, 0xAB, sizeof r);
        CHECK_OK(backlite_storage_check(s, repair, &r, &err));
        CHECK_EQ(r.healthy, 0);
        CHECK_EQ(r.integrity_ok, 0);
        CHECK_EQ(r.repaired, 0);
        CHECK(r.entries == 0 && r.damaged == 0 && r.orphan_values == 0);
        CHECK(r.recorded_count == 0 && r.recorded_total_size == 0);
        CHECK(r.actual_count == 0 && r.actual_total_size == 0);
    }
    backlite_storage_free(s);
}

/* ---------------------------------------- a too-large set under another's lock */

/* A set too large to store, of a key with no value, writes nothing, so another
 * process's write lock is nothing to wait for: TOO_LARGE at once, as API.md says (it
 * was BUSY after the busy timeout), or OK for one already expired. A key with an older
 * value must still lose it, a write: BUSY while the lock is held, the value still
 * readable (nothing was refused half way), then TOO_LARGE and the value gone. Values
 * kept in the database and in files alike. */
static void a_too_large_set_of_a_key_without_value_does_not_wait_for_the_lock(void) {
    if (!h_have_python_sqlite()) SKIP("python3 with sqlite3 is not available to hold a lock");
    const int64_t thresholds[] = {BACKLITE_FILE_THRESHOLD_NEVER, 4};
    for (int t = 0; t < 2; t++) {
        const char *path = tmp_path("too-large-locked.db");
        backlite_storage *s = OPEN_SET(path, .max_size = 10, .file_threshold = thresholds[t], .busy_timeout_ms = 100);
        REQUIRE(s != NULL);
        SET(s, "old", "older");
        lock_holder h;
        REQUIRE(holder_start(&h, path));
        const char *big = "eleven byte";
        CHECK_RC(backlite_storage_set(s, K("absent"), K(big), NEVER, &err), BACKLITE_RESULT_TOO_LARGE);
        CHECK_RC(backlite_storage_set(s, K("absent"), K(big), 0, &err), BACKLITE_RESULT_OK);
        CHECK_RC(backlite_storage_set(s, K("old"), K(big), NEVER, &err), BACKLITE_RESULT_BUSY);
        GET_EQ(s, "old", "older");
        GET_MISSING(s, "absent");
        holder_release(&h);
        holder_finish(&h);
        CHECK_RC(backlite_storage_set(s, K("old"), K(big), NEVER, &err), BACKLITE_RESULT_TOO_LARGE);
        GET_MISSING(s, "old");
        backlite_stats st = STATS(s);
        CHECK_EQ(st.count, 0);
        CHECK_EQ(st.total_size, 0);
        CHECK_EQ(st.evictions, 0);
        backlite_storage_free(s);
        remove_cache_file(path);
    }
}

/* ------------------------------------------------- keys a visitor deleted */

typedef struct {
    backlite_storage *s;
    int listed, deleted_listed, overwritten_listed;
} deleting_visitor;

static int32_t delete_the_odd_ones_at_the_first(void *ud, const uint8_t *key, size_t len) {
    deleting_visitor *v = ud;
    char k[16] = {0};
    memcpy(k, key, len < sizeof k - 1 ? len : sizeof k - 1);
    int n = atoi(k + 1);
    v->listed++;
    if (n % 2 == 1) v->deleted_listed++;
    if (n == 2) v->overwritten_listed++;
    if (n == 0) {
        for (int i = 1; i < 600; i += 2) {
            char d[16];
            snprintf(d, sizeof d, "k%04d", i);
            if (backlite_storage_delete(v->s, K(d), NULL) != BACKLITE_RESULT_OK) return 1;
        }
        /* written again: set while the listing runs */
        if (backlite_storage_set(v->s, K("k0002"), K("again"), NEVER, NULL) != BACKLITE_RESULT_OK) return 1;
    }
    return 0;
}

/* A keys visitor that deletes keys it has not reached yet is not shown them: the
 * header says keys are listed if "still live when reached". Keys are read 256 at a
 * time, and those of the page being shown were shown deleted or not (128 of the 300
 * deleted were listed). A key the visitor wrote again further on is a key set while
 * the listing runs, left out as the header says (it was listed, from the page). */
static void a_key_the_visitor_deleted_is_not_listed(void) {
    backlite_storage *s = OPEN(tmp_path("keys-deleted.db"), NULL);
    REQUIRE(s != NULL);
    for (int i = 0; i < 600; i++) {
        char k[16];
        snprintf(k, sizeof k, "k%04d", i);
        SET(s, k, "v");
    }
    deleting_visitor v = {s, 0, 0, 0};
    CHECK_OK(backlite_storage_keys(s, delete_the_odd_ones_at_the_first, &v, &err));
    CHECK_EQ(v.deleted_listed, 0);
    CHECK_EQ(v.listed, 299);
    CHECK_EQ(v.overwritten_listed, 0);
    backlite_storage_free(s);
}

int main(void) {
    h_begin();
    RUN(a_cache_stamped_with_an_older_schema_is_not_a_cache);
    RUN(another_programs_tables_under_our_header_are_not_a_cache);
    RUN(a_check_of_a_malformed_file_is_a_report);
    RUN(a_too_large_set_of_a_key_without_value_does_not_wait_for_the_lock);
    RUN(a_key_the_visitor_deleted_is_not_listed);
    return h_end();
}
