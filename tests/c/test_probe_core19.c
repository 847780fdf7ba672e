/*
 * Nineteenth probe round of the local cache contract (API.md), kept as tests.
 *
 * a_child_forked_by_an_exclusive_compute_can_write: a compute of
 * backlite_cached_call_exclusive that forks (a worker process, a subprocess made by
 * fork) made children that hung for ever on their first write, through the handle
 * they inherited or one of their own: the library's thread that renews the lease
 * while the compute runs was inside its write at the fork, and the child inherited
 * the handle's writer mutex and SQLite's write lock held by a thread it does not
 * have. A fork waits for that write, as it waits for the library's other threads.
 */
#include "backlite.h"
#include "harness.h"

/* ------------------------------- a fork inside a compute whose lease is renewed */

/* Seconds a child may take for its write before it counts as hung (a guard against
 * a hang, far above what a write takes, even under valgrind). */
#define CHILD_WRITE_GUARD_S 60

typedef struct forking_compute {
    backlite_storage *s;
    const char *path;
    int forks;     /* children to make */
    int made;      /* children made */
    int failed;    /* children that did not write (or hung) */
} forking_compute;

/* In a child: stores "c" through the inherited handle (even `i`) or a handle of its
 * own (odd `i`); exits 0 when it did. */
__attribute__((noreturn)) static void write_in_child(forking_compute *f, int i) {
    alarm(CHILD_WRITE_GUARD_S);
    backlite_result rc;
    if (i % 2 == 0) {
        rc = backlite_storage_set(f->s, K("c"), K("child"), NEVER, NULL);
    } else {
        backlite_storage *own = NULL;
        rc = backlite_storage_open(f->path, NULL, &own, NULL);
        if (rc == BACKLITE_RESULT_OK) rc = backlite_storage_set(own, K("c"), K("child"), NEVER, NULL);
        backlite_storage_free(own);
    }
    h_child_exit(rc == BACKLITE_RESULT_OK ? 0 : 1);
}

/* Forks children one after another while the lease of its key is renewed (every
 * millisecond: see the lease length below), each writing once; stops at the first
 * child that fails. */
static int32_t fork_writers(void *user_data, backlite_sink *sink) {
    forking_compute *f = user_data;
    for (int i = 0; i < f->forks && f->failed == 0; i++) {
        fflush(NULL);
        pid_t pid = fork();
        if (pid < 0) return 1;
        if (pid == 0) write_in_child(f, i);
        f->made++;
        if (CHILD_EXIT_CODE(pid) != 0) {
            fprintf(stderr, "  # child %d of %d did not write (%s handle)\n", i + 1, f->forks,
                    i % 2 == 0 ? "inherited" : "its own");
            f->failed++;
        }
    }
    return backlite_sink_write(sink, K("value"));
}

static void a_child_forked_by_an_exclusive_compute_can_write(void) {
    const char *path = tmp_path("forking-compute.db");
    backlite_options *o = backlite_options_new();
    REQUIRE(o != NULL);
    /* renewed every third of it: 1 ms, so that forks often meet a renewal */
    CHECK_OK(backlite_options_set_lease_ms(o, 3));
    backlite_storage *s = OPEN(path, o);
    backlite_options_free(o);
    REQUIRE(s != NULL);
    forking_compute f = {s, path, h_under_valgrind() ? 40 : 150, 0, 0};
    backlite_buf b = {NULL, 0};
    CHECK_OK(backlite_cached_call_exclusive(s, K("k"), fork_writers, &f, NEVER, 0, &b, &err));
    CHECK_BUF_STR(b, "value");
    backlite_buf_free(&b);
    CHECK_EQ(f.failed, 0);
    CHECK_EQ(f.made, f.forks);
    GET_EQ(s, "c", "child");
    GET_EQ(s, "k", "value");
    backlite_storage_free(s);
}

int main(void) {
    h_begin();
    RUN(a_child_forked_by_an_exclusive_compute_can_write);
    return h_end();
}
