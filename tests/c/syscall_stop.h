/*
 * Stops a traced child (ptrace) as it enters the system call a test names: the probes
 * that hold a writer at one exact step of its work (its first unlink, its first write
 * to a value file) and look at the file from outside meanwhile.
 */
#ifndef BACKLITE_TEST_SYSCALL_STOP_H
#define BACKLITE_TEST_SYSCALL_STOP_H

#include <signal.h>
#include <stdbool.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/types.h>
#include <sys/wait.h>

/* Whether the system call `info` (at its entry) of process `pid` is the one to stop at. */
typedef bool (*syscall_wanted)(pid_t pid, const struct __ptrace_syscall_info *info, void *ctx);

/* Runs the traced child `pid` (stopped) until it enters a system call `wanted` says yes
 * to, and leaves it stopped there: false if it exited first or tracing failed. Signals
 * the child receives meanwhile are passed on. */
static bool run_to_syscall(pid_t pid, syscall_wanted wanted, void *ctx) {
    if (ptrace(PTRACE_SETOPTIONS, pid, 0, PTRACE_O_TRACESYSGOOD | PTRACE_O_EXITKILL) != 0) return false;
    int sig = 0;
    for (;;) {
        if (ptrace(PTRACE_SYSCALL, pid, 0, sig) != 0) return false;
        int status = 0;
        if (waitpid(pid, &status, 0) != pid || WIFEXITED(status) || WIFSIGNALED(status)) return false;
        sig = 0;
        if (!WIFSTOPPED(status)) continue;
        if (WSTOPSIG(status) != (SIGTRAP | 0x80)) {
            sig = WSTOPSIG(status); /* passed on */
            continue;
        }
        struct __ptrace_syscall_info info;
        memset(&info, 0, sizeof info);
        if (ptrace(PTRACE_GET_SYSCALL_INFO, pid, sizeof info, &info) <= 0) return false;
        if (info.op == PTRACE_SYSCALL_INFO_ENTRY && wanted(pid, &info, ctx)) return true;
    }
}

#endif
