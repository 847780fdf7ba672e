/*
 * Values kept in files (issue 16) under churn: four processes overwrite one key as
 * fast as they can while this one reads it by get, get_chunks and a pull reader. The
 * key always has a value (it was set before they began, and an overwrite replaces
 * it in one commit), so every read is a hit, of one writer's value, whole: never a
 * miss because the file a row named was replaced meanwhile, never a mix.
 */
#include "backlite.h"
#include "harness.h"
#include "value_folder.h"
#include "churn.h"

#include <pthread.h>

#define THRESHOLD 4096
#define LEN (8 * 1024)

static backlite_storage *open_cache(const char *path) {
    return OPEN_SET(path, .max_size = 1u << 30, .file_threshold = THRESHOLD, .busy_timeout_ms = 20000);
}

static void every_read_of_a_key_overwritten_by_four_processes_is_a_whole_hit(void) {
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s", tmp_path("churn.db"));
    backlite_storage *s = open_cache(path);
    REQUIRE(s != NULL);
    uint8_t *v = malloc(LEN);
    REQUIRE(v != NULL);
    memset(v, 'S', LEN);
    SET_BYTES(s, "same", v, LEN, NEVER);
    backlite_storage_free(s);
    int times = h_under_valgrind() ? 100 : 1500;
    fflush(NULL);
    pid_t pids[4];
    for (int c = 0; c < 4; c++) {
        pids[c] = fork();
        REQUIRE(pids[c] >= 0);
        if (pids[c] == 0) churn_overwrite(path, THRESHOLD, LEN, c % 2 ? 'B' : 'A', times);
    }
    s = open_cache(path);
    REQUIRE(s != NULL);
    int running = 4, reads = 0, misses = 0, wrong = 0, failed = 0;
    uint8_t *buf = malloc(LEN + 1);
    REQUIRE(buf != NULL);
    while (running > 0) {
        backlite_error *e = NULL;
        backlite_result rc;
        switch (reads % 3) {
        case 0: {
            backlite_buf b = {0};
            rc = backlite_storage_get(s, K("same"), &b, NULL, &e);
            if (rc == BACKLITE_RESULT_OK && !churn_whole(b.data, b.len, LEN)) wrong++;
            backlite_buf_free(&b);
            break;
        }
        case 1: {
            gathered g = {buf, 0, LEN};
            rc = backlite_storage_get_chunks(s, K("same"), gather, &g, NULL, &e);
            if (rc == BACKLITE_RESULT_OK && !churn_whole(g.bytes, g.len, LEN)) wrong++;
            break;
        }
        default: {
            backlite_value_reader *r = NULL;
            rc = backlite_storage_open_reader(s, K("same"), &r, NULL, NULL, &e);
            size_t at = 0, n = 1;
            while (rc == BACKLITE_RESULT_OK && n > 0) {
                rc = backlite_value_reader_read(r, buf + at, LEN + 1 - at, &n, &e);
                if (rc == BACKLITE_RESULT_OK) at += n;
            }
            if (rc == BACKLITE_RESULT_OK && !churn_whole(buf, at, LEN)) wrong++;
            backlite_value_reader_free(r);
        }
        }
        reads++;
        if (rc == BACKLITE_RESULT_NOT_FOUND) misses++;
        else if (rc != BACKLITE_RESULT_OK) {
            if (failed++ == 0) fprintf(stderr, "# read %d: %s %s\n", reads, h_rc_name(rc), e ? backlite_error_message(e) : "");
        }
        backlite_error_free(e);
        for (int c = 0; c < 4; c++) {
            int status = 0;
            if (pids[c] > 0 && waitpid(pids[c], &status, WNOHANG) == pids[c]) {
                CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
                pids[c] = 0;
                running--;
            }
        }
    }
    printf("# %d reads while four processes overwrote: %d misses, %d wrong, %d failed\n", reads, misses, wrong, failed);
    CHECK_EQ(wrong, 0);
    CHECK_EQ(misses, 0);
    CHECK_EQ(failed, 0);
    backlite_check_report rep;
    CHECK_OK(backlite_storage_check(s, 1, &rep, &err));
    CHECK_EQ(rep.healthy, 1);
    CHECK_EQ(value_files(path), 1);
    backlite_storage_free(s);
    free(buf);
    free(v);
}

typedef struct {
    backlite_storage *s;
    uint8_t fill;
    int times, failed;
} thread_writer;

static void *overwrite_thread(void *arg) {
    thread_writer *w = arg;
    uint8_t *v = malloc(LEN);
    if (!v) abort();
    memset(v, w->fill, LEN);
    for (int i = 0; i < w->times; i++) {
        backlite_error *e = NULL;
        if (backlite_storage_set(w->s, K("same"), v, LEN, NEVER, &e) != BACKLITE_RESULT_OK) w->failed++;
        backlite_error_free(e);
    }
    free(v);
    return NULL;
}

/* The same with threads of this process: two on the reader's handle, two on a handle
 * of their own. */
static void every_read_of_a_key_overwritten_by_threads_is_a_whole_hit(void) {
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s", tmp_path("threads.db"));
    backlite_storage *s = open_cache(path), *other = open_cache(path);
    REQUIRE(s != NULL && other != NULL);
    uint8_t *v = malloc(LEN);
    REQUIRE(v != NULL);
    memset(v, 'S', LEN);
    SET_BYTES(s, "same", v, LEN, NEVER);
    int times = h_under_valgrind() ? 50 : 1000;
    thread_writer w[4];
    pthread_t t[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (thread_writer){i < 2 ? s : other, i % 2 ? 'B' : 'A', times, 0};
        REQUIRE(pthread_create(&t[i], NULL, overwrite_thread, &w[i]) == 0);
    }
    int reads = 0, misses = 0, wrong = 0;
    for (; reads < (h_under_valgrind() ? 100 : 5000); reads++) {
        backlite_buf b = {0};
        backlite_error *e = NULL;
        backlite_result rc = backlite_storage_get(s, K("same"), &b, NULL, &e);
        if (rc == BACKLITE_RESULT_NOT_FOUND) misses++;
        else if (rc != BACKLITE_RESULT_OK || !churn_whole(b.data, b.len, LEN)) wrong++;
        backlite_buf_free(&b);
        backlite_error_free(e);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        CHECK_EQ(w[i].failed, 0);
    }
    printf("# %d reads while four threads overwrote: %d misses, %d wrong\n", reads, misses, wrong);
    CHECK_EQ(misses, 0);
    CHECK_EQ(wrong, 0);
    backlite_storage_free(other);
    backlite_check_report rep;
    CHECK_OK(backlite_storage_check(s, 1, &rep, &err));
    CHECK_EQ(rep.healthy, 1);
    CHECK_EQ(value_files(path), 1);
    backlite_storage_free(s);
    free(v);
}

int main(void) {
    h_begin();
    RUN(every_read_of_a_key_overwritten_by_four_processes_is_a_whole_hit);
    RUN(every_read_of_a_key_overwritten_by_threads_is_a_whole_hit);
    return h_end();
}
