//! A project of its own that uses BackLite's Zig package, by path.
const std = @import("std");

pub fn build(b: *std.Build) void {
    const target = b.standardTargetOptions(.{});
    const optimize = b.standardOptimizeOption(.{});
    const exe = b.addExecutable(.{
        .name = "app",
        .root_module = b.createModule(.{
            .root_source_file = b.path("src/main.zig"),
            .target = target,
            .optimize = optimize,
        }),
    });

    const prefix = b.option([]const u8, "backlite-prefix", "Where BackLite is installed") orelse "/usr/local";
    const backlite = b.dependency("backlite", .{
        .target = target,
        .optimize = optimize,
        .@"lib-dir" = b.pathJoin(&.{ prefix, "lib" }),
        .@"include-dir" = b.pathJoin(&.{ prefix, "include" }),
    });
    exe.root_module.addImport("backlite", backlite.module("backlite"));

    b.installArtifact(exe);
    const run = b.addRunArtifact(exe);
    if (b.args) |args| run.addArgs(args);
    b.step("run", "Run the app").dependOn(&run.step);
}
