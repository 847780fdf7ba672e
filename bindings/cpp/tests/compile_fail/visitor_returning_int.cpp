// Must not compile: a keys() or get_chunks() visitor that returns an int. C's visitors
// return 0 to go on, and backlite.hpp took any return type convertible to bool, so a
// visitor written the C way (`return 0;`) ended the walk at its first key (and a chunk
// read with CALLBACK_FAILED). A visitor returns void or bool.
//
// compile_fail.cmake compiles this file once per BACKLITE_CASE: case 0 (the same calls
// with bool visitors) must compile, every other case must fail with the header's
// message, so the test cannot pass for a reason of its own (a missing include).
#include <backlite.hpp>

#include <string_view>

void walk(const backlite::Storage& s) {
#if BACKLITE_CASE == 0
  s.keys([](backlite::ByteView) { return true; });
  s.keys([](std::string_view) { return false; });
  s.keys([](backlite::ByteView) {});
  (void)s.get_chunks("k", [](backlite::ByteView) { return true; });
  (void)s.get_chunks("k", [](backlite::ByteView) {});
#elif BACKLITE_CASE == 1
  s.keys([](backlite::ByteView) { return 0; });
#elif BACKLITE_CASE == 2
  s.keys([](std::string_view) -> int { return 0; });
#elif BACKLITE_CASE == 3
  (void)s.get_chunks("k", [](backlite::ByteView) { return 0; });
#else
#error "unknown BACKLITE_CASE"
#endif
}
