/*
 * Values kept in files (issue 16), fourteenth probe round: a set_many writes the files of
 * its large values before it takes the file's write lock, as a set and a fulfil do
 * (README: "a set writes the file completely before its row commits, and before it takes
 * the write lock, so other writers wait only for the row"), and keeps each locked until
 * its row commits. It wrote them inside its write transaction, each unlocked once
 * written: while a batch of large values was written every other writer of the file, in
 * every process, waited for all of its files and failed BUSY after its busy timeout, and
 * a check meanwhile counted the batch's files written so far as orphans.
 */
#include "backlite.h"
#include "harness.h"
#include "value_write_stop.h"

#define THRESHOLD 4096
#define LARGE (3 * 256 * 1024 + 17)

static void pattern(uint8_t *v, size_t n, uint8_t seed) {
    for (size_t i = 0; i < n; i++) v[i] = (uint8_t)(i * 131 + seed);
}

/* The file that the write syscall the stopped child `pid` is entering writes to. */
static void write_target(pid_t pid, char *target, size_t cap) {
    struct __ptrace_syscall_info info;
    memset(&info, 0, sizeof info);
    REQUIRE(ptrace(PTRACE_GET_SYSCALL_INFO, pid, sizeof info, &info) > 0);
    char link[64];
    snprintf(link, sizeof link, "/proc/%d/fd/%ld", (int)pid, (long)info.entry.args[0]);
    ssize_t n = readlink(link, target, cap - 1);
    REQUIRE(n > 0);
    target[n] = '\0';
}

/* Forks a child that sets a batch of a small value and two values kept in files, and
 * stops it at its first write to the second value file (the first one is whole by
 * then). `*child` gets its pid, 0 when ptrace is refused here, or -1 on a failure. */
static void batch_stopped_in_its_second_file(const char *path, const uint8_t *big, size_t len, pid_t *child) {
    *child = -1;
    fflush(NULL);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        backlite_storage *c = OPEN_SET(path, .file_threshold = THRESHOLD, .busy_timeout_ms = 30000);
        if (c == NULL) h_child_exit(3);
        backlite_entry entries[] = {
            {(const uint8_t *)"a", 1, (const uint8_t *)"s", 1, NEVER},
            {(const uint8_t *)"big1", 4, big, len, NEVER},
            {(const uint8_t *)"big2", 4, big + 1, len - 1, NEVER},
        };
        if (ptrace(PTRACE_TRACEME, 0, 0, 0) != 0) h_child_exit(4);
        raise(SIGSTOP);
        backlite_error *e = NULL;
        if (backlite_storage_set_many(c, entries, 3, &e) != BACKLITE_RESULT_OK) h_child_exit(6);
        backlite_storage_free(c);
        h_child_exit(0);
    }
    int status = 0;
    REQUIRE(waitpid(pid, &status, 0) == pid);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 4) {
        *child = 0;
        return;
    }
    REQUIRE(WIFSTOPPED(status));
    bool stopped = run_to_syscall(pid, is_value_write, (void *)path);
    REQUIRE(stopped);
    char first[PATH_MAX + 1], now[PATH_MAX + 1];
    write_target(pid, first, sizeof first);
    do {
        stopped = run_to_syscall(pid, is_value_write, (void *)path);
        REQUIRE(stopped);
        write_target(pid, now, sizeof now);
    } while (strcmp(now, first) == 0);
    *child = pid;
}

static void finish(pid_t pid) {
    int status = 0;
    REQUIRE(ptrace(PTRACE_DETACH, pid, 0, 0) == 0);
    REQUIRE(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* The batch's values read back whole, beside `others` entries of one byte. */
static void the_batch_reads_back(backlite_storage *s, const char *path, const uint8_t *big, size_t len,
                                 uint64_t others) {
    backlite_buf b = {0};
    CHECK_OK(backlite_storage_get(s, K("big1"), &b, NULL, &err));
    CHECK(b.len == len && memcmp(b.data, big, len) == 0);
    backlite_buf_free(&b);
    CHECK_OK(backlite_storage_get(s, K("big2"), &b, NULL, &err));
    CHECK(b.len == len - 1 && memcmp(b.data, big + 1, len - 1) == 0);
    backlite_buf_free(&b);
    backlite_stats st = STATS(s);
    CHECK_EQ(st.count, 3 + others);
    CHECK_EQ(st.total_size, 1 + len + len - 1 + others);
    CHECK_EQ(value_files(path), 2);
    backlite_check_report rep;
    CHECK_OK(backlite_storage_check(s, 0, &rep, &err));
    CHECK_EQ(rep.healthy, 1);
    CHECK_EQ(rep.orphan_values, 0);
}

static uint8_t big[LARGE];

/* While a batch writes its second large value's file, another writer's set with a busy
 * timeout of 100 ms is OK: the batch holds no write lock while it writes its files. */
static void a_batch_writes_its_files_before_it_takes_the_write_lock(void) {
    const char *path = tmp_path("many.db");
    backlite_storage *s = OPEN_SET(path, .file_threshold = THRESHOLD, .busy_timeout_ms = 100);
    REQUIRE(s != NULL);
    pattern(big, sizeof big, 5);
    pid_t pid;
    batch_stopped_in_its_second_file(path, big, sizeof big, &pid);
    if (pid < 0) {
        backlite_storage_free(s);
        return;
    }
    if (pid == 0) {
        backlite_storage_free(s);
        SKIP("ptrace is refused here");
    }
    CHECK_OK(backlite_storage_set(s, K("small"), (const uint8_t *)"x", 1, NEVER, &err));
    finish(pid);
    the_batch_reads_back(s, path, big, sizeof big, 1);
    backlite_storage_free(s);
}

/* While a batch writes its second large value's file, a check (without repair) counts
 * no orphan: the first file, whole and named by no row yet, is the batch's, locked. */
static void a_check_beside_a_batch_counts_none_of_its_files_as_orphans(void) {
    const char *path = tmp_path("check.db");
    backlite_storage *s = OPEN_SET(path, .file_threshold = THRESHOLD, .busy_timeout_ms = 100);
    REQUIRE(s != NULL);
    pattern(big, sizeof big, 9);
    pid_t pid;
    batch_stopped_in_its_second_file(path, big, sizeof big, &pid);
    if (pid < 0) {
        backlite_storage_free(s);
        return;
    }
    if (pid == 0) {
        backlite_storage_free(s);
        SKIP("ptrace is refused here");
    }
    backlite_check_report rep;
    CHECK_OK(backlite_storage_check(s, 0, &rep, &err));
    CHECK_EQ(rep.orphan_values, 0);
    CHECK_EQ(rep.healthy, 1);
    finish(pid);
    the_batch_reads_back(s, path, big, sizeof big, 0);
    backlite_storage_free(s);
}

int main(void) {
    h_begin();
    RUN(a_batch_writes_its_files_before_it_takes_the_write_lock);
    RUN(a_check_beside_a_batch_counts_none_of_its_files_as_orphans);
    return h_end();
}
