/*
 * A handle whose cache file was deleted, or replaced by another cache at the same path,
 * while it was open: whatever the handle still does on its own (deleted) file, it never
 * touches what sits at the path now. The folder of value files beside the file
 * (`<cache>.values/`) is found by name too, so it is checked here like the file.
 */
#include "backlite.h"
#include "harness.h"
#include "value_folder.h"

#include <unistd.h>

#define THRESHOLD 4096
#define LARGE 10000

static backlite_storage *open_files(const char *path) {
    return OPEN_SET(path, .max_size = 1u << 30, .file_threshold = THRESHOLD);
}

static void set_large(backlite_storage *s, const char *key, char fill) {
    static uint8_t v[LARGE];
    memset(v, fill, sizeof v);
    CHECK_OK(backlite_storage_set(s, K(key), v, sizeof v, NEVER, &err));
}

static bool has_large(backlite_storage *s, const char *key, char fill) {
    backlite_buf b = {NULL, 0};
    backlite_error *e = NULL;
    backlite_result rc = backlite_storage_get(s, K(key), &b, NULL, &e);
    backlite_error_free(e);
    bool ok = rc == BACKLITE_RESULT_OK && b.len == LARGE && b.data[0] == (uint8_t)fill &&
              b.data[LARGE - 1] == (uint8_t)fill;
    if (rc == BACKLITE_RESULT_OK) backlite_buf_free(&b);
    return ok;
}

/* The old handle's check (with repair) and vacuum sweep for orphan value files with
   the new cache's folder under the old file's rows: every value file of the new cache
   looked like an orphan and was removed (the new cache's large values were lost). */
static void a_replaced_handle_never_sweeps_the_new_caches_value_files(void) {
    const char *path = tmp_path("swept.db");
    backlite_storage *old = open_files(path);
    REQUIRE(old != NULL);
    set_large(old, "old", 'o');
    CHECK(remove_cache_file(path)); /* the folder stays, as after rm cache.db* */
    backlite_storage *now = open_files(path);
    REQUIRE(now != NULL);
    set_large(now, "new", 'n');
    REQUIRE(has_large(now, "new", 'n'));

    backlite_check_report rep;
    backlite_error *e = NULL;
    backlite_result rc = backlite_storage_check(old, 1, &rep, &e);
    CHECK(rc == BACKLITE_RESULT_OK || rc == BACKLITE_RESULT_IO);
    backlite_error_free(e);
    CHECK(has_large(now, "new", 'n'));
    e = NULL;
    rc = backlite_storage_vacuum(old, &e);
    CHECK(rc == BACKLITE_RESULT_OK || rc == BACKLITE_RESULT_IO);
    backlite_error_free(e);
    CHECK(has_large(now, "new", 'n'));
    backlite_storage_free(old);
    CHECK(has_large(now, "new", 'n'));
    backlite_storage_free(now);
}

/* Deleted with its folder (rm -r) and not replaced: a large set of the old handle makes
   no new folder at the path. */
static void a_deleted_handle_makes_no_new_value_folder(void) {
    const char *path = tmp_path("gone.db");
    backlite_storage *old = open_files(path);
    REQUIRE(old != NULL);
    SET(old, "small", "1"); /* no folder yet */
    CHECK(remove_cache_file(path));
    REQUIRE(!h_exists(folder_of(path)));
    static uint8_t v[LARGE];
    backlite_error *e = NULL;
    CHECK_EQ(backlite_storage_set(old, K("large"), v, sizeof v, NEVER, &e), BACKLITE_RESULT_IO);
    CHECK(e != NULL && strstr(backlite_error_message(e), "deleted or replaced while open") != NULL);
    backlite_error_free(e);
    CHECK(!h_exists(folder_of(path)));
    CHECK(!h_exists(path));
    backlite_storage_free(old);
    CHECK(!h_exists(folder_of(path)));
}

int main(void) {
    h_begin();
    RUN(a_replaced_handle_never_sweeps_the_new_caches_value_files);
    RUN(a_deleted_handle_makes_no_new_value_folder);
    return h_end();
}
