//! CSV tables: a header row, numeric feature columns, and target columns.
//!
//! The target columns are named by `--target` (default: the last column); every other column is a
//! feature and must hold numbers. A single target of whole numbers is class indices, of other text
//! class names (sorted, so the same names always get the same indices); with a regression loss the
//! targets are numbers, one output per target column. Errors name the file, the line (counting the
//! header as line 1, as an editor does) and the column.

use crate::data::dataset::Labels;
use crate::data::input::TableInfo;
use crate::error::{Error, Result};
use crate::tensor::Tensor;
use std::collections::BTreeSet;
use std::path::Path;

/// What the table must give: which targets, as what, and (for data a trained model is run on) the
/// columns and classes it was trained with.
#[derive(Clone, Debug, Default)]
pub struct Request<'a> {
    /// Target column names; empty means the last column.
    pub targets: &'a [String],
    /// Targets are numbers to fit rather than classes.
    pub regression: bool,
    /// Read exactly these feature columns, in this order, instead of all but the targets.
    pub features: Option<&'a [String]>,
    /// Class names are indices into this list instead of the table's own sorted names.
    pub classes: Option<&'a [String]>,
    /// Whether the targets must be there (`predict` does without them).
    pub need_targets: bool,
}

/// A table read into features and targets.
#[derive(Clone, Debug)]
pub struct Table {
    /// `[N, F]`, in the order of `info.features`.
    pub x: Tensor,
    /// `None` when the targets were not asked for.
    pub y: Option<Labels>,
    /// The class names of a text target column (sorted), if it is one.
    pub class_names: Option<Vec<String>>,
    /// The columns read.
    pub info: TableInfo,
    /// The line of the file each row came from.
    pub lines: Vec<u64>,
}

/// Reads a CSV file as [`parse`] does.
///
/// # Errors
/// As [`parse`], and a file that cannot be read.
pub fn read(path: &Path, req: &Request) -> Result<Table> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    parse(&bytes, path, req)
}

/// Parses the bytes of a CSV table; `path` goes into error messages.
///
/// # Errors
/// An empty file or one with a header but no rows; a ragged row; an empty cell or a non-number in
/// a feature column; a target or feature column that is not in the header, or named twice; a class
/// the model was not trained on; whole-number-less numbers as class targets.
pub fn parse(bytes: &[u8], path: &Path, req: &Request) -> Result<Table> {
    let bad = |line: u64, msg: String| Error::format(path, format!("line {line}: {msg}"));
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(bytes);
    let mut records = reader.records();
    let csv_error = |e: csv::Error| {
        let line = e
            .position()
            .map_or(0, |p| line_of(bytes, (0, 1), p.byte() as usize));
        let what = match e.kind() {
            csv::ErrorKind::Utf8 { .. } => "not UTF-8 text".to_string(),
            _ => e.to_string().escape_debug().to_string(),
        };
        bad(line, what)
    };
    let header: Vec<String> = match records.next() {
        None => {
            return Err(Error::format(
                path,
                "is empty; a CSV table needs a header row naming the columns, then one row per sample",
            ));
        }
        Some(r) => r
            .map_err(csv_error)?
            .iter()
            .map(|h| h.trim().to_string())
            .collect(),
    };
    let shown = |h: &[String]| h.join(", ").escape_debug().to_string();
    let column = |name: &String, what: &str| -> Result<usize> {
        let mut at = header.iter().enumerate().filter(|(_, h)| *h == name);
        match (at.next(), at.next()) {
            (Some((i, _)), None) => Ok(i),
            (Some((i, _)), Some((j, _))) => Err(bad(
                1,
                format!(
                    "column '{}' is named twice (columns {} and {})",
                    name.escape_debug(),
                    i + 1,
                    j + 1
                ),
            )),
            (None, _) => Err(bad(
                1,
                format!(
                    "{what} '{}' is not a column of the header ({})",
                    name.escape_debug(),
                    shown(&header)
                ),
            )),
        }
    };
    let last = [header.last().cloned().unwrap_or_default()];
    let target_names = if req.targets.is_empty() {
        &last[..]
    } else {
        req.targets
    };
    let targets: Vec<usize> = if req.need_targets {
        target_names
            .iter()
            .map(|t| column(t, "the --target"))
            .collect::<Result<_>>()?
    } else {
        Vec::new()
    };
    let features: Vec<usize> = match req.features {
        Some(names) => names
            .iter()
            .map(|f| column(f, "the model's input column"))
            .collect::<Result<_>>()?,
        None => (0..header.len())
            .filter(|i| !target_names.contains(&header[*i]))
            .collect(),
    };
    if features.is_empty() {
        let hint = if header.iter().any(|h| h.contains(';') || h.contains('\t')) {
            " (the header holds ';' or a tab: columns must be separated by commas)"
        } else {
            ""
        };
        return Err(bad(
            1,
            format!(
                "no feature columns besides the target ({}){hint}",
                shown(&header)
            ),
        ));
    }

    let mut x = Vec::new();
    let mut raw_targets: Vec<Vec<String>> = Vec::new();
    let mut lines = Vec::new();
    let mut counted = (0, 1);
    for record in records {
        let record = record.map_err(csv_error)?;
        // The reader reports where it started looking, before any blank lines it skipped.
        let line = record.position().map_or(0, |p| {
            let start = p.byte() as usize
                + bytes[p.byte() as usize..]
                    .iter()
                    .take_while(|b| matches!(b, b'\r' | b'\n'))
                    .count();
            counted = (start, line_of(bytes, counted, start));
            counted.1
        });
        if record.len() != header.len() {
            return Err(bad(
                line,
                format!(
                    "has {} fields, the header has {}",
                    record.len(),
                    header.len()
                ),
            ));
        }
        for &c in &features {
            x.push(number(&record[c], c, &header[c]).map_err(|m| bad(line, m))?);
        }
        raw_targets.push(
            targets
                .iter()
                .map(|&c| record[c].trim().to_string())
                .collect(),
        );
        lines.push(line);
    }
    let n = lines.len();
    if n == 0 {
        return Err(bad(
            1,
            "the table has a header but no data rows".to_string(),
        ));
    }
    let info = TableInfo {
        features: features.iter().map(|&c| header[c].clone()).collect(),
        targets: targets.iter().map(|&c| header[c].clone()).collect(),
        regression: req.regression,
    };
    let x = Tensor::new(&[n, features.len()], x)?;
    if !req.need_targets {
        return Ok(Table {
            x,
            y: None,
            class_names: None,
            info,
            lines,
        });
    }
    let at = |row: usize, k: usize| (lines[row], targets[k], &header[targets[k]]);
    let (y, class_names) = if req.regression {
        let mut v = Vec::with_capacity(n * targets.len());
        for (row, cells) in raw_targets.iter().enumerate() {
            for (k, cell) in cells.iter().enumerate() {
                let (line, c, name) = at(row, k);
                v.push(number(cell, c, name).map_err(|m| bad(line, m))?);
            }
        }
        (Labels::Values(Tensor::new(&[n, targets.len()], v)?), None)
    } else {
        if targets.len() > 1 {
            return Err(Error::invalid(format!(
                "{}: {} --target columns: a classifier takes one; several targets are numbers to fit with --loss mse",
                path.display(),
                targets.len()
            )));
        }
        let cells: Vec<&str> = raw_targets.iter().map(|c| c[0].as_str()).collect();
        classes(&cells, req.classes, &|row, msg| {
            let (line, c, name) = at(row, 0);
            bad(
                line,
                format!("column {} ('{}'): {msg}", c + 1, name.escape_debug()),
            )
        })?
    };
    Ok(Table {
        x,
        y: Some(y),
        class_names,
        info,
        lines,
    })
}

/// The line (from 1) that byte `at` is on, counted on from `(byte, its line)`: `\n`, `\r\n` and a
/// lone `\r` each end a line, as each ends a record for the reader (and a line for an editor).
fn line_of(bytes: &[u8], (from, line): (usize, u64), at: usize) -> u64 {
    let ends = bytes[from..at]
        .iter()
        .enumerate()
        .filter(|&(i, &b)| b == b'\n' || (b == b'\r' && bytes.get(from + i + 1) != Some(&b'\n')))
        .count();
    line + ends as u64
}

/// A feature (or regression target) cell as a finite number; the message names the column.
fn number(cell: &str, c: usize, name: &str) -> std::result::Result<f32, String> {
    let cell = cell.trim();
    let col = format!("column {} ('{}')", c + 1, name.escape_debug());
    if cell.is_empty() {
        return Err(format!(
            "{col} is empty; fill in missing values or drop the row"
        ));
    }
    match cell.parse::<f32>() {
        Ok(v) if v.is_finite() => Ok(v),
        Ok(_) => Err(format!(
            "{col}: '{}' is not a finite number",
            cell.escape_debug()
        )),
        Err(_) => Err(format!("{col}: '{}' is not a number", cell.escape_debug())),
    }
}

/// Class indices from target cells: by `known` names when given, else whole numbers as indices,
/// else the sorted distinct names. `bad(row, msg)` makes the error for a row.
fn classes(
    cells: &[&str],
    known: Option<&[String]>,
    bad: &dyn Fn(usize, String) -> Error,
) -> Result<(Labels, Option<Vec<String>>)> {
    if let Some(row) = cells.iter().position(|c| c.is_empty()) {
        return Err(bad(row, "the target is empty".into()));
    }
    let names: Vec<String> = match known {
        Some(k) => k.to_vec(),
        None => {
            let indices: Option<Vec<u32>> = cells.iter().map(|c| c.parse().ok()).collect();
            if let Some(i) = indices {
                return Ok((Labels::Classes(i), None));
            }
            if let Some(row) = cells
                .iter()
                .position(|c| c.parse::<f64>().is_ok() && c.parse::<u32>().is_err())
                .filter(|_| cells.iter().all(|c| c.parse::<f64>().is_ok()))
            {
                return Err(bad(
                    row,
                    format!(
                        "'{}' is not a class index (0, 1, 2, …); for numbers to fit use --loss mse",
                        cells[row].escape_debug()
                    ),
                ));
            }
            let set: BTreeSet<&str> = cells.iter().copied().collect();
            set.into_iter().map(str::to_string).collect()
        }
    };
    let index = |c: &str| names.iter().position(|n| n == c);
    let y = cells
        .iter()
        .enumerate()
        .map(|(row, c)| {
            index(c).map(|i| i as u32).ok_or_else(|| {
                bad(
                    row,
                    format!(
                        "class '{}' is not among the training data's classes ({})",
                        c.escape_debug(),
                        names.join(", ").escape_debug()
                    ),
                )
            })
        })
        .collect::<Result<Vec<u32>>>()?;
    Ok((Labels::Classes(y), Some(names)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req<'a>(targets: &'a [String]) -> Request<'a> {
        Request {
            targets,
            need_targets: true,
            ..Request::default()
        }
    }

    fn table(text: &str, r: &Request) -> Result<Table> {
        parse(text.as_bytes(), Path::new("t.csv"), r)
    }

    fn err(text: &str, r: &Request) -> String {
        table(text, r).unwrap_err().to_string()
    }

    #[test]
    fn class_names_are_sorted_and_the_target_defaults_to_the_last_column() {
        let t = table(
            "a, b ,kind\n1,2,tulip\n3,4.5,rose\n\n-1,1e3,tulip\n",
            &req(&[]),
        )
        .unwrap();
        assert_eq!(t.x.shape(), [3, 2]);
        assert_eq!(t.x.data(), [1.0, 2.0, 3.0, 4.5, -1.0, 1000.0]);
        assert_eq!(t.y, Some(Labels::Classes(vec![1, 0, 1])));
        assert_eq!(t.class_names.unwrap(), ["rose", "tulip"]);
        assert_eq!(t.info.features, ["a", "b"]);
        assert_eq!(t.lines, [2, 3, 5]);
        // A lone carriage return ends a line too (old Mac files), and CRLF is one line end.
        let t = table("a,y\r1,0\r\n\r\n2,1\r3,1\n", &req(&[])).unwrap();
        assert_eq!(t.lines, [2, 4, 5]);
        assert_eq!(
            err("a,y\r1,0\r2\r", &req(&[])),
            "t.csv: line 3: has 1 fields, the header has 2"
        );
    }

    #[test]
    fn whole_numbers_are_class_indices_and_the_target_can_be_any_column() {
        let y = ["label".to_string()];
        let t = table("label,x\n2,0.5\n0,1.5\n", &req(&y)).unwrap();
        assert_eq!(t.y, Some(Labels::Classes(vec![2, 0])));
        assert_eq!(t.class_names, None);
        assert_eq!(t.x.data(), [0.5, 1.5]);
        // Quoted fields and a byte-order mark are fine.
        let t = table("\u{feff}\"x, first\",label\n\"1\",1\n", &req(&y)).unwrap();
        assert_eq!(t.info.features, ["x, first"]);
    }

    #[test]
    fn regression_takes_several_numeric_targets() {
        let y = ["u".to_string(), "v".to_string()];
        let r = Request {
            regression: true,
            ..req(&y)
        };
        let t = table("u,x,v\n1.5,2,3\n4,5,6\n", &r).unwrap();
        assert_eq!(t.x.data(), [2.0, 5.0]);
        assert_eq!(
            t.y,
            Some(Labels::Values(
                Tensor::new(&[2, 2], vec![1.5, 3.0, 4.0, 6.0]).unwrap()
            ))
        );
        let e = err("u,x,v\n1.5,2,3\n4,5,high\n", &r);
        assert_eq!(e, "t.csv: line 3: column 3 ('v'): 'high' is not a number");
        let e = err("u,x,v\n1,2,3\n", &req(&y));
        assert!(
            e.contains("2 --target columns") && e.contains("--loss mse"),
            "{e}"
        );
    }

    #[test]
    fn recorded_columns_and_classes_are_followed() {
        let f = ["b".to_string(), "a".to_string()];
        let k = ["rose".to_string(), "tulip".to_string()];
        let r = Request {
            features: Some(&f),
            classes: Some(&k),
            ..req(&[])
        };
        let t = table("a,b,kind\n1,2,tulip\n", &r).unwrap();
        assert_eq!(t.x.data(), [2.0, 1.0]);
        assert_eq!(t.y, Some(Labels::Classes(vec![1])));
        let e = err("a,b,kind\n1,2,tulip\n3,4,daisy\n", &r);
        assert_eq!(
            e,
            "t.csv: line 3: column 3 ('kind'): class 'daisy' is not among the training data's classes (rose, tulip)"
        );
        let e = err("a,c,kind\n1,2,tulip\n", &r);
        assert_eq!(
            e,
            "t.csv: line 1: the model's input column 'b' is not a column of the header (a, c, kind)"
        );
        // predict: no targets needed, the target column may be absent.
        let p = Request {
            need_targets: false,
            ..r
        };
        assert_eq!(table("b,a\n7,8\n", &p).unwrap().x.data(), [7.0, 8.0]);
    }

    #[test]
    fn errors_name_file_line_and_column() {
        let r = req(&[]);
        assert_eq!(
            err("", &r),
            "t.csv: is empty; a CSV table needs a header row naming the columns, then one row per sample"
        );
        assert_eq!(
            err("a,b,y\n", &r),
            "t.csv: line 1: the table has a header but no data rows"
        );
        assert_eq!(
            err("a,b,y\n1,2,0\n1,2\n", &r),
            "t.csv: line 3: has 2 fields, the header has 3"
        );
        assert_eq!(
            err("a,b,y\n1,2,0\n1,x,1\n", &r),
            "t.csv: line 3: column 2 ('b'): 'x' is not a number"
        );
        assert_eq!(
            err("a,b,y\n1,,0\n", &r),
            "t.csv: line 2: column 2 ('b') is empty; fill in missing values or drop the row"
        );
        assert_eq!(
            err("a,b,y\nnan,1,0\n", &r),
            "t.csv: line 2: column 1 ('a'): 'nan' is not a finite number"
        );
        let y = ["class".to_string()];
        assert_eq!(
            err("a,b,y\n1,2,0\n", &req(&y)),
            "t.csv: line 1: the --target 'class' is not a column of the header (a, b, y)"
        );
        assert_eq!(
            err("a,a,y\n1,2,0\n", &req(&["a".to_string()])),
            "t.csv: line 1: column 'a' is named twice (columns 1 and 2)"
        );
        assert_eq!(
            err("a,y\n1,0\n2,0.5\n", &r),
            "t.csv: line 3: column 2 ('y'): '0.5' is not a class index (0, 1, 2, …); for numbers to fit use --loss mse"
        );
        assert_eq!(
            err("a,y\n1,cat\n2,\n", &r),
            "t.csv: line 3: column 2 ('y'): the target is empty"
        );
        assert_eq!(
            err("a;b;y\n1;2;0\n", &r),
            "t.csv: line 1: no feature columns besides the target (a;b;y) (the header holds ';' or a tab: columns must be separated by commas)"
        );
        let e = parse(b"a,y\n1,\xff\n", Path::new("t.csv"), &r)
            .unwrap_err()
            .to_string();
        assert_eq!(e, "t.csv: line 2: not UTF-8 text");
    }
}
