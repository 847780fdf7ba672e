/*
 * A set_many of many large values in a child, stopped (ptrace) at its first write to the
 * file of one of them: the probes that look at the cache from outside while a batch is
 * part way through writing its files.
 */
#ifndef BACKLITE_TEST_BATCH_WRITE_STOP_H
#define BACKLITE_TEST_BATCH_WRITE_STOP_H

#include "backlite.h"
#include "harness.h"
#include "value_write_stop.h"

/* The key of the batch's entry `i`. */
static void batch_key(int i, char *key, size_t cap) { snprintf(key, cap, "big%d", i); }

/* The file that the write syscall the stopped child `pid` is entering writes to. */
static void batch_write_target(pid_t pid, char *target, size_t cap) {
    struct __ptrace_syscall_info info;
    memset(&info, 0, sizeof info);
    REQUIRE(ptrace(PTRACE_GET_SYSCALL_INFO, pid, sizeof info, &info) > 0);
    char link[64];
    snprintf(link, sizeof link, "/proc/%d/fd/%ld", (int)pid, (long)info.entry.args[0]);
    ssize_t n = readlink(link, target, cap - 1);
    REQUIRE(n > 0);
    target[n] = '\0';
}

/* Forks a child that opens the cache at `path` with `threshold` and sets a batch of
 * `count` (at most 256) values of `len` bytes each, value `i` at `values + i * len`
 * under batch_key(i), and stops it at its first write to the file of its `stop_at`th
 * large value (from 1): the files before it are whole. `*child` gets its pid, 0 when
 * ptrace is refused here, or -1 on a failure. */
static void batch_stopped_at_file(const char *path, int64_t threshold, const uint8_t *values, size_t len,
                                  int count, int stop_at, pid_t *child) {
    *child = -1;
    REQUIRE(count <= 256);
    fflush(NULL);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        backlite_storage *c = OPEN_SET(path, .file_threshold = threshold, .busy_timeout_ms = 30000);
        if (c == NULL) h_child_exit(3);
        static backlite_entry entries[256];
        static char keys[256][16];
        for (int i = 0; i < count; i++) {
            batch_key(i, keys[i], sizeof keys[i]);
            entries[i] = (backlite_entry){(const uint8_t *)keys[i], strlen(keys[i]), values + (size_t)i * len, len,
                                          NEVER};
        }
        if (ptrace(PTRACE_TRACEME, 0, 0, 0) != 0) h_child_exit(4);
        raise(SIGSTOP);
        backlite_error *e = NULL;
        if (backlite_storage_set_many(c, entries, (size_t)count, &e) != BACKLITE_RESULT_OK) h_child_exit(6);
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
    /* Each file is written in one call or a few, one file after the other. */
    static char seen[PATH_MAX + 1], now[PATH_MAX + 1];
    seen[0] = '\0';
    for (int files = 0; files < stop_at;) {
        bool stopped = run_to_syscall(pid, is_value_write, (void *)path);
        REQUIRE(stopped);
        batch_write_target(pid, now, sizeof now);
        if (strcmp(now, seen) != 0) {
            files++;
            memcpy(seen, now, sizeof seen);
        }
    }
    *child = pid;
}

/* Lets the stopped batch of `pid` run to its end, which must be a success. */
static void batch_finish(pid_t pid) {
    int status = 0;
    REQUIRE(ptrace(PTRACE_DETACH, pid, 0, 0) == 0);
    REQUIRE(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

#endif
