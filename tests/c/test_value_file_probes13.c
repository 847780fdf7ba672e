/*
 * Values kept in files (issue 16), thirteenth probe round: a lease fulfilled with a
 * value kept in a file writes that file before it takes the file's write lock, as a set
 * does (README: "a set writes the file completely before its row commits, and before it
 * takes the write lock, so other writers wait only for the row"). It wrote it inside its
 * write transaction, so while a memoiser (cached_call_exclusive, lease_step, the
 * bindings' async memoisers) stored a value of gigabytes, every other writer of the
 * file, in every process, waited for the whole file, and failed BUSY after its busy
 * timeout.
 */
#include "backlite.h"
#include "harness.h"
#include "value_write_stop.h"

#define THRESHOLD 4096
#define LARGE (3 * 256 * 1024 + 17)

static void pattern(uint8_t *v, size_t n, uint8_t seed) {
    for (size_t i = 0; i < n; i++) v[i] = (uint8_t)(i * 131 + seed);
}

/* A child takes the lease of "big" and fulfils it with a value kept in a file; it is
 * stopped at its first write to that file. Meanwhile this process sets a small value
 * with a busy timeout of 100 ms: OK, since the fulfil holds no write lock while it
 * writes its file. Then the fulfil ends, and both values read back whole. */
static void a_fulfil_writes_its_file_before_it_takes_the_write_lock(void) {
    const char *path = tmp_path("fulfil.db");
    backlite_storage *s = OPEN_SET(path, .file_threshold = THRESHOLD, .busy_timeout_ms = 100);
    REQUIRE(s != NULL);
    static uint8_t big[LARGE];
    pattern(big, sizeof big, 5);
    fflush(NULL);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        backlite_storage *c = OPEN_SET(path, .file_threshold = THRESHOLD, .busy_timeout_ms = 30000);
        if (c == NULL) h_child_exit(3);
        backlite_buf hit = {0};
        backlite_lease *lease = NULL;
        backlite_error *e = NULL;
        if (backlite_lease_try_acquire(c, K("big"), 600000, &hit, &lease, &e) != BACKLITE_RESULT_NOT_FOUND)
            h_child_exit(5);
        if (ptrace(PTRACE_TRACEME, 0, 0, 0) != 0) h_child_exit(4);
        raise(SIGSTOP);
        if (backlite_lease_fulfill(lease, big, sizeof big, NEVER, &e) != BACKLITE_RESULT_OK) h_child_exit(6);
        backlite_storage_free(c);
        h_child_exit(0);
    }
    int status = 0;
    REQUIRE(waitpid(pid, &status, 0) == pid);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 4) {
        backlite_storage_free(s);
        SKIP("ptrace is refused here");
    }
    REQUIRE(WIFSTOPPED(status));
    bool stopped = run_to_syscall(pid, is_value_write, (void *)path);
    REQUIRE(stopped);
    /* The fulfil's file is being written: another writer is not held up by it. */
    CHECK_OK(backlite_storage_set(s, K("small"), (const uint8_t *)"x", 1, NEVER, &err));
    REQUIRE(ptrace(PTRACE_DETACH, pid, 0, 0) == 0);
    REQUIRE(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    backlite_buf b = {0};
    CHECK_OK(backlite_storage_get(s, K("big"), &b, NULL, &err));
    CHECK(b.len == sizeof big && memcmp(b.data, big, sizeof big) == 0);
    backlite_buf_free(&b);
    CHECK_OK(backlite_storage_get(s, K("small"), &b, NULL, &err));
    CHECK(b.len == 1 && b.data[0] == 'x');
    backlite_buf_free(&b);
    backlite_stats st = STATS(s);
    CHECK_EQ(st.count, 2);
    CHECK_EQ(st.total_size, sizeof big + 1);
    CHECK_EQ(value_files(path), 1);
    backlite_check_report rep;
    CHECK_OK(backlite_storage_check(s, 0, &rep, &err));
    CHECK_EQ(rep.healthy, 1);
    backlite_storage_free(s);
}

int main(void) {
    h_begin();
    RUN(a_fulfil_writes_its_file_before_it_takes_the_write_lock);
    return h_end();
}
