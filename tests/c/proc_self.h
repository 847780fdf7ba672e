/*
 * proc_self.h: the test process's own resources as Linux's /proc/self shows them
 * (resident memory and its peak, open descriptors, threads), for the tests that bound
 * what the library keeps. Header-only; include after harness.h.
 */
#ifndef BACKLITE_TEST_PROC_SELF_H
#define BACKLITE_TEST_PROC_SELF_H

#include <dirent.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A "Field:  N kB" line of /proc/self/status ("VmRSS", "VmHWM"), in KiB; -1 if absent. */
static inline long proc_status_kib(const char *field) {
    FILE *f = fopen("/proc/self/status", "r");
    if (f == NULL) return -1;
    char line[256];
    long kib = -1;
    size_t n = strlen(field);
    while (fgets(line, sizeof line, f))
        if (strncmp(line, field, n) == 0 && line[n] == ':') {
            kib = strtol(line + n + 1, NULL, 10);
            break;
        }
    fclose(f);
    return kib;
}

/* Resets the peak resident size (VmHWM) to the current one; false if the kernel refuses. */
static inline bool reset_peak_rss(void) {
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (f == NULL) return false;
    bool ok = fputs("5", f) >= 0;
    return fclose(f) == 0 && ok;
}

/* Entries in /proc/self/<what> ("fd": open files and sockets, not counting the one that
 * reads the folder; "task": threads); -1 if it cannot be read. */
static inline int proc_entries(const char *what) {
    char path[64];
    snprintf(path, sizeof path, "/proc/self/%s", what);
    DIR *d = opendir(path);
    if (d == NULL) return -1;
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n - (strcmp(what, "fd") == 0); /* the folder's own descriptor */
}

/* The threads of the process once the count holds still (the same in 10 reads 10 ms
 * apart, within 5 s): a thread just joined can stay listed in /proc/self/task for a
 * moment, because pthread_join returns when the kernel clears its tid, before the task
 * is released. */
static inline int settled_thread_count(void) {
    const struct timespec pause = {0, 10 * 1000 * 1000};
    int last = proc_entries("task"), same = 0;
    for (int i = 0; i < 500 && same < 10; i++) {
        nanosleep(&pause, NULL);
        int now = proc_entries("task");
        same = now == last ? same + 1 : 0;
        last = now;
    }
    return last;
}

/* The thread count once it is `expected`, or what it is after 5 s (for the failure). */
static inline int thread_count_once(int expected) {
    const struct timespec pause = {0, 10 * 1000 * 1000};
    int now = proc_entries("task");
    for (int i = 0; i < 500 && now != expected; i++) {
        nanosleep(&pause, NULL);
        now = proc_entries("task");
    }
    return now;
}

#endif
