/* The folder of values kept in files beside a cache (`<cache>.values`), as the C tests
 * that look into it see it. */
#ifndef BACKLITE_TEST_VALUE_FOLDER_H
#define BACKLITE_TEST_VALUE_FOLDER_H

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "harness.h"

static inline const char *folder_of(const char *cache) {
    static char dir[PATH_MAX + 64];
    snprintf(dir, sizeof dir, "%s.values", cache);
    return dir;
}

/* How many names in the cache's folder start with `prefix` and end with `suffix`. */
static inline int count_named(const char *cache, const char *prefix, const char *suffix) {
    DIR *d = opendir(folder_of(cache));
    if (!d) return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name), sl = strlen(suffix);
        if (strncmp(e->d_name, prefix, strlen(prefix)) == 0 && len >= sl &&
            strcmp(e->d_name + len - sl, suffix) == 0)
            n++;
    }
    closedir(d);
    return n;
}

/* Makes every file in the cache's folder look two hours old: older than the sweep on
 * open waits for (an hour), so that only a lock keeps a file of a set in flight. */
static inline void age_folder(const char *cache) {
    DIR *d = opendir(folder_of(cache));
    REQUIRE(d != NULL);
    struct timespec old[2];
    clock_gettime(CLOCK_REALTIME, &old[0]);
    old[0].tv_sec -= 2 * 3600;
    old[1] = old[0];
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        REQUIRE(utimensat(dirfd(d), e->d_name, old, AT_SYMLINK_NOFOLLOW) == 0);
    }
    closedir(d);
}

#endif
