//! The remote tier on a 3-master Redis Cluster made by `redis-cli --cluster create`
//! (each server on a free loopback port in a folder of its own): keys spread over every
//! master, read- and write-through between two files, clear on every master, single
//! flight, and a resharding and a master failure while calls run: never a wrong value,
//! errors counted, every call still answered locally.

mod support;

use backlite::{Expiration, Options, RemoteMode, Storage};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};
use support::machine::{get, machine, remote_options};
use support::redis::RedisCluster;

const NEVER: Expiration = Expiration::Never;
const KEYS: usize = 300;

fn cluster_options(cluster: &RedisCluster) -> Options {
    remote_options(&cluster.url())
}

fn key(i: usize) -> Vec<u8> {
    format!("k{i}").into_bytes()
}

fn value(i: usize, round: usize) -> Vec<u8> {
    format!("k{i}:round {round}").into_bytes()
}

/// Sets every key to its value of `round`.
fn set_all(s: &Storage, round: usize) {
    for i in 0..KEYS {
        s.set(&key(i), &value(i, round), NEVER).unwrap();
    }
}

/// Whether `got` is one of the values ever written under key `i` (any round).
fn is_value_of(got: &[u8], i: usize) -> bool {
    got.strip_prefix(format!("k{i}:round ").as_bytes())
        .and_then(|r| std::str::from_utf8(r).ok())
        .is_some_and(|r| r.parse::<usize>().is_ok())
}

#[test]
fn keys_spread_over_every_master_and_travel_between_two_files() {
    let cluster = RedisCluster::start(3);
    let dir = tempfile::tempdir().unwrap();
    let o = cluster_options(&cluster);
    let a = machine(&dir, "a.db", &o);
    let b = machine(&dir, "b.db", &o);
    assert!(a.remote_stats().unwrap().connected);
    set_all(&a, 0);
    let sizes = cluster.sizes();
    assert!(sizes.iter().all(|&n| n > 0), "keys per master: {sizes:?}");
    // And the generation key, made by the first open.
    assert_eq!(sizes.iter().sum::<u64>(), KEYS as u64 + 1);
    for i in 0..KEYS {
        assert_eq!(get(&b, &key(i)), Some(value(i, 0)), "key {i}");
    }
    let st = b.remote_stats().unwrap();
    assert_eq!((st.hits, st.misses, st.errors), (KEYS as u64, 0, 0));
    assert_eq!(a.remote_stats().unwrap().errors, 0);
    // Delete and set-many reach the cluster too.
    assert!(b.delete(&key(0)).unwrap());
    let entries: Vec<(Vec<u8>, Vec<u8>)> = (0..KEYS).map(|i| (key(i), value(i, 1))).collect();
    let many: Vec<backlite::Entry<'_>> = entries[1..]
        .iter()
        .map(|(k, v)| backlite::Entry {
            key: k,
            value: v,
            expiration: NEVER,
        })
        .collect();
    a.set_many(&many).unwrap();
    let c = machine(&dir, "c.db", &o);
    assert_eq!(get(&c, &key(0)), None);
    for i in 1..KEYS {
        assert_eq!(get(&c, &key(i)), Some(value(i, 1)), "key {i}");
    }
    assert_eq!(c.remote_stats().unwrap().errors, 0);
}

#[test]
fn clear_hides_every_earlier_entry_at_once_and_reclaims_every_master() {
    let cluster = RedisCluster::start(3);
    let dir = tempfile::tempdir().unwrap();
    let o = cluster_options(&cluster);
    let a = machine(&dir, "a.db", &o);
    // Opened before the clear: it knows the old generation.
    let early = machine(&dir, "early.db", &o);
    set_all(&a, 0);
    assert!(cluster.sizes().iter().all(|&n| n > 0));
    a.clear().unwrap();
    for i in 0..KEYS {
        assert_eq!(get(&early, &key(i)), None, "key {i} seen after the clear");
    }
    let late = machine(&dir, "late.db", &o);
    assert_eq!(get(&late, &key(7)), None);
    // Only the generation key is left, on whichever master owns its slot.
    assert_eq!(
        cluster.sizes().iter().sum::<u64>(),
        1,
        "{:?}",
        cluster.sizes()
    );
    // Writes after the clear are seen by everyone, also the early handle.
    a.set(&key(7), &value(7, 1), NEVER).unwrap();
    assert_eq!(get(&late, &key(7)), Some(value(7, 1)));
    let fresh = machine(&dir, "fresh.db", &o);
    assert_eq!(get(&fresh, &key(7)), Some(value(7, 1)));
    for s in [&a, &early, &late, &fresh] {
        assert_eq!(s.remote_stats().unwrap().errors, 0);
    }
}

/// On a cluster the generation and a value lie on different masters; the read still
/// checks the generation in the same round trip, so after another client's clear a
/// value of the old generation left on its master (a reclaim that had not reached it)
/// is never returned.
#[test]
fn a_read_after_another_clients_clear_never_returns_a_value_of_the_old_generation() {
    let cluster = RedisCluster::start(3);
    let dir = tempfile::tempdir().unwrap();
    let o = cluster_options(&cluster);
    let a = machine(&dir, "a.db", &o);
    let b = machine(&dir, "b.db", &o);
    let cli = |args: &[&str]| cluster.nodes[0].cli(&[&["-c"], args].concat());
    set_all(&b, 0);
    // a reads through in the generation before the clear, and remembers it.
    assert_eq!(get(&a, &key(0)), Some(value(0, 0)));
    // Keys on every master, the generation's own among them.
    let old: Vec<String> = (1..KEYS)
        .step_by(7)
        .map(|i| value_key(&cluster, &format!("k{i}")))
        .collect();
    for k in &old {
        assert_eq!(cli(&["COPY", k, &format!("stash{k}")]), "1");
    }
    b.clear().unwrap();
    for (n, i) in (1..KEYS).step_by(7).enumerate() {
        b.set(&key(i), &value(i, 1), NEVER).unwrap();
        assert_eq!(cli(&["RENAME", &format!("stash{}", old[n]), &old[n]]), "OK");
    }
    for i in (1..KEYS).step_by(7) {
        assert_eq!(
            get(&a, &key(i)),
            Some(value(i, 1)),
            "a read the old generation of key {i}"
        );
    }
    assert_eq!(a.remote_stats().unwrap().errors, 0);
}

#[test]
fn single_flight_on_a_cluster_computes_once() {
    let cluster = RedisCluster::start(3);
    let dir = tempfile::tempdir().unwrap();
    let o = cluster_options(&cluster);
    let computes = Arc::new(AtomicUsize::new(0));
    let start = Arc::new(Barrier::new(4));
    // Four files: only the remote lease can keep them from computing four times.
    let threads: Vec<_> = (0..4)
        .map(|i| {
            let s = Arc::new(machine(&dir, &format!("m{i}.db"), &o));
            let (computes, start) = (computes.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                s.cached_call_exclusive(b"expensive", NEVER, Duration::from_secs(20), || {
                    computes.fetch_add(1, SeqCst);
                    std::thread::sleep(Duration::from_millis(300));
                    Ok(b"computed once".to_vec())
                })
                .unwrap()
            })
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap(), b"computed once");
    }
    assert_eq!(computes.load(SeqCst), 1, "computed more than once");
}

/// Sets every key to its value of `round`, deleting every seventh right after its set.
fn write_round_deleting_sevenths(s: &Storage, round: usize) {
    for i in 0..KEYS {
        s.set(&key(i), &value(i, round), NEVER).unwrap();
        if i % 7 == 0 {
            s.delete(&key(i)).unwrap();
        }
    }
}

/// How many keys `fresh` reads from the remote after rounds of
/// [`write_round_deleting_sevenths`]: each holds its value of `round` or nothing, and
/// no deleted key has a value.
fn last_round_or_nothing(fresh: &Storage, round: usize) -> usize {
    let mut found = 0;
    for i in 0..KEYS {
        let v = get(fresh, &key(i));
        if i % 7 == 0 {
            assert_eq!(v, None, "deleted key {i}");
        } else {
            assert!(
                v.is_none() || v == Some(value(i, round)),
                "key {i}: {v:?}, not round {round}"
            );
        }
        found += usize::from(v.is_some());
    }
    found
}

/// Looks a key up through `s` until its remote is connected again (a look-up is what
/// tries a backed-off remote again), for at most `patience`.
fn wait_until_connected(s: &Storage, patience: Duration) {
    let give_up = Instant::now() + patience;
    loop {
        assert_eq!(get(s, b"probe-absent"), None);
        if s.remote_stats().unwrap().connected {
            break;
        }
        assert!(Instant::now() < give_up, "never reconnected");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Reads every key from the remote (the read-only handle's local file is emptied
/// first, which stays local) and checks each value found is one written under that key.
fn check_remote_values(reader: &Storage) -> (usize, usize) {
    reader.clear().unwrap();
    let (mut found, mut missed) = (0, 0);
    for i in 0..KEYS {
        match get(reader, &key(i)) {
            Some(v) => {
                assert!(is_value_of(&v, i), "key {i}: wrong value {v:?}");
                found += 1;
            }
            None => missed += 1,
        }
    }
    (found, missed)
}

fn read_only(o: &Options) -> Options {
    let mut o = o.clone();
    o.set_remote_mode(RemoteMode::ReadOnly);
    o
}

#[test]
fn a_resharding_while_calls_run_never_gives_a_wrong_value() {
    let cluster = RedisCluster::start(3);
    let dir = tempfile::tempdir().unwrap();
    let o = cluster_options(&cluster);
    let a = machine(&dir, "a.db", &o);
    let reader = machine(&dir, "reader.db", &read_only(&o));
    set_all(&a, 0);
    let before = cluster.slots();
    let (from, to) = (cluster.id(0), cluster.id(1));
    let mut reshard = std::process::Command::new("redis-cli")
        .args([
            "--cluster",
            "reshard",
            &format!("127.0.0.1:{}", cluster.nodes[0].port),
        ])
        .args(["--cluster-from", &from, "--cluster-to", &to])
        .args(["--cluster-slots", "3000", "--cluster-yes"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut round = 1;
    loop {
        let done = reshard.try_wait().unwrap();
        for i in 0..KEYS {
            a.set(&key(i), &value(i, round), NEVER).unwrap();
            assert_eq!(get(&a, &key(i)), Some(value(i, round)));
        }
        check_remote_values(&reader);
        round += 1;
        if let Some(status) = done {
            assert!(status.success(), "redis-cli --cluster reshard failed");
            break;
        }
    }
    cluster.wait_ok();
    // The move itself, counted in slots: a key count would also count the writes `a`
    // skipped and unlinked while it backed off during the move.
    let after = cluster.slots();
    assert!(
        after[1] == before[1] + 3000 && after[0] == before[0] - 3000,
        "slots {before:?} -> {after:?}"
    );
    // A write that failed during the move (or was skipped while `a` backed off) is
    // unlinked at `a`'s next round trip: then every key holds what was written last,
    // wherever its slot went, or nothing; never an older value.
    wait_until_connected(&a, Duration::from_secs(30));
    let fresh = machine(&dir, "fresh.db", &o);
    let mut found = 0;
    for i in 0..KEYS {
        let v = get(&fresh, &key(i));
        assert!(
            v.is_none() || v == Some(value(i, round - 1)),
            "key {i}: {v:?}, not round {}",
            round - 1
        );
        found += usize::from(v.is_some());
    }
    assert!(found > 0, "no key reached the remote after the resharding");
    assert_eq!(fresh.remote_stats().unwrap().errors, 0);
}

/// The server (index into `cluster.nodes`) that owns hash slot `slot`, from its own
/// line of `CLUSTER NODES`.
/// The Redis key of a short key's value in the live generation (no version tag).
fn value_key(cluster: &RedisCluster, key: &str) -> String {
    let found = cluster.nodes[0].cli(&["-c", "GET", "backlite::gen"]);
    let gen: u64 = found
        .parse()
        .unwrap_or_else(|_| panic!("generation {found:?}"));
    format!("backlite::d{{{gen:x}:{key}}}")
}

/// One slot in trouble (its owner sends its keys to another server, which sends them
/// back: every call on that slot fails with MOVED, as during a move) backs off that
/// slot only: the other keys are still written and read, and the write lost in that
/// slot holds back its own key until it is unlinked, once the slot is well again.
#[test]
fn one_slot_in_trouble_backs_off_that_slot_only() {
    let cluster = RedisCluster::start(3);
    let dir = tempfile::tempdir().unwrap();
    let o = cluster_options(&cluster);
    let a = machine(&dir, "a.db", &o);
    let reader = machine(&dir, "reader.db", &read_only(&o));
    // No key is in the victim's slot yet (a server gives up a slot only when empty).
    let victim = b"victim";
    let slot = cluster.keyslot(&value_key(&cluster, "victim"));
    let owner = cluster.owner_of(slot);
    let other = (owner + 1) % cluster.nodes.len();
    let (owner_id, other_id) = (cluster.id(owner), cluster.id(other));
    let s = slot.to_string();
    assert_eq!(
        cluster.nodes[owner].cli(&["CLUSTER", "SETSLOT", &s, "NODE", &other_id]),
        "OK"
    );
    a.set(victim, b"lost", NEVER).unwrap();
    let st = a.remote_stats().unwrap();
    assert!(st.errors > 0, "the victim's write did not fail: {st:?}");
    // Every other key still goes through, right after that failure.
    let mut elsewhere = 0;
    for i in 0..KEYS {
        if cluster.keyslot(&value_key(&cluster, &format!("k{i}"))) == slot {
            continue;
        }
        elsewhere += 1;
        a.set(&key(i), &value(i, 1), NEVER).unwrap();
        assert_eq!(get(&reader, &key(i)), Some(value(i, 1)), "key {i}");
    }
    assert!(elsewhere > 0);
    // The slot comes back; after its back-off the lost write is unlinked, and the
    // victim is written again.
    assert_eq!(
        cluster.nodes[owner].cli(&["CLUSTER", "SETSLOT", &s, "NODE", &owner_id]),
        "OK"
    );
    // The slot's back-off grew each time the unlink owed there failed while the other
    // keys were written (on a loaded machine, up to its 30 s cap): a wait of 30 s for
    // the slot could end just before it was tried again.
    let give_up = Instant::now() + Duration::from_secs(75);
    for attempt in 0.. {
        a.set(victim, b"found", NEVER).unwrap();
        let fresh = machine(&dir, &format!("fresh{attempt}.db"), &read_only(&o));
        match get(&fresh, victim) {
            Some(v) => {
                assert_eq!(v, b"found");
                break;
            }
            None => assert!(Instant::now() < give_up, "the slot was never used again"),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_master_failure_is_counted_never_fails_a_call_and_the_cluster_is_used_again() {
    let mut cluster = RedisCluster::start(3);
    let dir = tempfile::tempdir().unwrap();
    let o = cluster_options(&cluster);
    let a = machine(&dir, "a.db", &o);
    let reader = machine(&dir, "reader.db", &read_only(&o));
    set_all(&a, 0);
    cluster.nodes[2].kill();
    // Every call goes on locally; what the remote answers is right or a miss.
    let give_up = Instant::now() + Duration::from_secs(60);
    let mut round = 1;
    while a.remote_stats().unwrap().errors == 0 || reader.remote_stats().unwrap().errors == 0 {
        assert!(Instant::now() < give_up, "the failure was never counted");
        for i in 0..KEYS {
            a.set(&key(i), &value(i, round), NEVER).unwrap();
            assert_eq!(get(&a, &key(i)), Some(value(i, round)));
        }
        check_remote_values(&reader);
        round += 1;
    }
    assert!(!reader.remote_stats().unwrap().connected || check_remote_values(&reader).1 > 0);
    // Back: the same node (its nodes.conf kept) rejoins, and after the back-off the
    // cluster answers again.
    cluster.nodes[2].restart();
    cluster.wait_ok();
    let give_up = Instant::now() + Duration::from_secs(60);
    loop {
        set_all(&a, round);
        let (found, _) = check_remote_values(&reader);
        if found == KEYS {
            break;
        }
        assert!(Instant::now() < give_up, "the cluster was not used again");
        std::thread::sleep(Duration::from_millis(100));
    }
    let fresh = machine(&dir, "fresh.db", &o);
    for i in 0..KEYS {
        assert_eq!(get(&fresh, &key(i)), Some(value(i, round)), "key {i}");
    }
}

/// A write lost in a backed-off slot before another client's clear, which this handle
/// had not read, is undone in the live generation too (a609270), once its slot is well
/// again; until then the key is not read there either. This handle's next look-up of
/// the key, made once it had learned the clear from another key, read the value
/// another machine set after that clear, older than the lost delete, and kept it:
/// the key was held back only in the generation of the lost write.
#[test]
fn a_key_lost_in_a_backed_off_slot_is_not_read_in_the_next_generation() {
    let cluster = RedisCluster::start(3);
    let dir = tempfile::tempdir().unwrap();
    let o = cluster_options(&cluster);
    let a = machine(&dir, "a.db", &o); // knows the first generation
    let b = machine(&dir, "b.db", &o);
    let victim = b"victim";
    let slot = cluster.keyslot(&value_key(&cluster, "victim"));
    let owner = cluster.owner_of(slot);
    let other = (owner + 1) % cluster.nodes.len();
    let other_id = cluster.id(other);
    let s = slot.to_string();
    b.clear().unwrap();
    b.set(victim, b"set after the clear", NEVER).unwrap();
    assert_eq!(b.remote_stats().unwrap().errors, 0);
    // The first generation's slot of the victim in trouble: a's delete, made after b's set,
    // never reaches the remote.
    assert_eq!(
        cluster.nodes[owner].cli(&["CLUSTER", "SETSLOT", &s, "NODE", &other_id]),
        "OK"
    );
    a.delete(victim).unwrap();
    assert!(
        a.remote_stats().unwrap().errors > 0,
        "the delete reached the remote"
    );
    // a learns the clear from another key.
    assert_eq!(get(&a, &key(0)), None);
    assert_eq!(
        get(&a, victim),
        None,
        "read back a value older than the delete"
    );
}

/// A master killed while calls run, with a replica to take its slots over
/// (`--cluster-replicas 1`): every call goes on locally, the remote answers with a
/// value of the key or a miss, the failure is counted, and once the replica is
/// promoted the cluster is used again: a fresh machine reads the latest values.
#[test]
fn a_master_failing_over_to_its_replica_never_gives_a_wrong_value() {
    let mut cluster = RedisCluster::with_replicas(3, 1);
    let dir = tempfile::tempdir().unwrap();
    let o = cluster_options(&cluster);
    let a = machine(&dir, "a.db", &o);
    let reader = machine(&dir, "reader.db", &read_only(&o));
    set_all(&a, 0);
    let masters: Vec<usize> = (0..cluster.nodes.len())
        .filter(|&i| {
            cluster.nodes[i]
                .cli(&["INFO", "replication"])
                .contains("role:master")
        })
        .collect();
    assert_eq!(masters.len(), 3);
    for &m in &masters {
        // The replica has what was written: what it serves after the failover.
        assert_eq!(cluster.nodes[m].cli(&["WAIT", "1", "10000"]), "1");
    }
    cluster.nodes[masters[0]].kill();
    let give_up = Instant::now() + Duration::from_secs(90);
    let mut round = 1;
    loop {
        let written = a.remote_stats().unwrap().writes;
        for i in 0..KEYS {
            a.set(&key(i), &value(i, round), NEVER).unwrap();
            assert_eq!(get(&a, &key(i)), Some(value(i, round)));
        }
        // Every set of the round reached the remote: a is past its back-off. A set
        // skipped while a slot is backed off leaves the remote's older value (round 0
        // here) for others to read, so the reader finding every key is not enough.
        let all_written = a.remote_stats().unwrap().writes - written == KEYS as u64;
        let (found, _) = check_remote_values(&reader);
        if found == KEYS && a.remote_stats().unwrap().errors > 0 && all_written {
            break;
        }
        assert!(
            Instant::now() < give_up,
            "the replica was never used: {found} found"
        );
        std::thread::sleep(Duration::from_millis(100));
        round += 1;
    }
    set_all(&a, round + 1);
    let fresh = machine(&dir, "fresh.db", &o);
    let writer = a.remote_stats().unwrap();
    for i in 0..KEYS {
        assert_eq!(
            get(&fresh, &key(i)),
            Some(value(i, round + 1)),
            "key {i}; the writer's {writer:?}"
        );
    }
    let st = fresh.remote_stats().unwrap();
    assert_eq!((st.hits, st.errors), (KEYS as u64, 0));
}

/// Writing behind while `redis-cli --cluster reshard` moves 5,000 slots: the queue's
/// batches span slots in move (MOVED, ASK, TRYAGAIN), and every seventh key is deleted
/// right after its set. Once the queue is sent, each key holds the last value written
/// or nothing, and no deleted key has a value; never an older one.
#[test]
fn writing_behind_through_a_resharding_never_leaves_an_older_value() {
    let cluster = RedisCluster::start(3);
    let dir = tempfile::tempdir().unwrap();
    let o = cluster_options(&cluster);
    let mut wo = o.clone();
    wo.set_remote_mode(RemoteMode::WriteBehind);
    let a = machine(&dir, "a.db", &wo);
    let reader = machine(&dir, "reader.db", &read_only(&o));
    set_all(&a, 0);
    let (from, to) = (cluster.id(0), cluster.id(1));
    let mut reshard = std::process::Command::new("redis-cli")
        .args([
            "--cluster",
            "reshard",
            &format!("127.0.0.1:{}", cluster.nodes[0].port),
        ])
        .args(["--cluster-from", &from, "--cluster-to", &to])
        .args(["--cluster-slots", "5000", "--cluster-yes"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut round = 1;
    loop {
        let done = reshard.try_wait().unwrap();
        write_round_deleting_sevenths(&a, round);
        check_remote_values(&reader);
        round += 1;
        if done.is_some() {
            break;
        }
    }
    cluster.wait_ok();
    // `a` may back off after the move: once it reaches the cluster again, what it
    // owes is paid before its next writes; a last round is written to the settled
    // cluster, and freeing `a` sends what is queued.
    wait_until_connected(&a, Duration::from_secs(60));
    write_round_deleting_sevenths(&a, round);
    round += 1;
    drop(a);
    let fresh = machine(&dir, "fresh.db", &o);
    let found = last_round_or_nothing(&fresh, round - 1);
    assert!(found > 0, "no key reached the remote after the resharding");
}

/// Writing behind while a master is killed and its replica takes its slots over: the
/// queue's batches to that master fail (counted), what they carried is owed and undone
/// once the cluster answers again, and every seventh key is deleted right after its
/// set. Once the queue is sent, each key holds the last value written or nothing, no
/// deleted key has a value, and the handle is used again without an error.
#[test]
fn writing_behind_through_a_master_failover_never_leaves_an_older_value() {
    let mut cluster = RedisCluster::with_replicas(3, 1);
    let dir = tempfile::tempdir().unwrap();
    let o = cluster_options(&cluster);
    let mut wo = o.clone();
    wo.set_remote_mode(RemoteMode::WriteBehind);
    let a = machine(&dir, "a.db", &wo);
    let reader = machine(&dir, "reader.db", &read_only(&o));
    write_round_deleting_sevenths(&a, 0);
    let master = (0..cluster.nodes.len())
        .find(|&i| {
            cluster.nodes[i]
                .cli(&["INFO", "replication"])
                .contains("role:master")
        })
        .unwrap();
    // The replica is in sync: it takes the slots over once its master is killed.
    assert_eq!(cluster.nodes[master].cli(&["WAIT", "1", "10000"]), "1");
    cluster.nodes[master].kill();
    let mut round = 1;
    let give_up = Instant::now() + Duration::from_secs(90);
    while a.remote_stats().unwrap().errors == 0 || round < 5 {
        assert!(Instant::now() < give_up, "the failure was never counted");
        write_round_deleting_sevenths(&a, round);
        check_remote_values(&reader);
        round += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    cluster.wait_ok();
    wait_until_connected(&a, Duration::from_secs(90));
    write_round_deleting_sevenths(&a, round);
    let before = a.remote_stats().unwrap();
    drop(a);
    let fresh = machine(&dir, "fresh.db", &o);
    let found = last_round_or_nothing(&fresh, round);
    assert!(
        found > 0,
        "no key reached the remote after the failover: {before:?}"
    );
}

/// On a cluster too, a key of another type than a string under a key of ours (some
/// other program's list) is a miss, not an error that backs the cluster off: the crate's
/// cluster pipeline fails whole on the GET's WRONGTYPE, so the generation and the time
/// left are asked again without the value.
#[test]
fn a_key_of_another_type_is_a_miss_on_a_cluster_too() {
    let cluster = RedisCluster::start(3);
    let dir = tempfile::tempdir().unwrap();
    let o = cluster_options(&cluster);
    let a = machine(&dir, "a.db", &o);
    a.set(b"k", b"v", NEVER).unwrap();
    let list = value_key(&cluster, "list");
    cluster.nodes[0].cli(&["-c", "LPUSH", &list, "x"]);
    let b = machine(&dir, "b.db", &o);
    assert_eq!(get(&b, b"list"), None);
    assert_eq!(get(&b, b"k").as_deref(), Some(&b"v"[..]));
    let st = b.remote_stats().unwrap();
    assert_eq!(
        (st.hits, st.misses, st.errors, st.skipped, st.connected),
        (1, 1, 0, 0, true),
        "{st:?}"
    );
}

/// A clear on a cluster whose masters are over their `maxmemory` under `noeviction`
/// (full of this namespace's values): the script that makes the generation is refused
/// (one error), the keys are unlinked on every master, and the script run again makes
/// it. Another machine misses every value set before the clear, and writes reach the
/// cluster again.
#[test]
fn a_clear_on_a_full_cluster_under_noeviction_reaches_it() {
    let cluster = RedisCluster::start(3);
    let dir = tempfile::tempdir().unwrap();
    let o = cluster_options(&cluster);
    let a = machine(&dir, "a.db", &o);
    let big = vec![7u8; 16 << 10];
    for i in 0..KEYS {
        a.set(&key(i), &big, NEVER).unwrap();
    }
    for node in &cluster.nodes {
        let max = (node.used_memory() - (512 << 10)).to_string();
        assert_eq!(
            node.cli(&["CONFIG", "SET", "maxmemory-policy", "noeviction"]),
            "OK"
        );
        assert_eq!(node.cli(&["CONFIG", "SET", "maxmemory", &max]), "OK");
    }
    a.clear().unwrap();
    let st = a.remote_stats().unwrap();
    assert_eq!(
        (st.writes, st.errors, st.connected),
        (KEYS as u64 + 1, 1, true),
        "{st:?}"
    );
    let b = machine(&dir, "b.db", &o);
    for i in 0..KEYS {
        assert_eq!(get(&b, &key(i)), None, "key {i} seen after the clear");
    }
    assert_eq!(
        cluster.sizes().iter().sum::<u64>(),
        1,
        "{:?}",
        cluster.sizes()
    );
    a.set(&key(7), &value(7, 1), NEVER).unwrap();
    assert_eq!(get(&b, &key(7)), Some(value(7, 1)));
}

/// A cluster node named by a plain `redis://` URL (a user who wrote the address of one
/// node of a Redis Cluster, not `redis+cluster://`) answers MOVED for the keys it does
/// not serve. On one server that is a failure like any other: counted, and the remote
/// skipped for the back-off. It backed off a cluster slot that a single server's calls
/// never look at, so every call went to the server again (a new connection each time)
/// and failed again, never skipped.
#[test]
fn a_cluster_node_named_as_one_server_is_backed_off_when_it_answers_moved() {
    let cluster = RedisCluster::start(3);
    let dir = tempfile::tempdir().unwrap();
    // The node that does not serve the generation key: each of its reads is MOVED.
    let (_, served) = generation_slot(&cluster);
    let node = &cluster.nodes[(served + 1) % cluster.nodes.len()];
    let a = machine(&dir, "a.db", &remote_options(&node.url()));
    let st = gets_are_backed_off(&a);
    assert_eq!(st.errors + st.skipped, GETS + 1, "{st:?}");
}

/// The hash slot of the generation key (no version tag) and the server that owns it.
fn generation_slot(cluster: &RedisCluster) -> (u64, usize) {
    let slot = cluster.keyslot("backlite::gen");
    (slot, cluster.owner_of(slot))
}

const GETS: u64 = 50;

/// `GETS` look-ups on `a`, whose every round trip fails: each a miss, and the remote
/// backed off (some skipped, fewer errors than calls). Returns `a`'s counters.
fn gets_are_backed_off(a: &Storage) -> backlite::RemoteStats {
    for i in 0..GETS as usize {
        assert_eq!(get(a, &key(i)), None, "key {i}");
    }
    let st = a.remote_stats().unwrap();
    assert!(!st.connected, "{st:?}");
    assert!(
        st.skipped > 0 && st.errors < GETS,
        "never backed off: {st:?}"
    );
    st
}

/// Masters configured with `cluster-replica-no-failover yes` (failovers left to the
/// operator) carry the flag `nofailover` in `CLUSTER NODES`: they are masters like any
/// other, and a clear reclaims their keys. The flag was read as `fail` (a failed
/// node), every master was skipped, and the values of before the clear stayed on the
/// cluster for good (a value without expiry is never freed otherwise).
#[test]
fn a_clear_reclaims_masters_that_are_flagged_nofailover() {
    let cluster = RedisCluster::start(3);
    for node in &cluster.nodes {
        assert_eq!(
            node.cli(&["CONFIG", "SET", "cluster-replica-no-failover", "yes"]),
            "OK"
        );
    }
    // Each node learns the others' flags from their pings.
    let give_up = Instant::now() + Duration::from_secs(30);
    for node in &cluster.nodes {
        while node
            .cli(&["CLUSTER", "NODES"])
            .matches("nofailover")
            .count()
            < 3
        {
            assert!(Instant::now() < give_up, "the flag did not spread");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let o = cluster_options(&cluster);
    let a = machine(&dir, "a.db", &o);
    set_all(&a, 0);
    assert!(cluster.sizes().iter().all(|&n| n > 0));
    a.clear().unwrap();
    // Only the generation key is left, on whichever master owns its slot.
    assert_eq!(
        cluster.sizes().iter().sum::<u64>(),
        1,
        "{:?}",
        cluster.sizes()
    );
    assert_eq!(a.remote_stats().unwrap().errors, 0);
}

/// The generation key's slot in trouble (every call on it fails with MOVED, as in
/// `one_slot_in_trouble_backs_off_that_slot_only`): every round trip reads that key,
/// so every call fails, and the remote is backed off whole. The error backed off the
/// generation's slot alone, which no call looks at before it sends (each looks at its
/// own keys' slots): every call was sent and failed again, never skipped.
#[test]
fn the_generation_slot_in_trouble_backs_the_remote_off() {
    let cluster = RedisCluster::start(3);
    // Before any handle opens, so that the slot is empty and may be given away.
    let (slot, owner) = generation_slot(&cluster);
    let other = cluster.id((owner + 1) % cluster.nodes.len());
    assert_eq!(
        cluster.nodes[owner].cli(&["CLUSTER", "SETSLOT", &slot.to_string(), "NODE", &other]),
        "OK"
    );
    let dir = tempfile::tempdir().unwrap();
    let a = machine(&dir, "a.db", &cluster_options(&cluster));
    gets_are_backed_off(&a);
}

/// A cluster of one master (a developer's or a test's), which never met another node
/// and lists itself in `CLUSTER NODES` with no address (`:port@bus`): a clear reclaims
/// its keys, reached at the address the URL gives it. It tried the empty host, failed
/// (an error, the remote backed off), and every value of before the clear stayed.
#[test]
fn a_clear_reclaims_a_one_node_cluster_that_lists_itself_without_an_address() {
    let cluster = RedisCluster::one_node();
    let nodes = cluster.nodes[0].cli(&["CLUSTER", "NODES"]);
    assert!(
        nodes.contains(&format!(" :{}@", cluster.nodes[0].port)),
        "{nodes}"
    );
    let dir = tempfile::tempdir().unwrap();
    let a = machine(&dir, "a.db", &cluster_options(&cluster));
    set_all(&a, 0);
    assert_eq!(cluster.sizes(), [KEYS as u64 + 1]);
    a.clear().unwrap();
    assert_eq!(cluster.sizes(), [1]);
    let st = a.remote_stats().unwrap();
    assert_eq!((st.errors, st.connected), (0, true), "{st:?}");
}
