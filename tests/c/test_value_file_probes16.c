/*
 * Values kept in files (issue 16), sixteenth probe round: a set_many past its 64th large
 * value. A batch writes the files of its first 64 large values before it takes the
 * file's write lock, each held open and locked until its commit (test_value_file_probes14.c),
 * but wrote the files of any further ones inside its write transaction: while it wrote
 * them every other writer of the file, in every process, waited for those bytes and
 * failed BUSY after its busy timeout, where the README promises that other writers wait
 * only for the rows. Those files are now written ahead too, closed once written, under
 * one shared lock on the folder's marker, which keeps check with repair, vacuum and the
 * sweep on open from taking them for orphans.
 */
#include "backlite.h"
#include "batch_write_stop.h"

#include <dirent.h>
#include <sys/stat.h>
#include <time.h>

#define THRESHOLD 4096
/* More large values than a batch holds open (64). */
#define BATCH 67
#define LEN (THRESHOLD + 100)

static uint8_t values[BATCH][LEN];

/* Every value of the batch reads back whole beside `others` entries of one byte, with
 * one file each and nothing left over. */
static void the_batch_reads_back(backlite_storage *s, const char *path, uint64_t others) {
    for (int i = 0; i < BATCH; i++) {
        char key[16];
        batch_key(i, key, sizeof key);
        backlite_buf b = {0};
        CHECK_OK(backlite_storage_get(s, K(key), &b, NULL, &err));
        CHECK(b.len == LEN && memcmp(b.data, values[i], LEN) == 0);
        backlite_buf_free(&b);
    }
    backlite_stats st = STATS(s);
    CHECK_EQ(st.count, BATCH + others);
    CHECK_EQ(st.total_size, (uint64_t)BATCH * LEN + others);
    CHECK_EQ(value_files(path), BATCH);
    backlite_check_report rep;
    CHECK_OK(backlite_storage_check(s, 0, &rep, &err));
    CHECK_EQ(rep.orphan_values, 0);
    CHECK_EQ(rep.healthy, 1);
}

/* While a batch writes the file of its 66th large value, another writer's set with a
 * busy timeout of 100 ms is OK, and so are a check with repair and a vacuum, which
 * remove none of the batch's files, not even those it closed (made to look two hours
 * old, which the sweep on open of another handle leaves too). Once the batch goes on,
 * every value reads back whole. (The batch held the write lock there: BUSY.) */
static void a_batch_past_its_64th_large_value_holds_no_write_lock_while_it_writes_files(void) {
    const char *path = tmp_path("many.db");
    backlite_storage *s = OPEN_SET(path, .file_threshold = THRESHOLD, .busy_timeout_ms = 100);
    REQUIRE(s != NULL);
    for (int i = 0; i < BATCH; i++)
        for (int j = 0; j < LEN; j++) values[i][j] = (uint8_t)(j * 131 + i * 7);
    pid_t pid;
    batch_stopped_at_file(path, THRESHOLD, &values[0][0], LEN, BATCH, 66, &pid);
    if (pid < 0) {
        backlite_storage_free(s);
        return;
    }
    if (pid == 0) {
        backlite_storage_free(s);
        SKIP("ptrace is refused here");
    }
    CHECK_EQ(value_files(path), 66);
    CHECK_OK(backlite_storage_set(s, K("small"), (const uint8_t *)"x", 1, NEVER, &err));
    age_value_files(path, 7200);
    for (int i = 0; i < 3; i++) {
        backlite_storage *other = OPEN_SET(path, .file_threshold = THRESHOLD, .busy_timeout_ms = 100);
        REQUIRE(other != NULL);
        backlite_storage_free(other);
    }
    CHECK_EQ(value_files(path), 66);
    backlite_check_report rep;
    CHECK_OK(backlite_storage_check(s, 1, &rep, &err));
    CHECK_EQ(rep.orphan_values, 0);
    CHECK_EQ(value_files(path), 66);
    CHECK_OK(backlite_storage_vacuum(s, &err));
    CHECK_EQ(value_files(path), 66);
    batch_finish(pid);
    the_batch_reads_back(s, path, 1);
    backlite_storage_free(s);
}

int main(void) {
    h_begin();
    RUN(a_batch_past_its_64th_large_value_holds_no_write_lock_while_it_writes_files);
    return h_end();
}
