/*
 * test_remote_cluster.c: the remote tier through the C API on a 3-master Redis Cluster
 * this test makes itself (redis-cli --cluster create): keys on every master, read-
 * through in another process with its own file, clear on every master, one slot in
 * trouble (backed off alone), and a master killed: every call still answers locally,
 * never a wrong value, errors counted.
 */
#include "harness.h"
#include "redis_server.h"
#include "remote_calls.h"

#define KEYS 120

static redis_cluster cluster;

static backlite_options *cluster_options(void) { return remote_at(cluster.url, 1000); }

static void key_of(int i, char *out, size_t cap) { snprintf(out, cap, "key %d", i); }
static void value_of(int i, char *out, size_t cap) { snprintf(out, cap, "value of key %d", i); }

static long dbsize(int node) {
    char line[64];
    return atol(redis_cli(cluster.nodes[node].port, "DBSIZE", line, sizeof line));
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
    REQUIRE(CHILD_EXIT_CODE(child) == 0);
    for (int n = 0; n < REDIS_CLUSTER_MASTERS; n++) CHECK(dbsize(n) > 0);
    CHECK_EQ(dbsize(0) + dbsize(1) + dbsize(2), KEYS + 1); /* and the generation key */

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

/* ---- one slot in trouble backs off that slot only ---- */

static long keyslot(const char *key) {
    char cmd[256], out[64];
    snprintf(cmd, sizeof cmd, "CLUSTER KEYSLOT '%s'", key);
    return atol(redis_cli(cluster.nodes[0].port, cmd, out, sizeof out));
}

/* The remote key of `key`'s value in the live generation (no version tag). */
static void remote_key(const char *key, char *out, size_t cap) {
    char gen[64];
    redis_cli(cluster.nodes[0].port, "-c GET backlite::gen", gen, sizeof gen);
    snprintf(out, cap, "backlite::d{%llx:%s}", strtoull(gen, NULL, 10), key);
}

/* The server that answers `redis_key` itself (the others send MOVED). */
static int owner_of(const char *redis_key) {
    char cmd[256], out[256];
    snprintf(cmd, sizeof cmd, "GET '%s'", redis_key);
    for (int n = 0; n < REDIS_CLUSTER_MASTERS; n++)
        if (!strstr(redis_cli(cluster.nodes[n].port, cmd, out, sizeof out), "MOVED")) return n;
    return -1;
}

static void set_slot_owner(int on, long slot, int owner) {
    char id[128], cmd[256], out[64];
    redis_cli(cluster.nodes[owner].port, "CLUSTER MYID", id, sizeof id);
    snprintf(cmd, sizeof cmd, "CLUSTER SETSLOT %ld NODE %s", slot, id);
    CHECK(strcmp(redis_cli(cluster.nodes[on].port, cmd, out, sizeof out), "OK") == 0);
}

/* One slot in trouble (its owner sends its keys to another server, which sends them
 * back: MOVED on every call, as during a move) backs off that slot only: the other keys
 * are still written and read, and the slot is used again once it is well. */
static void one_slot_in_trouble_backs_off_that_slot_only(void) {
    backlite_options *o = cluster_options();
    backlite_options *ro = cluster_options();
    CHECK_EQ(backlite_options_set_remote_mode(ro, BACKLITE_REMOTE_MODE_READ_ONLY), BACKLITE_RESULT_OK);
    backlite_storage *a = open_file("slot-a.db", o);
    backlite_storage *reader = open_file("slot-reader.db", ro);
    /* A victim alone in its slot (a server gives up only an empty slot). */
    char victim[32], vkey[128];
    long slot = keyslot("backlite::gen");
    for (int n = 0; slot == keyslot("backlite::gen"); n++) {
        snprintf(victim, sizeof victim, "victim %d", n);
        remote_key(victim, vkey, sizeof vkey);
        slot = keyslot(vkey);
    }
    int owner = owner_of(vkey);
    REQUIRE(owner >= 0);
    set_slot_owner(owner, slot, (owner + 1) % REDIS_CLUSTER_MASTERS);
    CHECK_OK(backlite_storage_set(a, K(victim), K("lost"), BACKLITE_EXPIRATION_NEVER, &err));
    CHECK(stats_of(a).errors > 0);
    int elsewhere = 0;
    for (int i = 0; i < KEYS; i++) {
        char k[32], v[64], rk[128];
        key_of(i, k, sizeof k);
        value_of(i, v, sizeof v);
        remote_key(k, rk, sizeof rk);
        if (keyslot(rk) == slot) continue;
        elsewhere++;
        CHECK_OK(backlite_storage_set(a, K(k), K(v), BACKLITE_EXPIRATION_NEVER, &err));
        backlite_buf buf = {0};
        CHECK_OK(backlite_storage_get(reader, K(k), &buf, NULL, &err));
        CHECK(buf.len == strlen(v) && memcmp(buf.data, v, buf.len) == 0);
        backlite_buf_free(&buf);
    }
    CHECK(elsewhere > 0);
    /* The slot comes back: after its back-off the victim is written again. */
    set_slot_owner(owner, slot, owner);
    for (int attempt = 0;; attempt++) {
        REQUIRE(attempt < 600); /* 30 s */
        CHECK_OK(backlite_storage_set(a, K(victim), K("found"), BACKLITE_EXPIRATION_NEVER, &err));
        char name[64];
        snprintf(name, sizeof name, "slot-fresh%d.db", attempt);
        backlite_storage *fresh = open_file(name, ro);
        backlite_buf buf = {0};
        backlite_result rc = backlite_storage_get(fresh, K(victim), &buf, NULL, NULL);
        backlite_storage_free(fresh);
        if (rc == BACKLITE_RESULT_OK) {
            CHECK(buf.len == 5 && memcmp(buf.data, "found", 5) == 0);
            backlite_buf_free(&buf);
            break;
        }
        CHECK_EQ(rc, BACKLITE_RESULT_NOT_FOUND);
        struct timespec pause = {0, 50 * 1000 * 1000};
        nanosleep(&pause, NULL);
    }
    backlite_storage_free(reader);
    backlite_storage_free(a);
    backlite_options_free(ro);
    backlite_options_free(o);
}

/* A seed list whose first nodes nobody listens on still reaches the cluster through
 * the next one; one with only such nodes opens unconnected and stays local. */
static void seeds_nobody_listens_on_are_passed_over(void) {
    int dead1 = redis_free_port(), dead2 = redis_free_port();
    char url[256];
    snprintf(url, sizeof url, "redis+cluster://127.0.0.1:%d,127.0.0.1:%d,127.0.0.1:%d", dead1,
             dead2, cluster.nodes[1].port);
    backlite_options *o = remote_at(url, 1000);
    CHECK_EQ(backlite_options_set_remote_namespace(o, "seeds"), BACKLITE_RESULT_OK);
    backlite_storage *a = open_file("seeds-a.db", o), *b = open_file("seeds-b.db", o);
    SET(a, "seeded", "through the third seed");
    GET_EQ(b, "seeded", "through the third seed");
    CHECK_EQ(stats_of(b).hits, 1);
    CHECK_EQ(stats_of(a).connected, 1);
    backlite_storage_free(a);
    backlite_storage_free(b);
    backlite_options_free(o);
    snprintf(url, sizeof url, "redis+cluster://127.0.0.1:%d,127.0.0.1:%d", dead1, dead2);
    o = remote_at(url, 300);
    backlite_storage *c = open_file("seeds-c.db", o);
    CHECK_EQ(stats_of(c).connected, 0);
    SET(c, "k", "local");
    GET_EQ(c, "k", "local");
    GET_MISSING(c, "seeded");
    CHECK(stats_of(c).errors >= 1);
    backlite_storage_free(c);
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
    RUN(one_slot_in_trouble_backs_off_that_slot_only);
    RUN(seeds_nobody_listens_on_are_passed_over);
    RUN(a_killed_master_never_fails_a_call);
    redis_cluster_stop(&cluster);
    return h_end();
}
