/*
 * test_remote_input.c: the remote tier's options as a careless or hostile caller gives
 * them, against a redis-server this test starts (TCP on 127.0.0.1 and ::1, and a Unix
 * socket): every URL form, in any letter case, with IPv6 literals, a user without a
 * password, a password with reserved characters percent-encoded, database numbers and
 * trailing slashes; URLs with whitespace, bad ports or databases, or of 100,000
 * bytes; namespaces, timeouts and modes at their edges. A refusal is INVALID_ARGUMENT
 * and changes nothing; what is accepted reaches the server.
 */
#include "harness.h"
#include "redis_server.h"
#include "remote_calls.h"

static redis_server server;
static char server_dir[PATH_MAX];
static char socket_path[PATH_MAX];
/* The ACL user "probe" has this password: every character a URL reserves. */
static const char probe_password[] = "p@s:s/w%rd?#x";
static const char probe_password_encoded[] = "p%40s%3As%2Fw%25rd%3F%23x";

static backlite_storage *open_with(const backlite_options *o) {
    static int files;
    char name[32];
    snprintf(name, sizeof name, "f%d.db", files++);
    backlite_storage *s = NULL;
    backlite_error *e = NULL;
    if (backlite_storage_open(tmp_path(name), o, &s, &e) != BACKLITE_RESULT_OK) {
        fprintf(stderr, "open: %s\n", e ? backlite_error_message(e) : "?");
        backlite_error_free(e);
        return NULL;
    }
    return s;
}

/* Whether a handle opened with `o` writes a set to the remote without an error. */
static int reaches(const backlite_options *o) {
    backlite_storage *s = open_with(o);
    if (!s) return 0;
    int ok = backlite_storage_set(s, K("reach"), K("v"), BACKLITE_EXPIRATION_NEVER, NULL) ==
             BACKLITE_RESULT_OK;
    backlite_remote_stats st = stats_of(s);
    backlite_storage_free(s);
    return ok && st.connected == 1 && st.writes == 1 && st.errors == 0;
}

static int url_reaches(const char *url) {
    backlite_options *o = backlite_options_new();
    int ok = backlite_options_set_remote(o, url) == BACKLITE_RESULT_OK &&
             backlite_options_set_remote_timeout_ms(o, 5000) == BACKLITE_RESULT_OK && reaches(o);
    backlite_options_free(o);
    if (!ok) fprintf(stderr, "did not reach the server: %s\n", url);
    return ok;
}

static void every_accepted_url_form_reaches_the_server(void) {
    char url[512];
    const char *tcp[] = {"redis://127.0.0.1:%d", "redis://127.0.0.1:%d/", "redis://127.0.0.1:%d/0",
                         "redis://127.0.0.1:%d/15", "redis://localhost:%d",
                         /* schemes are case-insensitive (RFC 3986, 3.1) */
                         "REDIS://127.0.0.1:%d", "Redis://127.0.0.1:%d/",
                         /* an IPv6 literal */
                         "redis://[::1]:%d", "redis://[0:0:0:0:0:0:0:1]:%d/1",
                         /* a user without a password (the default user needs none) */
                         "redis://default@127.0.0.1:%d", "redis://default:@127.0.0.1:%d"};
    for (size_t i = 0; i < sizeof tcp / sizeof *tcp; i++) {
        snprintf(url, sizeof url, tcp[i], server.port);
        CHECK(url_reaches(url));
    }
    snprintf(url, sizeof url, "redis://probe:%s@127.0.0.1:%d", probe_password_encoded, server.port);
    CHECK(url_reaches(url));
    snprintf(url, sizeof url, "redis://probe:%s@[::1]:%d/2", probe_password_encoded, server.port);
    CHECK(url_reaches(url));
    CHECK(snprintf(url, sizeof url, "redis+unix://%s", socket_path) < (int)sizeof url);
    CHECK(url_reaches(url));
    CHECK(snprintf(url, sizeof url, "REDIS+UNIX://%s?db=3", socket_path) < (int)sizeof url);
    CHECK(url_reaches(url));
}

/* A database the server does not have (16 by default) is the server's answer, not a
 * malformed URL: open succeeds unconnected and every call goes on locally. */
static void a_database_the_server_lacks_opens_unconnected_and_calls_stay_local(void) {
    char url[128];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d/16", server.port);
    backlite_options *o = backlite_options_new();
    CHECK_EQ(backlite_options_set_remote(o, url), BACKLITE_RESULT_OK);
    CHECK_EQ(backlite_options_set_remote_timeout_ms(o, 5000), BACKLITE_RESULT_OK);
    backlite_storage *s = open_with(o);
    REQUIRE(s != NULL);
    backlite_remote_stats st = stats_of(s);
    CHECK_EQ(st.connected, 0);
    CHECK(st.errors >= 1);
    SET(s, "k", "local");
    GET_EQ(s, "k", "local");
    GET_MISSING(s, "absent");
    backlite_storage_free(s);
    backlite_options_free(o);
}

static void malformed_urls_are_refused_and_change_nothing(void) {
    char good[128];
    snprintf(good, sizeof good, "redis://127.0.0.1:%d", server.port);
    backlite_options *o = backlite_options_new();
    CHECK_EQ(backlite_options_set_remote(o, good), BACKLITE_RESULT_OK);
    CHECK_EQ(backlite_options_set_remote_timeout_ms(o, 5000), BACKLITE_RESULT_OK);
    const char *bad[] = {
        " redis://127.0.0.1:1", "redis://127.0.0.1:1 ", "redis://127.0.0.1:1\n",
        "redis://127.0.0.1:1\t", "redis ://h", "redis://h :1", "redis:/h", "redis//h", "redis:h",
        "://h", "redis+://h", "rediss+unix:///tmp/x.sock", "unix:///tmp/x.sock",
        "redis://h:-1", "redis://h:65536", "redis://h:1a", "redis://h/-1", "redis://h/65536",
        "redis://h/1/2", "redis://h/x", "redis://h?db=1", "redis://h#frag", "redis://[::1",
        "redis://[zz]:1", "redis://::1:6379", "redis://@", "redis://u:p@", "redis+unix://",
        "redis+unix:///", "redis+unix:///tmp/x.sock?db=-1", "redis+unix:///tmp/x.sock?db=65536",
        "redis+cluster://,", "redis+cluster://h:1/0", "rediss+cluster://",
        "redis+cluster://h:1?x", "http://h", "tcp://h:1", "valkey://h"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        backlite_result rc = backlite_options_set_remote(o, bad[i]);
        if (rc != BACKLITE_RESULT_INVALID_ARGUMENT)
            fprintf(stderr, "accepted or %s: \"%s\"\n", h_rc_name(rc), bad[i]);
        CHECK_EQ(rc, BACKLITE_RESULT_INVALID_ARGUMENT);
    }
    /* Very long: a host of 100,000 bytes is refused, or accepted and then simply not
     * reachable; either way nothing breaks and the refusal changes nothing. */
    size_t n = 100000;
    char *long_url = malloc(n + 32);
    REQUIRE(long_url != NULL);
    memcpy(long_url, "redis://", 8);
    memset(long_url + 8, 'a', n);
    strcpy(long_url + 8 + n, ":1");
    backlite_result rc = backlite_options_set_remote(o, long_url);
    CHECK(rc == BACKLITE_RESULT_OK || rc == BACKLITE_RESULT_INVALID_ARGUMENT);
    if (rc == BACKLITE_RESULT_OK) {
        CHECK_EQ(backlite_options_set_remote_timeout_ms(o, 300), BACKLITE_RESULT_OK);
        backlite_storage *s = open_with(o);
        CHECK(s != NULL);
        if (s) {
            CHECK_EQ(stats_of(s).connected, 0);
            SET(s, "k", "local");
            GET_EQ(s, "k", "local");
            backlite_storage_free(s);
        }
        CHECK_EQ(backlite_options_set_remote(o, good), BACKLITE_RESULT_OK);
        CHECK_EQ(backlite_options_set_remote_timeout_ms(o, 5000), BACKLITE_RESULT_OK);
    }
    /* A path of 100,000 bytes: a database number with many leading zeros. */
    snprintf(long_url, n + 32, "redis://127.0.0.1:%d/", server.port);
    size_t used = strlen(long_url);
    memset(long_url + used, '0', n - used);
    strcpy(long_url + n, "99999");
    CHECK_EQ(backlite_options_set_remote(o, long_url), BACKLITE_RESULT_INVALID_ARGUMENT);
    free(long_url);
    CHECK(reaches(o)); /* still the good URL */
    CHECK_EQ(backlite_options_set_remote(NULL, good), BACKLITE_RESULT_NULL_PARAMETER);
    backlite_options_free(o);
}

/* NULL and "" remove the remote: the handle has none (all stats 0) and nothing reaches
 * the server. */
static void null_or_empty_removes_the_remote(void) {
    char good[128], out[64];
    snprintf(good, sizeof good, "redis://127.0.0.1:%d", server.port);
    const char *removers[] = {NULL, ""};
    for (int i = 0; i < 2; i++) {
        backlite_options *o = backlite_options_new();
        CHECK_EQ(backlite_options_set_remote(o, good), BACKLITE_RESULT_OK);
        CHECK_EQ(backlite_options_set_remote(o, removers[i]), BACKLITE_RESULT_OK);
        backlite_storage *s = open_with(o);
        REQUIRE(s != NULL);
        SET(s, i ? "removed-by-empty" : "removed-by-null", "local only");
        backlite_remote_stats st = stats_of(s);
        CHECK_EQ(st.hits + st.misses + st.writes + st.errors + st.skipped, 0);
        CHECK_EQ(st.connected, 0);
        backlite_storage_free(s);
        backlite_options_free(o);
    }
    CHECK_STR_EQ(redis_cli(server.port, "--scan --pattern '*removed-by-*'", out, sizeof out), "");
}

static void namespaces_at_their_edges(void) {
    char url[128], out[256];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", server.port);
    backlite_options *o = backlite_options_new();
    CHECK_EQ(backlite_options_set_remote(o, url), BACKLITE_RESULT_OK);
    CHECK_EQ(backlite_options_set_remote_timeout_ms(o, 5000), BACKLITE_RESULT_OK);
    char longest[65], too_long[66];
    memset(longest, 'n', 64);
    longest[64] = '\0';
    memset(too_long, 'n', 65);
    too_long[65] = '\0';
    const char *good[] = {"a", ":", "team:a/b.c-d_e", longest};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++)
        CHECK_EQ(backlite_options_set_remote_namespace(o, good[i]), BACKLITE_RESULT_OK);
    CHECK_EQ(backlite_options_set_remote_namespace(o, "ns-kept"), BACKLITE_RESULT_OK);
    /* Spaces, control characters, glob and hash-tag characters, non-ASCII. */
    const char *bad[] = {"", "a b", " a", "a ", "a\tb", "a\nb", "a\rb", "{a}", "a}", "a*", "a?",
                         "[a]", "\xc3\xa9t\xc3\xa9", "a\x7f", too_long};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        CHECK_EQ(backlite_options_set_remote_namespace(o, bad[i]), BACKLITE_RESULT_INVALID_ARGUMENT);
    CHECK_EQ(backlite_options_set_remote_namespace(o, NULL), BACKLITE_RESULT_NULL_PARAMETER);
    CHECK_EQ(backlite_options_set_remote_namespace(NULL, "a"), BACKLITE_RESULT_NULL_PARAMETER);
    /* The refusals changed nothing: the value lands under "ns-kept". */
    CHECK(reaches(o));
    char key[128], cmd[160];
    snprintf(cmd, sizeof cmd, "EXISTS '%s'", redis_live_key(server.port, "ns-kept", 'd', "reach", key, sizeof key));
    CHECK_STR_EQ(redis_cli(server.port, cmd, out, sizeof out), "1");
    backlite_options_free(o);
}

static int32_t compute_v(void *user_data, backlite_sink *sink) {
    ++*(int *)user_data;
    return backlite_sink_write(sink, K("computed")) == BACKLITE_RESULT_OK ? 0 : 1;
}

static void timeouts_at_their_edges(void) {
    char url[128];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", server.port);
    backlite_options *o = backlite_options_new();
    CHECK_EQ(backlite_options_set_remote(o, url), BACKLITE_RESULT_OK);
    CHECK_EQ(backlite_options_set_remote_timeout_ms(o, 0), BACKLITE_RESULT_INVALID_ARGUMENT);
    CHECK_EQ(backlite_options_set_remote_timeout_ms(NULL, 1), BACKLITE_RESULT_NULL_PARAMETER);
    /* 1 ms: whether the server makes it or not, every call succeeds locally. */
    CHECK_EQ(backlite_options_set_remote_timeout_ms(o, 1), BACKLITE_RESULT_OK);
    backlite_storage *s = open_with(o);
    REQUIRE(s != NULL);
    SET(s, "t1", "local");
    GET_EQ(s, "t1", "local");
    backlite_storage_free(s);

    /* The largest: nothing overflows (a lease of 8 timeouts, socket timeouts, the
     * reclaim's budget), and a server that answers is used as usual. */
    CHECK_EQ(backlite_options_set_remote_timeout_ms(o, UINT32_MAX), BACKLITE_RESULT_OK);
    for (int mode = 0; mode < 3; mode++) {
        CHECK_EQ(backlite_options_set_remote_mode(o, mode), BACKLITE_RESULT_OK);
        backlite_storage *a = open_with(o), *b = open_with(o);
        REQUIRE(a != NULL && b != NULL);
        char key[32];
        snprintf(key, sizeof key, "max-timeout-%d", mode);
        SET(a, key, "v");
        int computed = 0;
        backlite_buf buf = {0};
        snprintf(key, sizeof key, "max-timeout-call-%d", mode);
        CHECK_OK(backlite_cached_call_exclusive(a, K(key), compute_v, &computed, 60000, 1000, &buf, &err));
        CHECK_EQ(computed, 1);
        backlite_buf_free(&buf);
        CHECK_OK(backlite_storage_clear(b, &err));
        backlite_remote_stats st = stats_of(a);
        CHECK_EQ(st.errors, 0);
        CHECK_EQ(st.connected, 1);
        backlite_storage_free(a); /* write-behind: sends what is queued */
        backlite_storage_free(b);
    }
    backlite_options_free(o);
}

static void modes_at_their_edges(void) {
    char url[128], out[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", server.port);
    backlite_options *o = backlite_options_new();
    CHECK_EQ(backlite_options_set_remote(o, url), BACKLITE_RESULT_OK);
    CHECK_EQ(backlite_options_set_remote_timeout_ms(o, 5000), BACKLITE_RESULT_OK);
    CHECK_EQ(backlite_options_set_remote_mode(o, BACKLITE_REMOTE_MODE_READ_ONLY), BACKLITE_RESULT_OK);
    const backlite_remote_mode bad[] = {-1, 3, 99, INT32_MIN, INT32_MAX};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        CHECK_EQ(backlite_options_set_remote_mode(o, bad[i]), BACKLITE_RESULT_INVALID_ARGUMENT);
    CHECK_EQ(backlite_options_set_remote_mode(NULL, 0), BACKLITE_RESULT_NULL_PARAMETER);
    /* Still read-only: nothing is written. */
    backlite_storage *s = open_with(o);
    REQUIRE(s != NULL);
    SET(s, "mode-kept", "local only");
    CHECK_EQ(stats_of(s).writes, 0);
    backlite_storage_free(s);
    CHECK_STR_EQ(redis_cli(server.port, "--scan --pattern '*mode-kept*'", out, sizeof out), "");
    backlite_options_free(o);
}

int main(void) {
    h_begin();
    snprintf(server_dir, sizeof server_dir, "%s", tmp_path("redis"));
    mkdir(server_dir, 0700);
    if (snprintf(socket_path, sizeof socket_path, "%s/r.sock", server_dir) >= (int)sizeof socket_path)
        return 2;
    /* Later arguments win: the server listens on both loopbacks, and on a socket. */
    const char *extra[] = {"--bind", "127.0.0.1", "::1", "--unixsocket", socket_path, NULL};
    int up = redis_server_start_args(&server, server_dir, extra, 0) == 0;
    if (!up) {
        fprintf(stderr, "redis-server could not be started (apt-get install redis-server)\n");
        CHECK(up);
        return h_end();
    }
    char cmd[256], out[64];
    snprintf(cmd, sizeof cmd, "ACL SETUSER probe on '>%s' '~*' +@all", probe_password);
    CHECK_STR_EQ(redis_cli(server.port, cmd, out, sizeof out), "OK");
    RUN(every_accepted_url_form_reaches_the_server);
    RUN(a_database_the_server_lacks_opens_unconnected_and_calls_stay_local);
    RUN(malformed_urls_are_refused_and_change_nothing);
    RUN(null_or_empty_removes_the_remote);
    RUN(namespaces_at_their_edges);
    RUN(timeouts_at_their_edges);
    RUN(modes_at_their_edges);
    redis_server_stop(&server);
    return h_end();
}
