/*
 * test_remote_cluster.c: the remote tier through the C API on a 3-master Redis Cluster
 * this test makes itself (redis-cli --cluster create): keys on every master, read-
 * through in another process with its own file, clear on every master, and a master
 * killed: every call still answers locally, never a wrong value, errors counted.
 */
#include "harness.h"
#include "redis_server.h"

#define KEYS 120

static redis_cluster cluster;

static backlite_options *cluster_options(void) {
    backlite_options *o = backlite_options_new();
    CHECK_EQ(backlite_options_set_remote(o, cluster.url), BACKLITE_RESULT_OK);
    CHECK_EQ(backlite_options_set_remote_timeout_ms(o, 1000), BACKLITE_RESULT_OK);
    return o;
}

static backlite_storage *open_file(const char *name, const backlite_options *o) {
    backlite_storage *s = NULL;
    backlite_error *e = NULL;
    if (backlite_storage_open(tmp_path(name), o, &s, &e) != BACKLITE_RESULT_OK) {
        fprintf(stderr, "open %s: %s\n", name, e ? backlite_error_message(e) : "?");
        backlite_error_free(e);
        exit(1);
    }
    return s;
}

static void key_of(int i, char *out, size_t cap) { snprintf(out, cap, "key %d", i); }
static void value_of(int i, char *out, size_t cap) { snprintf(out, cap, "value of key %d", i); }

static long dbsize(int node) {
    char line[64];
    return atol(redis_cli(cluster.nodes[node].port, "DBSIZE", line, sizeof line));
}

static backlite_remote_stats stats_of(backlite_storage *s) {
    backlite_remote_stats st;
    memset(&st, 0, sizeof st);
    CHECK_OK(backlite_storage_remote_stats(s, &st, &err));
    return st;
}

/* Every key read from `s` is its own value or missing; returns how many were found. */
static int check_values(backlite_storage *s) {
    int found = 0;
    for (int i = 0; i < KEYS; i++) {
        char k[32], v[64];
        key_of(i, k, sizeof k);
        value_of(i, v, sizeof v);
        backlite_buf buf = {0};
        backlite_result rc = backlite_storage_get(s, K(k), &buf, NULL, NULL);
        if (rc == BACKLITE_RESULT_OK) {
            CHECK(buf.len == strlen(v) && memcmp(buf.data, v, buf.len) == 0);
            found++;
        } else {
            CHECK_EQ(rc, BACKLITE_RESULT_NOT_FOUND);
        }
        backlite_buf_free(&buf);
    }
    return found;
}

static void keys_on_every_master_are_read_by_another_process(void) {
    backlite_options *o = cluster_options();
    fflush(NULL);
    pid_t child = fork();
    if (child == 0) { /* machine one: its own file */
        backlite_storage *s = NULL;
        if (backlite_storage_open(tmp_path("one.db"), o, &s, NULL) != BACKLITE_RESULT_OK) _exit(2);
        for (int i = 0; i < KEYS; i++) {
            char k[32], v[64];
            key_of(i, k, sizeof k);
            value_of(i, v, sizeof v);
            if (backlite_storage_set(s, K(k), K(v), BACKLITE_EXPIRATION_NEVER, NULL) != 0) _exit(3);
        }
        backlite_storage_free(s);
        backlite_options_free(o);
        _exit(0);
    }
    int status = -1;
    waitpid(child, &status, 0);
    REQUIRE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    for (int n = 0; n < REDIS_CLUSTER_MASTERS; n++) CHECK(dbsize(n) > 0);
    CHECK_EQ(dbsize(0) + dbsize(1) + dbsize(2), KEYS);

    backlite_storage *two = open_file("two.db", o);
    CHECK_EQ(check_values(two), KEYS);
    backlite_remote_stats st = stats_of(two);
    CHECK_EQ(st.hits, KEYS);
    CHECK_EQ(st.errors, 0);
    CHECK_EQ(st.connected, 1);
    backlite_storage_free(two);
    backlite_options_free(o);
}

static void clear_hides_everything_and_reclaims_every_master(void) {
    backlite_options *o = cluster_options();
    backlite_storage *early = open_file("early.db", o); /* knows the old generation */
    backlite_storage *s = open_file("clearer.db", o);
    CHECK(dbsize(0) + dbsize(1) + dbsize(2) >= KEYS);
    CHECK_OK(backlite_storage_clear(s, &err));
    CHECK_EQ(check_values(early), 0);
    CHECK_EQ(dbsize(0) + dbsize(1) + dbsize(2), 1); /* the generation key */
    CHECK_EQ(stats_of(early).errors, 0);
    backlite_storage_free(s);
    backlite_storage_free(early);
    backlite_options_free(o);
}

static void a_killed_master_never_fails_a_call(void) {
    backlite_options *o = cluster_options();
    backlite_storage *a = open_file("a.db", o);
    for (int i = 0; i < KEYS; i++) {
        char k[32], v[64];
        key_of(i, k, sizeof k);
        value_of(i, v, sizeof v);
        CHECK_OK(backlite_storage_set(a, K(k), K(v), BACKLITE_EXPIRATION_NEVER, &err));
    }
    redis_server_stop(&cluster.nodes[2]);
    /* Calls go on locally until the failure is seen and counted. */
    for (int round = 0; stats_of(a).errors == 0; round++) {
        REQUIRE(round < 2000);
        for (int i = 0; i < KEYS; i++) {
            char k[32], v[64];
            key_of(i, k, sizeof k);
            value_of(i, v, sizeof v);
            CHECK_OK(backlite_storage_set(a, K(k), K(v), BACKLITE_EXPIRATION_NEVER, &err));
        }
        CHECK_EQ(check_values(a), KEYS);
    }
    /* A new machine gets right values or misses. */
    backlite_storage *b = open_file("b.db", o);
    CHECK(check_values(b) < KEYS);
    backlite_storage_free(b);
    backlite_storage_free(a);
    backlite_options_free(o);
}

int main(void) {
    h_begin();
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", tmp_path("cluster"));
    mkdir(dir, 0700);
    if (redis_cluster_start(&cluster, dir) != 0) {
        fprintf(stderr, "a Redis Cluster could not be made (apt-get install redis-server redis-tools)\n");
        CHECK(0);
        return h_end();
    }
    RUN(keys_on_every_master_are_read_by_another_process);
    RUN(clear_hides_everything_and_reclaims_every_master);
    RUN(a_killed_master_never_fails_a_call);
    redis_cluster_stop(&cluster);
    return h_end();
}
