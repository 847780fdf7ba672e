//! `_native.Storage`: the handle under `backlite.Storage` (a Python subclass that adds
//! the seed's argument checks, pickling and fork handling). The hot calls (`get_one`,
//! `set_one`, `in`) are methods of this class, so a call runs no Python code: the key
//! and value are read in place, the GIL is released while SQLite works, and the item
//! is built here.

use crate::convert::{self, item_parts, key_bytes, value_bytes};
use crate::errors::{guard, OrRaise};
use backlite_core::{Entry, ErrorKind, EvictionPolicy, Expiration, Options, RemoteMode, Streamed};
use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyInt, PyTuple};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

type Core = backlite_core::Storage;

#[derive(Default)]
struct State {
    handle: Option<Arc<Core>>,
    closed: bool,
    /// What it was opened with, to open again in a forked child.
    opened: Option<(PathBuf, Options)>,
}

/// A cache handle; usable from any number of threads at once.
#[pyclass(subclass, module = "backlite._native")]
pub struct Storage {
    state: Mutex<State>,
}

impl Storage {
    /// The state; held only to read or swap the handle, never while waiting for the GIL
    /// or for SQLite.
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The handle; opened again after fork(); ValueError once closed.
    pub(crate) fn handle(&self, py: Python<'_>) -> PyResult<Arc<Core>> {
        let opened = {
            let state = self.state();
            if let Some(h) = &state.handle {
                return Ok(h.clone());
            }
            if state.closed {
                return Err(PyValueError::new_err("operation on a closed Storage"));
            }
            state.opened.clone()
        };
        let Some((path, options)) = opened else {
            return Err(PyValueError::new_err("the Storage was never opened"));
        };
        let fresh =
            Arc::new(crate::fork_gate::detach(py, || Core::open(&path, &options)).or_raise(py)?);
        let mut state = self.state();
        if state.closed {
            return Err(PyValueError::new_err("operation on a closed Storage"));
        }
        // Another thread may have opened it meanwhile: one handle wins.
        Ok(state.handle.get_or_insert(fresh).clone())
    }

    fn lookup(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
    ) -> PyResult<Option<(Vec<u8>, Option<Duration>)>> {
        let key = key_bytes(key)?;
        let storage = self.handle(py)?;
        crate::fork_gate::detach(py, || storage.get_with(&key, |v, left| (v.to_vec(), left)))
            .or_raise(py)
    }

    fn store(&self, py: Python<'_>, key: &[u8], value: &[u8], ms: i64) -> PyResult<()> {
        let expiration = convert::expiration(py, ms)?;
        let storage = self.handle(py)?;
        match crate::fork_gate::detach(py, || storage.set(key, value, expiration)) {
            // Not stored, as in the seed; the older value under the key is gone.
            Err(e) if e.kind() == ErrorKind::TooLarge => Ok(()),
            other => other.or_raise(py),
        }
    }
}

impl Drop for Storage {
    /// Freed unclosed (garbage, the last reference gone): the handle goes as close()
    /// lets it go, without the GIL.
    fn drop(&mut self) {
        let held = self
            .state
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .handle
            .take();
        crate::fork_gate::drop_detached(held);
    }
}

#[pymethods]
impl Storage {
    /// Made empty; `backlite.Storage.__init__` checks the arguments and opens it.
    #[new]
    #[pyo3(signature = (*_args, **_kwargs))]
    fn new(_args: &Bound<'_, PyTuple>, _kwargs: Option<&Bound<'_, PyDict>>) -> Self {
        Storage {
            state: Mutex::new(State::default()),
        }
    }

    /// Opens the file with options already checked by `backlite.Storage`; durations
    /// in milliseconds.
    #[pyo3(signature = (path, max_size, eviction_policy, default_expiration_ms, busy_timeout_ms,
                        lease_ms, file_threshold, version_tag, remote, remote_namespace, remote_timeout_ms,
                        remote_mode))]
    #[allow(clippy::too_many_arguments)]
    fn _open_file(
        &self,
        py: Python<'_>,
        path: PathBuf,
        max_size: u64,
        eviction_policy: &str,
        default_expiration_ms: Option<i64>,
        busy_timeout_ms: Option<u64>,
        lease_ms: Option<u64>,
        file_threshold: Option<u64>,
        version_tag: &str,
        remote: Option<&str>,
        remote_namespace: Option<&str>,
        remote_timeout_ms: Option<u64>,
        remote_mode: i32,
    ) -> PyResult<()> {
        guard(|| {
            let mut o = Options::new();
            o.set_max_size(max_size).or_raise(py)?;
            o.set_eviction_policy(eviction_policy.parse::<EvictionPolicy>().or_raise(py)?);
            if let Some(ms) = default_expiration_ms {
                o.set_default_expiration(Expiration::from_ms(ms).or_raise(py)?)
                    .or_raise(py)?;
            }
            if let Some(ms) = busy_timeout_ms {
                o.set_busy_timeout(Duration::from_millis(ms));
            }
            if let Some(ms) = lease_ms {
                o.set_lease_duration(Duration::from_millis(ms))
                    .or_raise(py)?;
            }
            o.set_file_threshold(file_threshold).or_raise(py)?;
            o.set_version_tag(version_tag);
            o.set_remote(remote).or_raise(py)?;
            if let Some(ns) = remote_namespace {
                o.set_remote_namespace(ns).or_raise(py)?;
            }
            if let Some(ms) = remote_timeout_ms {
                o.set_remote_timeout(Duration::from_millis(ms))
                    .or_raise(py)?;
            }
            let mode = RemoteMode::from_index(remote_mode).ok_or_else(|| {
                PyValueError::new_err(format!("unknown remote mode {remote_mode}"))
            })?;
            o.set_remote_mode(mode);
            let storage = crate::fork_gate::detach(py, || Core::open(&path, &o)).or_raise(py)?;
            let mut state = self.state();
            state.handle = Some(Arc::new(storage));
            state.opened = Some((path, o));
            Ok(())
        })
    }

    /// In a forked child: the parent's handle is left alone, never used nor freed here
    /// (a SQLite handle must not cross fork()); the next call opens a new one.
    fn _forget_after_fork(&self) -> PyResult<()> {
        guard(|| {
            if let Some(h) = self.state().handle.take() {
                std::mem::forget(h);
            }
            Ok(())
        })
    }

    /// The item under `key`: {"value": bytes, "expiration": time left} (no
    /// "expiration" when it never expires), or None.
    fn get_one<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
    ) -> PyResult<Option<Bound<'py, PyDict>>> {
        guard(|| {
            let Some((value, left)) = self.lookup(py, key)? else {
                return Ok(None);
            };
            let item = PyDict::new(py);
            item.set_item(pyo3::intern!(py, "value"), PyBytes::new(py, &value))?;
            if let Some(left) = left {
                item.set_item(
                    pyo3::intern!(py, "expiration"),
                    convert::time_left(py, left)?,
                )?;
            }
            Ok(Some(item))
        })
    }

    /// `get_one` (the README's name).
    fn get<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
    ) -> PyResult<Option<Bound<'py, PyDict>>> {
        guard(|| self.get_one(py, key))
    }

    /// The bytes under `key`, or None.
    fn get_value<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
    ) -> PyResult<Option<Bound<'py, PyBytes>>> {
        guard(|| Ok(self.lookup(py, key)?.map(|(v, _)| PyBytes::new(py, &v))))
    }

    /// Writes the value under `key` to `file` (anything with `write(bytes)`) in chunks
    /// of at most 256 KiB, so a value of any size is copied in bounded memory. True
    /// when the whole value was written and its checksum matched; False on a miss, or
    /// when the value proved damaged after some chunks were written (discard them: the
    /// entry is removed). An exception raised by `file.write` stops the copy and is
    /// raised as it was.
    fn get_to(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        file: &Bound<'_, PyAny>,
    ) -> PyResult<bool> {
        guard(|| {
            let key = key_bytes(key)?;
            let storage = self.handle(py)?;
            let write = file.getattr(pyo3::intern!(py, "write"))?.unbind();
            let mut raised = None;
            let streamed = crate::fork_gate::detach(py, || {
                storage.get_chunks(&key, |chunk| {
                    crate::fork_gate::outside(|| {
                        crate::python_calls::attach(|py| match write_all(py, &write, chunk) {
                            Ok(()) => true,
                            Err(e) => {
                                raised = Some(e);
                                false
                            }
                        })
                    })
                })
            });
            if let Some(e) = raised {
                return Err(e);
            }
            Ok(matches!(streamed.or_raise(py)?, Some(Streamed::Done(_))))
        })
    }

    /// A reader of the value under `key` (`backlite.Storage.reader` wraps it in a
    /// `backlite.ValueReader`), or None on a miss. A hit or miss as for `get`.
    fn _open_reader(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
    ) -> PyResult<Option<crate::reader::ValueReader>> {
        guard(|| {
            let key = key_bytes(key)?;
            let storage = self.handle(py)?;
            match crate::fork_gate::detach(py, || storage.open_reader(&key)).or_raise(py)? {
                Some(r) => Ok(Some(crate::reader::ValueReader::new(py, r)?)),
                None => Ok(None),
            }
        })
    }

    /// Stores `item` under `key`. A value larger than the size limit is not stored
    /// (and an older value under that key is removed), as in the seed.
    fn set_one(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        item: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        guard(|| {
            let key = key_bytes(key)?;
            let (value, expiration) = item_parts(item)?;
            let value = value_bytes(&value)?;
            let ms = convert::expiration_ms_of(expiration.as_ref())?;
            self.store(py, &key, &value, ms)
        })
    }

    /// `set_one` (the README's name).
    fn set(&self, py: Python<'_>, key: &Bound<'_, PyAny>, item: &Bound<'_, PyAny>) -> PyResult<()> {
        guard(|| self.set_one(py, key, item))
    }

    /// `set_one` without the dict.
    #[pyo3(signature = (key, value, expiration=None))]
    fn set_value(
        &self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        value: &Bound<'_, PyAny>,
        expiration: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        guard(|| {
            let key = key_bytes(key)?;
            let value = value_bytes(value)?;
            let ms = convert::expiration_ms_of(expiration)?;
            self.store(py, &key, &value, ms)
        })
    }

    /// Stores (key, value, expiration_ms) triples in one transaction.
    fn _set_many(&self, py: Python<'_>, entries: Vec<(Vec<u8>, Vec<u8>, i64)>) -> PyResult<()> {
        guard(|| {
            let entries = entries
                .iter()
                .map(|(key, value, ms)| {
                    Ok(Entry {
                        key,
                        value,
                        expiration: convert::expiration(py, *ms)?,
                    })
                })
                .collect::<PyResult<Vec<_>>>()?;
            let storage = self.handle(py)?;
            crate::fork_gate::detach(py, || storage.set_many(&entries)).or_raise(py)
        })
    }

    /// Whether `key` has a live item (not an access).
    fn __contains__(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        guard(|| {
            let key = key_bytes(key)?;
            let storage = self.handle(py)?;
            crate::fork_gate::detach(py, || storage.contains(&key)).or_raise(py)
        })
    }

    /// Removes the item under `key`; whether there was a live one.
    fn delete(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        guard(|| {
            let key = key_bytes(key)?;
            let storage = self.handle(py)?;
            crate::fork_gate::detach(py, || storage.delete(&key)).or_raise(py)
        })
    }

    /// Removes every item.
    fn clear(&self, py: Python<'_>) -> PyResult<()> {
        guard(|| {
            let storage = self.handle(py)?;
            crate::fork_gate::detach(py, || storage.clear()).or_raise(py)
        })
    }

    /// Every live key, as bytes.
    fn _raw_keys<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyBytes>>> {
        guard(|| {
            let storage = self.handle(py)?;
            let keys = crate::fork_gate::detach(py, || {
                let mut keys = Vec::new();
                storage.keys(|k| {
                    keys.push(k.to_vec());
                    true
                })?;
                Ok(keys)
            })
            .or_raise(py)?;
            Ok(keys.iter().map(|k| PyBytes::new(py, k)).collect())
        })
    }

    /// count, total_size, max_size, hits, misses, evictions, expirations.
    fn _stats(&self, py: Python<'_>) -> PyResult<(u64, u64, u64, u64, u64, u64, u64)> {
        guard(|| {
            let storage = self.handle(py)?;
            let s = crate::fork_gate::detach(py, || storage.stats()).or_raise(py)?;
            Ok((
                s.count,
                s.total_size,
                s.max_size,
                s.hits,
                s.misses,
                s.evictions,
                s.expirations,
            ))
        })
    }

    /// The file's lifetime counters: hits, misses, evictions, expirations, since_ms.
    fn _lifetime_stats(&self, py: Python<'_>) -> PyResult<(u64, u64, u64, u64, i64)> {
        guard(|| {
            let storage = self.handle(py)?;
            let s = crate::fork_gate::detach(py, || storage.lifetime_stats()).or_raise(py)?;
            Ok((s.hits, s.misses, s.evictions, s.expirations, s.since_ms))
        })
    }

    /// Sets the file's lifetime counters to zero; counting starts again now. This
    /// handle's own counters (`stats()`) are kept.
    fn zero_stats(&self, py: Python<'_>) -> PyResult<()> {
        guard(|| {
            let storage = self.handle(py)?;
            crate::fork_gate::detach(py, || storage.zero_stats()).or_raise(py)
        })
    }

    /// hits, misses, writes, errors, skipped, connected (all zero without a remote).
    fn _remote_stats(&self, py: Python<'_>) -> PyResult<(u64, u64, u64, u64, u64, bool)> {
        guard(|| {
            let s = self.handle(py)?.remote_stats().unwrap_or_default();
            Ok((s.hits, s.misses, s.writes, s.errors, s.skipped, s.connected))
        })
    }

    /// healthy, integrity_ok, repaired, entries, damaged, orphan_values,
    /// recorded_count, recorded_total_size, actual_count, actual_total_size.
    #[allow(clippy::type_complexity)]
    fn _check(
        &self,
        py: Python<'_>,
        repair: bool,
    ) -> PyResult<(bool, bool, bool, u64, u64, u64, u64, u64, u64, u64)> {
        guard(|| {
            let storage = self.handle(py)?;
            let r =
                crate::fork_gate::detach(py, || storage.check_or_report(repair)).or_raise(py)?;
            Ok((
                r.healthy(),
                r.integrity_ok,
                r.repaired,
                r.entries,
                r.damaged,
                r.orphan_values,
                r.recorded_count,
                r.recorded_total_size,
                r.actual_count,
                r.actual_total_size,
            ))
        })
    }

    /// Gives the space of deleted entries back and truncates the write-ahead log.
    fn vacuum(&self, py: Python<'_>) -> PyResult<()> {
        guard(|| {
            let storage = self.handle(py)?;
            crate::fork_gate::detach(py, || storage.vacuum()).or_raise(py)
        })
    }

    /// Closes the handle (idempotent); later calls raise ValueError. Calls still
    /// running on other threads finish first: the handle goes when the last one ends.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        guard(|| {
            let handle = {
                let mut state = self.state();
                state.closed = true;
                state.handle.take()
            };
            // Closing writes buffered hits: without the GIL, like every write.
            crate::fork_gate::detach(py, move || drop(handle));
            Ok(())
        })
    }

    #[getter]
    fn closed(&self) -> bool {
        self.state().closed
    }

    /// The memoiser (see memo.rs).
    #[pyo3(signature = (key, func, args, kwargs, expiration_ms, barrier, wait_ms))]
    #[allow(clippy::too_many_arguments)]
    fn _cached_call(
        &self,
        py: Python<'_>,
        key: &[u8],
        func: &Bound<'_, PyAny>,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
        expiration_ms: i64,
        barrier: Option<(Py<PyAny>, Py<PyAny>)>,
        wait_ms: u64,
    ) -> PyResult<Py<PyAny>> {
        guard(|| {
            let storage = self.handle(py)?;
            let expiration = convert::expiration(py, expiration_ms)?;
            let call = crate::memo::Call { func, args, kwargs };
            crate::memo::cached_call(
                py,
                &storage,
                key,
                &call,
                expiration,
                barrier,
                Duration::from_millis(wait_ms),
            )
        })
    }

    /// One step of the library's wait for `key` (see lease.rs).
    fn _lease_step(&self, py: Python<'_>, key: &[u8], attempt: u32) -> PyResult<Py<PyAny>> {
        guard(|| {
            let storage = self.handle(py)?;
            crate::lease::step(py, &storage, key, attempt)
        })
    }
}

/// Writes `chunk` with a file's `write`, and the rest again after a short write: a raw
/// file (`io.RawIOBase`: a pipe, a socket) may take fewer bytes and return how many, as
/// `io.BufferedWriter` expects of it. A `write` that returns anything but an int (None,
/// as many file-likes do) is taken to have written everything; a count out of range is
/// an `OSError`, as `io.BufferedWriter` makes it. So is 0: a file that takes none of
/// the bytes makes no progress, and calling it again with them spun for good (a
/// `write` that returns 0 as a status, say).
fn write_all(py: Python<'_>, write: &Py<PyAny>, chunk: &[u8]) -> PyResult<()> {
    let mut done = 0;
    while done < chunk.len() {
        let left = &chunk[done..];
        let returned = write.call1(py, (PyBytes::new(py, left),))?;
        let returned = returned.bind(py);
        if !returned.is_instance_of::<PyInt>() || returned.is_instance_of::<PyBool>() {
            return Ok(());
        }
        match returned.extract::<usize>() {
            Ok(0) => {
                return Err(PyOSError::new_err(format!(
                    "write() took 0 of {} bytes: no progress, the copy is stopped",
                    left.len()
                )))
            }
            Ok(n) if n <= left.len() => done += n,
            _ => {
                return Err(PyOSError::new_err(format!(
                    "write() returned incorrect number of bytes ({returned} of {})",
                    left.len()
                )))
            }
        }
    }
    Ok(())
}
