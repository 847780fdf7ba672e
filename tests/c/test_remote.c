/*
 * test_remote.c: the remote tier through the C API, against a redis-server this test
 * starts itself: option checks, two "machines" (processes with their own files)
 * sharing values, stats, an unreachable remote and a killed one.
 */
#include "harness.h"
#include "redis_server.h"


static redis_server server;
static char server_dir[PATH_MAX];

static backlite_options *remote_options(const char *url) {
    backlite_options *o = backlite_options_new();
    CHECK_EQ(backlite_options_set_remote(o, url), BACKLITE_RESULT_OK);
    CHECK_EQ(backlite_options_set_remote_timeout_ms(o, 300), BACKLITE_RESULT_OK);
    return o;
}

static backlite_storage *open_file(const char *name, const backlite_options *o) {
    backlite_storage *s = NULL;
    backlite_error *err = NULL;
    backlite_result rc = backlite_storage_open(tmp_path(name), o, &s, &err);
    if (rc != BACKLITE_RESULT_OK) {
        fprintf(stderr, "open %s: %s\n", name, err ? backlite_error_message(err) : "?");
        backlite_error_free(err);
        exit(1);
    }
    return s;
}

static void bad_options_are_refused(void) {
    backlite_options *o = backlite_options_new();
    const char *bad[] = {"not a url", "ftp://h:1", "redis://", "redis://h:99999",
                         "redis://h/notadb", "redis+cluster://a:1,,b:2", "redis+unix://rel"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        CHECK_EQ(backlite_options_set_remote(o, bad[i]), BACKLITE_RESULT_INVALID_ARGUMENT);
    }
    CHECK_EQ(backlite_options_set_remote(NULL, "redis://h"), BACKLITE_RESULT_NULL_PARAMETER);
    CHECK_EQ(backlite_options_set_remote_namespace(o, "has space"), BACKLITE_RESULT_INVALID_ARGUMENT);
    CHECK_EQ(backlite_options_set_remote_namespace(o, ""), BACKLITE_RESULT_INVALID_ARGUMENT);
    CHECK_EQ(backlite_options_set_remote_namespace(o, NULL), BACKLITE_RESULT_NULL_PARAMETER);
    CHECK_EQ(backlite_options_set_remote_namespace(o, "team-a"), BACKLITE_RESULT_OK);
    CHECK_EQ(backlite_options_set_remote_timeout_ms(o, 0), BACKLITE_RESULT_INVALID_ARGUMENT);
    CHECK_EQ(backlite_options_set_remote_mode(o, 3), BACKLITE_RESULT_INVALID_ARGUMENT);
    CHECK_EQ(backlite_options_set_remote_mode(o, -1), BACKLITE_RESULT_INVALID_ARGUMENT);
    CHECK_EQ(backlite_options_set_remote_mode(o, BACKLITE_REMOTE_MODE_WRITE_BEHIND), BACKLITE_RESULT_OK);
    CHECK_EQ(backlite_options_set_remote(o, "rediss+cluster://u:p@h1:7000,h2:7001"), BACKLITE_RESULT_OK);
    CHECK_EQ(backlite_options_set_remote(o, NULL), BACKLITE_RESULT_OK); /* removes it */
    CHECK_EQ(backlite_options_set_remote(o, ""), BACKLITE_RESULT_OK);
    /* Without a remote, the stats are all zero. */
    backlite_storage *s = open_file("plain.db", o);
    backlite_remote_stats st;
    memset(&st, 0xff, sizeof st);
    CHECK_OK(backlite_storage_remote_stats(s, &st, &err));
    CHECK_EQ(st.hits + st.misses + st.writes + st.errors + st.skipped, 0);
    CHECK_EQ(st.connected, 0);
    CHECK_RC(backlite_storage_remote_stats(s, NULL, &err), BACKLITE_RESULT_NULL_PARAMETER);
    CHECK_RC(backlite_storage_remote_stats(NULL, &st, &err), BACKLITE_RESULT_NULL_PARAMETER);
    backlite_storage_free(s);
    backlite_options_free(o);
}

static void another_process_reads_what_one_wrote(void) {
    backlite_options *o = remote_options(server.url);
    fflush(NULL);
    pid_t child = fork();
    if (child == 0) { /* machine one: its own file */
        backlite_storage *s = NULL;
        if (backlite_storage_open(tmp_path("one.db"), o, &s, NULL) != BACKLITE_RESULT_OK) _exit(2);
        if (backlite_storage_set(s, K("greeting"), K("hello from one"), 60000, NULL) != 0) _exit(3);
        backlite_storage_free(s);
        backlite_options_free(o);
        _exit(0);
    }
    int status = -1;
    waitpid(child, &status, 0);
    REQUIRE(WIFEXITED(status) && WEXITSTATUS(status) == 0);

    backlite_storage *two = open_file("two.db", o);
    backlite_buf buf = {0};
    int64_t left = 0;
    CHECK_OK(backlite_storage_get(two, K("greeting"), &buf, &left, &err));
    CHECK(buf.len == strlen("hello from one") && memcmp(buf.data, "hello from one", buf.len) == 0);
    CHECK(left > 0 && left <= 60000);
    backlite_buf_free(&buf);
    backlite_remote_stats st;
    CHECK_OK(backlite_storage_remote_stats(two, &st, &err));
    CHECK_EQ(st.hits, 1);
    CHECK_EQ(st.connected, 1);
    /* Now local: a second get does not ask the remote. */
    CHECK_OK(backlite_storage_get(two, K("greeting"), &buf, NULL, &err));
    backlite_buf_free(&buf);
    CHECK_OK(backlite_storage_remote_stats(two, &st, &err));
    CHECK_EQ(st.hits, 1);
    /* Delete reaches the remote: a third machine misses. */
    CHECK_OK(backlite_storage_delete(two, K("greeting"), &err));
    backlite_storage *three = open_file("three.db", o);
    CHECK_RC(backlite_storage_get(three, K("greeting"), &buf, NULL, &err), BACKLITE_RESULT_NOT_FOUND);
    backlite_storage_free(three);
    backlite_storage_free(two);
    backlite_options_free(o);
}

static void an_unreachable_or_killed_remote_never_fails_a_call(void) {
    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", redis_free_port());
    backlite_options *o = remote_options(url);
    backlite_storage *s = open_file("down.db", o);
    backlite_remote_stats st;
    CHECK_OK(backlite_storage_remote_stats(s, &st, &err));
    CHECK_EQ(st.connected, 0);
    CHECK(st.errors >= 1);
    for (int i = 0; i < 20; i++) {
        CHECK_OK(backlite_storage_set(s, K("k"), K("v"), BACKLITE_EXPIRATION_NEVER, &err));
        backlite_buf buf = {0};
        CHECK_OK(backlite_storage_get(s, K("k"), &buf, NULL, &err));
        backlite_buf_free(&buf);
        CHECK_RC(backlite_storage_get(s, K("nope"), &buf, NULL, &err), BACKLITE_RESULT_NOT_FOUND);
    }
    CHECK_OK(backlite_storage_remote_stats(s, &st, &err));
    CHECK(st.skipped >= 1); /* backed off, not asked again each time */
    backlite_storage_free(s);
    backlite_options_free(o);
}

int main(void) {
    h_begin();
    snprintf(server_dir, sizeof server_dir, "%s", tmp_path("redis"));
    mkdir(server_dir, 0700);
    int up = redis_server_start(&server, server_dir, NULL) == 0;
    RUN(bad_options_are_refused);
    if (up) {
        RUN(another_process_reads_what_one_wrote);
    } else {
        fprintf(stderr, "redis-server could not be started (apt-get install redis-server)\n");
        CHECK(up);
    }
    RUN(an_unreachable_or_killed_remote_never_fails_a_call);
    redis_server_stop(&server);
    return h_end();
}
