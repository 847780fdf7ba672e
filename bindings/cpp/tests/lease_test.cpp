// Tests of the lease API (Storage::try_acquire, Storage::lease_step, backlite::Lease) and
// of the maintenance calls Storage::check and Storage::vacuum.
#include "test_util.hpp"

#include <chrono>
#include <cstdint>
#include <cmath>
#include <filesystem>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>

using namespace std::chrono_literals;
using backlite::Acquisition;
using backlite::Code;
using backlite::Expiration;
using backlite::Lease;
using backlite::Options;
using backlite::Storage;
using backlite_test::bytes;

namespace {

class LeaseFileTest : public backlite_test::TempDir {};
class MaintenanceTest : public backlite_test::TempDir {};

static_assert(!std::is_copy_constructible_v<Lease> && !std::is_copy_assignable_v<Lease>,
              "a Lease has one owner");
static_assert(std::is_nothrow_move_constructible_v<Lease> &&
                  std::is_nothrow_move_assignable_v<Lease>,
              "a Lease moves without throwing");

// ---- try_acquire --------------------------------------------------------------------

TEST(TryAcquire, AMissGivesALeaseAndTheKeyIsHeldUntilItIsFulfilled) {
  Storage s(":memory:");
  Acquisition first = s.try_acquire("k", 30s);
  ASSERT_TRUE(first.acquired());
  EXPECT_TRUE(first.lease);
  EXPECT_TRUE(first.value.empty());

  Acquisition second = s.try_acquire("k", 30s);
  EXPECT_TRUE(second.held());
  EXPECT_FALSE(second.lease);
  EXPECT_EQ(second.status, Acquisition::Status::held);
  EXPECT_EQ(second.retry_in, 1ms) << "when to ask again: the library's first pause";

  first.lease.fulfill("computed", Expiration::never());
  EXPECT_FALSE(first.lease) << "fulfill consumes the lease";
  EXPECT_EQ(s.get_string("k"), "computed");

  Acquisition third = s.try_acquire("k", 30s);
  ASSERT_TRUE(third.hit());
  EXPECT_EQ(third.value, bytes("computed"));
  EXPECT_FALSE(third.lease);
}

TEST(TryAcquire, DifferentKeysAreLeasedIndependently) {
  Storage s(":memory:");
  Acquisition a = s.try_acquire("a", 30s);
  Acquisition b = s.try_acquire("b", 30s);
  EXPECT_TRUE(a.acquired());
  EXPECT_TRUE(b.acquired());
}

TEST(TryAcquire, ANonPositiveLeaseLengthIsInvalid) {
  Storage s(":memory:");
  EXPECT_BACKLITE_ERROR(s.try_acquire("k", 0ms), Code::invalid_argument);
  EXPECT_BACKLITE_ERROR(s.try_acquire("k", -5ms), Code::invalid_argument);
}

// A lease of std::chrono::seconds::max() (or hours::max()) is as long as the library
// takes (INT64_MAX ms), and one under a millisecond is rounded up, as expirations are.
// Converted to std::chrono::milliseconds on the way in, seconds::max() overflowed
// (undefined behaviour) to -1000 ms: invalid_argument "lease_ms must be > 0 ms, got
// -1000" for a positive length, from try_acquire, extend and Options::lease_length.
TEST(TryAcquire, AHugeOrSubMillisecondLeaseIsTakenAsGiven) {
  Storage s(":memory:");
  Acquisition a = s.try_acquire("k", std::chrono::seconds::max());
  ASSERT_TRUE(a.acquired());
  EXPECT_TRUE(s.try_acquire("k", 30s).held());
  a.lease.extend(std::chrono::hours::max());
  EXPECT_TRUE(s.try_acquire("k", 30s).held());
  a.lease.fulfill("v");
  EXPECT_EQ(s.get_string("k"), "v");

  Acquisition b = s.try_acquire("j", 1us);
  ASSERT_TRUE(b.acquired());
  b.lease.extend(std::chrono::duration<double>(1e300));
  EXPECT_TRUE(s.try_acquire("j", 30s).held());
  b.lease.abandon();
  EXPECT_BACKLITE_ERROR(s.try_acquire("i", std::chrono::seconds::min()), Code::invalid_argument);
  EXPECT_BACKLITE_ERROR(s.try_acquire("i", std::chrono::duration<double>(std::nan(""))),
                        Code::invalid_argument);

  Storage t(":memory:", Options().lease_length(std::chrono::seconds::max()));
  EXPECT_EQ(t.cached_exclusive("k", [] { return std::string("v"); }, 1s), "v");
  EXPECT_NO_THROW(Options().lease_length(1us).busy_timeout(1us).remote_timeout(1us));
  EXPECT_BACKLITE_ERROR(Options().busy_timeout(std::chrono::seconds::max()),
                        Code::invalid_argument);
  EXPECT_BACKLITE_ERROR(Options().remote_timeout(std::chrono::hours::max()),
                        Code::invalid_argument);
}

TEST(TryAcquire, OnAMovedFromStorageThrowsNullParameter) {
  Storage s(":memory:");
  Storage t(std::move(s));
  EXPECT_BACKLITE_ERROR(s.try_acquire("k", 30s), Code::null_parameter);  // NOLINT: use after move on purpose
}

// ---- Lease --------------------------------------------------------------------------

TEST(Lease, ADestroyedLeaseIsAbandonedSoAnotherCallerMayTakeTheKey) {
  Storage s(":memory:");
  {
    Acquisition a = s.try_acquire("k", 30s);
    ASSERT_TRUE(a.acquired());
  }
  Acquisition again = s.try_acquire("k", 30s);
  EXPECT_TRUE(again.acquired());
  EXPECT_FALSE(s.contains("k")) << "abandoning stores nothing";
}

TEST(Lease, AbandonReleasesTheKeyAndEmptiesTheLease) {
  Storage s(":memory:");
  Acquisition a = s.try_acquire("k", 30s);
  a.lease.abandon();
  EXPECT_FALSE(a.lease);
  a.lease.abandon();  // twice: nothing happens
  EXPECT_TRUE(s.try_acquire("k", 30s).acquired());
}

TEST(Lease, MovingHandsTheLeaseOverAndAssigningAbandonsTheOldOne) {
  Storage s(":memory:");
  Acquisition a = s.try_acquire("a", 30s);
  Lease moved(std::move(a.lease));
  EXPECT_FALSE(a.lease);  // NOLINT: use after move on purpose
  EXPECT_TRUE(moved);
  EXPECT_NE(moved.c_lease(), nullptr);

  Acquisition b = s.try_acquire("b", 30s);
  moved = std::move(b.lease);  // abandons the lease on "a"
  EXPECT_TRUE(s.try_acquire("a", 30s).acquired());
  EXPECT_TRUE(s.try_acquire("b", 30s).held());
  moved.fulfill("B");
  EXPECT_EQ(s.get_string("b"), "B");
}

TEST(Lease, AnEmptyLeaseThrowsNullParameter) {
  Lease empty;
  EXPECT_FALSE(empty);
  EXPECT_BACKLITE_ERROR(empty.extend(1s), Code::null_parameter);
  EXPECT_BACKLITE_ERROR(empty.fulfill("v"), Code::null_parameter);

  Storage s(":memory:");
  Acquisition a = s.try_acquire("k", 30s);
  a.lease.fulfill("v");
  EXPECT_BACKLITE_ERROR(a.lease.fulfill("again"), Code::null_parameter);
  EXPECT_EQ(s.get_string("k"), "v");
}

TEST(Lease, ExtendKeepsTheKeyHeldAndRefusesABadLength) {
  Storage s(":memory:");
  Acquisition a = s.try_acquire("k", 30s);
  a.lease.extend(60s);
  EXPECT_TRUE(s.try_acquire("k", 30s).held());
  EXPECT_BACKLITE_ERROR(a.lease.extend(0ms), Code::invalid_argument);
  EXPECT_TRUE(a.lease) << "a failed extend keeps the lease";
}

TEST(Lease, FulfillStoresWithTheExpirationGiven) {
  Storage s(":memory:");
  Acquisition a = s.try_acquire("k", 30s);
  a.lease.fulfill("v", 1h);
  const auto entry = s.get_entry("k");
  ASSERT_TRUE(entry.has_value());
  ASSERT_TRUE(entry->expires_in.has_value());
  EXPECT_GT(*entry->expires_in, 59min);
  EXPECT_LE(*entry->expires_in, 60min);
}

TEST(Lease, ATooLargeValueThrowsAndStillReleasesTheKey) {
  Storage s(":memory:", Options().max_size(4));
  Acquisition a = s.try_acquire("k", 30s);
  EXPECT_BACKLITE_ERROR(a.lease.fulfill("far too long"), Code::too_large);
  EXPECT_FALSE(a.lease);
  EXPECT_TRUE(s.try_acquire("k", 30s).acquired());
}

TEST(Lease, ALeaseOverdueAndTakenOverIsLost) {
  Storage s(":memory:");
  Acquisition first = s.try_acquire("k", 1ms);
  ASSERT_TRUE(first.acquired());
  std::this_thread::sleep_for(30ms);  // past the deadline: another caller may take over
  Acquisition second = s.try_acquire("k", 30s);
  ASSERT_TRUE(second.acquired());

  EXPECT_BACKLITE_ERROR(first.lease.extend(30s), Code::lease_lost);
  EXPECT_BACKLITE_ERROR(first.lease.fulfill("stale"), Code::lease_lost);
  EXPECT_FALSE(first.lease);
  second.lease.fulfill("fresh");
  EXPECT_EQ(s.get_string("k"), "fresh") << "the lost lease stored nothing";
}

TEST_F(LeaseFileTest, ALeaseOutlivesItsStorageHandle) {
  const std::string db = path("c.db");
  Lease lease;
  {
    Storage s(db);
    Acquisition a = s.try_acquire("k", 30s);
    ASSERT_TRUE(a.acquired());
    lease = std::move(a.lease);
  }  // the handle is closed here
  lease.fulfill("after close");
  Storage again(db);
  EXPECT_EQ(again.get_string("k"), "after close");
}

TEST_F(LeaseFileTest, TwoHandlesOnOneFileShareTheLease) {
  const std::string db = path("c.db");
  Storage a(db);
  Storage b(db);
  Acquisition held = a.try_acquire("k", 30s);
  ASSERT_TRUE(held.acquired());
  EXPECT_TRUE(b.try_acquire("k", 30s).held());
  held.lease.fulfill("from a");
  Acquisition hit = b.try_acquire("k", 30s);
  ASSERT_TRUE(hit.hit());
  EXPECT_EQ(hit.value, bytes("from a"));
}

TEST_F(LeaseFileTest, AHeldKeyTellsTheHoldersTimeLeft) {
  const std::string db = path("c.db");
  Storage a(db);
  Storage b(db);
  Acquisition held = a.try_acquire("k", 600s);
  ASSERT_TRUE(held.acquired());
  Acquisition seen = b.try_acquire("k", 1s);
  ASSERT_TRUE(seen.held());
  EXPECT_GT(seen.time_left, 300s);
  EXPECT_LE(seen.time_left, 600s);
}

TEST_F(LeaseFileTest, TheLeaseLengthOptionSetsHowLongCachedExclusiveHoldsAKey) {
  const std::string db = path("c.db");
  Storage owner(db, Options().lease_length(600s));
  Storage other(db);
  // While the owner computes, another handle sees the key held with the owner's lease
  // length left (the default, 30 s, would leave at most 30 s).
  std::chrono::milliseconds seen{-1};
  const std::string v = owner.cached_exclusive(
      "k",
      [&] {
        Acquisition probe = other.try_acquire("k", 1s);
        if (probe.held()) seen = probe.time_left;
        return std::string("v");
      },
      10s);
  EXPECT_EQ(v, "v");
  EXPECT_GT(seen, 300s);
  EXPECT_BACKLITE_ERROR(Options().lease_length(0ms), Code::invalid_argument);
  EXPECT_BACKLITE_ERROR(Options().lease_length(-5ms), Code::invalid_argument);
}

// ---- lease_step ---------------------------------------------------------------------

TEST(LeaseStep, AMissGivesTheLeaseAHeldKeyTheBackOffAndAFulfilledOneTheValue) {
  Storage s(":memory:");
  Acquisition first = s.lease_step("k", 0);
  ASSERT_TRUE(first.acquired());
  EXPECT_TRUE(first.lease);

  // The pause grows with the attempt, 1 ms doubling to 50 ms.
  Acquisition step0 = s.lease_step("k", 0);
  ASSERT_TRUE(step0.held());
  EXPECT_FALSE(step0.lease);
  EXPECT_EQ(step0.retry_in, 1ms);
  EXPECT_GT(step0.time_left, 0ms);
  EXPECT_EQ(s.lease_step("k", 3).retry_in, 8ms);
  EXPECT_EQ(s.lease_step("k", 20).retry_in, 50ms);

  first.lease.fulfill("computed");
  Acquisition hit = s.lease_step("k", 4);
  ASSERT_TRUE(hit.hit());
  EXPECT_EQ(hit.value, bytes("computed"));
}

TEST(LeaseStep, OnlyTheFirstStepOfAWaitCountsAMiss) {
  Storage s(":memory:");
  Acquisition owner = s.lease_step("k", 0);  // a miss
  ASSERT_TRUE(owner.acquired());
  const std::uint64_t before = s.stats().misses;
  ASSERT_TRUE(s.lease_step("k", 0).held());  // a second wait: one more miss
  for (std::uint32_t attempt = 1; attempt < 5; ++attempt) {
    ASSERT_TRUE(s.lease_step("k", attempt).held());
  }
  EXPECT_EQ(s.stats().misses, before + 1);
}

TEST(LeaseStep, OnAMovedFromStorageThrowsNullParameter) {
  Storage s(":memory:");
  Storage t(std::move(s));
  EXPECT_BACKLITE_ERROR(s.lease_step("k", 0), Code::null_parameter);  // NOLINT: use after move on purpose
}

// try_acquire's lease runs out unless extended; lease_step's is renewed by the library
// while its owner computes, however long (here 3 lease lengths), as cached_exclusive's.
TEST_F(LeaseFileTest, ASteppedLeaseIsRenewedUntilItIsFulfilled) {
  const std::string db = path("c.db");
  Storage owner(db, Options().lease_length(600ms));
  Storage other(db);
  Acquisition a = owner.lease_step("k", 0);
  ASSERT_TRUE(a.acquired());
  std::this_thread::sleep_for(1800ms);
  EXPECT_TRUE(other.try_acquire("k", 30s).held()) << "the lease ran out unrenewed";
  a.lease.fulfill("v");
  EXPECT_EQ(other.get_string("k"), "v");
}

// The loop an event loop runs: step, wait retry_in, step with attempt + 1, until the
// owner (another thread here) fulfills its lease.
TEST_F(LeaseFileTest, AWaiterSteppingFindsTheOwnersValue) {
  const std::string db = path("c.db");
  Storage owner(db);
  Storage waiter(db);
  Acquisition held = owner.lease_step("k", 0);
  ASSERT_TRUE(held.acquired());
  std::thread computing([&] {
    std::this_thread::sleep_for(100ms);
    held.lease.fulfill("from the owner");
  });
  Acquisition a;
  std::uint32_t attempt = 0;
  for (; (a = waiter.lease_step("k", attempt)).held(); ++attempt) {
    EXPECT_GT(a.retry_in, 0ms);
    std::this_thread::sleep_for(a.retry_in);
  }
  computing.join();
  ASSERT_TRUE(a.hit()) << "the waiter took the lease over";
  EXPECT_EQ(a.value, bytes("from the owner"));
}

// ---- check and vacuum ---------------------------------------------------------------

TEST_F(MaintenanceTest, CheckReportsAHealthyFileAndItsCounts) {
  Storage s(path("c.db"));
  s.set("a", std::string(10, 'v'));
  s.set("b", std::string(1000, 'v'));
  s.set("c", std::string(10, 'v'));
  const backlite::CheckReport r = s.check();
  EXPECT_TRUE(r.healthy);
  EXPECT_TRUE(r.integrity_ok);
  EXPECT_FALSE(r.repaired);
  EXPECT_EQ(r.entries, 3u);
  EXPECT_EQ(r.damaged, 0u);
  EXPECT_EQ(r.orphan_values, 0u);
  EXPECT_EQ(r.recorded_count, 3u);
  EXPECT_EQ(r.recorded_total_size, 1020u);
  EXPECT_EQ(r.actual_count, 3u);
  EXPECT_EQ(r.actual_total_size, 1020u);
}

TEST(Check, RepairOnAHealthyCacheChangesNothing) {
  Storage s(":memory:");
  s.set("k", "value");
  const backlite::CheckReport r = s.check(true);
  EXPECT_TRUE(r.healthy);
  EXPECT_FALSE(r.repaired);
  EXPECT_EQ(s.get_string("k"), "value");
}

TEST(Check, OnAMovedFromStorageThrowsNullParameter) {
  Storage s(":memory:");
  Storage t(std::move(s));
  EXPECT_BACKLITE_ERROR(s.check(), Code::null_parameter);  // NOLINT: use after move on purpose
  EXPECT_BACKLITE_ERROR(s.vacuum(), Code::null_parameter);
}

TEST_F(MaintenanceTest, VacuumGivesTheSpaceOfDeletedEntriesBack) {
  const std::string db = path("c.db");
  Storage s(db);
  const std::string big(10000, 'v');
  for (int i = 0; i < 200; ++i) s.set("k" + std::to_string(i), big);
  s.clear();
  s.vacuum();
  EXPECT_LT(std::filesystem::file_size(db), 100000u);
  std::error_code no_wal;
  const auto wal = std::filesystem::file_size(db + "-wal", no_wal);
  EXPECT_TRUE(no_wal || wal == 0u) << "the write-ahead log is truncated";
  s.set("after", "v");
  EXPECT_EQ(s.get_string("after"), "v");
}

}  // namespace
