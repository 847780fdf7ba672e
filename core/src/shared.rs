//! What the handles of one process on one file share: the buffer of hits and the turn
//! to write (so the eviction order is exact across them), and the signal that a lease
//! was released (so waiters in this process wake at once instead of polling).

use crate::access::AccessLog;
use crate::error::Result;
use crate::fork;
use crate::schema::FileId;
use crate::sync::{lock, try_lock};
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How many files of the rows one write removes it holds open under a shared lock until
/// they are unlinked (`FileShared::unlinking`): a set, delete or eviction removes a
/// few; a clear of many files does not hold a descriptor for each (those past this are
/// left to this process's own record, as before).
const HELD_UNLINKS: usize = 64;

/// The longest a wait for this process's turn to write goes without asking the
/// caller's interrupt check (interrupt.rs).
const INTERRUPT_CHECK_EVERY: Duration = Duration::from_millis(50);

#[derive(Default)]
pub(crate) struct FileShared {
    /// The name every connection of this process opens the file by: SQLite names the
    /// `-wal` and `-shm` files after it, so a second name (a hard link) must not be used.
    pub name: PathBuf,
    /// The file's device and inode: a connection opened later by `name` must reach it.
    pub id: FileId,
    /// Read through `accesses()`, which drops what a forked child inherited.
    accesses: AccessLog,
    /// Held through each write transaction of any handle of this process on the file,
    /// so that every transaction finds every hit ticked so far in the buffer (never
    /// taken out by another handle's transaction). SQLite's write lock serialises
    /// these transactions anyway; this only makes the order visible here first.
    writing: Mutex<Turn>,
    turn_free: Condvar,
    /// The hit writers started here, with the process that started them (a forked
    /// child inherits the parent's handles, but not its threads).
    hit_writers: Mutex<Vec<(u32, JoinHandle<()>)>>,
    /// Hits and misses not yet added to the file's lifetime counters.
    pub lifetime: crate::lifetime::Pending,
    /// Write transactions committed by any handle of this process on the file: a
    /// `keys` listing whose visitor wrote (through whichever handle) looks the rest of
    /// its page up again.
    pub commits: std::sync::atomic::AtomicU64,
    /// Counts lease releases; waiters sleep until it changes.
    releases: Mutex<u64>,
    released: Condvar,
    /// The tokens of the leases a thread of this process renews while their value is
    /// computed (lease.rs): such a holder is running, so its key stays held even when
    /// a renewal comes late (a loaded machine, a lease of a few ms).
    renewed: Mutex<std::collections::HashSet<i64>>,
    /// Values read through from the remote, not written to the file yet (remote/fill.rs).
    pub fills: crate::remote::fill::Fills,
    /// The deletes, writes and clears that did not reach a remote (remote/mod.rs).
    pub remote_owed: crate::remote::Owed,
    /// The folder of the values kept in files, once found or made (value_files.rs).
    values: std::sync::OnceLock<crate::value_files::ValueFiles>,
    /// The value files of rows removed by this process's writes, from just before
    /// their commit until they are unlinked (after it, once the writer is free): no row
    /// names them, yet they are no orphans, so a sweep leaves them (check.rs `sweep`).
    /// With each (up to [`HELD_UNLINKS`] a write) the file open under a shared `flock`
    /// (`ValueFiles::hold`), so that another process's sweep leaves it too.
    unlinking: Mutex<std::collections::HashMap<String, Option<std::fs::File>>>,
}

impl FileShared {
    /// The folder of this file's values kept in files: `None` for an in-memory cache,
    /// or when there is none and `create` is false. Made (with `create`) on the first
    /// set of a value that goes to a file.
    pub fn value_files(&self, create: bool) -> Result<Option<&crate::value_files::ValueFiles>> {
        if let Some(v) = self.values.get() {
            return Ok(Some(v));
        }
        if self.name.as_os_str().is_empty() {
            return Ok(None);
        }
        if create && !self.still_named() {
            // The folder beside a name that no longer leads here is not this file's.
            return Err(crate::error::Error::file_gone(&self.name));
        }
        Ok(
            match crate::value_files::ValueFiles::open(&self.name, create)? {
                Some(v) => Some(self.values.get_or_init(|| v)),
                None => None,
            },
        )
    }

    /// Marks `names`, the files of the rows a write is about to commit the removal
    /// of, as being unlinked (see `unlinking`).
    pub fn unlinking(&self, names: &[String]) {
        if names.is_empty() {
            return;
        }
        let files = self.value_files(false).ok().flatten();
        let held: Vec<_> = names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let file = files
                    .filter(|_| i < HELD_UNLINKS)
                    .and_then(|f| f.hold(name));
                (name.clone(), file)
            })
            .collect();
        lock(&self.unlinking).extend(held);
    }

    /// Forgets `names` as being unlinked: their write did not commit (its rows still
    /// name them), or they are gone. Closing a held file lets its lock go.
    pub fn forget_unlinking(&self, names: &[String]) {
        if !names.is_empty() {
            let mut unlinking = lock(&self.unlinking);
            for name in names {
                unlinking.remove(name);
            }
        }
    }

    /// Whether the value file `name` is one a committed write of this process removed
    /// the row of and that is being unlinked.
    pub fn is_unlinking(&self, name: &str) -> bool {
        lock(&self.unlinking).contains_key(name)
    }

    /// Removes the value files `names` of rows that committed writes removed, best
    /// effort, then forgets them as being unlinked.
    /// With none, removes only those earlier calls left for want of a file descriptor.
    pub fn unlink(&self, names: &[String]) {
        if names.is_empty() {
            if let Some(files) = self.values.get() {
                files.remove_left();
            }
            return;
        }
        if let Ok(Some(files)) = self.value_files(false) {
            let parsed: Vec<_> = names
                .iter()
                .filter_map(|n| crate::value_files::ValueName::parse(n))
                .collect();
            let _ = files.remove_all(&parsed);
        }
        self.forget_unlinking(names);
    }

    /// The folder of value files to sweep for orphans: this file's, if its name still
    /// leads to it. Once the file was deleted or replaced while open, the folder at its
    /// name may be another cache's, whose files no row of this one names: a sweep
    /// would take every one of them for an orphan.
    pub fn folder_to_sweep(&self) -> Result<Option<&crate::value_files::ValueFiles>> {
        match self.still_named() {
            true => self.value_files(false),
            false => Ok(None),
        }
    }

    /// The name of this file, if it is one and its name still leads to it: where to
    /// look for what was left beside it (see `folder_to_sweep`).
    pub fn name_to_sweep(&self) -> Option<&std::path::Path> {
        (!self.name.as_os_str().is_empty() && self.still_named()).then_some(self.name.as_path())
    }

    /// An error if this file's name no longer leads to it (it was moved, deleted or
    /// replaced while open), for a value file found missing or damaged at its path:
    /// the folder may have moved with the file, its values whole, so that is no sign
    /// of damage, and the entry must stay for the file's next opener. (Asked only
    /// then: it costs a `stat` of the file.)
    pub fn still_here(&self) -> Result<()> {
        if self.name.as_os_str().is_empty() || self.still_named() {
            Ok(())
        } else {
            Err(crate::error::Error::file_gone(&self.name))
        }
    }

    /// An error if this file was emptied while open (see [`crate::schema::emptied`]):
    /// nothing may be written to it, its log included. Checked before each write.
    pub fn not_emptied(&self) -> Result<()> {
        if !self.name.as_os_str().is_empty() && crate::schema::emptied(&self.name, self.id) {
            Err(crate::error::Error::file_emptied(&self.name))
        } else {
            Ok(())
        }
    }

    /// Whether the name connections open the file by still leads to it.
    fn still_named(&self) -> bool {
        matches!(crate::schema::identify(&self.name), Ok(Some(id)) if id == self.id)
    }

    /// The buffered hits of this process. In a child forked from the process that
    /// buffered them, they are the parent's to write: the child starts empty.
    pub fn accesses(&self) -> &AccessLog {
        self.accesses_in(fork::this_process())
    }

    /// `accesses` in process `pid` (this one).
    pub fn accesses_in(&self, pid: u32) -> &AccessLog {
        self.accesses.belong_to(pid);
        &self.accesses
    }

    /// Keeps a hit writer just started, so that the last handle can wait for it.
    pub fn add_hit_writer(&self, writer: JoinHandle<()>) {
        let pid = fork::this_process();
        let mut writers = lock(&self.hit_writers);
        fork::set_aside_threads(&mut writers, pid);
        // Writers that are done are joined at once (they have nothing left to do).
        let (done, running) = writers.drain(..).partition(|(_, w)| w.is_finished());
        *writers = running;
        for (_, w) in done {
            let _ = w.join();
        }
        writers.push((pid, writer));
    }

    /// Waits until the hit writers of this process have ended.
    pub fn join_hit_writers(&self) {
        let pid = fork::this_process();
        let writers = {
            let mut writers = lock(&self.hit_writers);
            fork::set_aside_threads(&mut writers, pid);
            std::mem::take(&mut *writers)
        };
        for (_, w) in writers {
            let _ = w.join();
        }
    }

    /// Waits for this process's turn to write the file.
    #[cfg(test)]
    pub fn writing(&self) -> WriteTurn<'_> {
        self.writing_in(fork::this_process(), Duration::MAX)
            .expect("an unbounded wait ends with the turn")
    }

    /// `writing` in process `pid` (this one), waiting at most `patience` (the handle's
    /// busy timeout: another handle of this process holding the turn is lock
    /// contention as another process's write lock is). `None`: not had in time.
    pub fn writing_in(&self, pid: u32, patience: Duration) -> Option<WriteTurn<'_>> {
        let until = Instant::now().checked_add(patience);
        let mut turn = lock(&self.writing);
        while turn.holder == Some(pid) {
            let left = match until {
                Some(until) => until.saturating_duration_since(Instant::now()),
                None => Duration::MAX,
            };
            if left.is_zero() {
                return None;
            }
            turn.waiting += 1;
            // Woken at least every 50 ms to ask the caller's interrupt check
            // (interrupt.rs), without the lock: the check may wait for a runtime's lock.
            turn = match self
                .turn_free
                .wait_timeout(turn, left.min(INTERRUPT_CHECK_EVERY))
            {
                Ok((t, _)) => t,
                Err(e) => e.into_inner().0,
            };
            turn.waiting -= 1;
            if turn.holder == Some(pid) {
                drop(turn);
                if crate::interrupt::interrupted() {
                    return None;
                }
                turn = lock(&self.writing);
            }
        }
        turn.holder = Some(pid);
        Some(WriteTurn(self))
    }

    /// `writing_in`, taken only once no other thread of this process waits for it: the
    /// hit writer's next batch goes after the sets that waited for its last one.
    /// It yields for at most [`YIELD_AT_MOST`]: a steady stream of sets does not starve
    /// it, and a count of waiters inherited from a forked parent does not hold it.
    pub fn writing_after_others(&self, pid: u32) -> WriteTurn<'_> {
        let until = Instant::now() + YIELD_AT_MOST;
        let mut turn = lock(&self.writing);
        loop {
            let left = until.saturating_duration_since(Instant::now());
            let others_wait = turn.waiting > 0 && !left.is_zero();
            if turn.holder != Some(pid) && !others_wait {
                break;
            }
            turn.yielding += 1;
            turn = if others_wait {
                match self.turn_free.wait_timeout(turn, left) {
                    Ok((t, _)) => t,
                    Err(e) => e.into_inner().0,
                }
            } else {
                self.turn_free.wait(turn).unwrap_or_else(|e| e.into_inner())
            };
            turn.yielding -= 1;
        }
        turn.holder = Some(pid);
        WriteTurn(self)
    }

    /// Whether a thread of this process waits for its turn to write the file.
    pub fn others_wait_to_write(&self) -> bool {
        lock(&self.writing).waiting > 0
    }

    /// This process's turn to write the file, if no other handle has it.
    pub fn try_writing(&self) -> Option<WriteTurn<'_>> {
        let pid = fork::this_process();
        let mut turn = try_lock(&self.writing)?;
        if turn.holder == Some(pid) {
            return None;
        }
        turn.holder = Some(pid);
        Some(WriteTurn(self))
    }

    /// The current release count, to pass to `wait_for_release`.
    pub fn release_epoch(&self) -> u64 {
        *lock(&self.releases)
    }

    /// Wakes every waiter of this process.
    pub fn notify_release(&self) {
        *lock(&self.releases) += 1;
        self.released.notify_all();
    }

    /// Marks the lease `token` as renewed by a thread of this process, or no longer.
    pub fn set_renewed(&self, token: i64, renewed: bool) {
        let mut set = lock(&self.renewed);
        if renewed {
            set.insert(token);
        } else {
            set.remove(&token);
        }
    }

    /// Whether a thread of this process renews the lease `token`.
    pub fn is_renewed(&self, token: i64) -> bool {
        lock(&self.renewed).contains(&token)
    }

    /// Sleeps until a release after `epoch` or until `timeout` passes.
    pub fn wait_for_release(&self, epoch: u64, timeout: Duration) {
        let guard = lock(&self.releases);
        if *guard != epoch {
            return;
        }
        let _ = self
            .released
            .wait_timeout_while(guard, timeout, |n| *n == epoch);
    }
}

/// The turn to write a file, given back when dropped.
pub(crate) struct WriteTurn<'a>(&'a FileShared);

impl Drop for WriteTurn<'_> {
    fn drop(&mut self) {
        let mut turn = lock(&self.0.writing);
        turn.holder = None;
        // Waking nobody is still a system call: made only when a thread waits.
        if turn.waiting > 0 || turn.yielding > 0 {
            self.0.turn_free.notify_all();
        }
    }
}

/// Who has this process's turn to write a file, and how many threads wait for it.
#[derive(Default)]
struct Turn {
    /// The process that has the turn: a child forked while a thread of its parent (the
    /// hit writer, say) had it does not wait for a thread it does not have.
    holder: Option<u32>,
    /// Threads of this process waiting in [`FileShared::writing_in`].
    waiting: usize,
    /// Threads waiting in [`FileShared::writing_after_others`].
    yielding: usize,
}

/// How long the hit writer lets the sets waiting for this process's turn go first.
const YIELD_AT_MOST: Duration = Duration::from_millis(100);

impl Drop for FileShared {
    /// The last handle of this process on the file has closed its connections (each
    /// storage drops its pool before its share of this).
    fn drop(&mut self) {
        if !self.name.as_os_str().is_empty() {
            crate::schema::remove_log_of_replaced(&self.name, self.id);
        }
    }
}

/// Files are told apart by device and inode, so two paths to one file share.
/// A plain list: a process has few cache files open, and a hash table's interior
/// pointer would make leak checkers report this global as "possibly lost".
type OpenFiles = Vec<(FileId, Weak<FileShared>)>;
static FILES: Mutex<OpenFiles> = Mutex::new(Vec::new());

/// The state shared by this process's handles on file `id`, if one is open (or being
/// opened) here.
pub(crate) fn open_here(id: FileId) -> Option<Arc<FileShared>> {
    lock(&FILES)
        .iter()
        .find(|(i, _)| *i == id)
        .and_then(|(_, f)| f.upgrade())
}

/// Whether a file open here is opened by `name` (its SQLite name): one deleted since
/// keeps its `-wal` and `-shm` in use under that name.
pub(crate) fn named_here(name: &std::path::Path) -> bool {
    lock(&FILES)
        .iter()
        .filter_map(|(_, f)| f.upgrade())
        .any(|f| f.name == name)
}

/// Every file open here, without waiting for the list: for the writes at the process's
/// exit (`transact::write_waiting_at_exit`), where a thread stopped inside an open may
/// hold it for good.
pub(crate) fn open_files_now() -> Vec<Arc<FileShared>> {
    try_lock(&FILES)
        .map(|files| files.iter().filter_map(|(_, f)| f.upgrade()).collect())
        .unwrap_or_default()
}

/// Registers file `id`, opened by `name`, as open here. The caller holds
/// [`opening`] for `id` and found it not open here.
pub(crate) fn register(id: FileId, name: PathBuf) -> Arc<FileShared> {
    let mut files = lock(&FILES);
    files.retain(|(_, f)| f.strong_count() > 0);
    let mut shared = FileShared::default();
    (shared.name, shared.id) = (name, id);
    let shared = Arc::new(shared);
    files.push((id, Arc::downgrade(&shared)));
    shared
}

/// Files being recognised by a thread of this process.
static OPENING: Mutex<Vec<FileId>> = Mutex::new(Vec::new());
static OPENED: Condvar = Condvar::new();

/// Held while a thread checks that file `id` is not open here, reads its header and
/// registers it. Reading the header opens and closes a descriptor of the file, and
/// closing any descriptor drops every POSIX lock this process holds on it: so it must
/// not happen while another thread has connections to the file that are not
/// registered yet. Per file, so that one file never waits for another.
pub(crate) struct Opening(FileId);

pub(crate) fn opening(id: FileId) -> Opening {
    let mut busy = lock(&OPENING);
    while busy.contains(&id) {
        busy = OPENED.wait(busy).unwrap_or_else(|e| e.into_inner());
    }
    busy.push(id);
    Opening(id)
}

impl Drop for Opening {
    fn drop(&mut self) {
        lock(&OPENING).retain(|i| *i != self.0);
        OPENED.notify_all();
    }
}
