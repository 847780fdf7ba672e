// Tests of backlite.hpp's pull reader: ValueReader, ValueStreambuf and ValueStream.
#include "test_util.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using backlite::Code;
using backlite::Options;
using backlite::Storage;
using backlite::ValueReader;
using backlite::ValueStream;

namespace {

class ReaderTest : public backlite_test::TempDir {};

std::string pattern(std::size_t n) {
  std::string v(n, '\0');
  for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<char>(i * 131 + 7);
  return v;
}

// Flips the last byte of the value in the cache's only value file: the value comes
// first, then its 24-byte record (magic, length, CRC-32).
void damage_the_value_file(const std::string& db) {
  std::vector<std::filesystem::path> files;
  for (const auto& e : std::filesystem::directory_iterator(db + ".values")) {
    const std::string name = e.path().filename().string();
    if (name.rfind("v2-", 0) == 0 || name.rfind("v-", 0) == 0) files.push_back(e.path());
  }
  ASSERT_EQ(files.size(), 1u);
  std::fstream f(files[0], std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(-24 - 1, std::ios::end);
  const char last = static_cast<char>(f.get());
  f.seekp(-24 - 1, std::ios::end);
  f.put(static_cast<char>(last ^ 1));
  ASSERT_TRUE(f.good());
}

// Reads everything with read(), `step` bytes at a time.
std::string read_all(ValueReader& r, std::size_t step) {
  std::string got;
  std::vector<std::byte> buf(step);
  for (;;) {
    const std::size_t n = r.read(buf);
    EXPECT_LE(n, step);
    if (n == 0) return got;
    got.append(reinterpret_cast<const char*>(buf.data()), n);
  }
}

}  // namespace

TEST_F(ReaderTest, ReadsFileAndDatabaseValuesIntoTheCallersBuffer) {
  const std::string big = pattern((1u << 20) + 3);
  for (const bool in_file : {true, false}) {
    SCOPED_TRACE(in_file ? "file" : "database");
    const std::string db = path(in_file ? "file.db" : "db.db");
    Storage s(db, in_file ? Options().file_threshold(4096) : Options().file_threshold(std::nullopt));
    s.set("big", big, 1h);
    std::optional<ValueReader> r = s.open_reader("big");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->size(), big.size());
    ASSERT_TRUE(r->expires_in());
    EXPECT_GT(*r->expires_in(), 0ms);
    EXPECT_LE(*r->expires_in(), 1h);
    EXPECT_EQ(read_all(*r, 100000), big);
    EXPECT_TRUE(r->at_end());
    EXPECT_EQ(r->c_reader(), nullptr);  // freed at the end
    std::array<char, 8> more{};
    EXPECT_EQ(r->read(more), 0u);
  }

  Storage s(":memory:");
  s.set("small", "hello");
  std::optional<ValueReader> r = s.open_reader("small");
  ASSERT_TRUE(r);
  EXPECT_FALSE(r->expires_in());
  EXPECT_EQ(r->read(nullptr, 0), 0u);  // a capacity of 0 reads nothing, ends nothing
  EXPECT_FALSE(r->at_end());
  EXPECT_EQ(read_all(*r, 1), "hello");
  EXPECT_EQ(s.stats().hits, 1u);
}

// A NULL buffer with a capacity (the data() of an empty std::vector, say) is the
// caller's mistake: it throws null_parameter and loses nothing. The library refuses it
// without reading; the reader used to be freed as if the read had failed, so the value
// could no longer be read.
TEST(Reader, ANullBufferThrowsNullParameterAndTheReaderReadsOn) {
  Storage s(":memory:");
  s.set("k", "hello");
  std::optional<ValueReader> r = s.open_reader("k");
  ASSERT_TRUE(r);
  EXPECT_BACKLITE_ERROR(r->read(nullptr, 16), Code::null_parameter);
  EXPECT_NE(r->c_reader(), nullptr);
  EXPECT_FALSE(r->at_end());
  EXPECT_EQ(read_all(*r, 2), "hello");
  EXPECT_TRUE(r->at_end());
}

TEST(Reader, AMissIsNulloptAndAnEmptyValueEndsAtOnce) {
  Storage s(":memory:");
  EXPECT_FALSE(s.open_reader("missing"));
  EXPECT_EQ(s.stats().misses, 1u);
  s.set("empty", "");
  std::optional<ValueReader> r = s.open_reader("empty");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->size(), 0u);
  std::string buf(4, '\0');
  EXPECT_EQ(r->read(buf), 0u);
  EXPECT_TRUE(r->at_end());
}

TEST_F(ReaderTest, AValueStreamWorksWithRdbufIteratorsGetlineAndRead) {
  Storage s(path("c.db"), Options().file_threshold(4096));
  const std::string big = pattern(600 * 1024 + 11);
  s.set("big", big);
  {
    ValueStream in(std::move(*s.open_reader("big")));
    EXPECT_EQ(in.size(), big.size());
    std::ostringstream out;
    out << in.rdbuf();
    EXPECT_TRUE(out.good());
    EXPECT_EQ(out.str(), big);
  }
  {
    ValueStream in(std::move(*s.open_reader("big")), 1000);  // a small buffer
    const std::string got{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    EXPECT_EQ(got, big);
  }
  {
    // read() larger than the buffer goes straight into the caller's memory; then a
    // short one through the buffer, then the end.
    ValueStream in(std::move(*s.open_reader("big")), 4096);
    std::string got(big.size() - 5, '\0');
    ASSERT_TRUE(in.read(got.data(), static_cast<std::streamsize>(got.size())));
    std::array<char, 16> tail{};
    in.read(tail.data(), static_cast<std::streamsize>(tail.size()));
    EXPECT_EQ(in.gcount(), 5);
    EXPECT_TRUE(in.eof());
    EXPECT_FALSE(in.bad());
    got.append(tail.data(), 5);
    EXPECT_EQ(got, big);
  }
  s.set("lines", "one\ntwo\nthree");
  ValueStream in(std::move(*s.open_reader("lines")), 2);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  EXPECT_EQ(lines, (std::vector<std::string>{"one", "two", "three"}));
}

// A value whose file's last byte changed is never a clean end: read() throws
// not_found, a ValueStream's read throws it too (badbit), istreambuf_iterator passes it
// on, `out << rdbuf()` leaves failbit on out; and the entry is removed.
TEST_F(ReaderTest, AValueDamagedAtItsEndThrowsNotFoundEveryWay) {
  const std::string db = path("c.db");
  Storage s(db, Options().file_threshold(4096));
  const std::string big = pattern(600 * 1024);
  auto reset = [&] {
    s.set("big", big);
    damage_the_value_file(db);
  };

  reset();
  std::optional<ValueReader> r = s.open_reader("big");
  ASSERT_TRUE(r);
  EXPECT_BACKLITE_ERROR(read_all(*r, 64 * 1024), Code::not_found);
  std::array<char, 8> buf{};
  EXPECT_BACKLITE_ERROR(r->read(buf), Code::not_found);  // and again
  EXPECT_FALSE(s.contains("big"));

  reset();
  {
    ValueStream in(std::move(*s.open_reader("big")));
    std::string got(big.size(), '\0');
    EXPECT_BACKLITE_ERROR(in.read(got.data(), static_cast<std::streamsize>(got.size())),
                          Code::not_found);
    EXPECT_TRUE(in.bad());
  }
  reset();
  {
    ValueStream in(std::move(*s.open_reader("big")));
    EXPECT_BACKLITE_ERROR(
        (std::string{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()}),
        Code::not_found);
  }
  reset();
  {
    ValueStream in(std::move(*s.open_reader("big")));
    std::ostringstream out;
    out << in.rdbuf();
    EXPECT_TRUE(out.fail());
    EXPECT_LT(out.str().size(), big.size());
  }
  EXPECT_FALSE(s.contains("big"));
}

// A reader does not need its Storage: closed after the open, the value still reads to
// its end (and under valgrind nothing is lost).
TEST_F(ReaderTest, AReaderOutlivesItsStorage) {
  const std::string big = pattern(600 * 1024);
  for (const bool in_file : {true, false}) {
    SCOPED_TRACE(in_file ? "file" : "database");
    Storage s(path(in_file ? "file.db" : "db.db"),
              in_file ? Options().file_threshold(4096) : Options().file_threshold(std::nullopt));
    s.set("big", big);
    std::optional<ValueReader> r = s.open_reader("big");
    ASSERT_TRUE(r);
    s.close();
    EXPECT_EQ(read_all(*r, 256 * 1024), big);
  }
}

TEST_F(ReaderTest, ADestroyedOrMovedFromReaderLetsGo) {
  Storage s(path("c.db"), Options().file_threshold(4096));
  const std::string big = pattern(600 * 1024);
  s.set("big", big);
  {
    std::optional<ValueReader> r = s.open_reader("big");
    std::string head(10, '\0');
    ASSERT_EQ(r->read(head), 10u);
    EXPECT_EQ(head, big.substr(0, 10));
    ValueReader moved = std::move(*r);
    EXPECT_FALSE(*r);
    EXPECT_BACKLITE_ERROR(r->read(head), Code::null_parameter);
    EXPECT_EQ(r->size(), 0u);  // empty in every respect, as a new ValueReader
    EXPECT_FALSE(r->expires_in());
    EXPECT_TRUE(moved);
    EXPECT_EQ(moved.size(), big.size());
  }  // freed before its end
  {
    s.set("big", big, backlite::Expiration(std::chrono::hours(1)));
    std::optional<ValueReader> r = s.open_reader("big");
    ASSERT_TRUE(r && r->expires_in());
    ValueReader assigned;
    assigned = std::move(*r);
    EXPECT_FALSE(*r);
    EXPECT_EQ(r->size(), 0u);
    EXPECT_FALSE(r->expires_in());
    EXPECT_EQ(assigned.size(), big.size());
    EXPECT_TRUE(assigned.expires_in());
    EXPECT_EQ(read_all(assigned, 256 * 1024), big);
  }
  s.set("big", "new");
  EXPECT_EQ(s.get_string("big"), "new");
  ValueReader empty;
  std::string buf(1, '\0');
  EXPECT_BACKLITE_ERROR(empty.read(buf), Code::null_parameter);
}

// The value read is the one opened: a set, erase or clear of its key while a
// ValueReader is half way leaves it whole (a value file held open, or a read snapshot
// of the database), never a mix of two values and never an error; so does the end of
// its Storage.
TEST_F(ReaderTest, ReadsTheValueItOpenedWhateverHappensToItsKey) {
  const std::string big = pattern((1u << 20) + 11);
  for (const bool in_file : {true, false}) {
    for (const char* op : {"set", "erase", "clear", "close"}) {
      SCOPED_TRACE(std::string(in_file ? "file " : "database ") + op);
      const std::string db = path(std::string(in_file ? "file-" : "db-") + op + ".db");
      Storage s(db, in_file ? Options().file_threshold(4096) : Options().file_threshold(std::nullopt));
      s.set("k", big);
      std::optional<ValueReader> r = s.open_reader("k");
      ASSERT_TRUE(r);
      std::string got(1000, '\0');
      ASSERT_EQ(r->read(got), 1000u);
      const std::string_view what(op);
      if (what == "set") {
        s.set("k", std::string(2u << 20, 'x'));
      } else if (what == "erase") {
        EXPECT_TRUE(s.erase("k"));
      } else if (what == "clear") {
        s.clear();
      } else {
        s.close();
      }
      got += read_all(*r, 70000);
      EXPECT_EQ(got, big);
      EXPECT_TRUE(r->at_end());
    }
  }
}
