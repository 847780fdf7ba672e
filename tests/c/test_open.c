/*
 * backlite_storage_open: what is created, what is refused, and that a refused file is
 * left exactly as it was (same bytes, no -wal / -shm / -journal beside it).
 */
#include <dirent.h>

#include "backlite.h"
#include "harness.h"

static bool side_file_exists(const char *path, const char *suffix) {
    char p[PATH_MAX + 16];
    snprintf(p, sizeof p, "%s%s", path, suffix);
    return h_exists(p);
}

static void expect_no_side_files_(const char *file, int line, const char *path) {
    const char *suffixes[] = {"-wal", "-shm", "-journal"};
    for (int i = 0; i < 3; i++)
        if (side_file_exists(path, suffixes[i])) h_fail_(file, line, "%s%s was left behind", path, suffixes[i]);
}
#define EXPECT_NO_SIDE_FILES(path) expect_no_side_files_(__FILE__, __LINE__, (path))

/* opening `path` fails with `expected`, and the file keeps its exact bytes */
static void expect_refused_untouched_(const char *file, int line, const char *path, backlite_result expected) {
    size_t before_len = 0, after_len = 0;
    uint8_t *before = h_read_file(path, &before_len);
    if (before == NULL) {
        h_fail_(file, line, "cannot read %s before the open", path);
        return;
    }
    backlite_storage *sentinel = (backlite_storage *)(uintptr_t)0x1234;
    backlite_storage *s = sentinel;
    backlite_error *err = NULL;
    backlite_result rc = backlite_storage_open(path, NULL, &s, &err);
    h_check_rc_(file, line, "backlite_storage_open", rc, expected, err);
    backlite_error_free(err);
    if (rc == BACKLITE_RESULT_OK) {
        backlite_storage_free(s);
    } else if (s != sentinel) {
        h_fail_(file, line, "storage_out written although the open failed");
    }
    /* and with err == NULL */
    s = sentinel;
    rc = backlite_storage_open(path, NULL, &s, NULL);
    if (rc != expected) h_fail_(file, line, "second open (err NULL): %s", h_rc_name(rc));
    if (rc == BACKLITE_RESULT_OK) backlite_storage_free(s);
    uint8_t *after = h_read_file(path, &after_len);
    if (after == NULL)
        h_fail_(file, line, "%s cannot be read after the open", path);
    else if (after_len != before_len || memcmp(before, after, before_len) != 0)
        h_fail_(file, line, "%s was modified by the failed open (%zu bytes before, %zu after)", path, before_len,
                after_len);
    free(before);
    free(after);
    expect_no_side_files_(file, line, path);
}
#define EXPECT_REFUSED_UNTOUCHED(path, expected) expect_refused_untouched_(__FILE__, __LINE__, (path), (expected))

static void a_missing_file_is_created(void) {
    const char *path = tmp_path("new.db");
    CHECK(!h_exists(path));
    backlite_storage *s = OPEN(path, NULL);
    REQUIRE(s != NULL);
    CHECK(h_exists(path));
    SET(s, "k", "v");
    GET_EQ(s, "k", "v");
    backlite_storage_free(s);
    CHECK(h_exists(path));
}

static void a_missing_parent_directory_is_not_created(void) {
    char dir[PATH_MAX], path[PATH_MAX + 16];
    snprintf(dir, sizeof dir, "%s", tmp_path("no-such-dir"));
    snprintf(path, sizeof path, "%s/cache.db", dir);
    backlite_storage *sentinel = (backlite_storage *)(uintptr_t)0x1234;
    backlite_storage *s = sentinel;
    CHECK_RC(backlite_storage_open(path, NULL, &s, &err), BACKLITE_RESULT_IO);
    CHECK(s == sentinel);
    CHECK(!h_exists(dir));
    CHECK_EQ(backlite_storage_open(path, NULL, &s, NULL), BACKLITE_RESULT_IO);
    CHECK(!h_exists(dir));
}

static void an_empty_existing_file_is_accepted(void) {
    const char *path = tmp_path("empty.db");
    REQUIRE(h_write_file(path, "", 0));
    backlite_storage *s = OPEN(path, NULL);
    REQUIRE(s != NULL);
    SET(s, "k", "v");
    backlite_storage_free(s);
    s = OPEN(path, NULL);
    REQUIRE(s != NULL);
    GET_EQ(s, "k", "v");
    backlite_storage_free(s);
}

static void a_text_file_is_not_a_cache_and_is_left_untouched(void) {
    const char *path = tmp_path("notes.txt");
    const char text[] = "These are my notes.\nDo not overwrite them.\n";
    REQUIRE(h_write_file(path, text, strlen(text)));
    EXPECT_REFUSED_UNTOUCHED(path, BACKLITE_RESULT_NOT_A_CACHE);
    const char *tiny = tmp_path("tiny.txt");
    REQUIRE(h_write_file(tiny, "hi\n", 3));
    EXPECT_REFUSED_UNTOUCHED(tiny, BACKLITE_RESULT_NOT_A_CACHE);
}

static void a_file_of_random_bytes_is_not_a_cache_and_is_left_untouched(void) {
    const char *path = tmp_path("random.bin");
    static uint8_t bytes[8192];
    uint64_t rng = 7;
    for (size_t i = 0; i < sizeof bytes; i++) bytes[i] = (uint8_t)h_rand(&rng);
    REQUIRE(h_write_file(path, bytes, sizeof bytes));
    EXPECT_REFUSED_UNTOUCHED(path, BACKLITE_RESULT_NOT_A_CACHE);
}

static bool make_foreign_sqlite(const char *path, bool wal) {
    char cmd[PATH_MAX + 600];
    snprintf(cmd, sizeof cmd,
             "python3 -c 'import sqlite3, sys\n"
             "c = sqlite3.connect(sys.argv[1])\n"
             "%s"
             "c.execute(\"create table people (name text primary key, age integer)\")\n"
             "c.execute(\"create table entries (key blob, value blob)\")\n"
             "c.executemany(\"insert into people values (?, ?)\", [(\"ann\", 41), (\"bob\", 37)])\n"
             "c.commit()\n"
             "c.close()' '%s'",
             wal ? "c.execute(\"pragma journal_mode=wal\")\n" : "", path);
    return system(cmd) == 0 && h_exists(path);
}

static void another_programs_sqlite_database_is_not_a_cache(void) {
    if (!h_have_python_sqlite()) SKIP("python3 with sqlite3 is not available to make a foreign database");
    const char *path = tmp_path("foreign.sqlite");
    REQUIRE(make_foreign_sqlite(path, false));
    EXPECT_REFUSED_UNTOUCHED(path, BACKLITE_RESULT_NOT_A_CACHE);
    /* and the foreign program can still read its data */
    char cmd[PATH_MAX + 300];
    snprintf(cmd, sizeof cmd,
             "python3 -c 'import sqlite3, sys\n"
             "c = sqlite3.connect(sys.argv[1])\n"
             "assert c.execute(\"select count(*) from people\").fetchone()[0] == 2\n"
             "assert [r[0] for r in c.execute(\"select name from sqlite_master order by name\")] == "
             "[\"entries\", \"people\", \"sqlite_autoindex_people_1\"]\n"
             "c.close()' '%s'",
             path);
    CHECK(system(cmd) == 0);
}

static void another_programs_wal_database_is_not_a_cache(void) {
    if (!h_have_python_sqlite()) SKIP("python3 with sqlite3 is not available to make a foreign database");
    const char *path = tmp_path("foreign-wal.sqlite");
    REQUIRE(make_foreign_sqlite(path, true));
    EXPECT_NO_SIDE_FILES(path);
    EXPECT_REFUSED_UNTOUCHED(path, BACKLITE_RESULT_NOT_A_CACHE);
}

static void a_directory_is_refused_with_io(void) {
    const char *path = tmp_path("a-directory");
    REQUIRE(mkdir(path, 0700) == 0);
    backlite_storage *sentinel = (backlite_storage *)(uintptr_t)0x1234;
    backlite_storage *s = sentinel;
    CHECK_RC(backlite_storage_open(path, NULL, &s, &err), BACKLITE_RESULT_IO);
    CHECK(s == sentinel);
    EXPECT_NO_SIDE_FILES(path);
    DIR *d = opendir(path);
    REQUIRE(d != NULL);
    int entries = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) entries++;
    closedir(d);
    CHECK_EQ(entries, 0); /* nothing created inside it */
}

/* SQLite makes <path>-wal and <path>-shm beside the file: when it cannot (here the -wal
 * name is taken by a folder; a folder that cannot be written does the same), the open
 * is IO and its message names the file (it said only "setting synchronous=NORMAL:
 * unable to open database file"). */
static void a_cache_whose_wal_cannot_be_made_is_io_naming_the_file(void) {
    const char *path = tmp_path("walless.db");
    char wal[PATH_MAX + 8];
    snprintf(wal, sizeof wal, "%s-wal", path);
    REQUIRE(mkdir(wal, 0700) == 0);
    backlite_storage *sentinel = (backlite_storage *)(uintptr_t)0x1234;
    backlite_storage *s = sentinel;
    backlite_error *e = NULL;
    CHECK_EQ(backlite_storage_open(path, NULL, &s, &e), BACKLITE_RESULT_IO);
    CHECK(s == sentinel);
    REQUIRE(e != NULL);
    CHECK_EQ(backlite_error_result(e), BACKLITE_RESULT_IO);
    const char *msg = backlite_error_message(e);
    if (strstr(msg, path) == NULL || strstr(msg, "-wal") == NULL)
        h_fail_(__FILE__, __LINE__, "the message does not name %s and its -wal: %s", path, msg);
    backlite_error_free(e);
    REQUIRE(rmdir(wal) == 0);
}

static void a_non_utf8_path_is_an_invalid_argument(void) {
    const char *names[] = {"bad-\xff\xfe-name.db", "bad-\xc3\x28.db" /* a broken 2-byte sequence */};
    for (int i = 0; i < 2; i++) {
        const char *path = tmp_path(names[i]);
        backlite_storage *sentinel = (backlite_storage *)(uintptr_t)0x1234;
        backlite_storage *s = sentinel;
        CHECK_RC(backlite_storage_open(path, NULL, &s, &err), BACKLITE_RESULT_INVALID_ARGUMENT);
        CHECK(s == sentinel);
        CHECK(!h_exists(path));
    }
}

static void a_utf8_path_is_accepted(void) {
    const char *path = tmp_path("caf\xc3\xa9-\xe2\x98\x83.db"); /* café-☃ */
    backlite_storage *s = OPEN(path, NULL);
    REQUIRE(s != NULL);
    SET(s, "k", "v");
    backlite_storage_free(s);
    CHECK(h_exists(path));
}

static void open_rejects_a_null_path_or_out_pointer(void) {
    const char *path = tmp_path("never-created.db");
    backlite_storage *sentinel = (backlite_storage *)(uintptr_t)0x1234;
    backlite_storage *s = sentinel;
    CHECK_RC(backlite_storage_open(NULL, NULL, &s, &err), BACKLITE_RESULT_NULL_PARAMETER);
    CHECK(s == sentinel);
    CHECK_RC(backlite_storage_open(path, NULL, NULL, &err), BACKLITE_RESULT_NULL_PARAMETER);
    CHECK_EQ(backlite_storage_open(path, NULL, NULL, NULL), BACKLITE_RESULT_NULL_PARAMETER);
    CHECK_EQ(backlite_storage_open(NULL, NULL, &s, NULL), BACKLITE_RESULT_NULL_PARAMETER);
    CHECK(!h_exists(path)); /* checked before anything is created */
}

static void memory_storages_are_private_per_handle(void) {
    bool file_before = h_exists(":memory:");
    backlite_storage *a = OPEN(":memory:", NULL);
    backlite_storage *b = OPEN(":memory:", NULL);
    REQUIRE(a != NULL && b != NULL);
    SET(a, "k", "in a");
    GET_MISSING(b, "k");
    SET(b, "k", "in b");
    GET_EQ(a, "k", "in a");
    GET_EQ(b, "k", "in b");
    CHECK_EQ(STATS(a).count, 1);
    CHECK_OK(backlite_storage_clear(b, &err));
    GET_EQ(a, "k", "in a");
    backlite_storage_free(a);
    backlite_storage_free(b);
    a = OPEN(":memory:", NULL); /* a new in-memory cache is empty */
    REQUIRE(a != NULL);
    GET_MISSING(a, "k");
    CHECK_EQ(STATS(a).count, 0);
    backlite_storage_free(a);
    if (!file_before) CHECK(!h_exists(":memory:")); /* no file of that name was made */
}

static void many_handles_may_open_one_file(void) {
    const char *path = tmp_path("many.db");
    backlite_storage *h[4];
    for (int i = 0; i < 4; i++) {
        h[i] = OPEN(path, NULL);
        REQUIRE(h[i] != NULL);
    }
    for (int i = 0; i < 4; i++) {
        char k[32];
        snprintf(k, sizeof k, "k%d", i);
        SET(h[i], k, k);
    }
    for (int i = 0; i < 4; i++) {
        CHECK_EQ(STATS(h[i]).count, 4);
        GET_EQ(h[i], "k0", "k0");
        GET_EQ(h[i], "k3", "k3");
    }
    for (int i = 0; i < 4; i++) backlite_storage_free(h[i]);
}

static void a_cache_file_opens_again(void) {
    const char *path = tmp_path("again.db");
    for (int round = 0; round < 3; round++) {
        backlite_storage *s = OPEN(path, NULL);
        REQUIRE(s != NULL);
        char k[32];
        snprintf(k, sizeof k, "r%d", round);
        SET(s, k, "v");
        CHECK_EQ(STATS(s).count, round + 1);
        backlite_storage_free(s);
    }
}

/* the names in the working directory, sorted and joined by spaces */
static void cwd_listing(char *out, size_t n) {
    struct dirent **names = NULL;
    int count = scandir(".", &names, NULL, alphasort);
    out[0] = '\0';
    for (int i = 0; i < count; i++) {
        if (strcmp(names[i]->d_name, ".") != 0 && strcmp(names[i]->d_name, "..") != 0) {
            strncat(out, names[i]->d_name, n - strlen(out) - 2);
            strncat(out, " ", n - strlen(out) - 1);
        }
        free(names[i]);
    }
    free(names);
}

/*
 * A path is a path: a name that starts with "file:" is a file of that name, never a URI
 * that SQLite would read as another file (or as memory). Relative names, so the case
 * runs in a folder of its own as the working directory.
 */
static void file_uri_names_are_plain_paths(void) {
    char dir[PATH_MAX], cwd[PATH_MAX], abs_uri[PATH_MAX + 16], seen[4096];
    snprintf(dir, sizeof dir, "%s", tmp_path("uri-dir"));
    REQUIRE(mkdir(dir, 0700) == 0);
    REQUIRE(getcwd(cwd, sizeof cwd) != NULL);
    REQUIRE(chdir(dir) == 0);

    const char notes[] = "not a cache\n";
    REQUIRE(h_write_file("t.txt", notes, strlen(notes)));
    bool foreign = h_have_python_sqlite() && make_foreign_sqlite("rel.db", false);
    size_t rel_len = 0;
    uint8_t *rel = foreign ? h_read_file("rel.db", &rel_len) : NULL;

    const char *names[] = {"file:rel.db", "file:t.txt", "file::memory:"};
    for (int i = 0; i < 3; i++) {
        backlite_storage *s = OPEN(names[i], NULL);
        REQUIRE(s != NULL);
        SET(s, "k", names[i]);
        backlite_storage_free(s);
        CHECK(h_exists(names[i])); /* the file of exactly that name */
        s = OPEN(names[i], NULL);  /* and it persists: not memory */
        REQUIRE(s != NULL);
        GET_EQ(s, "k", names[i]);
        backlite_storage_free(s);
        EXPECT_NO_SIDE_FILES(names[i]);
    }
    size_t len = 0;
    uint8_t *after = h_read_file("t.txt", &len);
    CHECK(after != NULL && len == strlen(notes) && memcmp(after, notes, len) == 0);
    free(after);
    EXPECT_NO_SIDE_FILES("t.txt");
    if (foreign) {
        after = h_read_file("rel.db", &len);
        CHECK(after != NULL && len == rel_len && memcmp(after, rel, len) == 0);
        free(after);
        EXPECT_NO_SIDE_FILES("rel.db");
    }
    free(rel);
    cwd_listing(seen, sizeof seen);
    CHECK_STR_EQ(seen, foreign ? "file::memory: file:rel.db file:t.txt rel.db t.txt "
                            : "file::memory: file:t.txt t.txt ");

    /* "file:/abs/x.db" is x.db in a folder "file:" here, which does not exist */
    snprintf(abs_uri, sizeof abs_uri, "file:%s/abs.db", dir);
    backlite_storage *sentinel = (backlite_storage *)(uintptr_t)0x1234, *s = sentinel;
    CHECK_RC(backlite_storage_open(abs_uri, NULL, &s, &err), BACKLITE_RESULT_IO);
    CHECK(s == sentinel);
    char again[4096];
    cwd_listing(again, sizeof again);
    CHECK_STR_EQ(again, seen); /* no abs.db, no temporary file */
    REQUIRE(chdir(cwd) == 0);
}

int main(void) {
    h_begin();
    RUN(a_missing_file_is_created);
    RUN(a_missing_parent_directory_is_not_created);
    RUN(an_empty_existing_file_is_accepted);
    RUN(a_text_file_is_not_a_cache_and_is_left_untouched);
    RUN(a_file_of_random_bytes_is_not_a_cache_and_is_left_untouched);
    RUN(another_programs_sqlite_database_is_not_a_cache);
    RUN(another_programs_wal_database_is_not_a_cache);
    RUN(a_directory_is_refused_with_io);
    RUN(a_cache_whose_wal_cannot_be_made_is_io_naming_the_file);
    RUN(a_non_utf8_path_is_an_invalid_argument);
    RUN(a_utf8_path_is_accepted);
    RUN(open_rejects_a_null_path_or_out_pointer);
    RUN(memory_storages_are_private_per_handle);
    RUN(many_handles_may_open_one_file);
    RUN(a_cache_file_opens_again);
    RUN(file_uri_names_are_plain_paths);
    return h_end();
}
