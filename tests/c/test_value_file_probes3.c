/*
 * Large values kept in files (issue 16), probed a third time through the C ABI: what a
 * value that cannot be written to its file leaves behind in the calls that store it
 * inside a write transaction (a lease's fulfil, an exclusive cached call), and a
 * cache moved with its folder while a handle is open.
 */
#include "backlite.h"
#include "harness.h"
#include "value_folder.h"

#define THRESHOLD 4096
#define LARGE 50000

static int32_t compute_large(void *user_data, backlite_sink *sink) {
    const uint8_t *v = user_data;
    return backlite_sink_write(sink, v, LARGE) == BACKLITE_RESULT_OK ? 0 : 1;
}

/* Whether the key's lease is free: taken (then abandoned) by a try that never waits. */
static bool lease_free(backlite_storage *s, const char *key) {
    backlite_buf out = {0};
    backlite_lease *lease = NULL;
    backlite_error *e = NULL;
    backlite_result rc = backlite_lease_try_acquire(s, K(key), 60000, &out, &lease, &e);
    backlite_buf_free(&out);
    backlite_error_free(e);
    backlite_lease_abandon(lease);
    return rc == BACKLITE_RESULT_NOT_FOUND && lease != NULL;
}

/* A fulfil whose value cannot be written (a file of the user's where the folder of
 * values would go) fails with IO, and the header's promise holds: the lease is
 * released whatever the result, so the next caller computes at once instead of
 * waiting for the lease to run out. The same for an exclusive cached call, whose
 * waiters would otherwise wait its whole lease. */
static void a_lease_whose_value_cannot_be_written_frees_its_key(void) {
    const char *path = tmp_path("lease.db");
    REQUIRE(h_write_file(folder_of(path), "mine", 4));
    backlite_storage *s = OPEN_SET(path, .file_threshold = THRESHOLD);
    REQUIRE(s != NULL);
    uint8_t *v = h_pattern(LARGE, 1);

    backlite_buf out = {0};
    backlite_lease *lease = NULL;
    CHECK_RC(backlite_lease_try_acquire(s, K("k"), 60000, &out, &lease, &err), BACKLITE_RESULT_NOT_FOUND);
    REQUIRE(lease != NULL);
    CHECK_RC(backlite_lease_fulfill(lease, v, LARGE, NEVER, &err), BACKLITE_RESULT_IO);
    CHECK(lease_free(s, "k"));
    GET_MISSING(s, "k");

    CHECK_RC(backlite_cached_call_exclusive(s, K("c"), compute_large, v, NEVER, 0, &out, &err),
             BACKLITE_RESULT_IO);
    CHECK(out.data == NULL);
    CHECK(lease_free(s, "c"));
    GET_MISSING(s, "c");

    /* Small values still go to the database, and the user's file is as it was. */
    SET(s, "small", "fine");
    GET_EQ(s, "small", "fine");
    size_t len = 0;
    uint8_t *mine = h_read_file(folder_of(path), &len);
    CHECK(mine != NULL && len == 4 && memcmp(mine, "mine", 4) == 0);
    free(mine);
    backlite_storage_free(s);
    free(v);
}

/* The folder a cache is in, moved while a handle is open: the cache and its folder of
 * values moved together, and every value file is whole beside it, only not where the
 * handle's path says. A value file missing at that path is no damage then: no call
 * of the old handle may remove the entry (its next opener, at the new path, reads
 * it), each fails with IO as any call that needs a new connection does ("open it
 * again"). Before, a get (through a connection opened before the move) and a check
 * with repair removed it, and a look-up for a lease too. */
static void a_cache_moved_while_open_keeps_its_large_entries(void) {
    char from[PATH_MAX], to[PATH_MAX], path[PATH_MAX + 16], moved[PATH_MAX + 16];
    snprintf(from, sizeof from, "%s", tmp_path("from"));
    snprintf(to, sizeof to, "%s", tmp_path("to"));
    REQUIRE(mkdir(from, 0700) == 0);
    snprintf(path, sizeof path, "%s/c.db", from);
    snprintf(moved, sizeof moved, "%s/c.db", to);
    backlite_storage *s = OPEN_SET(path, .file_threshold = THRESHOLD);
    REQUIRE(s != NULL);
    uint8_t *v = h_pattern(LARGE, 2);
    SET_BYTES(s, "k", v, LARGE, NEVER);
    SET(s, "small", "kept");
    /* Connections for reads are open before the move, as in any handle in use. */
    GET_BYTES_EQ(s, "k", v, LARGE);
    GET_EQ(s, "small", "kept");
    REQUIRE(rename(from, to) == 0);

    backlite_buf out = {0};
    CHECK_RC(backlite_storage_get(s, K("k"), &out, NULL, &err), BACKLITE_RESULT_IO);
    CHECK_RC(backlite_storage_contains(s, K("k"), &err), BACKLITE_RESULT_IO);
    backlite_value_reader *r = NULL;
    CHECK_RC(backlite_storage_open_reader(s, K("k"), &r, NULL, NULL, &err), BACKLITE_RESULT_IO);
    CHECK(r == NULL);
    backlite_lease *lease = NULL;
    CHECK_RC(backlite_lease_try_acquire(s, K("k"), 60000, &out, &lease, &err), BACKLITE_RESULT_IO);
    CHECK(lease == NULL);
    backlite_lease_abandon(lease);
    backlite_buf_free(&out);
    backlite_check_report rep;
    CHECK_RC(backlite_storage_check(s, 0, &rep, &err), BACKLITE_RESULT_IO);
    CHECK_RC(backlite_storage_check(s, 1, &rep, &err), BACKLITE_RESULT_IO);
    backlite_storage_free(s);

    s = OPEN_SET(moved, .file_threshold = THRESHOLD);
    REQUIRE(s != NULL);
    GET_BYTES_EQ(s, "k", v, LARGE);
    GET_EQ(s, "small", "kept");
    memset(&rep, 0, sizeof rep);
    CHECK_OK(backlite_storage_check(s, 0, &rep, &err));
    CHECK(rep.healthy && rep.damaged == 0 && rep.actual_count == 2);
    CHECK_EQ(value_files(moved), 1);
    backlite_storage_free(s);
    free(v);
}

/* How many value files the folder `dir` holds. */
static int value_files_in(const char *dir) {
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; d != NULL && (e = readdir(d)) != NULL;) n += is_value_file_name(e->d_name);
    if (d != NULL) closedir(d);
    return n;
}

/* The folder of values moved elsewhere by its user, a link to it left in its place,
 * while a handle is open: a delete, an overwrite, an eviction and a clear remove the
 * entries, and nothing at the link's end (the handle removed its files there before;
 * a handle opened since refuses the link for every file operation). */
static void a_link_left_for_a_moved_folder_is_never_removed_through(void) {
    char path[PATH_MAX], other[PATH_MAX];
    snprintf(path, sizeof path, "%s", tmp_path("c.db"));
    snprintf(other, sizeof other, "%s", tmp_path("elsewhere"));
    backlite_storage *s = OPEN_SET(path, .max_size = 4 * LARGE, .file_threshold = THRESHOLD);
    REQUIRE(s != NULL);
    uint8_t *v = h_pattern(LARGE, 3);
    const char *keys[] = {"evicted", "deleted", "replaced", "cleared"};
    for (int i = 0; i < 4; i++) SET_BYTES(s, keys[i], v, LARGE, NEVER);
    GET_BYTES_EQ(s, "cleared", v, LARGE);
    REQUIRE(rename(folder_of(path), other) == 0);
    REQUIRE(symlink(other, folder_of(path)) == 0);
    CHECK_EQ(value_files_in(other), 4);

    SET(s, "small", "evicts the oldest");
    GET_MISSING(s, "evicted");
    CHECK_OK(backlite_storage_delete(s, K("deleted"), &err));
    SET(s, "replaced", "by a small value");
    CHECK_EQ(value_files_in(other), 4);
    CHECK_OK(backlite_storage_clear(s, &err));
    CHECK_EQ(value_files_in(other), 4);
    CHECK_EQ(STATS(s).count, 0);
    backlite_storage_free(s);
    free(v);
}

static int32_t count_chunks(void *user_data, const uint8_t *chunk, size_t len) {
    (void)chunk;
    *(size_t *)user_data += len;
    return 0;
}

/* The same link, read: a handle open since before it was put there reads no value
 * through it (a miss or IO, as for a handle opened since: never a value from
 * elsewhere), by any call, and removes nothing at its end. */
static void a_link_left_for_a_moved_folder_is_never_read_through(void) {
    char path[PATH_MAX], other[PATH_MAX];
    snprintf(path, sizeof path, "%s", tmp_path("c.db"));
    snprintf(other, sizeof other, "%s", tmp_path("elsewhere"));
    backlite_storage *s = OPEN_SET(path, .file_threshold = THRESHOLD);
    REQUIRE(s != NULL);
    uint8_t *v = h_pattern(LARGE, 4);
    const char *keys[] = {"get", "chunks", "reader", "contains"};
    for (int i = 0; i < 4; i++) SET_BYTES(s, keys[i], v, LARGE, NEVER);
    GET_BYTES_EQ(s, "get", v, LARGE);
    REQUIRE(rename(folder_of(path), other) == 0);
    REQUIRE(symlink(other, folder_of(path)) == 0);

    backlite_buf out = {0};
    backlite_error *e = NULL;
    backlite_result rc = backlite_storage_get(s, K("get"), &out, NULL, &e);
    CHECK(rc == BACKLITE_RESULT_NOT_FOUND || rc == BACKLITE_RESULT_IO);
    CHECK(out.data == NULL);
    backlite_buf_free(&out);
    backlite_error_free(e);
    e = NULL;
    size_t got = 0;
    rc = backlite_storage_get_chunks(s, K("chunks"), count_chunks, &got, NULL, &e);
    CHECK(rc == BACKLITE_RESULT_NOT_FOUND || rc == BACKLITE_RESULT_IO);
    CHECK_EQ(got, 0);
    backlite_error_free(e);
    e = NULL;
    backlite_value_reader *r = NULL;
    rc = backlite_storage_open_reader(s, K("reader"), &r, NULL, NULL, &e);
    CHECK(rc == BACKLITE_RESULT_NOT_FOUND || rc == BACKLITE_RESULT_IO);
    CHECK(r == NULL);
    backlite_value_reader_free(r);
    backlite_error_free(e);
    e = NULL;
    rc = backlite_storage_contains(s, K("contains"), &e);
    CHECK(rc == BACKLITE_RESULT_NOT_FOUND || rc == BACKLITE_RESULT_IO);
    backlite_error_free(e);
    CHECK_EQ(value_files_in(other), 4);
    backlite_storage_free(s);
    free(v);
}

/* A folder of the user's that holds the cache, moved elsewhere (a bigger disk) with a
 * link left in its place while a handle is open: every other file operation follows
 * a link on the way to the cache, as SQLite does, and so must a read of a value file.
 * Only a link in place of the folder of values, or of a value file, is refused. */
static void a_link_on_the_way_to_the_folder_is_followed(void) {
    char data[PATH_MAX], moved[PATH_MAX], path[PATH_MAX + 8];
    snprintf(data, sizeof data, "%s", tmp_path("data"));
    snprintf(moved, sizeof moved, "%s", tmp_path("data-moved"));
    snprintf(path, sizeof path, "%s/c.db", data);
    REQUIRE(mkdir(data, 0700) == 0);
    backlite_storage *s = OPEN_SET(path, .file_threshold = THRESHOLD);
    REQUIRE(s != NULL);
    uint8_t *v = h_pattern(LARGE, 5);
    SET_BYTES(s, "before", v, LARGE, NEVER);
    REQUIRE(rename(data, moved) == 0);
    REQUIRE(symlink(moved, data) == 0);
    GET_BYTES_EQ(s, "before", v, LARGE);
    SET_BYTES(s, "after", v, LARGE, NEVER);
    GET_BYTES_EQ(s, "after", v, LARGE);
    backlite_storage_free(s);
    free(v);
}

int main(void) {
    h_begin();
    RUN(a_lease_whose_value_cannot_be_written_frees_its_key);
    RUN(a_cache_moved_while_open_keeps_its_large_entries);
    RUN(a_link_left_for_a_moved_folder_is_never_removed_through);
    RUN(a_link_left_for_a_moved_folder_is_never_read_through);
    RUN(a_link_on_the_way_to_the_folder_is_followed);
    return h_end();
}
