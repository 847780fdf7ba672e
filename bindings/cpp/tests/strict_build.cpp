// Compiled only, never run: every template of backlite.hpp instantiated under the
// strictest warnings a user may build with (C++20, -Weffc++ besides the test programs'
// flags, -Werror), so that including the header never breaks such a build.
#include <backlite.hpp>

#include <array>
#include <chrono>
#include <cstddef>
#include <map>
#include <mutex>
#include <optional>
#include <ranges>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <vector>

namespace {

[[maybe_unused]] void every_call(const std::string& path) {
  using namespace std::chrono_literals;
  backlite::Options options;
  options.max_size(1 << 20)
      .eviction_policy(backlite::EvictionPolicy::least_frequently_used)
      .eviction_policy("least-recently-used")
      .default_expiration(1min)
      .default_expiration(backlite::Expiration::never())
      .busy_timeout(250ms)
      .lease_length(std::chrono::seconds(30))
      .file_threshold(4096)
      .file_threshold(std::nullopt)
      .version_tag("v1")
      .remote("")
      .remote_namespace("ns")
      .remote_timeout(std::chrono::duration<double>(0.5))
      .remote_mode(backlite::RemoteMode::read_only);
  backlite::Storage s(path, options);
  backlite::Storage moved(std::move(s));
  s = std::move(moved);

  const std::vector<std::byte> bytes{std::byte{1}, std::byte{2}};
  const std::array<char, 2> chars{{'a', 'b'}};
  s.set("k", "v");
  s.set(std::string("k"), bytes, 1s);
  s.set(chars, std::string_view("v"), backlite::Expiration::storage_default());
  s.set_many({{"a", "1"}, {"b", "2", 1min}});
  s.set_many(std::map<std::string, std::string>{{"c", "3"}});
  s.set_many(std::vector<backlite::Item>{{"d", "4"}});
  const std::vector<std::string> names{"e"};
  s.set_many(names | std::views::transform([](const std::string& n) {
               return std::pair<std::string, std::string>(n, n + n);
             }));
  [[maybe_unused]] std::optional<std::vector<std::byte>> v = s.get("k");
  [[maybe_unused]] std::optional<std::string> text = s.get_string("k");
  [[maybe_unused]] std::optional<backlite::Entry> e = s.get_entry("k");
  [[maybe_unused]] bool erased = s.erase("k") || s.remove("k") || s.contains("k");
  s.keys([](backlite::ByteView) {});
  s.keys([](std::string_view) { return true; });
  [[maybe_unused]] bool whole = s.get_chunks("k", [](backlite::ByteView) { return true; });
  if (std::optional<backlite::ValueReader> r = s.open_reader("k")) {
    std::array<char, 16> buf{};
    [[maybe_unused]] std::size_t n = r->read(buf);
    backlite::ValueStream in(std::move(*r));
    std::string line;
    std::getline(in, line);
  }
  std::mutex m;
  std::shared_mutex sm;
  [[maybe_unused]] std::string a = s.cached("c", [] { return std::string("x"); });
  [[maybe_unused]] std::vector<std::byte> b =
      s.cached("c", m, [&] { return bytes; }, 1min);
  [[maybe_unused]] std::vector<unsigned char> c =
      s.cached("c", sm, [] { return std::vector<unsigned char>{1}; });
  [[maybe_unused]] std::string x =
      s.cached_exclusive("x", [] { return std::string("x"); }, 1s, backlite::Expiration::never());
  backlite::Acquisition acq = s.try_acquire("l", 10s);
  if (acq.acquired()) {
    acq.lease.extend(5s);
    acq.lease.fulfill("v");
  }
  backlite::Lease lease = std::move(acq.lease);
  lease.abandon();
  [[maybe_unused]] backlite::Stats st = s.stats();
  [[maybe_unused]] backlite::LifetimeStats lst = s.lifetime_stats();
  [[maybe_unused]] backlite::RemoteStats rst = s.remote_stats();
  [[maybe_unused]] backlite::CheckReport report = s.check(true);
  s.zero_stats();
  s.vacuum();
  s.clear();
  s.close();
  try {
    backlite::Storage again(path);
  } catch (const backlite::Error& err) {
    [[maybe_unused]] backlite::Code code = err.code();
    [[maybe_unused]] auto left = err.lease_time_left();
    [[maybe_unused]] const char* name = backlite::code_name(code);
  }
  [[maybe_unused]] std::string_view version = backlite::version();
}

}  // namespace
