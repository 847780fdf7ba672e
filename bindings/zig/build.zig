//! BackLite for Zig. `zig build test` builds the tests (and the README's example)
//! against the C library and runs them.
//!
//!   zig build test                                  # ../../include, ../../target/release
//!   zig build test -Dlib-dir=/usr/local/lib -Dinclude-dir=/usr/local/include
//!   zig build test -Dstatic=true                    # link libbacklite.a instead
//!   zig build memcheck -Dcpu=baseline               # the tests under valgrind
//!
//! A user's build.zig gets the module with
//! `b.dependency("backlite", .{ .@"lib-dir" = ..., .@"include-dir" = ... }).module("backlite")`.
const std = @import("std");

pub fn build(b: *std.Build) void {
    const target = b.standardTargetOptions(.{});
    const optimize = b.standardOptimizeOption(.{});
    const lib_dir = b.option([]const u8, "lib-dir", "Directory with libbacklite.so / libbacklite.a (default: ../../target/release)") orelse
        b.pathFromRoot("../../target/release");
    const include_dir = b.option([]const u8, "include-dir", "Directory with backlite.h (default: ../../include)") orelse
        b.pathFromRoot("../../include");
    const static = b.option(bool, "static", "Link libbacklite.a instead of libbacklite.so") orelse false;

    const mod = b.addModule("backlite", .{
        .root_source_file = b.path("src/backlite.zig"),
        .target = target,
        .optimize = optimize,
        .link_libc = true,
    });
    mod.addIncludePath(.{ .cwd_relative = include_dir });
    var loaded_from: []const u8 = "";
    if (static) {
        mod.addObjectFile(.{ .cwd_relative = b.pathJoin(&.{ lib_dir, "libbacklite.a" }) });
        // What a Rust static library needs from the system.
        for ([_][]const u8{ "pthread", "dl", "m" }) |name|
            mod.linkSystemLibrary(name, .{ .use_pkg_config = .no });
        // Its unwinder: the system's libgcc_s, by its path. Zig takes -lgcc_s for its own
        // copy of LLVM's libunwind, linked into the program; but glibc ends a thread
        // (pthread_exit, a cancellation) with a forced unwind run by libgcc_s, and the
        // library's personality routine, reading libgcc_s's frames with LLVM's
        // _Unwind_* getters, crashed (SIGSEGV where a C program's thread ended cleanly).
        if (systemGccS(b, target)) |path|
            mod.addObjectFile(.{ .cwd_relative = path })
        else
            mod.linkSystemLibrary("gcc_s", .{ .use_pkg_config = .no });
    } else {
        const dir = stageShared(b, lib_dir);
        loaded_from = dir;
        mod.addLibraryPath(.{ .cwd_relative = dir });
        mod.addRPath(.{ .cwd_relative = dir });
        mod.linkSystemLibrary("backlite", .{ .use_pkg_config = .no, .preferred_link_mode = .dynamic });
    }

    const test_step = b.step("test", "Run the binding's tests and the README example");

    // What the tests check about their own linking.
    const link = b.addOptions();
    link.addOption(bool, "static", static);
    link.addOption([]const u8, "lib_dir", loaded_from);
    // The header, for the tests that check this wrapper's copies against it (policy names).
    const include_abs = std.fs.cwd().realpathAlloc(b.allocator, include_dir) catch include_dir;
    link.addOption([]const u8, "header", b.pathJoin(&.{ include_abs, "backlite.h" }));
    const tests = b.addTest(.{ .root_module = b.createModule(.{
        .root_source_file = b.path("src/tests.zig"),
        .target = target,
        .optimize = optimize,
        .imports = &.{
            .{ .name = "backlite", .module = mod },
            .{ .name = "link", .module = link.createModule() },
        },
    }) });
    if (static) useLlvmLinker(tests);
    const run_tests = b.addRunArtifact(tests);
    // Always run: a rebuilt libbacklite.so is not an input zig's cache sees.
    run_tests.has_side_effects = true;
    test_step.dependOn(&run_tests.step);

    // Programs that must not compile: src/compile_fail/keys_visitor.zig once per case,
    // checked by `zig build-obj` (no code emitted). The control case must compile (so a
    // failure of the others is not a setup of its own); a visitor returning i32 must
    // fail with keys' compile error.
    for ([_]struct { []const u8, ?[]const u8 }{
        .{ "control", null },
        .{ "returning_i32", "error: keys: visit must return void or bool" },
    }) |case| {
        const opts = b.addOptions();
        opts.addOption([]const u8, "case", case[0]);
        const check = b.addSystemCommand(&.{ b.graph.zig_exe, "build-obj", "-fno-emit-bin", "-lc", "--dep", "backlite", "--dep", "case" });
        check.addPrefixedFileArg("-Mroot=", b.path("src/compile_fail/keys_visitor.zig"));
        check.addArgs(&.{ "-I", include_dir });
        // The build's own caches: left to itself, `zig build-obj` makes .zig-cache in
        // the working directory, the source tree.
        check.addArgs(&.{ "--cache-dir", b.cache_root.path orelse ".", "--global-cache-dir", b.graph.global_cache_root.path orelse "." });
        check.addPrefixedFileArg("-Mbacklite=", b.path("src/backlite.zig"));
        check.addPrefixedFileArg("-Mcase=", opts.getOutput());
        check.setName(b.fmt("compile_fail keys_visitor {s}", .{case[0]}));
        if (case[1]) |message| {
            check.expectExitCode(1);
            check.addCheck(.{ .expect_stderr_match = message });
        } else {
            check.expectExitCode(0);
        }
        check.has_side_effects = true;
        test_step.dependOn(&check.step);
    }

    // The same tests under valgrind. The C library's allocations (error objects,
    // buffers) are invisible to std.testing.allocator, so a wrapper that forgets to free
    // one is seen only here. Valgrind knows no AVX-512: build with -Dcpu=baseline.
    const memcheck_step = b.step("memcheck", "Run the binding's tests under valgrind (a definite or indirect leak fails)");
    const memcheck = b.addSystemCommand(&.{
        "valgrind",
        "--leak-check=full",
        "--show-leak-kinds=definite,indirect",
        "--errors-for-leak-kinds=definite,indirect",
        "--error-exitcode=1",
    });
    memcheck.addArtifactArg(tests);
    memcheck.has_side_effects = true;
    memcheck_step.dependOn(&memcheck.step);

    // The README's ```zig block, cut out at build time, built and run (in a fresh
    // directory, since it writes cache.db), so the documented example cannot rot.
    const readme = b.build_root.handle.readFileAlloc(b.allocator, "README.md", 1 << 20) catch |e|
        std.debug.panic("bindings/zig/README.md: {s}", .{@errorName(e)});
    const example_src = b.addWriteFiles().add("readme_example.zig", zigBlock(readme));
    const example = b.addExecutable(.{
        .name = "readme_example",
        .root_module = b.createModule(.{
            .root_source_file = example_src,
            .target = target,
            .optimize = optimize,
            .imports = &.{.{ .name = "backlite", .module = mod }},
        }),
    });
    if (static) useLlvmLinker(example);
    const run_example = b.addRunArtifact(example);
    run_example.setCwd(.{ .cwd_relative = b.makeTempPath() });
    run_example.expectStdOutEqual("hello\nhello\n42\n");
    run_example.has_side_effects = true;
    test_step.dependOn(&run_example.step);
}

/// The path of the system's libgcc_s.so.1 for a build for this machine (the C
/// compiler's, as `cc -print-file-name` gives it; any -Dcpu), or null: a cross build, or
/// no C compiler, links Zig's libunwind instead.
fn systemGccS(b: *std.Build, target: std.Build.ResolvedTarget) ?[]const u8 {
    const host = b.graph.host.result;
    const t = target.result;
    if (t.os.tag != host.os.tag or t.cpu.arch != host.cpu.arch or t.abi != host.abi) return null;
    var code: u8 = undefined;
    const out = b.runAllowFail(&.{ "cc", "-print-file-name=libgcc_s.so.1" }, &code, .Ignore) catch return null;
    const path = std.mem.trim(u8, out, " \r\n");
    // A compiler that does not know the file prints its bare name back.
    if (!std.fs.path.isAbsolute(path)) return null;
    std.fs.cwd().access(path, .{}) catch return null;
    return path;
}

/// Builds `step` with LLVM and LLD: Zig 0.15's own x86_64 backend and linker (its
/// default for Debug builds) placed 16-byte constants of the Rust static library at
/// 8-byte alignment, and the first SSE load of one faulted (a general protection fault
/// in backlite_storage_open, with a debug libbacklite.a).
fn useLlvmLinker(step: *std.Build.Step.Compile) void {
    step.use_llvm = true;
    step.use_lld = true;
}

/// An absolute directory holding libbacklite.so and libbacklite.so.0 (the library's
/// SONAME, which cargo does not create): `lib_dir` itself when it has both (an installed
/// library), else a copy in the cache, refreshed on every build. Programs built here get
/// it as their rpath, so they load this library and no other.
fn stageShared(b: *std.Build, lib_dir: []const u8) []const u8 {
    const cwd = std.fs.cwd();
    const so = b.pathJoin(&.{ lib_dir, "libbacklite.so" });
    cwd.access(so, .{}) catch |e|
        std.debug.panic("{s}: {s} (build the library, or pass -Dlib-dir=...)", .{ so, @errorName(e) });
    if (cwd.access(b.pathJoin(&.{ lib_dir, "libbacklite.so.0" }), .{})) |_| {
        return cwd.realpathAlloc(b.allocator, lib_dir) catch @panic("realpath of lib-dir");
    } else |_| {}
    const sub = "backlite-lib";
    const cache = b.cache_root.handle;
    cache.makePath(sub) catch @panic("cannot create the library stage in the cache");
    var stage = cache.openDir(sub, .{}) catch @panic("cannot open the library stage");
    defer stage.close();
    cwd.copyFile(so, stage, "libbacklite.so.0", .{}) catch |e|
        std.debug.panic("copying {s}: {s}", .{ so, @errorName(e) });
    stage.deleteFile("libbacklite.so") catch {};
    stage.symLink("libbacklite.so.0", "libbacklite.so", .{}) catch @panic("symlink in the library stage");
    return stage.realpathAlloc(b.allocator, ".") catch @panic("realpath of the library stage");
}

/// The ```zig block under "## Example" in a Markdown text.
fn zigBlock(markdown: []const u8) []const u8 {
    const fence = "## Example\n\n```zig\n";
    const start = (std.mem.indexOf(u8, markdown, fence) orelse
        @panic("bindings/zig/README.md: no ```zig block under ## Example")) + fence.len;
    const len = std.mem.indexOf(u8, markdown[start..], "\n```") orelse
        @panic("bindings/zig/README.md: the ```zig block is not closed");
    return markdown[start .. start + len + 1];
}
