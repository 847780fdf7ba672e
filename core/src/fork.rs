//! What a child forked from a process with open handles does with what it inherited.
//! The child has copies of the parent's connections and the handles of its threads,
//! but they are the parent's: a connection closed here could checkpoint and delete the
//! WAL the parent is using (and its POSIX locks belong to the parent anyway), and the
//! threads do not exist here. So the child opens its own connections before first use
//! and sets the inherited ones aside, never closing or joining them.

use crate::sync::lock;
use rusqlite::Connection;
use std::mem::ManuallyDrop;
use std::sync::atomic::{
    AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering::Relaxed, Ordering::SeqCst,
};
use std::sync::{Mutex, OnceLock};
use std::thread::JoinHandle;

/// Connections a forked child inherited: never closed, and kept reachable so that leak
/// checkers do not report them. Process-wide: they outlive the handle that held them.
static INHERITED_CONNECTIONS: Mutex<Vec<ManuallyDrop<Connection>>> = Mutex::new(Vec::new());

/// The thread handles of a forked child's parent (hit writers): never joined (nor
/// detached), and kept reachable for leak checkers. Process-wide, as above.
static INHERITED_THREADS: Mutex<Vec<JoinHandle<()>>> = Mutex::new(Vec::new());

/// What a forked child inherited of its parent's threads that pump a value to a reader
/// (value_reader.rs): their channel and handle, never dropped (a lock of the channel may
/// have been held by the thread at the fork) nor joined, and kept reachable for leak
/// checkers. Process-wide, as above.
static INHERITED_PUMPS: Mutex<Vec<ManuallyDrop<Box<dyn Send>>>> = Mutex::new(Vec::new());

/// Whether the program reports its forks ([`report_forks`]): then this process's id
/// is asked of the kernel once per fork, not once per call.
static FORKS_REPORTED: AtomicBool = AtomicBool::new(false);

/// Forks reported in this process's line of descent: a child's handler adds one to
/// its copy of the parent's count, so no process shares its count with its parent.
static FORKS: AtomicU32 = AtomicU32::new(0);

/// This process's id (low 32 bits) with the count of [`FORKS`] it was read at (high
/// 32 bits), in one word so that a thread never sees one without the other. 0: none.
static PID: AtomicU64 = AtomicU64::new(0);

/// Where this process's id is kept, when the program gives a word that the kernel
/// zeroes in the child of every fork, however made ([`keep_pid_in`]). 0 in the word:
/// not asked yet in this process.
static PID_WORD: OnceLock<&'static AtomicU32> = OnceLock::new();

/// Keeps this process's id in `word`, which the kernel zeroes in the child of every
/// fork (on Linux, a page with `MADV_WIPEONFORK`, as the C library maps): then the id
/// is asked of the kernel once per process, not once per call, and no child, even one
/// made without `pthread_atfork` handlers (`_Fork`, a raw system call), is taken for
/// its parent. The first word given is kept; it overrides [`report_forks`].
pub fn keep_pid_in(word: &'static AtomicU32) {
    let _ = PID_WORD.set(word);
}

/// Tells the core that every fork of this process and of its children will call
/// [`forked`] in the child before anything else of BackLite runs there (a
/// `pthread_atfork` child handler, which the C library installs). Without it, each call
/// asks the kernel for the process id (a system call), to tell a forked child.
pub fn report_forks() {
    FORKS_REPORTED.store(true, Relaxed);
}

/// Reports a fork: called in the child, before anything else of BackLite runs there.
/// Async-signal-safe (one atomic addition), as a `pthread_atfork` child handler must be.
pub fn forked() {
    FORKS.fetch_add(1, Relaxed);
}

/// This process's id: the kernel's answer kept in the word given to [`keep_pid_in`],
/// or cached until the next reported fork, or asked each time when neither is set up.
pub(crate) fn this_process() -> u32 {
    if let Some(word) = PID_WORD.get() {
        let kept = word.load(Relaxed);
        if kept != 0 {
            return kept;
        }
        let pid = std::process::id();
        word.store(pid, Relaxed);
        return pid;
    }
    if !FORKS_REPORTED.load(Relaxed) {
        return std::process::id();
    }
    let forks = u64::from(FORKS.load(Relaxed));
    let cached = PID.load(Relaxed);
    if cached != 0 && cached >> 32 == forks {
        return cached as u32;
    }
    let pid = std::process::id();
    PID.store(forks << 32 | u64::from(pid), Relaxed);
    pid
}

/// The process that opened something (a handle's connections): a forked child sees
/// another process id and must replace what it inherited.
pub(crate) struct OpenedBy(AtomicU32);

impl OpenedBy {
    /// Opened by this process.
    pub fn here() -> OpenedBy {
        OpenedBy(AtomicU32::new(this_process()))
    }

    /// Whether this process opened it (false in a forked child).
    pub fn is_this_process(&self) -> bool {
        self.is(this_process())
    }

    /// Whether process `pid` opened it.
    pub fn is(&self, pid: u32) -> bool {
        self.0.load(Relaxed) == pid
    }

    /// This process has replaced what it inherited (or may use it as its own).
    pub fn adopt(&self) {
        self.0.store(this_process(), Relaxed);
    }
}

/// Keeps inherited connections, unclosed, for the life of the process.
pub(crate) fn set_aside_connections(inherited: impl IntoIterator<Item = Connection>) {
    lock(&INHERITED_CONNECTIONS).extend(inherited.into_iter().map(ManuallyDrop::new));
}

/// Keeps `pump` (a reader's channel and thread, or a write-behind queue, which the
/// parent of this forked child started) undropped for the life of the process.
pub(crate) fn set_aside_pump(pump: impl Send + 'static) {
    lock(&INHERITED_PUMPS).push(ManuallyDrop::new(Box::new(pump)));
}

/// Keeps, unjoined, the threads in `threads` that another process (the parent of this
/// forked child) started; the others (started by `pid`, this process) stay.
pub(crate) fn set_aside_threads(threads: &mut Vec<(u32, JoinHandle<()>)>, pid: u32) {
    if threads.iter().any(|(p, _)| *p != pid) {
        let (mine, theirs): (Vec<_>, Vec<_>) = threads.drain(..).partition(|(p, _)| *p == pid);
        *threads = mine;
        lock(&INHERITED_THREADS).extend(theirs.into_iter().map(|(_, w)| w));
    }
}

/// The library's own threads that write a file (hit writers, fill writers) and the
/// forks of the process: a fork waits until no such thread is inside a step (a write
/// transaction, its checkpoint, the opening and closing of its connection), and no step
/// begins until the fork is done. Otherwise a child forked meanwhile inherited what
/// that thread held, with no thread to let it go: SQLite's in-process record of the
/// WAL's write lock (every write of the child was BUSY), or a mutex of the hit buffer
/// (its first call hung). The README's rule "do not fork while another thread is inside
/// a BackLite call" is then the caller's threads' only.
///
/// Two counters and no lock, so that nothing a fork copies is held: a step counts
/// itself in [`STEPS`], then backs out if a fork is counted in [`FORKS_UNDER_WAY`]; a
/// fork counts itself, then waits until no step is counted (both sequentially consistent, so one of
/// the two always sees the other). A child's count of steps is its parent's at the
/// fork, made of threads it does not have: its handler zeroes it.
static STEPS: AtomicUsize = AtomicUsize::new(0);
static FORKS_UNDER_WAY: AtomicUsize = AtomicUsize::new(0);

/// How long a step waits for a fork, or a fork for a step, between two looks.
const GATE_PAUSE: std::time::Duration = std::time::Duration::from_micros(200);

/// A step of a library thread (see [`STEPS`]), ended when dropped.
pub(crate) struct Step(());

thread_local! {
    /// The steps this thread is inside ([`outside_step`] leaves them for a while).
    static IN_STEPS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Counts a step in [`STEPS`], once no fork is under way.
fn enter_step() {
    loop {
        STEPS.fetch_add(1, SeqCst);
        if FORKS_UNDER_WAY.load(SeqCst) == 0 {
            return;
        }
        STEPS.fetch_sub(1, SeqCst);
        std::thread::sleep(GATE_PAUSE);
    }
}

/// Begins a step, once no fork is under way.
pub(crate) fn step() -> Step {
    enter_step();
    IN_STEPS.with(|n| n.set(n.get() + 1));
    Step(())
}

impl Drop for Step {
    fn drop(&mut self) {
        IN_STEPS.with(|n| n.set(n.get() - 1));
        STEPS.fetch_sub(1, SeqCst);
    }
}

/// Runs `f` outside the steps this thread is inside, if any, and enters them again
/// after it, once no fork is under way: `f` waits for something outside the library (a
/// remote's reply, bounded only by its timeout) and holds no lock a child could
/// inherit, so a fork need not wait for it. Without a step, it only runs `f`.
pub(crate) fn outside_step<T>(f: impl FnOnce() -> T) -> T {
    let held = IN_STEPS.with(|n| n.get());
    if held == 0 {
        return f();
    }
    /// Enters the steps again when dropped (also when `f` panics: the thread's
    /// `Step`s then end each once more).
    struct Outside(usize);
    impl Drop for Outside {
        fn drop(&mut self) {
            for _ in 0..self.0 {
                enter_step();
            }
        }
    }
    STEPS.fetch_sub(held, SeqCst);
    let _outside = Outside(held);
    f()
}

/// Whether a fork waits for the steps under way (they end early: see [`STEPS`]).
pub(crate) fn fork_waits() -> bool {
    FORKS_UNDER_WAY.load(Relaxed) > 0
}

/// To call just before a fork (a `pthread_atfork` prepare handler, which the C library
/// installs): waits until no thread of the library is inside a step, and holds the
/// next ones until [`after_fork`] (in the parent) or [`after_fork_in_child`]. A hit
/// writer gives way within 64 hits; one that waits for the turn of a set of this
/// process holds the fork until that set is done.
pub fn before_fork() {
    FORKS_UNDER_WAY.fetch_add(1, SeqCst);
    while STEPS.load(SeqCst) > 0 {
        std::thread::sleep(GATE_PAUSE);
    }
}

/// To call in the parent just after a fork (`pthread_atfork`'s parent handler): the
/// library's threads go on.
pub fn after_fork() {
    FORKS_UNDER_WAY.fetch_sub(1, SeqCst);
}

/// To call in the child just after a fork (`pthread_atfork`'s child handler): it has
/// none of its parent's threads, so none of their steps. Async-signal-safe.
pub fn after_fork_in_child() {
    STEPS.store(0, SeqCst);
    FORKS_UNDER_WAY.store(0, SeqCst);
}
