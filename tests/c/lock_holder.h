/* A write lock on a cache file that another process holds: what the tests of BUSY
 * share (test_processes, test_probe_core9). Needs python3 with its sqlite3 module
 * (h_have_python_sqlite). */
#ifndef BACKLITE_TEST_LOCK_HOLDER_H
#define BACKLITE_TEST_LOCK_HOLDER_H

#include "harness.h"

/*
 * python3 takes the file's write lock (BEGIN IMMEDIATE), says "locked", and holds it
 * until it reads a line; then it waits 0.3 s more, commits, says "released", and exits
 * at the next line.
 */
static const char LOCK_HOLDER[] =
    "import sqlite3, sys, time\n"
    "con = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)\n"
    "con.execute('BEGIN IMMEDIATE')\n"
    "print('locked', flush=True)\n"
    "sys.stdin.readline()\n"
    "time.sleep(0.3)\n"
    "con.execute('COMMIT')\n"
    "con.close()\n"
    "print('released', flush=True)\n"
    "sys.stdin.readline()\n";

static inline bool read_line(FILE *f, const char *want) {
    char line[64];
    if (fgets(line, sizeof line, f) == NULL) return false;
    line[strcspn(line, "\n")] = 0;
    return strcmp(line, want) == 0;
}

typedef struct {
    pid_t pid;
    FILE *to, *from;
} lock_holder;

/* starts LOCK_HOLDER on path; true once it holds the lock */
static inline bool holder_start(lock_holder *h, const char *path) {
    int in[2], out[2];
    if (pipe(in) != 0 || pipe(out) != 0) return false;
    h->pid = fork();
    if (h->pid < 0) return false;
    if (h->pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        close(in[0]);
        close(in[1]);
        close(out[0]);
        close(out[1]);
        execlp("python3", "python3", "-c", LOCK_HOLDER, path, (char *)NULL);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    h->from = fdopen(out[0], "r");
    h->to = fdopen(in[1], "w");
    return h->from != NULL && h->to != NULL && read_line(h->from, "locked");
}

/* lets it commit (0.3 s later) */
static inline void holder_release(lock_holder *h) {
    fputs("go\n", h->to);
    fflush(h->to);
}

/* waits until it has committed and exited */
static inline void holder_finish(lock_holder *h) {
    CHECK(read_line(h->from, "released"));
    fputs("exit\n", h->to);
    fclose(h->to);
    fclose(h->from);
    CHECK_EQ(CHILD_EXIT_CODE(h->pid), 0);
}

#endif /* BACKLITE_TEST_LOCK_HOLDER_H */
