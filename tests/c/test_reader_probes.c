/*
 * Streaming reads of large values (issue 16) probed as a reader of the header would:
 * a pull reader opened, then its key overwritten, deleted, cleared, evicted, expired
 * and the file vacuumed, for each place a value lives (a file of its own, a copy of a
 * small value, a large value in the database): the reader keeps reading the old value
 * whole. Reads of nothing, into NULL, past the end. A visitor that fails at the first
 * or the last chunk removes nothing. And the size counters after a mix of sets,
 * overwrites, deletes, evictions and expiry around the threshold equal the values'
 * sum, with one file per filed value and nothing else in the folder.
 */
#include "backlite.h"
#include "harness.h"
#include "value_folder.h"
#include "proc_self.h"

#define THRESHOLD 4096

/* Reads the whole of `r` in reads of `step` bytes into a fresh buffer; checks it is
 * `want` and that the reader then says 0 at its end. */
static void h_read_all_eq_(const char *file, int line, backlite_value_reader *r, const uint8_t *want,
                           size_t len, size_t step) {
    uint8_t *got = malloc(len + step + 1);
    REQUIRE(got != NULL);
    size_t at = 0;
    for (;;) {
        size_t n = 0;
        backlite_error *e = NULL;
        backlite_result rc = backlite_value_reader_read(r, got + at, step, &n, &e);
        if (rc != BACKLITE_RESULT_OK) {
            h_fail_(file, line, "read at %zu: %s %s", at, h_rc_name(rc), e ? backlite_error_message(e) : "");
            backlite_error_free(e);
            break;
        }
        if (n == 0) break;
        at += n;
        if (at > len) break;
    }
    if (at != len || memcmp(got, want, len) != 0)
        h_fail_(file, line, "read %zu bytes, not the %zu of the value opened", at, len);
    free(got);
}
#define READ_ALL_EQ(r, want, len, step) h_read_all_eq_(__FILE__, __LINE__, (r), (want), (len), (step))

static backlite_value_reader *open_reader_(const char *file, int line, backlite_storage *s, const char *key,
                                           uint64_t want_len) {
    backlite_value_reader *r = NULL;
    uint64_t size = 0;
    backlite_error *e = NULL;
    backlite_result rc = backlite_storage_open_reader(s, K(key), &r, &size, NULL, &e);
    if (rc != BACKLITE_RESULT_OK || r == NULL || size != want_len)
        h_fail_(file, line, "open_reader(%s): %s, size %" PRIu64, key, h_rc_name(rc), size);
    backlite_error_free(e);
    return r;
}
#define OPEN_READER(s, key, len) open_reader_(__FILE__, __LINE__, (s), (key), (len))

enum change { OVERWRITE, DELETE, CLEAR, EVICT, EXPIRE, VACUUM, FREE_STORAGE, CHANGES };
static const char *change_name[CHANGES] = {"overwrite", "delete", "clear", "evict", "expire", "vacuum", "free"};

/* One value of `len` bytes under "k" in a cache of threshold `threshold`, read by a
 * reader opened before `what`: a few bytes read before, the rest after. */
static void reader_survives(int64_t threshold, size_t len, enum change what) {
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s", tmp_path("r.db"));
    uint64_t max_size = 3 * (uint64_t)len + 1000;
    /* A short busy timeout: a vacuum waits that long for a reader's snapshot. */
    backlite_storage *s = OPEN_SET(path, .max_size = max_size, .file_threshold = threshold, .busy_timeout_ms = 300);
    REQUIRE(s != NULL);
    uint8_t *v = h_pattern(len, 11), *w = h_pattern(len, 12);
    int64_t life = h_under_valgrind() ? 4000 : 300;
    backlite_value_reader *r = NULL;
    if (what == EXPIRE) {
        /* Under load the set and the open can take longer than `life` (the open then
           misses, the value expired): set again with twice the life. */
        for (int tries = 0; r == NULL && tries < 8; tries++) {
            if (tries > 0) life *= 2;
            SET_BYTES(s, "k", v, len, life);
            if (backlite_storage_open_reader(s, K("k"), &r, NULL, NULL, NULL) != BACKLITE_RESULT_OK) r = NULL;
        }
        CHECK_EQ(backlite_value_reader_size(r), len);
    } else {
        SET_BYTES(s, "k", v, len, NEVER);
        r = OPEN_READER(s, "k", len);
    }
    REQUIRE(r != NULL);
    uint8_t first[100];
    size_t n = 0;
    CHECK_OK(backlite_value_reader_read(r, first, sizeof first, &n, &err));
    CHECK(n == sizeof first && memcmp(first, v, n) == 0);
    switch (what) {
    case OVERWRITE:
        SET_BYTES(s, "k", w, len, NEVER);
        break;
    case DELETE:
        CHECK_OK(backlite_storage_delete(s, K("k"), &err));
        break;
    case CLEAR:
        CHECK_OK(backlite_storage_clear(s, &err));
        break;
    case EVICT:
        SET_BYTES(s, "a", w, len, NEVER);
        SET_BYTES(s, "b", w, len, NEVER);
        SET_BYTES(s, "c", w, len, NEVER);
        break;
    case EXPIRE:
        h_sleep_ms(life + 100);
        SET_BYTES(s, "other", w, 10, NEVER); /* purges the expired entry */
        break;
    case VACUUM: {
        CHECK_OK(backlite_storage_delete(s, K("k"), &err));
        /* A reader of a large value in the database holds its snapshot: BUSY is
           documented then; anything else is not. */
        backlite_error *e = NULL;
        backlite_result rc = backlite_storage_vacuum(s, &e);
        if (rc != BACKLITE_RESULT_OK && rc != BACKLITE_RESULT_BUSY)
            h_fail_(__FILE__, __LINE__, "vacuum: %s %s", h_rc_name(rc), e ? backlite_error_message(e) : "");
        backlite_error_free(e);
        break;
    }
    case FREE_STORAGE:
        backlite_storage_free(s);
        s = NULL;
        break;
    default:
        break;
    }
    if (what != OVERWRITE && what != FREE_STORAGE) GET_MISSING(s, "k");
    /* The rest, in reads of an odd size, then the whole from the start. */
    uint8_t *rest = malloc(len);
    REQUIRE(rest != NULL);
    memcpy(rest, first, sizeof first);
    size_t at = sizeof first;
    for (;;) {
        size_t got = 0;
        backlite_error *e = NULL;
        backlite_result rc = backlite_value_reader_read(r, rest + at, 7777 < len - at ? 7777 : len - at + 1, &got, &e);
        if (rc != BACKLITE_RESULT_OK) {
            h_fail_(__FILE__, __LINE__, "%s, threshold %" PRId64 ", %zu bytes: read at %zu: %s %s", change_name[what],
                    threshold, len, at, h_rc_name(rc), e ? backlite_error_message(e) : "");
            backlite_error_free(e);
            break;
        }
        if (got == 0) break;
        at += got;
    }
    if (at != len || memcmp(rest, v, len) != 0)
        h_fail_(__FILE__, __LINE__, "%s, threshold %" PRId64 ", %zu bytes: not the value opened (%zu bytes)",
                change_name[what], threshold, len, at);
    free(rest);
    backlite_value_reader_free(r);
    if (s != NULL) {
        if (what == OVERWRITE) GET_BYTES_EQ(s, "k", w, len);
        backlite_check_report rep;
        CHECK_OK(backlite_storage_check(s, 1, &rep, &err));
        CHECK_EQ(rep.healthy, 1);
        backlite_stats st = STATS(s);
        CHECK_EQ(st.total_size, rep.actual_total_size);
        backlite_storage_free(s);
        s = OPEN_SET(path, .max_size = max_size, .file_threshold = threshold);
        REQUIRE(s != NULL);
        CHECK_OK(backlite_storage_check(s, 0, &rep, &err));
        CHECK_EQ(rep.healthy, 1);
        CHECK_EQ(rep.orphan_values, 0);
        backlite_storage_free(s);
    }
    free(v);
    free(w);
}

static void a_reader_of_a_value_file_reads_the_value_it_opened_whatever_happens_since(void) {
    for (int c = 0; c < CHANGES; c++) reader_survives(THRESHOLD, 300000, (enum change)c);
}

static void a_reader_of_a_small_value_in_the_database_reads_the_value_it_opened(void) {
    for (int c = 0; c < CHANGES; c++) reader_survives(BACKLITE_FILE_THRESHOLD_NEVER, 20000, (enum change)c);
}

static void a_reader_of_a_large_value_in_the_database_reads_the_value_it_opened(void) {
    for (int c = 0; c < CHANGES; c++) reader_survives(BACKLITE_FILE_THRESHOLD_NEVER, 700000, (enum change)c);
}

/* Reads of nothing, into NULL, and past the end. */
static void reads_of_nothing_into_null_and_past_the_end(void) {
    const char *path = tmp_path("edge.db");
    backlite_storage *s = OPEN_SET(path, .file_threshold = THRESHOLD);
    REQUIRE(s != NULL);
    size_t len = 10000;
    uint8_t *v = h_pattern(len, 13);
    SET_BYTES(s, "k", v, len, NEVER);
    backlite_value_reader *r = OPEN_READER(s, "k", len);
    REQUIRE(r != NULL);
    size_t n = 12345;
    CHECK_OK(backlite_value_reader_read(r, NULL, 0, &n, &err));
    CHECK_EQ(n, 0);
    uint8_t one;
    n = 12345;
    CHECK_OK(backlite_value_reader_read(r, &one, 0, &n, &err));
    CHECK_EQ(n, 0);
    n = 12345;
    CHECK_RC(backlite_value_reader_read(r, NULL, 10, &n, &err), BACKLITE_RESULT_NULL_PARAMETER);
    CHECK_EQ(n, 12345);
    CHECK_RC(backlite_value_reader_read(r, &one, 1, NULL, &err), BACKLITE_RESULT_NULL_PARAMETER);
    CHECK_EQ(backlite_value_reader_size(r), len);
    /* Nothing was consumed by those: the whole value still comes. */
    READ_ALL_EQ(r, v, len, 999);
    for (int i = 0; i < 3; i++) {
        n = 12345;
        CHECK_OK(backlite_value_reader_read(r, &one, 1, &n, &err));
        CHECK_EQ(n, 0);
    }
    backlite_value_reader_free(r);
    backlite_storage_free(s);
    free(v);
}

typedef struct {
    int calls, fail_at; /* fail_at: the call that returns non-zero (1 = first); -1: the last */
    size_t seen, total;
} visit_state;

static int32_t visitor(void *user, const uint8_t *chunk, size_t len) {
    (void)chunk;
    visit_state *st = user;
    st->calls++;
    st->seen += len;
    if (st->fail_at == st->calls) return 1;
    if (st->fail_at == -1 && st->seen == st->total) return -7;
    return 0;
}

/* A visitor that fails at its first or its last chunk: CALLBACK_FAILED, the entry and
 * its file stay, counted as before. */
static void a_visitor_failing_at_the_first_or_last_chunk_removes_nothing(void) {
    for (int where = 0; where < 2; where++) {
        for (int place = 0; place < 3; place++) {
            const char *path = tmp_path(place == 0 ? "file.db" : place == 1 ? "small.db" : "blob.db");
            int64_t threshold = place == 0 ? THRESHOLD : BACKLITE_FILE_THRESHOLD_NEVER;
            size_t len = place == 1 ? 3000 : 700000;
            backlite_storage *s = OPEN_SET(path, .file_threshold = threshold);
            REQUIRE(s != NULL);
            uint8_t *v = h_pattern(len, 14);
            SET_BYTES(s, "k", v, len, NEVER);
            int files = value_files(path);
            visit_state st = {.fail_at = where == 0 ? 1 : -1, .total = len};
            int64_t left = 4242;
            CHECK_RC(backlite_storage_get_chunks(s, K("k"), visitor, &st, &left, &err),
                     BACKLITE_RESULT_CALLBACK_FAILED);
            CHECK_EQ(left, 4242);
            CHECK(st.calls >= 1);
            if (where == 1) CHECK_EQ(st.seen, len);
            CHECK_EQ(value_files(path), files);
            CHECK_EQ(STATS(s).count, 1);
            CHECK_EQ(STATS(s).total_size, len);
            GET_BYTES_EQ(s, "k", v, len);
            backlite_storage_free(s);
            free(v);
        }
    }
}

/* The size counters through a mix of sets around the threshold, overwrites, deletes,
 * evictions and expiry: always the sum of the live values, with one file per value at
 * or over the threshold and no other file. */
static void the_counters_equal_the_values_through_every_kind_of_change(void) {
    const char *path = tmp_path("mix.db");
    uint64_t max_size = 200000;
    backlite_storage *s = OPEN_SET(path, .max_size = max_size, .file_threshold = THRESHOLD);
    REQUIRE(s != NULL);
    uint8_t *v = h_pattern(60000, 15);
    uint64_t seed = 42;
    const size_t sizes[] = {0, 1, 255, 256, 257, THRESHOLD - 1, THRESHOLD, THRESHOLD + 1, 30000, 60000};
    for (int i = 0; i < 600; i++) {
        char key[16];
        snprintf(key, sizeof key, "k%u", (unsigned)h_rand_below(&seed, 24));
        uint64_t op = h_rand_below(&seed, 10);
        if (op < 6) {
            size_t len = sizes[h_rand_below(&seed, sizeof sizes / sizeof sizes[0])];
            int64_t exp = h_rand_below(&seed, 8) == 0 ? (int64_t)h_rand_below(&seed, 3) : NEVER;
            CHECK_OK(backlite_storage_set(s, K(key), v, len, exp, &err));
        } else if (op < 8) {
            backlite_error *e = NULL;
            backlite_result rc = backlite_storage_delete(s, K(key), &e);
            CHECK(rc == BACKLITE_RESULT_OK || rc == BACKLITE_RESULT_NOT_FOUND);
            backlite_error_free(e);
        } else if (op < 9) {
            backlite_entry batch[3];
            char keys[3][16];
            for (int j = 0; j < 3; j++) {
                snprintf(keys[j], sizeof keys[j], "k%u", (unsigned)h_rand_below(&seed, 24));
                size_t len = sizes[h_rand_below(&seed, sizeof sizes / sizeof sizes[0])];
                batch[j] = (backlite_entry){(const uint8_t *)keys[j], strlen(keys[j]), v, len, NEVER};
            }
            CHECK_OK(backlite_storage_set_many(s, batch, 3, &err));
        } else {
            backlite_buf b = {0};
            backlite_error *e = NULL;
            backlite_result rc = backlite_storage_get(s, K(key), &b, NULL, &e);
            CHECK(rc == BACKLITE_RESULT_OK || rc == BACKLITE_RESULT_NOT_FOUND);
            if (rc == BACKLITE_RESULT_OK) CHECK(memcmp(b.data, v, b.len) == 0);
            backlite_buf_free(&b);
            backlite_error_free(e);
        }
        if (i % 50 == 49) {
            backlite_check_report rep;
            CHECK_OK(backlite_storage_check(s, 0, &rep, &err));
            CHECK_EQ(rep.healthy, 1);
            CHECK_EQ(rep.recorded_total_size, rep.actual_total_size);
            CHECK_EQ(rep.recorded_count, rep.actual_count);
            CHECK(rep.actual_total_size <= max_size);
        }
    }
    /* Everything purged by a write, then each value file is named by a live entry. */
    h_sleep_ms(5);
    SET_BYTES(s, "last", v, 10, NEVER);
    backlite_stats st = STATS(s);
    uint64_t sum, filed;
    live_values(s, 24, THRESHOLD, &sum, &filed);
    CHECK_EQ(st.total_size, sum + 10);
    CHECK_EQ((uint64_t)value_files(path), filed);
    CHECK_EQ(temp_files(path), 0);
    backlite_storage_free(s);
    free(v);
}

/* contains answers for a large value without holding it: the peak resident memory
 * grows by far less than the value (kept in a file, or in the database), and a value
 * damaged behind BackLite's back is still not contained. */
static void contains_of_a_large_value_holds_no_copy_of_it_(int64_t threshold, const char *name) {
    const char *path = tmp_path(name);
    backlite_storage *s = OPEN_SET(path, .file_threshold = threshold);
    REQUIRE(s != NULL);
    size_t n = (size_t)64 << 20;
    uint8_t *v = h_pattern(n, 16);
    SET_BYTES(s, "big", v, n, NEVER);
    free(v);
    REQUIRE(reset_peak_rss());
    long before = proc_status_kib("VmRSS");
    CHECK_OK(backlite_storage_contains(s, K("big"), &err));
    long grown_mib = (proc_status_kib("VmHWM") - before) / 1024;
    printf("    contains of 64 MiB (%s) grew the peak RSS by %ld MiB\n", name, grown_mib);
    CHECK(grown_mib <= 16);
    if (threshold != BACKLITE_FILE_THRESHOLD_NEVER) {
        /* One byte of the value flipped in its file: not contained, and gone. */
        int fd = open(only_value_file(path), O_RDWR);
        REQUIRE(fd >= 0);
        uint8_t byte;
        REQUIRE(pread(fd, &byte, 1, 12345) == 1);
        byte ^= 1;
        REQUIRE(pwrite(fd, &byte, 1, 12345) == 1);
        close(fd);
        CHECK_RC(backlite_storage_contains(s, K("big"), &err), BACKLITE_RESULT_NOT_FOUND);
        CHECK_EQ(STATS(s).count, 0);
        CHECK_EQ(value_files(path), 0);
    }
    backlite_storage_free(s);
}

static void contains_of_a_large_value_holds_no_copy_of_it(void) {
    if (h_under_valgrind() || UNDER_ASAN) SKIP("resident memory is the checker's under valgrind and ASan");
    if (!reset_peak_rss()) SKIP("the kernel does not reset the peak RSS (/proc/self/clear_refs)");
    contains_of_a_large_value_holds_no_copy_of_it_(THRESHOLD, "file.db");
    contains_of_a_large_value_holds_no_copy_of_it_(BACKLITE_FILE_THRESHOLD_NEVER, "db.db");
}

/* Values of max_size exactly, one byte over, and the evictions they make, kept in
 * files: the counters and the folder follow. */
static void a_value_of_exactly_max_size_evicts_everything_else_and_one_byte_more_is_refused(void) {
    const char *path = tmp_path("edges.db");
    uint64_t max_size = 100000;
    backlite_storage *s = OPEN_SET(path, .max_size = max_size, .file_threshold = THRESHOLD);
    REQUIRE(s != NULL);
    uint8_t *v = h_pattern(max_size + 1, 17);
    SET_BYTES(s, "a", v, 60000, NEVER);
    SET_BYTES(s, "small", v, 100, NEVER);
    SET_BYTES(s, "b", v, max_size, NEVER);
    GET_MISSING(s, "a");
    GET_MISSING(s, "small");
    GET_BYTES_EQ(s, "b", v, max_size);
    CHECK_EQ(STATS(s).total_size, max_size);
    CHECK_EQ(value_files(path), 1);
    CHECK_RC(backlite_storage_set(s, K("c"), v, max_size + 1, NEVER, &err), BACKLITE_RESULT_TOO_LARGE);
    GET_BYTES_EQ(s, "b", v, max_size);
    CHECK_EQ(value_files(path), 1);
    /* Over its own key: the older value goes, nothing else. */
    CHECK_RC(backlite_storage_set(s, K("b"), v, max_size + 1, NEVER, &err), BACKLITE_RESULT_TOO_LARGE);
    GET_MISSING(s, "b");
    CHECK_EQ(STATS(s).total_size, 0);
    CHECK_EQ(STATS(s).count, 0);
    CHECK_EQ(value_files(path), 0);
    backlite_check_report rep;
    CHECK_OK(backlite_storage_check(s, 0, &rep, &err));
    CHECK_EQ(rep.healthy, 1);
    backlite_storage_free(s);
    free(v);
}

int main(void) {
    h_begin();
    RUN(a_reader_of_a_value_file_reads_the_value_it_opened_whatever_happens_since);
    RUN(a_reader_of_a_small_value_in_the_database_reads_the_value_it_opened);
    RUN(a_reader_of_a_large_value_in_the_database_reads_the_value_it_opened);
    RUN(reads_of_nothing_into_null_and_past_the_end);
    RUN(a_visitor_failing_at_the_first_or_last_chunk_removes_nothing);
    RUN(the_counters_equal_the_values_through_every_kind_of_change);
    RUN(contains_of_a_large_value_holds_no_copy_of_it);
    RUN(a_value_of_exactly_max_size_evicts_everything_else_and_one_byte_more_is_refused);
    return h_end();
}
