/*
 * stampede: the two forms of stampede protection, on one cache file.
 *
 *     stampede [CACHE_FILE]
 *
 * 1. Blocking single flight: backlite_cached_call_exclusive. However many threads and
 *    processes ask for "report" at once, one computes it; the others wait for its value.
 * 2. Two-phase, for event loops: backlite_lease_try_acquire never blocks. OK is a hit;
 *    NOT_FOUND hands you a lease (compute, then fulfil); LEASE_HELD means someone else is
 *    computing: come back later.
 */
#include "backlite.h"

#include <stdio.h>
#include <string.h>

static int32_t build_report(void *user_data, backlite_sink *sink) {
    int *computed = user_data;
    (*computed)++;
    static const char report[] = "quarterly report";
    return backlite_sink_write(sink, (const uint8_t *)report, strlen(report));
}

static int fail(const char *what, backlite_result r, backlite_error *err) {
    fprintf(stderr, "stampede: %s: %s (%s)\n", what, err ? backlite_error_message(err) : "",
            backlite_result_str(r));
    backlite_error_free(err);
    return 1;
}

int main(int argc, char **argv) {
    const char *path = argc > 1 ? argv[1] : "stampede-demo.db";
    backlite_storage *cache = NULL;
    backlite_error *err = NULL;
    backlite_result r = backlite_storage_open(path, NULL, &cache, &err);
    if (r != BACKLITE_RESULT_OK) return fail("open", r, err);

    /* 1. Blocking: wait up to 10 s for whoever computes "report". */
    int computed = 0;
    backlite_buf value = {0};
    r = backlite_cached_call_exclusive(cache, (const uint8_t *)"report", 6, build_report, &computed,
                                       BACKLITE_EXPIRATION_NEVER, 10000, &value, &err);
    if (r != BACKLITE_RESULT_OK) {
        backlite_storage_free(cache);
        return fail("cached_call_exclusive", r, err);
    }
    printf("exclusive: %.*s (%s)\n", (int)value.len, value.data, computed ? "computed" : "from the cache");
    backlite_buf_free(&value);

    /* 2. Two-phase: one step of an event loop's task. */
    backlite_lease *lease = NULL;
    r = backlite_lease_try_acquire(cache, (const uint8_t *)"page:/", 6, 30000 /* lease ms */, &value,
                                   &lease, &err);
    if (r == BACKLITE_RESULT_OK) {
        printf("two-phase: hit, %.*s\n", (int)value.len, value.data);
        backlite_buf_free(&value);
    } else if (r == BACKLITE_RESULT_NOT_FOUND) {
        /* Ours to compute: render the page (here at once), then store it and release. */
        static const char page[] = "<html>home</html>";
        r = backlite_lease_fulfill(lease, (const uint8_t *)page, strlen(page), 60000, &err);
        if (r != BACKLITE_RESULT_OK) { /* LEASE_LOST: another owner took over; nothing stored */
            backlite_storage_free(cache);
            return fail("lease_fulfill", r, err);
        }
        printf("two-phase: computed and stored the page\n");
    } else if (r == BACKLITE_RESULT_LEASE_HELD) {
        printf("two-phase: another owner is computing it; try again on the next tick\n");
        backlite_error_free(err);
    } else {
        backlite_storage_free(cache);
        return fail("lease_try_acquire", r, err);
    }
    backlite_storage_free(cache);
    return 0;
}
