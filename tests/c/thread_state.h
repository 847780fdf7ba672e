/*
 * thread_state.h: where a thread of the test process is blocked, as
 * /proc/self/task/<tid>/syscall shows it, so that a test orders its steps by a
 * thread's state (a set waiting for another process's write lock sleeps in SQLite's
 * busy handler; a call waiting for another thread's turn waits on a futex) instead of
 * by sleeping and hoping. Linux only; include after harness.h.
 */
#ifndef BACKLITE_TEST_THREAD_STATE_H
#define BACKLITE_TEST_THREAD_STATE_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

/* the calling thread's kernel id */
static inline pid_t thread_id(void) { return (pid_t)syscall(SYS_gettid); }

/* The system call thread `tid` of this process is blocked in; -1 while it runs (or
 * when that cannot be read). */
static inline long thread_syscall(pid_t tid) {
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/self/task/%d/syscall", (int)tid);
    FILE *f = fopen(path, "r");
    if (f == NULL) return -1;
    long nr = -1;
    if (fgets(line, sizeof line, f) != NULL && line[0] >= '0' && line[0] <= '9') nr = strtol(line, NULL, 10);
    fclose(f);
    return nr;
}

/* a sleep: SQLite's busy handler waits in usleep, std::thread::sleep in nanosleep */
static inline bool is_sleep_syscall(long nr) {
#ifdef SYS_nanosleep
    if (nr == SYS_nanosleep) return true;
#endif
    return nr == SYS_clock_nanosleep;
}

/* a wait on a futex: a mutex or condition variable of another thread */
static inline bool is_futex_syscall(long nr) {
#ifdef SYS_futex_waitv
    if (nr == SYS_futex_waitv) return true;
#endif
    return nr == SYS_futex;
}

/* Polls until thread `tid` is blocked in a system call `is` says yes to (the harness's
 * alarm ends a test that never gets there); 1 ms between looks. */
static inline void wait_until_thread_in(pid_t tid, bool (*is)(long nr)) {
    while (!is(thread_syscall(tid))) h_sleep_ms(1);
}

#endif /* BACKLITE_TEST_THREAD_STATE_H */
