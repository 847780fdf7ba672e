/*
 * The stop at a writer's write to a value file (syscall_stop.h): the probes that hold a
 * large set, fulfil or batch part way through a value file and try the cache from
 * outside meanwhile.
 */
#ifndef BACKLITE_TEST_VALUE_WRITE_STOP_H
#define BACKLITE_TEST_VALUE_WRITE_STOP_H

#include "syscall_stop.h"
#include "value_folder.h"

#include <limits.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Whether descriptor `fd` of process `pid` is a file in the folder of values of `path`. */
static bool fd_in_folder(pid_t pid, long fd, const char *path) {
    char link[64], target[PATH_MAX + 1];
    snprintf(link, sizeof link, "/proc/%d/fd/%ld", (int)pid, fd);
    ssize_t n = readlink(link, target, sizeof target - 1);
    if (n < 0) return false;
    target[n] = '\0';
    const char *folder = folder_of(path);
    return strncmp(target, folder, strlen(folder)) == 0 && target[strlen(folder)] == '/';
}

/* Whether the system call `info` is a write to a file in the folder of values of the
 * cache at `ctx` (a path). */
static bool is_value_write(pid_t pid, const struct __ptrace_syscall_info *info, void *ctx) {
    long nr = (long)info->entry.nr;
    return (nr == SYS_write || nr == SYS_writev || nr == SYS_pwrite64 || nr == SYS_pwritev) &&
           fd_in_folder(pid, (long)info->entry.args[0], ctx);
}

#endif
