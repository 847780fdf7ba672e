/*
 * backlite_storage_open_reader and backlite_value_reader_* (issue 16, item 3): a value
 * pulled a buffer at a time. Every place a value lives (its row, a blob copied at open,
 * a blob read from a kept snapshot, a file of its own, an in-memory cache) reads back
 * whole, in reads of any size (1 byte, cap 0); a miss and an expired entry open
 * nothing; a damaged value fails at its end with NOT_FOUND, never a clean end, and its
 * entry goes; a value replaced or deleted while a reader is open reads back as it
 * was; a reader outlives its storage; NULL and bad arguments change nothing.
 */
#include "backlite.h"
#include "harness.h"
#include "value_folder.h"

#include <stddef.h>

#define CHUNK ((size_t)256 * 1024)

/* A storage that keeps values of `threshold` bytes and more in files of their own
 * (BACKLITE_FILE_THRESHOLD_NEVER: none). */
#define open_threshold(path, threshold) OPEN_SET((path), .file_threshold = (threshold))

static backlite_value_reader *open_reader(backlite_storage *s, const char *key) {
    backlite_value_reader *r = NULL;
    CHECK_OK(backlite_storage_open_reader(s, K(key), &r, NULL, NULL, &err));
    CHECK(r != NULL);
    return r;
}

/* Reads `r` to its end `step` bytes at a time into `out` (room for `cap`): the number
 * of bytes read, or -1 - bytes read when the value proved damaged (NOT_FOUND). */
static long long read_all(backlite_value_reader *r, size_t step, uint8_t *out, size_t cap) {
    uint8_t *buf = malloc(step);
    if (!buf) abort();
    size_t total = 0;
    for (;;) {
        size_t n = 12345;
        backlite_error *err = NULL;
        backlite_result rc = backlite_value_reader_read(r, buf, step, &n, &err);
        if (rc == BACKLITE_RESULT_NOT_FOUND) {
            CHECK(err == NULL); /* a damaged value is a miss: no error object */
            CHECK_EQ(n, 12345); /* nothing written on a failure */
            free(buf);
            return -1 - (long long)total;
        }
        CHECK_EQ(rc, BACKLITE_RESULT_OK);
        backlite_error_free(err);
        if (rc != BACKLITE_RESULT_OK) break;
        CHECK(n <= step);
        if (n == 0) break;
        if (total + n <= cap) memcpy(out + total, buf, n);
        total += n;
    }
    free(buf);
    return (long long)total;
}

static const size_t SIZES[] = {0, 10, 300, 40000, CHUNK, CHUNK + 1, 3 * CHUNK + 7};
#define N_SIZES (sizeof SIZES / sizeof SIZES[0])

static void each_size_reads_back_whole(backlite_storage *s) {
    for (size_t i = 0; i < N_SIZES; i++) {
        size_t n = SIZES[i];
        uint8_t *v = h_pattern(n, (unsigned)i);
        SET_BYTES(s, "k", v, n, 60000);
        uint8_t *got = malloc(n + 1);
        REQUIRE(got != NULL);
        const size_t steps[] = {65536, 7, CHUNK + 3};
        for (size_t j = 0; j < 3; j++) {
            backlite_value_reader *r = NULL;
            uint64_t size = 99;
            int64_t left = -7;
            CHECK_OK(backlite_storage_open_reader(s, K("k"), &r, &size, &left, &err));
            REQUIRE(r != NULL);
            CHECK_EQ(size, n);
            CHECK_EQ(backlite_value_reader_size(r), n);
            CHECK(left > 0 && left <= 60000);
            if (steps[j] == 7 && n > 50000) {
                backlite_value_reader_free(r);
                continue; /* small reads of a large value: below */
            }
            memset(got, 0, n + 1);
            CHECK_EQ(read_all(r, steps[j], got, n), n);
            CHECK(memcmp(got, v, n) == 0);
            /* The end stays the end. */
            size_t again = 5;
            uint8_t b[4];
            CHECK_OK(backlite_value_reader_read(r, b, sizeof b, &again, &err));
            CHECK_EQ(again, 0);
            backlite_value_reader_free(r);
        }
        free(got);
        free(v);
    }
}

static void every_kind_of_value_reads_back_whole(void) {
    backlite_storage *d = open_threshold(tmp_path("in-db.db"), BACKLITE_FILE_THRESHOLD_NEVER);
    REQUIRE(d != NULL);
    each_size_reads_back_whole(d);
    backlite_storage_free(d);
    const char *path = tmp_path("files.db");
    backlite_storage *f = open_threshold(path, 4096);
    REQUIRE(f != NULL);
    each_size_reads_back_whole(f);
    CHECK_EQ(value_files(path), 1); /* the last, largest value */
    backlite_storage_free(f);
    backlite_storage *m = OPEN(":memory:", NULL);
    REQUIRE(m != NULL);
    each_size_reads_back_whole(m);
    backlite_storage_free(m);
}

/* Reads of 1 byte and of cap 0 (which reads nothing and moves nothing), across the
 * ends of chunks and to the end of a value in a snapshot and in a file. */
static void reads_of_one_byte_and_of_nothing(void) {
    const int64_t thresholds[] = {BACKLITE_FILE_THRESHOLD_NEVER, 4096};
    for (int t = 0; t < 2; t++) {
        backlite_storage *s = open_threshold(tmp_path(t ? "one-f.db" : "one-d.db"), thresholds[t]);
        REQUIRE(s != NULL);
        size_t n = CHUNK + 600;
        uint8_t *v = h_pattern(n, 5);
        SET_BYTES(s, "k", v, n, NEVER);
        backlite_value_reader *r = open_reader(s, "k");
        REQUIRE(r != NULL);
        uint8_t *got = malloc(n);
        REQUIRE(got != NULL);
        size_t at = 0;
        while (at < n) {
            size_t want = (at < 500 || at + 500 > n || (at > CHUNK - 300 && at < CHUNK + 300)) ? 1 : 4000;
            if (want > n - at) want = n - at;
            size_t got_n = 99;
            /* A cap of 0 here and there: 0 bytes, and the next read goes on. */
            if (at % 97 == 0) {
                CHECK_OK(backlite_value_reader_read(r, got + at, 0, &got_n, &err));
                CHECK_EQ(got_n, 0);
                CHECK_OK(backlite_value_reader_read(r, NULL, 0, &got_n, &err));
                CHECK_EQ(got_n, 0);
            }
            CHECK_OK(backlite_value_reader_read(r, got + at, want, &got_n, &err));
            if (got_n == 0) break;
            CHECK(got_n <= want);
            at += got_n;
        }
        CHECK_EQ(at, n);
        CHECK(memcmp(got, v, n) == 0);
        size_t end = 99;
        CHECK_OK(backlite_value_reader_read(r, got, 1, &end, &err));
        CHECK_EQ(end, 0);
        backlite_value_reader_free(r);
        free(got);
        free(v);
        backlite_storage_free(s);
    }
}

static void a_miss_or_an_expired_entry_opens_nothing(void) {
    backlite_storage *s = open_threshold(tmp_path("miss.db"), 4096);
    REQUIRE(s != NULL);
    backlite_value_reader *const sentinel = (backlite_value_reader *)&s, *r = sentinel;
    uint64_t size = 7;
    int64_t left = -7;
    CHECK_RC(backlite_storage_open_reader(s, K("absent"), &r, &size, &left, &err),
             BACKLITE_RESULT_NOT_FOUND);
    CHECK(r == sentinel); /* a miss writes no out-parameter, the reader's included */
    CHECK_EQ(size, 7);
    CHECK_EQ(left, -7);
    uint8_t *v = h_pattern(10000, 1);
    SET_BYTES(s, "gone", v, 10000, 0); /* expired already */
    CHECK_RC(backlite_storage_open_reader(s, K("gone"), &r, NULL, NULL, &err),
             BACKLITE_RESULT_NOT_FOUND);
    CHECK(r == sentinel);
    SET_BYTES(s, "k", v, 10000, NEVER);
    CHECK_OK(backlite_storage_open_reader(s, K("k"), &r, NULL, &left, &err));
    CHECK_EQ(left, NEVER);
    backlite_value_reader_free(r);
    backlite_stats st = STATS(s);
    CHECK_EQ(st.misses, 2);
    CHECK_EQ(st.hits, 1); /* counted when opened */
    free(v);
    backlite_storage_free(s);
}

static void null_and_bad_arguments_change_nothing(void) {
    backlite_storage *s = open_threshold(tmp_path("null.db"), 4096);
    REQUIRE(s != NULL);
    uint8_t *v = h_pattern(20000, 2);
    SET_BYTES(s, "k", v, 20000, NEVER);
    backlite_value_reader *r = NULL;
    CHECK_RC(backlite_storage_open_reader(NULL, K("k"), &r, NULL, NULL, &err),
             BACKLITE_RESULT_NULL_PARAMETER);
    CHECK_RC(backlite_storage_open_reader(s, NULL, 1, &r, NULL, NULL, &err),
             BACKLITE_RESULT_NULL_PARAMETER);
    CHECK_RC(backlite_storage_open_reader(s, K("k"), NULL, NULL, NULL, &err),
             BACKLITE_RESULT_NULL_PARAMETER);
    /* A key longer than any key may be: refused before it is read (never touched). */
    CHECK_RC(backlite_storage_open_reader(s, (const uint8_t *)"k", (size_t)BACKLITE_MAX_KEY_SIZE + 1,
                                          &r, NULL, NULL, &err),
             BACKLITE_RESULT_INVALID_ARGUMENT);
    CHECK(r == NULL);
    backlite_stats st = STATS(s);
    CHECK_EQ(st.hits + st.misses, 0); /* none of them looked anything up */

    r = open_reader(s, "k");
    REQUIRE(r != NULL);
    uint8_t buf[100];
    size_t n = 42;
    CHECK_RC(backlite_value_reader_read(NULL, buf, sizeof buf, &n, &err), BACKLITE_RESULT_NULL_PARAMETER);
    CHECK_RC(backlite_value_reader_read(r, buf, sizeof buf, NULL, &err), BACKLITE_RESULT_NULL_PARAMETER);
    CHECK_RC(backlite_value_reader_read(r, NULL, 10, &n, &err), BACKLITE_RESULT_NULL_PARAMETER);
    CHECK_RC(backlite_value_reader_read(r, buf, (size_t)PTRDIFF_MAX + 1, &n, &err),
             BACKLITE_RESULT_INVALID_ARGUMENT);
    CHECK_EQ(n, 42);
    /* Nothing was read: the value still starts at its first byte. */
    CHECK_OK(backlite_value_reader_read(r, buf, sizeof buf, &n, &err));
    CHECK_EQ(n, sizeof buf);
    CHECK(memcmp(buf, v, sizeof buf) == 0);
    CHECK_EQ(backlite_value_reader_size(NULL), 0);
    backlite_value_reader_free(NULL);
    backlite_value_reader_free(r);
    free(v);
    backlite_storage_free(s);
}

/* Flips the last byte of the value in its file: same length, a CRC that fails at the end. */
static void a_damaged_value_file_fails_at_its_end_and_goes(void) {
    const char *path = tmp_path("flipped.db");
    backlite_storage *s = open_threshold(path, 4096);
    REQUIRE(s != NULL);
    size_t n = 2 * CHUNK + 100;
    uint8_t *v = h_pattern(n, 3);
    SET_BYTES(s, "k", v, n, NEVER);
    const char *file = only_value_file(path);
    size_t len = 0;
    uint8_t *bytes = h_read_file(file, &len);
    REQUIRE(bytes != NULL);
    bytes[len - VALUE_RECORD_LEN - 1] ^= 1;
    REQUIRE(h_write_file(file, bytes, len));
    free(bytes);
    backlite_value_reader *r = open_reader(s, "k");
    REQUIRE(r != NULL);
    uint8_t *got = malloc(n);
    REQUIRE(got != NULL);
    long long end = read_all(r, 1000, got, n);
    CHECK(end < 0);             /* NOT_FOUND, not a clean end */
    CHECK(-1 - end < (long long)n); /* never the whole value */
    size_t m = 3;
    CHECK_RC(backlite_value_reader_read(r, got, 10, &m, &err), BACKLITE_RESULT_NOT_FOUND);
    CHECK_EQ(m, 3);
    CHECK(!HAS(s, "k"));
    CHECK_EQ(STATS(s).count, 0);
    backlite_value_reader_free(r);
    CHECK_EQ(value_files(path), 0);
    free(got);
    free(v);
    backlite_storage_free(s);
}

/* A blob changed behind BackLite's back (same length): copied at open (at most
 * 256 KiB), a miss; read from its snapshot (larger), NOT_FOUND at its end. */
static void a_damaged_blob_is_a_miss_or_fails_at_its_end(void) {
    if (!h_have_python_sqlite()) SKIP("python3 with sqlite3 is not available to edit the file");
    const size_t sizes[] = {CHUNK, 3 * CHUNK};
    for (int i = 0; i < 2; i++) {
        const char *path = tmp_path(i ? "blob-big.db" : "blob-small.db");
        backlite_storage *s = open_threshold(path, BACKLITE_FILE_THRESHOLD_NEVER);
        REQUIRE(s != NULL);
        uint8_t *v = h_pattern(sizes[i], 4);
        SET_BYTES(s, "k", v, sizes[i], NEVER);
        free(v);
        backlite_storage_free(s);
        REQUIRE(h_zero_blobs(path));
        s = open_threshold(path, BACKLITE_FILE_THRESHOLD_NEVER);
        REQUIRE(s != NULL);
        backlite_value_reader *r = NULL;
        if (i == 0) {
            CHECK_RC(backlite_storage_open_reader(s, K("k"), &r, NULL, NULL, &err),
                     BACKLITE_RESULT_NOT_FOUND);
        } else {
            CHECK_OK(backlite_storage_open_reader(s, K("k"), &r, NULL, NULL, &err));
            REQUIRE(r != NULL);
            long long end = read_all(r, 100000, NULL, 0);
            CHECK(end < 0 && -1 - end < (long long)sizes[i]);
            backlite_value_reader_free(r);
        }
        CHECK(!HAS(s, "k"));
        CHECK_EQ(STATS(s).count, 0);
        backlite_storage_free(s);
    }
}

/* Readers opened before a set and a delete of their key (and before values of the same
 * length took the place of the old ones) read the values they opened, whole. */
static void a_value_replaced_or_deleted_while_open_reads_back_as_it_was(void) {
    const int64_t thresholds[] = {BACKLITE_FILE_THRESHOLD_NEVER, 4096};
    const size_t sizes[] = {300, CHUNK, 3 * CHUNK + 1};
    for (int t = 0; t < 2; t++) {
        for (int i = 0; i < 3; i++) {
            size_t n = sizes[i];
            backlite_storage *s = open_threshold(tmp_path("replaced.db"), thresholds[t]);
            REQUIRE(s != NULL);
            uint8_t *old = h_pattern(n, 10), *new = h_pattern(n, 11), *other = h_pattern(n, 12);
            SET_BYTES(s, "k", old, n, NEVER);
            backlite_value_reader *a = open_reader(s, "k");
            SET_BYTES(s, "k", new, n, NEVER);
            backlite_value_reader *b = open_reader(s, "k");
            CHECK_OK(backlite_storage_delete(s, K("k"), &err));
            SET_BYTES(s, "other", other, n, NEVER);
            SET_BYTES(s, "k", other, n, NEVER);
            uint8_t *got = malloc(n);
            REQUIRE(got != NULL);
            CHECK_EQ(read_all(a, 50000, got, n), n);
            CHECK(memcmp(got, old, n) == 0);
            CHECK_EQ(read_all(b, 50000, got, n), n);
            CHECK(memcmp(got, new, n) == 0);
            backlite_value_reader_free(a);
            backlite_value_reader_free(b);
            CHECK_OK(backlite_storage_delete(s, K("k"), &err));
            CHECK_OK(backlite_storage_delete(s, K("other"), &err));
            free(got);
            free(old);
            free(new);
            free(other);
            backlite_storage_free(s);
        }
    }
}

/* The storage freed first: the reader keeps what it needs (its file, or its connection
 * and snapshot, and the handle behind them) until it is freed; valgrind and ASan see
 * nothing left. */
static void a_reader_outlives_its_storage(void) {
    const int64_t thresholds[] = {BACKLITE_FILE_THRESHOLD_NEVER, 4096};
    const size_t sizes[] = {100, CHUNK, 3 * CHUNK + 1};
    for (int t = 0; t < 2; t++) {
        for (int i = 0; i < 3; i++) {
            size_t n = sizes[i];
            backlite_storage *s = open_threshold(tmp_path("outlives.db"), thresholds[t]);
            REQUIRE(s != NULL);
            uint8_t *v = h_pattern(n, 13);
            SET_BYTES(s, "k", v, n, NEVER);
            backlite_value_reader *r = open_reader(s, "k");
            /* One read before, the rest after. */
            uint8_t *got = malloc(n);
            REQUIRE(got != NULL);
            size_t first = 0;
            CHECK_OK(backlite_value_reader_read(r, got, 50, &first, &err));
            CHECK_EQ(first, 50);
            backlite_storage_free(s);
            CHECK_EQ(read_all(r, 70000, got + 50, n - 50), n - 50);
            CHECK(memcmp(got, v, n) == 0);
            backlite_value_reader_free(r);
            /* And one never read at all. */
            s = open_threshold(tmp_path("outlives.db"), thresholds[t]);
            REQUIRE(s != NULL);
            r = open_reader(s, "k");
            backlite_storage_free(s);
            backlite_value_reader_free(r);
            free(got);
            free(v);
        }
    }
}

/* A reader of a value in the database opened before fork(): in the child, whose copy
 * of the reader's thread did not survive the fork, a read fails with IO (it never
 * hangs) and freeing it is safe; the parent reads the value whole meanwhile. */
static void a_reader_in_a_forked_child_fails_and_never_hangs(void) {
    backlite_storage *s = open_threshold(tmp_path("fork.db"), BACKLITE_FILE_THRESHOLD_NEVER);
    REQUIRE(s != NULL);
    size_t n = 5 * CHUNK + 3;
    uint8_t *v = h_pattern(n, 17);
    SET_BYTES(s, "k", v, n, NEVER);
    backlite_value_reader *r = open_reader(s, "k");
    uint8_t *got = malloc(n);
    REQUIRE(got != NULL);
    size_t first = 0;
    CHECK_OK(backlite_value_reader_read(r, got, 100, &first, &err));
    CHECK_EQ(first, 100);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        int before = atomic_load(&h_st()->failures);
        uint8_t b[CHUNK / 4];
        size_t m = 99;
        CHECK_RC(backlite_value_reader_read(r, b, sizeof b, &m, &err), BACKLITE_RESULT_IO);
        CHECK_EQ(m, 99);
        backlite_value_reader_free(r);
        bool ok = atomic_load(&h_st()->failures) == before;
        /* Under valgrind, the child's memory holds what the parent's reading thread
         * held (its closure, the chunk it was filling): reachable from no thread here,
         * lost by design. An exec ends the child without valgrind's leak check. */
        h_child_exit(ok ? 0 : 1);
    }
    CHECK_EQ(read_all(r, 70000, got + 100, n - 100), n - 100);
    CHECK(memcmp(got, v, n) == 0);
    backlite_value_reader_free(r);
    CHECK_EQ(CHILD_EXIT_CODE(pid), 0);
    free(got);
    free(v);
    backlite_storage_free(s);
}

int main(void) {
    h_begin();
    RUN(every_kind_of_value_reads_back_whole);
    RUN(reads_of_one_byte_and_of_nothing);
    RUN(a_miss_or_an_expired_entry_opens_nothing);
    RUN(null_and_bad_arguments_change_nothing);
    RUN(a_damaged_value_file_fails_at_its_end_and_goes);
    RUN(a_damaged_blob_is_a_miss_or_fails_at_its_end);
    RUN(a_value_replaced_or_deleted_while_open_reads_back_as_it_was);
    RUN(a_reader_outlives_its_storage);
    RUN(a_reader_in_a_forked_child_fails_and_never_hangs);
    return h_end();
}
