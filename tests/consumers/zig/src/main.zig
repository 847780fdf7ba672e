//! A set/get round trip through the Zig package.
const std = @import("std");
const backlite = @import("backlite");

pub fn main() !void {
    var gpa: std.heap.DebugAllocator(.{}) = .init;
    defer _ = gpa.deinit();
    const allocator = gpa.allocator();
    const args = try std.process.argsAlloc(allocator);
    defer std.process.argsFree(allocator, args);
    const path = if (args.len > 1) args[1] else "app.db";

    var cache = try backlite.Storage.open(path, .{});
    defer cache.deinit();
    try cache.set("greeting", "hello from Zig", .never);
    const value = (try cache.get(allocator, "greeting")) orelse return error.Missing;
    defer allocator.free(value);
    if (!std.mem.eql(u8, value, "hello from Zig")) return error.WrongValue;

    var buf: [256]u8 = undefined;
    var stdout = std.fs.File.stdout().writer(&buf);
    try stdout.interface.print("{s}\n", .{value});
    try stdout.interface.flush();
}
