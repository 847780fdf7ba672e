/*
 * Seventh probe round of the local cache contract, kept as tests.
 *
 * a_reader_that_finds_its_value_damaged_counts_a_miss: a reader's open counts a hit
 * (the header says so), but a value that proves damaged at its end was no live entry:
 * API.md makes that look-up a miss, and a get or get_chunks of the same value counts
 * one. The reader left the hit counted and counted no miss, in the handle's stats and
 * in the file's lifetime counters.
 *
 * a_check_beside_another_process_writing_large_values_finds_it_healthy: the known
 * debt of the last round. A check with repair in one process, beside another that
 * overwrites and deletes large values, took that process's files whose rows it had
 * just removed (between its commit and its unlink) for orphans: it said repaired 1,
 * orphan_values 1 on a healthy cache (22 of the checks of one run). It never took a
 * file a committed row names (no lost data): every check finds no damaged entry, and
 * every value the writer set reads back whole right after and at the end.
 */
#include "backlite.h"
#include "harness.h"
#include "value_folder.h"

/* Flips one bit in the middle of the only value file of the cache at `path`. */
static void flip_a_bit_of_the_value_file(const char *path) {
    const char *file = only_value_file(path);
    REQUIRE(file != NULL);
    size_t len = 0;
    uint8_t *bytes = h_read_file(file, &len);
    REQUIRE(bytes != NULL);
    bytes[len / 2] ^= 1;
    REQUIRE(h_write_file(file, bytes, len));
    free(bytes);
}

/* Reads `r` to its end: the result of the last read (OK at a clean end). */
static backlite_result read_to_the_end(backlite_value_reader *r) {
    static uint8_t buf[65536];
    for (;;) {
        size_t n = 0;
        backlite_error *err = NULL;
        backlite_result rc = backlite_value_reader_read(r, buf, sizeof buf, &n, &err);
        if (rc == BACKLITE_RESULT_NOT_FOUND) CHECK(err == NULL); /* a miss: no error object */
        backlite_error_free(err);
        if (rc != BACKLITE_RESULT_OK || n == 0) return rc;
    }
}

#define CHECK_LOOKUPS(s, hits_, misses_)                       \
    do {                                                       \
        backlite_stats st_ = STATS(s);                         \
        CHECK_EQ(st_.hits, (uint64_t)(hits_));                 \
        CHECK_EQ(st_.misses, (uint64_t)(misses_));             \
        backlite_lifetime_stats lt_ = LIFETIME(s);             \
        CHECK_EQ(lt_.hits, (uint64_t)(hits_));                 \
        CHECK_EQ(lt_.misses, (uint64_t)(misses_));             \
    } while (0)

/* A value damaged behind BackLite's back, read by a reader to its end: NOT_FOUND, the
 * entry gone, and one miss and no hit, as a get of it counts. `write_between`: another
 * write of the handle between the open and the end, which takes the open's hit into
 * the file's counters first. In a file (the CRC taken as the bytes go by) and, with
 * python3, in the database past 256 KiB (read from its snapshot in chunks). */
static void damaged_reader_counts_a_miss(const char *name, bool in_database, bool write_between) {
    const char *path = tmp_path(name);
    size_t n = 300000;
    uint8_t *v = h_pattern(n, 11);
    backlite_storage *s = in_database ? OPEN_SET(path, .file_threshold = BACKLITE_FILE_THRESHOLD_NEVER)
                                      : OPEN_SET(path, .file_threshold = 4096);
    REQUIRE(s != NULL);
    SET_BYTES(s, "k", v, n, NEVER);
    free(v);
    if (in_database) {
        backlite_storage_free(s);
        REQUIRE(h_zero_blobs(path));
        s = OPEN_SET(path, .file_threshold = BACKLITE_FILE_THRESHOLD_NEVER);
        REQUIRE(s != NULL);
    } else {
        flip_a_bit_of_the_value_file(path);
    }
    CHECK_LOOKUPS(s, 0, 0);

    backlite_value_reader *r = NULL;
    uint64_t size = 0;
    CHECK_OK(backlite_storage_open_reader(s, K("k"), &r, &size, NULL, &err));
    REQUIRE(r != NULL);
    CHECK_EQ(size, n);
    CHECK_LOOKUPS(s, 1, 0); /* a hit when opened, as the header says */
    if (write_between) SET(s, "other", "x");
    CHECK_EQ(read_to_the_end(r), BACKLITE_RESULT_NOT_FOUND);
    CHECK_LOOKUPS(s, 0, 1); /* it proved a miss */
    size_t m = 7;
    CHECK_RC(backlite_value_reader_read(r, NULL, 0, &m, &err), BACKLITE_RESULT_NOT_FOUND);
    CHECK_LOOKUPS(s, 0, 1); /* counted once */
    backlite_value_reader_free(r);
    CHECK(!HAS(s, "k"));
    CHECK_EQ(STATS(s).count, write_between ? 1 : 0);
    backlite_storage_free(s);

    /* What reached the file. */
    s = OPEN(path, NULL);
    REQUIRE(s != NULL);
    backlite_lifetime_stats lt = LIFETIME(s);
    CHECK_EQ(lt.hits, 0);
    CHECK_EQ(lt.misses, 1);
    backlite_storage_free(s);
}

static void a_reader_that_finds_its_value_damaged_counts_a_miss(void) {
    damaged_reader_counts_a_miss("file.db", false, false);
    damaged_reader_counts_a_miss("file-written.db", false, true);
    if (!h_have_python_sqlite()) SKIP("python3 with sqlite3 is not available to edit the file");
    damaged_reader_counts_a_miss("blob.db", true, false);
    damaged_reader_counts_a_miss("blob-written.db", true, true);
}

/* The same damage met by a get and by get_chunks: a miss each, no hit (passed as it
 * was: what the reader is held to). */
static int count_chunk(void *user_data, const uint8_t *data, size_t len) {
    (void)data;
    *(size_t *)user_data += len;
    return 0;
}

static void a_get_and_get_chunks_of_a_damaged_value_count_a_miss(void) {
    for (int how = 0; how < 2; how++) {
        const char *path = tmp_path(how ? "chunks.db" : "get.db");
        size_t n = 300000;
        uint8_t *v = h_pattern(n, 12);
        backlite_storage *s = OPEN_SET(path, .file_threshold = 4096);
        REQUIRE(s != NULL);
        SET_BYTES(s, "k", v, n, NEVER);
        free(v);
        flip_a_bit_of_the_value_file(path);
        if (how == 0) {
            GET_MISSING(s, "k");
        } else {
            size_t got = 0;
            CHECK_RC(backlite_storage_get_chunks(s, K("k"), count_chunk, &got, NULL, &err),
                     BACKLITE_RESULT_NOT_FOUND);
            CHECK(got < n);
        }
        CHECK_LOOKUPS(s, 0, 1);
        CHECK(!HAS(s, "k"));
        backlite_storage_free(s);
    }
}

/* ------------------------------- a repair beside another process's writes */

#define RK 4          /* keys of the writer */
#define RLEN 70000    /* kept in files (threshold 4096) */

static void fill_value(uint8_t *v, size_t len, unsigned key, unsigned version) {
    for (size_t i = 0; i < len; i++) v[i] = (uint8_t)(i * 31u + key * 7u + version * 13u);
}

/* The checker: checks with and without repair until the writer says it is done (a
 * byte on `done_fd`); exits 1 for a damaged entry, 2 for a failed call, 3 for a check
 * that did not find the cache healthy or repaired anything. */
__attribute__((noreturn)) static void checker(const char *path, int done_fd, int *repaired_out_fd) {
    backlite_storage *s = NULL;
    if (backlite_storage_open(path, NULL, &s, NULL) != BACKLITE_RESULT_OK) h_child_exit(2);
    unsigned repaired = 0;
    for (unsigned i = 0;; i++) {
        backlite_check_report rep;
        if (backlite_storage_check(s, (int32_t)(i % 4 != 0), &rep, NULL) != BACKLITE_RESULT_OK) h_child_exit(2);
        if (rep.damaged != 0 || rep.integrity_ok != 1) h_child_exit(1);
        repaired += rep.repaired ? 1 : 0;
        if (rep.healthy != 1 || rep.orphan_values != 0) h_child_exit(3);
        char c;
        if (read(done_fd, &c, 1) == 1) break;
    }
    backlite_storage_free(s);
    if (write(*repaired_out_fd, &repaired, sizeof repaired) != (ssize_t)sizeof repaired) h_child_exit(2);
    h_child_exit(0);
}

static void a_check_beside_another_process_writing_large_values_finds_it_healthy(void) {
    const char *path = tmp_path("repair.db");
    backlite_storage *s = OPEN_SET(path, .file_threshold = 4096, .busy_timeout_ms = 60000);
    REQUIRE(s != NULL);
    int done[2], out[2];
    REQUIRE(pipe(done) == 0 && pipe(out) == 0);
    REQUIRE(fcntl(done[0], F_SETFL, O_NONBLOCK) == 0);
    fflush(NULL);
    pid_t kid = fork();
    REQUIRE(kid >= 0);
    if (kid == 0) {
        /* A handle of its own, through exec-free fork: the parent's is not used. */
        close(done[1]);
        close(out[0]);
        checker(path, done[0], &out[1]);
    }
    close(done[0]);
    close(out[1]);
    unsigned version[RK] = {0};
    bool live[RK] = {false};
    uint8_t *v = malloc(RLEN);
    REQUIRE(v != NULL);
    uint64_t seed = 7;
    int steps = h_under_valgrind() ? 60 : 1500;
    for (int step = 0; step < steps; step++) {
        unsigned k = (unsigned)h_rand_below(&seed, RK);
        char key[8];
        snprintf(key, sizeof key, "k%u", k);
        if (h_rand_below(&seed, 5) == 0) {
            backlite_result rc = backlite_storage_delete(s, K(key), NULL);
            CHECK_EQ(rc, live[k] ? BACKLITE_RESULT_OK : BACKLITE_RESULT_NOT_FOUND);
            live[k] = false;
        } else {
            version[k]++;
            fill_value(v, RLEN, k, version[k]);
            SET_BYTES(s, key, v, RLEN, NEVER);
            live[k] = true;
        }
        /* Every key reads back as last written, right now. */
        for (unsigned j = 0; j < RK; j++) {
            char kj[8];
            snprintf(kj, sizeof kj, "k%u", j);
            if (!live[j]) {
                GET_MISSING(s, kj);
                continue;
            }
            fill_value(v, RLEN, j, version[j]);
            GET_BYTES_EQ(s, kj, v, RLEN);
        }
    }
    /* A checker that ended early (its exit code says why) reads no more. */
    void (*was)(int) = signal(SIGPIPE, SIG_IGN);
    if (write(done[1], "x", 1) != 1) CHECK(false);
    signal(SIGPIPE, was);
    int status = 0;
    REQUIRE(waitpid(kid, &status, 0) == kid);
    CHECK(WIFEXITED(status));
    if (WIFEXITED(status)) CHECK_EQ(WEXITSTATUS(status), 0);
    unsigned repaired = 0;
    CHECK(read(out[0], &repaired, sizeof repaired) == (ssize_t)sizeof repaired);
    CHECK_EQ(repaired, 0);
    close(done[1]);
    close(out[0]);
    backlite_check_report rep;
    CHECK_OK(backlite_storage_check(s, 0, &rep, &err));
    CHECK_EQ(rep.healthy, 1);
    CHECK_EQ(rep.damaged, 0);
    CHECK_EQ(rep.orphan_values, 0);
    free(v);
    backlite_storage_free(s);
}

int main(void) {
    h_begin();
    RUN(a_reader_that_finds_its_value_damaged_counts_a_miss);
    RUN(a_get_and_get_chunks_of_a_damaged_value_count_a_miss);
    RUN(a_check_beside_another_process_writing_large_values_finds_it_healthy);
    return h_end();
}
