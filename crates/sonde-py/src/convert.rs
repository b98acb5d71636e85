//! Python values to JSON and back, and times: seconds since the epoch (seed 002's
//! `event_time`) and `datetime`s in UTC.

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use serde_json::{Map, Number, Value};
use sonde::{Metadata, Timestamp};

/// A JSON value as a Python value (`dict`, `list`, `str`, `int`, `float`, `bool`,
/// `None`).
pub(crate) fn to_py<'py>(py: Python<'py>, value: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match value {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => i.into_pyobject(py)?.into_any(),
            (None, Some(u)) => u.into_pyobject(py)?.into_any(),
            (None, None) => PyFloat::new(py, n.as_f64().unwrap_or(f64::NAN)).into_any(),
        },
        Value::String(s) => PyString::new(py, s).into_any(),
        Value::Array(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(to_py(py, item)?)?;
            }
            list.into_any()
        }
        Value::Object(map) => metadata_to_py(py, map)?.into_any(),
    })
}

/// A JSON object as a Python `dict`.
pub(crate) fn metadata_to_py<'py>(
    py: Python<'py>,
    map: &Map<String, Value>,
) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    for (k, v) in map {
        dict.set_item(k, to_py(py, v)?)?;
    }
    Ok(dict)
}

/// A Python value as JSON; `what` names it in the error (`metadata`, `actions`, ...).
pub(crate) fn from_py(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<Value> {
    if obj.is_none() {
        return Ok(Value::Null);
    }
    if let Ok(b) = obj.cast::<PyBool>() {
        return Ok(Value::Bool(b.is_true()));
    }
    if obj.is_instance_of::<PyInt>() {
        if let Ok(i) = obj.extract::<i64>() {
            return Ok(Value::from(i));
        }
        if let Ok(u) = obj.extract::<u64>() {
            return Ok(Value::from(u));
        }
        return Err(PyValueError::new_err(format!(
            "{what}: the integer {obj} does not fit in 64 bits"
        )));
    }
    if let Ok(f) = obj.cast::<PyFloat>() {
        return Number::from_f64(f.value())
            .map(Value::Number)
            .ok_or_else(|| PyValueError::new_err(format!("{what}: {obj} is not a JSON number")));
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return Ok(Value::String(s.to_cow()?.into_owned()));
    }
    if let Ok(dict) = obj.cast::<PyDict>() {
        return Ok(Value::Object(dict_to_map(dict, what)?));
    }
    if obj.is_instance_of::<PyList>() || obj.is_instance_of::<PyTuple>() {
        let mut items = Vec::new();
        for item in obj.try_iter()? {
            items.push(from_py(&item?, what)?);
        }
        return Ok(Value::Array(items));
    }
    // datetimes, dates, UUIDs, enums...: their ISO or string form, as json.dumps(default=str).
    if obj.hasattr("isoformat")? {
        return Ok(Value::String(obj.call_method0("isoformat")?.extract()?));
    }
    Err(PyTypeError::new_err(format!(
        "{what}: a {} cannot be stored as JSON (use dict, list, str, int, float, bool or None)",
        obj.get_type().name()?
    )))
}

fn dict_to_map(dict: &Bound<'_, PyDict>, what: &str) -> PyResult<Map<String, Value>> {
    let mut map = Map::new();
    for (k, v) in dict.iter() {
        let key = match k.cast::<PyString>() {
            Ok(s) => s.to_cow()?.into_owned(),
            Err(_) => k.str()?.to_cow()?.into_owned(),
        };
        let value = from_py(&v, what)?;
        map.insert(key, value);
    }
    Ok(map)
}

/// An optional `dict` as metadata (`None` is empty).
pub(crate) fn metadata_from(obj: Option<&Bound<'_, PyAny>>, what: &str) -> PyResult<Metadata> {
    match obj {
        None => Ok(Metadata::new()),
        Some(o) if o.is_none() => Ok(Metadata::new()),
        Some(o) => match o.cast::<PyDict>() {
            Ok(dict) => dict_to_map(dict, what),
            Err(_) => Err(PyTypeError::new_err(format!(
                "{what} must be a dict, not {}",
                o.get_type().name()?
            ))),
        },
    }
}

/// An optional list of JSON values (`None` is empty).
pub(crate) fn list_from(obj: Option<&Bound<'_, PyAny>>, what: &str) -> PyResult<Vec<Value>> {
    match obj.map(|o| from_py(o, what)).transpose()? {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => Ok(items),
        Some(_) => Err(PyTypeError::new_err(format!("{what} must be a list"))),
    }
}

/// Seconds since the epoch as a timestamp (to the microsecond).
pub(crate) fn timestamp_from_seconds(seconds: f64, what: &str) -> PyResult<Timestamp> {
    let micros = (seconds * 1e6).round();
    let (min, max) = (
        Timestamp::MIN.as_micros() as f64,
        Timestamp::MAX.as_micros() as f64,
    );
    if !micros.is_finite() || micros < min || micros > max {
        return Err(PyValueError::new_err(format!(
            "{what}: {seconds} is not a time between the years 1 and 9999 in seconds since the epoch"
        )));
    }
    Ok(Timestamp::from_micros(micros as i64))
}

/// A timestamp as seconds since the epoch.
pub(crate) fn seconds(timestamp: Timestamp) -> f64 {
    timestamp.as_micros() as f64 / 1e6
}

/// A timestamp as an aware `datetime` in UTC.
pub(crate) fn datetime<'py>(py: Python<'py>, timestamp: Timestamp) -> PyResult<Bound<'py, PyAny>> {
    static EPOCH: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    static TIMEDELTA: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    let epoch = EPOCH.get_or_try_init(py, || -> PyResult<Py<PyAny>> {
        let datetime = py.import("datetime")?;
        let utc = datetime.getattr("timezone")?.getattr("utc")?;
        let kwargs = PyDict::new(py);
        kwargs.set_item("tzinfo", utc)?;
        Ok(datetime
            .getattr("datetime")?
            .call((1970, 1, 1), Some(&kwargs))?
            .unbind())
    })?;
    let timedelta = TIMEDELTA.import(py, "datetime", "timedelta")?;
    let kwargs = PyDict::new(py);
    kwargs.set_item("microseconds", timestamp.as_micros())?;
    let delta = timedelta.call((), Some(&kwargs))?;
    epoch.bind(py).call_method1("__add__", (delta,))
}

/// A `datetime` (naive ones are UTC), or seconds since the epoch, as a timestamp.
pub(crate) fn timestamp_from(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<Timestamp> {
    if let Ok(seconds) = obj.extract::<f64>() {
        return timestamp_from_seconds(seconds, what);
    }
    if obj.hasattr("timestamp")? && obj.hasattr("tzinfo")? {
        let aware = if obj.getattr("tzinfo")?.is_none() {
            let utc = obj
                .py()
                .import("datetime")?
                .getattr("timezone")?
                .getattr("utc")?;
            let kwargs = PyDict::new(obj.py());
            kwargs.set_item("tzinfo", utc)?;
            obj.call_method("replace", (), Some(&kwargs))?
        } else {
            obj.clone()
        };
        let seconds: f64 = aware.call_method0("timestamp")?.extract()?;
        return timestamp_from_seconds(seconds, what);
    }
    Err(PyTypeError::new_err(format!(
        "{what} must be a datetime or seconds since the epoch, not {}",
        obj.get_type().name()?
    )))
}
