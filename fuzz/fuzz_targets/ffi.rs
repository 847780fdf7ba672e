//! Calls the C ABI (`backlite::ffi`) as a C program would, with arbitrary mixes of
//! valid pointers, NULLs, lengths and out-of-range values, and checks the contract of
//! API.md on every call:
//! - no panic crosses the boundary (never BACKLITE_RESULT_PANIC), and every result is
//!   a known code;
//! - a NULL where a pointer is required (or a NULL data pointer with a non-zero length)
//!   gives NULL_PARAMETER, an out-of-range value INVALID_ARGUMENT (either one when a
//!   call has both), and a well-formed call one of the results it may return;
//! - on failure `*err` is an error object with the same code and a message; on success
//!   and on NOT_FOUND it is left untouched; out-parameters are written only on success.
//!
//!   cargo +nightly fuzz run ffi -- -max_total_time=600
#![no_main]

use backlite::ffi::buf::*;
use backlite::ffi::cached::*;
use backlite::ffi::check::*;
use backlite::ffi::error::*;
use backlite::ffi::lease::*;
use backlite::ffi::options::*;
use backlite::ffi::result::*;
use backlite::ffi::storage::*;
use backlite::ffi::version::*;
use libfuzzer_sys::fuzz_target;
use std::ffi::{c_void, CStr};
use std::ptr::{null, null_mut};

struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }
    fn bool(&mut self) -> bool {
        self.u8() & 1 == 1
    }
    /// true most of the time: a pointer that should usually be valid
    fn valid(&mut self) -> bool {
        !self.u8().is_multiple_of(8)
    }
    fn i64(&mut self) -> i64 {
        let mut x = [0u8; 8];
        for b in &mut x {
            *b = self.u8();
        }
        i64::from_le_bytes(x)
    }
    /// an expiration: usually valid, sometimes any number
    fn expiration(&mut self) -> i64 {
        match self.u8() % 6 {
            0 => -1,
            1 => -2,
            2 => 0,
            3 => self.i64(),
            _ => i64::from(self.u8()) * 10,
        }
    }
}

fn expiration_ok(ms: i64) -> bool {
    ms >= -2
}

/// A byte argument: (ptr, len, is it a NULL with a non-zero length)
fn bytes_arg(b: &mut Bytes, buf: &[u8]) -> (*const u8, usize, bool) {
    let len = usize::from(b.u8()) % (buf.len() + 1);
    match b.u8() % 8 {
        0 => (null(), len, len > 0),
        1 => (buf.as_ptr(), 0, false),
        _ => (buf.as_ptr(), len, false),
    }
}

/// What a call may return once its arguments are judged.
fn expect(
    rc: backlite_result,
    null_arg: bool,
    bad_value: bool,
    allowed: &[backlite_result],
    what: &str,
) {
    assert!(
        rc != BACKLITE_RESULT_PANIC,
        "{what}: a panic reached the boundary"
    );
    assert!((0..=13).contains(&rc), "{what}: unknown result {rc}");
    match (null_arg, bad_value) {
        (true, false) => assert_eq!(rc, BACKLITE_RESULT_NULL_PARAMETER, "{what}"),
        (false, true) => assert_eq!(rc, BACKLITE_RESULT_INVALID_ARGUMENT, "{what}"),
        (true, true) => assert!(
            rc == BACKLITE_RESULT_NULL_PARAMETER || rc == BACKLITE_RESULT_INVALID_ARGUMENT,
            "{what}: {rc}"
        ),
        (false, false) => assert!(allowed.contains(&rc), "{what}: unexpected result {rc}"),
    }
}

/// Runs a call with `&mut err` or NULL and checks the error-object contract.
unsafe fn with_err(
    pass: bool,
    what: &str,
    f: impl FnOnce(*mut *mut backlite_error) -> backlite_result,
) -> backlite_result {
    let mut err: *mut backlite_error = null_mut();
    let rc = f(if pass { &mut err } else { null_mut() });
    if rc == BACKLITE_RESULT_OK || rc == BACKLITE_RESULT_NOT_FOUND {
        // A miss is an answer, not a failure: it leaves err alone, as success does.
        assert!(err.is_null(), "{what}: {rc} but an error object was written");
    } else if !err.is_null() {
        assert_eq!(backlite_error_result(err), rc, "{what}: error object code");
        let msg = CStr::from_ptr(backlite_error_message(err));
        assert!(!msg.to_bytes().is_empty(), "{what}: empty message");
    } else {
        assert!(!pass, "{what}: {rc} without an error object");
    }
    backlite_error_free(err);
    rc
}

const SENTINEL: usize = 0x5EE1;

fn sentinel_buf() -> backlite_buf {
    backlite_buf {
        data: SENTINEL as *mut u8,
        len: 12345,
    }
}

unsafe fn check_buf(rc: backlite_result, buf: &mut backlite_buf, what: &str) {
    if rc == BACKLITE_RESULT_OK {
        assert!(
            !buf.data.is_null() && buf.data as usize != SENTINEL,
            "{what}: OK without a buffer"
        );
        backlite_buf_free(buf);
    } else {
        assert!(
            buf.data as usize == SENTINEL && buf.len == 12345,
            "{what}: buffer written on failure"
        );
    }
}

/// What a compute callback does, chosen by the input.
struct ComputePlan {
    data: [u8; 64],
    pieces: u8,
    null_write: bool,
    fail: bool,
}

unsafe extern "C" fn compute(ud: *mut c_void, sink: *mut backlite_sink) -> i32 {
    let p = &*(ud as *const ComputePlan);
    for i in 0..p.pieces {
        let rc = backlite_sink_write(sink, p.data.as_ptr(), usize::from(i) * 7 % 64);
        assert_eq!(rc, BACKLITE_RESULT_OK);
    }
    if p.null_write {
        assert_eq!(
            backlite_sink_write(sink, null(), 3),
            BACKLITE_RESULT_NULL_PARAMETER
        );
        assert_eq!(backlite_sink_write(sink, null(), 0), BACKLITE_RESULT_OK);
    }
    assert_eq!(
        backlite_sink_write(null_mut(), p.data.as_ptr(), 1),
        BACKLITE_RESULT_NULL_PARAMETER
    );
    i32::from(p.fail)
}

unsafe extern "C" fn lock_ok(_: *mut c_void) -> i32 {
    0
}
unsafe extern "C" fn lock_fail(_: *mut c_void) -> i32 {
    1
}
unsafe extern "C" fn unlock(_: *mut c_void) {}

unsafe extern "C" fn visit(ud: *mut c_void, _key: *const u8, _len: usize) -> i32 {
    let left = &mut *(ud as *mut i32);
    *left -= 1;
    i32::from(*left <= 0)
}

const ALL: &[backlite_result] = &[
    BACKLITE_RESULT_OK,
    BACKLITE_RESULT_NOT_FOUND,
    BACKLITE_RESULT_TOO_LARGE,
    BACKLITE_RESULT_CALLBACK_FAILED,
];

unsafe fn step(b: &mut Bytes, s: *mut backlite_storage, lease: &mut *mut backlite_lease) {
    let data = [0xA5u8; 255];
    let pass_err = b.valid();
    let sp = if b.valid() { s } else { null_mut() };
    let s_null = sp.is_null();
    match b.u8() % 16 {
        0 => {
            // open
            let paths: [&[u8]; 4] = [b":memory:\0", b"\0", b"\xff\xfe\0", b":memory:\0"];
            let which = usize::from(b.u8()) % 5;
            let path = if which == 4 {
                null()
            } else {
                paths[which].as_ptr().cast()
            };
            let o = if b.bool() {
                backlite_options_new()
            } else {
                null_mut()
            };
            if !o.is_null() {
                backlite_options_set_max_size(o, 1 + u64::from(b.u8()));
            }
            let mut out: *mut backlite_storage = SENTINEL as *mut _;
            let outp = if b.valid() {
                &mut out as *mut _
            } else {
                null_mut()
            };
            let rc = with_err(pass_err, "open", |e| {
                backlite_storage_open(path, o, outp, e)
            });
            expect(
                rc,
                path.is_null() || outp.is_null(),
                which == 1 || which == 2,
                &[BACKLITE_RESULT_OK],
                "open",
            );
            if rc == BACKLITE_RESULT_OK {
                backlite_storage_free(out);
            } else {
                assert_eq!(
                    out as usize, SENTINEL,
                    "open: storage_out written on failure"
                );
            }
            backlite_options_free(o);
        }
        1 => {
            let (k, kl, kn) = bytes_arg(b, &data[..8]);
            let mut buf = sentinel_buf();
            let bp = if b.valid() {
                &mut buf as *mut _
            } else {
                null_mut()
            };
            let mut left = 777i64;
            let lp = if b.bool() {
                &mut left as *mut _
            } else {
                null_mut()
            };
            let rc = with_err(pass_err, "get", |e| {
                backlite_storage_get(sp, k, kl, bp, lp, e)
            });
            expect(
                rc,
                s_null || kn || bp.is_null(),
                false,
                &[BACKLITE_RESULT_OK, BACKLITE_RESULT_NOT_FOUND],
                "get",
            );
            check_buf(rc, &mut buf, "get");
            if rc != BACKLITE_RESULT_OK {
                assert_eq!(left, 777, "get: expires_in written on failure");
            }
        }
        2 => {
            let (k, kl, kn) = bytes_arg(b, &data[..8]);
            let (v, vl, vn) = bytes_arg(b, &data);
            let exp = b.expiration();
            let rc = with_err(pass_err, "set", |e| {
                backlite_storage_set(sp, k, kl, v, vl, exp, e)
            });
            expect(
                rc,
                s_null || kn || vn,
                !expiration_ok(exp),
                &[BACKLITE_RESULT_OK, BACKLITE_RESULT_TOO_LARGE],
                "set",
            );
        }
        3 => {
            let n = usize::from(b.u8() % 5);
            let mut entries = Vec::new();
            let mut nulls = false;
            let mut bad = false;
            for _ in 0..n {
                let (k, kl, kn) = bytes_arg(b, &data[..8]);
                let (v, vl, vn) = bytes_arg(b, &data);
                let exp = b.expiration();
                nulls |= kn || vn;
                bad |= !expiration_ok(exp);
                entries.push(backlite_entry {
                    key: k,
                    key_len: kl,
                    value: v,
                    value_len: vl,
                    expiration_ms: exp,
                });
            }
            let ep = if n == 0 && b.bool() || b.valid() {
                entries.as_ptr()
            } else {
                null()
            };
            if ep.is_null() && n > 0 {
                (nulls, bad) = (true, false); // the entries are never read
            }
            let rc = with_err(pass_err, "set_many", |e| {
                backlite_storage_set_many(sp, ep, n, e)
            });
            expect(
                rc,
                s_null || nulls,
                bad,
                &[BACKLITE_RESULT_OK, BACKLITE_RESULT_TOO_LARGE],
                "set_many",
            );
        }
        4 => {
            let (k, kl, kn) = bytes_arg(b, &data[..8]);
            let rc = with_err(pass_err, "delete", |e| {
                backlite_storage_delete(sp, k, kl, e)
            });
            expect(
                rc,
                s_null || kn,
                false,
                &[BACKLITE_RESULT_OK, BACKLITE_RESULT_NOT_FOUND],
                "delete",
            );
        }
        5 => {
            let (k, kl, kn) = bytes_arg(b, &data[..8]);
            let rc = with_err(pass_err, "contains", |e| {
                backlite_storage_contains(sp, k, kl, e)
            });
            expect(
                rc,
                s_null || kn,
                false,
                &[BACKLITE_RESULT_OK, BACKLITE_RESULT_NOT_FOUND],
                "contains",
            );
        }
        6 => {
            let mut left = i32::from(b.u8() % 4);
            let v: backlite_key_visitor = if b.valid() { Some(visit) } else { None };
            let rc = with_err(pass_err, "keys", |e| {
                backlite_storage_keys(sp, v, &mut left as *mut i32 as *mut c_void, e)
            });
            expect(
                rc,
                s_null || v.is_none(),
                false,
                &[BACKLITE_RESULT_OK],
                "keys",
            );
        }
        7 => {
            if b.u8().is_multiple_of(4) {
                let rc = with_err(pass_err, "clear", |e| backlite_storage_clear(sp, e));
                expect(rc, s_null, false, &[BACKLITE_RESULT_OK], "clear");
            }
        }
        8 => {
            let mut st = std::mem::zeroed::<backlite_stats>();
            let p = if b.valid() {
                &mut st as *mut _
            } else {
                null_mut()
            };
            let rc = with_err(pass_err, "stats", |e| backlite_storage_stats(sp, p, e));
            expect(
                rc,
                s_null || p.is_null(),
                false,
                &[BACKLITE_RESULT_OK],
                "stats",
            );
        }
        9 => {
            let (k, kl, kn) = bytes_arg(b, &data[..8]);
            let plan = ComputePlan {
                data: [b.u8(); 64],
                pieces: b.u8() % 4,
                null_write: b.bool(),
                fail: b.u8().is_multiple_of(5),
            };
            let f: backlite_compute_fn = if b.valid() { Some(compute) } else { None };
            let barrier = match b.u8() % 4 {
                0 => Some(backlite_barrier {
                    user_data: null_mut(),
                    lock: Some(lock_ok),
                    unlock: Some(unlock),
                }),
                1 => Some(backlite_barrier {
                    user_data: null_mut(),
                    lock: Some(lock_fail),
                    unlock: Some(unlock),
                }),
                2 if b.u8().is_multiple_of(4) => Some(backlite_barrier {
                    user_data: null_mut(),
                    lock: None,
                    unlock: Some(unlock),
                }),
                _ => None,
            };
            let bad_barrier = barrier.as_ref().is_some_and(|x| x.lock.is_none());
            let bp = barrier.as_ref().map_or(null(), |x| x as *const _);
            let exp = b.expiration();
            let mut buf = sentinel_buf();
            let op = if b.valid() {
                &mut buf as *mut _
            } else {
                null_mut()
            };
            let rc = with_err(pass_err, "cached_call", |e| {
                backlite_cached_call(
                    sp,
                    k,
                    kl,
                    f,
                    &plan as *const _ as *mut c_void,
                    bp,
                    exp,
                    op,
                    e,
                )
            });
            expect(
                rc,
                s_null || kn || f.is_none() || op.is_null() || bad_barrier,
                !expiration_ok(exp),
                ALL,
                "cached_call",
            );
            check_buf(rc, &mut buf, "cached_call");
        }
        10 => {
            let mut r = std::mem::zeroed::<backlite_check_report>();
            let p = if b.valid() {
                &mut r as *mut _
            } else {
                null_mut()
            };
            let repair = i32::from(b.u8());
            let rc = with_err(pass_err, "check", |e| {
                backlite_storage_check(sp, repair, p, e)
            });
            expect(
                rc,
                s_null || p.is_null(),
                false,
                &[BACKLITE_RESULT_OK],
                "check",
            );
            if rc == BACKLITE_RESULT_OK {
                assert_eq!(
                    r.healthy, 1,
                    "check: a cache used only through the API is healthy"
                );
            }
        }
        11 => {
            let o = if b.valid() {
                backlite_options_new()
            } else {
                null_mut()
            };
            let on = o.is_null();
            let size = match b.u8() % 4 {
                0 => 0,
                1 => u64::MAX,
                _ => u64::from(b.u8()) + 1,
            };
            let rc = backlite_options_set_max_size(o, size);
            expect(
                rc,
                on,
                size == 0 || size > i64::MAX as u64,
                &[BACKLITE_RESULT_OK],
                "set_max_size",
            );
            let p = i32::from(b.u8() as i8);
            let rc = backlite_options_set_eviction_policy(o, p);
            expect(
                rc,
                on,
                !(0..5).contains(&p),
                &[BACKLITE_RESULT_OK],
                "set_eviction_policy",
            );
            let names: [&[u8]; 4] = [
                b"least-frequently-used\0",
                b"lru\0",
                b"\xff\0",
                b"last-in-first-out\0",
            ];
            let which = usize::from(b.u8()) % 5;
            let name = if which == 4 {
                null()
            } else {
                names[which].as_ptr().cast()
            };
            let rc = backlite_options_set_eviction_policy_name(o, name);
            expect(
                rc,
                on || name.is_null(),
                which == 1 || which == 2,
                &[BACKLITE_RESULT_OK],
                "set_eviction_policy_name",
            );
            let ms = b.expiration();
            let rc = backlite_options_set_default_expiration_ms(o, ms);
            expect(
                rc,
                on,
                ms == -1 || ms < -2,
                &[BACKLITE_RESULT_OK],
                "set_default_expiration_ms",
            );
            let rc = backlite_options_set_busy_timeout_ms(o, u32::from(b.u8()));
            expect(rc, on, false, &[BACKLITE_RESULT_OK], "set_busy_timeout_ms");
            let tags: [&[u8]; 2] = [b"3.11\0", b"\xc3\x28\0"];
            let which = usize::from(b.u8()) % 3;
            let tag = if which == 2 {
                null()
            } else {
                tags[which].as_ptr().cast()
            };
            let rc = backlite_options_set_version_tag(o, tag);
            expect(
                rc,
                on || tag.is_null(),
                which == 1,
                &[BACKLITE_RESULT_OK],
                "set_version_tag",
            );
            backlite_options_free(o);
        }
        12 => {
            // leases: at most one held at a time
            if lease.is_null() {
                let (k, kl, kn) = bytes_arg(b, &data[..8]);
                let ms = if b.bool() {
                    b.i64()
                } else {
                    1 + i64::from(b.u8()) * 100
                };
                let mut buf = sentinel_buf();
                let bp = if b.valid() {
                    &mut buf as *mut _
                } else {
                    null_mut()
                };
                let mut out: *mut backlite_lease = SENTINEL as *mut _;
                let lp = if b.valid() {
                    &mut out as *mut _
                } else {
                    null_mut()
                };
                let rc = with_err(pass_err, "lease_try_acquire", |e| {
                    backlite_lease_try_acquire(sp, k, kl, ms, bp, lp, e)
                });
                expect(
                    rc,
                    s_null || kn || bp.is_null() || lp.is_null(),
                    ms <= 0,
                    &[
                        BACKLITE_RESULT_OK,
                        BACKLITE_RESULT_NOT_FOUND,
                        BACKLITE_RESULT_BUSY,
                    ],
                    "lease_try_acquire",
                );
                check_buf(rc, &mut buf, "lease_try_acquire");
                if rc == BACKLITE_RESULT_NOT_FOUND {
                    assert!(!out.is_null() && out as usize != SENTINEL);
                    *lease = out;
                } else {
                    assert_eq!(out as usize, SENTINEL, "lease_out written without a lease");
                }
            } else {
                match b.u8() % 3 {
                    0 => {
                        let ms = if b.bool() { b.i64() } else { 1000 };
                        let lp = if b.valid() { *lease } else { null_mut() };
                        let rc = with_err(pass_err, "lease_extend", |e| {
                            backlite_lease_extend(lp, ms, e)
                        });
                        expect(
                            rc,
                            lp.is_null(),
                            ms <= 0,
                            &[BACKLITE_RESULT_OK, BACKLITE_RESULT_LEASE_LOST],
                            "lease_extend",
                        );
                    }
                    1 => {
                        let (v, vl, vn) = bytes_arg(b, &data);
                        let exp = b.expiration();
                        let l = std::mem::replace(lease, null_mut());
                        let rc = with_err(pass_err, "lease_fulfill", |e| {
                            backlite_lease_fulfill(l, v, vl, exp, e)
                        });
                        expect(
                            rc,
                            vn,
                            !expiration_ok(exp),
                            &[
                                BACKLITE_RESULT_OK,
                                BACKLITE_RESULT_TOO_LARGE,
                                BACKLITE_RESULT_LEASE_LOST,
                            ],
                            "lease_fulfill",
                        );
                    }
                    _ => backlite_lease_abandon(std::mem::replace(lease, null_mut())),
                }
            }
        }
        13 => {
            let r = i32::from(b.u8() as i8) * 3;
            assert!(!CStr::from_ptr(backlite_result_str(r)).to_bytes().is_empty());
            assert_eq!(
                backlite_error_result(null()),
                BACKLITE_RESULT_NULL_PARAMETER
            );
            assert!(CStr::from_ptr(backlite_error_message(null()))
                .to_bytes()
                .is_empty());
            backlite_error_free(null_mut());
            backlite_buf_free(null_mut());
            backlite_options_free(null_mut());
            backlite_storage_free(null_mut());
            backlite_lease_abandon(null_mut());
            assert_eq!(
                backlite_lease_fulfill(null_mut(), null(), 0, -2, null_mut()),
                BACKLITE_RESULT_NULL_PARAMETER
            );
            assert!(!CStr::from_ptr(backlite_version()).to_bytes().is_empty());
            assert_eq!(backlite_version_number(), 100);
        }
        14 => {
            let (k, kl, kn) = bytes_arg(b, &data[..8]);
            let plan = ComputePlan {
                data: [b.u8(); 64],
                pieces: b.u8() % 4,
                null_write: b.bool(),
                fail: b.u8().is_multiple_of(5),
            };
            let f: backlite_compute_fn = if b.valid() { Some(compute) } else { None };
            let exp = b.expiration();
            // short waits: a key this input holds a lease on is busy until it gives up
            let wait = match b.u8() % 4 {
                0 => -1 - i64::from(b.u8()),
                1 => 0,
                _ => i64::from(b.u8() % 20),
            };
            let mut buf = sentinel_buf();
            let op = if b.valid() {
                &mut buf as *mut _
            } else {
                null_mut()
            };
            let rc = with_err(pass_err, "cached_call_exclusive", |e| {
                backlite_cached_call_exclusive(
                    sp,
                    k,
                    kl,
                    f,
                    &plan as *const _ as *mut c_void,
                    exp,
                    wait,
                    op,
                    e,
                )
            });
            // a key leased by this input's own lease is busy to everyone else
            let mut allowed = ALL.to_vec();
            allowed.push(BACKLITE_RESULT_BUSY);
            expect(
                rc,
                s_null || kn || f.is_none() || op.is_null(),
                !expiration_ok(exp) || wait < 0,
                &allowed,
                "cached_call_exclusive",
            );
            check_buf(rc, &mut buf, "cached_call_exclusive");
        }
        _ => {
            if b.u8().is_multiple_of(8) {
                let rc = with_err(pass_err, "vacuum", |e| backlite_storage_vacuum(sp, e));
                expect(rc, s_null, false, &[BACKLITE_RESULT_OK], "vacuum");
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut b = Bytes(data);
    unsafe {
        let o = backlite_options_new();
        backlite_options_set_max_size(o, 1 + u64::from(b.u8()) * 4);
        backlite_options_set_eviction_policy(o, i32::from(b.u8() % 5));
        let mut s: *mut backlite_storage = null_mut();
        assert_eq!(
            backlite_storage_open(c":memory:".as_ptr(), o, &mut s, null_mut()),
            BACKLITE_RESULT_OK
        );
        backlite_options_free(o);
        let mut lease: *mut backlite_lease = null_mut();
        let mut steps = 0;
        while !b.0.is_empty() && steps < 64 {
            step(&mut b, s, &mut lease);
            steps += 1;
        }
        backlite_lease_abandon(lease);
        backlite_storage_free(s);
    }
});
