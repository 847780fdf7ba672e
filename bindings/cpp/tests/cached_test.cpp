// Tests of Storage::cached: memoisation, throwing lambdas, barriers (std::mutex and
// Lockables of our own), and threads.
#include "test_util.hpp"

#include <atomic>
#include <cmath>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using backlite::Code;
using backlite::Expiration;
using backlite::Options;
using backlite::Storage;
using backlite_test::bytes;

namespace {

struct ComputeFailure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// A BasicLockable that records what the library did with it.
struct CountingLock {
  std::mutex m;
  int locks = 0;
  int unlocks = 0;
  bool throw_on_lock = false;
  void lock() {
    if (throw_on_lock) throw ComputeFailure("cannot lock");
    m.lock();
    ++locks;
  }
  void unlock() {
    ++unlocks;
    m.unlock();
  }
};

// Releases every waiting thread at once, so they all miss the same key together.
class StartLine {
 public:
  explicit StartLine(int n) : waiting_(n) {}
  void arrive_and_wait() {
    std::unique_lock<std::mutex> lock(m_);
    if (--waiting_ == 0) {
      cv_.notify_all();
    } else {
      cv_.wait(lock, [&] { return waiting_ == 0; });
    }
  }

 private:
  std::mutex m_;
  std::condition_variable cv_;
  int waiting_;
};

TEST(Cached, ComputesOnAMissThenAnswersFromTheCache) {
  Storage s(":memory:");
  int calls = 0;
  auto compute = [&] {
    ++calls;
    return std::string("42");
  };
  EXPECT_EQ(s.cached("answer", compute), "42");
  EXPECT_EQ(s.cached("answer", compute), "42");
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(s.get_string("answer"), "42");
  const auto st = s.stats();
  EXPECT_EQ(st.hits, 2u);  // the second cached() and the get()
  EXPECT_EQ(st.misses, 1u);
}

TEST(Cached, ReturnsTheTypeTheLambdaReturns) {
  Storage s(":memory:");
  const std::vector<std::byte> b = s.cached("bytes", [] { return bytes("raw"); });
  EXPECT_EQ(b, bytes("raw"));
  const std::vector<std::uint8_t> u = s.cached("bytes", [] { return std::vector<std::uint8_t>{}; });
  EXPECT_EQ(u, (std::vector<std::uint8_t>{'r', 'a', 'w'}));  // a hit: the stored bytes
  const std::string empty = s.cached("empty", [] { return std::string(); });
  EXPECT_TRUE(empty.empty());
  EXPECT_TRUE(s.contains("empty"));
}

TEST(Cached, StoresWithTheExpirationGiven) {
  Storage s(":memory:");
  int calls = 0;
  auto compute = [&] {
    ++calls;
    return std::string("v");
  };
  (void)s.cached("zero", compute, 0ms);  // already expired: returned, not stored
  (void)s.cached("zero", compute, 0ms);
  EXPECT_EQ(calls, 2);
  (void)s.cached("minute", compute, 1min);
  EXPECT_TRUE(s.get_entry("minute")->expires_in.has_value());
  (void)s.cached("never", compute, Expiration::never());
  EXPECT_EQ(s.get_entry("never")->expires_in, std::nullopt);
}

TEST(Cached, AThrowingLambdaStoresNothingAndTheExceptionIsRethrown) {
  Storage s(":memory:");
  EXPECT_THROW((void)s.cached("k", []() -> std::string { throw ComputeFailure("no"); }),
               ComputeFailure);
  EXPECT_FALSE(s.contains("k"));
  // Any type can be thrown and comes back unchanged.
  try {
    (void)s.cached("k", []() -> std::string { throw 7; });
    FAIL() << "no exception";
  } catch (int thrown) {
    EXPECT_EQ(thrown, 7);
  }
  // The next call computes again.
  EXPECT_EQ(s.cached("k", [] { return std::string("ok"); }), "ok");
}

TEST(Cached, AValueTooLargeToStoreIsStillReturned) {
  Storage s(":memory:", Options().max_size(4));
  EXPECT_EQ(s.cached("k", [] { return std::string("much too long"); }), "much too long");
  EXPECT_FALSE(s.contains("k"));
}

TEST(Cached, TheLambdaMayUseTheStorage) {
  Storage s(":memory:");
  const std::string v = s.cached("outer", [&] {
    s.set("side", "effect");
    return s.cached("inner", [] { return std::string("nested"); }) + "!";
  });
  EXPECT_EQ(v, "nested!");
  EXPECT_EQ(s.get_string("side"), "effect");
  EXPECT_EQ(s.get_string("inner"), "nested");
}

TEST(CachedBarrier, LocksOnceAroundAMissAndNotOnAHit) {
  Storage s(":memory:");
  CountingLock lock;
  EXPECT_EQ(s.cached("k", lock, [] { return std::string("v"); }), "v");
  EXPECT_EQ(lock.locks, 1);
  EXPECT_EQ(lock.unlocks, 1);
  EXPECT_EQ(s.cached("k", lock, [] { return std::string("other"); }), "v");
  EXPECT_EQ(lock.locks, 1);
  EXPECT_EQ(lock.unlocks, 1);
}

TEST(CachedBarrier, IsUnlockedWhenTheLambdaThrows) {
  Storage s(":memory:");
  CountingLock lock;
  EXPECT_THROW((void)s.cached("k", lock, []() -> std::string { throw ComputeFailure("no"); }),
               ComputeFailure);
  EXPECT_EQ(lock.locks, 1);
  EXPECT_EQ(lock.unlocks, 1);
  EXPECT_FALSE(s.contains("k"));
}

TEST(CachedBarrier, ALockThatThrowsFailsTheCallWithoutComputing) {
  Storage s(":memory:");
  CountingLock lock;
  lock.throw_on_lock = true;
  bool computed = false;
  EXPECT_THROW((void)s.cached("k", lock,
                              [&] {
                                computed = true;
                                return std::string("v");
                              }),
               ComputeFailure);
  EXPECT_FALSE(computed);
  EXPECT_EQ(lock.unlocks, 0);
}

TEST(CachedBarrier, AnyLockableWorksWithAnExpiration) {
  Storage s(":memory:");
  std::shared_mutex shared;
  EXPECT_EQ(s.cached("k", shared, [] { return std::string("v"); }, Expiration::never()), "v");
  std::recursive_mutex recursive;
  EXPECT_EQ(s.cached("j", recursive, [] { return std::string("w"); }, 1min), "w");
}

TEST(CachedBarrier, ACallUnderTheBarrierItsOwnThreadHoldsThrowsInsteadOfWaitingForEver) {
  Storage s(":memory:");
  std::mutex barrier;  // one barrier for every key, as the README's example has it
  bool inner_computed = false;
  EXPECT_BACKLITE_ERROR((void)s.cached("outer", barrier,
                                       [&] {
                                         return s.cached("inner", barrier, [&] {
                                           inner_computed = true;
                                           return std::string("i");
                                         }) + "o";
                                       }),
                        Code::callback_failed);
  EXPECT_FALSE(inner_computed);
  EXPECT_FALSE(s.contains("outer"));
  EXPECT_FALSE(s.contains("inner"));
  // Every barrier was released: the next call locks it and computes.
  EXPECT_EQ(s.cached("outer", barrier, [] { return std::string("v"); }), "v");

  // A recursive barrier may be taken again, and another barrier inside is a lock of its own.
  std::recursive_mutex recursive;
  std::mutex other;
  EXPECT_EQ(s.cached("a", recursive,
                     [&] {
                       return s.cached("b", recursive, [] { return std::string("b"); }) +
                              s.cached("c", other, [] { return std::string("c"); });
                     }),
            "bc");
  EXPECT_EQ(s.get_string("b"), "b");
}

TEST(CachedBarrier, AStdMutexMakesEightThreadsComputeOnce) {
  Storage s(":memory:");
  std::mutex barrier;
  std::atomic<int> computations{0};
  constexpr int kThreads = 8;
  StartLine start(kThreads);
  std::vector<std::string> results(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      start.arrive_and_wait();
      results[static_cast<std::size_t>(t)] = s.cached("shared", barrier, [&] {
        ++computations;
        return std::string("computed once");
      });
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(computations.load(), 1);
  for (const auto& r : results) EXPECT_EQ(r, "computed once");
}

class CachedFileTest : public backlite_test::TempDir {};

TEST_F(CachedFileTest, EightThreadsMemoiseDistinctAndSharedKeysOnAFile) {
  Storage s(path("memo.db"));
  std::mutex barrier;
  std::atomic<int> computations{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) {
        const std::string key = "k" + std::to_string(i % 10);
        const std::string v = s.cached(key, barrier, [&] {
          ++computations;
          return key + "-value";
        });
        EXPECT_EQ(v, key + "-value") << "thread " << t;
        try {
          (void)s.cached("throws-" + std::to_string(t), []() -> std::string {
            throw ComputeFailure("always");
          });
          ADD_FAILURE() << "no exception";
        } catch (const ComputeFailure&) {
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(computations.load(), 10);
}

}  // namespace

namespace {

TEST(CachedExclusive, ComputesOnceAcrossEightThreadsWithoutABarrier) {
  Storage s(":memory:");
  std::atomic<int> computations{0};
  constexpr int kThreads = 8;
  StartLine start(kThreads);
  std::vector<std::string> results(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      start.arrive_and_wait();
      results[static_cast<std::size_t>(t)] = s.cached_exclusive(
          "shared",
          [&] {
            ++computations;
            return std::string("once");
          },
          10s);
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(computations.load(), 1);
  for (const auto& r : results) EXPECT_EQ(r, "once");
}

// A thread computing `key` under cached_exclusive until let_go(): meanwhile the key's
// lease is held, and other callers wait for it.
class Holder {
 public:
  Holder(Storage& s, const char* key, std::string value)
      : thread_([this, &s, key, value] {
          (void)s.cached_exclusive(key,
                                   [&] {
                                     std::unique_lock<std::mutex> lock(m_);
                                     computing_ = true;
                                     cv_.notify_all();
                                     cv_.wait(lock, [&] { return release_; });
                                     return value;
                                   },
                                   10s);
        }) {
    std::unique_lock<std::mutex> lock(m_);
    cv_.wait(lock, [&] { return computing_; });
  }
  Holder(const Holder&) = delete;
  Holder& operator=(const Holder&) = delete;
  ~Holder() { join(); }

  void let_go() {
    {
      std::lock_guard<std::mutex> lock(m_);
      release_ = true;
    }
    cv_.notify_all();
  }
  void join() {
    let_go();
    if (thread_.joinable()) thread_.join();
  }

 private:
  std::mutex m_;
  std::condition_variable cv_;
  bool computing_ = false, release_ = false;
  std::thread thread_;  // last: it starts once the members it uses exist
};

TEST(CachedExclusive, AWaiterGivesUpWithLeaseHeldAndTheTimeLeftAfterItsTimeout) {
  Storage s(":memory:");
  Holder holder(s, "k", "v");
  EXPECT_BACKLITE_ERROR((void)s.cached_exclusive("k", [] { return std::string("mine"); }, 20ms),
                        Code::lease_held);
  try {
    (void)s.cached_exclusive("k", [] { return std::string("mine"); }, 0ms);
    ADD_FAILURE() << "no error";
  } catch (const backlite::Error& e) {
    ASSERT_TRUE(e.lease_time_left().has_value());
    EXPECT_GT(e.lease_time_left()->count(), 0);
    EXPECT_LE(e.lease_time_left()->count(), 30000);
  }
  holder.join();
  EXPECT_EQ(s.get_string("k"), "v");
}

// A wait timeout of std::chrono::seconds::max() (or hours::max()) is "wait as long as it
// takes": it saturates at INT64_MAX ms. It was converted to std::chrono::milliseconds on
// the way in, which overflowed (undefined behaviour) to -1000 ms: the call threw
// invalid_argument "a negative wait_timeout" before looking anything up. A timeout under
// a millisecond is rounded up, not truncated to "do not wait".
TEST(CachedExclusive, AHugeOrSubMillisecondWaitTimeoutIsTakenAsGiven) {
  Storage s(":memory:");
  EXPECT_EQ(s.cached_exclusive("a", [] { return std::string("va"); }, std::chrono::seconds::max()),
            "va");
  EXPECT_EQ(s.cached_exclusive("b", [] { return std::string("vb"); }, std::chrono::hours::max()),
            "vb");
  EXPECT_EQ(s.cached_exclusive(
                "c", [] { return std::string("vc"); }, std::chrono::duration<double>(1e300)),
            "vc");
  EXPECT_EQ(s.cached_exclusive("d", [] { return std::string("vd"); }, 1us), "vd");
  EXPECT_BACKLITE_ERROR(
      (void)s.cached_exclusive("e", [] { return std::string(); },
                               std::chrono::duration<double>(std::nan(""))),
      Code::invalid_argument);
  EXPECT_BACKLITE_ERROR((void)s.cached_exclusive("e", [] { return std::string(); },
                                                 std::chrono::nanoseconds(-1)),
                        Code::invalid_argument);

  // And it does wait: a holder that fulfills later gives the waiter its value.
  Holder holder(s, "k", "held");
  std::thread releaser([&] { holder.let_go(); });
  const auto forever = std::chrono::seconds::max();
  EXPECT_EQ(s.cached_exclusive("k", [] { return std::string("mine"); }, forever), "held");
  releaser.join();
  holder.join();
}

TEST(CachedExclusive, AThrowingLambdaIsRethrownAndStoresNothing) {
  Storage s(":memory:");
  EXPECT_THROW((void)s.cached_exclusive(
                   "k", []() -> std::string { throw ComputeFailure("no"); }, 1s),
               ComputeFailure);
  EXPECT_FALSE(s.contains("k"));
  EXPECT_EQ(s.cached_exclusive("k", [] { return std::string("ok"); }, 1s, Expiration::never()),
            "ok");
  EXPECT_BACKLITE_ERROR((void)s.cached_exclusive("j", [] { return std::string(); }, -1ms),
                        Code::invalid_argument);
}

}  // namespace

// A cached_exclusive of the key being computed, from inside its own compute on the same
// thread (a recursion with the same arguments), through this Storage, another Storage of
// the same file or the file through a link (the lease is the file's): it computes at
// once and stores nothing; the outer call stores its value. Before, it waited its whole
// wait_timeout for the lease its own caller held, then threw lease_held. A call from
// another thread still waits for the outer compute's value.
TEST_F(CachedFileTest, ACallOfTheKeyBeingComputedFromInsideItsComputeComputesAtOnce) {
  std::filesystem::create_symlink(path("c.db"), path("link.db"));
  Storage a(path("c.db"));
  Storage b(path("c.db"));
  Storage linked(path("link.db"));
  for (Storage* inner : {&a, &b, &linked}) {
    const std::string key = "fib " + std::to_string(inner - &a);
    std::string inner_value;
    const std::string v = a.cached_exclusive(key, [&] {
      inner_value = inner->cached_exclusive(key, [] { return std::string("inner"); }, 10s);
      return std::string("outer");
    }, 60s);
    EXPECT_EQ(v, "outer");
    EXPECT_EQ(inner_value, "inner");
    EXPECT_EQ(a.get_string(key), "outer");
  }

  std::string from_thread;
  std::thread other;
  const std::string v = a.cached_exclusive("threaded", [&] {
    other = std::thread([&] {
      from_thread = b.cached_exclusive("threaded", [] { return std::string("computed twice"); },
                                       std::chrono::seconds::max());
    });
    return std::string("once");
  }, 60s);
  other.join();
  EXPECT_EQ(v, "once");
  EXPECT_EQ(from_thread, "once");
}
