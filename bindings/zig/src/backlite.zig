//! BackLite for Zig: a persistent cache in one SQLite file, over the C library
//! (`include/backlite.h`).
//!
//! - Results are a Zig error set (`Error`); a miss is not an error (`get` returns null,
//!   `delete` and `contains` return a bool).
//! - Values come back as slices copied into the allocator you pass; you own them.
//! - The message of the last failure is kept per handle (`Storage.lastError`), or in a
//!   `Diagnostics` you pass to `Storage.open`. The library itself has no thread-local
//!   error state.
//! - `cached` and `cachedExclusive` take a context (a value or pointer whose type has a
//!   `compute(self, writer: *std.Io.Writer) !void` method) or a plain function
//!   `fn (writer: *std.Io.Writer) !void`. An error returned by `compute` is returned
//!   unchanged by the call, after the C call has returned.

const std = @import("std");
const Allocator = std.mem.Allocator;

/// The C API, as translated by `@cImport`, for whatever this wrapper does not cover.
pub const c = @cImport(@cInclude("backlite.h"));

/// The failures of a BackLite call. `NotFound` is not among them: a miss is a normal
/// answer (null or false).
pub const Error = error{
    /// A required pointer was NULL (a bug in this wrapper if it ever shows).
    NullParameter,
    /// A bad enum value, path, duration or option value.
    InvalidArgument,
    /// The file cannot be opened, created, read or written.
    Io,
    /// The file exists but is not a BackLite cache; it was left untouched.
    NotACache,
    /// SQLite reports the database file damaged.
    Corrupt,
    /// A lock was not obtained within the busy timeout.
    Busy,
    /// The value is larger than the storage's max_size: not stored.
    TooLarge,
    /// A lock or visitor callback failed. (A failing `compute` gives its own error.)
    CallbackFailed,
    /// The file was written by a newer BackLite schema.
    Incompatible,
    /// An internal bug of the library, caught at its boundary.
    Panic,
    /// Any other SQLite or system error.
    Internal,
    /// A lease was taken over by another owner: nothing was stored.
    LeaseLost,
    /// Another live owner holds the key's lease (it is computing the value), still so
    /// at the end of `cachedExclusive`'s wait; `lastError().lease_time_left_ms` is its
    /// time left.
    LeaseHeld,
    /// A result code this wrapper does not know (a newer library).
    Unexpected,
};

/// The C result codes, for diagnostics.
pub const Code = enum(i32) {
    ok = c.BACKLITE_RESULT_OK,
    not_found = c.BACKLITE_RESULT_NOT_FOUND,
    null_parameter = c.BACKLITE_RESULT_NULL_PARAMETER,
    invalid_argument = c.BACKLITE_RESULT_INVALID_ARGUMENT,
    io = c.BACKLITE_RESULT_IO,
    not_a_cache = c.BACKLITE_RESULT_NOT_A_CACHE,
    corrupt = c.BACKLITE_RESULT_CORRUPT,
    busy = c.BACKLITE_RESULT_BUSY,
    too_large = c.BACKLITE_RESULT_TOO_LARGE,
    callback_failed = c.BACKLITE_RESULT_CALLBACK_FAILED,
    incompatible = c.BACKLITE_RESULT_INCOMPATIBLE,
    panic = c.BACKLITE_RESULT_PANIC,
    internal = c.BACKLITE_RESULT_INTERNAL,
    lease_lost = c.BACKLITE_RESULT_LEASE_LOST,
    lease_held = c.BACKLITE_RESULT_LEASE_HELD,
    _,

    /// The library's static description of the code.
    pub fn description(code: Code) []const u8 {
        return std.mem.span(c.backlite_result_str(@intFromEnum(code)));
    }

    /// The Zig error for a failure code (`ok` and `not_found` are not failures).
    pub fn toError(code: Code) Error {
        return switch (code) {
            .null_parameter => error.NullParameter,
            .invalid_argument => error.InvalidArgument,
            .io => error.Io,
            .not_a_cache => error.NotACache,
            .corrupt => error.Corrupt,
            .busy => error.Busy,
            .too_large => error.TooLarge,
            .callback_failed => error.CallbackFailed,
            .incompatible => error.Incompatible,
            .panic => error.Panic,
            .internal => error.Internal,
            .lease_lost => error.LeaseLost,
            .lease_held => error.LeaseHeld,
            else => error.Unexpected,
        };
    }
};

/// The result code and message of a failed call. Messages longer than
/// `max_message_len` bytes are cut, never inside a UTF-8 character.
pub const Diagnostics = struct {
    pub const max_message_len = 512;

    code: Code = .ok,
    buf: [max_message_len]u8 = undefined,
    len: usize = 0,
    /// For `lease_held`: the holder's lease time left in ms (it renews the lease while
    /// it computes); null otherwise.
    lease_time_left_ms: ?u64 = null,

    pub fn message(self: *const Diagnostics) []const u8 {
        return self.buf[0..self.len];
    }

    /// `{f}` prints "message (code N)".
    pub fn format(self: Diagnostics, w: *std.Io.Writer) std.Io.Writer.Error!void {
        try w.print("{s} (code {d})", .{ self.message(), @intFromEnum(self.code) });
    }

    fn setText(self: *Diagnostics, code: Code, text: []const u8) void {
        self.code = code;
        self.lease_time_left_ms = null;
        var len = @min(text.len, self.buf.len);
        // A cut inside a UTF-8 character (the message names the path, which may be any
        // text) drops the character whole: a message is always valid UTF-8.
        if (len < text.len) {
            var back: usize = 0;
            while (back < 3 and len > 0 and text[len] & 0xC0 == 0x80) : (back += 1) len -= 1;
        }
        self.len = len;
        @memcpy(self.buf[0..len], text[0..len]);
    }

    /// Records `code` with the message of `err` (or the code's description), then frees
    /// `err`.
    fn take(self: *Diagnostics, code: Code, err: ?*c.backlite_error) void {
        defer c.backlite_error_free(err);
        const text = if (err) |e| std.mem.span(c.backlite_error_message(e)) else code.description();
        self.setText(code, text);
        const left = c.backlite_error_lease_time_left_ms(err);
        self.lease_time_left_ms = if (left >= 0) @intCast(left) else null;
    }
};

/// When an entry expires.
pub const Expiration = union(enum) {
    /// The storage's default expiration (`Options.default_expiration_ms`).
    default,
    /// Never.
    never,
    /// This many milliseconds from now (0: already expired, so nothing is stored).
    ms: u64,

    fn toC(self: Expiration) i64 {
        return switch (self) {
            .default => c.BACKLITE_EXPIRATION_DEFAULT,
            .never => c.BACKLITE_EXPIRATION_NEVER,
            .ms => |ms| clampMs(ms),
        };
    }
};

fn clampMs(ms: u64) i64 {
    return @intCast(@min(ms, std.math.maxInt(i64)));
}

/// The seed's eviction policies, in the seed's order.
pub const EvictionPolicy = enum(i32) {
    least_recently_used = c.BACKLITE_EVICTION_POLICY_LEAST_RECENTLY_USED,
    least_frequently_used = c.BACKLITE_EVICTION_POLICY_LEAST_FREQUENTLY_USED,
    most_recently_used = c.BACKLITE_EVICTION_POLICY_MOST_RECENTLY_USED,
    first_in_first_out = c.BACKLITE_EVICTION_POLICY_FIRST_IN_FIRST_OUT,
    last_in_first_out = c.BACKLITE_EVICTION_POLICY_LAST_IN_FIRST_OUT,

    /// The seed's name: "least-recently-used", ...
    pub fn name(self: EvictionPolicy) []const u8 {
        return switch (self) {
            .least_recently_used => "least-recently-used",
            .least_frequently_used => "least-frequently-used",
            .most_recently_used => "most-recently-used",
            .first_in_first_out => "first-in-first-out",
            .last_in_first_out => "last-in-first-out",
        };
    }

    pub fn fromName(text: []const u8) ?EvictionPolicy {
        inline for (std.meta.fields(EvictionPolicy)) |f| {
            const p: EvictionPolicy = @enumFromInt(f.value);
            if (std.mem.eql(u8, text, p.name())) return p;
        }
        return null;
    }
};

/// How a remote tier (`Options.remote`) is used.
pub const RemoteMode = enum(i32) {
    /// Reads through; writes reach the remote before the call returns (the default).
    read_write = c.BACKLITE_REMOTE_MODE_READ_WRITE,
    /// Reads through; never writes to the remote.
    read_only = c.BACKLITE_REMOTE_MODE_READ_ONLY,
    /// Reads through; writes are queued and sent by a background thread.
    write_behind = c.BACKLITE_REMOTE_MODE_WRITE_BEHIND,
};

/// `Options.file_threshold`: which values are kept in files of their own.
pub const FileThreshold = union(enum) {
    /// Values of at least this many bytes (1 to maxInt(i64)).
    bytes: u64,
    /// Every value stays in the database file.
    never,
};

/// How `Storage.open` sets up the handle. Null fields keep the library's defaults
/// (1 GiB, least-recently-used, never expire, 5000 ms busy timeout, no version tag).
pub const Options = struct {
    /// The bound on the sum of value lengths, 1 to maxInt(i64) bytes.
    max_size: ?u64 = null,
    eviction_policy: ?EvictionPolicy = null,
    /// The expiration of entries set with `.default`; null: never.
    default_expiration_ms: ?u64 = null,
    /// How long to wait for a lock held by another connection or process.
    busy_timeout_ms: ?u32 = null,
    /// When the file was last opened with another tag, every entry is dropped on open.
    version_tag: ?[]const u8 = null,
    /// How long `cachedExclusive`'s claim on a key lasts between two renewals (the
    /// library renews it every third of this while compute runs); default 30 s; > 0.
    lease_ms: ?u64 = null,
    /// Values at or above the threshold are kept in files of their own in the folder
    /// "<path>.values" beside the cache file, where large values read and write at the
    /// speed of files. Null: the library's default (backlite_options_set_file_threshold).
    file_threshold: ?FileThreshold = null,
    /// A shared remote tier on Redis / Valkey: "redis://[user[:password]@]host[:port][/db]",
    /// "rediss://...", "redis+unix:///path", "redis+cluster://h:p,h:p", "rediss+cluster://...".
    remote: ?[]const u8 = null,
    /// The prefix of every remote key (default "backlite").
    remote_namespace: ?[]const u8 = null,
    /// The bound on every remote round trip, connect included (default 250 ms; > 0).
    remote_timeout_ms: ?u32 = null,
    remote_mode: ?RemoteMode = null,
    /// Receives the code and message if the open fails.
    diags: ?*Diagnostics = null,
};

/// One item for `Storage.setMany`.
pub const Entry = struct {
    key: []const u8,
    value: []const u8,
    expiration: Expiration = .default,
};

/// A value and its time left, from `Storage.getItem`.
pub const Item = struct {
    value: []u8,
    /// Milliseconds left before it expires; null: never.
    expires_in_ms: ?u64,

    pub fn deinit(self: Item, allocator: Allocator) void {
        allocator.free(self.value);
    }
};

/// The file's counters and this handle's activity.
pub const Stats = struct {
    /// Live entries in the file.
    count: u64,
    /// Sum of value lengths in the file (what max_size bounds).
    total_size: u64,
    max_size: u64,
    /// This handle's lookups that found a live entry.
    hits: u64,
    /// This handle's lookups that did not.
    misses: u64,
    /// Entries this handle evicted for size.
    evictions: u64,
    /// Expired entries this handle removed.
    expirations: u64,
};

/// Counts since the file was created or last zeroed, by every handle of every process.
pub const LifetimeStats = struct {
    /// Lookups that found a live entry.
    hits: u64,
    /// Lookups that did not.
    misses: u64,
    /// Entries evicted for size.
    evictions: u64,
    /// Expired entries removed.
    expirations: u64,
    /// When counting began (creation, upgrade or the last zero), ms since the Unix epoch.
    since_ms: i64,
};

/// This handle's remote tier activity (all zero without a remote).
pub const RemoteStats = struct {
    /// Local misses the remote answered.
    hits: u64,
    /// Local misses it did not answer.
    misses: u64,
    /// Writes it acknowledged.
    writes: u64,
    /// Round trips that failed (refused, timed out, garbage).
    errors: u64,
    /// Calls not sent while it was backed off.
    skipped: u64,
    /// The last round trip succeeded.
    connected: bool,
};

/// What `Storage.check` found and, with repair, fixed.
pub const CheckReport = struct {
    healthy: bool,
    integrity_ok: bool,
    repaired: bool,
    entries: u64,
    damaged: u64,
    orphan_values: u64,
    /// `count` and `total_size` as the file recorded them before the check; both
    /// `std.math.maxInt(u64)` when the file's counters were damaged (not sound
    /// integers): until a check with repair rewrites them, every write is
    /// `error.Corrupt`.
    recorded_count: u64,
    recorded_total_size: u64,
    actual_count: u64,
    actual_total_size: u64,
};

/// Options of `Storage.cached`.
pub const CachedOptions = struct {
    expiration: Expiration = .default,
    /// Held around the compute of a missing value (the key is looked up again once it
    /// is held), so that threads sharing it compute a key once. Across processes, use
    /// `cachedExclusive`. A `cached` under a barrier that its own thread holds around an
    /// outer compute (one barrier for every key, a compute using another cached value)
    /// is `error.CallbackFailed`, without computing: locking it again would wait for ever.
    barrier: ?*std.Thread.Mutex = null,
};

/// Options of `Storage.cachedExclusive`.
pub const ExclusiveOptions = struct {
    expiration: Expiration = .default,
    /// How long to wait for another owner's compute before `error.LeaseHeld`.
    wait_timeout_ms: u64 = 60_000,
};

/// The answer of `Storage.tryAcquire`.
pub const Acquired = union(enum) {
    /// A hit: the value, in the caller's allocator.
    hit: []u8,
    /// A miss, and the key is ours to compute: `fulfill` or `abandon` the lease.
    lease: Lease,
    /// Another live owner is computing the key: try again later. Its lease's time left,
    /// in ms.
    held: u64,
};

/// The answer of `Storage.leaseStep`.
pub const LeaseStep = union(enum) {
    /// A hit: the value, in the caller's allocator.
    hit: []u8,
    /// A miss, and the key is ours to compute: the library renews the lease until it is
    /// fulfilled or abandoned, so compute for as long as it takes, then `fulfill`.
    lease: Lease,
    /// Another live owner is computing the key: wait `retry_in_ms` (without blocking
    /// your loop), then take the next step with `attempt + 1`.
    wait: Wait,

    pub const Wait = struct {
        /// How long to wait before the next step (1 ms doubling to 50 ms with each
        /// attempt, never past the holder's deadline).
        retry_in_ms: u64,
        /// The holder's lease time left (it renews the lease while it computes).
        time_left_ms: u64,
    };
};

/// The right to compute one key (the two-phase stampede protection, for event loops).
/// Release it with `fulfill` or `abandon`; after `fulfill`, `abandon` does nothing, so
/// `defer lease.abandon()` is always right. It stays valid even after its `Storage` is
/// closed.
pub const Lease = struct {
    handle: ?*c.backlite_lease,
    diags: Diagnostics = .{},

    /// Moves the deadline to `lease_ms` from now. `error.LeaseLost` if another owner
    /// took the key over (then abandon the lease).
    pub fn extend(self: *Lease, lease_ms: u64) Error!void {
        var err: ?*c.backlite_error = null;
        const r = c.backlite_lease_extend(self.handle, clampMs(lease_ms), &err);
        try checkResult(&self.diags, r, err);
    }

    /// Stores `value` under the key, releases and frees the lease (whatever the result).
    /// `error.LeaseLost`: another owner took the key over and nothing was stored.
    pub fn fulfill(self: *Lease, value: []const u8, expiration: Expiration) Error!void {
        const handle = self.handle orelse return error.NullParameter;
        self.handle = null;
        var err: ?*c.backlite_error = null;
        const r = c.backlite_lease_fulfill(handle, bytesPtr(value), value.len, expiration.toC(), &err);
        try checkResult(&self.diags, r, err);
    }

    /// Releases the lease without storing anything (another caller may take the key).
    pub fn abandon(self: *Lease) void {
        c.backlite_lease_abandon(self.handle);
        self.handle = null;
    }

    /// The code and message of this lease's last failure.
    pub fn lastError(self: *const Lease) Diagnostics {
        return self.diags;
    }
};

/// One value read in bounded memory, from `Storage.reader`: a `std.Io.Reader`
/// (`interface`) over `backlite_value_reader_read`, so `streamRemaining`,
/// `takeDelimiterExclusive`, `readSliceAll`, `allocRemaining` and the rest work on it.
/// Its buffer is the one passed to `Storage.reader`, the only memory it adds.
///
/// The value read is the one opened: a set, delete or clear of its key meanwhile does
/// not change it. The value's checksum is checked at its end. A value found damaged
/// there is never a clean end of stream: the interface returns
/// `error.ReadFailed` and `err` is `error.Damaged` (drop what was read; the entry has
/// been removed, as `get` would remove it). Any other failure is `error.ReadFailed`
/// with `err` set to the library's error and `lastError()` giving its message, as
/// `std.fs.File.Reader` keeps its `err`.
///
/// Call `deinit` when done. The library's reader is freed as soon as the end or a
/// failure is reached; until then it holds an open value file, or a read snapshot of
/// the database for a large value kept there. It does not need its `Storage` to stay
/// open. One thread at a time. Do not copy a ValueReader once its interface is in use
/// (the interface finds it with `@fieldParentPtr`).
pub const ValueReader = struct {
    handle: ?*c.backlite_value_reader,
    /// The value's length in bytes.
    size: u64,
    /// The time the entry had left when the reader was opened, in ms (null: never).
    expires_in_ms: ?u64,
    /// Why the interface returned `error.ReadFailed`.
    err: ?ReadError = null,
    /// True once the whole value was read and its checksum matched.
    ended: bool = false,
    diags: Diagnostics = .{},
    interface: std.Io.Reader,

    pub const ReadError = Error || error{
        /// The value proved damaged at its end (a set or delete meanwhile is not seen).
        Damaged,
    };

    fn init(handle: *c.backlite_value_reader, expires_in_ms: i64, buffer: []u8) ValueReader {
        return .{
            .handle = handle,
            .size = c.backlite_value_reader_size(handle),
            .expires_in_ms = if (expires_in_ms < 0) null else @intCast(expires_in_ms),
            .interface = .{
                .vtable = &.{ .stream = stream },
                .buffer = buffer,
                .seek = 0,
                .end = 0,
            },
        };
    }

    /// Frees the library's reader (if the end or a failure has not already).
    pub fn deinit(self: *ValueReader) void {
        c.backlite_value_reader_free(self.handle);
        self.* = undefined;
    }

    /// The code and message of this reader's failure (`.not_found` when damaged).
    pub fn lastError(self: *const ValueReader) Diagnostics {
        return self.diags;
    }

    /// Copies the next bytes of the value into `dest`, without the interface's buffer:
    /// `error.EndOfStream` at the end (the checksum matched), `error.ReadFailed` with
    /// `err` set otherwise. An empty `dest` reads nothing and returns 0 (as
    /// `std.fs.File.read` does), at the end too.
    pub fn readSome(self: *ValueReader, dest: []u8) std.Io.Reader.Error!usize {
        if (self.err != null) return error.ReadFailed;
        if (dest.len == 0) return 0;
        const handle = self.handle orelse return error.EndOfStream;
        var n: usize = 0;
        var err: ?*c.backlite_error = null;
        const r = c.backlite_value_reader_read(handle, dest.ptr, dest.len, &n, &err);
        if (r == c.BACKLITE_RESULT_OK and n > 0) return n;
        // The end or a failure: the library's reader is no longer needed.
        c.backlite_value_reader_free(handle);
        self.handle = null;
        if (r == c.BACKLITE_RESULT_OK) {
            self.ended = true;
            return error.EndOfStream;
        }
        if (r == c.BACKLITE_RESULT_NOT_FOUND) {
            c.backlite_error_free(err); // NULL for NOT_FOUND; freed all the same
            self.diags.setText(.not_found, "the value proved damaged at its end; its entry is removed");
            self.err = error.Damaged;
        } else {
            checkResult(&self.diags, r, err) catch |e| {
                self.err = e;
            };
        }
        return error.ReadFailed;
    }

    fn stream(io_reader: *std.Io.Reader, w: *std.Io.Writer, limit: std.Io.Limit) std.Io.Reader.StreamError!usize {
        const self: *ValueReader = @alignCast(@fieldParentPtr("interface", io_reader));
        if (limit == .nothing) return 0;
        if (w.buffer.len == 0) {
            // An unbuffered writer: through a small buffer of our own.
            var local: [4096]u8 = undefined;
            const n = try self.readSome(limit.slice(&local));
            try w.writeAll(local[0..n]);
            return n;
        }
        const dest = limit.slice(try w.writableSliceGreedy(1));
        const n = try self.readSome(dest);
        w.advance(n);
        return n;
    }
};

/// Frees what `Storage.collectKeys` returned.
pub fn freeKeys(allocator: Allocator, keys: []const []u8) void {
    for (keys) |k| allocator.free(k);
    allocator.free(keys);
}

/// The library's version, e.g. "0.1.0".
pub fn version() []const u8 {
    return std.mem.span(c.backlite_version());
}

/// The version of the header this package was compiled against.
pub const header_version: []const u8 = c.BACKLITE_VERSION_STRING;

fn bytesPtr(bytes: []const u8) ?[*]const u8 {
    return if (bytes.len == 0) null else bytes.ptr;
}

fn checkResult(diags: *Diagnostics, r: c.backlite_result, err: ?*c.backlite_error) Error!void {
    if (r == c.BACKLITE_RESULT_OK) return;
    const code: Code = @enumFromInt(r);
    diags.take(code, err);
    return code.toError();
}

/// Copies a library buffer into `allocator` and frees the buffer.
fn takeBuf(allocator: Allocator, buf: *c.backlite_buf) Allocator.Error![]u8 {
    defer c.backlite_buf_free(buf);
    if (buf.len == 0) return allocator.alloc(u8, 0);
    return allocator.dupe(u8, buf.data[0..buf.len]);
}

/// A NUL-terminated copy of `text` in `buf`, or null if it does not fit or holds a NUL.
fn toCString(buf: []u8, text: []const u8) ?[*:0]const u8 {
    if (text.len >= buf.len or std.mem.indexOfScalar(u8, text, 0) != null) return null;
    @memcpy(buf[0..text.len], text);
    buf[text.len] = 0;
    return @ptrCast(buf.ptr);
}

/// The error set a callback's return type carries (empty when it cannot fail).
fn ErrorOf(comptime R: type) type {
    return switch (@typeInfo(R)) {
        .error_union => |eu| eu.error_set,
        else => error{},
    };
}

fn PayloadOf(comptime R: type) type {
    return switch (@typeInfo(R)) {
        .error_union => |eu| eu.payload,
        else => R,
    };
}

/// How a compute context is called: a function `fn (*std.Io.Writer) !void`, or a value
/// whose type has `compute(self, *std.Io.Writer) !void`.
fn Compute(comptime Context: type) type {
    return struct {
        const is_fn = @typeInfo(Context) == .@"fn";
        const R = if (is_fn)
            @typeInfo(Context).@"fn".return_type.?
        else
            @TypeOf(@as(Context, undefined).compute(@as(*std.Io.Writer, undefined)));
        comptime {
            if (PayloadOf(R) != void)
                @compileError("compute must return void or an error union with void: " ++ @typeName(R));
        }
        pub const E = ErrorOf(R);
    };
}

/// A `std.Io.Writer` over the library's sink, for the duration of one compute.
const SinkWriter = struct {
    raw: *c.backlite_sink,
    failure: ?Code = null,
    writer: std.Io.Writer,

    fn init(raw: *c.backlite_sink, buffer: []u8) SinkWriter {
        return .{ .raw = raw, .writer = .{ .buffer = buffer, .vtable = &.{ .drain = drain } } };
    }

    fn put(self: *SinkWriter, bytes: []const u8) std.Io.Writer.Error!void {
        if (bytes.len == 0) return;
        const r = c.backlite_sink_write(self.raw, bytes.ptr, bytes.len);
        if (r != c.BACKLITE_RESULT_OK) {
            self.failure = @enumFromInt(r);
            return error.WriteFailed;
        }
    }

    fn drain(w: *std.Io.Writer, data: []const []const u8, splat: usize) std.Io.Writer.Error!usize {
        const self: *SinkWriter = @alignCast(@fieldParentPtr("writer", w));
        try self.put(w.buffered());
        w.end = 0;
        var n: usize = 0;
        for (data[0 .. data.len - 1]) |slice| {
            try self.put(slice);
            n += slice.len;
        }
        const pattern = data[data.len - 1];
        try self.putRepeated(pattern, splat);
        return n + pattern.len * splat;
    }

    /// A short pattern repeated many times (`splatByteAll`, padding in `print`) goes out in
    /// blocks of copies: one sink call per copy made a 20 MB `splatByteAll` take seconds.
    fn putRepeated(self: *SinkWriter, pattern: []const u8, splat: usize) std.Io.Writer.Error!void {
        var block: [4096]u8 = undefined;
        const per_block = if (pattern.len == 0) 0 else block.len / pattern.len;
        if (per_block < 2) {
            for (0..splat) |_| try self.put(pattern);
            return;
        }
        for (0..per_block) |i| @memcpy(block[i * pattern.len ..][0..pattern.len], pattern);
        var left = splat;
        while (left > 0) {
            const copies = @min(left, per_block);
            try self.put(block[0 .. copies * pattern.len]);
            left -= copies;
        }
    }
};

/// The state a compute trampoline reaches through `user_data`.
fn ComputeCall(comptime Context: type) type {
    return struct {
        const Self = @This();
        const C = Compute(Context);
        /// A function is kept as a pointer, a context as it was passed.
        const Stored = if (C.is_fn) *const Context else Context;

        context: Stored,
        failed: ?C.E = null,
        sink_failure: ?Code = null,
        /// For `cachedExclusive`: the key this thread computes while the compute runs.
        mark: ?Computing = null,

        fn run(self: *Self, w: *std.Io.Writer) C.R {
            return if (comptime C.is_fn) self.context(w) else self.context.compute(w);
        }

        fn trampoline(user_data: ?*anyopaque, raw: ?*c.backlite_sink) callconv(.c) i32 {
            const self: *Self = @ptrCast(@alignCast(user_data.?));
            var buffer: [4096]u8 = undefined;
            var sink = SinkWriter.init(raw.?, &buffer);
            if (self.mark) |*m| m.begin();
            defer if (self.mark) |*m| m.end();
            const outcome = self.run(&sink.writer);
            if (@typeInfo(@TypeOf(outcome)) == .error_union) {
                outcome catch |e| {
                    // A failed sink write surfaces as error.WriteFailed; report the
                    // library's code instead.
                    if (sink.failure) |code| self.sink_failure = code else self.failed = e;
                    return 1;
                };
            }
            sink.writer.flush() catch {
                self.sink_failure = sink.failure;
                return 1;
            };
            return 0;
        }

        /// The error to return for result `r` (a compute's own error first).
        fn finish(self: *Self, diags: *Diagnostics, r: c.backlite_result, err: ?*c.backlite_error) (Error || C.E)!void {
            if (self.failed) |e| {
                c.backlite_error_free(err);
                diags.setText(.callback_failed, @errorName(e));
                return e;
            }
            if (self.sink_failure) |code| {
                c.backlite_error_free(err);
                diags.setText(code, "backlite_sink_write failed");
                return code.toError();
            }
            return checkResult(diags, r, err);
        }
    };
}

/// Which cache a `Storage` has open. A lease is the file's, not the handle's: a second
/// `Storage` of the same file (another path to it, a link) meets it as its own.
pub const CacheIdentity = struct {
    device: u64 = 0,
    inode: u64 = 0,
    /// The handle alone: an in-memory cache, or a file that could not be looked at.
    handle: usize = 0,

    fn of(path: [*:0]const u8, handle: *c.backlite_storage) CacheIdentity {
        if (!std.mem.eql(u8, std.mem.span(path), ":memory:")) {
            if (std.posix.fstatat(std.posix.AT.FDCWD, std.mem.span(path), 0)) |st| {
                return .{ .device = @intCast(st.dev), .inode = @intCast(st.ino) };
            } else |_| {}
        }
        return .{ .handle = @intFromPtr(handle) };
    }
};

/// One key this thread computes under `cachedExclusive`, linked to the ones it runs
/// inside. A call of one of them from inside its own compute (a recursion with the same
/// arguments) would wait for the key's lease, which is its own caller's: it computes at
/// once instead.
const Computing = struct {
    cache: CacheIdentity,
    key: []const u8,
    outer: ?*const Computing = null,

    threadlocal var innermost: ?*const Computing = null;

    fn begin(self: *Computing) void {
        self.outer = innermost;
        innermost = self;
    }

    fn end(self: *Computing) void {
        innermost = self.outer;
    }

    fn includes(cache: CacheIdentity, key: []const u8) bool {
        var it = innermost;
        while (it) |m| : (it = m.outer) {
            if (std.meta.eql(m.cache, cache) and std.mem.eql(u8, m.key, key)) return true;
        }
        return false;
    }
};

/// A `CachedOptions.barrier` held by this thread around a compute of `cached`, linked to
/// the ones it holds outside it. A `std.Thread.Mutex` locked again by the thread holding
/// it waits for ever (Debug builds panic): a `cached` under a barrier its own thread
/// holds fails instead.
const HeldBarrier = struct {
    mutex: *std.Thread.Mutex,
    outer: ?*const HeldBarrier = null,
    /// The lock was refused: this thread held the mutex already.
    refused: bool = false,

    threadlocal var innermost: ?*const HeldBarrier = null;

    fn lock(user_data: ?*anyopaque) callconv(.c) i32 {
        const self: *HeldBarrier = @ptrCast(@alignCast(user_data.?));
        var it = innermost;
        while (it) |h| : (it = h.outer) {
            if (h.mutex == self.mutex) {
                self.refused = true;
                return 1;
            }
        }
        self.mutex.lock();
        self.outer = innermost;
        innermost = self;
        return 0;
    }

    fn unlock(user_data: ?*anyopaque) callconv(.c) void {
        const self: *HeldBarrier = @ptrCast(@alignCast(user_data.?));
        innermost = self.outer;
        self.mutex.unlock();
    }
};

/// A cache handle. Usable from any number of threads at once; `deinit` must not race
/// with other calls.
pub const Storage = struct {
    handle: *c.backlite_storage,
    cache: CacheIdentity = .{},
    last: struct {
        mutex: std.Thread.Mutex = .{},
        diags: Diagnostics = .{},
    } = .{},

    /// Opens (or creates) the cache file at `path` (":memory:" for a private in-memory
    /// cache). A file that is not a BackLite cache is left untouched: `error.NotACache`.
    pub fn open(path: []const u8, options: Options) Error!Storage {
        var scratch: Diagnostics = .{};
        const diags = options.diags orelse &scratch;
        if (std.mem.indexOfScalar(u8, path, 0) != null) {
            diags.setText(.invalid_argument, "the path contains a NUL byte");
            return error.InvalidArgument;
        }
        // A path of any length goes to the library, which answers for it as for the
        // other bindings (a longer one than the system takes is error.Io, from its open).
        var path_buf: [std.fs.max_path_bytes + 1]u8 = undefined;
        var path_heap: ?[:0]u8 = null;
        defer if (path_heap) |h| std.heap.c_allocator.free(h);
        const c_path = toCString(&path_buf, path) orelse blk: {
            path_heap = std.heap.c_allocator.dupeZ(u8, path) catch {
                diags.setText(.internal, "out of memory");
                return error.Internal;
            };
            break :blk path_heap.?.ptr;
        };

        const opts = c.backlite_options_new() orelse {
            diags.setText(.internal, "out of memory");
            return error.Internal;
        };
        defer c.backlite_options_free(opts);
        if (options.max_size) |v| try setOption(diags, "max_size", c.backlite_options_set_max_size(opts, v));
        if (options.eviction_policy) |v|
            try setOption(diags, "eviction_policy", c.backlite_options_set_eviction_policy(opts, @intFromEnum(v)));
        if (options.default_expiration_ms) |v|
            try setOption(diags, "default_expiration_ms", c.backlite_options_set_default_expiration_ms(opts, clampMs(v)));
        if (options.busy_timeout_ms) |v|
            try setOption(diags, "busy_timeout_ms", c.backlite_options_set_busy_timeout_ms(opts, v));
        if (options.lease_ms) |v|
            try setOption(diags, "lease_ms", c.backlite_options_set_lease_ms(opts, clampMs(v)));
        if (options.file_threshold) |v| {
            const bytes: i64 = switch (v) {
                .never => c.BACKLITE_FILE_THRESHOLD_NEVER,
                // Out of range: 0, which the library refuses as INVALID_ARGUMENT.
                .bytes => |n| std.math.cast(i64, n) orelse 0,
            };
            try setOption(diags, "file_threshold", c.backlite_options_set_file_threshold(opts, bytes));
        }
        if (options.version_tag) |tag|
            try setTextOption(diags, "version_tag", opts, c.backlite_options_set_version_tag, tag);
        if (options.remote) |url|
            try setTextOption(diags, "remote", opts, c.backlite_options_set_remote, url);
        if (options.remote_namespace) |ns|
            try setTextOption(diags, "remote_namespace", opts, c.backlite_options_set_remote_namespace, ns);
        if (options.remote_timeout_ms) |v|
            try setOption(diags, "remote_timeout_ms", c.backlite_options_set_remote_timeout_ms(opts, v));
        if (options.remote_mode) |m|
            try setOption(diags, "remote_mode", c.backlite_options_set_remote_mode(opts, @intFromEnum(m)));

        var handle: ?*c.backlite_storage = null;
        var err: ?*c.backlite_error = null;
        try checkResult(diags, c.backlite_storage_open(c_path, opts, &handle, &err), err);
        return .{ .handle = handle.?, .cache = CacheIdentity.of(c_path, handle.?) };
    }

    /// Calls the C `setter` with `text` NUL-terminated, whatever its length (the C
    /// library and the other bindings take a tag of any length): copied into a buffer
    /// on the stack when it fits, else into memory of the C allocator for the call (the
    /// library keeps its own copy). A text holding a NUL is `error.InvalidArgument`.
    fn setTextOption(
        diags: *Diagnostics,
        comptime name: []const u8,
        opts: *c.backlite_options,
        comptime setter: anytype,
        text: []const u8,
    ) Error!void {
        if (std.mem.indexOfScalar(u8, text, 0) != null) {
            diags.setText(.invalid_argument, name ++ " contains a NUL byte");
            return error.InvalidArgument;
        }
        var buf: [1024]u8 = undefined;
        var heap: ?[:0]u8 = null;
        defer if (heap) |h| std.heap.c_allocator.free(h);
        const z = toCString(&buf, text) orelse blk: {
            heap = std.heap.c_allocator.dupeZ(u8, text) catch {
                diags.setText(.internal, "out of memory");
                return error.Internal;
            };
            break :blk heap.?.ptr;
        };
        try setOption(diags, name, setter(opts, z));
    }

    fn setOption(diags: *Diagnostics, comptime name: []const u8, r: c.backlite_result) Error!void {
        if (r == c.BACKLITE_RESULT_OK) return;
        const code: Code = @enumFromInt(r);
        diags.setText(code, "invalid option " ++ name);
        return code.toError();
    }

    /// Closes the handle. It writes the handle's buffered hits: behind another process's
    /// write lock it waits at most the busy timeout, then closes without them.
    pub fn deinit(self: *Storage) void {
        c.backlite_storage_free(self.handle);
        self.* = undefined;
    }

    /// The code and message of this handle's most recent failure (from any thread).
    pub fn lastError(self: *Storage) Diagnostics {
        self.last.mutex.lock();
        defer self.last.mutex.unlock();
        return self.last.diags;
    }

    fn fail(self: *Storage, r: c.backlite_result, err: ?*c.backlite_error) Error!void {
        if (r == c.BACKLITE_RESULT_OK) return;
        self.last.mutex.lock();
        defer self.last.mutex.unlock();
        return checkResult(&self.last.diags, r, err);
    }

    /// The value under `key`, copied into `allocator` (the caller frees it), or null if
    /// there is no live entry.
    pub fn get(self: *Storage, allocator: Allocator, key: []const u8) (Error || Allocator.Error)!?[]u8 {
        const item = try self.getItem(allocator, key) orelse return null;
        return item.value;
    }

    /// Like `get`, with the time the value has left.
    pub fn getItem(self: *Storage, allocator: Allocator, key: []const u8) (Error || Allocator.Error)!?Item {
        var buf: c.backlite_buf = .{ .data = null, .len = 0 };
        var left: i64 = 0;
        var err: ?*c.backlite_error = null;
        const r = c.backlite_storage_get(self.handle, bytesPtr(key), key.len, &buf, &left, &err);
        if (r == c.BACKLITE_RESULT_NOT_FOUND) {
            // A miss leaves err NULL; freed all the same, so that no miss can leak.
            c.backlite_error_free(err);
            return null;
        }
        try self.fail(r, err);
        const value = try takeBuf(allocator, &buf);
        return .{ .value = value, .expires_in_ms = if (left < 0) null else @intCast(left) };
    }

    /// Stores `value` under `key`, evicting by the policy to make room.
    /// `error.TooLarge` if it is longer than max_size (then the older value is removed).
    pub fn set(self: *Storage, key: []const u8, value: []const u8, expiration: Expiration) Error!void {
        var err: ?*c.backlite_error = null;
        const r = c.backlite_storage_set(self.handle, bytesPtr(key), key.len, bytesPtr(value), value.len, expiration.toC(), &err);
        try self.fail(r, err);
    }

    /// Stores every entry in one transaction (all or nothing), then evicts down to
    /// max_size. `allocator` holds the C array of entries for the call.
    pub fn setMany(self: *Storage, allocator: Allocator, entries: []const Entry) (Error || Allocator.Error)!void {
        const raw = try allocator.alloc(c.backlite_entry, entries.len);
        defer allocator.free(raw);
        for (entries, raw) |e, *r| r.* = .{
            .key = bytesPtr(e.key),
            .key_len = e.key.len,
            .value = bytesPtr(e.value),
            .value_len = e.value.len,
            .expiration_ms = e.expiration.toC(),
        };
        var err: ?*c.backlite_error = null;
        const r = c.backlite_storage_set_many(self.handle, if (raw.len == 0) null else raw.ptr, raw.len, &err);
        try self.fail(r, err);
    }

    /// Removes the entry under `key`; false if there was no live entry.
    pub fn delete(self: *Storage, key: []const u8) Error!bool {
        var err: ?*c.backlite_error = null;
        const r = c.backlite_storage_delete(self.handle, bytesPtr(key), key.len, &err);
        if (r == c.BACKLITE_RESULT_NOT_FOUND) {
            // A miss leaves err NULL; freed all the same, so that no miss can leak.
            c.backlite_error_free(err);
            return false;
        }
        try self.fail(r, err);
        return true;
    }

    /// Whether `key` has a live entry. Not an access: no order or counter changes.
    pub fn contains(self: *Storage, key: []const u8) Error!bool {
        var err: ?*c.backlite_error = null;
        const r = c.backlite_storage_contains(self.handle, bytesPtr(key), key.len, &err);
        if (r == c.BACKLITE_RESULT_NOT_FOUND) {
            // A miss leaves err NULL; freed all the same, so that no miss can leak.
            c.backlite_error_free(err);
            return false;
        }
        try self.fail(r, err);
        return true;
    }

    /// Calls `visit(context, key)` with every live key. `visit` returns `void` or
    /// `bool` (false stops early), or an error union of those: its error stops the walk
    /// and is returned. Any other return type (C's `i32`, say) is a compile error. The key slice is valid only during the call. No lock is held
    /// while `visit` runs, so it may use this storage.
    pub fn keys(
        self: *Storage,
        context: anytype,
        comptime visit: anytype,
    ) (Error || ErrorOf(@typeInfo(@TypeOf(visit)).@"fn".return_type.?))!void {
        const Context = @TypeOf(context);
        const R = @typeInfo(@TypeOf(visit)).@"fn".return_type.?;
        comptime {
            // Anything else was ignored: a visitor returning C's i32 (non-zero: stop) was
            // never stopped.
            if (PayloadOf(R) != void and PayloadOf(R) != bool)
                @compileError("keys: visit must return void or bool (false stops the walk), " ++
                    "or an error union of those, not " ++ @typeName(R));
        }
        const Visit = struct {
            context: Context,
            failed: ?ErrorOf(R) = null,

            fn trampoline(user_data: ?*anyopaque, key: [*c]const u8, key_len: usize) callconv(.c) i32 {
                const st: *@This() = @ptrCast(@alignCast(user_data.?));
                const slice: []const u8 = if (key_len == 0) &.{} else key[0..key_len];
                const outcome = visit(st.context, slice);
                const go_on: bool = if (@typeInfo(R) == .error_union) blk: {
                    const v = outcome catch |e| {
                        st.failed = e;
                        return 1;
                    };
                    break :blk if (PayloadOf(R) == bool) v else true;
                } else if (R == bool) outcome else true;
                return if (go_on) 0 else 1;
            }
        };
        var state: Visit = .{ .context = context };
        var err: ?*c.backlite_error = null;
        const r = c.backlite_storage_keys(self.handle, Visit.trampoline, &state, &err);
        if (state.failed) |e| {
            if (r != c.BACKLITE_RESULT_OK) c.backlite_error_free(err);
            return e;
        }
        try self.fail(r, err);
    }

    /// Writes the value under `key` to `writer` in chunks (at most 256 KiB each), so a
    /// value of any size is copied in bounded memory: true on a hit, false on a miss
    /// (also when the value proves damaged after some chunks were written: discard
    /// what `writer` got; the entry is removed). The writer's own error is returned as
    /// it is. The chunks are handed over inside a read transaction on the file.
    pub fn getTo(self: *Storage, key: []const u8, writer: *std.Io.Writer) (Error || std.Io.Writer.Error)!bool {
        const Sink = struct {
            writer: *std.Io.Writer,
            failed: ?std.Io.Writer.Error = null,

            fn visit(user_data: ?*anyopaque, chunk: [*c]const u8, len: usize) callconv(.c) i32 {
                const st: *@This() = @ptrCast(@alignCast(user_data.?));
                st.writer.writeAll(chunk[0..len]) catch |e| {
                    st.failed = e;
                    return 1;
                };
                return 0;
            }
        };
        var sink: Sink = .{ .writer = writer };
        var err: ?*c.backlite_error = null;
        const r = c.backlite_storage_get_chunks(self.handle, bytesPtr(key), key.len, Sink.visit, &sink, null, &err);
        if (sink.failed) |e| {
            if (r != c.BACKLITE_RESULT_OK) c.backlite_error_free(err);
            return e;
        }
        if (r == c.BACKLITE_RESULT_NOT_FOUND) return false;
        try self.fail(r, err);
        return true;
    }

    /// A reader of the value under `key`, to pull it in bounded memory through its
    /// `interface` (a `std.Io.Reader` over `buffer`, which may be empty for unbuffered
    /// reads; `takeDelimiterExclusive` and `peek` need one as long as what they
    /// return); null on a miss. The open is the look-up (a hit counts as an access, as
    /// for `get`); the bytes come with the reads. Call `deinit` on it when done, and
    /// keep it in place while its interface is in use.
    pub fn reader(self: *Storage, key: []const u8, buffer: []u8) Error!?ValueReader {
        var handle: ?*c.backlite_value_reader = null;
        var left: i64 = 0;
        var err: ?*c.backlite_error = null;
        const r = c.backlite_storage_open_reader(self.handle, bytesPtr(key), key.len, &handle, null, &left, &err);
        if (r == c.BACKLITE_RESULT_NOT_FOUND) {
            c.backlite_error_free(err); // NULL on a miss; freed all the same
            return null;
        }
        try self.fail(r, err);
        return ValueReader.init(handle.?, left, buffer);
    }

    /// Every live key, each copied into `allocator`; free with `freeKeys`.
    pub fn collectKeys(self: *Storage, allocator: Allocator) (Error || Allocator.Error)![][]u8 {
        const Collect = struct {
            allocator: Allocator,
            list: std.ArrayList([]u8) = .empty,
            fn add(st: *@This(), key: []const u8) Allocator.Error!void {
                const copy = try st.allocator.dupe(u8, key);
                errdefer st.allocator.free(copy);
                try st.list.append(st.allocator, copy);
            }
        };
        var st: Collect = .{ .allocator = allocator };
        // The keys copied so far, then the list's own buffer (its capacity, not its
        // length: freeKeys would free a slice of the wrong size, after deinit).
        errdefer {
            for (st.list.items) |k| allocator.free(k);
            st.list.deinit(allocator);
        }
        try self.keys(&st, Collect.add);
        return st.list.toOwnedSlice(allocator);
    }

    /// Removes every entry.
    pub fn clear(self: *Storage) Error!void {
        var err: ?*c.backlite_error = null;
        try self.fail(c.backlite_storage_clear(self.handle, &err), err);
    }

    /// The file's counters (expired entries removed first) and this handle's activity.
    pub fn stats(self: *Storage) Error!Stats {
        var s: c.backlite_stats = undefined;
        var err: ?*c.backlite_error = null;
        try self.fail(c.backlite_storage_stats(self.handle, &s, &err), err);
        return .{
            .count = s.count,
            .total_size = s.total_size,
            .max_size = s.max_size,
            .hits = s.hits,
            .misses = s.misses,
            .evictions = s.evictions,
            .expirations = s.expirations,
        };
    }

    /// The file's lifetime counters, over every handle of every process since the file
    /// was created or last zeroed. Other processes' hits and misses are counted once they
    /// have written (at the latest when they close their handles); this process's always.
    pub fn lifetimeStats(self: *Storage) Error!LifetimeStats {
        var s: c.backlite_lifetime_stats = undefined;
        var err: ?*c.backlite_error = null;
        try self.fail(c.backlite_storage_lifetime_stats(self.handle, &s, &err), err);
        return .{
            .hits = s.hits,
            .misses = s.misses,
            .evictions = s.evictions,
            .expirations = s.expirations,
            .since_ms = s.since_ms,
        };
    }

    /// Sets the file's lifetime counters to zero and counts again from now; this
    /// handle's own `stats` are kept.
    pub fn zeroStats(self: *Storage) Error!void {
        var err: ?*c.backlite_error = null;
        try self.fail(c.backlite_storage_zero_stats(self.handle, &err), err);
    }

    /// This handle's remote tier activity.
    pub fn remoteStats(self: *Storage) Error!RemoteStats {
        var s: c.backlite_remote_stats = undefined;
        var err: ?*c.backlite_error = null;
        try self.fail(c.backlite_storage_remote_stats(self.handle, &s, &err), err);
        return .{
            .hits = s.hits,
            .misses = s.misses,
            .writes = s.writes,
            .errors = s.errors,
            .skipped = s.skipped,
            .connected = s.connected != 0,
        };
    }

    /// Verifies the whole file (O(n), for maintenance); with `repair`, fixes what it can.
    pub fn check(self: *Storage, repair: bool) Error!CheckReport {
        var rep: c.backlite_check_report = undefined;
        var err: ?*c.backlite_error = null;
        try self.fail(c.backlite_storage_check(self.handle, @intFromBool(repair), &rep, &err), err);
        return .{
            .healthy = rep.healthy != 0,
            .integrity_ok = rep.integrity_ok != 0,
            .repaired = rep.repaired != 0,
            .entries = rep.entries,
            .damaged = rep.damaged,
            .orphan_values = rep.orphan_values,
            .recorded_count = rep.recorded_count,
            .recorded_total_size = rep.recorded_total_size,
            .actual_count = rep.actual_count,
            .actual_total_size = rep.actual_total_size,
        };
    }

    /// Gives the space of deleted entries back to the file system.
    pub fn vacuum(self: *Storage) Error!void {
        var err: ?*c.backlite_error = null;
        try self.fail(c.backlite_storage_vacuum(self.handle, &err), err);
    }

    /// The value under `key`, computed by `context` on a miss and stored with
    /// `options.expiration`. `context` is a function `fn (*std.Io.Writer) !void` or a
    /// value (typically a pointer) whose type has `compute(self, *std.Io.Writer) !void`.
    /// An error of the compute is returned as is, with nothing stored. A value too large
    /// to store is still returned. The result is copied into `allocator`.
    pub fn cached(
        self: *Storage,
        allocator: Allocator,
        key: []const u8,
        options: CachedOptions,
        context: anytype,
    ) (Error || Allocator.Error || Compute(@TypeOf(context)).E)![]u8 {
        const Call = ComputeCall(@TypeOf(context));
        var call: Call = .{ .context = if (comptime Call.C.is_fn) &context else context };
        var held: HeldBarrier = undefined;
        var barrier: c.backlite_barrier = undefined;
        if (options.barrier) |m| {
            held = .{ .mutex = m };
            barrier = .{ .user_data = &held, .lock = HeldBarrier.lock, .unlock = HeldBarrier.unlock };
        }
        var buf: c.backlite_buf = .{ .data = null, .len = 0 };
        var err: ?*c.backlite_error = null;
        const r = c.backlite_cached_call(self.handle, bytesPtr(key), key.len, Call.trampoline, &call, if (options.barrier != null) &barrier else null, options.expiration.toC(), &buf, &err);
        if (options.barrier != null and held.refused) {
            c.backlite_error_free(err);
            self.last.mutex.lock();
            defer self.last.mutex.unlock();
            self.last.diags.setText(.callback_failed, "cached: the barrier is held by a cached whose compute this call runs inside; " ++
                "locking it again would wait for ever (use a barrier per key, or cachedExclusive)");
            return error.CallbackFailed;
        }
        try self.finishCall(Call, &call, r, err, &buf);
        return takeBuf(allocator, &buf);
    }

    /// Like `cached`, but at most one caller computes a key at a time across every
    /// thread and process sharing the file; the others wait for its value (up to
    /// `options.wait_timeout_ms`, then `error.LeaseHeld`). The library renews the
    /// computing caller's lease while its compute runs, so a compute of any length is
    /// computed once; a wait counts one miss. This blocks the calling thread. A call of
    /// the key being computed from inside its own compute on the same thread, through
    /// any `Storage` of the same cache (a recursion with the same arguments), runs the
    /// compute at once and stores nothing: waiting for the lease, its own caller's, would
    /// wait for itself.
    pub fn cachedExclusive(
        self: *Storage,
        allocator: Allocator,
        key: []const u8,
        options: ExclusiveOptions,
        context: anytype,
    ) (Error || Allocator.Error || Compute(@TypeOf(context)).E)![]u8 {
        const Call = ComputeCall(@TypeOf(context));
        var call: Call = .{
            .context = if (comptime Call.C.is_fn) &context else context,
            .mark = .{ .cache = self.cache, .key = key },
        };
        if (Computing.includes(self.cache, key)) {
            // Inside the compute of this very key on this thread: its lease is our
            // caller's. Computed at once into `allocator`, stored nowhere.
            var out: std.Io.Writer.Allocating = .init(allocator);
            defer out.deinit();
            const outcome = call.run(&out.writer);
            if (@typeInfo(@TypeOf(outcome)) == .error_union) {
                // The writer fails only for want of memory.
                outcome catch |e| return if (@as(anyerror, e) == error.WriteFailed) error.OutOfMemory else e;
            }
            return out.toOwnedSlice();
        }
        var buf: c.backlite_buf = .{ .data = null, .len = 0 };
        var err: ?*c.backlite_error = null;
        const r = c.backlite_cached_call_exclusive(self.handle, bytesPtr(key), key.len, Call.trampoline, &call, options.expiration.toC(), clampMs(options.wait_timeout_ms), &buf, &err);
        try self.finishCall(Call, &call, r, err, &buf);
        return takeBuf(allocator, &buf);
    }

    fn finishCall(self: *Storage, comptime Call: type, call: *Call, r: c.backlite_result, err: ?*c.backlite_error, buf: *c.backlite_buf) (Error || Call.C.E)!void {
        if (r == c.BACKLITE_RESULT_OK and call.failed == null and call.sink_failure == null) return;
        if (r == c.BACKLITE_RESULT_OK) c.backlite_buf_free(buf);
        self.last.mutex.lock();
        defer self.last.mutex.unlock();
        return call.finish(&self.last.diags, r, err);
    }

    /// Looks `key` up without ever waiting for another owner: a hit (copied into
    /// `allocator`), a lease to compute the key (held for `lease_ms`, renewed only by
    /// `lease.extend`), or held by another owner.
    pub fn tryAcquire(self: *Storage, allocator: Allocator, key: []const u8, lease_ms: u64) (Error || Allocator.Error)!Acquired {
        var buf: c.backlite_buf = .{ .data = null, .len = 0 };
        var lease: ?*c.backlite_lease = null;
        var err: ?*c.backlite_error = null;
        const r = c.backlite_lease_try_acquire(self.handle, bytesPtr(key), key.len, clampMs(lease_ms), &buf, &lease, &err);
        return switch (try self.stepOutcome(allocator, r, &buf, lease, err)) {
            .hit => |v| .{ .hit = v },
            .lease => |l| .{ .lease = l },
            .wait => |w| .{ .held = w.time_left_ms },
        };
    }

    /// One step of waiting for `key` without blocking, for event loops and async code:
    /// the non-blocking form of `cachedExclusive`, with its timing and lease renewal.
    /// `attempt` is 0 for the first step of a wait, then the number of steps taken
    /// before (only the first counts a miss in `stats`; the pauses grow with it). The
    /// answer is a hit (copied into `allocator`), the key's lease (renewed by the library
    /// every third of `Options.lease_ms` until `fulfill` or `abandon`), or `.wait`: step
    /// again after `retry_in_ms` with `attempt + 1`, until your own deadline.
    pub fn leaseStep(self: *Storage, allocator: Allocator, key: []const u8, attempt: u32) (Error || Allocator.Error)!LeaseStep {
        var buf: c.backlite_buf = .{ .data = null, .len = 0 };
        var lease: ?*c.backlite_lease = null;
        var err: ?*c.backlite_error = null;
        const r = c.backlite_lease_step(self.handle, bytesPtr(key), key.len, attempt, &buf, &lease, &err);
        return self.stepOutcome(allocator, r, &buf, lease, err);
    }

    /// What `backlite_lease_try_acquire` or `backlite_lease_step` gave, the library's
    /// memory freed; any result but a hit, a lease or a held key is an error.
    fn stepOutcome(self: *Storage, allocator: Allocator, r: c.backlite_result, buf: *c.backlite_buf, lease: ?*c.backlite_lease, err: ?*c.backlite_error) (Error || Allocator.Error)!LeaseStep {
        switch (r) {
            c.BACKLITE_RESULT_OK => return .{ .hit = try takeBuf(allocator, buf) },
            c.BACKLITE_RESULT_NOT_FOUND => return .{ .lease = .{ .handle = lease.? } },
            c.BACKLITE_RESULT_LEASE_HELD => {
                defer c.backlite_error_free(err);
                return .{ .wait = .{
                    .retry_in_ms = @intCast(@max(0, c.backlite_error_retry_in_ms(err))),
                    .time_left_ms = @intCast(@max(0, c.backlite_error_lease_time_left_ms(err))),
                } };
            },
            else => {
                try self.fail(r, err);
                unreachable;
            },
        }
    }
};
