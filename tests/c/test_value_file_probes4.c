/*
 * Values kept in files (issue 16), fourth round of probes, each case from what a probe
 * found broken: a new version tag, which drops every entry on open, left their value
 * files behind (for the sweep, an hour later, or a check).
 */
#include "backlite.h"
#include "harness.h"
#include "proc_self.h"
#include "value_folder.h"

/* A new version tag drops every entry on open: their value files go too (the sweep
 * would leave them an hour, and only a check would find them). A reader opened before
 * still reads its value whole. */
static void a_new_version_tag_removes_the_files_of_the_entries_it_drops(void) {
    const char *path = tmp_path("tagged.db");
    size_t n = 100000;
    uint8_t *v = h_pattern(n, 71);
    backlite_storage *s = OPEN_SET(path, .version_tag = "one");
    REQUIRE(s != NULL);
    SET_BYTES(s, "a", v, n, NEVER);
    SET_BYTES(s, "b", v, n, NEVER);
    SET(s, "small", "x");
    backlite_value_reader *r = NULL;
    REQUIRE_OK(backlite_storage_open_reader(s, K("a"), &r, NULL, NULL, &err));
    backlite_storage_free(s);
    CHECK_EQ(value_files(path), 2);

    s = OPEN_SET(path, .version_tag = "two");
    REQUIRE(s != NULL);
    CHECK_EQ(STATS(s).count, 0);
    CHECK_EQ(STATS(s).total_size, 0);
    GET_MISSING(s, "a");
    CHECK_EQ(value_files(path), 0);
    uint8_t *got = malloc(n);
    REQUIRE(got != NULL);
    size_t at = 0, len = 0;
    while (at < n && backlite_value_reader_read(r, got + at, n - at, &len, NULL) == BACKLITE_RESULT_OK && len > 0)
        at += len;
    CHECK(at == n && memcmp(got, v, n) == 0);
    free(got);
    backlite_value_reader_free(r);

    /* The new tag's own large values are kept as ever. */
    SET_BYTES(s, "c", v, n, NEVER);
    CHECK_EQ(value_files(path), 1);
    backlite_check_report rep;
    CHECK_OK(backlite_storage_check(s, 0, &rep, &err));
    CHECK_EQ(rep.healthy, 1);
    backlite_storage_free(s);
    s = OPEN_SET(path, .version_tag = "two");
    REQUIRE(s != NULL);
    GET_BYTES_EQ(s, "c", v, n);
    CHECK_EQ(value_files(path), 1);
    backlite_storage_free(s);
    free(v);
}

/* An in-memory cache's value is copied out of the cache before a reader or a get hands
 * it over (a visitor or the caller may use the storage meanwhile): once, not twice. A
 * reader of a 64 MiB value grew the peak resident size by 128 MiB. */
static void a_reader_of_an_in_memory_value_copies_it_once(void) {
    if (h_under_valgrind() || UNDER_ASAN) SKIP("resident memory is the checker's under valgrind and ASan");
    size_t n = (size_t)64 << 20;
    backlite_storage *s = OPEN(":memory:", NULL);
    REQUIRE(s != NULL);
    uint8_t *v = h_pattern(n, 73);
    SET_BYTES(s, "big", v, n, NEVER);
    if (!reset_peak_rss()) {
        free(v);
        backlite_storage_free(s);
        SKIP("the kernel does not reset the peak RSS (/proc/self/clear_refs)");
    }
    long before = proc_status_kib("VmRSS");
    backlite_value_reader *r = NULL;
    uint64_t size = 0;
    CHECK_OK(backlite_storage_open_reader(s, K("big"), &r, &size, NULL, &err));
    CHECK_EQ(size, n);
    uint8_t buf[65536];
    size_t at = 0, got = 0;
    bool same = true;
    while (backlite_value_reader_read(r, buf, sizeof buf, &got, NULL) == BACKLITE_RESULT_OK && got > 0) {
        same = same && at + got <= n && memcmp(buf, v + at, got) == 0;
        at += got;
    }
    long grown_mib = (proc_status_kib("VmHWM") - before) / 1024;
    backlite_value_reader_free(r);
    CHECK(at == n && same);
    printf("# a reader of 64 MiB in memory grew the peak RSS by %ld MiB\n", grown_mib);
    CHECK(grown_mib <= 64 + 16);
    free(v);
    backlite_storage_free(s);
}

int main(void) {
    h_begin();
    RUN(a_new_version_tag_removes_the_files_of_the_entries_it_drops);
    RUN(a_reader_of_an_in_memory_value_copies_it_once);
    return h_end();
}
