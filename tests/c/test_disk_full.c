/*
 * Disk full: a cache on a small tmpfs (4 MiB) mounted by the test in a private mount
 * namespace (so it vanishes with the child process, whatever happens). A filler file
 * takes the rest of the space; then every kind of write fails with IO and a message
 * that says the disk is full, nothing half-written appears, what was stored before
 * stays readable, and once the filler is deleted writes work again and the file checks
 * healthy.
 *
 * A large value kept in a file of its own (file threshold) that does not fit fails the
 * same way, leaves no partial file in `<cache>.values/`, and the cache goes on working
 * with its older entries intact.
 *
 * Mounting needs root (CAP_SYS_ADMIN); elsewhere the case is skipped with a message.
 * (The C API has no max_page_count option to stand in for a full disk.)
 */
#include <dirent.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/wait.h>

#include "backlite.h"
#include "harness.h"
#include "small_disk.h"

static void fill_bytes(uint8_t *v, size_t n, uint64_t seed) {
    for (size_t i = 0; i < n; i++) v[i] = (uint8_t)h_rand(&seed);
}

static size_t value_of(int i, uint8_t *v) {
    size_t len = (size_t)(i % 3 == 0 ? 5000 : 100 + i);
    fill_bytes(v, len, (uint64_t)i);
    return len;
}

static void expect_stored_(const char *file, int line, backlite_storage *s, const char *prefix, int i) {
    char k[32];
    uint8_t v[5000];
    snprintf(k, sizeof k, "%s%d", prefix, i);
    size_t len = value_of(i, v);
    h_get_eq_(file, line, s, k, v, len);
}
#define EXPECT_STORED(s, prefix, i) expect_stored_(__FILE__, __LINE__, (s), (prefix), (i))

/* an IO failure whose message says the disk is full */
static void expect_full_(const char *file, int line, const char *what, backlite_result rc, backlite_error *err) {
    h_check_rc_(file, line, what, rc, BACKLITE_RESULT_IO, err);
    const char *msg = err ? backlite_error_message(err) : "";
    if (rc == BACKLITE_RESULT_IO && strstr(msg, "full") == NULL)
        h_fail_(file, line, "%s: the message does not say the disk is full: \"%s\"", what, msg);
}
#define EXPECT_FULL(call)                                                          \
    do {                                                                           \
        backlite_error *err = NULL;                                                \
        backlite_result rc_ = (call);                                              \
        expect_full_(__FILE__, __LINE__, #call, rc_, err);                         \
        backlite_error_free(err);                                                  \
    } while (0)

static int32_t compute(void *ud, backlite_sink *sink) {
    (*(int *)ud)++;
    static uint8_t v[4000];
    return backlite_sink_write(sink, v, sizeof v) == BACKLITE_RESULT_OK ? 0 : 1;
}

static void on_a_small_file_system(const char *dir) {
    char path[PATH_MAX + 16], filler[PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/cache.db", dir);
    snprintf(filler, sizeof filler, "%s/filler", dir);
    backlite_storage *s = OPEN(path, NULL); /* 1 GiB max_size: nothing is evicted */
    if (s == NULL) return;
    uint8_t v[5000];
    for (int i = 0; i < 30; i++) {
        char k[32];
        snprintf(k, sizeof k, "before%d", i);
        size_t len = value_of(i, v);
        CHECK_OK(backlite_storage_set(s, K(k), v, len, NEVER, &err));
    }
    size_t filled = fill_up(filler, 0);
    CHECK(filled > 0);

    /* writes go on while the log has room, then fail: within 4 MiB of values */
    int stored = 0;
    backlite_result rc = BACKLITE_RESULT_OK;
    backlite_error *err = NULL;
    for (int i = 0; i < 800 && rc == BACKLITE_RESULT_OK; i++) {
        char k[32];
        snprintf(k, sizeof k, "during%d", i);
        size_t len = value_of(i, v);
        backlite_error_free(err);
        err = NULL;
        rc = backlite_storage_set(s, K(k), v, len, NEVER, &err);
        if (rc == BACKLITE_RESULT_OK) stored++;
    }
    expect_full_(__FILE__, __LINE__, "set on a full disk", rc, err);
    printf("# filler %zu bytes; %d more sets fitted; then: %s: %s\n", filled, stored, h_rc_name(rc),
           err ? backlite_error_message(err) : "");
    backlite_error_free(err);
    char failed_key[32];
    snprintf(failed_key, sizeof failed_key, "during%d", stored);

    /* every other write fails the same way, and leaves nothing half-done */
    static const uint8_t z[3000]; /* zeros */
    EXPECT_FULL(backlite_storage_set(s, K("one-more"), z, 3000, NEVER, &err));
    backlite_entry batch[3] = {{(const uint8_t *)"b1", 2, z, 3000, NEVER},
                               {(const uint8_t *)"b2", 2, z, 3000, NEVER},
                               {(const uint8_t *)"b3", 2, z, 10, NEVER}};
    EXPECT_FULL(backlite_storage_set_many(s, batch, 3, &err));
    int computed = 0;
    backlite_buf b = {NULL, 0};
    EXPECT_FULL(backlite_cached_call(s, K("memo"), compute, &computed, NULL, NEVER, &b, &err));
    CHECK_EQ(computed, 1);
    CHECK(b.data == NULL);
    GET_MISSING(s, failed_key);
    GET_MISSING(s, "one-more");
    GET_MISSING(s, "b1");
    GET_MISSING(s, "b2");
    GET_MISSING(s, "b3");
    GET_MISSING(s, "memo");

    /* what was stored stays readable */
    for (int i = 0; i < 30; i++) EXPECT_STORED(s, "before", i);
    for (int i = 0; i < stored; i++) EXPECT_STORED(s, "during", i);
    backlite_storage *reader = OPEN(path, NULL); /* a second handle reads it too */
    if (reader != NULL) {
        EXPECT_STORED(reader, "before", 7);
        backlite_storage_free(reader);
    }

    /* space back: writes work again, and the file is sound */
    REQUIRE(unlink(filler) == 0);
    CHECK_OK(backlite_storage_set(s, K("one-more"), z, 3000, NEVER, &err));
    CHECK_OK(backlite_storage_set_many(s, batch, 3, &err));
    computed = 0;
    CHECK_OK(backlite_cached_call(s, K("memo"), compute, &computed, NULL, NEVER, &b, &err));
    CHECK_EQ(computed, 1);
    backlite_buf_free(&b);
    CHECK_OK(backlite_storage_delete(s, K("before0"), &err));
    backlite_check_report r;
    memset(&r, 0, sizeof r);
    CHECK_OK(backlite_storage_check(s, 0, &r, &err));
    CHECK_EQ(r.healthy, 1);
    CHECK_EQ(r.actual_count, (uint64_t)(30 - 1 + stored + 1 + 3 + 1));
    backlite_stats st = STATS(s);
    CHECK_EQ(st.count, r.actual_count);
    CHECK_EQ(st.total_size, r.actual_total_size);
    backlite_storage_free(s);

    s = OPEN(path, NULL); /* and after a reopen */
    if (s == NULL) return;
    for (int i = 1; i < 30; i++) EXPECT_STORED(s, "before", i);
    h_get_eq_(__FILE__, __LINE__, s, "b3", z, 10);
    CHECK_OK(backlite_storage_check(s, 0, &r, &err));
    CHECK_EQ(r.healthy, 1);
    backlite_storage_free(s);
    umount(dir);
}

/* The names in `dir` other than "." and "..". */
static int names_in(const char *dir) {
    DIR *d = opendir(dir);
    if (d == NULL) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return n;
}

static void large_values_on_a_small_file_system(const char *dir) {
    char path[PATH_MAX + 16], folder[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/cache.db", dir);
    snprintf(folder, sizeof folder, "%s.values", path);
    backlite_options *o = OPTIONS(1u << 30, BACKLITE_EVICTION_POLICY_LEAST_RECENTLY_USED);
    if (o == NULL) return;
    CHECK_OK(backlite_options_set_file_threshold(o, 4096));
    backlite_storage *s = OPEN(path, o);
    backlite_options_free(o);
    if (s == NULL) return;
    size_t big = 1u << 20;
    uint8_t *v = malloc((16u << 20) + 2); /* read from v, v + 1 and v + 2 */
    REQUIRE(v != NULL);
    fill_bytes(v, (16u << 20) + 2, 7);
    CHECK_OK(backlite_storage_set(s, K("small"), v, 100, NEVER, &err));
    CHECK_OK(backlite_storage_set(s, K("large"), v, big, NEVER, &err));
    int in_folder = names_in(folder); /* the marker and one value file */
    CHECK_EQ(in_folder, 2);

    /* 16 MiB on an 8 MiB file system: the value file cannot be written */
    EXPECT_FULL(backlite_storage_set(s, K("huge"), v, 16u << 20, NEVER, &err));
    CHECK_EQ(names_in(folder), in_folder); /* no partial file left */
    GET_MISSING(s, "huge");
    /* over an older value: the set fails as a whole, and the older value stays */
    CHECK_OK(backlite_storage_set(s, K("replaced"), v, big, NEVER, &err));
    EXPECT_FULL(backlite_storage_set(s, K("replaced"), v + 1, 16u << 20, NEVER, &err));
    CHECK_EQ(names_in(folder), in_folder + 1);
    h_get_eq_(__FILE__, __LINE__, s, "replaced", v, big);

    /* the older entries are intact, and the cache goes on working */
    h_get_eq_(__FILE__, __LINE__, s, "small", v, 100);
    h_get_eq_(__FILE__, __LINE__, s, "large", v, big);
    CHECK_OK(backlite_storage_set(s, K("after"), v + 2, big, NEVER, &err));
    h_get_eq_(__FILE__, __LINE__, s, "after", v + 2, big);
    backlite_check_report r;
    memset(&r, 0, sizeof r);
    CHECK_OK(backlite_storage_check(s, 0, &r, &err));
    CHECK_EQ(r.healthy, 1);
    CHECK_EQ(r.damaged, 0);
    backlite_storage_free(s);
    free(v);
    umount(dir);
}

static void writes_on_a_full_disk_fail_with_io_and_work_again_after(void) {
    on_a_tmpfs("small-fs", "4m", on_a_small_file_system);
}

static void a_large_value_on_a_full_disk_fails_with_io_and_leaves_no_file(void) {
    on_a_tmpfs("large-fs", "8m", large_values_on_a_small_file_system);
}

int main(void) {
    h_begin();
    RUN(writes_on_a_full_disk_fail_with_io_and_work_again_after);
    RUN(a_large_value_on_a_full_disk_fails_with_io_and_leaves_no_file);
    return h_end();
}
