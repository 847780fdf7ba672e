/*
 * test_remote_probes3.c: the remote tier's third probe round, against a real
 * redis-server. Each case starts from what a probe found broken.
 */
#include "harness.h"
#include "redis_server.h"
#include "remote_calls.h"

#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>

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

/* ---- waiting for another machine's compute ---- */

static int started[2], go[2];

static int32_t compute_when_told(void *user, backlite_sink *sink) {
    (void)user;
    char byte;
    (void)!write(started[1], "s", 1);
    (void)!read(go[0], &byte, 1);
    return backlite_sink_write(sink, K("computed there")) == BACKLITE_RESULT_OK ? 0 : 1;
}

static int32_t never_computed(void *user, backlite_sink *sink) {
    (void)sink;
    (*(int *)user)++;
    return 1;
}

static void *compute_there(void *arg) {
    backlite_buf buf = {0};
    CHECK_OK(backlite_cached_call_exclusive(arg, K("computed"), compute_when_told, NULL, NEVER,
                                            30000, &buf, NULL));
    CHECK_BUF_STR(buf, "computed there");
    backlite_buf_free(&buf);
    return NULL;
}

/* A caller whose wait for another machine's compute (the remote lease held, not the
 * file's) runs out returns LEASE_HELD with the holder's time left, as the header says
 * for every waiter, and as a waiter on the same file gets. It returned BUSY, which means
 * a lock not obtained within the busy timeout, with no time left. The remote lease
 * lasts 8 timeouts here (8 s). */
static void a_wait_for_another_machine_runs_out_as_lease_held(void) {
    backlite_options *o = remote_at(server.url, 1000);
    REQUIRE(pipe(started) == 0 && pipe(go) == 0);
    backlite_storage *there = open_file("held-there.db", o), *here = open_file("held-here.db", o);
    pthread_t holder;
    REQUIRE(pthread_create(&holder, NULL, compute_there, there) == 0);
    char byte;
    REQUIRE(read(started[0], &byte, 1) == 1); /* `there` holds the remote lease */
    int computed = 0;
    for (int wait_ms = 0; wait_ms <= 200; wait_ms += 200) {
        backlite_buf buf = {0};
        backlite_error *e = NULL;
        CHECK_EQ(backlite_cached_call_exclusive(here, K("computed"), never_computed, &computed,
                                                NEVER, wait_ms, &buf, &e),
                 BACKLITE_RESULT_LEASE_HELD);
        REQUIRE(e != NULL);
        CHECK_EQ(backlite_error_result(e), BACKLITE_RESULT_LEASE_HELD);
        int64_t left = backlite_error_lease_time_left_ms(e);
        CHECK(left > 0 && left <= 8000);
        backlite_error_free(e);
        CHECK_EQ(buf.data, NULL);
    }
    CHECK_EQ(computed, 0);
    (void)!write(go[1], "g", 1);
    pthread_join(holder, NULL);
    /* The holder's value, from the remote. */
    backlite_buf buf = {0};
    CHECK_OK(backlite_cached_call_exclusive(here, K("computed"), never_computed, &computed, NEVER,
                                            0, &buf, &err));
    CHECK_BUF_STR(buf, "computed there");
    backlite_buf_free(&buf);
    CHECK_EQ(computed, 0);
    backlite_storage_free(here);
    backlite_storage_free(there);
    for (int i = 0; i < 2; i++) {
        close(started[i]);
        close(go[i]);
    }
    backlite_options_free(o);
}

/* ---- a computed value the server refuses ---- */

static int oom_port;

static int32_t compute_then_fill_the_server(void *user, backlite_sink *sink) {
    (void)user;
    char out[64];
    /* Taken: the lease is ours. The server now refuses every write that needs memory. */
    CHECK_STR_EQ(redis_cli(oom_port, "CONFIG SET maxmemory 1", out, sizeof out), "OK");
    return backlite_sink_write(sink, K("computed here")) == BACKLITE_RESULT_OK ? 0 : 1;
}

/* A value computed under the remote lease that the server refuses to store (out of
 * memory under `noeviction`) still gives its lease up: another machine computes the key
 * at once instead of waiting for the lease to run out (8 timeouts, at least 2 s), or
 * getting LEASE_HELD for a compute that ended. The refused SET failed the script that
 * stores the value, before it deleted the lease. */
static void a_computed_value_the_server_refuses_gives_its_lease_up(void) {
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", tmp_path("oom-lease"));
    mkdir(dir, 0700);
    redis_server rs;
    const char *extra[] = {"--maxmemory-policy", "noeviction", NULL};
    REQUIRE(redis_server_start_args(&rs, dir, extra, 0) == 0);
    oom_port = rs.port;
    backlite_options *o = remote_at(rs.url, 10000);
    backlite_storage *a = open_file("oom-a.db", o), *b = open_file("oom-b.db", o);
    backlite_buf buf = {0};
    CHECK_OK(backlite_cached_call_exclusive(a, K("k"), compute_then_fill_the_server, NULL, NEVER,
                                            0, &buf, &err));
    CHECK_BUF_STR(buf, "computed here");
    backlite_buf_free(&buf);
    CHECK(stats_of(a).errors > 0);
    char out[64];
    CHECK_STR_EQ(redis_cli(rs.port, "CONFIG SET maxmemory 0", out, sizeof out), "OK");
    char key[128], cmd[160];
    snprintf(cmd, sizeof cmd, "EXISTS '%s'", redis_live_key(rs.port, "backlite", 'l', "k", key, sizeof key));
    CHECK_STR_EQ(redis_cli(rs.port, cmd, out, sizeof out), "0");
    int computed = 0;
    backlite_error *e = NULL;
    CHECK_EQ(backlite_cached_call_exclusive(b, K("k"), never_computed, &computed, NEVER, 0, &buf, &e),
             BACKLITE_RESULT_CALLBACK_FAILED);
    backlite_error_free(e);
    CHECK_EQ(computed, 1);
    backlite_storage_free(b);
    backlite_storage_free(a);
    backlite_options_free(o);
    redis_server_stop(&rs);
}

/* ---- the empty version tag ---- */

/* The empty version tag is a tag like any other, as it is for the file (a file opened
 * with "" and then with "x" is emptied; a handle with no tag checks none): its remote
 * keys are apart from those of a handle with no tag. Both used `<namespace>::`, so a
 * machine with no tag read (and cleared) the values of machines tagged "". */
static void the_empty_version_tag_is_apart_from_no_tag(void) {
    backlite_options *none = remote_at(server.url, 10000), *empty = remote_at(server.url, 10000);
    CHECK_EQ(backlite_options_set_version_tag(empty, ""), BACKLITE_RESULT_OK);
    backlite_storage *w = open_file("tag-empty-w.db", empty);
    SET(w, "tagged", "with the empty tag");
    backlite_storage_free(w);
    w = open_file("tag-none-w.db", none);
    SET(w, "untagged", "with no tag");
    backlite_storage_free(w);
    backlite_storage *r = open_file("tag-none-r.db", none);
    GET_MISSING(r, "tagged");
    GET_EQ(r, "untagged", "with no tag");
    backlite_storage_free(r);
    r = open_file("tag-empty-r.db", empty);
    GET_MISSING(r, "untagged");
    GET_EQ(r, "tagged", "with the empty tag");
    backlite_storage_free(r);
    backlite_options_free(empty);
    backlite_options_free(none);
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
    RUN(a_wait_for_another_machine_runs_out_as_lease_held);
    RUN(a_computed_value_the_server_refuses_gives_its_lease_up);
    RUN(the_empty_version_tag_is_apart_from_no_tag);
    redis_server_stop(&server);
    return h_end();
}
