/*
 * shared_cache.c: two "machines" sharing one Redis. Each run has its own local file;
 * the first computes the value and writes it through to Redis, a run with another file
 * answers from Redis (and keeps a local copy), and a run with the same file again
 * answers from that file without asking Redis.
 *
 *   redis-server --port 6400 --save "" &
 *   ./shared_cache redis://127.0.0.1:6400 machine-a.db   # computed, written through
 *   ./shared_cache redis://127.0.0.1:6400 machine-b.db   # from the remote
 *   ./shared_cache redis://127.0.0.1:6400 machine-b.db   # from the local file
 */
#include <backlite.h>
#include <stdio.h>
#include <string.h>

static int computed = 0;

static int32_t build_report(void *user_data, backlite_sink *sink) {
    (void)user_data;
    computed = 1;
    const char *report = "42 widgets sold";
    return backlite_sink_write(sink, (const uint8_t *)report, strlen(report));
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s <redis-url> <cache-file>\n", argv[0]);
        return 2;
    }
    backlite_options *opts = backlite_options_new();
    if (backlite_options_set_remote(opts, argv[1]) != BACKLITE_RESULT_OK) {
        fprintf(stderr, "bad remote URL\n");
        backlite_options_free(opts);
        return 2;
    }
    backlite_options_set_remote_namespace(opts, "shared-cache-demo");
    backlite_options_set_remote_timeout_ms(opts, 250);

    backlite_storage *cache = NULL;
    backlite_error *err = NULL;
    if (backlite_storage_open(argv[2], opts, &cache, &err) != BACKLITE_RESULT_OK) {
        fprintf(stderr, "open: %s\n", backlite_error_message(err));
        backlite_error_free(err);
        backlite_options_free(opts);
        return 1;
    }
    backlite_options_free(opts);

    backlite_buf value = {0};
    backlite_result r = backlite_cached_call_exclusive(cache, (const uint8_t *)"report", 6,
                                                       build_report, NULL, 60 * 60 * 1000,
                                                       10000, &value, &err);
    if (r != BACKLITE_RESULT_OK) {
        fprintf(stderr, "cached call: %s\n", backlite_error_message(err));
        backlite_error_free(err);
        backlite_storage_free(cache);
        return 1;
    }
    backlite_remote_stats st;
    backlite_storage_remote_stats(cache, &st, NULL);
    const char *from = computed ? "computed here" : st.hits > 0 ? "the remote" : "the local file";
    printf("%.*s (from %s; remote connected=%d)\n", (int)value.len, (const char *)value.data,
           from, st.connected);
    backlite_buf_free(&value);
    backlite_storage_free(cache);
    return 0;
}
