/*
 * A set writes its value file before it takes the database's write lock, and holds a
 * lock on that file until its row commits (issue 16): check, vacuum and the sweep on
 * open, run by another process meanwhile, never remove the file of a set in flight,
 * and the set succeeds; the file of a writer killed mid-set has no lock any more, and
 * check removes it.
 *
 * A set is held in flight without timing: the child's value has a page it may not
 * read (PROT_NONE), so the library's first look at that page, while it writes the
 * file, stops the child in a SIGSEGV handler that reports to the parent and waits for
 * its word before making the page readable again. A set held between its file's
 * last byte and its commit waits for the write lock held by a python3 sqlite3 process.
 */
#include "backlite.h"
#include "harness.h"
#include "value_folder.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>

/* REQUIRE for a helper that returns a value: a broken set-up ends the test program. */
#define MUST(cond)                                                                        \
    do {                                                                                  \
        if (!(cond)) {                                                                    \
            fprintf(stderr, "%s:%d: %s failed (%s)\n", __FILE__, __LINE__, #cond,          \
                    strerror(errno));                                                     \
            abort();                                                                      \
        }                                                                                 \
    } while (0)
#define THRESHOLD 4096
#define VALUE_LEN ((size_t)4 << 20)
/* The page the child may not read: past the first chunks the library writes. */
#define GUARD_AT ((size_t)2 << 20)

static backlite_storage *open_files(const char *path, uint32_t busy_ms) {
    return OPEN_SET(path, .max_size = 1u << 30, .file_threshold = THRESHOLD, .busy_timeout_ms = busy_ms);
}

static uint8_t byte_at(size_t i) { return (uint8_t)(i * 131u + (i >> 12)); }

/* Whether the folder holds a value file of VALUE_LEN bytes (and its 24-byte record):
 * one whose writer has written all of it. */
static bool has_whole_file(const char *cache) {
    DIR *d = opendir(folder_of(cache));
    if (!d) return false;
    bool found = false;
    struct dirent *e;
    while (!found && (e = readdir(d)) != NULL) {
        struct stat st;
        found = is_value_file_name(e->d_name) &&
                fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
                (size_t)st.st_size == VALUE_LEN + VALUE_RECORD_LEN;
    }
    closedir(d);
    return found;
}

/* ------------------------------------------------------------ the stopped child */

static int g_report = -1, g_resume = -1;
static uint8_t *g_guard;
static size_t g_guard_len;

static void on_fault(int sig, siginfo_t *si, void *uc) {
    (void)sig;
    (void)uc;
    uint8_t *at = si->si_addr;
    if (at < g_guard || at >= g_guard + g_guard_len) {
        signal(SIGSEGV, SIG_DFL); /* a real fault: crash on return */
        return;
    }
    char c = 'w';
    if (write(g_report, &c, 1) != 1 || read(g_resume, &c, 1) != 1) _exit(6);
    if (mprotect(g_guard, g_guard_len, PROT_READ | PROT_WRITE) != 0) _exit(7);
}

/* The child: sets a VALUE_LEN value under "big", stopping in the middle of writing its
 * file (a byte down `report`, then waits for one from `resume`). Exits 0 if the set
 * succeeded. */
static void set_and_stop_midway(const char *path, int report, int resume) {
    backlite_storage *s = open_files(path, 60000);
    if (!s) _exit(3);
    long page = sysconf(_SC_PAGESIZE);
    uint8_t *v = mmap(NULL, VALUE_LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (v == MAP_FAILED) _exit(3);
    for (size_t i = 0; i < VALUE_LEN; i++) v[i] = byte_at(i);
    g_report = report;
    g_resume = resume;
    g_guard = v + GUARD_AT;
    g_guard_len = (size_t)page;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_fault;
    sa.sa_flags = SA_SIGINFO;
    if (sigaction(SIGSEGV, &sa, NULL) != 0 || mprotect(g_guard, g_guard_len, PROT_NONE) != 0)
        _exit(3);
    backlite_error *e = NULL;
    backlite_result rc = backlite_storage_set(s, K("big"), v, VALUE_LEN, NEVER, &e);
    if (rc != BACKLITE_RESULT_OK) {
        fprintf(stderr, "set failed: %s\n", e ? backlite_error_message(e) : "?");
        _exit(4);
    }
    backlite_storage_free(s);
    _exit(0);
}

/* Starts the child and waits until it is stopped midway through writing its file. */
static pid_t start_stopped_writer(const char *path, int *resume_out) {
    int report[2], resume[2];
    MUST(pipe(report) == 0 && pipe(resume) == 0);
    pid_t pid = fork();
    MUST(pid >= 0);
    if (pid == 0) {
        close(report[0]);
        close(resume[1]);
        set_and_stop_midway(path, report[1], resume[0]);
    }
    close(report[1]);
    close(resume[0]);
    char c;
    MUST(read(report[0], &c, 1) == 1);
    close(report[0]);
    *resume_out = resume[1];
    return pid;
}

/* Whether the value under "big" is the child's, whole. */
static bool holds_the_big_value(backlite_storage *s) {
    backlite_buf b = {0};
    backlite_error *e = NULL;
    backlite_result rc = backlite_storage_get(s, K("big"), &b, NULL, &e);
    bool whole = rc == BACKLITE_RESULT_OK && b.len == VALUE_LEN;
    for (size_t i = 0; whole && i < VALUE_LEN; i++) whole = b.data[i] == byte_at(i);
    backlite_buf_free(&b);
    backlite_error_free(e);
    return whole;
}

static void check_vacuum_and_sweep_leave_a_set_in_flight_alone(void) {
    if (h_under_valgrind()) SKIP("the stopped child's fault handler is not run under valgrind");
    const char *tmp = tmp_path("in-flight.db");
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s", tmp);
    backlite_storage *s = open_files(path, 5000); /* the folder exists before the set */
    REQUIRE(s != NULL);
    int resume;
    pid_t pid = start_stopped_writer(path, &resume);
    /* Its file is being written (under its final name, locked), its row not begun. */
    CHECK_EQ(value_files(path), 1);
    CHECK(!has_whole_file(path));
    age_folder(path);
    backlite_storage *opened = open_files(path, 5000); /* the sweep on open */
    REQUIRE(opened != NULL);
    backlite_storage_free(opened);
    backlite_check_report rep;
    CHECK_OK(backlite_storage_check(s, 1, &rep, &err));
    CHECK_EQ(rep.orphan_values, 0);
    CHECK_OK(backlite_storage_vacuum(s, &err));
    CHECK_EQ(value_files(path), 1);
    /* Let it finish: the set succeeds, and its value reads back whole. */
    REQUIRE(write(resume, "g", 1) == 1);
    close(resume);
    CHECK_EQ(CHILD_EXIT_CODE(pid), 0);
    CHECK(holds_the_big_value(s));
    CHECK_OK(backlite_storage_check(s, 0, &rep, &err));
    CHECK(rep.healthy);
    CHECK_EQ(temp_files(path), 0);
    CHECK_EQ(value_files(path), 1);
    backlite_storage_free(s);
}

static void check_removes_the_file_of_a_writer_killed_midway(void) {
    if (h_under_valgrind()) SKIP("the stopped child's fault handler is not run under valgrind");
    const char *tmp = tmp_path("killed.db");
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s", tmp);
    backlite_storage *s = open_files(path, 5000);
    REQUIRE(s != NULL);
    int resume;
    pid_t pid = start_stopped_writer(path, &resume);
    CHECK_EQ(value_files(path), 1);
    CHECK(KILL_CHILD(pid));
    close(resume);
    CHECK_EQ(value_files(path), 1); /* its lock went with it */
    backlite_check_report rep;
    CHECK_OK(backlite_storage_check(s, 1, &rep, &err));
    CHECK_EQ(rep.orphan_values, 1);
    CHECK(rep.repaired);
    CHECK_EQ(temp_files(path), 0);
    CHECK_EQ(value_files(path), 0);
    CHECK_OK(backlite_storage_check(s, 0, &rep, &err));
    CHECK(rep.healthy);
    backlite_storage_free(s);
}

/* ------------------------------------------- a set waiting for the write lock */

/* python3 holding the cache's write lock until its stdin closes; `*release` is that. */
static pid_t hold_write_lock(const char *path, int *release) {
    int in[2], out[2];
    MUST(pipe(in) == 0 && pipe(out) == 0);
    pid_t pid = fork();
    MUST(pid >= 0);
    if (pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        close(in[0]);
        close(in[1]);
        close(out[0]);
        close(out[1]);
        execlp("python3", "python3", "-c",
               "import sqlite3, sys\n"
               "c = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)\n"
               "c.execute('BEGIN IMMEDIATE')\n"
               "print('locked', flush=True)\n"
               "sys.stdin.read()\n"
               "c.execute('ROLLBACK')\n",
               path, (char *)NULL);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    char word[8] = {0};
    for (size_t n = 0; n < 7;) { /* "locked\n", however the pipe splits it */
        ssize_t got = read(out[0], word + n, 7 - n);
        MUST(got > 0);
        n += (size_t)got;
    }
    MUST(memcmp(word, "locked\n", 7) == 0);
    close(out[0]);
    *release = in[1];
    return pid;
}

static void the_sweep_leaves_a_written_file_alone_until_its_row_commits(void) {
    if (!h_have_python_sqlite()) SKIP("python3 with sqlite3 is not available to hold the write lock");
    const char *tmp = tmp_path("waiting.db");
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s", tmp);
    backlite_storage *s = open_files(path, 5000); /* made before the lock is held */
    REQUIRE(s != NULL);
    backlite_storage_free(s); /* and closed: the forked writer inherits no handle */
    int go[2];
    REQUIRE(pipe(go) == 0);
    pid_t writer = fork();
    REQUIRE(writer >= 0);
    if (writer == 0) {
        /* Opened before the lock is held; sets once told to. */
        close(go[1]);
        backlite_storage *w = open_files(path, 60000);
        uint8_t *v = malloc(VALUE_LEN);
        char c;
        if (!w || !v || read(go[0], &c, 1) != 1) _exit(3);
        for (size_t i = 0; i < VALUE_LEN; i++) v[i] = byte_at(i);
        backlite_error *e = NULL;
        if (backlite_storage_set(w, K("big"), v, VALUE_LEN, NEVER, &e) != BACKLITE_RESULT_OK) {
            fprintf(stderr, "set failed: %s\n", e ? backlite_error_message(e) : "?");
            _exit(4);
        }
        free(v);
        backlite_storage_free(w);
        _exit(0);
    }
    close(go[0]);
    int release;
    pid_t holder = hold_write_lock(path, &release);
    REQUIRE(write(go[1], "g", 1) == 1);
    close(go[1]);
    /* Its file complete (and locked since it was made), the writer waits for the
     * write lock. */
    for (int i = 0; !has_whole_file(path); i++) {
        REQUIRE(i < 60000); /* a minute: the writer is stuck */
        usleep(1000);
    }
    age_folder(path);
    for (int i = 0; i < 3; i++) { /* the sweep on open, more than once */
        backlite_storage *opened = open_files(path, 5000);
        REQUIRE(opened != NULL);
        backlite_storage_free(opened);
    }
    CHECK_EQ(value_files(path), 1);
    close(release);
    CHILD_EXIT_CODE(holder); /* python3, told to let go: its exit is not the test's */
    CHECK_EQ(CHILD_EXIT_CODE(writer), 0);
    s = open_files(path, 5000);
    REQUIRE(s != NULL);
    CHECK(holds_the_big_value(s));
    backlite_storage_free(s);
}

/* A batch locks each file only while writing it: it does not hold one open file per
 * value until it commits, so it never runs out of file descriptors. */
static void a_batch_of_more_files_than_open_files_allowed_is_stored(void) {
    if (h_under_valgrind()) SKIP("valgrind manages the descriptor limit itself");
    const char *tmp = tmp_path("batch.db");
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s", tmp);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        enum { N = 300 };
        struct rlimit few = {128, 128};
        backlite_storage *s = open_files(path, 5000);
        static uint8_t v[THRESHOLD];
        static char keys[N][8];
        backlite_entry entries[N];
        if (!s || setrlimit(RLIMIT_NOFILE, &few) != 0) _exit(3);
        for (int i = 0; i < N; i++) {
            snprintf(keys[i], sizeof keys[i], "b%d", i);
            entries[i] = (backlite_entry){(const uint8_t *)keys[i], strlen(keys[i]), v, sizeof v, NEVER};
        }
        backlite_error *e = NULL;
        if (backlite_storage_set_many(s, entries, N, &e) != BACKLITE_RESULT_OK) {
            fprintf(stderr, "set_many failed: %s\n", e ? backlite_error_message(e) : "?");
            _exit(4);
        }
        backlite_stats st;
        if (backlite_storage_stats(s, &st, &e) != BACKLITE_RESULT_OK || st.count != N) _exit(5);
        backlite_storage_free(s);
        _exit(0);
    }
    CHECK_EQ(CHILD_EXIT_CODE(pid), 0);
    CHECK_EQ(value_files(path), 300);
}

int main(void) {
    h_begin();
    RUN(check_vacuum_and_sweep_leave_a_set_in_flight_alone);
    RUN(check_removes_the_file_of_a_writer_killed_midway);
    RUN(the_sweep_leaves_a_written_file_alone_until_its_row_commits);
    RUN(a_batch_of_more_files_than_open_files_allowed_is_stored);
    return h_end();
}
