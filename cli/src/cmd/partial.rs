//! The `-o OUT` of `get` and `export` while it is written: a signal that ends the
//! command (Ctrl-C, a kill, a closed terminal) removes it, as a failure to write does.
//! Killed on the spot, the command left the part written so far, and a dump cut at a
//! line's end imports as a whole dump of fewer entries.

use crate::bytes::escape_path;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// OUT, watched for a signal to stop from [`Partial::watch`] on.
pub struct Partial {
    path: PathBuf,
    /// Whether OUT is this command's partial copy: made (or truncated) here and not yet
    /// whole. Held by the signal's handler until the process dies, so that no OUT is
    /// made after it looked.
    made: Arc<Mutex<bool>>,
}

fn lock(made: &Mutex<bool>) -> MutexGuard<'_, bool> {
    made.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Partial {
    /// From now on, a signal to stop ends the command, removing OUT if it made it (a
    /// file that was there before and not yet written is the user's, left as it was).
    pub fn watch(path: &Path) -> std::io::Result<Self> {
        let made = Arc::new(Mutex::new(false));
        let held = Arc::clone(&made);
        let out = path.to_path_buf();
        crate::interrupt::on_stop(move |signal| {
            let made = lock(&held);
            if *made {
                super::entries::discard(&out);
                eprintln!(
                    "backlite: {}: removed, not whole ({} received)",
                    escape_path(&out),
                    crate::interrupt::name(signal)
                );
            }
            crate::interrupt::die_of(signal)
        })?;
        Ok(Partial {
            path: path.to_path_buf(),
            made,
        })
    }

    /// Creates (or truncates) OUT: from now on a signal removes it.
    pub fn create(&self) -> std::io::Result<File> {
        let mut made = lock(&self.made);
        let file = File::create(&self.path)?;
        *made = true;
        Ok(file)
    }

    /// OUT is whole: a signal from now on leaves it.
    pub fn keep(&self) {
        *lock(&self.made) = false;
    }
}
