/*
 * remote_calls.h: what the remote-tier tests share (test_remote*.c): their own
 * redis-server, options that name a remote, open a cache in the test's folder, read a
 * handle's remote stats. Header-only; include after harness.h.
 */
#ifndef BACKLITE_TEST_REMOTE_CALLS_H
#define BACKLITE_TEST_REMOTE_CALLS_H

#include "harness.h"
#include "redis_server.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Starts the test's redis-server in the folder "redis" of its temporary folder, whose
 * path goes to `dir` (PATH_MAX bytes); 0 once it is ready, else -1 and a message. */
static inline int start_test_server(redis_server *rs, char *dir) {
    snprintf(dir, PATH_MAX, "%s", tmp_path("redis"));
    mkdir(dir, 0700);
    if (redis_server_start(rs, dir, NULL) == 0) return 0;
    fprintf(stderr, "redis-server could not be started (apt-get install redis-server)\n");
    return -1;
}

/* No SIGCHLD when a server is stopped or continued: under valgrind it interrupts a
 * round trip blocked on that server (EINTR), which then fails. */
static inline void quiet_stopped_children(void) {
    struct sigaction quiet_children;
    memset(&quiet_children, 0, sizeof quiet_children);
    quiet_children.sa_handler = SIG_DFL;
    quiet_children.sa_flags = SA_NOCLDSTOP;
    sigaction(SIGCHLD, &quiet_children, NULL);
}

/* New options with the remote at `url` and its timeout (free with backlite_options_free). */
static inline backlite_options *remote_at(const char *url, uint32_t timeout_ms) {
    backlite_options *o = backlite_options_new();
    CHECK_EQ(backlite_options_set_remote(o, url), BACKLITE_RESULT_OK);
    CHECK_EQ(backlite_options_set_remote_timeout_ms(o, timeout_ms), BACKLITE_RESULT_OK);
    return o;
}

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
