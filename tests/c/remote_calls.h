/*
 * remote_calls.h: calls the remote-tier tests share (test_remote_*.c): open a cache in
 * the test's folder, read a handle's remote stats. Header-only; include after harness.h.
 */
#ifndef BACKLITE_TEST_REMOTE_CALLS_H
#define BACKLITE_TEST_REMOTE_CALLS_H

#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Opens tmp_path(name) with `o`. A cache that does not open ends the program: every
 * later call of a remote test needs its handle. */
static inline backlite_storage *open_file(const char *name, const backlite_options *o) {
    backlite_storage *s = NULL;
    backlite_error *e = NULL;
    if (backlite_storage_open(tmp_path(name), o, &s, &e) != BACKLITE_RESULT_OK) {
        fprintf(stderr, "open %s: %s\n", name, e ? backlite_error_message(e) : "?");
        backlite_error_free(e);
        exit(1);
    }
    return s;
}

/* The handle's remote stats, checked to be read. */
static inline backlite_remote_stats stats_of(backlite_storage *s) {
    backlite_remote_stats st;
    memset(&st, 0, sizeof st);
    CHECK_OK(backlite_storage_remote_stats(s, &st, &err));
    return st;
}

#endif
