//! Differential test: random sequences of set, set_many, get, contains, delete,
//! cached_call, clear, clock moves, reopen (possibly with another policy), stats and
//! check, run on a real cache file and on the in-memory model of API.md's rules in
//! `tests/robustness/model_rules.rs`. Every result is compared, and after every step
//! the live keys, so that which entries each of the five policies evicts is compared
//! too.
//!
//! 128 cases, the same on every run; a long run with other cases:
//! `PROPTEST_CASES=5000 BACKLITE_MODEL_SEED=7 cargo test --release --test model`.
//! A failure prints the smallest sequence proptest could shrink it to.

#[path = "robustness/model_rules.rs"]
mod model_rules;

use model_rules::{run, Config, Exp, Op};
use proptest::prelude::*;
use proptest::test_runner::{Config as RunnerConfig, RngAlgorithm, TestRng, TestRunner};

const KEYS: u8 = 7;

fn exp() -> impl Strategy<Value = Exp> {
    prop_oneof![
        4 => Just(Exp::Default),
        10 => Just(Exp::Never),
        1 => Just(Exp::Ms(0)),
        5 => (1u64..3000).prop_map(Exp::Ms),
    ]
}

/// Value sizes relative to max_size: mostly a few to a cache, some too large.
fn len(max_size: u64) -> impl Strategy<Value = usize> {
    let m = max_size as usize;
    prop_oneof![
        6 => 0..=m / 4,
        2 => 0..=m / 2,
        1 => 0..=m + m / 4 + 1,
        1 => 0..=m.min(40),
    ]
}

fn set(max_size: u64) -> impl Strategy<Value = Op> {
    (0..KEYS, len(max_size), exp()).prop_map(|(key, len, exp)| Op::Set { key, len, exp })
}

fn cached_call(max_size: u64) -> impl Strategy<Value = Op> {
    (0..KEYS, len(max_size), exp()).prop_map(|(key, len, exp)| Op::CachedCall { key, len, exp })
}

fn set_many(max_size: u64) -> impl Strategy<Value = Op> {
    prop::collection::vec((0..KEYS, len(max_size / 2), exp()), 0..6).prop_map(Op::SetMany)
}

fn op(max_size: u64) -> impl Strategy<Value = Op> {
    let key = 0..KEYS;
    prop_oneof![
        25 => set(max_size),
        6 => set_many(max_size),
        25 => key.clone().prop_map(Op::Get),
        5 => key.clone().prop_map(Op::Contains),
        5 => key.prop_map(Op::Delete),
        8 => cached_call(max_size),
        1 => Just(Op::Clear),
        5 => prop_oneof![0u64..50, 0u64..4000].prop_map(Op::Advance),
        3 => (0u8..5).prop_map(Op::Reopen),
        4 => Just(Op::Stats),
        1 => Just(Op::Check),
    ]
}

fn case() -> impl Strategy<Value = (Config, Vec<Op>)> {
    let config = (
        prop_oneof![1u64..=64, 64u64..=1000, 1000u64..=6000],
        0u8..5,
        prop_oneof![3 => Just(None), 1 => (1u64..3000).prop_map(Some)],
    )
        .prop_map(|(max_size, policy, default_exp_ms)| Config {
            max_size,
            policy,
            default_exp_ms,
        });
    config.prop_flat_map(|c| {
        let ops = prop::collection::vec(op(c.max_size), 1..60);
        (Just(c), ops)
    })
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Batches long enough for the runs `set_many` inserts several rows a statement at a
/// time (50, then 10), where every key comes more than once and some values are not
/// inline, between sets, gets, deletes and moves of the clock.
fn long_batches_case() -> impl Strategy<Value = (Config, Vec<Op>)> {
    let config =
        (prop_oneof![64u64..=600, 600u64..=3000], 0u8..5).prop_map(|(max_size, policy)| Config {
            max_size,
            policy,
            default_exp_ms: None,
        });
    config.prop_flat_map(|c| {
        let m = c.max_size;
        // Twenty keys, some once and some more than once in a batch, of up to a
        // quarter of max_size: batches evict.
        let keys = 0..20u8;
        let batch = prop::collection::vec((keys.clone(), len(m / 4), exp()), 10..120);
        let key = keys.clone();
        let op = prop_oneof![
            4 => batch.prop_map(Op::SetMany),
            4 => (keys, len(m), exp()).prop_map(|(key, len, exp)| Op::Set { key, len, exp }),
            4 => key.clone().prop_map(Op::Get),
            1 => key.prop_map(Op::Delete),
            1 => (0u64..50).prop_map(Op::Advance),
        ];
        (Just(c), prop::collection::vec(op, 1..20))
    })
}

#[test]
fn long_batches_follow_the_model_of_the_rules() {
    run_cases(long_batches_case(), 64);
}

#[test]
fn random_operations_follow_the_model_of_the_rules() {
    run_cases(case(), 128);
}

/// Runs `cases` cases of `strategy` (or `PROPTEST_CASES`) on a file and on the model.
fn run_cases(strategy: impl Strategy<Value = (Config, Vec<Op>)>, cases: u64) {
    // Deterministic: the same cases on every run unless BACKLITE_MODEL_SEED changes.
    let seed = env_u64("BACKLITE_MODEL_SEED", 1);
    let mut seed_bytes = [0u8; 32];
    seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let config = RunnerConfig {
        cases: env_u64("PROPTEST_CASES", cases) as u32,
        failure_persistence: None,
        ..RunnerConfig::default()
    };
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes);
    let mut runner = TestRunner::new_with_rng(config, rng);
    let result = runner.run(&strategy, |(config, ops)| {
        let dir = tempfile::tempdir().unwrap();
        run(dir.path(), &config, &ops).map_err(TestCaseError::fail)
    });
    if let Err(e) = result {
        panic!("BACKLITE_MODEL_SEED={seed}: {e}");
    }
}

/// Fixed sequences that pin the rules the random ones must meet often.
#[test]
fn hand_written_sequences_follow_the_model() {
    use Op::*;
    let set = |key, len| Set {
        key,
        len,
        exp: Exp::Never,
    };
    let sequences: Vec<(u64, Vec<Op>)> = vec![
        // every policy evicts its own victim; hits, contains and overwrites in between
        (
            30,
            vec![
                set(1, 10),
                set(2, 10),
                set(3, 10),
                Get(1),
                Contains(2),
                Get(3),
                Get(1),
                set(4, 10),
                Stats,
            ],
        ),
        // equal hits: least-frequently-used takes the least recently used of them
        (
            30,
            vec![
                set(1, 10),
                set(2, 10),
                set(3, 10),
                Get(3),
                Get(2),
                Get(1),
                set(4, 10),
                Stats,
            ],
        ),
        // an overwrite removes the old value before evicting; too large keeps it removed
        (
            30,
            vec![
                set(1, 10),
                set(2, 10),
                set(1, 25),
                set(2, 31),
                Get(1),
                Get(2),
                Stats,
            ],
        ),
        // writing a key again starts its hits over
        (
            30,
            vec![
                set(1, 10),
                set(2, 10),
                Get(1),
                Get(1),
                set(1, 10),
                Get(2),
                set(3, 10),
                Stats,
            ],
        ),
        // set_many writes everything, then evicts down to max_size
        (
            30,
            vec![
                set(1, 10),
                SetMany(vec![
                    (2, 10, Exp::Never),
                    (3, 10, Exp::Never),
                    (4, 10, Exp::Never),
                ]),
                Stats,
            ],
        ),
        // expired entries go before any eviction, and expiration 0 stores nothing
        (
            30,
            vec![
                Set {
                    key: 1,
                    len: 10,
                    exp: Exp::Ms(100),
                },
                set(2, 10),
                Advance(100),
                set(3, 20),
                Set {
                    key: 2,
                    len: 5,
                    exp: Exp::Ms(0),
                },
                Stats,
            ],
        ),
        // hits survive a reopen, and a reopen may change the policy
        (
            30,
            vec![
                set(1, 10),
                set(2, 10),
                Get(1),
                Reopen(0),
                set(3, 10),
                set(4, 10),
                Reopen(1),
                Get(3),
                set(5, 10),
                Stats,
            ],
        ),
    ];
    for (max_size, ops) in sequences {
        for policy in 0..5 {
            let dir = tempfile::tempdir().unwrap();
            let config = Config {
                max_size,
                policy,
                default_exp_ms: None,
            };
            if let Err(e) = run(dir.path(), &config, &ops) {
                panic!("{config:?}: {e}");
            }
        }
    }
}
