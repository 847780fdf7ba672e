// The generated header compiles as C++ (cbindgen's cpp_compat) with -Wall -Wextra
// -Werror, and the library it declares links and agrees with it on the version.
#include "backlite.h"

#include <cstdio>
#include <cstring>

int main() {
    const char *version = backlite_version();
    if (std::strcmp(version, BACKLITE_VERSION_STRING) != 0) {
        std::fprintf(stderr, "header says %s, library says %s\n", BACKLITE_VERSION_STRING, version);
        return 1;
    }
    if (backlite_version_number() != BACKLITE_VERSION_NUMBER) {
        std::fprintf(stderr, "version numbers differ\n");
        return 1;
    }
    backlite_buf buf = {nullptr, 0};
    backlite_buf_free(&buf);
    backlite_error_free(nullptr);
    std::printf("backlite.h compiles as C++; library %s\n", version);
    return 0;
}
