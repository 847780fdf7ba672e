// The remote tier option of backlite.hpp, against a redis-server this test starts on a
// free loopback port (tests/c/redis_server.h).
#include "test_util.hpp"

extern "C" {
#include "../../../tests/c/redis_server.h"
}

#include <chrono>
#include <string>

using namespace std::chrono_literals;
using backlite::Code;
using backlite::Expiration;
using backlite::Options;
using backlite::RemoteMode;
using backlite::Storage;

namespace {

class RemoteTest : public backlite_test::TempDir {
 protected:
  void SetUp() override {
    TempDir::SetUp();
    std::filesystem::create_directories(dir_ / "redis");
    ASSERT_EQ(redis_server_start(&server_, (dir_ / "redis").c_str(), nullptr), 0)
        << "redis-server could not be started (apt-get install redis-server)";
  }
  void TearDown() override {
    redis_server_stop(&server_);
    TempDir::TearDown();
  }
  redis_server server_{};
};

TEST_F(RemoteTest, TwoFilesShareValuesThroughTheRemote) {
  auto options = [&](RemoteMode mode) {
    return Options().remote(server_.url).remote_namespace("cpp").remote_timeout(300ms).remote_mode(mode);
  };
  Storage writer(path("a.db"), options(RemoteMode::read_write));
  writer.set("k", "shared value", Expiration::never());
  Storage reader(path("b.db"), options(RemoteMode::read_only));
  auto got = reader.get("k");
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(got->data()), got->size()),
            "shared value");
  auto st = reader.remote_stats();
  EXPECT_EQ(st.hits, 1u);
  EXPECT_TRUE(st.connected);
  {
    Storage behind(path("c.db"), options(RemoteMode::write_behind));
    behind.set("later", "queued", Expiration::never());
  }  // closing sends the queue
  EXPECT_TRUE(Storage(path("d.db"), options(RemoteMode::read_write)).get("later").has_value());
  EXPECT_FALSE(Storage(path("e.db"), Options()).remote_stats().connected);
}

TEST_F(RemoteTest, BadRemoteOptionsThrowInvalidArgument) {
  EXPECT_BACKLITE_ERROR(Options().remote("memcache://h:1"), Code::invalid_argument);
  EXPECT_BACKLITE_ERROR(Options().remote("redis://h:notaport"), Code::invalid_argument);
  EXPECT_BACKLITE_ERROR(Options().remote_namespace("with space"), Code::invalid_argument);
  EXPECT_BACKLITE_ERROR(Options().remote_timeout(0ms), Code::invalid_argument);
  EXPECT_BACKLITE_ERROR(Options().remote_timeout(-5ms), Code::invalid_argument);
  EXPECT_BACKLITE_ERROR(Options().remote_mode(static_cast<RemoteMode>(7)), Code::invalid_argument);
}

}  // namespace

// A remote nobody answers (port 1 on the loopback) opens, every call succeeds locally
// (the reader too), and remote_stats() says it: not connected, the failed round trips
// counted.
TEST(RemoteUnreachable, OpensAndEveryCallSucceedsLocally) {
  for (const RemoteMode mode : {RemoteMode::read_write, RemoteMode::read_only, RemoteMode::write_behind}) {
    Storage s(":memory:", Options().remote("redis://u:hunter2@127.0.0.1:1").remote_timeout(100ms).remote_mode(mode));
    s.set("k", std::string(300 * 1024, 'v'), Expiration::never());
    EXPECT_FALSE(s.get("missing"));
    std::optional<backlite::ValueReader> r = s.open_reader("k");
    ASSERT_TRUE(r);
    std::string got(400 * 1024, '\0');
    std::size_t n = 0;
    while (const std::size_t m = r->read(got.data() + n, got.size() - n)) n += m;
    EXPECT_EQ(n, 300u * 1024);
    const backlite::RemoteStats st = s.remote_stats();
    EXPECT_FALSE(st.connected);
    EXPECT_GT(st.errors, 0u);
    EXPECT_EQ(st.hits, 0u);
  }
}
