/*
 * Values kept in files (issue 16) and a writer killed (SIGKILL) wherever it is in a
 * batch (set_many) mixing small values and values kept in files, or in a clear: after
 * reopening and a check with repair, every batch is there whole or not at all, no
 * entry names a missing or wrong file, there is one value file per large value and
 * no other file of ours, and the counters equal the values.
 */
#include "backlite.h"
#include "harness.h"
#include "value_folder.h"

#define THRESHOLD 4096
#define LARGE 20000
#define SMALL 100
#define PER_BATCH 4

static backlite_storage *open_cache(const char *path) {
    return OPEN_SET(path, .max_size = 1u << 30, .file_threshold = THRESHOLD);
}

/* The child: batches of PER_BATCH entries under "b<i>-<j>" (even j large, odd j
 * small, byte 0 the batch's number), and every 7th time a clear; a byte down `out`
 * after each. Never returns. */
__attribute__((noreturn)) static void batches(const char *path, int out) {
    backlite_storage *s = NULL;
    backlite_error *e = NULL;
    backlite_options *o = backlite_options_new();
    if (!o || backlite_options_set_max_size(o, 1u << 30) != BACKLITE_RESULT_OK ||
        backlite_options_set_file_threshold(o, THRESHOLD) != BACKLITE_RESULT_OK ||
        backlite_storage_open(path, o, &s, &e) != BACKLITE_RESULT_OK)
        _exit(3);
    backlite_options_free(o);
    uint8_t *v = malloc(LARGE);
    if (!v) _exit(3);
    memset(v, 'v', LARGE);
    for (unsigned i = 0;; i++) {
        if (i % 7 == 6) {
            if (backlite_storage_clear(s, &e) != BACKLITE_RESULT_OK) _exit(4);
        } else {
            char keys[PER_BATCH][24];
            backlite_entry batch[PER_BATCH];
            v[0] = (uint8_t)i;
            for (int j = 0; j < PER_BATCH; j++) {
                snprintf(keys[j], sizeof keys[j], "b%u-%d", i, j);
                batch[j] = (backlite_entry){(const uint8_t *)keys[j], strlen(keys[j]), v, j % 2 ? SMALL : LARGE, NEVER};
            }
            if (backlite_storage_set_many(s, batch, PER_BATCH, &e) != BACKLITE_RESULT_OK) _exit(4);
        }
        if (write(out, "x", 1) != 1) _exit(5);
    }
}

typedef struct {
    unsigned keys;
    unsigned last_batch; /* the highest batch number among the keys */
} seen;

static int32_t count_key(void *user, const uint8_t *key, size_t len) {
    seen *st = user;
    st->keys++;
    char name[24] = {0};
    memcpy(name, key, len < sizeof name - 1 ? len : sizeof name - 1);
    unsigned batch = 0;
    if (sscanf(name, "b%u-", &batch) == 1 && batch > st->last_batch) st->last_batch = batch;
    return 0;
}

static void a_writer_killed_mid_batch_or_clear_leaves_whole_batches_and_no_orphan(void) {
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s", tmp_path("batches.db"));
    uint64_t seed = 16;
    unsigned done_total = 0;
    for (int round = 0; round < 20; round++) {
        int gate[2];
        REQUIRE(pipe(gate) == 0);
        fflush(NULL);
        pid_t pid = fork();
        REQUIRE(pid >= 0);
        if (pid == 0) {
            close(gate[0]);
            batches(path, gate[1]);
        }
        close(gate[1]);
        int want = 3 + (int)h_rand_below(&seed, 8), done = 0;
        char c;
        while (done < want && read(gate[0], &c, 1) == 1) done++;
        CHECK_EQ(done, want);
        /* Somewhere in the next operation, or the one after. */
        struct timespec pause = {0, (long)h_rand_below(&seed, 3000) * 1000};
        nanosleep(&pause, NULL);
        CHECK(KILL_CHILD(pid));
        close(gate[0]);
        done_total += (unsigned)done;

        backlite_storage *s = open_cache(path);
        REQUIRE(s != NULL);
        backlite_check_report rep;
        CHECK_OK(backlite_storage_check(s, 0, &rep, &err));
        CHECK_EQ(rep.damaged, 0);
        CHECK_EQ(rep.healthy, 1);
        CHECK_OK(backlite_storage_check(s, 1, &rep, &err));
        CHECK_EQ(rep.healthy, 1);
        CHECK_EQ(temp_files(path), 0);
        /* Every batch the child began (it numbers them from 0 each round, and went on
           after its last byte was read) is whole or absent. */
        seen all = {0, 0};
        CHECK_OK(backlite_storage_keys(s, count_key, &all, &err));
        unsigned large = 0;
        uint64_t sum = 0;
        for (unsigned i = 0; i <= all.last_batch; i++) {
            int present = 0;
            for (int j = 0; j < PER_BATCH; j++) {
                char key[24];
                snprintf(key, sizeof key, "b%u-%d", i, j);
                backlite_buf b = {0};
                backlite_error *e = NULL;
                backlite_result rc = backlite_storage_get(s, K(key), &b, NULL, &e);
                CHECK(rc == BACKLITE_RESULT_OK || rc == BACKLITE_RESULT_NOT_FOUND);
                if (rc == BACKLITE_RESULT_OK) {
                    present++;
                    size_t len = j % 2 ? SMALL : LARGE;
                    CHECK_EQ(b.len, len);
                    if (b.len == len) CHECK(b.data[0] == (uint8_t)i && b.data[len - 1] == 'v');
                    large += j % 2 == 0;
                    sum += b.len;
                }
                backlite_buf_free(&b);
                backlite_error_free(e);
            }
            if (present != 0 && present != PER_BATCH)
                h_fail_(__FILE__, __LINE__, "round %d: batch %u has %d of its %d entries", round, i, present,
                        PER_BATCH);
        }
        backlite_stats st = STATS(s);
        CHECK_EQ(st.count, all.keys);
        CHECK_EQ(st.total_size, sum);
        CHECK_EQ((unsigned)value_files(path), large);
        /* The next round starts from an empty cache: its keys are numbered again. */
        CHECK_OK(backlite_storage_clear(s, &err));
        backlite_storage_free(s);
        CHECK_EQ(value_files(path), 0);
    }
    (void)done_total;
}

int main(void) {
    h_begin();
    RUN(a_writer_killed_mid_batch_or_clear_leaves_whole_batches_and_no_orphan);
    return h_end();
}
