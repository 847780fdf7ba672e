//! Keys, values and durations between Python objects and the core's types.

use backlite_core::{Expiration, EXPIRATION_DEFAULT_MS};
use pyo3::exceptions::{PyKeyError, PyTypeError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyByteArray, PyBytes, PyDict, PyMemoryView, PyString, PyType};
use std::borrow::Cow;
use std::time::Duration;

/// `datetime.timedelta`, imported once.
fn timedelta(py: Python<'_>) -> PyResult<&Bound<'_, PyType>> {
    static TIMEDELTA: PyOnceLock<Py<PyType>> = PyOnceLock::new();
    TIMEDELTA.import(py, "datetime", "timedelta")
}

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map_or_else(|_| "?".to_string(), |n| n.to_string())
}

/// bytes, bytearray and memoryview as bytes (borrowed from a bytes object).
fn bytes_like<'a>(obj: &'a Bound<'_, PyAny>) -> PyResult<Option<Cow<'a, [u8]>>> {
    if let Ok(b) = obj.cast::<PyBytes>() {
        return Ok(Some(Cow::Borrowed(b.as_bytes())));
    }
    if obj.is_instance_of::<PyByteArray>() || obj.is_instance_of::<PyMemoryView>() {
        let copy = obj.py().get_type::<PyBytes>().call1((obj,))?;
        return Ok(Some(Cow::Owned(
            copy.cast::<PyBytes>()?.as_bytes().to_vec(),
        )));
    }
    Ok(None)
}

/// A key: a str is its UTF-8 bytes; bytes-like objects are taken as they are.
pub(crate) fn key_bytes<'a>(key: &'a Bound<'_, PyAny>) -> PyResult<Cow<'a, [u8]>> {
    if let Ok(s) = key.cast::<PyString>() {
        return Ok(Cow::Borrowed(s.to_str()?.as_bytes()));
    }
    bytes_like(key)?.ok_or_else(|| {
        PyTypeError::new_err(format!(
            "a cache key is str or bytes, not {}",
            type_name(key)
        ))
    })
}

/// A value: bytes-like.
pub(crate) fn value_bytes<'a>(value: &'a Bound<'_, PyAny>) -> PyResult<Cow<'a, [u8]>> {
    bytes_like(value)?.ok_or_else(|| {
        PyTypeError::new_err(format!(
            "a cache item's \"value\" is bytes, not {}",
            type_name(value)
        ))
    })
}

/// `item["value"]` and `item.get("expiration")` of a cache item.
pub(crate) fn item_parts<'py>(
    item: &Bound<'py, PyAny>,
) -> PyResult<(Bound<'py, PyAny>, Option<Bound<'py, PyAny>>)> {
    let py = item.py();
    let not_an_item = || {
        PyTypeError::new_err("a cache item is a dict {\"value\": bytes, \"expiration\": timedelta}")
    };
    if let Ok(d) = item.cast::<PyDict>() {
        let value = d
            .get_item(pyo3::intern!(py, "value"))?
            .ok_or_else(not_an_item)?;
        return Ok((value, d.get_item(pyo3::intern!(py, "expiration"))?));
    }
    let value = match item.get_item(pyo3::intern!(py, "value")) {
        Ok(v) => v,
        Err(e) if e.is_instance_of::<PyTypeError>(py) || e.is_instance_of::<PyKeyError>(py) => {
            return Err(not_an_item())
        }
        Err(e) => return Err(e),
    };
    let expiration =
        item.call_method1(pyo3::intern!(py, "get"), (pyo3::intern!(py, "expiration"),))?;
    Ok((value, (!expiration.is_none()).then_some(expiration)))
}

/// The C form of an expiration: None is the storage's default (-1); a timedelta is
/// milliseconds, rounded up (a positive duration never becomes "already expired"),
/// at least 0.
#[pyfunction]
pub(crate) fn expiration_ms(expiration: Option<&Bound<'_, PyAny>>) -> PyResult<i64> {
    crate::errors::guard(|| expiration_ms_of(expiration))
}

pub(crate) fn expiration_ms_of(expiration: Option<&Bound<'_, PyAny>>) -> PyResult<i64> {
    let Some(exp) = expiration.filter(|e| !e.is_none()) else {
        return Ok(EXPIRATION_DEFAULT_MS);
    };
    let py = exp.py();
    if !exp.is_instance(timedelta(py)?)? {
        return Err(PyTypeError::new_err(format!(
            "expiration is a datetime.timedelta or None, not {}",
            type_name(exp)
        )));
    }
    let part =
        |name: &str| -> PyResult<i128> { exp.getattr(name)?.extract::<i64>().map(i128::from) };
    let micros =
        part("days")? * 86_400_000_000 + part("seconds")? * 1_000_000 + part("microseconds")?;
    if micros <= 0 {
        return Ok(0);
    }
    let ms = (micros + 999) / 1000;
    Ok(i64::try_from(ms).unwrap_or(i64::MAX))
}

/// The core's expiration for a C-form value (checked as the C API checks it).
pub(crate) fn expiration(py: Python<'_>, ms: i64) -> PyResult<Expiration> {
    use crate::errors::OrRaise;
    Expiration::from_ms(ms).or_raise(py)
}

/// `timedelta.max` in whole milliseconds (999999999 days, 86399.999 s).
const TIMEDELTA_MAX_MS: u64 = 999_999_999 * 86_400_000 + 86_399_999;

/// A time left as a timedelta of whole milliseconds, rounded up so a live entry
/// never shows 0 (the C API's rounding), and at most `timedelta.max`: another language
/// may store more time than a timedelta holds.
pub(crate) fn time_left<'py>(py: Python<'py>, left: Duration) -> PyResult<Bound<'py, PyAny>> {
    let ms = u64::try_from(left.as_millis())
        .unwrap_or(u64::MAX)
        .clamp(1, TIMEDELTA_MAX_MS);
    timedelta(py)?.call1((0, ms / 1000, (ms % 1000) * 1000))
}
