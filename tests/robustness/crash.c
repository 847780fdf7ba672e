/*
 * Crash test: a writer process is killed with SIGKILL at random moments, again and
 * again, and after every kill the file must be sound and must hold nothing wrong.
 *
 * The driver (this program without arguments) forks and execs itself as a writer
 * ("robust_crash writer PATH POLICY CYCLE LOG SEED"), lets it run for a random 1-150 ms
 * (0-7 ms on a fresh file, to land in the file's creation; counted from the writer's
 * open on first-in-first-out cycles, which must get to write), kills it, then checks:
 *
 *   - the file opens, backlite_storage_check reports integrity_ok and healthy (the
 *     counters equal a recount);
 *   - every live key holds exactly the value its key determines (each key's value
 *     follows from the key alone, so even a write in flight at the kill can only
 *     have written those bytes: anything else is wrong bytes);
 *   - stats count / total_size equal a recount through keys + get;
 *   - every acknowledged delete stayed deleted (keys are never written twice);
 *   - nothing acknowledged was lost: on cycles run with first-in-first-out, the newest
 *     acknowledged never-expiring sets whose sizes (plus the most one call in flight
 *     can add) fit in max_size cannot have been evicted, so they must all be there.
 *
 * The writer does single sets (some with an expiration), set_many batches, cached
 * calls on a small set of keys, deletes and gets, on a cache whose max_size forces
 * evictions all the time. It appends one line per acknowledged write to a log with
 * write(2) after the call returned OK (so the log never claims more than was
 * acknowledged), and a line before each delete (so that a delete in flight at the
 * kill is known). Every 10th cycle starts a new file.
 *
 * Environment: BACKLITE_CRASH_KILLS (default 100), BACKLITE_CRASH_SEED (default 1).
 */

#include "robust.h"

#define MAX_SIZE (192 * 1024)
#define MAX_VALUE 3000            /* values of 1..3000 bytes: most are stored apart */
#define MAX_BATCH 8
#define MAX_IN_FLIGHT (MAX_BATCH * MAX_VALUE) /* the most one call can add */
#define MEMO_KEYS 24
#define NEW_FILE_EVERY 10
#define FIFO BACKLITE_EVICTION_POLICY_FIRST_IN_FIRST_OUT

/* ------------------------------------------------------------------ writer */

static int w_log = -1;

static void w_die(const char *what, backlite_result rc, backlite_error *err) {
    fprintf(stderr, "writer: %s: %s (%d): %s\n", what, h_rc_name(rc), (int)rc,
            err ? backlite_error_message(err) : "(no error object)");
    _exit(2);
}

static void w_log_line(const char *line) {
    if (!r_write_all(w_log, line, strlen(line))) {
        perror("writer: log");
        _exit(2);
    }
}

static int32_t w_compute(void *ud, backlite_sink *sink) {
    const char *key = ud;
    static uint8_t v[MAX_VALUE];
    size_t len = r_value_of_key(key, v, MAX_VALUE);
    size_t half = len / 2; /* in two pieces */
    if (backlite_sink_write(sink, v, half) != BACKLITE_RESULT_OK) return 1;
    return backlite_sink_write(sink, v + half, len - half) == BACKLITE_RESULT_OK ? 0 : 1;
}

static int writer_main(char **argv) {
    const char *path = argv[2];
    int policy = atoi(argv[3]);
    int cycle = atoi(argv[4]);
    const char *log_path = argv[5];
    uint64_t rng = strtoull(argv[6], NULL, 10);
    w_log = open(log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (w_log < 0) {
        perror("writer: open log");
        return 2;
    }
    backlite_options *o = backlite_options_new();
    backlite_options_set_max_size(o, MAX_SIZE);
    backlite_options_set_eviction_policy(o, policy);
    backlite_storage *s = NULL;
    backlite_error *err = NULL;
    backlite_result rc = backlite_storage_open(path, o, &s, &err);
    if (rc != BACKLITE_RESULT_OK) w_die("open", rc, err);
    backlite_options_free(o);
    w_log_line("O\n");

    /* the acknowledged single-set keys of this run, for deletes and gets */
    size_t cap = 1024, n_acked = 0;
    int *acked = malloc(cap * sizeof *acked);
    int next = 0;
    static uint8_t v[MAX_VALUE], vs[MAX_BATCH][MAX_VALUE];
    char line[MAX_BATCH * 96];
    for (;;) {
        unsigned op = (unsigned)h_rand_below(&rng, 100);
        if (op < 40) { /* one set, 15% of them expiring */
            char key[32];
            snprintf(key, sizeof key, "s%d-%d", cycle, next);
            size_t len = r_value_of_key(key, v, MAX_VALUE);
            bool expiring = h_rand_below(&rng, 100) < 15;
            int64_t exp = expiring ? 100 + (int64_t)h_rand_below(&rng, 3000) : BACKLITE_EXPIRATION_NEVER;
            err = NULL;
            rc = backlite_storage_set(s, K(key), v, len, exp, &err);
            if (rc != BACKLITE_RESULT_OK) w_die("set", rc, err);
            snprintf(line, sizeof line, "S %s %zu %08x %d\n", key, len, r_crc32(v, len), expiring);
            w_log_line(line);
            if (n_acked == cap) acked = realloc(acked, (cap *= 2) * sizeof *acked);
            acked[n_acked++] = next++;
        } else if (op < 60) { /* a batch of 2..8 */
            backlite_entry e[MAX_BATCH];
            char keys[MAX_BATCH][32];
            size_t lens[MAX_BATCH];
            int n = 2 + (int)h_rand_below(&rng, MAX_BATCH - 1);
            for (int i = 0; i < n; i++) {
                snprintf(keys[i], sizeof keys[i], "s%d-%d", cycle, next + i);
                lens[i] = r_value_of_key(keys[i], vs[i], MAX_VALUE);
                e[i] = (backlite_entry){(const uint8_t *)keys[i], strlen(keys[i]), vs[i], lens[i],
                                        BACKLITE_EXPIRATION_NEVER};
            }
            err = NULL;
            rc = backlite_storage_set_many(s, e, (size_t)n, &err);
            if (rc != BACKLITE_RESULT_OK) w_die("set_many", rc, err);
            size_t at = 0;
            for (int i = 0; i < n; i++)
                at += (size_t)snprintf(line + at, sizeof line - at, "S %s %zu %08x 0\n", keys[i], lens[i],
                                       r_crc32(vs[i], lens[i]));
            w_log_line(line);
            for (int i = 0; i < n; i++) {
                if (n_acked == cap) acked = realloc(acked, (cap *= 2) * sizeof *acked);
                acked[n_acked++] = next++;
            }
        } else if (op < 80) { /* a cached call on one of a few keys */
            char key[32];
            snprintf(key, sizeof key, "m%d-%d", cycle, (int)h_rand_below(&rng, MEMO_KEYS));
            backlite_buf b = {NULL, 0};
            err = NULL;
            rc = backlite_cached_call(s, K(key), w_compute, key, NULL, BACKLITE_EXPIRATION_NEVER, &b, &err);
            if (rc != BACKLITE_RESULT_OK) w_die("cached_call", rc, err);
            size_t len = r_value_of_key(key, v, MAX_VALUE);
            if (b.len != len || memcmp(b.data, v, len) != 0) {
                fprintf(stderr, "writer: cached_call(%s) returned wrong bytes\n", key);
                _exit(3);
            }
            backlite_buf_free(&b);
            snprintf(line, sizeof line, "M %s %zu %08x\n", key, len, r_crc32(v, len));
            w_log_line(line);
        } else if (op < 90) { /* delete an acknowledged key of this run */
            if (n_acked == 0) continue;
            size_t i = (size_t)h_rand_below(&rng, n_acked);
            char key[32];
            snprintf(key, sizeof key, "s%d-%d", cycle, acked[i]);
            snprintf(line, sizeof line, "d %s\n", key); /* before: it may be gone from here on */
            w_log_line(line);
            err = NULL;
            rc = backlite_storage_delete(s, K(key), &err);
            if (rc != BACKLITE_RESULT_OK && rc != BACKLITE_RESULT_NOT_FOUND) w_die("delete", rc, err);
            backlite_error_free(err);
            snprintf(line, sizeof line, "D %s\n", key);
            w_log_line(line);
            acked[i] = acked[--n_acked];
        } else { /* read one back */
            if (n_acked == 0) continue;
            char key[32];
            snprintf(key, sizeof key, "s%d-%d", cycle, acked[h_rand_below(&rng, n_acked)]);
            backlite_buf b = {NULL, 0};
            err = NULL;
            rc = backlite_storage_get(s, K(key), &b, NULL, &err);
            if (rc == BACKLITE_RESULT_OK) {
                size_t len = r_value_of_key(key, v, MAX_VALUE);
                if (b.len != len || memcmp(b.data, v, len) != 0) {
                    fprintf(stderr, "writer: get(%s) returned wrong bytes\n", key);
                    _exit(3);
                }
                backlite_buf_free(&b);
            } else if (rc != BACKLITE_RESULT_NOT_FOUND) {
                w_die("get", rc, err);
            }
            backlite_error_free(err);
        }
    }
}

/* ------------------------------------------------------------------ driver */

enum { KIND_SET = 'S', KIND_MEMO = 'M' };

typedef struct {
    char key[32];
    uint32_t len, crc;
    char kind;
    bool expiring;
    bool deleting; /* a delete was started: the entry may be gone */
    bool deleted;  /* a delete was acknowledged: the entry must be gone */
} rec;

/* what the log of one file says, parsed as it grows */
typedef struct {
    rec *recs;
    size_t n, cap;
    int *slots; /* open addressing: index + 1 into recs, 0 = empty */
    size_t nslots;
    /* the acknowledged writes of the current cycle, in order: record indexes */
    size_t *cycle_writes;
    size_t n_cycle, cap_cycle;
    off_t log_offset;
    bool opened; /* the current writer logged that its open returned */
} ledger;

static void ledger_free(ledger *l) {
    free(l->recs);
    free(l->slots);
    free(l->cycle_writes);
    memset(l, 0, sizeof *l);
}

static void ledger_reset(ledger *l) {
    ledger_free(l);
    l->nslots = 1 << 16;
    l->slots = calloc(l->nslots, sizeof *l->slots);
}

static void ledger_grow_slots(ledger *l);

static rec *ledger_find(ledger *l, const char *key, bool create) {
    size_t h = (size_t)r_fnv(key, strlen(key)) & (l->nslots - 1);
    for (;;) {
        int at = l->slots[h];
        if (at == 0) break;
        if (strcmp(l->recs[at - 1].key, key) == 0) return &l->recs[at - 1];
        h = (h + 1) & (l->nslots - 1);
    }
    if (!create) return NULL;
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 4096;
        l->recs = realloc(l->recs, l->cap * sizeof *l->recs);
    }
    rec *r = &l->recs[l->n++];
    memset(r, 0, sizeof *r);
    snprintf(r->key, sizeof r->key, "%s", key);
    l->slots[h] = (int)l->n;
    if (l->n * 2 > l->nslots) ledger_grow_slots(l);
    return r;
}

static void ledger_grow_slots(ledger *l) {
    free(l->slots);
    l->nslots *= 2;
    l->slots = calloc(l->nslots, sizeof *l->slots);
    for (size_t i = 0; i < l->n; i++) {
        size_t h = (size_t)r_fnv(l->recs[i].key, strlen(l->recs[i].key)) & (l->nslots - 1);
        while (l->slots[h] != 0) h = (h + 1) & (l->nslots - 1);
        l->slots[h] = (int)i + 1;
    }
}

static void ledger_note_write(ledger *l, rec *r) {
    if (l->n_cycle == l->cap_cycle) {
        l->cap_cycle = l->cap_cycle ? l->cap_cycle * 2 : 4096;
        l->cycle_writes = realloc(l->cycle_writes, l->cap_cycle * sizeof *l->cycle_writes);
    }
    l->cycle_writes[l->n_cycle++] = (size_t)(r - l->recs);
}

/* reads the complete lines appended to the log since the last call */
static void ledger_read(ledger *l, const char *log_path) {
    size_t len = 0;
    uint8_t *all = h_read_file(log_path, &len);
    if (all == NULL) return; /* killed before it opened the log */
    char *p = (char *)all + l->log_offset, *end = (char *)all + len;
    while (p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        if (nl == NULL) break; /* a line cut by the kill: never acknowledged in full */
        *nl = '\0';
        char key[32];
        unsigned len_u = 0, crc = 0;
        int expiring = 0;
        if (p[0] == 'O') {
            l->opened = true;
        } else if (sscanf(p, "S %31s %u %x %d", key, &len_u, &crc, &expiring) == 4 ||
                   sscanf(p, "M %31s %u %x", key, &len_u, &crc) == 3) {
            rec *r = ledger_find(l, key, true);
            r->kind = p[0];
            r->len = len_u;
            r->crc = crc;
            r->expiring = expiring != 0;
            ledger_note_write(l, r);
        } else if (sscanf(p, "d %31s", key) == 1) {
            ledger_find(l, key, true)->deleting = true;
        } else if (sscanf(p, "D %31s", key) == 1) {
            ledger_find(l, key, true)->deleted = true;
        } else {
            h_fail_(__FILE__, __LINE__, "unreadable log line: %s", p);
        }
        p = nl + 1;
    }
    l->log_offset = (off_t)(p - (char *)all);
    free(all);
}

typedef struct {
    char (*keys)[32];
    size_t n, cap;
    int too_long;
} key_list;

static int32_t collect_key(void *ud, const uint8_t *key, size_t len) {
    key_list *kl = ud;
    if (len >= 32) {
        kl->too_long++;
        return 0;
    }
    if (kl->n == kl->cap) {
        kl->cap = kl->cap ? kl->cap * 2 : 256;
        kl->keys = realloc(kl->keys, kl->cap * sizeof *kl->keys);
    }
    memcpy(kl->keys[kl->n], key, len);
    kl->keys[kl->n][len] = '\0';
    kl->n++;
    return 0;
}

typedef struct {
    int kills, kills_in_open, new_files;
    uint64_t acked_writes, live_checked, deletes_checked, durable_checked;
} totals;

/* everything that must hold after a kill */
static void verify_after_kill(const char *path, ledger *l, int policy, int cycle, totals *t) {
    backlite_storage *s = OPEN_WITH(path, MAX_SIZE, BACKLITE_EVICTION_POLICY_LEAST_RECENTLY_USED);
    if (s == NULL) {
        h_fail_(__FILE__, __LINE__, "cycle %d: the file does not open after the kill", cycle);
        return;
    }
    backlite_check_report report;
    memset(&report, 0, sizeof report);
    CHECK_OK(backlite_storage_check(s, 0, &report, &err));
    if (!report.integrity_ok || !report.healthy)
        h_fail_(__FILE__, __LINE__,
                "cycle %d: check after the kill: integrity_ok %d healthy %d damaged %" PRIu64 " orphans %" PRIu64
                " recorded %" PRIu64 "/%" PRIu64 " actual %" PRIu64 "/%" PRIu64,
                cycle, report.integrity_ok, report.healthy, report.damaged, report.orphan_values,
                report.recorded_count, report.recorded_total_size, report.actual_count, report.actual_total_size);

    /* every live key holds the bytes its key determines; a recount equals stats */
    backlite_stats before = STATS(s);
    key_list kl = {0};
    CHECK_OK(backlite_storage_keys(s, collect_key, &kl, &err));
    CHECK_EQ(kl.too_long, 0);
    static uint8_t want[MAX_VALUE];
    uint64_t found = 0, found_size = 0;
    for (size_t i = 0; i < kl.n; i++) {
        const char *key = kl.keys[i];
        backlite_buf b = {NULL, 0};
        backlite_error *err = NULL;
        backlite_result rc = backlite_storage_get(s, K(key), &b, NULL, &err);
        rec *r = ledger_find(l, key, false);
        if (rc == BACKLITE_RESULT_OK) {
            size_t len = r_value_of_key(key, want, MAX_VALUE);
            if (b.len != len || memcmp(b.data, want, len) != 0)
                h_fail_(__FILE__, __LINE__, "cycle %d: %s holds wrong bytes (%zu bytes, expected %zu)", cycle, key,
                        b.len, len);
            if (r != NULL && (r->len != len || r->crc != r_crc32(want, len)))
                h_fail_(__FILE__, __LINE__, "cycle %d: the log's checksum of %s disagrees", cycle, key);
            found++;
            found_size += b.len;
        } else if (!(rc == BACKLITE_RESULT_NOT_FOUND && (r == NULL || r->expiring))) {
            /* listed, then gone: only an expiring entry (or one never acknowledged) may */
            h_fail_(__FILE__, __LINE__, "cycle %d: get(%s) of a listed key: %s%s%s", cycle, key, h_rc_name(rc),
                    err ? ": " : "", err ? backlite_error_message(err) : "");
        }
        backlite_error_free(err);
        backlite_buf_free(&b);
    }
    backlite_stats after = STATS(s);
    CHECK(before.count >= found && found >= after.count); /* only expiry may remove entries meanwhile */
    if (before.count == after.count) {
        if (found != before.count || found_size != before.total_size)
            h_fail_(__FILE__, __LINE__, "cycle %d: stats say %" PRIu64 " entries / %" PRIu64 " bytes, a recount %" PRIu64
                    " / %" PRIu64, cycle, before.count, before.total_size, found, found_size);
    }
    CHECK(before.total_size <= MAX_SIZE);
    t->live_checked += found;

    /* acknowledged deletes stay deleted */
    for (size_t i = 0; i < l->n; i++) {
        if (!l->recs[i].deleted) continue;
        CHECK_RC(backlite_storage_contains(s, K(l->recs[i].key), &err), BACKLITE_RESULT_NOT_FOUND);
        t->deletes_checked++;
    }

    /* nothing acknowledged was lost: with FIFO, the newest writes of this cycle that
       fit in max_size (with room for one call in flight) cannot have been evicted */
    if (policy == FIFO) {
        uint64_t newer = 0;
        for (size_t j = l->n_cycle; j-- > 0;) {
            rec *r = &l->recs[l->cycle_writes[j]];
            newer += r->len;
            if (newer + MAX_IN_FLIGHT > MAX_SIZE) break;
            if (r->kind != KIND_SET || r->expiring || r->deleting) continue;
            backlite_error *err = NULL;
            backlite_result rc = backlite_storage_contains(s, K(r->key), &err);
            if (rc != BACKLITE_RESULT_OK)
                h_fail_(__FILE__, __LINE__, "cycle %d: acknowledged %s is lost (%s), though only %" PRIu64
                        " bytes were written after it", cycle, r->key, h_rc_name(rc), newer - r->len);
            backlite_error_free(err);
            t->durable_checked++;
        }
    }
    free(kl.keys);
    backlite_storage_free(s);
}

static void sleep_ms(int64_t ms) {
    if (ms > 0) h_sleep_ms(ms); /* the kill's random moment: the point of this test */
}

static void writers_killed_at_random_moments_leave_a_sound_file(void) {
    long kills = r_env_long("BACKLITE_CRASH_KILLS", 100);
    uint64_t rng = (uint64_t)r_env_long("BACKLITE_CRASH_SEED", 1);
    alarm((unsigned)(120 + kills * 3));
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    REQUIRE(n > 0);
    self[n] = '\0';
    int64_t start = h_now_ms();
    totals t = {0};
    ledger l = {0};
    char path[PATH_MAX], log_path[PATH_MAX];
    for (int cycle = 0; cycle < kills; cycle++) {
        bool fresh = cycle % NEW_FILE_EVERY == 0;
        if (fresh) {
            REQUIRE(snprintf(path, sizeof path, "%s/file%03d.db", h_tmp_root(), t.new_files) < (int)sizeof path);
            REQUIRE(snprintf(log_path, sizeof log_path, "%s/file%03d.log", h_tmp_root(), t.new_files) <
                    (int)sizeof log_path);
            ledger_reset(&l);
            t.new_files++;
        }
        int policy = cycle % 5;
        l.n_cycle = 0;
        l.opened = false;
        int64_t delay = fresh ? (int64_t)h_rand_below(&rng, 8) : 1 + (int64_t)h_rand_below(&rng, 150);
        char a_policy[16], a_cycle[16], a_seed[32];
        snprintf(a_policy, sizeof a_policy, "%d", policy);
        snprintf(a_cycle, sizeof a_cycle, "%d", cycle);
        snprintf(a_seed, sizeof a_seed, "%" PRIu64, h_rand(&rng));
        pid_t pid = fork();
        REQUIRE(pid >= 0);
        if (pid == 0) {
            execl(self, "robust_crash", "writer", path, a_policy, a_cycle, log_path, a_seed, (char *)NULL);
            _exit(127);
        }
        if (policy == FIFO && !fresh) {
            /* the cycles that prove nothing is lost must get to write: their random
               moment counts from the writer's open, however slow the machine */
            for (int64_t waited = 0; !l.opened && waited < 10000; waited++) {
                ledger_read(&l, log_path);
                if (!l.opened) sleep_ms(1);
            }
        }
        sleep_ms(delay);
        kill(pid, SIGKILL);
        int status = 0;
        waitpid(pid, &status, 0);
        if (!(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)) {
            h_fail_(__FILE__, __LINE__, "cycle %d: the writer ended by itself (exit %d): see its message above", cycle,
                    WIFEXITED(status) ? WEXITSTATUS(status) : -1);
            break;
        }
        t.kills++;
        ledger_read(&l, log_path);
        if (!l.opened) t.kills_in_open++;
        t.acked_writes += l.n_cycle;
        int failures = atomic_load(&h_st()->failures);
        verify_after_kill(path, &l, policy, cycle, &t);
        if (atomic_load(&h_st()->failures) != failures) {
            fprintf(stderr, "# cycle %d failed (policy %d, delay %" PRId64 " ms, file %s); stopping\n", cycle, policy,
                    delay, path);
            setenv("BACKLITE_TEST_KEEP_TMP", "1", 1);
            break;
        }
    }
    ledger_free(&l);
    printf("# kills survived: %d of %ld (%d during open, %d fresh files), %.1f s\n", t.kills, kills,
           t.kills_in_open, t.new_files, r_seconds_since(start));
    printf("# acknowledged writes: %" PRIu64 "; live entries verified: %" PRIu64
           "; deletes verified: %" PRIu64 "; acknowledged writes proven not lost (FIFO cycles): %" PRIu64 "\n",
           t.acked_writes, t.live_checked, t.deletes_checked, t.durable_checked);
    CHECK_EQ(t.kills, kills);
    CHECK(t.durable_checked > 0);
}

int main(int argc, char **argv) {
    if (argc == 7 && strcmp(argv[1], "writer") == 0) return writer_main(argv);
    h_begin();
    RUN(writers_killed_at_random_moments_leave_a_sound_file);
    return h_end();
}
