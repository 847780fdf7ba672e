/*
 * Eighteenth probe round of the local cache contract (API.md), kept as tests.
 *
 * a_handle_whose_tag_another_process_replaced_is_refused: a handle opened with version
 * tag "v1" went on reading and writing after another process reopened the file with
 * "v2" (which dropped every entry of v1): its get returned the bytes the v2 program
 * wrote, in v2's format, as its own (OK), and its set put a v1 value among v2's, which
 * the v2 program then read as one of its own. A tag is the format of the values, so
 * each handle is refused (INCOMPATIBLE, saying both tags) where it would read or write
 * a value of another tag, and changes nothing: a handle opened again with its tag
 * takes the file back, as any open with another tag does; one without a tag ignores
 * the file's tag, as before. A lease it held is still released when its fulfil is
 * refused, so the key is not blocked for the rest of the lease.
 */
#include "backlite.h"
#include "harness.h"

/* ------------------------------------ a tag replaced by another process */

/* A child process that, once told to through `go` (a pipe), opens `path` with `tag`,
 * stores `key` = `value` and closes; started before the parent opens its handle, so
 * that it inherits none. Its pid, or -1. */
static pid_t store_in_another_process(const char *path, const char *tag, const char *key, const char *value,
                                      int go[2]) {
    if (pipe(go) != 0) return -1;
    pid_t pid = fork();
    if (pid == 0) {
        close(go[1]);
        char c;
        if (read(go[0], &c, 1) != 1) _exit(2);
        backlite_options *o = backlite_options_new();
        backlite_error *err = NULL;
        backlite_storage *s = NULL;
        backlite_result rc = !o ? BACKLITE_RESULT_PANIC : backlite_options_set_version_tag(o, tag);
        if (rc == BACKLITE_RESULT_OK) rc = backlite_storage_open(path, o, &s, &err);
        if (rc == BACKLITE_RESULT_OK)
            rc = backlite_storage_set(s, K(key), (const uint8_t *)value, strlen(value), NEVER, &err);
        if (rc != BACKLITE_RESULT_OK) fprintf(stderr, "  # child: %s %s\n", h_rc_name(rc), backlite_error_message(err));
        backlite_error_free(err);
        backlite_storage_free(s);
        backlite_options_free(o);
        _exit(rc == BACKLITE_RESULT_OK ? 0 : 1);
    }
    close(go[0]);
    if (pid < 0) close(go[1]);
    return pid;
}

/* `call` on a handle of another tag: INCOMPATIBLE, with a message naming both tags */
static void check_refused(backlite_result rc, backlite_error **errp, const char *what) {
    backlite_error *err = *errp;
    *errp = NULL;
    const char *m = backlite_error_message(err);
    if (rc != BACKLITE_RESULT_INCOMPATIBLE || !strstr(m, "\"v1\"") || !strstr(m, "\"v2\""))
        fprintf(stderr, "  # %s: %s, \"%s\"\n", what, h_rc_name(rc), m);
    CHECK_EQ(rc, BACKLITE_RESULT_INCOMPATIBLE);
    CHECK(err != NULL);
    CHECK_EQ(backlite_error_result(err), BACKLITE_RESULT_INCOMPATIBLE);
    CHECK(strstr(m, "\"v1\"") && strstr(m, "\"v2\""));
    backlite_error_free(err);
}

static int32_t compute_v1(void *user_data, backlite_sink *sink) {
    (*(int *)user_data)++;
    return backlite_sink_write(sink, (const uint8_t *)"v1 value", 8);
}

static void a_handle_whose_tag_another_process_replaced_is_refused(void) {
    const char *path = tmp_path("retagged.db");
    int go[2];
    pid_t child = store_in_another_process(path, "v2", "k", "v2 value", go);
    REQUIRE(child > 0);
    backlite_storage *old = OPEN_SET(path, .version_tag = "v1");
    SET(old, "kept", "v1 value");
    GET_EQ(old, "kept", "v1 value");
    backlite_lease *lease = NULL;
    backlite_buf none = {NULL, 0};
    CHECK_RC(backlite_lease_try_acquire(old, K("L"), 600000, &none, &lease, NULL), BACKLITE_RESULT_NOT_FOUND);

    /* another program, of the next format, takes the file over */
    bool told = write(go[1], "g", 1) == 1;
    close(go[1]);
    int code = CHILD_EXIT_CODE(child);
    if (!told || code != 0 || !old) {
        backlite_lease_abandon(lease);
        backlite_storage_free(old);
    }
    REQUIRE(told && code == 0 && old);

    backlite_error *err = NULL;
    static uint8_t untouched[] = "untouched";
    backlite_buf buf = {untouched, 9};
    int64_t left = 12345;
    check_refused(backlite_storage_get(old, K("k"), &buf, &left, &err), &err, "get of v2's key");
    CHECK(buf.data == untouched && buf.len == 9);
    CHECK_EQ(left, 12345);
    if (buf.data != untouched) backlite_buf_free(&buf); /* what a wrong answer gave */
    buf = (backlite_buf){untouched, 9};

    check_refused(backlite_storage_set(old, K("k"), (const uint8_t *)"v1 value", 8, NEVER, &err), &err,
                  "set over v2's key");
    check_refused(backlite_storage_set(old, K("new"), (const uint8_t *)"v1 value", 8, NEVER, &err), &err,
                  "set of a new key");
    backlite_entry batch[1] = {{(const uint8_t *)"b", 1, (const uint8_t *)"v1 value", 8, NEVER}};
    check_refused(backlite_storage_set_many(old, batch, 1, &err), &err, "set_many");
    check_refused(backlite_storage_delete(old, K("k"), &err), &err, "delete of v2's key");
    /* refused, its lease is still released: the key is not blocked for ten minutes */
    check_refused(backlite_lease_fulfill(lease, (const uint8_t *)"v1 value", 8, NEVER, &err), &err, "fulfil");
    int computed = 0;
    check_refused(backlite_cached_call(old, K("k"), compute_v1, &computed, NULL, NEVER, &buf, &err), &err,
                  "cached_call of v2's key");
    CHECK_EQ(computed, 0);
    CHECK(buf.data == untouched && buf.len == 9);
    if (buf.data != untouched) backlite_buf_free(&buf);

    /* the v2 program finds its value and nothing of v1's */
    backlite_storage *now = OPEN_SET(path, .version_tag = "v2");
    REQUIRE(now);
    GET_EQ(now, "k", "v2 value");
    GET_MISSING(now, "new");
    GET_MISSING(now, "b");
    GET_MISSING(now, "kept");
    CHECK_EQ(STATS(now).count, 1);
    backlite_lease *taken = NULL;
    CHECK_RC(backlite_lease_try_acquire(now, K("L"), 1000, &none, &taken, NULL), BACKLITE_RESULT_NOT_FOUND);
    backlite_lease_abandon(taken);
    backlite_storage_free(now);

    /* a handle without a tag ignores the file's, as before */
    backlite_storage *untagged = OPEN(path, NULL);
    REQUIRE(untagged);
    GET_EQ(untagged, "k", "v2 value");
    backlite_storage_free(untagged);

    backlite_storage_free(old);

    /* opened again with v1, the file is v1's once more: v2's entries are dropped */
    old = OPEN_SET(path, .version_tag = "v1");
    REQUIRE(old);
    GET_MISSING(old, "k");
    SET(old, "k", "v1 value");
    GET_EQ(old, "k", "v1 value");
    backlite_storage_free(old);
}

int main(void) {
    h_begin();
    RUN(a_handle_whose_tag_another_process_replaced_is_refused);
    return h_end();
}
