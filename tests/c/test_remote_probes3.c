/*
 * test_remote_probes3.c: the remote tier's third probe round, against a real
 * redis-server. Each case starts from what a probe found broken.
 */
#include "harness.h"
#include "redis_server.h"
#include "remote_calls.h"

#include <sys/mman.h>

static redis_server server;
static char server_dir[PATH_MAX];

/* Options with the remote, every value kept in the database file (so that a value over
 * SQLite's limit is refused) and a max_size above that limit, in `mode`. */
static backlite_options *in_database(backlite_remote_mode mode) {
    backlite_options *o = OPTIONS_SET(.max_size = 8ull << 30,
                                      .file_threshold = BACKLITE_FILE_THRESHOLD_NEVER);
    CHECK_EQ(backlite_options_set_remote(o, server.url), BACKLITE_RESULT_OK);
    CHECK_EQ(backlite_options_set_remote_timeout_ms(o, 10000), BACKLITE_RESULT_OK);
    CHECK_EQ(backlite_options_set_remote_mode(o, mode), BACKLITE_RESULT_OK);
    return o;
}

/* A set of a value over BACKLITE_MAX_VALUE_SIZE (every value in the database) is
 * TOO_LARGE and removes the older value, from the remote too; one already expired
 * stores nothing and removes it too. Both removed the local value only: the next get
 * on the same machine read the older value back from the remote, and so did every other
 * machine. The value's pages cannot be read (PROT_NONE): neither set may read it. */
static void check_a_value_over_the_limit_removes_the_remote_older_value(backlite_remote_mode mode) {
    size_t over = (size_t)BACKLITE_MAX_VALUE_SIZE + 1;
    uint8_t *big = mmap(NULL, over, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    REQUIRE(big != MAP_FAILED);
    backlite_options *rw = in_database(BACKLITE_REMOTE_MODE_READ_WRITE), *o = in_database(mode);
    char name[64];
    snprintf(name, sizeof name, "over-w%d.db", (int)mode);
    backlite_storage *w = open_file(name, o);
    const char *keys[2] = {"too large", "expired"};
    for (int i = 0; i < 2; i++) {
        backlite_storage *old = open_file("over-old.db", rw);
        SET(old, keys[i], "older value");
        backlite_storage_free(old);
        if (i == 0) {
            CHECK_RC(backlite_storage_set(w, K(keys[i]), big, over, NEVER, &err),
                     BACKLITE_RESULT_TOO_LARGE);
        } else {
            CHECK_OK(backlite_storage_set(w, K(keys[i]), big, over, 0, &err));
        }
        if (mode != BACKLITE_REMOTE_MODE_WRITE_BEHIND) GET_MISSING(w, keys[i]);
    }
    backlite_storage_free(w); /* sends what a write-behind queue holds */
    snprintf(name, sizeof name, "over-r%d.db", (int)mode);
    backlite_storage *r = open_file(name, rw);
    for (int i = 0; i < 2; i++) GET_MISSING(r, keys[i]);
    backlite_remote_stats st = stats_of(r);
    CHECK_EQ(st.misses, 2);
    CHECK_EQ(st.errors, 0);
    backlite_storage_free(r);
    backlite_options_free(o);
    backlite_options_free(rw);
    munmap(big, over);
}

static void a_value_over_the_limit_removes_the_remote_older_value(void) {
    check_a_value_over_the_limit_removes_the_remote_older_value(BACKLITE_REMOTE_MODE_READ_WRITE);
}

static void a_value_over_the_limit_removes_the_remote_older_value_behind(void) {
    check_a_value_over_the_limit_removes_the_remote_older_value(BACKLITE_REMOTE_MODE_WRITE_BEHIND);
}

int main(void) {
    quiet_stopped_children();
    h_begin();
    if (start_test_server(&server, server_dir) != 0) {
        CHECK(0);
        return h_end();
    }
    RUN(a_value_over_the_limit_removes_the_remote_older_value);
    RUN(a_value_over_the_limit_removes_the_remote_older_value_behind);
    redis_server_stop(&server);
    return h_end();
}
