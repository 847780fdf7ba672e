/*
 * Eighth probe round of the local cache contract (API.md), kept as tests.
 *
 * A process that reads and then exits without freeing its handle (a plain exit(), a
 * return from main: common in C programs and tools) made accesses API.md counts ("an
 * access is a hit by get"), and the eviction order of every process must see them.
 */
#include <sys/wait.h>

#include "backlite.h"
#include "harness.h"

#define LRU BACKLITE_EVICTION_POLICY_LEAST_RECENTLY_USED
#define LFU BACKLITE_EVICTION_POLICY_LEAST_FREQUENTLY_USED
#define MRU BACKLITE_EVICTION_POLICY_MOST_RECENTLY_USED

/* The handle a child leaves without freeing it: still reachable at its exit, for the
 * leak checkers (what it left is the point of the test). */
static backlite_storage *volatile left_open;

static backlite_lifetime_stats lifetime_of(backlite_storage *s) {
    backlite_lifetime_stats l;
    memset(&l, 0, sizeof l);
    CHECK_OK(backlite_storage_lifetime_stats(s, &l, &err));
    return l;
}

/* A child opens the file, reads "a" and leaves with exit(0), its handle never freed;
 * then the parent's set of a fourth value evicts by the order that read made:
 * LRU "b" (a was read last), LFU "b" (a has the only hit; b is the least recently used
 * of the others), MRU "a" (read after every set). Before, the hit died with the child:
 * LRU and LFU evicted "a", MRU "c", and the file's lifetime hits missed it. */
static void a_process_that_exits_without_freeing_its_handle_keeps_its_hits(void) {
    const backlite_eviction_policy policies[3] = {LRU, LFU, MRU};
    const char *victims[3] = {"b", "b", "a"};
    for (int p = 0; p < 3; p++) {
        char name[32];
        snprintf(name, sizeof name, "exit-%d.db", p);
        const char *path = tmp_path(name);
        backlite_storage *s = OPEN_WITH(path, 30, policies[p]);
        REQUIRE(s != NULL);
        SET_N(s, "a", 10);
        SET_N(s, "b", 10);
        SET_N(s, "c", 10);
        fflush(NULL);
        pid_t pid = fork();
        REQUIRE(pid >= 0);
        if (pid == 0) {
            backlite_storage *c = NULL;
            if (backlite_storage_open(path, NULL, &c, NULL) != BACKLITE_RESULT_OK) _exit(2);
            left_open = c;
            backlite_buf v = {NULL, 0};
            if (backlite_storage_get(c, K("a"), &v, NULL, NULL) != BACKLITE_RESULT_OK) _exit(3);
            backlite_buf_free(&v);
            exit(0); /* the handle is never freed */
        }
        CHECK_EQ(CHILD_EXIT_CODE(pid), 0);
        CHECK_EQ(lifetime_of(s).hits, 1);
        SET_N(s, "d", 10);
        const char *keys[4] = {"a", "b", "c", "d"};
        for (int k = 0; k < 4; k++) {
            bool gone = strcmp(keys[k], victims[p]) == 0;
            if (HAS(s, keys[k]) == gone)
                h_fail_(__FILE__, __LINE__, "policy %d: \"%s\" %s", (int)policies[p], keys[k],
                        gone ? "kept, though it is the victim" : "evicted, though not the victim");
        }
        backlite_storage_free(s);
    }
}

/* A child forked with the parent's hits buffered, that leaves with exit(0), writes none
 * of them: they are the parent's to write, once. */
static void a_child_that_exits_writes_none_of_its_parents_hits(void) {
    const char *path = tmp_path("exit-parent.db");
    backlite_storage *s = OPEN(path, NULL);
    REQUIRE(s != NULL);
    SET(s, "k", "v");
    GET_EQ(s, "k", "v");
    GET_EQ(s, "k", "v");
    GET_MISSING(s, "none");
    fflush(NULL);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) exit(0);
    CHECK_EQ(CHILD_EXIT_CODE(pid), 0);
    backlite_storage_free(s);
    s = OPEN(path, NULL);
    REQUIRE(s != NULL);
    backlite_lifetime_stats l = lifetime_of(s);
    CHECK_EQ(l.hits, 2);
    CHECK_EQ(l.misses, 1);
    backlite_storage_free(s);
}

/* A child that reads through the handle it inherited, then exits without freeing it,
 * writes its own hit (once) and none of the parent's. */
static void a_child_reading_through_an_inherited_handle_keeps_its_own_hit(void) {
    const char *path = tmp_path("exit-inherited.db");
    backlite_storage *s = OPEN(path, NULL);
    REQUIRE(s != NULL);
    SET(s, "k", "v");
    GET_EQ(s, "k", "v"); /* the parent's, buffered */
    fflush(NULL);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        backlite_buf v = {NULL, 0};
        if (backlite_storage_get(s, K("k"), &v, NULL, NULL) != BACKLITE_RESULT_OK) _exit(3);
        backlite_buf_free(&v);
        exit(0);
    }
    CHECK_EQ(CHILD_EXIT_CODE(pid), 0);
    CHECK_EQ(lifetime_of(s).hits, 2);
    backlite_storage_free(s);
}

int main(void) {
    h_begin();
    RUN(a_process_that_exits_without_freeing_its_handle_keeps_its_hits);
    RUN(a_child_that_exits_writes_none_of_its_parents_hits);
    RUN(a_child_reading_through_an_inherited_handle_keeps_its_own_hit);
    return h_end();
}
