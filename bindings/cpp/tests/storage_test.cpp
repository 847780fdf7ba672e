// Tests of backlite.hpp: options, opening, get/set, set_many, erase, contains, keys,
// clear, stats, errors, move semantics and threads.
#include "test_util.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

using namespace std::chrono_literals;
using backlite::ByteView;
using backlite::Code;
using backlite::EvictionPolicy;
using backlite::Expiration;
using backlite::Options;
using backlite::Storage;
using backlite_test::bytes;

namespace {

class StorageTest : public backlite_test::TempDir {};

struct VisitorFailure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

std::set<std::string> all_keys(Storage& s) {
  std::set<std::string> keys;
  s.keys([&](ByteView k) { keys.insert(k.to_string()); });
  return keys;
}

// ---- version, errors ---------------------------------------------------------------

TEST(Version, HeaderAndLibraryAgree) {
  EXPECT_EQ(backlite::version(), backlite::header_version);
  EXPECT_EQ(backlite_version_number(), static_cast<std::uint32_t>(BACKLITE_VERSION_NUMBER));
}

TEST(Errors, ErrorIsARuntimeErrorCarryingTheCodeAndMessage) {
  Storage s(":memory:", Options().max_size(4));
  try {
    s.set("k", "too long");
    FAIL() << "no exception";
  } catch (const std::runtime_error& e) {
    const auto* be = dynamic_cast<const backlite::Error*>(&e);
    ASSERT_NE(be, nullptr);
    EXPECT_EQ(be->code(), Code::too_large);
    EXPECT_STRNE(e.what(), "");
  }
}

TEST(Errors, CodesHaveTheCValuesAndNames) {
  EXPECT_EQ(static_cast<int>(Code::not_found), BACKLITE_RESULT_NOT_FOUND);
  EXPECT_EQ(static_cast<int>(Code::internal), BACKLITE_RESULT_INTERNAL);
  EXPECT_STREQ(backlite::code_name(Code::busy), backlite_result_str(BACKLITE_RESULT_BUSY));
  backlite::Error e(Code::io, "");
  EXPECT_STREQ(e.what(), backlite_result_str(BACKLITE_RESULT_IO));
}

// ---- options -----------------------------------------------------------------------

TEST(Options, SettersThrowAtOnceOnBadValues) {
  Options o;
  EXPECT_BACKLITE_ERROR(o.max_size(0), Code::invalid_argument);
  EXPECT_BACKLITE_ERROR(o.max_size(std::uint64_t{1} << 63), Code::invalid_argument);
  EXPECT_BACKLITE_ERROR(o.eviction_policy(static_cast<EvictionPolicy>(99)),
                        Code::invalid_argument);
  EXPECT_BACKLITE_ERROR(o.eviction_policy("most-popular"), Code::invalid_argument);
  EXPECT_BACKLITE_ERROR(o.eviction_policy(std::string_view("least-recently-used\0x", 21)),
                        Code::invalid_argument);
  EXPECT_BACKLITE_ERROR(o.default_expiration(Expiration::storage_default()),
                        Code::invalid_argument);
  EXPECT_BACKLITE_ERROR(o.busy_timeout(-1ms), Code::invalid_argument);
  EXPECT_BACKLITE_ERROR(o.busy_timeout(std::chrono::hours(24 * 365)), Code::invalid_argument);
  EXPECT_BACKLITE_ERROR(o.version_tag(std::string_view("a\0b", 3)), Code::invalid_argument);
  // The options are still usable after a rejected value.
  Storage s(":memory:", o);
  EXPECT_EQ(s.stats().max_size, std::uint64_t{1} << 30);
}

TEST(Options, FluentOnTemporariesAndOnLvalues) {
  Storage a(":memory:", Options()
                            .max_size(1000)
                            .eviction_policy(EvictionPolicy::first_in_first_out)
                            .default_expiration(1h)
                            .busy_timeout(250ms)
                            .version_tag("v1"));
  EXPECT_EQ(a.stats().max_size, 1000u);

  Options o;
  o.max_size(2000).eviction_policy("last-in-first-out");
  Storage b(":memory:", o);
  EXPECT_EQ(b.stats().max_size, 2000u);

  for (const char* name : {"least-recently-used", "least-frequently-used", "most-recently-used",
                           "first-in-first-out", "last-in-first-out"}) {
    EXPECT_NO_THROW(Options().eviction_policy(name)) << name;
  }
  static_assert(std::is_nothrow_move_constructible_v<Options>);
  static_assert(!std::is_copy_constructible_v<Options>);
}

// Options moved from hold nothing: their setters throw null_parameter, and so does an
// open with them, which took them for the library's defaults (1 GiB, no version tag,
// no remote) and opened the cache without the settings that went elsewhere.
TEST(Options, OptionsMovedFromAreRefusedByOpen) {
  Options o;
  o.max_size(1000).version_tag("v2");
  Options taken(std::move(o));
  EXPECT_BACKLITE_ERROR(o.max_size(5), Code::null_parameter);  // NOLINT(bugprone-use-after-move)
  EXPECT_BACKLITE_ERROR(Storage(":memory:", o), Code::null_parameter);
  Storage s(":memory:", taken);
  EXPECT_EQ(s.stats().max_size, 1000u);
}

// ---- opening -----------------------------------------------------------------------

TEST_F(StorageTest, OpenCreatesTheFileAndKeepsValuesAcrossHandles) {
  const std::string db = path("cache.db");
  {
    Storage s(db);
    s.set("k", "v", Expiration::never());
  }
  EXPECT_TRUE(std::filesystem::exists(db));
  Storage again(db);
  EXPECT_EQ(again.get_string("k"), "v");
}

TEST_F(StorageTest, OpenRefusesAFileThatIsNotACacheAndLeavesItAlone) {
  const std::string file = path("notes.txt");
  std::ofstream(file) << "not a cache, just some text that is long enough to be recognised\n";
  const auto size = std::filesystem::file_size(file);
  EXPECT_BACKLITE_ERROR(Storage{file}, Code::not_a_cache);
  EXPECT_EQ(std::filesystem::file_size(file), size);
}

TEST_F(StorageTest, OpenFailsWithIoOnADirectoryOrAMissingParent) {
  EXPECT_BACKLITE_ERROR(Storage{dir_.string()}, Code::io);
  EXPECT_BACKLITE_ERROR(Storage{path("missing/cache.db")}, Code::io);
}

TEST_F(StorageTest, OpensAStdFilesystemPath) {
  const std::filesystem::path file = dir_ / "fs.db";
  {
    Storage s(file, Options().max_size(1 << 20));
    s.set("k", "v");
  }
  EXPECT_TRUE(std::filesystem::exists(file));
  Storage again(file);
  EXPECT_EQ(again.get_string("k"), "v");
  EXPECT_BACKLITE_ERROR(Storage(dir_ / "missing" / "c.db"), Code::io);
}

// A function given a const Storage& reads the cache: the look-ups are const.
std::string read_through_const(const Storage& s, std::uint64_t& count) {
  std::string seen;
  s.keys([&](std::string_view k) { seen += k; });
  EXPECT_TRUE(s.contains("k"));
  EXPECT_EQ(s.get("k"), bytes("v"));
  EXPECT_EQ(s.get_entry("k")->value, bytes("v"));
  EXPECT_TRUE(s.get_chunks("k", [&](ByteView c) { seen += c.as_string_view(); }));
  if (std::optional<backlite::ValueReader> r = s.open_reader("k")) seen += std::to_string(r->size());
  count = s.stats().count + s.lifetime_stats().hits + s.remote_stats().hits;
  return seen + *s.get_string("k");
}

TEST(Const, LookUpsWorkThroughAConstStorage) {
  Storage s(":memory:");
  s.set("k", "v");
  std::uint64_t count = 0;
  EXPECT_EQ(read_through_const(s, count), "kv1v");
  EXPECT_GE(count, 1u);
}

TEST(Open, APathWithANulByteIsInvalid) {
  EXPECT_BACKLITE_ERROR(Storage(std::string_view("a\0b", 3)), Code::invalid_argument);
}

TEST_F(StorageTest, AnotherVersionTagDropsEveryEntry) {
  const std::string db = path("tagged.db");
  {
    Storage s(db, Options().version_tag("1"));
    s.set("k", "v");
  }
  {
    Storage same(db, Options().version_tag("1"));
    EXPECT_TRUE(same.contains("k"));
  }
  Storage other(db, Options().version_tag("2"));
  EXPECT_FALSE(other.contains("k"));
}

// ---- get / set ---------------------------------------------------------------------

TEST(GetSet, SetThenGetAsBytesAndAsString) {
  Storage s(":memory:");
  s.set("greeting", "hello");
  EXPECT_EQ(s.get_string("greeting"), "hello");
  EXPECT_EQ(s.get("greeting"), bytes("hello"));
}

TEST(GetSet, AMissIsNullopt) {
  Storage s(":memory:");
  EXPECT_EQ(s.get("absent"), std::nullopt);
  EXPECT_EQ(s.get_string("absent"), std::nullopt);
  EXPECT_EQ(s.get_entry("absent"), std::nullopt);
}

// A miss allocates no error object, and one set anyway would be freed: memcheck_cpp_tests
// (valgrind) would count 3,000 lost blocks otherwise.
TEST(GetSet, MissesLeaveNothingToFree) {
  Storage s(":memory:");
  for (int i = 0; i < 1000; ++i) {
    EXPECT_EQ(s.get("absent"), std::nullopt);
    EXPECT_FALSE(s.erase("absent"));
    EXPECT_FALSE(s.contains("absent"));
  }
  EXPECT_EQ(s.stats().misses, 1000u);
}

TEST(GetSet, BinaryKeysAndValuesAndEmptyOnesRoundTrip) {
  Storage s(":memory:");
  const std::string key("k\0ey", 4);
  const std::string value("\0\xff\x01\0", 4);
  s.set(key, value);
  EXPECT_EQ(s.get_string(key), value);
  EXPECT_FALSE(s.contains("k"));

  s.set("", "the empty key is a key");
  EXPECT_EQ(s.get_string(""), "the empty key is a key");
  s.set("empty", "");
  ASSERT_TRUE(s.get("empty").has_value());
  EXPECT_TRUE(s.get("empty")->empty());
}

TEST(GetSet, KeysAndValuesComeFromAnyContiguousBytes) {
  Storage s(":memory:");
  const std::vector<std::uint8_t> k1{1, 2, 3};
  const std::vector<std::byte> v1{std::byte{9}, std::byte{8}};
  s.set(k1, v1);
  EXPECT_EQ(s.get(k1), v1);

  const std::array<char, 3> k2{'a', 'b', 'c'};
  const std::vector<char> v2{'x', 'y'};
  s.set(k2, v2);
  EXPECT_EQ(s.get_string("abc"), "xy");

  const int number = 0x01020304;
  s.set(ByteView(&number, sizeof number), ByteView(&number, sizeof number));
  const auto back = s.get(ByteView(&number, sizeof number));
  ASSERT_TRUE(back.has_value());
  ASSERT_EQ(back->size(), sizeof number);
  EXPECT_EQ(std::memcmp(back->data(), &number, sizeof number), 0);

  const std::string owned = "owned";
  s.set(owned, std::string("temporary value"));
  EXPECT_EQ(s.get_string(owned), "temporary value");
}

TEST(GetSet, GetEntryReportsTheTimeLeft) {
  Storage s(":memory:");
  s.set("minute", "v", 1min);
  s.set("forever", "v", Expiration::never());
  const auto minute = s.get_entry("minute");
  ASSERT_TRUE(minute.has_value());
  ASSERT_TRUE(minute->expires_in.has_value());
  EXPECT_GT(*minute->expires_in, 0ms);
  EXPECT_LE(*minute->expires_in, 60000ms);
  EXPECT_EQ(minute->value, bytes("v"));
  const auto forever = s.get_entry("forever");
  ASSERT_TRUE(forever.has_value());
  EXPECT_EQ(forever->expires_in, std::nullopt);
}

TEST(GetSet, ZeroExpirationStoresNothingAndNegativeIsRefused) {
  Storage s(":memory:");
  s.set("k", "v", 0ms);
  EXPECT_FALSE(s.contains("k"));
  EXPECT_BACKLITE_ERROR(s.set("k", "v", -1s), Code::invalid_argument);
  // Sub-millisecond durations round up: the entry lives.
  s.set("micro", "v", std::chrono::microseconds(1));
  EXPECT_EQ(Expiration(std::chrono::microseconds(1)).ms(), 1);
  EXPECT_EQ(Expiration(std::chrono::hours::max()).ms(), std::numeric_limits<std::int64_t>::max());
}

// A NaN duration (a division by zero upstream, say) is no lifetime: it was taken for
// the largest one, so the entry lived for ever instead of the call failing.
TEST(GetSet, ANanExpirationIsRefused) {
  Storage s(":memory:");
  const std::chrono::duration<double> nan(std::numeric_limits<double>::quiet_NaN());
  EXPECT_BACKLITE_ERROR(s.set("k", "v", nan), Code::invalid_argument);
  EXPECT_FALSE(s.contains("k"));
  EXPECT_BACKLITE_ERROR(Options().default_expiration(nan), Code::invalid_argument);
  // Infinity is a lifetime, the longest.
  EXPECT_EQ(Expiration(std::chrono::duration<double>(std::numeric_limits<double>::infinity())).ms(),
            std::numeric_limits<std::int64_t>::max());
}

TEST(GetSet, TheStorageDefaultExpirationApplies) {
  Storage s(":memory:", Options().default_expiration(1h));
  s.set("default", "v");
  s.set("never", "v", Expiration::never());
  const auto d = s.get_entry("default");
  ASSERT_TRUE(d && d->expires_in);
  EXPECT_LE(*d->expires_in, 3600000ms);
  EXPECT_EQ(s.get_entry("never")->expires_in, std::nullopt);
}

TEST(GetSet, ATooLargeValueThrowsAndRemovesTheOlderValue) {
  Storage s(":memory:", Options().max_size(10));
  s.set("k", "small");
  EXPECT_BACKLITE_ERROR(s.set("k", "eleven byte"), Code::too_large);
  EXPECT_FALSE(s.contains("k"));
}

// ---- set_many ----------------------------------------------------------------------

TEST(SetMany, WritesAnInitializerListWithExpirations) {
  Storage s(":memory:");
  s.set_many({{"a", "1"}, {"b", "2", 1min}, {"c", "3", Expiration::never()}, {"d", "4", 0ms}});
  EXPECT_EQ(s.get_string("a"), "1");
  EXPECT_TRUE(s.get_entry("b")->expires_in.has_value());
  EXPECT_EQ(s.get_entry("c")->expires_in, std::nullopt);
  EXPECT_FALSE(s.contains("d"));  // 0 ms: skipped
  EXPECT_EQ(s.stats().count, 3u);
}

TEST(SetMany, WritesAMapOrAVectorOfItems) {
  Storage s(":memory:");
  const std::map<std::string, std::string> m{{"x", "1"}, {"y", "2"}};
  s.set_many(m);
  // Items borrow their bytes, like string_view: the strings must outlive the call.
  const std::vector<std::string> keys{"p", "q"};
  const std::vector<std::string> values{"pp", "qq"};
  std::vector<backlite::Item> items;
  for (std::size_t i = 0; i < keys.size(); ++i) items.push_back({keys[i], values[i]});
  s.set_many(items);
  EXPECT_EQ(all_keys(s), (std::set<std::string>{"p", "q", "x", "y"}));
  EXPECT_EQ(s.get_string("q"), "qq");
  s.set_many(std::vector<backlite::Item>{});  // nothing to do is fine
}

// A range whose iterator makes each pair when dereferenced (as a C++20
// std::views::transform does): `*it` is a temporary, gone at the end of the statement.
class GeneratedPairs {
 public:
  explicit GeneratedPairs(int n) : n_(n) {}
  class iterator {
   public:
    using value_type = std::pair<std::string, std::string>;
    using difference_type = std::ptrdiff_t;
    using reference = value_type;  // by value
    using pointer = void;
    using iterator_category = std::input_iterator_tag;
    explicit iterator(int i) : i_(i) {}
    value_type operator*() const {
      // Long enough to live on the heap, and a short one too.
      return {"key" + std::to_string(i_), std::string(40, static_cast<char>('a' + i_))};
    }
    iterator& operator++() {
      ++i_;
      return *this;
    }
    bool operator!=(const iterator& o) const { return i_ != o.i_; }
    bool operator==(const iterator& o) const { return i_ == o.i_; }

   private:
    int i_;
  };
  iterator begin() const { return iterator(0); }
  iterator end() const { return iterator(n_); }

 private:
  int n_;
};

TEST(SetMany, WritesARangeWhoseIteratorMakesItsPairs) {
  Storage s(":memory:");
  s.set_many(GeneratedPairs(3));
  EXPECT_EQ(all_keys(s), (std::set<std::string>{"key0", "key1", "key2"}));
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(s.get_string("key" + std::to_string(i)),
              std::string(40, static_cast<char>('a' + i)))
        << i;
  }
}

TEST(SetMany, IsAllOrNothing) {
  Storage s(":memory:", Options().max_size(4));
  EXPECT_BACKLITE_ERROR(s.set_many({{"a", "1"}, {"b", "12345"}}), Code::too_large);
  EXPECT_EQ(s.stats().count, 0u);
}

// ---- erase, contains ---------------------------------------------------------------

TEST(Erase, ReportsWhetherAnEntryWasRemoved) {
  Storage s(":memory:");
  s.set("k", "v");
  s.set("j", "v");
  EXPECT_TRUE(s.erase("k"));
  EXPECT_FALSE(s.erase("k"));
  EXPECT_TRUE(s.remove("j"));
  EXPECT_FALSE(s.remove("j"));
  EXPECT_EQ(s.stats().count, 0u);
}

TEST(Contains, AnswersWithoutCountingAnAccess) {
  Storage s(":memory:");
  s.set("k", "v");
  EXPECT_TRUE(s.contains("k"));
  EXPECT_FALSE(s.contains("absent"));
  const auto st = s.stats();
  EXPECT_EQ(st.hits, 0u);
  EXPECT_EQ(st.misses, 0u);
}

TEST(LifetimeStats, CountEveryHandleAndStartOverAfterZero) {
  Storage s(":memory:");
  s.set("k", "v");
  EXPECT_TRUE(s.get("k").has_value());
  EXPECT_FALSE(s.get("absent").has_value());
  auto life = s.lifetime_stats();
  EXPECT_EQ(life.hits, 1u);
  EXPECT_EQ(life.misses, 1u);
  EXPECT_GT(life.since_ms, 0);
  s.zero_stats();
  life = s.lifetime_stats();
  EXPECT_EQ(life.hits, 0u);
  EXPECT_EQ(life.misses, 0u);
  EXPECT_EQ(s.stats().hits, 1u);  // the handle's own counters are kept
}

// ---- keys --------------------------------------------------------------------------

TEST(Keys, VisitsEveryLiveKeyAsByteViewOrStringView) {
  Storage s(":memory:");
  s.set_many({{"a", "1"}, {"b", "2"}, {"c", "3"}, {"gone", "4", 0ms}});
  EXPECT_EQ(all_keys(s), (std::set<std::string>{"a", "b", "c"}));
  std::set<std::string> seen;
  s.keys([&](std::string_view k) { seen.emplace(k); });
  EXPECT_EQ(seen, (std::set<std::string>{"a", "b", "c"}));
}

TEST(Keys, AVisitorReturningFalseStopsTheWalk) {
  Storage s(":memory:");
  s.set_many({{"a", "1"}, {"b", "2"}, {"c", "3"}});
  int visited = 0;
  s.keys([&](ByteView) { return ++visited < 2; });
  EXPECT_EQ(visited, 2);
}

TEST(Keys, AThrowingVisitorStopsTheWalkAndTheExceptionIsRethrown) {
  Storage s(":memory:");
  s.set_many({{"a", "1"}, {"b", "2"}, {"c", "3"}});
  int visited = 0;
  EXPECT_THROW(s.keys([&](ByteView) {
    ++visited;
    throw VisitorFailure("stop");
  }),
               VisitorFailure);
  EXPECT_EQ(visited, 1);
  // The storage is still fine.
  EXPECT_EQ(all_keys(s).size(), 3u);
}

TEST(Keys, TheVisitorMayUseTheStorage) {
  Storage s(":memory:");
  s.set_many({{"a", "1"}, {"b", "2"}});
  s.keys([&](ByteView k) { s.set("copy-" + k.to_string(), *s.get(k)); });
  EXPECT_EQ(s.get_string("copy-a"), "1");
  EXPECT_EQ(s.get_string("copy-b"), "2");
}

// ---- get_chunks ----------------------------------------------------------------------

TEST_F(StorageTest, GetChunksHandsALargeValueOverInBoundedChunks) {
  Storage s(path("c.db"));
  std::string big(3 * 256 * 1024 + 5, '\0');
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 131 + 7);
  s.set("big", big);
  std::string got;
  std::size_t largest = 0;
  EXPECT_TRUE(s.get_chunks("big", [&](ByteView c) {
    largest = std::max(largest, c.size());
    got += c.to_string();
  }));
  EXPECT_EQ(got, big);
  EXPECT_LE(largest, 256u * 1024u);
  EXPECT_FALSE(s.get_chunks("missing", [&](ByteView) { ADD_FAILURE() << "a miss calls nothing"; }));
}

// ---- file_threshold ------------------------------------------------------------------

// How many value files (v2-*.blv, or v-*.blv of format 1) the cache's folder holds.
static std::size_t value_files(const std::string& db) {
  std::size_t n = 0;
  std::error_code ignored;
  for (const auto& e : std::filesystem::directory_iterator(db + ".values", ignored)) {
    const std::string name = e.path().filename().string();
    const bool named = name.rfind("v2-", 0) == 0 || name.rfind("v-", 0) == 0;
    n += named && name.size() > 4 && name.substr(name.size() - 4) == ".blv";
  }
  return n;
}

TEST_F(StorageTest, AValueAboveTheFileThresholdLivesInAFileAndReadsBack) {
  const std::string db = path("c.db");
  Storage s(db, Options().file_threshold(4096));
  const std::string small(4095, 's');
  std::string large(300 * 1024, '\0');
  for (std::size_t i = 0; i < large.size(); ++i) large[i] = static_cast<char>(i * 31 + 1);
  s.set("small", small);
  EXPECT_EQ(value_files(db), 0u);
  s.set("large", large);
  EXPECT_EQ(value_files(db), 1u);
  EXPECT_EQ(s.get_string("large"), large);
  EXPECT_EQ(s.get_string("small"), small);
  std::string streamed;
  EXPECT_TRUE(s.get_chunks("large", [&](ByteView c) { streamed += c.to_string(); }));
  EXPECT_EQ(streamed, large);
  s.erase("large");
  EXPECT_EQ(value_files(db), 0u);

  // Never: every value stays in the database file.
  const std::string db2 = path("never.db");
  Storage never(db2, Options().file_threshold(std::nullopt));
  never.set("large", large);
  EXPECT_EQ(never.get_string("large"), large);
  EXPECT_FALSE(std::filesystem::exists(db2 + ".values"));

  EXPECT_BACKLITE_ERROR(Options().file_threshold(0), Code::invalid_argument);
  EXPECT_BACKLITE_ERROR(Options().file_threshold(std::uint64_t{1} << 63), Code::invalid_argument);
}

TEST(GetChunks, AVisitorReturningFalseThrowsCallbackFailed) {
  Storage s(":memory:");
  s.set("k", std::string(600 * 1024, 'x'));
  int calls = 0;
  EXPECT_BACKLITE_ERROR(s.get_chunks("k", [&](ByteView) { return ++calls > 5; }),
                        Code::callback_failed);
  EXPECT_EQ(calls, 1);
}

TEST(GetChunks, AThrowingVisitorStopsTheReadAndTheExceptionIsRethrown) {
  Storage s(":memory:");
  s.set("k", std::string(600 * 1024, 'x'));
  int calls = 0;
  EXPECT_THROW(s.get_chunks("k",
                            [&](ByteView) {
                              ++calls;
                              throw VisitorFailure("stop");
                            }),
               VisitorFailure);
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(s.get_string("k")->size(), 600u * 1024u);
}

// ---- clear, stats, eviction --------------------------------------------------------

TEST(Clear, RemovesEveryEntry) {
  Storage s(":memory:");
  s.set_many({{"a", "1"}, {"b", "2"}});
  s.clear();
  EXPECT_EQ(s.stats().count, 0u);
  EXPECT_EQ(s.stats().total_size, 0u);
  EXPECT_TRUE(all_keys(s).empty());
}

TEST(Stats, CountsEntriesSizesHitsAndMisses) {
  Storage s(":memory:", Options().max_size(100));
  s.set("a", "123");
  s.set("b", "4567");
  (void)s.get("a");
  (void)s.get("a");
  (void)s.get("absent");
  const backlite::Stats st = s.stats();
  EXPECT_EQ(st.count, 2u);
  EXPECT_EQ(st.total_size, 7u);
  EXPECT_EQ(st.max_size, 100u);
  EXPECT_EQ(st.hits, 2u);
  EXPECT_EQ(st.misses, 1u);
  EXPECT_EQ(st.evictions, 0u);
}

TEST(Eviction, LeastRecentlyUsedEvictsTheOldestAccess) {
  Storage s(":memory:", Options().max_size(3).eviction_policy(EvictionPolicy::least_recently_used));
  s.set("a", "1");
  s.set("b", "2");
  s.set("c", "3");
  (void)s.get("a");
  s.set("d", "4");
  EXPECT_EQ(all_keys(s), (std::set<std::string>{"a", "c", "d"}));
  EXPECT_EQ(s.stats().evictions, 1u);
}

// ---- move semantics ----------------------------------------------------------------

static_assert(!std::is_copy_constructible_v<Storage>);
static_assert(!std::is_copy_assignable_v<Storage>);
static_assert(std::is_nothrow_move_constructible_v<Storage>);
static_assert(std::is_nothrow_move_assignable_v<Storage>);

TEST(Move, MovingHandsTheHandleOverAndLeavesAnEmptyStorage) {
  Storage a(":memory:");
  a.set("k", "v");
  Storage b(std::move(a));
  EXPECT_TRUE(b);
  EXPECT_FALSE(a);  // NOLINT(bugprone-use-after-move): pinned on purpose
  EXPECT_EQ(b.get_string("k"), "v");
  EXPECT_BACKLITE_ERROR(a.get("k"), Code::null_parameter);

  Storage c(":memory:");
  c = std::move(b);  // c's own handle is closed, b's moves in
  EXPECT_EQ(c.get_string("k"), "v");
  EXPECT_FALSE(b);

  std::vector<Storage> several;
  several.push_back(std::move(c));
  several.emplace_back(":memory:");
  EXPECT_EQ(several[0].get_string("k"), "v");

  several[0].close();
  EXPECT_FALSE(several[0]);
  EXPECT_BACKLITE_ERROR(several[0].set("k", "v"), Code::null_parameter);
}

// ---- threads -----------------------------------------------------------------------

TEST_F(StorageTest, EightThreadsShareOneStorage) {
  Storage s(path("threads.db"));
  constexpr int kThreads = 8;
  constexpr int kKeys = 100;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      try {
        for (int i = 0; i < kKeys; ++i) {
          const std::string key = "t" + std::to_string(t) + "-" + std::to_string(i);
          s.set(key, key + "-value");
          if (s.get_string(key) != key + "-value") ++failures;
          if (!s.contains(key)) ++failures;
          if (i % 2 == 1 && !s.erase(key)) ++failures;
          if (i % 25 == 0) {
            int n = 0;
            s.keys([&](ByteView) { ++n; });
            (void)s.stats();
          }
        }
      } catch (const std::exception& e) {
        ADD_FAILURE() << "thread " << t << ": " << e.what();
        ++failures;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(s.stats().count, static_cast<std::uint64_t>(kThreads * kKeys / 2));
}

}  // namespace
