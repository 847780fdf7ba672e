//! Drives the operations of the differential test (`tests/model.rs`) from arbitrary
//! bytes: a real cache file and the model of API.md's rules must agree on every result.
//!
//!   cargo +nightly fuzz run ops -- -max_total_time=600
#![no_main]

#[path = "../../tests/robustness/model_rules.rs"]
mod model_rules;

use libfuzzer_sys::fuzz_target;
use model_rules::{run, Config, Exp, Op};

/// Reads the input a byte at a time; zeros once it is used up.
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
    fn u16(&mut self) -> u16 {
        u16::from(self.u8()) << 8 | u16::from(self.u8())
    }
    fn key(&mut self) -> u8 {
        self.u8() % 8
    }
    fn len(&mut self, max_size: u64) -> usize {
        // mostly a few to a cache, sometimes up to a quarter above max_size
        let top = max_size + max_size / 4 + 1;
        let r = u64::from(self.u16());
        (match self.u8() % 4 {
            0 => r % (max_size / 4 + 1),
            1 => r % (max_size / 2 + 1),
            2 => r % (top + 1),
            _ => r % 41,
        }) as usize
    }
    fn exp(&mut self) -> Exp {
        match self.u8() % 8 {
            0 | 1 => Exp::Default,
            2..=4 => Exp::Never,
            5 => Exp::Ms(0),
            _ => Exp::Ms(1 + u64::from(self.u16()) % 3000),
        }
    }
}

fn decode(data: &[u8]) -> (Config, Vec<Op>) {
    let mut b = Bytes(data);
    let max_size = match b.u8() % 3 {
        0 => 1 + u64::from(b.u8()) % 64,
        1 => 64 + u64::from(b.u16()) % 937,
        _ => 1000 + u64::from(b.u16()) % 5001,
    };
    let policy = b.u8() % 5;
    let default_exp_ms = match b.u8() % 4 {
        0 => Some(1 + u64::from(b.u16()) % 3000),
        _ => None,
    };
    let config = Config {
        max_size,
        policy,
        default_exp_ms,
    };
    let mut ops = Vec::new();
    while !b.0.is_empty() && ops.len() < 200 {
        let op = match b.u8() % 16 {
            0..=3 => Op::Set {
                key: b.key(),
                len: b.len(max_size),
                exp: b.exp(),
            },
            4 => {
                let n = b.u8() % 6;
                Op::SetMany(
                    (0..n)
                        .map(|_| (b.key(), b.len(max_size / 2), b.exp()))
                        .collect(),
                )
            }
            5..=7 => Op::Get(b.key()),
            8 => Op::Contains(b.key()),
            9 => Op::Delete(b.key()),
            10 => Op::CachedCall {
                key: b.key(),
                len: b.len(max_size),
                exp: b.exp(),
            },
            11 => Op::Clear,
            12 => Op::Advance(u64::from(b.u16()) % 4000),
            13 => Op::Reopen(b.u8() % 5),
            14 => Op::Stats,
            _ => Op::Check,
        };
        ops.push(op);
    }
    (config, ops)
}

fuzz_target!(|data: &[u8]| {
    let (config, ops) = decode(data);
    // /dev/shm when there is one: the file system does not matter here, speed does
    let dir = tempfile::tempdir_in("/dev/shm")
        .or_else(|_| tempfile::tempdir())
        .unwrap();
    if let Err(e) = run(dir.path(), &config, &ops) {
        panic!("{config:?}\n{ops:#?}\n{e}");
    }
});
