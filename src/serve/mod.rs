//! `scratchnet serve`: a checkpoint behind HTTP, with a page to draw on.
//!
//! - `GET /` — one self-contained page (no CDN): a canvas, the top classes as you draw, and the
//!   `h × w` input the model actually sees.
//! - `POST /predict` — an image body (PNG, JPEG, PGM) → `{"predictions": [{"class", "probability"}],
//!   "input": [c·h·w values], "channels", "height", "width"}`; a JSON body `{"inputs": [x₀, x₁, …]}`,
//!   each sample either nested like the input shape or flat → `{"outputs": [y₀, y₁, …]}` (raw
//!   outputs, nested like the output shape).
//! - `GET /health`, `GET /model` (text, input and output shape, classes, parameter count).
//!
//! Inputs are prepared as `predict` prepares them: the checkpoint's recorded input shape, an
//! image made the way the training images were (its recorded style), and the recorded
//! standardisation (`--normalize`, a table's) applied to images and JSON inputs alike.
//!
//! Bad requests get a 4xx and `{"error": "…"}`; the server stays up. A body longer than
//! `max_body` is refused with 413 before it is read, an image whose header announces more than
//! `max_pixels` pixels with 413 before it is decoded.
//!
//! The same HTTP machinery serves the [`dashboard`] of a training run (`train --dashboard`) and
//! the [`playground`] (`scratchnet playground`); their pages share one chart script, inlined.
//!
//! HTTP is our small [`http`] module over `httparse` (why not `tiny_http`: see there): a fixed pool
//! of workers, each owning its own copy of the model (a forward pass keeps what backward would
//! need, so it takes `&mut`), so workers never wait on each other.

use crate::Mode;
use crate::checkpoint::{self, CLASSES_KEY};
use crate::data::input::{ImageStyle, InputInfo};
use crate::error::{Error, Result};
use crate::image_io;
use crate::layers::param_count;
use crate::model::Model;
use crate::report::{probabilities, top_k};
use crate::tensor::Tensor;
use http::{Request, Response};
use rand::SeedableRng;
use serde_json::{Value, json};

use std::path::Path;
use std::sync::Arc;

/// The page served at `/`.
const PAGE: &str = include_str!("page.html");

pub mod dashboard;
pub mod http;
pub mod playground;
pub use http::Server;

/// The line-chart drawing shared by the dashboard's and the playground's pages.
const CHART_JS: &str = include_str!("chart.js");

/// `html` with [`CHART_JS`] put in place of its `/*CHART_JS*/` marker: still one page.
fn page(html: &str) -> String {
    html.replace("/*CHART_JS*/", CHART_JS)
}

/// How the server runs.
#[derive(Clone, Debug)]
pub struct Config {
    /// The address to listen on.
    pub host: String,
    /// 0 picks a free port.
    pub port: u16,
    /// The longest request body accepted, in bytes.
    pub max_body: usize,
    /// Threads answering requests, each with its own copy of the model.
    pub workers: usize,
    /// The most pixels an uploaded image may decode to.
    pub max_pixels: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            host: "127.0.0.1".into(),
            port: 8000,
            max_body: 4 << 20,
            workers: 4,
            max_pixels: 1 << 24,
        }
    }
}

/// What `GET /model` reports, shared by the workers.
struct Info {
    text: String,
    input_shape: Vec<usize>,
    output_shape: Vec<usize>,
    classes: Vec<String>,
    parameters: usize,
    /// `[c, h, w]` and how the training images looked, if the model takes images
    /// (`[1 or 3, h, w]`, or `[h·w]` with h = w).
    image: Option<([usize; 3], ImageStyle)>,
    /// The recorded input preparation, applied to every request's inputs.
    input: Option<InputInfo>,
    max_pixels: u64,
}

/// The per-sample input shape of a checkpoint's model: `given` (or the recorded one), else the
/// first of `[1, 28, 28]`, `[784]` and `[in_features]` of a first Linear that the model accepts.
fn build(ck: &checkpoint::Checkpoint, text: &str, given: Option<&[usize]>) -> Result<Model> {
    let first_linear = ck
        .tensors
        .get("0.weight")
        .filter(|t| t.shape().len() == 2)
        .map(|t| vec![t.shape()[1]]);
    let candidates: Vec<Vec<usize>> = match given {
        Some(s) => vec![s.to_vec()],
        None => [Some(vec![1, 28, 28]), Some(vec![784]), first_linear]
            .into_iter()
            .flatten()
            .collect(),
    };
    let mut first_err = None;
    for shape in &candidates {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        match Model::build(text, shape, &mut rng) {
            Ok(mut m) => {
                ck.load_into(&mut m)?;
                return Ok(m);
            }
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    Err(Error::invalid(format!(
        "{} (tried input shapes {candidates:?}; give the right one with --input-shape)",
        first_err.map_or(String::new(), |e| e.to_string())
    )))
}

/// Loads the checkpoint (one model per worker), binds `host:port` and starts the workers.
///
/// # Errors
/// The checkpoint cannot be read or built, or the address cannot be bound.
pub fn start(
    path: &Path,
    text: Option<&str>,
    input_shape: Option<&[usize]>,
    config: &Config,
) -> Result<Server> {
    if config.workers == 0 {
        return Err(Error::invalid("--workers must be at least 1"));
    }
    let ck = checkpoint::read(path)?;
    let text = text.or(ck.model_text()).ok_or_else(|| Error::Checkpoint {
        path: path.to_path_buf(),
        msg: "the checkpoint has no 'model' metadata; pass --model TEXT".into(),
    })?;
    let input = InputInfo::of(&ck)?;
    let shape = input_shape.or(input.as_ref().map(|i| i.shape.as_slice()));
    let mut models = (0..config.workers)
        .map(|_| build(&ck, text, shape))
        .collect::<Result<Vec<_>>>()?;
    let m = &mut models[0];
    let outputs: usize = m.output_shape().iter().product();
    let classes = ck
        .metadata
        .get(CLASSES_KEY)
        .and_then(|j| serde_json::from_str::<Vec<String>>(j).ok())
        .filter(|c| c.len() == outputs)
        .unwrap_or_else(|| (0..outputs).map(|c| c.to_string()).collect());
    let image = image_io::image_shape(m.input_shape())
        .map(|shape| (shape, image_io::recorded_style(input.as_ref(), shape)));
    let info = Arc::new(Info {
        text: m.text().to_string(),
        input_shape: m.input_shape().to_vec(),
        output_shape: m.output_shape().to_vec(),
        classes,
        parameters: param_count(m.net()),
        image,
        input,
        max_pixels: config.max_pixels,
    });
    let listener =
        std::net::TcpListener::bind((config.host.as_str(), config.port)).map_err(|e| {
            Error::invalid(format!(
                "cannot listen on {}:{}: {e}",
                config.host, config.port
            ))
        })?;
    let states = models.into_iter().map(|m| (m, info.clone())).collect();
    http::serve(listener, states, config.max_body, |(model, info), req| {
        respond(model, info, req)
    })
    .map_err(|e| Error::invalid(format!("cannot serve: {e}")))
}

fn respond(model: &mut Model, info: &Info, req: &Request) -> Response {
    let path = req.path.as_str();
    match (req.method.as_str(), path) {
        ("GET", "/") => Response {
            status: 200,
            content_type: "text/html; charset=utf-8",
            body: PAGE.as_bytes().to_vec(),
        },
        ("GET", "/health") => Response::json(200, &json!({ "status": "ok" })),
        ("GET", "/model") => Response::json(
            200,
            &json!({
                "model": info.text,
                "input_shape": info.input_shape,
                "output_shape": info.output_shape,
                "classes": info.classes,
                "parameters": info.parameters,
                "image": info.image.map(|([c, h, w], _)| json!({ "channels": c, "height": h, "width": w })),
            }),
        ),
        ("POST", "/predict") => {
            let json = req.content_type.to_ascii_lowercase().contains("json")
                || req.body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
            predict(model, info, &req.body, json)
        }
        (_, "/" | "/health" | "/model" | "/predict") => Response::error(
            405,
            format!(
                "{} {path} is not served; GET /, /health, /model; POST /predict",
                req.method
            ),
        ),
        _ => Response::error(
            404,
            format!("no page {path}; GET /, /health, /model; POST /predict"),
        ),
    }
}

/// A JSON body (sent as `application/json`, or starting with `{`) or an image.
fn predict(model: &mut Model, info: &Info, body: &[u8], json: bool) -> Response {
    if json {
        return match json_inputs(body, &info.input_shape) {
            Ok(mut x) => match prepare(info, &mut x).and_then(|()| model.predict(&x, 100)) {
                Ok(y) => Response::json(200, &json!({ "outputs": nest_rows(&y) })),
                Err(e) => Response::error(422, e.to_string()),
            },
            Err(e) => Response::error(400, e),
        };
    }
    let Some(([c, h, w], style)) = info.image else {
        return Response::error(
            415,
            format!(
                "this model takes inputs of shape {:?}, not images: send JSON {{\"inputs\": [...]}}",
                info.input_shape
            ),
        );
    };
    let pixels = match image_io::decode_for_model(
        body,
        Path::new("the body"),
        [c, h, w],
        style,
        None,
        info.max_pixels,
    ) {
        Ok(p) => p,
        Err(e @ Error::Invalid(_)) => return Response::error(413, e.to_string()),
        Err(e) => return Response::error(415, e.to_string()),
    };
    let mut shape = vec![1];
    shape.extend_from_slice(&info.input_shape);
    let y = match Tensor::new(&shape, pixels.clone())
        .and_then(|mut x| prepare(info, &mut x).map(|()| x))
        .and_then(|x| model.forward(x, Mode::Eval))
    {
        Ok(y) => y,
        Err(e) => return Response::error(422, e.to_string()),
    };
    let p = probabilities(y.data());
    let predictions: Vec<Value> = top_k(&p, p.len())
        .into_iter()
        .map(|c| json!({ "class": info.classes[c], "probability": p[c] }))
        .collect();
    Response::json(
        200,
        &json!({ "predictions": predictions, "input": pixels, "channels": c, "height": h, "width": w }),
    )
}

/// The recorded preparation of `x` (`--normalize`, a table's standardisation), as `predict` does.
fn prepare(info: &Info, x: &mut Tensor) -> Result<()> {
    info.input.as_ref().map_or(Ok(()), |i| i.prepare(x))
}

/// `{"inputs": [...]}` as a batch `[N, …shape]`; each sample nested like `shape`, or flat.
fn json_inputs(body: &[u8], shape: &[usize]) -> std::result::Result<Tensor, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("malformed JSON: {e}"))?;
    let Some(rows) = v.get("inputs").and_then(Value::as_array) else {
        return Err("expected a JSON object {\"inputs\": [sample, …]}".into());
    };
    if rows.is_empty() {
        return Err("\"inputs\" is empty".into());
    }
    let per: usize = shape.iter().product();
    let mut data = Vec::with_capacity(rows.len() * per);
    for (i, row) in rows.iter().enumerate() {
        let start = data.len();
        let got = flatten(row, &mut data).map_err(|e| format!("inputs[{i}]: {e}"))?;
        if got != shape && got != [per] {
            return Err(format!(
                "inputs[{i}] has shape {got:?}; the model takes {shape:?} (or {per} values flat)"
            ));
        }
        debug_assert_eq!(data.len() - start, per);
    }
    let mut batch = vec![rows.len()];
    batch.extend_from_slice(shape);
    Tensor::new(&batch, data).map_err(|e| e.to_string())
}

/// Appends the numbers of a nested JSON array to `out`; returns its shape (rectangular only).
fn flatten(v: &Value, out: &mut Vec<f32>) -> std::result::Result<Vec<usize>, String> {
    match v {
        Value::Number(n) => {
            let x = n.as_f64().unwrap_or(f64::NAN) as f32;
            if !x.is_finite() {
                return Err(format!("{n} is not a finite 32-bit float"));
            }
            out.push(x);
            Ok(vec![])
        }
        Value::Array(items) => {
            let mut inner: Option<Vec<usize>> = None;
            for item in items {
                let s = flatten(item, out)?;
                if inner.as_ref().is_some_and(|i| *i != s) {
                    return Err("the nested arrays are not all the same length".into());
                }
                inner = Some(s);
            }
            let mut shape = vec![items.len()];
            shape.extend(inner.unwrap_or_default());
            Ok(shape)
        }
        other => Err(format!("expected numbers, got {other}")),
    }
}

/// The rows of `y: [N, …]`, each nested like the per-sample shape.
fn nest_rows(y: &Tensor) -> Value {
    fn nest(data: &[f32], shape: &[usize]) -> Value {
        match shape {
            [] | [_] => json!(data),
            [n, rest @ ..] => Value::Array(
                data.chunks(data.len() / n.max(&1))
                    .map(|c| nest(c, rest))
                    .collect(),
            ),
        }
    }
    let per = y.len() / y.shape()[0].max(1);
    Value::Array(
        y.data()
            .chunks(per.max(1))
            .map(|row| nest(row, &y.shape()[1..]))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_inputs_take_nested_or_flat_samples_and_name_bad_ones() {
        let x = json_inputs(br#"{"inputs": [[[1, 2], [3, 4]], [5, 6, 7, 8]]}"#, &[2, 2]).unwrap();
        assert_eq!(x.shape(), &[2, 2, 2]);
        assert_eq!(x.data(), &[1., 2., 3., 4., 5., 6., 7., 8.]);
        for (body, want) in [
            (&b"{\"inputs\": [[1, 2, 3]]}"[..], "inputs[0] has shape [3]"),
            (b"{\"inputs\": [[[1, 2], [3]]]}", "not all the same length"),
            (b"{\"inputs\": [[1, \"a\", 3, 4]]}", "expected numbers"),
            (b"{\"inputs\": [[1, 2, 3, 1e300]]}", "not a finite"),
            (b"{\"inputs\": []}", "empty"),
            (b"{\"x\": 1}", "expected a JSON object"),
            (b"{\"inputs\": [", "malformed JSON"),
        ] {
            let e = json_inputs(body, &[2, 2]).unwrap_err();
            assert!(e.contains(want), "{e}");
        }
    }

    #[test]
    fn outputs_are_nested_like_the_output_shape() {
        let y = Tensor::new(&[2, 2, 2], (0..8).map(|v| v as f32).collect()).unwrap();
        assert_eq!(
            nest_rows(&y),
            json!([[[0., 1.], [2., 3.]], [[4., 5.], [6., 7.]]])
        );
        let y = Tensor::new(&[1, 3], vec![1., 2., 3.]).unwrap();
        assert_eq!(nest_rows(&y), json!([[1., 2., 3.]]));
    }
}
