//! Tests of the Zig binding, run by `zig build test`.

const std = @import("std");
const testing = std.testing;
const backlite = @import("backlite");
const link = @import("link");
const Storage = backlite.Storage;

/// A temporary directory and a cache file path inside it.
const TempCache = struct {
    tmp: testing.TmpDir,
    path: []const u8,

    fn init(name: []const u8) !TempCache {
        var tmp = testing.tmpDir(.{});
        errdefer tmp.cleanup();
        var dir_buf: [std.fs.max_path_bytes]u8 = undefined;
        const dir = try tmp.dir.realpath(".", &dir_buf);
        const path = try std.fs.path.join(testing.allocator, &.{ dir, name });
        return .{ .tmp = tmp, .path = path };
    }

    fn deinit(self: *TempCache) void {
        testing.allocator.free(self.path);
        self.tmp.cleanup();
    }
};

fn memory(options: backlite.Options) !Storage {
    return Storage.open(":memory:", options);
}

fn expectValue(cache: *Storage, key: []const u8, expected: ?[]const u8) !void {
    const got = try cache.get(testing.allocator, key);
    defer if (got) |v| testing.allocator.free(v);
    if (expected) |e| {
        try testing.expect(got != null);
        try testing.expectEqualSlices(u8, e, got.?);
    } else {
        try testing.expect(got == null);
    }
}

test "header and library versions agree" {
    try testing.expectEqualStrings(backlite.header_version, backlite.version());
}

test "the test binary uses the library it was built against" {
    if (@import("builtin").os.tag != .linux) return error.SkipZigTest;
    const maps = try std.fs.cwd().readFileAlloc(testing.allocator, "/proc/self/maps", 1 << 24);
    defer testing.allocator.free(maps);
    var lines = std.mem.tokenizeScalar(u8, maps, '\n');
    var mapped = false;
    while (lines.next()) |line| {
        const at = std.mem.indexOf(u8, line, "/libbacklite") orelse continue;
        const start = std.mem.indexOfScalar(u8, line, '/').?;
        mapped = true;
        // A shared library from the directory the build was told about (or its stage).
        try testing.expect(!link.static);
        try testing.expectEqualStrings(link.lib_dir, line[start..at]);
    }
    try testing.expectEqual(!link.static, mapped);
}

test "set then get returns an owned copy; a miss is null" {
    var cache = try memory(.{});
    defer cache.deinit();
    try cache.set("greeting", "hello", .never);
    const v = (try cache.get(testing.allocator, "greeting")).?;
    defer testing.allocator.free(v);
    try testing.expectEqualStrings("hello", v);
    try testing.expect(try cache.get(testing.allocator, "absent") == null);
}

test "empty key and empty value are valid" {
    var cache = try memory(.{});
    defer cache.deinit();
    try cache.set("", "", .never);
    try expectValue(&cache, "", "");
    try testing.expect(try cache.contains(""));
}

test "binary keys and values round-trip byte for byte" {
    var cache = try memory(.{});
    defer cache.deinit();
    const key = [_]u8{ 0, 1, 2, 0xff, 0 };
    var value: [1000]u8 = undefined;
    for (&value, 0..) |*b, i| b.* = @truncate(i * 7);
    try cache.set(&key, &value, .default);
    try expectValue(&cache, &key, &value);
}

test "getItem reports the time left, or null for never" {
    var cache = try memory(.{});
    defer cache.deinit();
    try cache.set("forever", "a", .never);
    try cache.set("minute", "b", .{ .ms = 60_000 });
    const forever = (try cache.getItem(testing.allocator, "forever")).?;
    defer forever.deinit(testing.allocator);
    try testing.expect(forever.expires_in_ms == null);
    const minute = (try cache.getItem(testing.allocator, "minute")).?;
    defer minute.deinit(testing.allocator);
    try testing.expectEqualStrings("b", minute.value);
    try testing.expect(minute.expires_in_ms.? > 50_000 and minute.expires_in_ms.? <= 60_000);
    try testing.expect(try cache.getItem(testing.allocator, "absent") == null);
}

test "expiration 0 stores nothing; default expiration applies to .default" {
    var cache = try memory(.{ .default_expiration_ms = 0 });
    defer cache.deinit();
    try cache.set("now", "x", .{ .ms = 0 });
    try testing.expect(!try cache.contains("now"));
    try cache.set("dflt", "x", .default);
    try testing.expect(!try cache.contains("dflt"));
    try cache.set("kept", "x", .never);
    try testing.expect(try cache.contains("kept"));
}

test "setMany writes every entry" {
    var cache = try memory(.{});
    defer cache.deinit();
    try cache.setMany(testing.allocator, &.{
        .{ .key = "a", .value = "1" },
        .{ .key = "b", .value = "22", .expiration = .never },
        .{ .key = "c", .value = "333", .expiration = .{ .ms = 60_000 } },
    });
    try expectValue(&cache, "a", "1");
    try expectValue(&cache, "b", "22");
    try expectValue(&cache, "c", "333");
    try cache.setMany(testing.allocator, &.{});
    try testing.expectEqual(@as(u64, 3), (try cache.stats()).count);
}

test "setMany is all or nothing: one too-large value writes nothing" {
    var cache = try memory(.{ .max_size = 4 });
    defer cache.deinit();
    try testing.expectError(error.TooLarge, cache.setMany(testing.allocator, &.{
        .{ .key = "ok", .value = "1" },
        .{ .key = "big", .value = "12345" },
    }));
    try testing.expect(!try cache.contains("ok"));
    try testing.expectEqual(backlite.Code.too_large, cache.lastError().code);
}

test "delete says whether there was an entry" {
    var cache = try memory(.{});
    defer cache.deinit();
    try cache.set("k", "v", .never);
    try testing.expect(try cache.delete("k"));
    try testing.expect(!try cache.delete("k"));
    try expectValue(&cache, "k", null);
}

test "contains is not an access" {
    var cache = try memory(.{});
    defer cache.deinit();
    try cache.set("k", "v", .never);
    try testing.expect(try cache.contains("k"));
    try testing.expect(!try cache.contains("nope"));
    const s = try cache.stats();
    try testing.expectEqual(@as(u64, 0), s.hits);
    try testing.expectEqual(@as(u64, 0), s.misses);
}

test "misses leave nothing to free (run_tests.sh runs this suite under valgrind)" {
    // A miss is an answer: the library allocates no error object for it, and the
    // wrapper frees one all the same. 3,000 misses leaking one each would be 3,000
    // blocks definitely lost.
    var cache = try memory(.{});
    defer cache.deinit();
    for (0..1000) |_| {
        try testing.expect(try cache.get(testing.allocator, "absent") == null);
        try testing.expect(!try cache.delete("absent"));
        try testing.expect(!try cache.contains("absent"));
    }
    try testing.expectEqual(@as(u64, 1000), (try cache.stats()).misses);
}

fn collectInto(list: *std.ArrayList([]const u8), key: []const u8) !void {
    try list.append(testing.allocator, try testing.allocator.dupe(u8, key));
}

test "keys visits every live key with a context" {
    var cache = try memory(.{});
    defer cache.deinit();
    try cache.set("a", "1", .never);
    try cache.set("b", "2", .never);
    try cache.set("gone", "3", .{ .ms = 0 });
    var list: std.ArrayList([]const u8) = .empty;
    defer {
        for (list.items) |k| testing.allocator.free(k);
        list.deinit(testing.allocator);
    }
    try cache.keys(&list, collectInto);
    std.mem.sort([]const u8, list.items, {}, struct {
        fn lt(_: void, x: []const u8, y: []const u8) bool {
            return std.mem.lessThan(u8, x, y);
        }
    }.lt);
    try testing.expectEqual(@as(usize, 2), list.items.len);
    try testing.expectEqualStrings("a", list.items[0]);
    try testing.expectEqualStrings("b", list.items[1]);
}

test "keys stops when the visitor returns false" {
    var cache = try memory(.{});
    defer cache.deinit();
    for ([_][]const u8{ "a", "b", "c", "d" }) |k| try cache.set(k, "v", .never);
    var seen: usize = 0;
    try cache.keys(&seen, struct {
        fn visit(n: *usize, _: []const u8) bool {
            n.* += 1;
            return n.* < 2;
        }
    }.visit);
    try testing.expectEqual(@as(usize, 2), seen);
}

test "an error from the key visitor stops the walk and is returned" {
    var cache = try memory(.{});
    defer cache.deinit();
    for ([_][]const u8{ "a", "b", "c" }) |k| try cache.set(k, "v", .never);
    var seen: usize = 0;
    try testing.expectError(error.VisitorGaveUp, cache.keys(&seen, struct {
        fn visit(n: *usize, _: []const u8) error{VisitorGaveUp}!void {
            n.* += 1;
            return error.VisitorGaveUp;
        }
    }.visit));
    try testing.expectEqual(@as(usize, 1), seen);
}

test "the key visitor may use the storage" {
    var cache = try memory(.{});
    defer cache.deinit();
    try cache.set("a", "1", .never);
    try cache.set("b", "2", .never);
    try cache.keys(&cache, struct {
        fn visit(s: *Storage, key: []const u8) !void {
            _ = try s.delete(key);
        }
    }.visit);
    try testing.expectEqual(@as(u64, 0), (try cache.stats()).count);
}

test "collectKeys copies every key into the allocator" {
    var cache = try memory(.{});
    defer cache.deinit();
    try cache.set("x", "1", .never);
    try cache.set("y", "2", .never);
    const ks = try cache.collectKeys(testing.allocator);
    defer backlite.freeKeys(testing.allocator, ks);
    try testing.expectEqual(@as(usize, 2), ks.len);
}

fn collectAndFreeKeys(allocator: std.mem.Allocator, cache: *Storage) !void {
    const ks = try cache.collectKeys(allocator);
    backlite.freeKeys(allocator, ks);
}

test "collectKeys frees what it copied when an allocation fails" {
    var cache = try memory(.{});
    defer cache.deinit();
    for ([_][]const u8{ "a", "b", "c", "d", "e" }) |k| try cache.set(k, "v", .never);
    // Each allocation in turn fails: error.OutOfMemory, and nothing leaked or freed twice.
    try testing.checkAllAllocationFailures(testing.allocator, collectAndFreeKeys, .{&cache});
}

/// Each call that takes an allocator, one after the other, for checkAllAllocationFailures.
fn everyAllocatingCall(allocator: std.mem.Allocator, cache: *Storage) !void {
    if (try cache.get(allocator, "k")) |v| allocator.free(v);
    if (try cache.getItem(allocator, "k")) |item| item.deinit(allocator);
    const Compute = struct {
        fn compute(w: *std.Io.Writer) !void {
            try w.writeAll("computed");
        }
    };
    allocator.free(try cache.cached(allocator, "c", .{}, Compute.compute));
    allocator.free(try cache.cachedExclusive(allocator, "x", .{}, Compute.compute));
    switch (try cache.tryAcquire(allocator, "k", 1000)) {
        .hit => |v| allocator.free(v),
        .lease => |held| {
            var lease = held;
            lease.abandon();
        },
        .held => {},
    }
    switch (try cache.leaseStep(allocator, "k", 0)) {
        .hit => |v| allocator.free(v),
        .lease => |held| {
            var lease = held;
            lease.abandon();
        },
        .wait => {},
    }
    try cache.setMany(allocator, &.{ .{ .key = "m1", .value = "v" }, .{ .key = "m2", .value = "w" } });
    var buf: [16]u8 = undefined;
    var r = (try cache.reader("k", &buf)).?;
    defer r.deinit();
    allocator.free(try r.interface.allocRemaining(allocator, .unlimited));
}

test "every call that takes an allocator frees what it took when an allocation fails" {
    var cache = try memory(.{});
    defer cache.deinit();
    const big = try patterned(100_000);
    defer testing.allocator.free(big);
    try cache.set("k", big, .never);
    // Each allocation in turn fails: error.OutOfMemory, and nothing leaked (the library's
    // buffers included: run_tests.sh runs this under valgrind) or freed twice.
    try testing.checkAllAllocationFailures(testing.allocator, everyAllocatingCall, .{&cache});
}

test "clear removes everything" {
    var cache = try memory(.{});
    defer cache.deinit();
    try cache.set("a", "1", .never);
    try cache.set("b", "2", .never);
    try cache.clear();
    try testing.expectEqual(@as(u64, 0), (try cache.stats()).count);
    try expectValue(&cache, "a", null);
}

test "stats counts entries, sizes, hits, misses and evictions" {
    var cache = try memory(.{ .max_size = 10 });
    defer cache.deinit();
    try cache.set("a", "12345", .never);
    try cache.set("b", "12345", .never);
    try expectValue(&cache, "a", "12345");
    try expectValue(&cache, "zz", null);
    try cache.set("c", "123", .never); // evicts b, the least recently used
    const s = try cache.stats();
    try testing.expectEqual(@as(u64, 2), s.count);
    try testing.expectEqual(@as(u64, 8), s.total_size);
    try testing.expectEqual(@as(u64, 10), s.max_size);
    try testing.expectEqual(@as(u64, 1), s.hits);
    try testing.expectEqual(@as(u64, 1), s.misses);
    try testing.expectEqual(@as(u64, 1), s.evictions);
    try testing.expect(!try cache.contains("b"));
}

test "every eviction policy can be chosen, by value or by name" {
    inline for (std.meta.fields(backlite.EvictionPolicy)) |f| {
        const p: backlite.EvictionPolicy = @enumFromInt(f.value);
        try testing.expectEqual(p, backlite.EvictionPolicy.fromName(p.name()).?);
        var cache = try memory(.{ .eviction_policy = p, .max_size = 2 });
        defer cache.deinit();
        try cache.set("a", "1", .never);
        try cache.set("b", "2", .never);
        try cache.set("c", "3", .never);
        try testing.expectEqual(@as(u64, 2), (try cache.stats()).count);
    }
    try testing.expect(backlite.EvictionPolicy.fromName("random") == null);
}

test "fifo evicts the entry set earliest" {
    var cache = try memory(.{ .eviction_policy = .first_in_first_out, .max_size = 2 });
    defer cache.deinit();
    try cache.set("a", "1", .never);
    try cache.set("b", "2", .never);
    try expectValue(&cache, "a", "1");
    try cache.set("c", "3", .never);
    try testing.expect(!try cache.contains("a"));
    try testing.expect(try cache.contains("b"));
}

test "lifetime stats count every handle of the file, and zeroStats starts them again" {
    var t = try TempCache.init("lifetime.db");
    defer t.deinit();
    {
        var a = try Storage.open(t.path, .{});
        defer a.deinit();
        var b = try Storage.open(t.path, .{});
        defer b.deinit();
        try a.set("k", "v", .never);
        try expectValue(&a, "k", "v");
        try expectValue(&b, "k", "v");
        try expectValue(&b, "missing", null);
    }
    var cache = try Storage.open(t.path, .{});
    defer cache.deinit();
    const life = try cache.lifetimeStats();
    try testing.expectEqual(@as(u64, 2), life.hits);
    try testing.expectEqual(@as(u64, 1), life.misses);
    try testing.expect(life.since_ms > 0 and life.since_ms <= std.time.milliTimestamp());
    try testing.expectEqual(@as(u64, 0), (try cache.stats()).hits); // a new handle's own
    try cache.zeroStats();
    const zeroed = try cache.lifetimeStats();
    try testing.expectEqual(@as(u64, 0), zeroed.hits);
    try testing.expectEqual(@as(u64, 0), zeroed.misses);
    try testing.expect(zeroed.since_ms >= life.since_ms);
}

test "the lease_ms option sets how long cachedExclusive's claim lasts" {
    var t = try TempCache.init("lease_ms.db");
    defer t.deinit();
    var owner = try Storage.open(t.path, .{ .lease_ms = 600_000 });
    defer owner.deinit();
    var other = try Storage.open(t.path, .{});
    defer other.deinit();
    // While the owner computes, another handle sees the key held, with the owner's
    // lease length left (the default would leave at most 30 s).
    const Probe = struct {
        other: *Storage,
        held_ms: ?u64 = null,
        pub fn compute(self: *@This(), w: *std.Io.Writer) !void {
            switch (try self.other.tryAcquire(testing.allocator, "k", 1_000)) {
                .held => |left| self.held_ms = left,
                .hit => |v| testing.allocator.free(v),
                .lease => |l| {
                    var lease = l;
                    lease.abandon();
                },
            }
            try w.writeAll("v");
        }
    };
    var probe: Probe = .{ .other = &other };
    const v = try owner.cachedExclusive(testing.allocator, "k", .{}, &probe);
    defer testing.allocator.free(v);
    try testing.expect(probe.held_ms != null);
    try testing.expect(probe.held_ms.? > 300_000);
    try testing.expectError(error.InvalidArgument, memory(.{ .lease_ms = 0 }));
}

/// Whether `name` is a value file's (v2-*.blv, or v-*.blv of format 1).
fn isValueFile(name: []const u8) bool {
    return (std.mem.startsWith(u8, name, "v2-") or std.mem.startsWith(u8, name, "v-")) and
        std.mem.endsWith(u8, name, ".blv");
}

/// The record (magic, length, CRC-32) that follows a value in its file (v2-*.blv).
const value_record_len = 24;

/// How many value files the cache at `path` has in its folder.
fn valueFiles(path: []const u8) !usize {
    const folder = try std.fmt.allocPrint(testing.allocator, "{s}.values", .{path});
    defer testing.allocator.free(folder);
    var dir = std.fs.openDirAbsolute(folder, .{ .iterate = true }) catch |e| switch (e) {
        error.FileNotFound => return 0,
        else => return e,
    };
    defer dir.close();
    var n: usize = 0;
    var it = dir.iterate();
    while (try it.next()) |entry| {
        if (isValueFile(entry.name)) n += 1;
    }
    return n;
}

test "a value above file_threshold lives in a file and reads back" {
    var t = try TempCache.init("files.db");
    defer t.deinit();
    var cache = try Storage.open(t.path, .{ .file_threshold = .{ .bytes = 4096 } });
    defer cache.deinit();
    const large = try testing.allocator.alloc(u8, 300 * 1024);
    defer testing.allocator.free(large);
    for (large, 0..) |*b, i| b.* = @truncate(i *% 31 +% 1);
    try cache.set("small", "s" ** 4095, .never);
    try testing.expectEqual(@as(usize, 0), try valueFiles(t.path));
    try cache.set("large", large, .never);
    try testing.expectEqual(@as(usize, 1), try valueFiles(t.path));
    try expectValue(&cache, "large", large);
    try expectValue(&cache, "small", "s" ** 4095);
    var out: std.Io.Writer.Allocating = .init(testing.allocator);
    defer out.deinit();
    try testing.expect(try cache.getTo("large", &out.writer));
    try testing.expectEqualSlices(u8, large, out.written());
    try testing.expect(try cache.delete("large"));
    try testing.expectEqual(@as(usize, 0), try valueFiles(t.path));

    var never_dir = try TempCache.init("never.db");
    defer never_dir.deinit();
    var never = try Storage.open(never_dir.path, .{ .file_threshold = .never });
    defer never.deinit();
    try never.set("large", large, .never);
    try expectValue(&never, "large", large);
    try testing.expectEqual(@as(usize, 0), try valueFiles(never_dir.path));

    try testing.expectError(error.InvalidArgument, memory(.{ .file_threshold = .{ .bytes = 0 } }));
    try testing.expectError(error.InvalidArgument, memory(.{ .file_threshold = .{ .bytes = 1 << 63 } }));
}

test "getTo writes a value in chunks to any writer, and a miss writes nothing" {
    var cache = try memory(.{});
    defer cache.deinit();
    // Larger than one chunk (256 KiB), with a pattern that shows misordered chunks.
    const value = try testing.allocator.alloc(u8, 600 * 1024 + 7);
    defer testing.allocator.free(value);
    for (value, 0..) |*b, i| b.* = @truncate(i *% 31 +% i / 4096);
    try cache.set("big", value, .never);
    var out: std.Io.Writer.Allocating = .init(testing.allocator);
    defer out.deinit();
    try testing.expect(try cache.getTo("big", &out.writer));
    try testing.expectEqualSlices(u8, value, out.written());

    out.clearRetainingCapacity();
    try testing.expect(!try cache.getTo("missing", &out.writer));
    try testing.expectEqual(@as(usize, 0), out.written().len);

    try cache.set("empty", "", .never);
    try testing.expect(try cache.getTo("empty", &out.writer));
    try testing.expectEqual(@as(usize, 0), out.written().len);
}

test "getTo returns the writer's own error" {
    var cache = try memory(.{});
    defer cache.deinit();
    try cache.set("k", "more than four bytes", .never);
    var small: [4]u8 = undefined;
    var fixed: std.Io.Writer = .fixed(&small);
    try testing.expectError(error.WriteFailed, cache.getTo("k", &fixed));
    try testing.expect(try cache.contains("k")); // the entry is kept
}

test "check and vacuum run on a healthy file" {
    var cache = try memory(.{});
    defer cache.deinit();
    try cache.set("a", "1", .never);
    const rep = try cache.check(false);
    try testing.expect(rep.healthy and rep.integrity_ok and !rep.repaired);
    try testing.expectEqual(@as(u64, 1), rep.entries);
    try cache.vacuum();
}

// ---- errors, with codes and messages ----

test "a too-large value is error.TooLarge with code and message, and removes the old value" {
    var cache = try memory(.{ .max_size = 4 });
    defer cache.deinit();
    try cache.set("k", "old", .never);
    try testing.expectError(error.TooLarge, cache.set("k", "too long", .never));
    const d = cache.lastError();
    try testing.expectEqual(backlite.Code.too_large, d.code);
    try testing.expectEqual(@as(i32, 8), @intFromEnum(d.code));
    try testing.expect(d.message().len > 0);
    try expectValue(&cache, "k", null);
    var buf: [600]u8 = undefined;
    const text = try std.fmt.bufPrint(&buf, "{f}", .{d});
    try testing.expect(std.mem.endsWith(u8, text, "(code 8)"));
}

test "a file that is not a cache is error.NotACache, and is left untouched" {
    var t = try TempCache.init("notes.txt");
    defer t.deinit();
    const content = "just some text, not a database at all\n" ** 4;
    try t.tmp.dir.writeFile(.{ .sub_path = "notes.txt", .data = content });
    var diags: backlite.Diagnostics = .{};
    try testing.expectError(error.NotACache, Storage.open(t.path, .{ .diags = &diags }));
    try testing.expectEqual(backlite.Code.not_a_cache, diags.code);
    try testing.expect(diags.message().len > 0);
    const after = try t.tmp.dir.readFileAlloc(testing.allocator, "notes.txt", 1 << 16);
    defer testing.allocator.free(after);
    try testing.expectEqualStrings(content, after);
}

test "a directory is error.Io" {
    var t = try TempCache.init("");
    defer t.deinit();
    var diags: backlite.Diagnostics = .{};
    try testing.expectError(error.Io, Storage.open(t.path, .{ .diags = &diags }));
    try testing.expectEqual(backlite.Code.io, diags.code);
}

test "a path longer than the system takes is error.Io, as from C; a NUL in it is InvalidArgument" {
    // It was error.InvalidArgument ("path too long") before it reached the library,
    // where C, Go and C++ get IO for the same path.
    const long = try testing.allocator.alloc(u8, std.fs.max_path_bytes + 100);
    defer testing.allocator.free(long);
    @memset(long, 'a');
    var diags: backlite.Diagnostics = .{};
    try testing.expectError(error.Io, Storage.open(long, .{ .diags = &diags }));
    try testing.expectEqual(backlite.Code.io, diags.code);
    try testing.expectError(error.InvalidArgument, Storage.open("a\x00b.db", .{ .diags = &diags }));
    try testing.expectEqual(backlite.Code.invalid_argument, diags.code);
}

test "a missing parent folder is error.Io" {
    var t = try TempCache.init("no/such/dir/cache.db");
    defer t.deinit();
    try testing.expectError(error.Io, Storage.open(t.path, .{}));
}

test "a message cut to max_message_len is still valid UTF-8" {
    // The library's message names the path; one of 300 two-byte characters makes it
    // longer than Diagnostics keeps. Two prefixes of different parity: one of them puts
    // the cut inside a character, which was kept half (an invalid byte at the end).
    for ([_][]const u8{ "", "x" }) |prefix| {
        var path: std.ArrayList(u8) = .empty;
        defer path.deinit(testing.allocator);
        try path.appendSlice(testing.allocator, "/no-such-dir-backlite/");
        try path.appendSlice(testing.allocator, prefix);
        for (0..300) |_| try path.appendSlice(testing.allocator, "\xc3\xa9");
        try path.appendSlice(testing.allocator, "/cache.db");
        var diags: backlite.Diagnostics = .{};
        try testing.expectError(error.Io, Storage.open(path.items, .{ .diags = &diags }));
        try testing.expect(diags.message().len > backlite.Diagnostics.max_message_len - 4);
        try testing.expect(std.unicode.utf8ValidateSlice(diags.message()));
    }
}

test "bad options are error.InvalidArgument, with the option named" {
    var diags: backlite.Diagnostics = .{};
    try testing.expectError(error.InvalidArgument, memory(.{ .max_size = 0, .diags = &diags }));
    try testing.expectEqual(backlite.Code.invalid_argument, diags.code);
    try testing.expect(std.mem.indexOf(u8, diags.message(), "max_size") != null);
    try testing.expectError(error.InvalidArgument, Storage.open("bad\x00path", .{}));
    try testing.expectError(error.InvalidArgument, memory(.{ .version_tag = "a\x00b" }));
}

/// The header this wrapper was built against (its text, owned by the caller).
fn readHeader() ![]u8 {
    return std.fs.cwd().readFileAlloc(testing.allocator, link.header, 1 << 20);
}

/// Splits `#define <prefix>NAME VALUE` into NAME and VALUE, or null for another line.
fn define(line: []const u8, comptime prefix: []const u8) !?struct { name: []const u8, value: i32 } {
    if (!std.mem.startsWith(u8, line, "#define " ++ prefix)) return null;
    var words = std.mem.tokenizeScalar(u8, line["#define ".len..], ' ');
    const name = words.next() orelse return null;
    const value = words.next() orelse return null;
    return .{ .name = name[prefix.len..], .value = try std.fmt.parseInt(i32, value, 10) };
}

test "every result code of the header is a Code of the same name and value" {
    const header = try readHeader();
    defer testing.allocator.free(header);
    var seen: usize = 0;
    var lines = std.mem.splitScalar(u8, header, '\n');
    while (lines.next()) |line| {
        const d = (try define(line, "BACKLITE_RESULT_")) orelse continue;
        seen += 1;
        var found: ?[]const u8 = null;
        inline for (std.meta.fields(backlite.Code)) |f| {
            if (f.value == d.value) found = f.name;
        }
        const named = found orelse {
            std.debug.print("BACKLITE_RESULT_{s} ({d}) has no backlite.Code\n", .{ d.name, d.value });
            return error.TestUnexpectedResult;
        };
        if (!std.ascii.eqlIgnoreCase(named, d.name)) {
            std.debug.print("code {d}: the header's {s}, backlite.Code.{s}\n", .{ d.value, d.name, named });
            return error.TestUnexpectedResult;
        }
    }
    try testing.expectEqual(std.meta.fields(backlite.Code).len, seen);
}

test "the eviction policies' names and values are the header's" {
    // Each `#define BACKLITE_EVICTION_POLICY_X n` follows a doc comment opening with the
    // seed's name in quotes: ` * "least-recently-used" (the default): ...`.
    const header = try readHeader();
    defer testing.allocator.free(header);
    var seen: usize = 0;
    var quoted: ?[]const u8 = null;
    var lines = std.mem.splitScalar(u8, header, '\n');
    while (lines.next()) |line| {
        const text = std.mem.trim(u8, line, " ");
        if (std.mem.startsWith(u8, text, "/**")) quoted = null;
        if (std.mem.startsWith(u8, text, "* \"") and quoted == null) {
            const rest = text["* \"".len..];
            if (std.mem.indexOfScalar(u8, rest, '"')) |end| quoted = rest[0..end];
        }
        const d = (try define(line, "BACKLITE_EVICTION_POLICY_")) orelse continue;
        seen += 1;
        const p = std.meta.intToEnum(backlite.EvictionPolicy, d.value) catch {
            std.debug.print("BACKLITE_EVICTION_POLICY_{s} ({d}) has no backlite.EvictionPolicy\n", .{ d.name, d.value });
            return error.TestUnexpectedResult;
        };
        try testing.expect(std.ascii.eqlIgnoreCase(@tagName(p), d.name));
        try testing.expectEqualStrings(quoted orelse return error.TestUnexpectedResult, p.name());
        try testing.expectEqual(p, backlite.EvictionPolicy.fromName(quoted.?).?);
        quoted = null;
    }
    try testing.expectEqual(std.meta.fields(backlite.EvictionPolicy).len, seen);
}

test "every failure code maps to its own error" {
    const pairs = .{
        .{ backlite.Code.null_parameter, error.NullParameter },
        .{ backlite.Code.invalid_argument, error.InvalidArgument },
        .{ backlite.Code.io, error.Io },
        .{ backlite.Code.not_a_cache, error.NotACache },
        .{ backlite.Code.corrupt, error.Corrupt },
        .{ backlite.Code.busy, error.Busy },
        .{ backlite.Code.too_large, error.TooLarge },
        .{ backlite.Code.callback_failed, error.CallbackFailed },
        .{ backlite.Code.incompatible, error.Incompatible },
        .{ backlite.Code.panic, error.Panic },
        .{ backlite.Code.internal, error.Internal },
        .{ backlite.Code.lease_lost, error.LeaseLost },
        .{ backlite.Code.lease_held, error.LeaseHeld },
        .{ @as(backlite.Code, @enumFromInt(999)), error.Unexpected },
    };
    inline for (pairs) |p| {
        try testing.expectEqual(@as(backlite.Error, p[1]), p[0].toError());
        try testing.expect(p[0].description().len > 0);
    }
}

test "a file persists across handles, and a version tag change drops it" {
    var t = try TempCache.init("cache.db");
    defer t.deinit();
    {
        var cache = try Storage.open(t.path, .{ .version_tag = "v1" });
        defer cache.deinit();
        try cache.set("k", "v", .never);
    }
    {
        var cache = try Storage.open(t.path, .{ .version_tag = "v1" });
        defer cache.deinit();
        try expectValue(&cache, "k", "v");
    }
    {
        var cache = try Storage.open(t.path, .{ .version_tag = "v2", .busy_timeout_ms = 1000 });
        defer cache.deinit();
        try expectValue(&cache, "k", null);
    }
}

test "a version tag of any length opens, as the C library takes it" {
    // A tag such as a schema's text or digest list may be kilobytes long; the C
    // library and the other bindings take it as it is.
    var t = try TempCache.init("cache.db");
    defer t.deinit();
    const long = try testing.allocator.alloc(u8, 5000);
    defer testing.allocator.free(long);
    @memset(long, 'a');
    {
        var cache = try Storage.open(t.path, .{ .version_tag = long });
        defer cache.deinit();
        try cache.set("k", "v", .never);
    }
    {
        var cache = try Storage.open(t.path, .{ .version_tag = long });
        defer cache.deinit();
        try expectValue(&cache, "k", "v");
    }
    long[4999] = 'b';
    {
        var cache = try Storage.open(t.path, .{ .version_tag = long });
        defer cache.deinit();
        try expectValue(&cache, "k", null);
    }
    // A NUL is still refused, whatever the length.
    long[10] = 0;
    var diags: backlite.Diagnostics = .{};
    try testing.expectError(error.InvalidArgument, Storage.open(t.path, .{ .version_tag = long, .diags = &diags }));
    try testing.expectEqual(backlite.Code.invalid_argument, diags.code);
}

// ---- memoisation ----

const Counter = struct {
    calls: std.atomic.Value(u32) = .init(0),
    value: []const u8 = "computed",

    pub fn compute(self: *Counter, w: *std.Io.Writer) !void {
        _ = self.calls.fetchAdd(1, .monotonic);
        try w.writeAll(self.value);
    }
};

test "cached computes once, then answers from the cache" {
    var cache = try memory(.{});
    defer cache.deinit();
    var counter: Counter = .{};
    for (0..3) |_| {
        const v = try cache.cached(testing.allocator, "memo", .{}, &counter);
        defer testing.allocator.free(v);
        try testing.expectEqualStrings("computed", v);
    }
    try testing.expectEqual(@as(u32, 1), counter.calls.load(.monotonic));
    try expectValue(&cache, "memo", "computed");
}

fn answer(w: *std.Io.Writer) std.Io.Writer.Error!void {
    try w.print("{d}", .{6 * 7});
}

test "cached takes a plain function" {
    var cache = try memory(.{});
    defer cache.deinit();
    const v = try cache.cached(testing.allocator, "answer", .{ .expiration = .never }, answer);
    defer testing.allocator.free(v);
    try testing.expectEqualStrings("42", v);
}

test "cached writes large values through the writer's buffer" {
    var cache = try memory(.{});
    defer cache.deinit();
    const Big = struct {
        pub fn compute(_: @This(), w: *std.Io.Writer) !void {
            for (0..10_000) |i| try w.print("{d},", .{i});
            try w.splatByteAll('x', 5000);
        }
    };
    const v = try cache.cached(testing.allocator, "big", .{}, Big{});
    defer testing.allocator.free(v);
    try testing.expect(std.mem.startsWith(u8, v, "0,1,2,"));
    try testing.expect(std.mem.endsWith(u8, v, "9999," ++ "x" ** 5000));
    try expectValue(&cache, "big", v);
}

test "cached writes a repeated pattern whole across the sink's blocks" {
    var cache = try memory(.{});
    defer cache.deinit();
    const Repeats = struct {
        pub fn compute(_: @This(), w: *std.Io.Writer) !void {
            try w.writeAll("<");
            try w.splatByteAll('x', 3 * 4096 + 17);
            try w.splatBytesAll("abc", 4096 + 5);
            try w.splatBytesAll("z" ** 3000, 3);
        }
    };
    const v = try cache.cached(testing.allocator, "repeats", .{}, Repeats{});
    defer testing.allocator.free(v);
    const want = "<" ++ "x" ** (3 * 4096 + 17) ++ "abc" ** (4096 + 5) ++ "z" ** 9000;
    try testing.expectEqualStrings(want, v);
    try expectValue(&cache, "repeats", v);
}

const Failing = struct {
    calls: u32 = 0,
    pub fn compute(self: *Failing, w: *std.Io.Writer) error{ WriteFailed, ComputeBroke }!void {
        self.calls += 1;
        try w.writeAll("partial");
        return error.ComputeBroke;
    }
};

test "a failing compute returns its own error and stores nothing" {
    var cache = try memory(.{});
    defer cache.deinit();
    var f: Failing = .{};
    try testing.expectError(error.ComputeBroke, cache.cached(testing.allocator, "k", .{}, &f));
    try testing.expect(!try cache.contains("k"));
    try testing.expectEqual(backlite.Code.callback_failed, cache.lastError().code);
    try testing.expectEqualStrings("ComputeBroke", cache.lastError().message());
    // Nothing was cached, so the next call computes again.
    try testing.expectError(error.ComputeBroke, cache.cached(testing.allocator, "k", .{}, &f));
    try testing.expectEqual(@as(u32, 2), f.calls);
    try testing.expectError(error.ComputeBroke, cache.cachedExclusive(testing.allocator, "k", .{}, &f));
    try testing.expect(!try cache.contains("k"));
}

test "a computed value too large to store is still returned" {
    var cache = try memory(.{ .max_size = 3 });
    defer cache.deinit();
    var counter: Counter = .{ .value = "much too long" };
    const v = try cache.cached(testing.allocator, "k", .{}, &counter);
    defer testing.allocator.free(v);
    try testing.expectEqualStrings("much too long", v);
    try testing.expect(!try cache.contains("k"));
}

test "cached with a mutex barrier computes once across threads" {
    var t = try TempCache.init("barrier.db");
    defer t.deinit();
    var cache = try Storage.open(t.path, .{});
    defer cache.deinit();
    var mutex: std.Thread.Mutex = .{};
    const Slow = struct {
        calls: std.atomic.Value(u32) = .init(0),
        pub fn compute(self: *@This(), w: *std.Io.Writer) !void {
            _ = self.calls.fetchAdd(1, .monotonic);
            std.Thread.sleep(20 * std.time.ns_per_ms);
            try w.writeAll("slow");
        }
    };
    var slow: Slow = .{};
    const Worker = struct {
        fn run(s: *Storage, m: *std.Thread.Mutex, ctx: *Slow, ok: *std.atomic.Value(u32)) void {
            const v = s.cached(std.heap.page_allocator, "shared", .{ .barrier = m }, ctx) catch return;
            defer std.heap.page_allocator.free(v);
            if (std.mem.eql(u8, v, "slow")) _ = ok.fetchAdd(1, .monotonic);
        }
    };
    var ok: std.atomic.Value(u32) = .init(0);
    var threads: [4]std.Thread = undefined;
    for (&threads) |*th| th.* = try std.Thread.spawn(.{}, Worker.run, .{ &cache, &mutex, &slow, &ok });
    for (threads) |th| th.join();
    try testing.expectEqual(@as(u32, 4), ok.load(.monotonic));
    try testing.expectEqual(@as(u32, 1), slow.calls.load(.monotonic));
}

test "cached under a barrier its own thread holds is error.CallbackFailed, not a wait for ever" {
    var cache = try memory(.{});
    defer cache.deinit();
    // One barrier for every key, and a compute that uses another cached value.
    var mutex: std.Thread.Mutex = .{};
    var other: std.Thread.Mutex = .{};
    const Outer = struct {
        cache: *Storage,
        mutex: *std.Thread.Mutex,
        other: *std.Thread.Mutex,
        inner_computed: bool = false,
        inner_message: [backlite.Diagnostics.max_message_len]u8 = undefined,
        inner_message_len: usize = 0,

        fn inner(w: *std.Io.Writer) !void {
            try w.writeAll("i");
        }

        pub fn compute(self: *@This(), w: *std.Io.Writer) !void {
            // Another barrier inside is a lock of its own.
            const o = try self.cache.cached(testing.allocator, "other", .{ .barrier = self.other }, inner);
            defer testing.allocator.free(o);
            const v = self.cache.cached(testing.allocator, "inner", .{ .barrier = self.mutex }, inner) catch |e| {
                const m = self.cache.lastError().message();
                @memcpy(self.inner_message[0..m.len], m);
                self.inner_message_len = m.len;
                return e;
            };
            defer testing.allocator.free(v);
            self.inner_computed = true;
            try w.writeAll(v);
        }
    };
    var outer: Outer = .{ .cache = &cache, .mutex = &mutex, .other = &other };
    try testing.expectError(error.CallbackFailed, cache.cached(testing.allocator, "outer", .{ .barrier = &mutex }, &outer));
    try testing.expect(!outer.inner_computed);
    try testing.expect(std.mem.indexOf(u8, outer.inner_message[0..outer.inner_message_len], "barrier") != null);
    try testing.expect(!(try cache.contains("outer")));
    try testing.expect(!(try cache.contains("inner")));
    try testing.expect(try cache.contains("other"));
    // Both barriers were released: the next calls lock them and compute.
    const v = try cache.cached(testing.allocator, "inner", .{ .barrier = &mutex }, Outer.inner);
    defer testing.allocator.free(v);
    try testing.expectEqualStrings("i", v);
    try testing.expect(mutex.tryLock());
    mutex.unlock();
    try testing.expect(other.tryLock());
    other.unlock();
}

test "a thread that ends with pthread_exit inside a compute ends cleanly, as in a C program" {
    if (@import("builtin").os.tag != .linux) return error.SkipZigTest;
    // glibc runs the thread's end as a forced unwind with libgcc_s, through the
    // library's frames: a static program must link libgcc_s's unwinder too (build.zig).
    var cache = try memory(.{});
    defer cache.deinit();
    const Exit = struct {
        extern "c" fn pthread_exit(value: ?*anyopaque) noreturn;
        fn compute(w: *std.Io.Writer) !void {
            _ = w;
            pthread_exit(null);
        }
        fn run(arg: ?*anyopaque) callconv(.c) ?*anyopaque {
            const c: *Storage = @ptrCast(@alignCast(arg.?));
            const v = c.cached(std.heap.c_allocator, "k", .{}, compute) catch return null;
            std.heap.c_allocator.free(v);
            return null;
        }
    };
    var thread: std.c.pthread_t = undefined;
    try testing.expectEqual(std.c.E.SUCCESS, std.c.pthread_create(&thread, null, Exit.run, &cache));
    try testing.expectEqual(std.c.E.SUCCESS, std.c.pthread_join(thread, null));
    // Nothing was stored, and the handle serves calls as before.
    try testing.expect(!try cache.contains("k"));
    try cache.set("k", "v", .never);
    try expectValue(&cache, "k", "v");
    var counter: Counter = .{ .value = "computed" };
    const v = try cache.cached(testing.allocator, "c", .{}, &counter);
    defer testing.allocator.free(v);
    try testing.expectEqualStrings("computed", v);
}

test "cachedExclusive computes once across threads with their own handles" {
    var t = try TempCache.init("exclusive.db");
    defer t.deinit();
    const Slow = struct {
        calls: std.atomic.Value(u32) = .init(0),
        pub fn compute(self: *@This(), w: *std.Io.Writer) !void {
            _ = self.calls.fetchAdd(1, .monotonic);
            std.Thread.sleep(50 * std.time.ns_per_ms);
            try w.writeAll("once");
        }
    };
    var slow: Slow = .{};
    const Worker = struct {
        fn run(path: []const u8, ctx: *Slow, ok: *std.atomic.Value(u32)) void {
            var s = Storage.open(path, .{}) catch return;
            defer s.deinit();
            const v = s.cachedExclusive(std.heap.page_allocator, "report", .{ .wait_timeout_ms = 10_000 }, ctx) catch return;
            defer std.heap.page_allocator.free(v);
            if (std.mem.eql(u8, v, "once")) _ = ok.fetchAdd(1, .monotonic);
        }
    };
    var ok: std.atomic.Value(u32) = .init(0);
    var threads: [4]std.Thread = undefined;
    for (&threads) |*th| th.* = try std.Thread.spawn(.{}, Worker.run, .{ t.path, &slow, &ok });
    for (threads) |th| th.join();
    try testing.expectEqual(@as(u32, 4), ok.load(.monotonic));
    try testing.expectEqual(@as(u32, 1), slow.calls.load(.monotonic));
}

test "cachedExclusive gives error.LeaseHeld and the time left while another owner holds the key" {
    var cache = try memory(.{});
    defer cache.deinit();
    var acquired = try cache.tryAcquire(testing.allocator, "k", 30_000);
    try testing.expect(acquired == .lease);
    defer acquired.lease.abandon();
    var counter: Counter = .{};
    try testing.expectError(error.LeaseHeld, cache.cachedExclusive(testing.allocator, "k", .{ .wait_timeout_ms = 0 }, &counter));
    try testing.expectEqual(backlite.Code.lease_held, cache.lastError().code);
    const left = cache.lastError().lease_time_left_ms.?;
    try testing.expect(left > 0 and left <= 30_000);
    try testing.expectEqual(@as(u32, 0), counter.calls.load(.monotonic));
}

test "cachedExclusive of the key being computed, from inside its compute, computes at once" {
    // Through the same Storage, another Storage of the same file, the file through a
    // link (the lease is the file's): the inner call computes at once and stores
    // nothing, the outer one stores its value. Before, the inner call waited its whole
    // wait_timeout_ms for the lease its own caller held, then was error.LeaseHeld.
    var t = try TempCache.init("c.db");
    defer t.deinit();
    const link_path = try std.fmt.allocPrint(testing.allocator, "{s}.link", .{t.path});
    defer testing.allocator.free(link_path);
    try std.fs.symLinkAbsolute(t.path, link_path, .{});
    var a = try Storage.open(t.path, .{});
    defer a.deinit();
    var b = try Storage.open(t.path, .{});
    defer b.deinit();
    var linked = try Storage.open(link_path, .{});
    defer linked.deinit();
    const Inner = struct {
        pub fn compute(_: @This(), w: *std.Io.Writer) !void {
            try w.writeAll("inner");
        }
    };
    const Outer = struct {
        inner: *Storage,
        key: []const u8,
        got: ?[]u8 = null,
        pub fn compute(self: *@This(), w: *std.Io.Writer) !void {
            self.got = try self.inner.cachedExclusive(testing.allocator, self.key, .{ .wait_timeout_ms = 10_000 }, Inner{});
            try w.writeAll("outer");
        }
    };
    for ([_]*Storage{ &a, &b, &linked }, [_][]const u8{ "fib a", "fib b", "fib link" }) |inner, key| {
        var outer: Outer = .{ .inner = inner, .key = key };
        defer if (outer.got) |g| testing.allocator.free(g);
        const v = try a.cachedExclusive(testing.allocator, key, .{ .wait_timeout_ms = 60_000 }, &outer);
        defer testing.allocator.free(v);
        try testing.expectEqualStrings("outer", v);
        try testing.expectEqualStrings("inner", outer.got.?);
        try expectValue(&a, key, "outer");
    }
}

// ---- the two-phase lease API ----

test "tryAcquire: a miss gives a lease, others find it held, fulfill stores, then a hit" {
    var cache = try memory(.{});
    defer cache.deinit();
    var first = try cache.tryAcquire(testing.allocator, "k", 30_000);
    try testing.expect(first == .lease);
    defer first.lease.abandon(); // does nothing after fulfill
    const held = try cache.tryAcquire(testing.allocator, "k", 30_000);
    try testing.expect(held == .held and held.held > 0 and held.held <= 30_000);
    try first.lease.extend(60_000);
    try first.lease.fulfill("value", .never);
    const hit = try cache.tryAcquire(testing.allocator, "k", 30_000);
    try testing.expect(hit == .hit);
    defer testing.allocator.free(hit.hit);
    try testing.expectEqualStrings("value", hit.hit);
}

test "an abandoned lease lets the next caller compute" {
    var cache = try memory(.{});
    defer cache.deinit();
    var first = try cache.tryAcquire(testing.allocator, "k", 30_000);
    first.lease.abandon();
    var second = try cache.tryAcquire(testing.allocator, "k", 30_000);
    try testing.expect(second == .lease);
    second.lease.abandon();
    try testing.expect(!try cache.contains("k"));
}

test "a lease taken over is error.LeaseLost and stores nothing" {
    var cache = try memory(.{});
    defer cache.deinit();
    var stale = try cache.tryAcquire(testing.allocator, "k", 1);
    defer stale.lease.abandon();
    // Wait out the 1 ms deadline, then another owner takes the key over.
    var next: backlite.Acquired = .{ .held = 0 };
    for (0..1000) |_| {
        next = try cache.tryAcquire(testing.allocator, "k", 30_000);
        if (next == .lease) break;
        std.Thread.sleep(2 * std.time.ns_per_ms);
    }
    try testing.expect(next == .lease);
    defer next.lease.abandon();
    try testing.expectError(error.LeaseLost, stale.lease.extend(1000));
    try testing.expectError(error.LeaseLost, stale.lease.fulfill("stale", .never));
    try testing.expectEqual(backlite.Code.lease_lost, stale.lease.lastError().code);
    try testing.expect(!try cache.contains("k"));
    try next.lease.fulfill("fresh", .never);
    try expectValue(&cache, "k", "fresh");
}

test "a lease outlives its storage handle" {
    var t = try TempCache.init("lease.db");
    defer t.deinit();
    var cache = try Storage.open(t.path, .{});
    var acquired = try cache.tryAcquire(testing.allocator, "k", 30_000);
    cache.deinit();
    try acquired.lease.fulfill("late", .never);
    var again = try Storage.open(t.path, .{});
    defer again.deinit();
    try expectValue(&again, "k", "late");
}

test "leaseStep: a miss gives the lease, a held key the back-off, a fulfilled one the value" {
    var cache = try memory(.{});
    defer cache.deinit();
    var first = try cache.leaseStep(testing.allocator, "k", 0);
    try testing.expect(first == .lease);
    defer first.lease.abandon(); // does nothing after fulfill
    // The pause grows with the attempt, 1 ms doubling to 50 ms.
    for ([_]u32{ 0, 3, 20 }, [_]u64{ 1, 8, 50 }) |attempt, pause| {
        const step = try cache.leaseStep(testing.allocator, "k", attempt);
        try testing.expect(step == .wait);
        try testing.expectEqual(pause, step.wait.retry_in_ms);
        try testing.expect(step.wait.time_left_ms > 0);
    }
    try first.lease.fulfill("computed", .never);
    const hit = try cache.leaseStep(testing.allocator, "k", 4);
    try testing.expect(hit == .hit);
    defer testing.allocator.free(hit.hit);
    try testing.expectEqualStrings("computed", hit.hit);
}

test "leaseStep: only the first step of a wait counts a miss" {
    var cache = try memory(.{});
    defer cache.deinit();
    var owner = try cache.leaseStep(testing.allocator, "k", 0);
    try testing.expect(owner == .lease);
    defer owner.lease.abandon();
    const before = (try cache.stats()).misses;
    for (0..5) |attempt| try testing.expect(try cache.leaseStep(testing.allocator, "k", @intCast(attempt)) == .wait);
    try testing.expectEqual(before + 1, (try cache.stats()).misses);
}

test "leaseStep: the library renews a stepped lease until it is fulfilled" {
    var t = try TempCache.init("step.db");
    defer t.deinit();
    var owner = try Storage.open(t.path, .{ .lease_ms = 600 });
    defer owner.deinit();
    var other = try Storage.open(t.path, .{});
    defer other.deinit();
    var step = try owner.leaseStep(testing.allocator, "k", 0);
    try testing.expect(step == .lease);
    defer step.lease.abandon();
    // Three lease lengths: a lease nobody renewed would have run out (tryAcquire's does).
    std.Thread.sleep(1800 * std.time.ns_per_ms);
    try testing.expect(try other.tryAcquire(testing.allocator, "k", 30_000) == .held);
    try step.lease.fulfill("v", .never);
    try expectValue(&other, "k", "v");
}

test "leaseStep: a waiter stepping finds the value another thread's lease fulfilled" {
    var t = try TempCache.init("wait.db");
    defer t.deinit();
    var owner = try Storage.open(t.path, .{});
    defer owner.deinit();
    var waiter = try Storage.open(t.path, .{});
    defer waiter.deinit();
    var held = try owner.leaseStep(testing.allocator, "k", 0);
    try testing.expect(held == .lease);
    defer held.lease.abandon();
    const Owner = struct {
        fn run(lease: *backlite.Lease) !void {
            std.Thread.sleep(100 * std.time.ns_per_ms);
            try lease.fulfill("from the owner", .never);
        }
    };
    const thread = try std.Thread.spawn(.{}, Owner.run, .{&held.lease});
    var attempt: u32 = 0;
    const got = while (true) : (attempt += 1) {
        switch (try waiter.leaseStep(testing.allocator, "k", attempt)) {
            .hit => |v| break v,
            .lease => |l| {
                var lease = l;
                lease.abandon();
                thread.join();
                return error.TestUnexpectedResult; // the waiter took the lease over
            },
            .wait => |w| {
                try testing.expect(w.retry_in_ms > 0);
                std.Thread.sleep(w.retry_in_ms * std.time.ns_per_ms);
            },
        }
    };
    thread.join();
    defer testing.allocator.free(got);
    try testing.expectEqualStrings("from the owner", got);
}

/// A private redis-server on a free loopback port in `dir`; kill it with `stopRedis`.
fn startRedis(dir: []const u8, port_out: *u16) !std.process.Child {
    const any = try std.net.Address.parseIp("127.0.0.1", 0);
    var probe = try any.listen(.{});
    const port = probe.listen_address.getPort();
    probe.deinit();
    var port_buf: [8]u8 = undefined;
    const port_text = try std.fmt.bufPrint(&port_buf, "{d}", .{port});
    const argv = [_][]const u8{ "redis-server", "--port", port_text, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir, "--logfile", "redis.log" };
    var child = std.process.Child.init(&argv, testing.allocator);
    child.stdin_behavior = .Ignore;
    child.stdout_behavior = .Ignore;
    child.stderr_behavior = .Ignore;
    try child.spawn();
    const addr = try std.net.Address.parseIp("127.0.0.1", port);
    var tries: usize = 0;
    while (tries < 2000) : (tries += 1) {
        if (std.net.tcpConnectToAddress(addr)) |conn| {
            conn.close();
            port_out.* = port;
            return child;
        } else |_| std.Thread.sleep(5 * std.time.ns_per_ms);
    }
    _ = child.kill() catch {};
    return error.RedisDidNotStart;
}

test "remote option: two files share values through a real redis-server" {
    var a = try TempCache.init("a.db");
    defer a.deinit();
    var dir_buf: [std.fs.max_path_bytes]u8 = undefined;
    const dir = try a.tmp.dir.realpath(".", &dir_buf);
    var port: u16 = 0;
    var server = try startRedis(dir, &port);
    defer _ = server.kill() catch {};
    var url_buf: [64]u8 = undefined;
    const url = try std.fmt.bufPrint(&url_buf, "redis://127.0.0.1:{d}", .{port});
    const b_path = try std.fs.path.join(testing.allocator, &.{ dir, "b.db" });
    defer testing.allocator.free(b_path);

    var one = try Storage.open(a.path, .{ .remote = url, .remote_namespace = "zig", .remote_timeout_ms = 300, .remote_mode = .read_write });
    defer one.deinit();
    try one.set("k", "shared", .never);
    var two = try Storage.open(b_path, .{ .remote = url, .remote_namespace = "zig", .remote_mode = .read_only });
    defer two.deinit();
    try expectValue(&two, "k", "shared");
    const st = try two.remoteStats();
    try testing.expectEqual(@as(u64, 1), st.hits);
    try testing.expect(st.connected);
    {
        var three = try Storage.open(b_path, .{ .remote = url, .remote_mode = .write_behind });
        three.deinit();
    }
}

test "remote option: bad values are InvalidArgument" {
    try testing.expectError(error.InvalidArgument, memory(.{ .remote = "memcache://h:1" }));
    try testing.expectError(error.InvalidArgument, memory(.{ .remote = "redis://h:x" }));
    try testing.expectError(error.InvalidArgument, memory(.{ .remote_namespace = "a b" }));
    try testing.expectError(error.InvalidArgument, memory(.{ .remote_timeout_ms = 0 }));
}

test "remote option: a remote nobody answers opens, and every call succeeds locally" {
    // Port 1 on the loopback: refused. The reader works too; remoteStats says it.
    const big = try patterned(300 * 1024);
    defer testing.allocator.free(big);
    for ([_]backlite.RemoteMode{ .read_write, .read_only, .write_behind }) |mode| {
        var cache = try memory(.{ .remote = "redis://u:hunter2@127.0.0.1:1", .remote_timeout_ms = 100, .remote_mode = mode });
        defer cache.deinit();
        try cache.set("k", big, .never);
        try expectValue(&cache, "missing", null);
        var buf: [4096]u8 = undefined;
        var r = (try cache.reader("k", &buf)).?;
        defer r.deinit();
        const got = try r.interface.allocRemaining(testing.allocator, .unlimited);
        defer testing.allocator.free(got);
        try testing.expectEqualSlices(u8, big, got);
        const st = try cache.remoteStats();
        try testing.expect(!st.connected);
        try testing.expect(st.errors > 0);
        try testing.expectEqual(@as(u64, 0), st.hits);
    }
}

/// Flips the last byte of the value in the cache's only value file (before its record).
fn damageValueFile(path: []const u8) !void {
    const folder = try std.fmt.allocPrint(testing.allocator, "{s}.values", .{path});
    defer testing.allocator.free(folder);
    var dir = try std.fs.openDirAbsolute(folder, .{ .iterate = true });
    defer dir.close();
    var it = dir.iterate();
    while (try it.next()) |entry| {
        if (!isValueFile(entry.name)) continue;
        var f = try dir.openFile(entry.name, .{ .mode = .read_write });
        defer f.close();
        const end = try f.getEndPos();
        var last: [1]u8 = undefined;
        const at = end - value_record_len - 1;
        try testing.expectEqual(@as(usize, 1), try f.preadAll(&last, at));
        last[0] ^= 1;
        try f.pwriteAll(&last, at);
        return;
    }
    return error.FileNotFound;
}

fn patterned(len: usize) ![]u8 {
    const v = try testing.allocator.alloc(u8, len);
    for (v, 0..) |*b, i| b.* = @truncate(i *% 131 +% 7);
    return v;
}

test "reader streams file and database values through std.Io.Reader" {
    const big = try patterned((1 << 20) + 3);
    defer testing.allocator.free(big);
    for ([_]backlite.FileThreshold{ .{ .bytes = 4096 }, .never }) |threshold| {
        var t = try TempCache.init("c.db");
        defer t.deinit();
        var cache = try Storage.open(t.path, .{ .file_threshold = threshold });
        defer cache.deinit();
        try cache.set("big", big, .{ .ms = 3_600_000 });
        var buf: [4096]u8 = undefined;
        var r = (try cache.reader("big", &buf)).?;
        defer r.deinit();
        try testing.expectEqual(@as(u64, big.len), r.size);
        try testing.expect(r.expires_in_ms.? > 0 and r.expires_in_ms.? <= 3_600_000);
        var out: std.Io.Writer.Allocating = .init(testing.allocator);
        defer out.deinit();
        try testing.expectEqual(big.len, try r.interface.streamRemaining(&out.writer));
        try testing.expectEqualSlices(u8, big, out.written());
        try testing.expect(r.ended and r.err == null);
        try testing.expectError(error.EndOfStream, r.interface.takeByte());
    }
    var cache = try memory(.{});
    defer cache.deinit();
    try cache.set("k", "v", .never);
    var r = (try cache.reader("k", &.{})).?;
    defer r.deinit();
    try testing.expect(r.expires_in_ms == null);
    const st = try cache.stats();
    try testing.expectEqual(@as(u64, 1), st.hits);
}

test "reader: takeDelimiterExclusive, readSliceAll and allocRemaining, buffered or not" {
    var cache = try memory(.{});
    defer cache.deinit();
    try cache.set("lines", "one\ntwo\nthree", .never);
    var buf: [8]u8 = undefined;
    var r = (try cache.reader("lines", &buf)).?;
    defer r.deinit();
    try testing.expectEqualStrings("one", try r.interface.takeDelimiterExclusive('\n'));
    r.interface.toss(1);
    var two: [4]u8 = undefined;
    try r.interface.readSliceAll(&two);
    try testing.expectEqualStrings("two\n", &two);
    const rest = try r.interface.allocRemaining(testing.allocator, .unlimited);
    defer testing.allocator.free(rest);
    try testing.expectEqualStrings("three", rest);

    // No buffer at all: reads go straight into the caller's slice, or through the
    // reader's own small buffer into an unbuffered writer.
    const big = try patterned(300 * 1024);
    defer testing.allocator.free(big);
    try cache.set("big", big, .never);
    var u = (try cache.reader("big", &.{})).?;
    defer u.deinit();
    const got = try testing.allocator.alloc(u8, big.len);
    defer testing.allocator.free(got);
    try u.interface.readSliceAll(got[0 .. big.len - 100]);
    var discarding: std.Io.Writer.Discarding = .init(&.{});
    try testing.expectEqual(@as(usize, 100), try u.interface.streamRemaining(&discarding.writer));
    try testing.expectEqualSlices(u8, big[0 .. big.len - 100], got[0 .. big.len - 100]);
}

test "reader.readSome into an empty slice reads nothing and ends nothing" {
    var cache = try memory(.{});
    defer cache.deinit();
    try cache.set("k", "abc", .never);
    var r = (try cache.reader("k", &.{})).?;
    defer r.deinit();
    try testing.expectEqual(@as(usize, 0), try r.readSome(&.{}));
    try testing.expect(!r.ended);
    var got: [8]u8 = undefined;
    try testing.expectEqual(@as(usize, 3), try r.readSome(&got));
    try testing.expectEqualStrings("abc", got[0..3]);
    try testing.expectEqual(@as(usize, 0), try r.readSome(&.{}));
    try testing.expectError(error.EndOfStream, r.readSome(&got));
}

test "reader of a miss is null, and an empty value ends at once" {
    var cache = try memory(.{});
    defer cache.deinit();
    var buf: [16]u8 = undefined;
    try testing.expect((try cache.reader("missing", &buf)) == null);
    try testing.expectEqual(@as(u64, 1), (try cache.stats()).misses);
    try cache.set("empty", "", .never);
    var r = (try cache.reader("empty", &buf)).?;
    defer r.deinit();
    try testing.expectEqual(@as(u64, 0), r.size);
    try testing.expectError(error.EndOfStream, r.interface.takeByte());
    try testing.expect(r.ended);
}

test "reader of a value damaged at its end is ReadFailed with err Damaged, never a clean end" {
    var t = try TempCache.init("c.db");
    defer t.deinit();
    var cache = try Storage.open(t.path, .{ .file_threshold = .{ .bytes = 4096 } });
    defer cache.deinit();
    const big = try patterned(600 * 1024);
    defer testing.allocator.free(big);
    try cache.set("big", big, .never);
    try damageValueFile(t.path);
    var buf: [4096]u8 = undefined;
    var r = (try cache.reader("big", &buf)).?;
    defer r.deinit();
    var out: std.Io.Writer.Allocating = .init(testing.allocator);
    defer out.deinit();
    try testing.expectError(error.ReadFailed, r.interface.streamRemaining(&out.writer));
    try testing.expectEqual(@as(?backlite.ValueReader.ReadError, error.Damaged), r.err);
    try testing.expectEqual(backlite.Code.not_found, r.lastError().code);
    try testing.expectError(error.ReadFailed, r.interface.takeByte()); // and again
    try testing.expect(!r.ended);
    try testing.expect(!try cache.contains("big"));
}

test "reader outlives its storage, and one freed early lets the value go" {
    const big = try patterned(600 * 1024);
    defer testing.allocator.free(big);
    for ([_]backlite.FileThreshold{ .{ .bytes = 4096 }, .never }) |threshold| {
        var t = try TempCache.init("c.db");
        defer t.deinit();
        var cache = try Storage.open(t.path, .{ .file_threshold = threshold });
        try cache.set("big", big, .never);
        var early = (try cache.reader("big", &.{})).?;
        var head: [10]u8 = undefined;
        try early.interface.readSliceAll(&head);
        try testing.expectEqualSlices(u8, big[0..10], &head);
        early.deinit();
        try cache.set("big", big, .never); // written again at once

        var buf: [1024]u8 = undefined;
        var r = (try cache.reader("big", &buf)).?;
        defer r.deinit();
        cache.deinit();
        const got = try r.interface.allocRemaining(testing.allocator, .unlimited);
        defer testing.allocator.free(got);
        try testing.expectEqualSlices(u8, big, got);
    }
}

test "reader reads the value it opened whatever happens to its key" {
    const big = try patterned(600 * 1024);
    defer testing.allocator.free(big);
    for ([_]backlite.FileThreshold{ .{ .bytes = 4096 }, .never }) |threshold| {
        for ([_]enum { set, delete, clear }{ .set, .delete, .clear }) |op| {
            var t = try TempCache.init("c.db");
            defer t.deinit();
            var cache = try Storage.open(t.path, .{ .file_threshold = threshold });
            defer cache.deinit();
            try cache.set("k", big, .never);
            var buf: [4096]u8 = undefined;
            var r = (try cache.reader("k", &buf)).?;
            defer r.deinit();
            var out: std.Io.Writer.Allocating = .init(testing.allocator);
            defer out.deinit();
            try r.interface.streamExact(&out.writer, 1000);
            switch (op) {
                .set => try cache.set("k", "replaced", .never),
                .delete => try testing.expect(try cache.delete("k")),
                .clear => try cache.clear(),
            }
            _ = try r.interface.streamRemaining(&out.writer);
            try testing.expectEqualSlices(u8, big, out.written());
            try testing.expect(r.ended);
        }
    }
}
