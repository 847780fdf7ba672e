/* The file's counters travel in the newest entry row (schema 4): a set writes the pages
 * of its row and of its key, as plain SQLite would, not a third for the counters
 * (counted in frames of the write-ahead log, which no checkpoint empties under 1000
 * pages), and the counters follow whichever row is newest. */
#include "backlite.h"
#include "harness.h"

#include <sys/stat.h>

#define LRU BACKLITE_EVICTION_POLICY_LEAST_RECENTLY_USED
#define NEVER BACKLITE_EXPIRATION_NEVER
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

int main(void) {
    h_begin();
    RUN(a_new_key_writes_two_pages);
    RUN(a_set_that_evicts_writes_no_counter_page);
    RUN(a_hit_written_at_close_moves_its_row_above_the_newest);
    return h_end();
}
