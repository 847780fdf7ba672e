//! Compiled by `zig build test` (build.zig, "compile_fail") once per case, selected by
//! the `case` module: `control` (visitors returning void, bool and an error union of
//! bool) must compile; `returning_i32` (a visitor written the C way, non-zero to stop)
//! must fail with keys' compile error. Before that error, an i32 was ignored and the
//! walk never stopped.
const backlite = @import("backlite");
const case = @import("case").case;

fn visitVoid(_: void, _: []const u8) void {}
fn visitBool(_: void, _: []const u8) bool {
    return true;
}
fn visitErrorBool(_: void, _: []const u8) error{Stop}!bool {
    return true;
}
fn visitI32(_: void, _: []const u8) i32 {
    return 1;
}

pub fn walk(s: *backlite.Storage) !void {
    if (comptime std_eql(case, "control")) {
        try s.keys({}, visitVoid);
        try s.keys({}, visitBool);
        try s.keys({}, visitErrorBool);
    } else if (comptime std_eql(case, "returning_i32")) {
        try s.keys({}, visitI32);
    } else @compileError("unknown case " ++ case);
}

fn std_eql(a: []const u8, b: []const u8) bool {
    return @import("std").mem.eql(u8, a, b);
}

comptime {
    _ = &walk;
}
