/*
 * Values kept in files (issue 16), fifteenth probe round: a check that only counts
 * (backlite_storage_check without repair) beside another process's long batch. A
 * set_many writes the files of its first 64 large values before its write lock, each
 * locked until its commit (test_value_file_probes14.c), and the files of any further
 * ones inside its transaction, unlocked once written (a descriptor each would run a batch
 * of thousands out of them), as an import writes all of its own. Named by no row until
 * the commit, such a file was counted as an orphan once older than the count's grace
 * (60 s): a check during a batch or an import running longer than that said the cache
 * unhealthy, orphans and all, though nothing was wrong. And the 64 files a batch holds
 * open until its commit left it short of a descriptor for the next one: a batch that
 * works with one descriptor free failed with 63 or 64 free.
 */
#include "backlite.h"
#include "harness.h"
#include "batch_write_stop.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>

#define THRESHOLD 4096
/* More large values than a batch writes ahead of its write lock (64). */
#define BATCH 67
#define LEN (THRESHOLD + 100)

static uint8_t values[BATCH][LEN];

/* While a batch that has run for two hours writes the file of its last large value, a
 * check that only counts finds no orphan: the files it wrote are its own, to be named
 * by its commit. Once it committed, every value reads back whole. */
static void a_count_beside_a_long_batch_takes_none_of_its_files_for_orphans(void) {
    const char *path = tmp_path("long_batch.db");
    backlite_storage *s = OPEN_SET(path, .file_threshold = THRESHOLD, .busy_timeout_ms = 30000);
    REQUIRE(s != NULL);
    for (int i = 0; i < BATCH; i++)
        for (int j = 0; j < LEN; j++) values[i][j] = (uint8_t)(j * 131 + i);
    pid_t pid;
    batch_stopped_at_file(path, THRESHOLD, &values[0][0], LEN, BATCH, BATCH, &pid);
    if (pid < 0) {
        backlite_storage_free(s);
        return;
    }
    if (pid == 0) {
        backlite_storage_free(s);
        SKIP("ptrace is refused here");
    }
    CHECK_EQ(value_files(path), BATCH);
    age_value_files(path, 7200);
    backlite_check_report rep;
    CHECK_OK(backlite_storage_check(s, 0, &rep, &err));
    CHECK_EQ(rep.orphan_values, 0);
    CHECK_EQ(rep.healthy, 1);
    CHECK_EQ(value_files(path), BATCH);
    batch_finish(pid);
    for (int i = 0; i < BATCH; i++) {
        char key[16];
        batch_key(i, key, sizeof key);
        backlite_buf b = {0};
        CHECK_OK(backlite_storage_get(s, K(key), &b, NULL, &err));
        CHECK(b.len == LEN && memcmp(b.data, values[i], LEN) == 0);
        backlite_buf_free(&b);
    }
    backlite_stats st = STATS(s);
    CHECK_EQ(st.count, BATCH);
    CHECK_EQ(st.total_size, (uint64_t)BATCH * LEN);
    CHECK_EQ(value_files(path), BATCH);
    CHECK_OK(backlite_storage_check(s, 0, &rep, &err));
    CHECK_EQ(rep.orphan_values, 0);
    CHECK_EQ(rep.healthy, 1);
    backlite_storage_free(s);
}

/* Descriptors held open on /dev/null: all the process may open but `leave`. */
static int take_descriptors(int *held, int cap, int leave) {
    int n = 0;
    while (n < cap) {
        held[n] = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (held[n] < 0) break;
        n++;
    }
    for (int i = 0; i < leave && n > 0; i++) close(held[--n]);
    return n;
}

static void give_back(int *held, int n) {
    while (n > 0) close(held[--n]);
}

/* How many file descriptors the process has open. */
static int open_fds(void) {
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL) return -1;
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n - 1; /* the one opendir holds */
}

/* A batch of 100 large values works with a single descriptor free (its files are then
 * written one at a time), so it works with any number free: with 63 or 64 free it
 * wrote the files of its first 64 ahead of its write lock, each held open until the
 * commit, and failed IO ("Too many open files") at the next one, where it needs only
 * one descriptor at a time. */
static void a_batch_that_works_with_one_descriptor_free_works_with_more(void) {
    /* Valgrind fails an open that would take a descriptor past its own count of the
     * limit with EMFILE after the kernel made the file: no real process sees that. */
    if (h_under_valgrind()) SKIP("valgrind fakes EMFILE after the kernel's open");
    const char *path = tmp_path("descriptors.db");
    backlite_storage *s = OPEN_SET(path, .file_threshold = THRESHOLD);
    REQUIRE(s != NULL);
    enum { MANY = 100 };
    static uint8_t v[MANY][LEN];
    static char keys[MANY][16];
    static backlite_entry batch[MANY];
    for (int i = 0; i < MANY; i++) {
        batch_key(i, keys[i], sizeof keys[i]);
        batch[i] = (backlite_entry){(const uint8_t *)keys[i], strlen(keys[i]), v[i], LEN, NEVER};
    }
    /* The folder made and the connections opened before descriptors run short. */
    SET(s, "warm", "w");
    CHECK_OK(backlite_storage_set_many(s, batch, MANY, &err));
    struct rlimit old;
    REQUIRE(getrlimit(RLIMIT_NOFILE, &old) == 0);
    struct rlimit low = old;
    low.rlim_cur = (rlim_t)open_fds() + 200;
    if (setrlimit(RLIMIT_NOFILE, &low) != 0) SKIP("cannot lower RLIMIT_NOFILE");
    static int held[512];
    for (int leave = 1; leave <= 80; leave++) {
        for (int i = 0; i < MANY; i++) memset(v[i], (uint8_t)(leave + i), LEN);
        int n = take_descriptors(held, 512, leave);
        backlite_error *e = NULL;
        backlite_result rc = backlite_storage_set_many(s, batch, MANY, &e);
        give_back(held, n);
        if (rc != BACKLITE_RESULT_OK)
            h_fail_(__FILE__, __LINE__, "a batch with %d descriptors free: %s (%s)", leave, h_rc_name(rc),
                    e != NULL ? backlite_error_message(e) : "");
        backlite_error_free(e);
        for (int i = 0; i < MANY; i += 33) {
            backlite_buf b = {0};
            CHECK_OK(backlite_storage_get(s, K(keys[i]), &b, NULL, &err));
            CHECK(b.len == LEN && memcmp(b.data, v[i], LEN) == 0);
            backlite_buf_free(&b);
        }
    }
    REQUIRE(setrlimit(RLIMIT_NOFILE, &old) == 0);
    SET(s, "tick", "t");
    backlite_stats st = STATS(s);
    CHECK_EQ(st.count, MANY + 2);
    CHECK_EQ(value_files(path), MANY);
    backlite_storage_free(s);
}

int main(void) {
    h_begin();
    RUN(a_count_beside_a_long_batch_takes_none_of_its_files_for_orphans);
    RUN(a_batch_that_works_with_one_descriptor_free_works_with_more);
    return h_end();
}
