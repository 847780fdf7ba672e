/*
 * test_killed_creation.c: a process killed while it creates a new cache (the README's
 * "Opening": a missing file is built in a private folder beside it and linked into
 * place) leaves nothing behind for good. Each kill inside that window left its folder,
 * ".backlite-new-<16 hex>" holding a half-built cache.db and its journal, beside the
 * cache for ever (158 of 300 kills at random moments of an open). The next creation in
 * that folder removes the folders of dead builders; it leaves a live builder's (it
 * holds the folder's flock from before it makes anything in it), and anything that is
 * not exactly such a folder of ours.
 */
#include "harness.h"

#include <dirent.h>
#include <sys/file.h>

/* The names in `dir` (but . and ..), sorted and joined by spaces. */
static void listing(const char *dir, char *out, size_t n) {
    struct dirent **names = NULL;
    int count = scandir(dir, &names, NULL, alphasort);
    out[0] = '\0';
    for (int i = 0; i < count; i++) {
        const char *name = names[i]->d_name;
        if (strcmp(name, ".") != 0 && strcmp(name, "..") != 0) {
            strncat(out, name, n - strlen(out) - 1);
            strncat(out, " ", n - strlen(out) - 1);
        }
        free(names[i]);
    }
    free(names);
}

/* opens (creating) `path` in a child, killed after `delay_us` */
static void kill_an_opener(const char *path, long delay_us) {
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        backlite_storage *s = NULL;
        backlite_storage_open(path, NULL, &s, NULL);
        _exit(0); /* (its handle is left open: the kill usually comes first) */
    }
    struct timespec t = {0, delay_us * 1000};
    nanosleep(&t, NULL);
    kill(pid, SIGKILL);
    int status;
    waitpid(pid, &status, 0);
}

static void openers_killed_while_creating_leave_nothing_behind(void) {
    const char *dir = tmp_path("killed");
    REQUIRE(mkdir(dir, 0700) == 0);
    char path[PATH_MAX], seen[8192];
    snprintf(path, sizeof path, "%s/c.db", dir);
    uint64_t r = 12;
    /* valgrind makes an open ~50 times slower: the window moves later */
    long scale = h_under_valgrind() ? 60 : 1;
    for (int i = 0; i < 60; i++) {
        remove_cache_file(path);
        kill_an_opener(path, (long)h_rand_below(&r, 3000) * scale);
    }
    remove_cache_file(path);
    backlite_storage *s = OPEN(path, NULL);
    REQUIRE(s != NULL);
    SET(s, "k", "v");
    backlite_storage_free(s);
    listing(dir, seen, sizeof seen);
    CHECK_STR_EQ(seen, "c.db ");
}

/* makes `dir`/`name`/ holding `files` (space-separated) */
static void make_folder(const char *dir, const char *name, const char *files) {
    char folder[PATH_MAX], file[PATH_MAX + 64], list[256];
    snprintf(folder, sizeof folder, "%s/%s", dir, name);
    CHECK(mkdir(folder, 0700) == 0);
    snprintf(list, sizeof list, "%s", files);
    for (char *f = strtok(list, " "); f != NULL; f = strtok(NULL, " ")) {
        snprintf(file, sizeof file, "%s/%s", folder, f);
        CHECK(h_write_file(file, "x", 1));
    }
}

static void only_dead_builders_folders_go(void) {
    const char *dir = tmp_path("others");
    REQUIRE(mkdir(dir, 0700) == 0);
    char path[PATH_MAX], held[PATH_MAX], seen[8192], link_to[PATH_MAX];
    make_folder(dir, ".backlite-new-00000000000000aa", "cache.db cache.db-journal"); /* dead: goes */
    make_folder(dir, ".backlite-new-00000000000000bb", "cache.db");                  /* held: stays */
    make_folder(dir, ".backlite-new-00000000000000cc", "cache.db notes.txt");        /* not ours: stays */
    make_folder(dir, ".backlite-new-00000000000000dd", "");        /* empty, unlocked: goes */
    make_folder(dir, "backlite-new-00000000000000ee", "cache.db"); /* another name: stays */
    snprintf(link_to, sizeof link_to, "%s/.backlite-new-00000000000000ff", dir);
    make_folder(dir, "target", "cache.db");
    CHECK(symlink("target", link_to) == 0); /* a link: stays, and what it leads to */
    snprintf(held, sizeof held, "%s/.backlite-new-00000000000000bb", dir);
    int fd = open(held, O_RDONLY | O_DIRECTORY);
    REQUIRE(fd >= 0);
    REQUIRE(flock(fd, LOCK_EX) == 0);

    snprintf(path, sizeof path, "%s/c.db", dir);
    backlite_storage *s = OPEN(path, NULL);
    REQUIRE(s != NULL);
    backlite_storage_free(s);
    listing(dir, seen, sizeof seen);
    CHECK_STR_EQ(seen, ".backlite-new-00000000000000bb .backlite-new-00000000000000cc "
                       ".backlite-new-00000000000000ff backlite-new-00000000000000ee c.db target ");
    char inside[PATH_MAX + 16];
    snprintf(inside, sizeof inside, "%s/target", dir);
    listing(inside, seen, sizeof seen);
    CHECK_STR_EQ(seen, "cache.db ");
    close(fd);
}

int main(void) {
    h_begin();
    RUN(openers_killed_while_creating_leave_nothing_behind);
    RUN(only_dead_builders_folders_go);
    return h_end();
}
