/*
 * A handle opened before fork() and used in the child: the child gets connections of
 * its own on first use (the inherited ones are left alone), so neither side corrupts
 * the other. Children leave with _exit.
 */
#include <sys/wait.h>

#include "backlite.h"
#include "harness.h"

static void a_child_may_use_a_handle_opened_before_fork(void) {
    backlite_storage *s = OPEN(tmp_path("fork.db"), NULL);
    REQUIRE(s != NULL);
    SET(s, "parent", "before fork");
    GET_EQ(s, "parent", "before fork"); /* a buffered hit the child must not replay */
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        int before = atomic_load(&h_st()->failures);
        GET_EQ(s, "parent", "before fork");
        for (int i = 0; i < 50; i++) SET(s, "child", "written by the child");
        backlite_storage_free(s);
        _exit(atomic_load(&h_st()->failures) == before ? 0 : 1);
    }
    /* The parent keeps working while the child does. */
    for (int i = 0; i < 50; i++) SET(s, "parent2", "written by the parent");
    CHECK_EQ(CHILD_EXIT_CODE(pid), 0);
    GET_EQ(s, "child", "written by the child");
    GET_EQ(s, "parent2", "written by the parent");
    backlite_check_report report;
    CHECK_OK(backlite_storage_check(s, 0, &report, &err));
    CHECK_EQ(report.healthy, 1);
    CHECK_EQ(report.actual_count, 3);
    backlite_storage_free(s);
}

static void a_forked_child_that_exits_leaves_the_parent_working(void) {
    const char *path = tmp_path("fork2.db");
    backlite_storage *s = OPEN(path, NULL);
    REQUIRE(s != NULL);
    SET(s, "a", "1");
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        backlite_storage_free(s); /* closing in the child must not touch the parent's files */
        _exit(0);
    }
    waitpid(pid, NULL, 0);
    SET(s, "b", "2");
    GET_EQ(s, "a", "1");
    backlite_storage_free(s);
    /* Reopened from scratch, everything is there and sound. */
    s = OPEN(path, NULL);
    REQUIRE(s != NULL);
    GET_EQ(s, "b", "2");
    backlite_check_report report;
    CHECK_OK(backlite_storage_check(s, 0, &report, &err));
    CHECK_EQ(report.healthy, 1);
    backlite_storage_free(s);
}

/* How the child of parent_hits_stay_apart is made and which handle it hits k2 on. */
typedef enum {
    NEW_HANDLE,    /* fork(), then a handle of its own */
    INHERITED,     /* fork(), the parent's handle */
    NO_ATFORK,     /* _Fork(), which runs no pthread_atfork handler; the parent's handle */
} child_kind;

/*
 * A least-frequently-used cache of k1, k2, k3 whose parent has hit k1 3 times and k3 4
 * times (buffered, not written); a child hits k2 5 times and exits. The hits are then
 * k1 3, k2 5, k3 4: a fourth key evicts k1 alone. Had the child written the parent's
 * hits too, k1 would have 6, k3 8, and k2 would go.
 */
static void parent_hits_stay_apart(const char *name, child_kind kind) {
    const char *path = tmp_path(name);
    backlite_storage *s = OPEN_WITH(path, 3, BACKLITE_EVICTION_POLICY_LEAST_FREQUENTLY_USED);
    REQUIRE(s != NULL);
    SET(s, "k1", "1");
    SET(s, "k2", "2");
    SET(s, "k3", "3");
    for (int i = 0; i < 3; i++) GET_EQ(s, "k1", "1"); /* buffered, not written */
    for (int i = 0; i < 4; i++) GET_EQ(s, "k3", "3");
    pid_t pid = kind == NO_ATFORK ? _Fork() : fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        int before = atomic_load(&h_st()->failures);
        backlite_storage *c = s;
        if (kind == NEW_HANDLE) c = OPEN_WITH(path, 3, BACKLITE_EVICTION_POLICY_LEAST_FREQUENTLY_USED);
        if (c != NULL) {
            for (int i = 0; i < 5; i++) GET_EQ(c, "k2", "2");
            backlite_storage_free(c); /* writes the child's hits, and only those */
        }
        if (c != s) backlite_storage_free(s); /* the inherited handle, unused: writes nothing */
        _exit(atomic_load(&h_st()->failures) == before ? 0 : 1);
    }
    CHECK_EQ(CHILD_EXIT_CODE(pid), 0);
    SET(s, "k4", "4");
    CHECK(!HAS(s, "k1"));
    CHECK(HAS(s, "k2"));
    CHECK(HAS(s, "k3"));
    CHECK(HAS(s, "k4"));
    backlite_storage_free(s);
}

/*
 * The parent's buffered hits are the parent's: a new handle opened in the child starts
 * with none of them, so each hit is written once (LFU counts would double otherwise).
 */
static void a_new_handle_in_a_child_does_not_write_the_parents_hits(void) {
    parent_hits_stay_apart("fork-hits.db", NEW_HANDLE);
}

/*
 * A child's first call on an inherited handle is a get: it must know it is a child
 * (the library learns of a fork from a pthread_atfork handler instead of asking the
 * kernel for the process id on every call), so it reads on connections of its own and
 * buffers its hits apart from the parent's: k1 and k3 are counted once, by the parent.
 */
static void a_child_whose_first_call_is_a_get_keeps_the_parents_hits_apart(void) {
    parent_hits_stay_apart("fork-get.db", INHERITED);
}

/*
 * The same with a child made by _Fork (POSIX 2024, glibc 2.34), which runs no
 * pthread_atfork handler (neither do a raw clone or fork system call): the library
 * must still know it is a child, or it reads on the parent's connections and writes
 * the parent's buffered hits as the child's.
 */
static void a_child_made_without_atfork_handlers_keeps_the_parents_hits_apart(void) {
    parent_hits_stay_apart("fork-nohandler.db", NO_ATFORK);
}

int main(void) {
    h_begin();
    RUN(a_child_may_use_a_handle_opened_before_fork);
    RUN(a_forked_child_that_exits_leaves_the_parent_working);
    RUN(a_new_handle_in_a_child_does_not_write_the_parents_hits);
    RUN(a_child_whose_first_call_is_a_get_keeps_the_parents_hits_apart);
    RUN(a_child_made_without_atfork_handlers_keeps_the_parents_hits_apart);
    return h_end();
}
