/* The file's counters travel in the newest entry row (schema 4): a set writes the pages
 * of its row and of its key, as plain SQLite would, not a third for the counters
 * (counted in frames of the write-ahead log, which no checkpoint empties under 1000
 * pages), and the counters follow whichever row is newest. */
#include "backlite.h"
#include "harness.h"

#include <sys/stat.h>

#define LRU BACKLITE_EVICTION_POLICY_LEAST_RECENTLY_USED
/* A WAL frame: a 24-byte header and a 4096-byte page. */
#define FRAME (24 + 4096)

static long wal_size(const char *path) {
    char wal[PATH_MAX + 8];
    snprintf(wal, sizeof wal, "%s-wal", path);
    struct stat st;
    return stat(wal, &st) == 0 ? (long)st.st_size : 0;
}

/* Sets keys first..first+n-1 (16 bytes each, values of 100 bytes). */
static void set_keys(backlite_storage *s, int first, int n) {
    uint8_t v[100];
    memset(v, 7, sizeof v);
    for (int i = first; i < first + n; i++) {
        char k[17];
        snprintf(k, sizeof k, "k%015d", i);
        CHECK_OK(backlite_storage_set(s, (const uint8_t *)k, 16, v, sizeof v, NEVER, &err));
    }
}

static void a_new_key_writes_two_pages(void) {
    const char *path = tmp_path("w.db");
    backlite_storage *s = OPEN(path, NULL);
    REQUIRE(s != NULL);
    set_keys(s, 0, 10);
    long before = wal_size(path);
    set_keys(s, 10, 100);
    long frames = (wal_size(path) - before) / FRAME;
    /* Two pages a set (the table's last leaf, the key index's leaf) and the splits of
     * 100 rows of 116 bytes; the counters' own row made it 3 a set (300+). */
    CHECK(frames >= 200 && frames <= 250);
    if (frames < 200 || frames > 250) fprintf(stderr, "  %ld WAL frames for 100 sets\n", frames);
    backlite_stats st = STATS(s);
    CHECK_EQ(st.count, 110);
    CHECK_EQ(st.total_size, 110 * 100);
    backlite_storage_free(s);
}

static void a_set_that_evicts_writes_no_counter_page(void) {
    const char *path = tmp_path("e.db");
    backlite_storage *s = OPEN_WITH(path, 50 * 100, LRU);
    REQUIRE(s != NULL);
    set_keys(s, 0, 60);
    long before = wal_size(path);
    set_keys(s, 60, 100);
    long frames = (wal_size(path) - before) / FRAME;
    /* Three pages a set: the last leaf (insert), the first leaf (victim), the key
     * index; the counters' own row made it 4 (400+). */
    CHECK(frames >= 300 && frames <= 380);
    if (frames < 300 || frames > 380) fprintf(stderr, "  %ld WAL frames for 100 sets\n", frames);
    backlite_stats st = STATS(s);
    CHECK_EQ(st.count, 50);
    backlite_storage_free(s);
}

static void a_hit_written_at_close_moves_its_row_above_the_newest(void) {
    const char *path = tmp_path("h.db");
    backlite_storage *s = OPEN(path, NULL);
    REQUIRE(s != NULL);
    SET(s, "a", "v");
    SET(s, "b", "vv");
    GET_EQ(s, "a", "v");
    /* A write that gives the hit its tick without writing it; the close writes it,
     * which moves `a` above `b`, the row that held the counters. */
    CHECK_RC(backlite_storage_delete(s, K("absent"), &err), BACKLITE_RESULT_NOT_FOUND);
    backlite_storage_free(s);
    s = OPEN(path, NULL);
    REQUIRE(s != NULL);
    SET(s, "c", "vvv");
    backlite_stats st = STATS(s);
    CHECK_EQ(st.count, 3);
    CHECK_EQ(st.total_size, 6);
    backlite_check_report r;
    CHECK_OK(backlite_storage_check(s, 0, &r, &err));
    CHECK(r.healthy);
    backlite_storage_free(s);
}

/* Sets `key` and expects CORRUPT, with a message that names the check to run. */
static void set_is_refused(backlite_storage *s, const char *key) {
    backlite_error *e = NULL;
    CHECK_EQ(backlite_storage_set(s, K(key), (const uint8_t *)"new", 3, NEVER, &e),
             BACKLITE_RESULT_CORRUPT);
    CHECK(e != NULL && strstr(backlite_error_message(e), "check --repair") != NULL);
    if (e != NULL && strstr(backlite_error_message(e), "check --repair") == NULL)
        fprintf(stderr, "  message: %s\n", backlite_error_message(e));
    backlite_error_free(e);
}

/* The newest row is the counters' home: `newest` picks it in the edits below. */
#define NEWEST "WHERE seq = (SELECT max(seq) FROM entries)"

/* A counter of the wrong type, NULL, negative or huge, or a clock behind the newest
 * entry: writes fail with CORRUPT and change nothing, a check reports the counters
 * damaged, and a check with repair recounts them, after which writes work and nothing
 * was lost. */
static void a_damaged_counter_fails_writes_until_a_check_repairs_it(void) {
    if (!h_have_python_sqlite()) SKIP("python3 with sqlite3 is not available to edit the file");
    const char *damage[] = {
        "UPDATE entries SET state_count = char(120) " NEWEST,
        "UPDATE entries SET state_total_size = 2.5 " NEWEST,
        "UPDATE entries SET state_clock = x'00' " NEWEST,
        "UPDATE entries SET state_clock = 1 " NEWEST,
        "UPDATE entries SET state_misses = -4 " NEWEST,
        "DELETE FROM entries; UPDATE state SET count = -1",
        "DELETE FROM entries; UPDATE state SET clock = char(120)",
        "UPDATE entries SET state_count = NULL " NEWEST,
        "UPDATE entries SET state_clock = NULL " NEWEST,
        /* Huge: no cache reaches 2^62 ticks, entries or bytes, and a write would
         * overflow them. */
        "UPDATE entries SET state_clock = 9223372036854775807 " NEWEST,
        "UPDATE entries SET state_total_size = 9223372036854775807 " NEWEST,
        "UPDATE entries SET state_count = 9223372036854775807 " NEWEST,
        "DELETE FROM entries; UPDATE state SET clock = 9223372036854775000",
    };
    for (size_t i = 0; i < sizeof damage / sizeof *damage; i++) {
        char name[32];
        snprintf(name, sizeof name, "d%zu.db", i);
        const char *path = tmp_path(name);
        backlite_storage *s = OPEN(path, NULL);
        REQUIRE(s != NULL);
        SET(s, "a", "v");
        SET(s, "b", "vv");
        GET_EQ(s, "a", "v");
        GET_MISSING(s, "absent");
        SET(s, "c", "vvv"); /* writes one hit and one miss */
        backlite_storage_free(s);
        REQUIRE(h_python_sqlite(path, damage[i]));
        bool emptied = strncmp(damage[i], "DELETE", 6) == 0;
        uint64_t n = emptied ? 0 : 3, size = emptied ? 0 : 6;

        s = OPEN(path, NULL);
        REQUIRE(s != NULL);
        set_is_refused(s, "d");
        /* (A clock behind the rows fails only the writes that tick it; a delete of a
         * key with no row, in the emptied file, writes nothing: NOT_FOUND.) */
        if (emptied)
            CHECK_RC(backlite_storage_delete(s, K("a"), &err), BACKLITE_RESULT_NOT_FOUND);
        else if (strstr(damage[i], "state_clock = 1") == NULL)
            CHECK_RC(backlite_storage_delete(s, K("a"), &err), BACKLITE_RESULT_CORRUPT);
        if (!emptied) GET_EQ(s, "a", "v");
        /* Stats read the clock, count and total size: CORRUPT if one is damaged, never
         * a made-up figure. */
        backlite_stats before;
        if (strstr(damage[i], "misses") == NULL && strstr(damage[i], "clock = 1 ") == NULL) {
            CHECK_RC(backlite_storage_stats(s, &before, &err), BACKLITE_RESULT_CORRUPT);
        } else {
            CHECK_OK(backlite_storage_stats(s, &before, &err));
            CHECK_EQ(before.count, n);
            CHECK_EQ(before.total_size, size);
        }
        /* A damaged lifetime counter is CORRUPT too, not INTERNAL nor a made-up 0. */
        backlite_lifetime_stats damaged_life;
        if (strstr(damage[i], "state_misses") != NULL)
            CHECK_RC(backlite_storage_lifetime_stats(s, &damaged_life, &err),
                     BACKLITE_RESULT_CORRUPT);
        backlite_check_report r;
        CHECK_OK(backlite_storage_check(s, 0, &r, &err));
        CHECK(!r.healthy && !r.repaired);
        CHECK_EQ(r.recorded_count, UINT64_MAX);
        CHECK_EQ(r.recorded_total_size, UINT64_MAX);
        CHECK_EQ(r.actual_count, n);
        CHECK_EQ(r.actual_total_size, size);
        set_is_refused(s, "d");

        CHECK_OK(backlite_storage_check(s, 1, &r, &err));
        CHECK(r.healthy && r.repaired);
        CHECK_EQ(r.recorded_count, UINT64_MAX);
        CHECK_EQ(r.actual_count, n);
        CHECK_OK(backlite_storage_check(s, 0, &r, &err));
        CHECK(r.healthy && !r.repaired);
        SET(s, "d", "vvvv");
        backlite_stats st = STATS(s);
        CHECK_EQ(st.count, n + 1);
        CHECK_EQ(st.total_size, size + 4);
        if (!emptied) {
            GET_EQ(s, "a", "v");
            GET_EQ(s, "b", "vv");
            GET_EQ(s, "c", "vvv");
        }
        GET_EQ(s, "d", "vvvv");
        /* A damaged lifetime counter starts over; the sound ones are kept. */
        backlite_lifetime_stats life;
        CHECK_OK(backlite_storage_lifetime_stats(s, &life, &err));
        bool misses_damaged = strstr(damage[i], "state_misses") != NULL;
        bool clock_lost = strstr(damage[i], "state_clock = NULL") != NULL;
        CHECK(life.hits >= 1);
        /* (The emptied file's, and those of a newest row without its clock, are those
         * `state` held before the first set.) */
        CHECK_EQ(life.misses, misses_damaged || emptied || clock_lost ? 0 : 1);
        backlite_storage_free(s);

        /* The order survives: the entry set last is the newest, after a reopening. */
        s = OPEN_WITH(path, size + 4, BACKLITE_EVICTION_POLICY_LAST_IN_FIRST_OUT);
        REQUIRE(s != NULL);
        SET(s, "e", "v");
        CHECK(!HAS(s, "d"));
        CHECK_OK(backlite_storage_check(s, 0, &r, &err));
        CHECK(r.healthy);
        backlite_storage_free(s);
    }
}

int main(void) {
    h_begin();
    RUN(a_new_key_writes_two_pages);
    RUN(a_set_that_evicts_writes_no_counter_page);
    RUN(a_hit_written_at_close_moves_its_row_above_the_newest);
    RUN(a_damaged_counter_fails_writes_until_a_check_repairs_it);
    return h_end();
}
