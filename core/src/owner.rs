//! Who holds a lease: this process, identified well enough that another process on
//! the same host and in the same PID namespace can tell when the holder has died (its
//! pid is gone, is a zombie, or was reused by a process with another start time).
//!
//! A pid means nothing outside its PID namespace (two containers sharing a volume see
//! each other's pids as absent or as someone else), so the owner's `boot` names both
//! the host's boot and the PID namespace: `"<boot id>/<pid namespace inode>"`. Owners
//! that differ in either, or whose namespace is unknown (rows written by BackLite 0.1
//! carry the boot id alone), are presumed alive until their deadline.

use std::sync::Mutex;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Owner {
    pub pid: i64,
    /// Start time in clock ticks after boot (field 22 of /proc/PID/stat); 0 if unknown.
    pub start: i64,
    /// `"<boot id>/<pid namespace>"`: equal values mean the same host, boot and PID
    /// namespace, where `pid` can be looked up. Empty if unknown, in which case only
    /// the lease deadline frees the lease.
    pub boot: String,
}

/// Cached per pid, since a forked child is another owner.
static CURRENT: Mutex<Option<Owner>> = Mutex::new(None);

/// This process.
pub(crate) fn current() -> Owner {
    let pid = std::process::id() as i64;
    let mut cached = CURRENT.lock().unwrap_or_else(|e| e.into_inner());
    match cached.as_ref() {
        Some(me) if me.pid == pid => me.clone(),
        _ => {
            let me = Owner {
                pid,
                start: start_time(pid).unwrap_or(0),
                boot: host_and_namespace(),
            };
            *cached = Some(me.clone());
            me
        }
    }
}

/// Whether `holder` is known to be dead. Only a holder on this host and boot, in this
/// PID namespace, can be checked; any other is presumed alive until its deadline.
pub(crate) fn is_dead(holder: &Owner) -> bool {
    let me = current();
    if me.boot.is_empty() || holder.boot != me.boot || holder.start == 0 {
        return false;
    }
    start_time(holder.pid) != Some(holder.start)
}

/// The start time of a live process, or None if it is gone or a zombie.
fn start_time(pid: i64) -> Option<i64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?;
    if state == "Z" || state == "X" {
        return None;
    }
    // After the state (field 3), field 22 is the 19th.
    fields.nth(18)?.parse().ok()
}

/// `"<boot id>/<pid namespace inode>"`, or "" if either is unknown.
fn host_and_namespace() -> String {
    use std::os::unix::fs::MetadataExt;
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    // The inode of the namespace file names the namespace while it has a process.
    match std::fs::metadata("/proc/self/ns/pid") {
        Ok(ns) if !boot.is_empty() => format!("{boot}/{}", ns.ino()),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_missing_pid_is_dead() {
        let me = current();
        assert!(me.start > 0 && !me.boot.is_empty());
        assert!(!is_dead(&me));
        let gone = Owner {
            pid: i32::MAX as i64,
            ..me.clone()
        };
        assert!(is_dead(&gone));
        let reused = Owner {
            start: me.start + 1,
            ..me.clone()
        };
        assert!(is_dead(&reused));
        let elsewhere = Owner {
            boot: "another-host".into(),
            pid: i32::MAX as i64,
            ..me.clone()
        };
        assert!(!is_dead(&elsewhere));
        let (boot, _ns) = me.boot.split_once('/').unwrap();
        let other_namespace = Owner {
            boot: format!("{boot}/1"),
            pid: i32::MAX as i64,
            ..me.clone()
        };
        assert!(!is_dead(&other_namespace));
        let namespace_unknown = Owner {
            boot: boot.to_string(),
            pid: i32::MAX as i64,
            ..me
        };
        assert!(!is_dead(&namespace_unknown));
    }
}
