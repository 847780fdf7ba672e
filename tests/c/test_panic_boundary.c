/*
 * Nothing reaches the host program but the result: backlite_storage_set_many with a
 * count that cannot be right (a valid pointer to one entry) is INVALID_ARGUMENT, with
 * nothing allocated in proportion to the count before it is checked, no abort, and not
 * a byte on the host's stderr (which this test redirects to a file around each call).
 * Today's code turns SIZE_MAX into a caught panic printed with a backtrace on stderr,
 * and 2^40 into an allocation failure that aborts the process.
 *
 * Whether a panic that is caught prints anything is pinned in Rust
 * (src/ffi/panic.rs: a_panic_caught_at_the_boundary_prints_nothing, and
 * a_host_hook_still_sees_every_panic_outside_backlite): the library has no panic a C
 * caller can trigger on purpose.
 */
#include "backlite.h"
#include "harness.h"

/* what set_many(s, one entry, count) returned, and how many bytes it wrote to stderr */
typedef struct {
    backlite_result rc;
    backlite_result err_rc;
    long stderr_bytes;
} outcome;

static outcome set_many_with_count(backlite_storage *s, const backlite_entry *e, size_t count) {
    outcome o = {-1, -1, -1};
    const char *path = tmp_path("stderr.txt");
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) return o;
    fflush(stderr);
    int saved = dup(2);
    dup2(fd, 2);
    backlite_error *err = NULL;
    o.rc = backlite_storage_set_many(s, e, count, &err);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    o.stderr_bytes = (long)lseek(fd, 0, SEEK_END);
    close(fd);
    if (err != NULL) {
        o.err_rc = backlite_error_result(err);
        backlite_error_free(err);
    }
    return o;
}

static void an_impossible_count_is_invalid_and_prints_nothing(void) {
    backlite_storage *s = OPEN(":memory:", NULL);
    REQUIRE(s != NULL);
    backlite_entry one = {(const uint8_t *)"k", 1, (const uint8_t *)"v", 1, NEVER};
    size_t counts[] = {
        SIZE_MAX,
        SIZE_MAX / sizeof(backlite_entry) + 1, /* the array would not fit in memory */
        (size_t)PTRDIFF_MAX / sizeof(backlite_entry) + 1,
#if SIZE_MAX > 0xffffffffu && !UNDER_ASAN
        /* 2^40 entries need bookkeeping for 2^40 entries, which the library asks the
           allocator for fallibly. AddressSanitizer's allocator answers such a request
           by aborting (or, told to return NULL, with a warning of its own on stderr),
           so the asan_ run leaves that count to the plain and memcheck_ runs. */
        (size_t)1 << 40, /* fits the address space; no memory to track that many */
#endif
    };
    for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++) {
        outcome o = set_many_with_count(s, &one, counts[i]);
        if (o.rc != BACKLITE_RESULT_INVALID_ARGUMENT || o.err_rc != o.rc || o.stderr_bytes != 0)
            h_fail_(__FILE__, __LINE__,
                    "count %zu: got %s with an error of %s and %ld bytes on stderr; expected "
                    "INVALID_ARGUMENT and nothing on stderr",
                    counts[i], h_rc_name(o.rc), h_rc_name(o.err_rc), o.stderr_bytes);
    }
    GET_MISSING(s, "k");
    CHECK_EQ(STATS(s).count, 0);
    /* the handle is as good as before */
    CHECK_OK(backlite_storage_set_many(s, &one, 1, &err));
    GET_EQ(s, "k", "v");
    backlite_storage_free(s);
}

int main(void) {
    h_begin();
    RUN(an_impossible_count_is_invalid_and_prints_nothing);
    return h_end();
}
