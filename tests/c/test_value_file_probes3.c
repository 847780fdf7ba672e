/*
 * Large values kept in files (issue 16), probed a third time through the C ABI: what a
 * value that cannot be written to its file leaves behind in the calls that store it
 * inside a write transaction (a lease's fulfil, an exclusive cached call).
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

int main(void) {
    h_begin();
    RUN(a_lease_whose_value_cannot_be_written_frees_its_key);
    return h_end();
}
