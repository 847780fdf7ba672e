// BackLite for C++17: a header-only wrapper over the C API of <backlite.h>.
//
//   backlite::Storage cache("cache.db", backlite::Options().max_size(64 << 20));
//   cache.set("greeting", "hello", std::chrono::minutes(1));
//   std::optional<std::string> v = cache.get_string("greeting");
//   std::string answer = cache.cached("answer", [] { return std::string("42"); });
//
// Every failure is a backlite::Error (a std::runtime_error) carrying the C result code.
// A lambda handed to keys() or cached() may throw: the exception is caught before it
// reaches C, the C call is told to stop, and the exception is rethrown once the C call
// has returned. Link with the C library (CMake: backlite::backlite, or backlite::cpp).
#ifndef BACKLITE_HPP
#define BACKLITE_HPP

#include <backlite.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <filesystem>
#include <initializer_list>
#include <istream>
#include <iterator>
#include <limits>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <shared_mutex>
#include <stdexcept>
#include <streambuf>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#if __has_include(<sys/stat.h>)
#include <sys/stat.h>
#define BACKLITE_HPP_HAS_STAT 1
#endif

namespace backlite {

// ------------------------------------------------------------------------------------
// Result codes and errors
// ------------------------------------------------------------------------------------

/// The C library's result codes (`BACKLITE_RESULT_*`), same values.
enum class Code : std::int32_t {
  ok = BACKLITE_RESULT_OK,
  not_found = BACKLITE_RESULT_NOT_FOUND,
  null_parameter = BACKLITE_RESULT_NULL_PARAMETER,
  invalid_argument = BACKLITE_RESULT_INVALID_ARGUMENT,
  io = BACKLITE_RESULT_IO,
  not_a_cache = BACKLITE_RESULT_NOT_A_CACHE,
  corrupt = BACKLITE_RESULT_CORRUPT,
  busy = BACKLITE_RESULT_BUSY,
  too_large = BACKLITE_RESULT_TOO_LARGE,
  callback_failed = BACKLITE_RESULT_CALLBACK_FAILED,
  incompatible = BACKLITE_RESULT_INCOMPATIBLE,
  panic = BACKLITE_RESULT_PANIC,
  internal = BACKLITE_RESULT_INTERNAL,
  lease_lost = BACKLITE_RESULT_LEASE_LOST,
  lease_held = BACKLITE_RESULT_LEASE_HELD,
};

/// The library's static description of a code ("not found", ...).
inline const char* code_name(Code code) noexcept {
  return backlite_result_str(static_cast<backlite_result>(code));
}

/// Every failure of this library: the C result code and the C library's message.
class Error : public std::runtime_error {
 public:
  Error(Code code, const std::string& message,
        std::optional<std::chrono::milliseconds> lease_time_left = std::nullopt)
      : std::runtime_error(message.empty() ? std::string(code_name(code)) : message),
        code_(code),
        lease_time_left_(lease_time_left) {}

  /// The C result code.
  Code code() const noexcept { return code_; }

  /// For Code::lease_held: the holder's lease time left (it renews the lease while it
  /// computes); empty for other codes.
  std::optional<std::chrono::milliseconds> lease_time_left() const noexcept {
    return lease_time_left_;
  }

 private:
  Code code_;
  std::optional<std::chrono::milliseconds> lease_time_left_;
};

namespace detail {

struct ErrorDeleter {
  void operator()(backlite_error* e) const noexcept { backlite_error_free(e); }
};
using ErrorPtr = std::unique_ptr<backlite_error, ErrorDeleter>;

/// Owns the `backlite_error` a call may produce and turns a failed result into an Error.
class ErrorSlot {
 public:
  ErrorSlot() = default;
  ErrorSlot(const ErrorSlot&) = delete;
  ErrorSlot& operator=(const ErrorSlot&) = delete;
  ~ErrorSlot() { backlite_error_free(raw_); }

  backlite_error** out() noexcept { return &raw_; }

  [[noreturn]] void raise(backlite_result rc, const char* what) {
    ErrorPtr owned(std::exchange(raw_, nullptr));
    std::string message = owned ? backlite_error_message(owned.get()) : std::string();
    if (message.empty()) {
      message = std::string(what) + ": " + backlite_result_str(rc);
    }
    std::optional<std::chrono::milliseconds> left;
    if (const std::int64_t ms = backlite_error_lease_time_left_ms(owned.get()); ms >= 0) {
      left = std::chrono::milliseconds(ms);
    }
    throw Error(static_cast<Code>(rc), message, left);
  }

  /// The lease time left the error carries (LEASE_HELD), or zero.
  std::chrono::milliseconds lease_time_left() const noexcept {
    const std::int64_t ms = raw_ ? backlite_error_lease_time_left_ms(raw_) : -1;
    return std::chrono::milliseconds(ms > 0 ? ms : 0);
  }

  /// When to ask again, as the error says (LEASE_HELD: the library's back-off), or zero.
  std::chrono::milliseconds retry_in() const noexcept {
    const std::int64_t ms = raw_ ? backlite_error_retry_in_ms(raw_) : -1;
    return std::chrono::milliseconds(ms > 0 ? ms : 0);
  }

  /// Throws unless `rc` is OK (or one of the codes in `allowed`, returned as is).
  backlite_result check(backlite_result rc, const char* what,
                        backlite_result allowed = BACKLITE_RESULT_OK) {
    if (rc != BACKLITE_RESULT_OK && rc != allowed) raise(rc, what);
    return rc;
  }

 private:
  backlite_error* raw_ = nullptr;
};

struct BufGuard {
  backlite_buf buf{nullptr, 0};
  BufGuard() = default;
  BufGuard(const BufGuard&) = delete;
  BufGuard& operator=(const BufGuard&) = delete;
  ~BufGuard() { backlite_buf_free(&buf); }
};

template <class T, class = void>
struct is_byte_container : std::false_type {};
template <class T>
struct is_byte_container<
    T, std::void_t<decltype(std::data(std::declval<const T&>())),
                   decltype(std::size(std::declval<const T&>()))>>
    : std::bool_constant<
          std::is_pointer_v<decltype(std::data(std::declval<const T&>()))> &&
          sizeof(std::remove_pointer_t<decltype(std::data(std::declval<const T&>()))>) == 1 &&
          std::is_trivially_copyable_v<
              std::remove_pointer_t<decltype(std::data(std::declval<const T&>()))>>> {};

}  // namespace detail

// ------------------------------------------------------------------------------------
// Bytes in
// ------------------------------------------------------------------------------------

/// A borrowed run of bytes (C++17 has no std::span): from a string_view, a C string,
/// `(pointer, length)`, or any contiguous container of 1-byte elements (std::string,
/// std::vector<std::byte>, std::vector<std::uint8_t>, std::array<char, N>, ...).
/// Keys and values are copied by the library before a call returns.
class ByteView {
 public:
  constexpr ByteView() noexcept = default;
  ByteView(const void* data, std::size_t size) noexcept
      : data_(static_cast<const std::byte*>(data)), size_(size) {}
  ByteView(std::string_view s) noexcept : ByteView(s.data(), s.size()) {}
  ByteView(const char* s) noexcept : ByteView(s, s ? std::strlen(s) : 0) {}
  template <class C, std::enable_if_t<detail::is_byte_container<C>::value &&
                                          !std::is_same_v<std::decay_t<C>, ByteView> &&
                                          !std::is_convertible_v<const C&, const char*>,
                                      int> = 0>
  ByteView(const C& c) noexcept : ByteView(std::data(c), std::size(c)) {}

  const std::byte* data() const noexcept { return data_; }
  std::size_t size() const noexcept { return size_; }
  bool empty() const noexcept { return size_ == 0; }
  const std::byte* begin() const noexcept { return data_; }
  const std::byte* end() const noexcept { return data_ + size_; }

  /// The bytes as text (no copy, no UTF-8 check).
  std::string_view as_string_view() const noexcept {
    return {reinterpret_cast<const char*>(data_), size_};
  }
  std::string to_string() const { return std::string(as_string_view()); }
  std::vector<std::byte> to_bytes() const { return {begin(), end()}; }

  /// For the C API: `const uint8_t *` (NULL only when empty).
  const std::uint8_t* u8() const noexcept {
    return reinterpret_cast<const std::uint8_t*>(data_);
  }

 private:
  const std::byte* data_ = nullptr;
  std::size_t size_ = 0;
};

// ------------------------------------------------------------------------------------
// Expiration, policies, options
// ------------------------------------------------------------------------------------

namespace detail {

/// A duration in whole milliseconds, rounded up, for the C API. Through double first: a
/// huge duration (std::chrono::seconds::max(), "no end") saturates at INT64_MAX ms (and a
/// hugely negative one at INT64_MIN) instead of overflowing, as the conversion to
/// milliseconds would (seconds::max() to -1000 ms, undefined behaviour besides). NaN
/// throws Error(invalid_argument).
template <class Rep, class Period>
std::int64_t ceil_ms(std::chrono::duration<Rep, Period> d, const char* what) {
  const double ms = std::chrono::duration<double, std::milli>(d).count();
  if (std::isnan(ms)) throw Error(Code::invalid_argument, std::string("a NaN ") + what);
  if (!(ms < 9.0e18)) return std::numeric_limits<std::int64_t>::max();
  if (!(ms > -9.0e18)) return std::numeric_limits<std::int64_t>::min();
  return std::chrono::ceil<std::chrono::milliseconds>(d).count();
}

}  // namespace detail

/// How long an entry lives: a duration (rounded up to whole milliseconds; zero means
/// "already expired": the set stores nothing), `Expiration::never()`, or
/// `Expiration::storage_default()` (the storage's default expiration).
class Expiration {
 public:
  /// A negative or NaN duration throws Error(Code::invalid_argument).
  template <class Rep, class Period>
  Expiration(std::chrono::duration<Rep, Period> d)  // NOLINT: implicit by design
      : ms_(to_ms(d)) {}

  static constexpr Expiration never() noexcept { return Expiration(BACKLITE_EXPIRATION_NEVER, 0); }
  static constexpr Expiration storage_default() noexcept {
    return Expiration(BACKLITE_EXPIRATION_DEFAULT, 0);
  }

  /// Milliseconds for the C API (>= 0, or BACKLITE_EXPIRATION_NEVER / _DEFAULT).
  constexpr std::int64_t ms() const noexcept { return ms_; }
  constexpr bool is_never() const noexcept { return ms_ == BACKLITE_EXPIRATION_NEVER; }
  constexpr bool is_storage_default() const noexcept {
    return ms_ == BACKLITE_EXPIRATION_DEFAULT;
  }
  friend constexpr bool operator==(Expiration a, Expiration b) noexcept { return a.ms_ == b.ms_; }
  friend constexpr bool operator!=(Expiration a, Expiration b) noexcept { return a.ms_ != b.ms_; }

 private:
  constexpr Expiration(std::int64_t ms, int) noexcept : ms_(ms) {}

  template <class Rep, class Period>
  static std::int64_t to_ms(std::chrono::duration<Rep, Period> d) {
    if (d < d.zero()) {
      throw Error(Code::invalid_argument,
                  "a negative expiration: use Expiration::never() or storage_default()");
    }
    return detail::ceil_ms(d, "expiration");
  }

  std::int64_t ms_;
};

/// The five eviction policies (`BACKLITE_EVICTION_POLICY_*`, same values).
enum class EvictionPolicy : std::int32_t {
  least_recently_used = BACKLITE_EVICTION_POLICY_LEAST_RECENTLY_USED,
  least_frequently_used = BACKLITE_EVICTION_POLICY_LEAST_FREQUENTLY_USED,
  most_recently_used = BACKLITE_EVICTION_POLICY_MOST_RECENTLY_USED,
  first_in_first_out = BACKLITE_EVICTION_POLICY_FIRST_IN_FIRST_OUT,
  last_in_first_out = BACKLITE_EVICTION_POLICY_LAST_IN_FIRST_OUT,
};

/// How a remote tier (Options::remote) is used.
enum class RemoteMode : std::int32_t {
  read_write = BACKLITE_REMOTE_MODE_READ_WRITE,      ///< writes reach it before return (default)
  read_only = BACKLITE_REMOTE_MODE_READ_ONLY,        ///< reads through, never writes
  write_behind = BACKLITE_REMOTE_MODE_WRITE_BEHIND,  ///< writes queued, sent in the background
};

/// Open options, built fluently; each setter validates at once and throws
/// Error(Code::invalid_argument) on a bad value:
///
///   backlite::Options().max_size(64 << 20).eviction_policy("least-frequently-used")
class Options {
 public:
  Options() : o_(backlite_options_new()) {
    if (!o_) throw std::bad_alloc();
  }
  Options(Options&&) noexcept = default;
  Options& operator=(Options&&) noexcept = default;
  Options(const Options&) = delete;
  Options& operator=(const Options&) = delete;

  /// The limit on the sum of value lengths, 1 to INT64_MAX bytes (default 1 GiB).
  Options& max_size(std::uint64_t bytes) & {
    check(backlite_options_set_max_size(o_.get(), bytes), "max_size");
    return *this;
  }
  Options max_size(std::uint64_t bytes) && {
    max_size(bytes);
    return std::move(*this);
  }

  /// Default: least_recently_used.
  Options& eviction_policy(EvictionPolicy p) & {
    check(backlite_options_set_eviction_policy(o_.get(), static_cast<backlite_eviction_policy>(p)),
          "eviction_policy");
    return *this;
  }
  Options eviction_policy(EvictionPolicy p) && {
    eviction_policy(p);
    return std::move(*this);
  }

  /// By the seed's name: "least-recently-used", "least-frequently-used", ...
  Options& eviction_policy(std::string_view name) & {
    const std::string z = c_string(name, "eviction_policy");
    check(backlite_options_set_eviction_policy_name(o_.get(), z.c_str()), "eviction_policy");
    return *this;
  }
  Options eviction_policy(std::string_view name) && {
    eviction_policy(name);
    return std::move(*this);
  }
  Options& eviction_policy(const char* name) & { return eviction_policy(std::string_view(name ? name : "")); }
  Options eviction_policy(const char* name) && {
    eviction_policy(name);
    return std::move(*this);
  }

  /// The expiration of entries set with Expiration::storage_default(): a duration or
  /// Expiration::never() (the default).
  Options& default_expiration(Expiration e) & {
    check(backlite_options_set_default_expiration_ms(o_.get(), e.ms()), "default_expiration");
    return *this;
  }
  Options default_expiration(Expiration e) && {
    default_expiration(e);
    return std::move(*this);
  }

  /// How long to wait for a lock held by another connection or process (default 5 s).
  /// Any std::chrono duration, rounded up to whole milliseconds, 0 to 4294967295 ms
  /// (the C API's uint32_t): a longer one, std::chrono::seconds::max() included, throws
  /// Error(Code::invalid_argument).
  template <class Rep, class Period>
  Options& busy_timeout(std::chrono::duration<Rep, Period> timeout) & {
    const std::int64_t ms = detail::ceil_ms(timeout, "busy_timeout");
    if (ms < 0 || ms > std::numeric_limits<std::uint32_t>::max()) {
      throw Error(Code::invalid_argument, "busy_timeout: must be 0 to 4294967295 ms");
    }
    check(backlite_options_set_busy_timeout_ms(o_.get(), static_cast<std::uint32_t>(ms)),
          "busy_timeout");
    return *this;
  }
  template <class Rep, class Period>
  Options busy_timeout(std::chrono::duration<Rep, Period> timeout) && {
    busy_timeout(timeout);
    return std::move(*this);
  }

  /// How long cached_exclusive's claim on a key lasts between two renewals (the library
  /// renews it every third of this while the compute runs); default 30 s; > 0.
  /// Any std::chrono duration, rounded up to whole milliseconds.
  template <class Rep, class Period>
  Options& lease_length(std::chrono::duration<Rep, Period> length) & {
    check(backlite_options_set_lease_ms(o_.get(), detail::ceil_ms(length, "lease_length")),
          "lease_length");
    return *this;
  }
  template <class Rep, class Period>
  Options lease_length(std::chrono::duration<Rep, Period> length) && {
    lease_length(length);
    return std::move(*this);
  }

  /// Values of at least `bytes` bytes (> 0) are kept in files of their own in the folder
  /// `<cache>.values/` beside the cache file; std::nullopt keeps every value in the
  /// database file. Default: backlite_options_set_file_threshold in backlite.h.
  Options& file_threshold(std::optional<std::uint64_t> bytes) & {
    if (bytes && *bytes > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
      throw Error(Code::invalid_argument, "file_threshold: must be 1 to INT64_MAX bytes");
    }
    check(backlite_options_set_file_threshold(
              o_.get(), bytes ? static_cast<std::int64_t>(*bytes) : BACKLITE_FILE_THRESHOLD_NEVER),
          "file_threshold");
    return *this;
  }
  Options file_threshold(std::optional<std::uint64_t> bytes) && {
    file_threshold(bytes);
    return std::move(*this);
  }

  /// When the file was last opened with another tag, every entry is dropped on open.
  Options& version_tag(std::string_view tag) & {
    const std::string z = c_string(tag, "version_tag");
    check(backlite_options_set_version_tag(o_.get(), z.c_str()), "version_tag");
    return *this;
  }
  Options version_tag(std::string_view tag) && {
    version_tag(tag);
    return std::move(*this);
  }

  /// A shared remote tier on Redis / Valkey: "redis://[user[:password]@]host[:port][/db]",
  /// "rediss://..." (TLS), "redis+unix:///path", "redis+cluster://h:p,h:p" or
  /// "rediss+cluster://..."; "" removes it. A malformed URL throws invalid_argument.
  Options& remote(std::string_view url) & {
    const std::string z = c_string(url, "remote");
    check(backlite_options_set_remote(o_.get(), z.c_str()), "remote");
    return *this;
  }
  Options remote(std::string_view url) && {
    remote(url);
    return std::move(*this);
  }

  /// The prefix of every remote key (default "backlite").
  Options& remote_namespace(std::string_view ns) & {
    const std::string z = c_string(ns, "remote_namespace");
    check(backlite_options_set_remote_namespace(o_.get(), z.c_str()), "remote_namespace");
    return *this;
  }
  Options remote_namespace(std::string_view ns) && {
    remote_namespace(ns);
    return std::move(*this);
  }

  /// The bound on every remote round trip, connect included (default 250 ms; > 0).
  /// Any std::chrono duration, rounded up to whole milliseconds, up to 4294967295 ms
  /// (the C API's uint32_t): a longer one throws Error(Code::invalid_argument).
  template <class Rep, class Period>
  Options& remote_timeout(std::chrono::duration<Rep, Period> timeout) & {
    const std::int64_t ms = detail::ceil_ms(timeout, "remote_timeout");
    if (ms <= 0 || ms > std::numeric_limits<std::uint32_t>::max()) {
      throw Error(Code::invalid_argument, "remote_timeout: must be 1 to 4294967295 ms");
    }
    check(backlite_options_set_remote_timeout_ms(o_.get(), static_cast<std::uint32_t>(ms)),
          "remote_timeout");
    return *this;
  }
  template <class Rep, class Period>
  Options remote_timeout(std::chrono::duration<Rep, Period> timeout) && {
    remote_timeout(timeout);
    return std::move(*this);
  }

  Options& remote_mode(RemoteMode m) & {
    check(backlite_options_set_remote_mode(o_.get(), static_cast<backlite_remote_mode>(m)),
          "remote_mode");
    return *this;
  }
  Options remote_mode(RemoteMode m) && {
    remote_mode(m);
    return std::move(*this);
  }

  const backlite_options* c_options() const noexcept { return o_.get(); }

 private:
  struct Deleter {
    void operator()(backlite_options* o) const noexcept { backlite_options_free(o); }
  };

  static std::string c_string(std::string_view s, const char* what) {
    if (s.find('\0') != std::string_view::npos) {
      throw Error(Code::invalid_argument, std::string(what) + ": contains a NUL byte");
    }
    return std::string(s);
  }
  static void check(backlite_result rc, const char* what) {
    if (rc != BACKLITE_RESULT_OK) {
      throw Error(static_cast<Code>(rc), std::string(what) + ": " + backlite_result_str(rc));
    }
  }

  std::unique_ptr<backlite_options, Deleter> o_;
};

// ------------------------------------------------------------------------------------
// Storage
// ------------------------------------------------------------------------------------

/// A looked-up value with the time it has left (nullopt: it never expires).
struct Entry {
  std::vector<std::byte> value{};
  std::optional<std::chrono::milliseconds> expires_in{};
};

/// One item for Storage::set_many.
struct Item {
  ByteView key;
  ByteView value;
  Expiration expiration = Expiration::storage_default();
};

/// The file's counters and this handle's activity.
struct Stats {
  std::uint64_t count = 0;        ///< live entries in the file
  std::uint64_t total_size = 0;   ///< sum of value lengths in the file
  std::uint64_t max_size = 0;
  std::uint64_t hits = 0;         ///< this handle's lookups that found a live entry
  std::uint64_t misses = 0;       ///< this handle's lookups that did not
  std::uint64_t evictions = 0;    ///< entries this handle evicted for size
  std::uint64_t expirations = 0;  ///< expired entries this handle removed
};

/// What Storage::check found and, with repair, fixed (`backlite_check_report`).
struct CheckReport {
  bool healthy = false;       ///< nothing is wrong (or everything wrong was repaired)
  bool integrity_ok = false;  ///< SQLite found the structure sound (if not: delete the file)
  bool repaired = false;      ///< repair changed something
  std::uint64_t entries = 0;  ///< live entries examined
  std::uint64_t damaged = 0;  ///< entries whose value failed its checksum or was missing
  std::uint64_t orphan_values = 0;        ///< stored values that no entry refers to
  /// `count` as the file recorded it before the check. Both recorded figures are
  /// UINT64_MAX when the file's counters were damaged (not sound integers): until a
  /// check with repair rewrites them, every write throws Code::corrupt.
  std::uint64_t recorded_count = 0;
  std::uint64_t recorded_total_size = 0;  ///< `total_size` as recorded before the check
  std::uint64_t actual_count = 0;         ///< `count` of the entries that passed
  std::uint64_t actual_total_size = 0;    ///< `total_size` of the entries that passed
};

namespace detail {

// The number of fields of an aggregate: the largest N for which T{x1, ..., xN} compiles.
// Stats and CheckReport copy the C structs field by field, by name (a renamed field does
// not compile); these counts make a field added to the C struct fail to compile too.
struct AnyField {
  template <class U>
  operator U() const noexcept;  // NOLINT: converts to any field type, never defined
};
template <class T, class Indices, class = void>
struct brace_initializable : std::false_type {};
template <class T, std::size_t... I>
struct brace_initializable<T, std::index_sequence<I...>,
                           std::void_t<decltype(T{(static_cast<void>(I), AnyField{})...})>>
    : std::true_type {};
template <class T, std::size_t N = 0>
constexpr std::size_t field_count() noexcept {
  if constexpr (brace_initializable<T, std::make_index_sequence<N + 1>>::value) {
    return field_count<T, N + 1>();
  } else {
    return N;
  }
}

static_assert(field_count<backlite_stats>() == 7,
              "backlite_stats changed: copy every field in Storage::stats() and Stats");
static_assert(field_count<backlite_remote_stats>() == 6,
              "backlite_remote_stats changed: copy every field in Storage::remote_stats()");
static_assert(field_count<backlite_check_report>() == 10,
              "backlite_check_report changed: copy every field in Storage::check() and "
              "CheckReport");

/// Which cache a Storage has open. A lease is the file's, not the handle's: a second
/// Storage of the same file (another path to it, a link) meets it as its own.
struct CacheIdentity {
  std::uint64_t device = 0;
  std::uint64_t inode = 0;
  /// The handle alone: an in-memory cache, or a file that could not be looked at.
  const void* handle = nullptr;

  friend bool operator==(const CacheIdentity& a, const CacheIdentity& b) noexcept {
    return a.device == b.device && a.inode == b.inode && a.handle == b.handle;
  }

  static CacheIdentity of(const std::string& path, const backlite_storage* s) noexcept {
#ifdef BACKLITE_HPP_HAS_STAT
    struct stat info {};
    if (path != ":memory:" && ::stat(path.c_str(), &info) == 0) {
      return CacheIdentity{static_cast<std::uint64_t>(info.st_dev),
                           static_cast<std::uint64_t>(info.st_ino), nullptr};
    }
#else
    (void)path;
#endif
    return CacheIdentity{0, 0, s};
  }
};

/// The keys this thread computes under cached_exclusive, innermost last. A call of one
/// of them from inside its own compute (a recursion with the same arguments) would wait
/// for the key's lease, which is its own caller's: it computes at once instead.
struct Computing {
  CacheIdentity cache;
  ByteView key;  // the outer call's key, alive while its compute runs
};
inline thread_local std::vector<Computing> computing_keys;

inline bool is_computing(const CacheIdentity& cache, ByteView key) noexcept {
  return std::any_of(computing_keys.begin(), computing_keys.end(), [&](const Computing& c) {
    return c.cache == cache && c.key.as_string_view() == key.as_string_view();
  });
}

/// Marks `key` as being computed by this thread for as long as it lives.
class ComputingMark {
 public:
  ComputingMark(const CacheIdentity& cache, ByteView key) {
    computing_keys.push_back(Computing{cache, key});
  }
  ComputingMark(const ComputingMark&) = delete;
  ComputingMark& operator=(const ComputingMark&) = delete;
  ~ComputingMark() { computing_keys.pop_back(); }
};

struct LeaseDeleter {
  void operator()(backlite_lease* l) const noexcept { backlite_lease_abandon(l); }
};

}  // namespace detail

/// The right to compute one key, from Storage::try_acquire: RAII over
/// `backlite_lease *`, movable, not copyable. Release it with fulfill() (store the
/// value) or abandon(); a Lease destroyed still held is abandoned, so another caller
/// may take the key. It stays valid whatever happens to its Storage meanwhile. An empty
/// Lease (moved from, fulfilled or abandoned) throws Error(Code::null_parameter) from
/// extend() and fulfill().
class Lease {
 public:
  /// An empty lease.
  Lease() noexcept = default;
  /// Takes ownership of a `backlite_lease *` (NULL gives an empty lease).
  explicit Lease(backlite_lease* raw) noexcept : l_(raw) {}

  Lease(Lease&&) noexcept = default;
  Lease& operator=(Lease&&) noexcept = default;  // abandons the lease held before
  Lease(const Lease&) = delete;
  Lease& operator=(const Lease&) = delete;
  ~Lease() = default;

  /// True while the lease is held (not yet fulfilled, abandoned or moved from).
  explicit operator bool() const noexcept { return l_ != nullptr; }
  /// The C handle, still owned by this Lease.
  backlite_lease* c_lease() const noexcept { return l_.get(); }

  /// Moves the deadline to `lease` (> 0) from now. Throws Error(Code::lease_lost) when
  /// another owner took the key over (the lease is then useless: abandon it).
  template <class Rep, class Period>
  void extend(std::chrono::duration<Rep, Period> lease) {
    detail::ErrorSlot err;
    err.check(backlite_lease_extend(l_.get(), detail::ceil_ms(lease, "lease"), err.out()),
              "extend");
  }

  /// Stores `value` under the lease's key (as Storage::set would) and releases the
  /// lease: afterwards this Lease is empty, whatever the outcome. Throws
  /// Error(Code::lease_lost) when another owner took the key over (nothing was stored),
  /// or Error(Code::too_large) for a value longer than max_size.
  void fulfill(ByteView value, Expiration expiration = Expiration::storage_default()) {
    detail::ErrorSlot err;
    err.check(backlite_lease_fulfill(l_.release(), value.u8(), value.size(), expiration.ms(),
                                     err.out()),
              "fulfill");
  }

  /// Releases the lease without storing anything (another caller may then take the
  /// key). Does nothing on an empty Lease.
  void abandon() noexcept { l_.reset(); }

 private:
  std::unique_ptr<backlite_lease, detail::LeaseDeleter> l_{};
};

/// What Storage::try_acquire or Storage::lease_step found: the value (a hit), a Lease
/// to compute it (a miss), or that another live owner holds the key's lease.
struct Acquisition {
  enum class Status {
    hit,       ///< `value` holds the stored value
    acquired,  ///< a miss: `lease` is ours; compute the value, then fulfill (or abandon) it
    held,      ///< another live owner is computing the key: nothing to do; try again later
  };

  Status status = Status::held;
  std::vector<std::byte> value{};  ///< the value, on a hit
  Lease lease{};                   ///< the lease, when acquired
  std::chrono::milliseconds time_left{0};  ///< when held: the holder's lease time left
  /// When held: how long to wait before asking again (the library's back-off, 1 ms
  /// doubling to 50 ms with each lease_step attempt, never past the holder's deadline).
  std::chrono::milliseconds retry_in{0};

  bool hit() const noexcept { return status == Status::hit; }
  bool acquired() const noexcept { return status == Status::acquired; }
  bool held() const noexcept { return status == Status::held; }
};

/// Counts since the file was created or last zeroed, by every handle of every process.
struct LifetimeStats {
  std::uint64_t hits = 0;
  std::uint64_t misses = 0;
  std::uint64_t evictions = 0;
  std::uint64_t expirations = 0;
  std::int64_t since_ms = 0;  ///< when counting began, in ms since the Unix epoch
};
static_assert(detail::field_count<backlite_lifetime_stats>() == 5,
              "backlite_lifetime_stats changed: copy every field in lifetime_stats()");

/// This handle's remote tier activity (all zero without a remote).
struct RemoteStats {
  std::uint64_t hits = 0;     ///< local misses the remote answered
  std::uint64_t misses = 0;   ///< local misses it did not
  std::uint64_t writes = 0;   ///< writes it acknowledged
  std::uint64_t errors = 0;   ///< failed round trips (refused, timed out, garbage)
  std::uint64_t skipped = 0;  ///< calls not sent while it was backed off
  bool connected = false;     ///< the last round trip succeeded
};

namespace detail {

/// The barriers this thread holds around the computes of the cached() calls it runs,
/// innermost last.
inline thread_local std::vector<const void*> held_barriers;

/// Lockables that a thread holding them must not lock again: the standard leaves it
/// undefined (glibc waits for ever). A recursive mutex, or a lock of the caller's own
/// (say over a file), may be taken again.
template <class L>
inline constexpr bool relocking_is_undefined_v =
    std::is_same_v<L, std::mutex> || std::is_same_v<L, std::timed_mutex> ||
    std::is_same_v<L, std::shared_mutex> || std::is_same_v<L, std::shared_timed_mutex>;

template <class T, class = void>
struct is_basic_lockable : std::false_type {};
template <class T>
struct is_basic_lockable<T, std::void_t<decltype(std::declval<T&>().lock()),
                                        decltype(std::declval<T&>().unlock())>>
    : std::true_type {};

// What cached() returns for a compute result of type R: R itself when it can be built
// from bytes (std::string, std::vector<std::byte>, std::vector<uint8_t>, ...).
template <class R>
R from_bytes(const std::uint8_t* data, std::size_t len) {
  using V = typename R::value_type;
  static_assert(sizeof(V) == 1 && std::is_trivially_copyable_v<V>,
                "cached(): the compute lambda must return a container of 1-byte elements "
                "such as std::string or std::vector<std::byte>");
  const V* first = reinterpret_cast<const V*>(data);
  return R(first, first + len);
}

// What a keys() or get_chunks() visitor may return: void (go on) or bool (false stops).
// Nothing else: an int converted to bool took C's "0 = go on" for "false = stop" and
// ended the walk at its first key, so an int (or a pointer, an enum...) does not compile.
template <class R>
inline constexpr bool is_visitor_result_v =
    std::is_void_v<R> || std::is_same_v<std::remove_cv_t<std::remove_reference_t<R>>, bool>;

// The result of calling a keys() visitor as keys() calls it: with a ByteView when it
// takes one, else with a std::string_view (void when it takes neither: keys_trampoline
// says so).
template <class Visit, class = void>
struct key_visitor_result {
  using type = void;
};
template <class Visit>
struct key_visitor_result<Visit, std::enable_if_t<std::is_invocable_v<Visit&, ByteView>>> {
  using type = std::invoke_result_t<Visit&, ByteView>;
};
template <class Visit>
struct key_visitor_result<Visit, std::enable_if_t<!std::is_invocable_v<Visit&, ByteView> &&
                                                  std::is_invocable_v<Visit&, std::string_view>>> {
  using type = std::invoke_result_t<Visit&, std::string_view>;
};

inline Item to_item(const Item& item) { return item; }
template <class K, class V>
Item to_item(const std::pair<K, V>& kv) {
  return Item{ByteView(kv.first), ByteView(kv.second)};
}

}  // namespace detail

/// One value read in bounded memory, from Storage::open_reader: RAII over
/// `backlite_value_reader *`, movable, not copyable. Each read() copies the next bytes
/// of the value into the caller's buffer; 0 means the end, where the value's checksum
/// has matched. The value read is the one opened: a set, delete or clear of its key
/// meanwhile does not change it. A value found damaged at its end throws
/// Error(Code::not_found) instead: drop what was read (the entry has been removed, as
/// get() would remove it). For iostreams, wrap it in a ValueStream.
///
/// Until its end, a failure or its destruction, a ValueReader holds the library's
/// reader (an open value file, or a read snapshot of the database for a large value
/// kept there); it is freed as soon as the end or a failure is reached. One thread at
/// a time. An empty ValueReader (moved from) throws Error(Code::null_parameter) from
/// read().
class ValueReader {
 public:
  /// An empty reader.
  ValueReader() noexcept = default;
  /// Takes ownership of a `backlite_value_reader *` (NULL gives an empty reader);
  /// `expires_in_ms` as backlite_storage_open_reader gave it.
  explicit ValueReader(backlite_value_reader* raw,
                       std::int64_t expires_in_ms = BACKLITE_EXPIRATION_NEVER) noexcept
      : r_(raw), size_(backlite_value_reader_size(raw)), state_(raw ? State::open : State::empty) {
    if (expires_in_ms != BACKLITE_EXPIRATION_NEVER) {
      expires_in_ = std::chrono::milliseconds(expires_in_ms);
    }
  }

  // A moved-from reader is an empty one in every respect: size() 0, no expires_in().
  ValueReader(ValueReader&& other) noexcept
      : r_(std::move(other.r_)),
        size_(std::exchange(other.size_, 0)),
        expires_in_(std::exchange(other.expires_in_, std::nullopt)),
        state_(std::exchange(other.state_, State::empty)),
        failure_(std::exchange(other.failure_, Code::ok)) {}
  ValueReader& operator=(ValueReader&& other) noexcept {
    r_ = std::move(other.r_);
    size_ = std::exchange(other.size_, 0);
    expires_in_ = std::exchange(other.expires_in_, std::nullopt);
    state_ = std::exchange(other.state_, State::empty);
    failure_ = std::exchange(other.failure_, Code::ok);
    return *this;
  }
  ValueReader(const ValueReader&) = delete;
  ValueReader& operator=(const ValueReader&) = delete;
  ~ValueReader() = default;

  /// Copies the next bytes of the value into `[data, data + capacity)` and returns how
  /// many: 0 only at the end of the value (or for a capacity of 0). Throws
  /// Error(Code::not_found) when the value proved damaged (again on every later
  /// call), another Error when the read failed; a NULL `data` with a nonzero capacity
  /// throws Error(Code::null_parameter) and leaves the reader as it was.
  std::size_t read(void* data, std::size_t capacity) {
    switch (state_) {
      case State::open:
        break;
      case State::ended:
        return 0;
      case State::damaged:
        throw Error(Code::not_found, damaged_message());
      case State::failed:
        throw Error(failure_, "read: an earlier read of this value failed");
      case State::empty:
        throw Error(Code::null_parameter, "read: an empty ValueReader");
    }
    if (capacity == 0) return 0;
    // The caller's mistake, refused before any read: the reader stays as it was (the
    // library refuses it the same way, but every failed read ends the reader).
    if (data == nullptr) {
      throw Error(Code::null_parameter, "read: a NULL buffer of nonzero capacity");
    }
    std::size_t n = 0;
    detail::ErrorSlot err;
    const backlite_result rc = backlite_value_reader_read(
        r_.get(), static_cast<std::uint8_t*>(data), capacity, &n, err.out());
    if (rc == BACKLITE_RESULT_OK) {
      if (n == 0) finish(State::ended);
      return n;
    }
    if (rc == BACKLITE_RESULT_NOT_FOUND) {
      finish(State::damaged);
      throw Error(Code::not_found, damaged_message());
    }
    finish(State::failed);
    failure_ = static_cast<Code>(rc);
    err.raise(rc, "read");
  }

  /// Reads into a contiguous container of 1-byte elements (std::vector<std::byte>,
  /// std::string, std::array<char, N>, ...), as many bytes as its size; returns how many.
  template <class Buffer,
            std::enable_if_t<detail::is_byte_container<Buffer>::value &&
                                 !std::is_const_v<std::remove_pointer_t<decltype(std::data(
                                     std::declval<Buffer&>()))>>,
                             int> = 0>
  std::size_t read(Buffer& buffer) {
    return read(static_cast<void*>(std::data(buffer)), std::size(buffer));
  }

  /// The value's length in bytes (0 for an empty reader).
  std::uint64_t size() const noexcept { return size_; }
  /// The time the entry had left when the reader was opened (nullopt: it never expires).
  std::optional<std::chrono::milliseconds> expires_in() const noexcept { return expires_in_; }
  /// True once read() returned 0: the whole value was read and its checksum matched.
  bool at_end() const noexcept { return state_ == State::ended; }
  /// False for an empty (moved from) reader.
  explicit operator bool() const noexcept { return state_ != State::empty; }
  /// The C reader, still owned by this ValueReader (NULL once the end or a failure
  /// freed it).
  backlite_value_reader* c_reader() const noexcept { return r_.get(); }

 private:
  struct Deleter {
    void operator()(backlite_value_reader* r) const noexcept { backlite_value_reader_free(r); }
  };
  enum class State { empty, open, ended, damaged, failed };

  static const char* damaged_message() noexcept {
    return "read: the value proved damaged (drop what was read; the entry is removed)";
  }
  void finish(State s) noexcept {
    r_.reset();
    state_ = s;
  }

  std::unique_ptr<backlite_value_reader, Deleter> r_;
  std::uint64_t size_ = 0;
  std::optional<std::chrono::milliseconds> expires_in_{};
  State state_ = State::empty;
  Code failure_ = Code::ok;
};

/// A std::streambuf over a ValueReader, with a buffer of its own of `buffer_size`
/// bytes (the only memory it adds): `out << stream.rdbuf()`,
/// `std::istreambuf_iterator<char>`, `std::istream::read`... A damaged value throws
/// Error(Code::not_found) out of underflow(): std::istreambuf_iterator passes it on,
/// an istream sets badbit (and rethrows it if badbit is in its exceptions()), and
/// `out << buf` sets failbit on `out`.
class ValueStreambuf : public std::streambuf {
 public:
  static constexpr std::size_t default_buffer_size = 64 * 1024;

  explicit ValueStreambuf(ValueReader reader, std::size_t buffer_size = default_buffer_size)
      : reader_(std::move(reader)),
        size_(buffer_size == 0 ? 1
                               : std::min(buffer_size, static_cast<std::size_t>(
                                                    std::numeric_limits<int>::max()))),
        buf_(new char[size_]) {
    setg(buf_.get(), buf_.get(), buf_.get());
  }
  ValueStreambuf(const ValueStreambuf&) = delete;
  ValueStreambuf& operator=(const ValueStreambuf&) = delete;

  ValueReader& reader() noexcept { return reader_; }
  const ValueReader& reader() const noexcept { return reader_; }

 protected:
  int_type underflow() override {
    if (gptr() < egptr()) return traits_type::to_int_type(*gptr());
    const std::size_t n = reader_.read(buf_.get(), size_);
    if (n == 0) return traits_type::eof();
    setg(buf_.get(), buf_.get(), buf_.get() + n);
    return traits_type::to_int_type(*gptr());
  }

  // Reads as large as the buffer or larger go straight into the caller's memory.
  std::streamsize xsgetn(char* s, std::streamsize count) override {
    std::streamsize done = 0;
    while (done < count) {
      const std::streamsize buffered = egptr() - gptr();
      if (buffered > 0) {
        const std::streamsize take = std::min(buffered, count - done);
        std::memcpy(s + done, gptr(), static_cast<std::size_t>(take));
        gbump(static_cast<int>(take));
        done += take;
        continue;
      }
      const auto want = static_cast<std::size_t>(count - done);
      if (want >= size_) {
        const std::size_t n = reader_.read(s + done, want);
        if (n == 0) break;
        done += static_cast<std::streamsize>(n);
      } else if (traits_type::eq_int_type(underflow(), traits_type::eof())) {
        break;
      }
    }
    return done;
  }

  std::streamsize showmanyc() override { return reader_.at_end() ? -1 : 0; }

 private:
  ValueReader reader_;
  std::size_t size_;
  std::unique_ptr<char[]> buf_;
};

/// A std::istream of one value, owning its ValueReader and buffer:
///
///   if (auto r = cache.open_reader("big")) {
///     backlite::ValueStream in(std::move(*r));
///     std::ofstream("big.bin", std::ios::binary) << in.rdbuf();
///   }
///
/// Its exceptions() include badbit, so a damaged value throws Error(Code::not_found)
/// out of in.read(), in >> ..., std::getline...; after `out << in.rdbuf()` check
/// `out`: failbit means the value was not read whole (or was empty). Not movable.
class ValueStream : public std::istream {
 public:
  explicit ValueStream(ValueReader reader,
                       std::size_t buffer_size = ValueStreambuf::default_buffer_size)
      : std::istream(nullptr), buf_(std::move(reader), buffer_size) {
    rdbuf(&buf_);
    exceptions(std::ios::badbit);
  }

  /// The value's length in bytes.
  std::uint64_t size() const noexcept { return buf_.reader().size(); }
  /// The time the entry had left when it was opened (nullopt: it never expires).
  std::optional<std::chrono::milliseconds> expires_in() const noexcept {
    return buf_.reader().expires_in();
  }

 private:
  ValueStreambuf buf_;
};

/// A cache handle: RAII over `backlite_storage *`, movable, not copyable. One Storage
/// may be used by any number of threads at once. A moved-from Storage holds nothing:
/// every call on it throws Error(Code::null_parameter). The look-ups (get, contains,
/// keys, get_chunks, open_reader, the stats) are const: they change no entry, so a
/// `const Storage&` reads the cache (a hit still counts as an access for eviction,
/// as in any cache), and like every call they are safe from several threads at once.
class Storage {
 public:
  /// Opens (or creates) the cache file at `path` (UTF-8; ":memory:" for a private
  /// in-memory cache). Throws Error: Code::not_a_cache, Code::io, Code::incompatible...
  /// (Code::null_parameter for Options moved from).
  explicit Storage(std::string_view path, const Options& options = Options()) {
    if (path.find('\0') != std::string_view::npos) {
      throw Error(Code::invalid_argument, "open: the path contains a NUL byte");
    }
    // The library takes NULL options for its defaults; Options moved from are not those.
    if (!options.c_options()) {
      throw Error(Code::null_parameter, "open: the Options were moved from");
    }
    const std::string z(path);
    backlite_storage* raw = nullptr;
    detail::ErrorSlot err;
    err.check(backlite_storage_open(z.c_str(), options.c_options(), &raw, err.out()), "open");
    s_.reset(raw);
    cache_ = detail::CacheIdentity::of(z, raw);
  }
  /// The same, from a std::filesystem::path (its bytes, as std::fstream opens it).
  template <class Path, std::enable_if_t<std::is_same_v<Path, std::filesystem::path>, int> = 0>
  explicit Storage(const Path& path, const Options& options = Options())
      : Storage(std::string_view(path.native()), options) {}

  Storage(Storage&&) noexcept = default;
  Storage& operator=(Storage&&) noexcept = default;
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  ~Storage() = default;

  /// Closes the handle now (the destructor does it otherwise). Must not race with other
  /// calls on this Storage. It writes the handle's buffered hits: behind another
  /// process's write lock it waits at most the busy timeout, then closes without them.
  void close() noexcept { s_.reset(); }
  /// False once moved from or closed.
  explicit operator bool() const noexcept { return s_ != nullptr; }
  /// The C handle, for calls this wrapper does not cover.
  backlite_storage* c_storage() const noexcept { return s_.get(); }

  /// The value under `key`, or nullopt when there is no live entry.
  std::optional<std::vector<std::byte>> get(ByteView key) const {
    detail::BufGuard out;
    if (!lookup(key, out.buf, nullptr)) return std::nullopt;
    return detail::from_bytes<std::vector<std::byte>>(out.buf.data, out.buf.len);
  }

  /// The value under `key` as a std::string (bytes as they are), or nullopt.
  std::optional<std::string> get_string(ByteView key) const {
    detail::BufGuard out;
    if (!lookup(key, out.buf, nullptr)) return std::nullopt;
    return detail::from_bytes<std::string>(out.buf.data, out.buf.len);
  }

  /// The value and the time it has left, or nullopt.
  std::optional<Entry> get_entry(ByteView key) const {
    detail::BufGuard out;
    std::int64_t left = 0;
    if (!lookup(key, out.buf, &left)) return std::nullopt;
    Entry e;
    e.value = detail::from_bytes<std::vector<std::byte>>(out.buf.data, out.buf.len);
    if (left != BACKLITE_EXPIRATION_NEVER) e.expires_in = std::chrono::milliseconds(left);
    return e;
  }

  /// Stores `value` under `key`. Throws Error(Code::too_large) for a value longer than
  /// max_size (the older value under `key` is then removed).
  void set(ByteView key, ByteView value, Expiration expiration = Expiration::storage_default()) {
    detail::ErrorSlot err;
    err.check(backlite_storage_set(s_.get(), key.u8(), key.size(), value.u8(), value.size(),
                                   expiration.ms(), err.out()),
              "set");
  }

  /// Stores every item in one transaction, all or nothing. Takes Items, or any range
  /// of Items or of pairs (a std::map<std::string, std::string>, say).
  void set_many(std::initializer_list<Item> items) { set_many_impl(items.begin(), items.end()); }
  template <class Range>
  void set_many(const Range& items) {
    set_many_impl(std::begin(items), std::end(items));
  }

  /// Removes the entry under `key`; false if there was no live entry.
  bool erase(ByteView key) {
    detail::ErrorSlot err;
    return err.check(backlite_storage_delete(s_.get(), key.u8(), key.size(), err.out()), "erase",
                     BACKLITE_RESULT_NOT_FOUND) == BACKLITE_RESULT_OK;
  }
  /// The same as erase().
  bool remove(ByteView key) { return erase(key); }

  /// Whether `key` has a live entry. Not an access: no counter or order changes.
  bool contains(ByteView key) const {
    detail::ErrorSlot err;
    return err.check(backlite_storage_contains(s_.get(), key.u8(), key.size(), err.out()),
                     "contains", BACKLITE_RESULT_NOT_FOUND) == BACKLITE_RESULT_OK;
  }

  /// Calls `visit(ByteView key)` (or `visit(std::string_view key)`) with every live
  /// key. The visitor returns void, or bool: the walk stops at the first false (any
  /// other return type, an int say, does not compile: C's 0 means "go on"). The visitor
  /// may use this Storage; an exception it throws stops the walk and is rethrown here.
  template <class Visit>
  void keys(Visit&& visit) const {
    static_assert(detail::is_visitor_result_v<typename detail::key_visitor_result<
                      std::remove_reference_t<Visit>>::type>,
                  "keys(): the visitor must return void or bool (false stops the walk), "
                  "not an int: C's 0 means go on, which a bool would read as stop");
    KeysContext<std::remove_reference_t<Visit>> ctx{&visit, nullptr};
    detail::ErrorSlot err;
    const backlite_result rc =
        backlite_storage_keys(s_.get(), &keys_trampoline<std::remove_reference_t<Visit>>, &ctx,
                              err.out());
    if (ctx.error) std::rethrow_exception(ctx.error);
    err.check(rc, "keys");
  }

  /// Hands the value under `key` to `visit(ByteView chunk)` in chunks of at most
  /// 256 KiB, so that a value of any size is read in bounded memory. True when every
  /// chunk was handed over and the value's checksum matched; false on a miss, or when
  /// the value proved damaged after some chunks (drop them: the entry is removed). The
  /// visitor returns void, or bool: the first false stops the read, which throws Error
  /// (CALLBACK_FAILED): the value was not read whole (any other return type, an int
  /// say, does not compile). An exception the visitor throws stops the read and is
  /// rethrown here. The visitor may use this Storage.
  template <class Visit>
  bool get_chunks(ByteView key, Visit&& visit) const {
    static_assert(std::is_invocable_v<std::remove_reference_t<Visit>&, ByteView>,
                  "get_chunks(): the visitor must take a backlite::ByteView");
    static_assert(detail::is_visitor_result_v<
                      std::invoke_result_t<std::remove_reference_t<Visit>&, ByteView>>,
                  "get_chunks(): the visitor must return void or bool (false stops the "
                  "read), not an int: C's 0 means go on, which a bool would read as stop");
    KeysContext<std::remove_reference_t<Visit>> ctx{&visit, nullptr};
    detail::ErrorSlot err;
    const backlite_result rc = backlite_storage_get_chunks(
        s_.get(), key.u8(), key.size(), &chunk_trampoline<std::remove_reference_t<Visit>>, &ctx,
        nullptr, err.out());
    if (ctx.error) std::rethrow_exception(ctx.error);
    return err.check(rc, "get_chunks", BACKLITE_RESULT_NOT_FOUND) == BACKLITE_RESULT_OK;
  }

  /// A ValueReader of the value under `key`, to read it in bounded memory at the
  /// caller's pace; nullopt on a miss. The open is the look-up (a hit counts as an
  /// access, as for get()); the bytes come with read(). The reader does not need this
  /// Storage to stay open.
  std::optional<ValueReader> open_reader(ByteView key) const {
    backlite_value_reader* raw = nullptr;
    std::int64_t left = 0;
    detail::ErrorSlot err;
    if (err.check(backlite_storage_open_reader(s_.get(), key.u8(), key.size(), &raw, nullptr,
                                               &left, err.out()),
                  "open_reader", BACKLITE_RESULT_NOT_FOUND) != BACKLITE_RESULT_OK) {
      return std::nullopt;
    }
    return ValueReader(raw, left);
  }

  /// Removes every entry.
  void clear() {
    detail::ErrorSlot err;
    err.check(backlite_storage_clear(s_.get(), err.out()), "clear");
  }

  Stats stats() const {
    backlite_stats raw{};
    detail::ErrorSlot err;
    err.check(backlite_storage_stats(s_.get(), &raw, err.out()), "stats");
    return Stats{raw.count, raw.total_size, raw.max_size, raw.hits,
                 raw.misses, raw.evictions, raw.expirations};
  }

  /// Verifies the whole file: SQLite's integrity check, every value's checksum, and the
  /// counters against a recount. With `repair`, also removes damaged entries and orphan
  /// values and rewrites the counters. It reads every entry: for maintenance, not the
  /// hot path. What it found is in the report; it throws only when the check cannot run.
  CheckReport check(bool repair = false) {
    backlite_check_report raw{};
    detail::ErrorSlot err;
    err.check(backlite_storage_check(s_.get(), repair ? 1 : 0, &raw, err.out()), "check");
    return CheckReport{raw.healthy != 0,   raw.integrity_ok != 0,   raw.repaired != 0,
                       raw.entries,        raw.damaged,             raw.orphan_values,
                       raw.recorded_count, raw.recorded_total_size, raw.actual_count,
                       raw.actual_total_size};
  }

  /// Rebuilds the file so that the space of deleted entries goes back to the file system.
  /// Throws Error(Code::busy) when other connections' readers kept the write-ahead log
  /// from being truncated (the rebuild itself is done).
  void vacuum() {
    detail::ErrorSlot err;
    err.check(backlite_storage_vacuum(s_.get(), err.out()), "vacuum");
  }

  /// Looks `key` up without ever waiting for another owner (for event loops and async
  /// code, which wait their own way): a hit gives the value; a miss gives a Lease held
  /// for `lease` (> 0), to compute the value and fulfill() it; a key whose lease another
  /// live owner holds gives Acquisition::Status::held. A holder that dies is taken over
  /// once its deadline passes (at once on the same host and in the same PID namespace).
  template <class Rep, class Period>
  Acquisition try_acquire(ByteView key, std::chrono::duration<Rep, Period> lease) {
    detail::BufGuard out;
    backlite_lease* raw = nullptr;
    detail::ErrorSlot err;
    const backlite_result rc =
        backlite_lease_try_acquire(s_.get(), key.u8(), key.size(),
                                   detail::ceil_ms(lease, "lease"), &out.buf, &raw,
                                   err.out());
    return acquisition(rc, out, raw, err, "try_acquire");
  }

  /// One step of waiting for `key` without blocking, for event loops and coroutines: the
  /// non-blocking form of cached_exclusive, with its timing and lease renewal. `attempt`
  /// is 0 for the first step of a wait, then the number of steps taken before (only the
  /// first counts a miss in stats(); the pauses grow with it). The Acquisition is:
  /// - hit: the stored value;
  /// - acquired: the key's Lease, which the library renews (every third of
  ///   Options::lease_length) until it is fulfilled or abandoned: compute the value for
  ///   as long as it takes, then fulfill() it (a Lease destroyed unfulfilled abandons
  ///   it, so an exception in the compute lets a waiter take over);
  /// - held: another live owner computes it; wait `retry_in` without blocking your loop,
  ///   then step again with `attempt + 1`, until a hit, the lease, or your own deadline.
  Acquisition lease_step(ByteView key, std::uint32_t attempt) {
    detail::BufGuard out;
    backlite_lease* raw = nullptr;
    detail::ErrorSlot err;
    const backlite_result rc =
        backlite_lease_step(s_.get(), key.u8(), key.size(), attempt, &out.buf, &raw, err.out());
    return acquisition(rc, out, raw, err, "lease_step");
  }

  /// The file's lifetime counters (other processes' hits count once they write).
  LifetimeStats lifetime_stats() const {
    backlite_lifetime_stats raw{};
    detail::ErrorSlot err;
    err.check(backlite_storage_lifetime_stats(s_.get(), &raw, err.out()), "lifetime_stats");
    return LifetimeStats{raw.hits, raw.misses, raw.evictions, raw.expirations, raw.since_ms};
  }

  /// Sets the file's lifetime counters to zero; counting starts again now.
  void zero_stats() {
    detail::ErrorSlot err;
    err.check(backlite_storage_zero_stats(s_.get(), err.out()), "zero_stats");
  }

  /// This handle's remote tier activity (all zero without a remote).
  RemoteStats remote_stats() const {
    backlite_remote_stats raw{};
    detail::ErrorSlot err;
    err.check(backlite_storage_remote_stats(s_.get(), &raw, err.out()), "remote_stats");
    return RemoteStats{raw.hits, raw.misses, raw.writes, raw.errors, raw.skipped, raw.connected != 0};
  }

  /// The value under `key`; on a miss, `compute()` makes it and it is stored with
  /// `expiration`. `compute` returns std::string, std::vector<std::byte> or another
  /// container of bytes, and cached() returns the same type. An exception thrown by
  /// `compute` stores nothing and is rethrown here.
  template <class Compute, std::enable_if_t<std::is_invocable_v<Compute&>, int> = 0>
  auto cached(ByteView key, Compute&& compute,
              Expiration expiration = Expiration::storage_default())
      -> std::decay_t<std::invoke_result_t<Compute&>> {
    return cached_impl<std::remove_reference_t<Compute>, NoLock>(key, compute, nullptr,
                                                                 expiration);
  }

  /// As cached(key, compute), with `barrier` (any BasicLockable: std::mutex, a
  /// file lock, ...) held around the second look-up and the compute, so that threads
  /// missing the same key at once compute it once. A compute may call cached() with
  /// another barrier, or with a recursive one; a call that would lock a std::mutex,
  /// std::timed_mutex or std::shared_mutex its own thread holds around an outer compute
  /// (one barrier for every key, a compute using another cached value) throws
  /// Error(Code::callback_failed) without computing, where locking it again would wait
  /// for ever.
  template <class Lockable, class Compute,
            std::enable_if_t<detail::is_basic_lockable<Lockable>::value &&
                                 std::is_invocable_v<Compute&>,
                             int> = 0>
  auto cached(ByteView key, Lockable& barrier, Compute&& compute,
              Expiration expiration = Expiration::storage_default())
      -> std::decay_t<std::invoke_result_t<Compute&>> {
    return cached_impl<std::remove_reference_t<Compute>, Lockable>(key, compute, &barrier,
                                                                   expiration);
  }

  /// As cached(key, compute), but at most one caller computes a given key at a time,
  /// across all threads and processes sharing the file; the others wait for its result
  /// for up to `wait_timeout`, then throw Error(Code::lease_held), whose
  /// lease_time_left() is the holder's. The library renews the computing caller's lease
  /// while the compute runs, so a compute of any length is computed once. When the
  /// compute throws, nothing is stored, the exception is rethrown here, and one waiter
  /// takes over. `wait_timeout` is any std::chrono duration (rounded up to whole
  /// milliseconds; a huge one, such as std::chrono::seconds::max(), waits as long as it
  /// takes). A call of the key being computed from inside its own compute on the same
  /// thread, through any Storage of the same cache (a recursion with the same
  /// arguments), runs its compute at once and stores nothing: waiting for the lease, its
  /// own caller's, would wait for itself.
  template <class Compute, class Rep, class Period,
            std::enable_if_t<std::is_invocable_v<Compute&>, int> = 0>
  auto cached_exclusive(ByteView key, Compute&& compute,
                        std::chrono::duration<Rep, Period> wait_timeout,
                        Expiration expiration = Expiration::storage_default())
      -> std::decay_t<std::invoke_result_t<Compute&>> {
    using R = std::decay_t<std::invoke_result_t<Compute&>>;
    static_assert(detail::is_byte_container<R>::value && !std::is_same_v<R, std::string_view>,
                  "cached_exclusive(): the compute lambda must return std::string, "
                  "std::vector<std::byte> or another container of 1-byte elements");
    if (wait_timeout < wait_timeout.zero()) {
      throw Error(Code::invalid_argument, "cached_exclusive: a negative wait_timeout");
    }
    const std::int64_t wait_ms = detail::ceil_ms(wait_timeout, "wait_timeout");
    // Inside the compute of this very key on this thread: its lease is our caller's.
    if (s_ && detail::is_computing(cache_, key)) return compute();
    auto marked = [&]() -> decltype(auto) {
      const detail::ComputingMark mark(cache_, key);
      return compute();
    };
    using M = decltype(marked);
    CachedContext<M, NoLock> ctx{&marked, nullptr, nullptr};
    detail::BufGuard out;
    detail::ErrorSlot err;
    const backlite_result rc = backlite_cached_call_exclusive(
        s_.get(), key.u8(), key.size(), &compute_trampoline<M, NoLock>, &ctx, expiration.ms(),
        wait_ms, &out.buf, err.out());
    if (ctx.error) std::rethrow_exception(ctx.error);
    err.check(rc, "cached_exclusive");
    return detail::from_bytes<R>(out.buf.data, out.buf.len);
  }

 private:
  struct Deleter {
    void operator()(backlite_storage* s) const noexcept { backlite_storage_free(s); }
  };
  struct NoLock {
    void lock() {}
    void unlock() {}
  };

  /// The Acquisition a backlite_lease_try_acquire or backlite_lease_step gave (which
  /// throws for any result but a hit, a lease or a held key).
  static Acquisition acquisition(backlite_result rc, const detail::BufGuard& out,
                                 backlite_lease* raw, detail::ErrorSlot& err, const char* what) {
    Acquisition a;
    switch (rc) {
      case BACKLITE_RESULT_OK:
        a.status = Acquisition::Status::hit;
        a.value = detail::from_bytes<std::vector<std::byte>>(out.buf.data, out.buf.len);
        break;
      case BACKLITE_RESULT_NOT_FOUND:
        a.status = Acquisition::Status::acquired;
        a.lease = Lease(raw);
        break;
      case BACKLITE_RESULT_LEASE_HELD:  // another live owner holds the lease
        a.status = Acquisition::Status::held;
        a.time_left = err.lease_time_left();
        a.retry_in = err.retry_in();
        break;
      default:
        err.raise(rc, what);
    }
    return a;
  }

  bool lookup(ByteView key, backlite_buf& out, std::int64_t* left) const {
    detail::ErrorSlot err;
    return err.check(backlite_storage_get(s_.get(), key.u8(), key.size(), &out, left, err.out()),
                     "get", BACKLITE_RESULT_NOT_FOUND) == BACKLITE_RESULT_OK;
  }

  template <class It>
  void set_many_impl(It first, It last) {
    if constexpr (!std::is_reference_v<decltype(*first)>) {
      // An iterator that makes each element when dereferenced (std::views::transform, a
      // generator): the Items would view temporaries gone at the end of each statement,
      // so the elements are kept here until the call has copied their bytes.
      std::vector<std::decay_t<decltype(*first)>> owned;
      for (; first != last; ++first) owned.push_back(*first);
      set_many_impl(owned.cbegin(), owned.cend());
      return;
    }
    std::vector<Item> items;  // keeps converted views alive for the call
    std::vector<backlite_entry> entries;
    for (; first != last; ++first) items.push_back(detail::to_item(*first));
    entries.reserve(items.size());
    for (const Item& it : items) {
      entries.push_back(backlite_entry{it.key.u8(), it.key.size(), it.value.u8(), it.value.size(),
                                       it.expiration.ms()});
    }
    detail::ErrorSlot err;
    err.check(backlite_storage_set_many(s_.get(), entries.data(), entries.size(), err.out()),
              "set_many");
  }

  template <class Visit>
  struct KeysContext {
    Visit* visit;
    std::exception_ptr error;
  };

  template <class Visit>
  static std::int32_t keys_trampoline(void* user_data, const std::uint8_t* key,
                                      std::size_t key_len) noexcept {
    auto* ctx = static_cast<KeysContext<Visit>*>(user_data);
    try {
      const ByteView k(key, key_len);
      if constexpr (std::is_invocable_v<Visit&, ByteView>) {
        using R = std::invoke_result_t<Visit&, ByteView>;
        if constexpr (!std::is_void_v<R>) {
          return (*ctx->visit)(k) ? 0 : 1;
        } else {
          (*ctx->visit)(k);
          return 0;
        }
      } else {
        static_assert(std::is_invocable_v<Visit&, std::string_view>,
                      "keys(): the visitor must take a backlite::ByteView or a std::string_view");
        using R = std::invoke_result_t<Visit&, std::string_view>;
        if constexpr (!std::is_void_v<R>) {
          return (*ctx->visit)(k.as_string_view()) ? 0 : 1;
        } else {
          (*ctx->visit)(k.as_string_view());
          return 0;
        }
      }
    } catch (...) {
      ctx->error = std::current_exception();
      return 1;
    }
  }

  template <class Visit>
  static std::int32_t chunk_trampoline(void* user_data, const std::uint8_t* chunk,
                                       std::size_t len) noexcept {
    auto* ctx = static_cast<KeysContext<Visit>*>(user_data);
    try {
      const ByteView c(chunk, len);
      if constexpr (!std::is_void_v<std::invoke_result_t<Visit&, ByteView>>) {
        return (*ctx->visit)(c) ? 0 : 1;
      } else {
        (*ctx->visit)(c);
        return 0;
      }
    } catch (...) {
      ctx->error = std::current_exception();
      return 1;
    }
  }

  template <class Compute, class Lockable>
  struct CachedContext {
    Compute* compute;
    Lockable* lockable;
    std::exception_ptr error;
  };

  template <class Compute, class Lockable>
  static std::int32_t compute_trampoline(void* user_data, backlite_sink* sink) noexcept {
    auto* ctx = static_cast<CachedContext<Compute, Lockable>*>(user_data);
    try {
      const auto& value = (*ctx->compute)();
      const ByteView bytes(value);
      const backlite_result rc = backlite_sink_write(sink, bytes.u8(), bytes.size());
      if (rc != BACKLITE_RESULT_OK) {
        throw Error(static_cast<Code>(rc),
                    std::string("cached: writing the computed value: ") + backlite_result_str(rc));
      }
      return 0;
    } catch (...) {
      ctx->error = std::current_exception();
      return 1;
    }
  }

  template <class Compute, class Lockable>
  static std::int32_t lock_trampoline(void* user_data) noexcept {
    auto* ctx = static_cast<CachedContext<Compute, Lockable>*>(user_data);
    try {
      std::vector<const void*>& held = detail::held_barriers;
      if constexpr (detail::relocking_is_undefined_v<Lockable>) {
        if (std::find(held.begin(), held.end(), ctx->lockable) != held.end()) {
          throw Error(Code::callback_failed,
                      "cached: the barrier is held by a cached() whose compute this call runs "
                      "inside; locking it again would wait for ever (use a barrier per key, "
                      "a std::recursive_mutex, or cached_exclusive)");
        }
      }
      held.push_back(ctx->lockable);  // before the lock: a bad_alloc leaves nothing locked
      try {
        ctx->lockable->lock();
      } catch (...) {
        held.pop_back();
        throw;
      }
      return 0;
    } catch (...) {
      ctx->error = std::current_exception();
      return 1;
    }
  }

  template <class Compute, class Lockable>
  static void unlock_trampoline(void* user_data) noexcept {
    auto* ctx = static_cast<CachedContext<Compute, Lockable>*>(user_data);
    std::vector<const void*>& held = detail::held_barriers;
    const auto it = std::find(held.rbegin(), held.rend(), ctx->lockable);
    if (it != held.rend()) held.erase(std::next(it).base());
    try {
      ctx->lockable->unlock();
    } catch (...) {
      if (!ctx->error) ctx->error = std::current_exception();
    }
  }

  template <class Compute, class Lockable>
  auto cached_impl(ByteView key, Compute& compute, Lockable* lockable, Expiration expiration)
      -> std::decay_t<std::invoke_result_t<Compute&>> {
    using R = std::decay_t<std::invoke_result_t<Compute&>>;
    static_assert(detail::is_byte_container<R>::value && !std::is_same_v<R, std::string_view>,
                  "cached(): the compute lambda must return std::string, "
                  "std::vector<std::byte> or another container of 1-byte elements");
    CachedContext<Compute, Lockable> ctx{&compute, lockable, nullptr};
    backlite_barrier barrier{&ctx, &lock_trampoline<Compute, Lockable>,
                             &unlock_trampoline<Compute, Lockable>};
    detail::BufGuard out;
    detail::ErrorSlot err;
    const backlite_result rc = backlite_cached_call(
        s_.get(), key.u8(), key.size(), &compute_trampoline<Compute, Lockable>, &ctx,
        lockable ? &barrier : nullptr, expiration.ms(), &out.buf, err.out());
    if (ctx.error) std::rethrow_exception(ctx.error);
    err.check(rc, "cached");
    return detail::from_bytes<R>(out.buf.data, out.buf.len);
  }

  std::unique_ptr<backlite_storage, Deleter> s_{};
  detail::CacheIdentity cache_{};
};

// ------------------------------------------------------------------------------------
// Version
// ------------------------------------------------------------------------------------

/// The version of the library loaded at run time ("0.1.0").
inline std::string_view version() noexcept { return backlite_version(); }
/// The version of the header compiled against.
inline constexpr std::string_view header_version = BACKLITE_VERSION_STRING;

}  // namespace backlite

#endif  // BACKLITE_HPP
