//! Who holds a lease: this process, identified well enough that another process on
//! the same host can tell when the holder has died (its pid is gone, is a zombie, or
//! was reused by a process with another start time).

use std::sync::Mutex;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Owner {
    pub pid: i64,
    /// Start time in clock ticks after boot (field 22 of /proc/PID/stat); 0 if unknown.
    pub start: i64,
    /// The kernel's boot id: equal boot ids mean the same host and boot. Empty if
    /// unknown, in which case only the lease deadline frees the lease.
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
                boot: boot_id(),
            };
            *cached = Some(me.clone());
            me
        }
    }
}

/// Whether `holder` is known to be dead. Only a holder on this host and boot can be
/// checked; any other is presumed alive until its deadline.
pub(crate) fn is_dead(holder: &Owner) -> bool {
    let me = current();
    if holder.boot.is_empty() || holder.boot != me.boot || holder.start == 0 {
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

fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
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
            ..me
        };
        assert!(!is_dead(&elsewhere));
    }
}
