// A set/get round trip through backlite.hpp, installed beside backlite.h.
#include <backlite.hpp>

#include <iostream>
#include <string>

int main(int argc, char** argv) {
    backlite::Storage cache(argc > 1 ? argv[1] : "app.db");
    cache.set("greeting", "hello from C++");
    std::optional<std::string> value = cache.get_string("greeting");
    if (value != "hello from C++") {
        std::cerr << "app: got back something else than was set\n";
        return 1;
    }
    std::cout << *value << "\n";
}
