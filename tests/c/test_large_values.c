/*
 * Values around BACKLITE_MAX_VALUE_SIZE, the longest value the database file holds (a
 * little under SQLite's 1,000,000,000-byte limit), with the default max_size of 1 GiB,
 * which is above it. With BACKLITE_FILE_THRESHOLD_NEVER, a longer value is TOO_LARGE
 * like one above max_size (never IO), and backlite_cached_call still returns it. A
 * value of exactly the limit is stored. With any other threshold, a longer value is
 * kept in a file of its own whatever the threshold: one of 1e9 + 1 bytes, and one of
 * 2 GiB stored from the caller's memory (never copied whole: the resident size grows
 * by far less than the value) and read back through get_chunks in bounded memory
 * (the growth is printed). Those need disk space: they are skipped, saying so, when
 * the temporary folder has less than 6 GiB free.
 *
 * The values are real: about 1 GB each, 3 GB at the peak. The buffers handed to set
 * come from calloc and are not written, so a refused value costs no memory unless the
 * library reads or copies it. Under valgrind (memcheck_test_large_values) every case
 * is skipped: shadowing gigabytes there takes minutes. The plain and asan_ runs cover
 * them.
 *
 * Keys have the same limit, BACKLITE_MAX_KEY_SIZE: a longer one is INVALID_ARGUMENT for
 * every call, refused from its length alone; one of exactly the limit is stored.
 */
#include "backlite.h"
#include "harness.h"
#include "proc_self.h"
#include "value_folder.h"

#include <sys/mman.h>
#include <sys/statvfs.h>

#define OVER ((size_t)1000000001) /* the value: one byte over SQLite's limit */

#define SKIP_UNDER_VALGRIND()                                                         \
    do {                                                                              \
        if (h_under_valgrind()) SKIP("gigabyte values under valgrind");               \
    } while (0)

#define GIB ((size_t)1 << 30)
/* Free space the values in files need: the 2 GiB value, its temporary file while it is
 * written, and room to spare for the rest of the machine. */
#define DISK_NEEDED (6 * GIB)

#define SKIP_WITHOUT_DISK_SPACE()                                                     \
    do {                                                                              \
        struct statvfs fs_;                                                           \
        REQUIRE(statvfs(h_tmp_root(), &fs_) == 0);                                    \
        if ((double)fs_.f_bavail * (double)fs_.f_frsize < (double)DISK_NEEDED)        \
            SKIP("less than 6 GiB free in the temporary folder: values above "       \
                 "SQLite's limit kept in files are not tested");                      \
    } while (0)

/* Options: max_size 8 GiB and the file threshold `threshold`. */
static backlite_storage *open_with_threshold(const char *path, int64_t threshold) {
    return OPEN_SET(path, .max_size = 8 * GIB, .file_threshold = threshold);
}

/* The byte at `at` of the test's pattern. */
static uint8_t pattern_at(size_t at) { return (uint8_t)(at * 131u + (at >> 20)); }

typedef struct {
    size_t seen;
    size_t wrong;
} verified;

static int32_t verify(void *user, const uint8_t *chunk, size_t len) {
    verified *v = user;
    for (size_t i = 0; i < len; i++) v->wrong += chunk[i] != pattern_at(v->seen + i);
    v->seen += len;
    return 0;
}

static void the_limit_is_under_sqlites_and_under_the_default_max_size(void) {
    CHECK(BACKLITE_MAX_VALUE_SIZE < 1000000000);
    CHECK(BACKLITE_MAX_VALUE_SIZE > 1000000000 - 4096);
    CHECK(BACKLITE_MAX_VALUE_SIZE < (1ull << 30)); /* the default max_size */
}

static void a_value_over_the_limit_is_too_large_and_removes_the_old_one(void) {
    SKIP_UNDER_VALGRIND();
    backlite_storage *s = open_with_threshold(tmp_path("over.db"), BACKLITE_FILE_THRESHOLD_NEVER);
    REQUIRE(s != NULL);
    SET(s, "k", "old");
    SET(s, "other", "stays");
    uint8_t *big = calloc(OVER, 1);
    REQUIRE(big != NULL);
    backlite_error *err = NULL;
    CHECK_EQ(backlite_storage_set(s, K("k"), big, OVER, NEVER, &err), BACKLITE_RESULT_TOO_LARGE);
    REQUIRE(err != NULL);
    CHECK_EQ(backlite_error_result(err), BACKLITE_RESULT_TOO_LARGE);
    CHECK(strstr(backlite_error_message(err), "999999000") != NULL);
    backlite_error_free(err);
    GET_MISSING(s, "k");
    GET_EQ(s, "other", "stays");
    /* one byte over the limit too, not just over SQLite's */
    CHECK_RC(backlite_storage_set(s, K("k"), big, BACKLITE_MAX_VALUE_SIZE + 1, NEVER, &err),
             BACKLITE_RESULT_TOO_LARGE);
    /* already expired: nothing to store, so nothing is too large */
    CHECK_OK(backlite_storage_set(s, K("k"), big, OVER, 0, &err));
    backlite_entry e[2] = {
        {(const uint8_t *)"a", 1, (const uint8_t *)"1", 1, NEVER},
        {(const uint8_t *)"b", 1, big, OVER, NEVER},
    };
    CHECK_RC(backlite_storage_set_many(s, e, 2, &err), BACKLITE_RESULT_TOO_LARGE);
    GET_MISSING(s, "a");
    backlite_stats st = STATS(s);
    CHECK_EQ(st.count, 1);
    CHECK_EQ(st.total_size, 5);
    free(big);
    backlite_storage_free(s);
}

/* writes OVER bytes, a pattern of their offsets, a megabyte at a time */
static int32_t compute_over(void *user_data, backlite_sink *sink) {
    (void)user_data;
    static uint8_t chunk[1 << 20];
    for (size_t i = 0; i < sizeof chunk; i++) chunk[i] = (uint8_t)(i * 7);
    for (size_t done = 0; done < OVER;) {
        size_t n = OVER - done < sizeof chunk ? OVER - done : sizeof chunk;
        if (backlite_sink_write(sink, chunk, n) != BACKLITE_RESULT_OK) return 1;
        done += n;
    }
    return 0;
}

static void cached_call_returns_a_value_over_the_limit(void) {
    SKIP_UNDER_VALGRIND();
    backlite_storage *s = open_with_threshold(tmp_path("call.db"), BACKLITE_FILE_THRESHOLD_NEVER);
    REQUIRE(s != NULL);
    backlite_buf b = {NULL, 0};
    CHECK_OK(backlite_cached_call(s, K("k"), compute_over, NULL, NULL, NEVER, &b, &err));
    CHECK_EQ(b.len, OVER);
    if (b.len == OVER) {
        size_t at[] = {0, 1, (1 << 20) + 3, OVER / 2, OVER - 1};
        for (size_t i = 0; i < sizeof at / sizeof at[0]; i++)
            CHECK_EQ(b.data[at[i]], (uint8_t)((at[i] % (1 << 20)) * 7));
    }
    backlite_buf_free(&b);
    CHECK_RC(backlite_storage_contains(s, K("k"), &err), BACKLITE_RESULT_NOT_FOUND);
    CHECK_EQ(STATS(s).count, 0);
    backlite_storage_free(s);
}

static void a_value_of_exactly_the_limit_is_stored(void) {
    SKIP_UNDER_VALGRIND();
    /* in memory: the point is SQLite's limit, not the disk's speed */
    backlite_storage *s = OPEN(":memory:", NULL);
    REQUIRE(s != NULL);
    size_t n = BACKLITE_MAX_VALUE_SIZE;
    uint8_t *v = calloc(n, 1);
    REQUIRE(v != NULL);
    v[0] = 1;
    v[n / 2] = 2;
    v[n - 1] = 3;
    CHECK_OK(backlite_storage_set(s, K("k"), v, n, NEVER, &err));
    free(v);
    backlite_buf b = {NULL, 0};
    CHECK_OK(backlite_storage_get(s, K("k"), &b, NULL, &err));
    CHECK_EQ(b.len, n);
    if (b.len == n) {
        CHECK_EQ(b.data[0], 1);
        CHECK_EQ(b.data[1], 0);
        CHECK_EQ(b.data[n / 2], 2);
        CHECK_EQ(b.data[n - 1], 3);
    }
    backlite_buf_free(&b);
    backlite_stats st = STATS(s);
    CHECK_EQ(st.count, 1);
    CHECK_EQ(st.total_size, n);
    CHECK_OK(backlite_storage_delete(s, K("k"), &err));
    backlite_storage_free(s);
}

static int32_t compute_never(void *user_data, backlite_sink *sink) {
    (void)sink;
    (*(int *)user_data)++;
    return 0;
}

/* A key one byte over BACKLITE_MAX_KEY_SIZE can never be stored: every call that takes
 * a key refuses it as INVALID_ARGUMENT, naming the limit, and writes nothing (it was
 * IO, "string or blob too big", from a key over SQLite's own limit, and a key just
 * under that limit was stored). The key's pages cannot be read (PROT_NONE): it must be
 * refused from its length alone, so the test costs no memory. */
static void a_key_over_the_limit_is_refused_by_every_call_unread(void) {
    size_t n = BACKLITE_MAX_KEY_SIZE + 1;
    uint8_t *k = mmap(NULL, n, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    REQUIRE(k != MAP_FAILED);
    backlite_storage *s = OPEN(tmp_path("key.db"), NULL);
    REQUIRE(s != NULL);
    SET(s, "other", "stays");
    backlite_error *e = NULL;
    CHECK_EQ(backlite_storage_set(s, k, n, K("v"), NEVER, &e), BACKLITE_RESULT_INVALID_ARGUMENT);
    REQUIRE(e != NULL);
    CHECK(strstr(backlite_error_message(e), "999999000") != NULL);
    backlite_error_free(e);
    CHECK_RC(backlite_storage_set(s, k, n, K("v"), 0, &err), BACKLITE_RESULT_INVALID_ARGUMENT);
    backlite_entry batch[2] = {
        {(const uint8_t *)"a", 1, (const uint8_t *)"1", 1, NEVER},
        {k, n, (const uint8_t *)"2", 1, NEVER},
    };
    CHECK_RC(backlite_storage_set_many(s, batch, 2, &err), BACKLITE_RESULT_INVALID_ARGUMENT);
    backlite_buf b = {NULL, 0};
    CHECK_RC(backlite_storage_get(s, k, n, &b, NULL, &err), BACKLITE_RESULT_INVALID_ARGUMENT);
    CHECK(b.data == NULL);
    CHECK_RC(backlite_storage_get_chunks(s, k, n, verify, &(verified){0, 0}, NULL, &err),
             BACKLITE_RESULT_INVALID_ARGUMENT);
    CHECK_RC(backlite_storage_contains(s, k, n, &err), BACKLITE_RESULT_INVALID_ARGUMENT);
    CHECK_RC(backlite_storage_delete(s, k, n, &err), BACKLITE_RESULT_INVALID_ARGUMENT);
    int computes = 0;
    CHECK_RC(backlite_cached_call(s, k, n, compute_never, &computes, NULL, NEVER, &b, &err),
             BACKLITE_RESULT_INVALID_ARGUMENT);
    CHECK_RC(backlite_cached_call_exclusive(s, k, n, compute_never, &computes, NEVER, 0, &b, &err),
             BACKLITE_RESULT_INVALID_ARGUMENT);
    CHECK_EQ(computes, 0);
    backlite_lease *l = NULL;
    CHECK_RC(backlite_lease_try_acquire(s, k, n, 1000, &b, &l, &err), BACKLITE_RESULT_INVALID_ARGUMENT);
    CHECK_RC(backlite_lease_step(s, k, n, 0, &b, &l, &err), BACKLITE_RESULT_INVALID_ARGUMENT);
    CHECK(l == NULL);
    GET_MISSING(s, "a");
    GET_EQ(s, "other", "stays");
    backlite_stats st = STATS(s);
    CHECK_EQ(st.count, 1);
    CHECK_EQ(st.total_size, 5);
    backlite_storage_free(s);
    munmap(k, n);
}

static void a_key_of_exactly_the_limit_is_stored(void) {
    SKIP_UNDER_VALGRIND();
    /* in memory: the point is SQLite's limit, not the disk's speed */
    backlite_storage *s = OPEN(":memory:", NULL);
    REQUIRE(s != NULL);
    size_t n = BACKLITE_MAX_KEY_SIZE;
    uint8_t *k = calloc(n, 1);
    REQUIRE(k != NULL);
    k[n - 1] = 1;
    CHECK_OK(backlite_storage_set(s, k, n, K("at the limit"), NEVER, &err));
    backlite_buf b = {NULL, 0};
    CHECK_OK(backlite_storage_get(s, k, n, &b, NULL, &err));
    CHECK_BUF_STR(b, "at the limit");
    backlite_buf_free(&b);
    CHECK_OK(backlite_storage_delete(s, k, n, &err));
    CHECK_EQ(STATS(s).count, 0);
    free(k);
    backlite_storage_free(s);
}

static void a_value_over_the_limit_goes_to_a_file_whatever_the_threshold(void) {
    SKIP_UNDER_VALGRIND();
    SKIP_WITHOUT_DISK_SPACE();
    const char *path = tmp_path("file.db");
    /* A threshold above the value: only SQLite's limit sends it to a file. */
    backlite_storage *s = open_with_threshold(path, (int64_t)4 * GIB);
    REQUIRE(s != NULL);
    uint8_t *big = calloc(OVER, 1);
    REQUIRE(big != NULL);
    big[0] = 1;
    big[OVER - 1] = 2;
    CHECK_OK(backlite_storage_set(s, K("k"), big, OVER, NEVER, &err));
    CHECK_EQ(value_files(path), 1);
    SET(s, "small", "in the database");
    CHECK_EQ(value_files(path), 1);
    backlite_buf b = {NULL, 0};
    CHECK_OK(backlite_storage_get(s, K("k"), &b, NULL, &err));
    CHECK(b.len == OVER && memcmp(b.data, big, OVER) == 0);
    backlite_buf_free(&b);
    free(big);
    CHECK_EQ(STATS(s).total_size, OVER + strlen("in the database"));
    CHECK_OK(backlite_storage_delete(s, K("k"), &err));
    CHECK_EQ(value_files(path), 0);
    backlite_storage_free(s);
}

static void a_2_gib_value_is_stored_without_a_copy_and_streamed_in_bounded_memory(void) {
    SKIP_UNDER_VALGRIND();
    SKIP_WITHOUT_DISK_SPACE();
    const char *path = tmp_path("two.db");
    backlite_storage *s = open_with_threshold(path, 64 * 1024);
    REQUIRE(s != NULL);
    size_t n = 2 * GIB;
    uint8_t *v = malloc(n);
    REQUIRE(v != NULL);
    for (size_t i = 0; i < n; i++) v[i] = pattern_at(i);
    bool peaks = reset_peak_rss();
    long before = proc_status_kib("VmRSS");
    CHECK_OK(backlite_storage_set(s, K("two"), v, n, NEVER, &err));
    double set_growth = (double)(proc_status_kib("VmHWM") - before) / 1024.0;
    free(v);
    CHECK_EQ(value_files(path), 1);
    CHECK_EQ(STATS(s).total_size, n);

    verified got = {0, 0};
    peaks = peaks && reset_peak_rss();
    before = proc_status_kib("VmRSS");
    CHECK_OK(backlite_storage_get_chunks(s, K("two"), verify, &got, NULL, &err));
    double read_growth = (double)(proc_status_kib("VmHWM") - before) / 1024.0;
    CHECK_EQ(got.seen, n);
    CHECK_EQ(got.wrong, 0);
    if (peaks) {
        printf("# 2 GiB value: resident size grew by %.1f MiB during the set, %.1f MiB "
               "during the streaming read\n", set_growth, read_growth);
        CHECK(set_growth < 256); /* a copy of the value would be 2048 */
        CHECK(read_growth <= 16);
    } else {
        printf("# 2 GiB value: the peak resident size cannot be reset here: not measured\n");
    }
    CHECK_OK(backlite_storage_delete(s, K("two"), &err));
    CHECK_EQ(value_files(path), 0);
    backlite_storage_free(s);
}

int main(void) {
    h_begin();
    RUN(the_limit_is_under_sqlites_and_under_the_default_max_size);
    RUN(a_value_over_the_limit_is_too_large_and_removes_the_old_one);
    RUN(cached_call_returns_a_value_over_the_limit);
    RUN(a_value_of_exactly_the_limit_is_stored);
    RUN(a_key_over_the_limit_is_refused_by_every_call_unread);
    RUN(a_key_of_exactly_the_limit_is_stored);
    RUN(a_value_over_the_limit_goes_to_a_file_whatever_the_threshold);
    RUN(a_2_gib_value_is_stored_without_a_copy_and_streamed_in_bounded_memory);
    return h_end();
}
