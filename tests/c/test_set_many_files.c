/*
 * backlite_storage_set_many of values kept in files of their own (at or above the file
 * threshold): a batch that fails part-way leaves none of the files it wrote, and keeps
 * those of earlier sets. (A batch of more such files than the process may hold open:
 * test_value_file_locks.c.)
 */
#include "backlite.h"
#include "harness.h"
#include "value_folder.h"

#include <signal.h>
#include <sys/resource.h>

#define THRESHOLD 65536
/* Just above the threshold: kept in a file, and quick to write. */
#define VALUE_LEN (THRESHOLD + 1024)

static backlite_storage *open_files(const char *path) {
    return OPEN_SET(path, .max_size = 1ull << 32, .file_threshold = THRESHOLD);
}

/* Entry i's value is VALUE_LEN bytes of `pattern` from offset i: each one different. */
static uint8_t *pattern(size_t n) {
    uint8_t *p = malloc(n);
    if (!p) abort();
    uint64_t seed = 7;
    for (size_t i = 0; i < n; i++) p[i] = (uint8_t)h_rand(&seed);
    return p;
}

static void a_failed_batch_leaves_none_of_its_files(void) {
    const char *path = tmp_path("failed.db");
    backlite_storage *s = open_files(path);
    REQUIRE(s != NULL);
    enum { FILED = 20 };
    uint8_t *values = pattern(2 * VALUE_LEN + FILED);
    backlite_entry before = {K("before"), values, VALUE_LEN, NEVER};
    CHECK_OK(backlite_storage_set_many(s, &before, 1, &err));
    char keys[FILED + 1][16];
    backlite_entry e[FILED + 1];
    for (int i = 0; i < FILED; i++) {
        snprintf(keys[i], sizeof keys[i], "k%d", i);
        e[i] = (backlite_entry){(const uint8_t *)keys[i], strlen(keys[i]), values + i, VALUE_LEN, NEVER};
    }
    /* The last value cannot be written: its file would be larger than the process may
       write (RLIMIT_FSIZE; write(2) then fails with EFBIG once SIGXFSZ is ignored). The
       cache and its log stay far below the limit. */
    e[FILED] = (backlite_entry){K("too big for the limit"), values, 2 * VALUE_LEN, NEVER};
    struct rlimit was;
    REQUIRE(getrlimit(RLIMIT_FSIZE, &was) == 0);
    struct rlimit low = {VALUE_LEN + 4096, was.rlim_max};
    void (*was_handler)(int) = signal(SIGXFSZ, SIG_IGN);
    REQUIRE(setrlimit(RLIMIT_FSIZE, &low) == 0);
    backlite_error *failure = NULL;
    backlite_result rc = backlite_storage_set_many(s, e, FILED + 1, &failure);
    setrlimit(RLIMIT_FSIZE, &was);
    signal(SIGXFSZ, was_handler);
    CHECK_EQ(rc, BACKLITE_RESULT_IO);
    if (failure) fprintf(stderr, "# %s\n", backlite_error_message(failure));
    backlite_error_free(failure);
    CHECK_EQ(value_files(path), 1);
    CHECK_EQ(temp_files(path), 0);
    GET_MISSING(s, "k0");
    backlite_buf b = {NULL, 0};
    CHECK_OK(backlite_storage_get(s, K("before"), &b, NULL, &err));
    CHECK_BUF(b, values, VALUE_LEN);
    backlite_buf_free(&b);
    /* And the same batch without its bad entry goes through. */
    CHECK_OK(backlite_storage_set_many(s, e, FILED, &err));
    CHECK_EQ(value_files(path), 1 + FILED);
    backlite_storage_free(s);
    free(values);
}

int main(void) {
    h_begin();
    RUN(a_failed_batch_leaves_none_of_its_files);
    return h_end();
}
