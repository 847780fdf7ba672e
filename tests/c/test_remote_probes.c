/*
 * test_remote_probes.c: the remote tier against real redis-servers doing what servers
 * do in production: closing idle connections, restarting on their port. Each case
 * starts from what a probe found broken.
 */
#include "harness.h"
#include "redis_server.h"
#include "remote_calls.h"

#include <signal.h>

static redis_server server;
static char server_dir[PATH_MAX];

/* A server that closes the connections lying idle in a handle's pool (`CLIENT KILL`,
 * its idle `timeout`, a restart on the same port) is not down: the next call sends its
 * request again on a new connection, within its timeout, instead of failing, counting an
 * error, backing the remote off and leaving the key unsynced (the set below was lost and
 * the other machine's get missed, before). */
static void check_connections_closed_by_the_server_cost_no_call(redis_server *rs, const char *dir,
                                                                 int restart) {
    backlite_options *o = remote_at(rs->url, 10000);
    backlite_storage *a = open_file("closed-a.db", o), *b = open_file("closed-b.db", o);
    SET(a, "before", "v1");
    GET_EQ(b, "before", "v1"); /* both handles have a connection in their pool */
    if (restart) {
        int port = rs->port;
        redis_server_stop(rs);
        rs->port = port;
        REQUIRE(redis_server_try_start(rs, dir, NULL, 0) == 0);
    } else {
        char out[64];
        CHECK_STR_EQ(redis_cli(rs->port, "CLIENT KILL TYPE normal", out, sizeof out), "2");
    }
    SET(a, "after", "v2");
    GET_EQ(b, "after", "v2");
    backlite_remote_stats sa = stats_of(a), sb = stats_of(b);
    CHECK_EQ(sa.errors, 0);
    CHECK_EQ(sa.writes, 2);
    CHECK_EQ(sa.connected, 1);
    CHECK_EQ(sb.errors, 0);
    CHECK_EQ(sb.hits, 2);
    CHECK_EQ(sb.connected, 1);
    backlite_storage_free(b);
    backlite_storage_free(a);
    backlite_options_free(o);
}

static void connections_killed_by_the_server_cost_no_call(void) {
    check_connections_closed_by_the_server_cost_no_call(&server, server_dir, 0);
}

static void a_server_restarted_on_its_port_costs_no_call(void) {
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", tmp_path("restarted"));
    mkdir(dir, 0700);
    redis_server rs;
    REQUIRE(redis_server_start(&rs, dir, NULL) == 0);
    check_connections_closed_by_the_server_cost_no_call(&rs, dir, 1);
    redis_server_stop(&rs);
}

int main(void) {
    quiet_stopped_children();
    signal(SIGPIPE, SIG_IGN);
    h_begin();
    if (start_test_server(&server, server_dir) != 0) {
        CHECK(0);
        return h_end();
    }
    RUN(connections_killed_by_the_server_cost_no_call);
    RUN(a_server_restarted_on_its_port_costs_no_call);
    redis_server_stop(&server);
    return h_end();
}
