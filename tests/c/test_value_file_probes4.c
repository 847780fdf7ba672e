/*
 * Values kept in files (issue 16), fourth round of probes, each case from what a probe
 * found broken: a new version tag, which drops every entry on open, left their value
 * files behind (for the sweep, an hour later, or a check).
 */
#include "backlite.h"
#include "harness.h"
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

int main(void) {
    h_begin();
    RUN(a_new_version_tag_removes_the_files_of_the_entries_it_drops);
    return h_end();
}
