//! numpy arrays ↔ tensors, library errors → Python exceptions, figures → Python dicts.
//!
//! Arrays become what the CLI makes of the same array saved as `.npy` (`source::inputs` and
//! `source::targets` do the work): any dtype and memory layout is first copied to C order, floats
//! become float32 (rounded as the CLI rounds `<f8`), uint8 inputs are pixels scaled to [0, 1],
//! integer targets are class indices. Where the CLI refuses (inputs of int64, int32, bool), the
//! values are taken as float32 numbers.

use numpy::{PyArrayDyn, PyReadonlyArrayDyn, ToPyArray, ndarray};
use pyo3::exceptions::{
    PyFileNotFoundError, PyFloatingPointError, PyOSError, PyRuntimeError, PyTypeError, PyValueError,
};
use pyo3::prelude::*;
use scratchnet::data::dataset::{Dataset, Labels};
use scratchnet::data::inputs::Inputs;
use scratchnet::data::npy::{Npy, NpyData};
use scratchnet::data::source;
use scratchnet::tensor::Tensor;
use scratchnet::train::EpochStats;
use std::path::Path;

/// The Python exception for a library error, with the message the CLI prints.
pub fn error(e: scratchnet::Error) -> PyErr {
    use scratchnet::Error as E;
    let msg = e.to_string().replace('\n', " ");
    match &e {
        E::Io { err, .. } if err.kind() == std::io::ErrorKind::NotFound => {
            PyFileNotFoundError::new_err(msg)
        }
        E::Io { .. } | E::Download { .. } => PyOSError::new_err(msg),
        E::NonFinite { .. } => PyFloatingPointError::new_err(msg),
        E::NoForward(_) => PyRuntimeError::new_err(msg),
        _ => PyValueError::new_err(msg),
    }
}

/// `r?` for library results.
pub fn ok<T>(r: scratchnet::Result<T>) -> PyResult<T> {
    r.map_err(error)
}

/// What an array is for: inputs read uint8 as pixels and other integers as numbers; targets read
/// integers as class indices.
#[derive(Clone, Copy, PartialEq)]
enum Role {
    Inputs,
    Targets,
}

/// Any array-like as an [`Npy`] in C order, converted as the module docs say.
///
/// # Errors
/// `TypeError` for an array that does not hold numbers (strings, objects, complex numbers).
fn npy(obj: &Bound<'_, PyAny>, name: &str, role: Role) -> PyResult<Npy> {
    let np = obj.py().import("numpy")?;
    let a = np.call_method1("asarray", (obj,))?;
    let dtype = a.getattr("dtype")?;
    let kind: String = dtype.getattr("kind")?.extract()?;
    let descr: String = dtype.getattr("str")?.extract()?;
    let shape: Vec<usize> = a.getattr("shape")?.extract()?;
    let floats = || -> PyResult<NpyData> {
        let c = np.call_method1("ascontiguousarray", (&a, "float32"))?;
        let c: PyReadonlyArrayDyn<'_, f32> = c.extract()?;
        Ok(NpyData::Float(c.as_slice()?.to_vec()))
    };
    let ints = || -> PyResult<NpyData> {
        let c = np.call_method1("ascontiguousarray", (&a, "int64"))?;
        let c: PyReadonlyArrayDyn<'_, i64> = c.extract()?;
        Ok(NpyData::Int(c.as_slice()?.to_vec()))
    };
    let (dtype, data) = match (kind.as_str(), role) {
        ("f", _) => ("<f4", floats()?),
        ("u", Role::Inputs) if descr.ends_with("u1") => ("|u1", ints()?),
        ("i" | "u" | "b", Role::Inputs) => ("<f4", floats()?),
        ("i" | "u" | "b", Role::Targets) => ("<i8", ints()?),
        _ => {
            return Err(PyTypeError::new_err(format!(
                "{name}: has dtype {descr}; expected numbers (an array of floats, integers or booleans)"
            )));
        }
    };
    Ok(Npy {
        shape,
        dtype: dtype.into(),
        data,
    })
}

/// Model inputs `[N, …]` from an array-like, as the CLI reads an `.npy` of it; a layout the CLI
/// would change (channels-last images) is said as a Python warning.
pub fn inputs(obj: &Bound<'_, PyAny>, name: &str) -> PyResult<Inputs> {
    let mut note = None;
    let x = ok(source::inputs(
        npy(obj, name, Role::Inputs)?,
        Path::new(name),
        false,
        &mut note,
    ))?;
    if let Some(n) = note {
        warn(obj.py(), &n)?;
    }
    Ok(x)
}

/// Targets from an array-like: integers are class indices, floats are values.
pub fn targets(obj: &Bound<'_, PyAny>, name: &str) -> PyResult<Labels> {
    ok(source::targets(
        npy(obj, name, Role::Targets)?,
        Path::new(name),
    ))
}

/// Inputs and targets as a dataset; `names` are the arrays' names in messages.
pub fn dataset(x: &Bound<'_, PyAny>, y: &Bound<'_, PyAny>, names: [&str; 2]) -> PyResult<Dataset> {
    ok(Dataset::new(inputs(x, names[0])?, targets(y, names[1])?))
}

/// A tensor as a float32 ndarray of the same shape.
pub fn array<'py>(py: Python<'py>, t: &Tensor) -> PyResult<Bound<'py, PyArrayDyn<f32>>> {
    let a = ndarray::ArrayViewD::from_shape(t.shape(), t.data())
        .map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
    Ok(a.to_pyarray(py))
}

/// Epoch figures as a list of dicts with the keys of the CLI's `--history` JSON.
pub fn history<'py>(py: Python<'py>, h: &[EpochStats]) -> PyResult<Bound<'py, PyAny>> {
    let json = serde_json::to_string(h).map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
    py.import("json")?.call_method1("loads", (json,))
}

/// `warnings.warn(text)` (a `UserWarning`).
pub fn warn(py: Python<'_>, text: &str) -> PyResult<()> {
    py.import("warnings")?.call_method1("warn", (text,))?;
    Ok(())
}
