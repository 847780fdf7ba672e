/*
 * Seventeenth probe round of the local cache contract (API.md), kept as tests.
 *
 * a_policy_index_missed_at_open_is_made_by_the_next_write: a handle opened under
 * least-frequently-used, first-in-first-out or last-in-first-out while another process
 * held the file's write lock opens without its policy's index (it cannot write it
 * then). Its victims were then found by a scan of every entry for as long as the
 * handle lived (a service opens once): every set that evicts was O(n), where every
 * operation is to stay O(log n). The handle's next write, once the lock is free, makes
 * the index. Checked in the file's schema, through python3's sqlite3: no duration is
 * asserted.
 */
#include "backlite.h"
#include "harness.h"
#include "lock_holder.h"

/* ----------------------------------------------- a policy index missed at open */

/* 1 if the file at `path` has an index named `index`, 0 if not, -1 if unknown */
static int has_index(const char *path, const char *index) {
    char cmd[PATH_MAX + 512];
    snprintf(cmd, sizeof cmd,
             "python3 -c 'import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
             "n = c.execute(\"SELECT count(*) FROM sqlite_master WHERE type = ? AND name = ?\", "
             "(\"index\", sys.argv[2])).fetchone()[0]; c.close(); sys.exit(0 if n else 3)' '%s' '%s'",
             path, index);
    int rc = system(cmd);
    if (rc == -1 || !WIFEXITED(rc)) return -1;
    return WEXITSTATUS(rc) == 0 ? 1 : WEXITSTATUS(rc) == 3 ? 0 : -1;
}

static void check_policy_index_made_later(backlite_eviction_policy policy, const char *index) {
    char name[32];
    snprintf(name, sizeof name, "index-%d.db", (int)policy);
    const char *path = tmp_path(name);
    backlite_storage *s = OPEN_WITH(path, 1000, BACKLITE_EVICTION_POLICY_LEAST_RECENTLY_USED);
    REQUIRE(s);
    SET(s, "a", "1");
    backlite_storage_free(s);
    REQUIRE(has_index(path, index) == 0);

    lock_holder h;
    REQUIRE(holder_start(&h, path));
    backlite_options *o = OPTIONS_SET(.max_size = 3, .policy = policy);
    REQUIRE(o);
    REQUIRE_OK(backlite_options_set_busy_timeout_ms(o, 100));
    s = OPEN(path, o); /* the index cannot be written now: it opens without it */
    backlite_options_free(o);
    holder_release(&h);
    holder_finish(&h);
    REQUIRE(s);
    CHECK_EQ(has_index(path, index), 0);

    SET(s, "b", "2");
    SET(s, "c", "3");
    SET(s, "d", "4"); /* evicts */
    CHECK_EQ(STATS(s).evictions, 1);
    CHECK_EQ(has_index(path, index), 1);
    backlite_storage_free(s);
}

static void a_policy_index_missed_at_open_is_made_by_the_next_write(void) {
    if (!h_have_python_sqlite()) SKIP("python3 with sqlite3 is not available to hold a lock");
    check_policy_index_made_later(BACKLITE_EVICTION_POLICY_LEAST_FREQUENTLY_USED, "entries_by_hits");
    check_policy_index_made_later(BACKLITE_EVICTION_POLICY_FIRST_IN_FIRST_OUT, "entries_by_creation");
    check_policy_index_made_later(BACKLITE_EVICTION_POLICY_LAST_IN_FIRST_OUT, "entries_by_creation");
}

int main(void) {
    h_begin();
    RUN(a_policy_index_missed_at_open_is_made_by_the_next_write);
    return h_end();
}
