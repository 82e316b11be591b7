//! `scratchnet serve`, run as a user runs it: the real binary on 127.0.0.1 (a free port), asked
//! over plain TCP for every endpoint, every kind of bad request, and 200 requests at once.

use rand::SeedableRng;
use scratchnet::{Mode, Model, Tensor, checkpoint, image_io};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Stdio};

mod common;
use common::{read_response, request};

/// The serving binary, killed when dropped.
struct Served {
    child: Child,
    addr: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `scratchnet serve --checkpoint F --port 0 FLAGS`, with the address it printed.
fn spawn(checkpoint: &Path, flags: &[&str]) -> Served {
    let mut child = common::bin()
        .args(["serve", "--checkpoint", checkpoint.to_str().unwrap()])
        .args(["--port", "0"])
        .args(flags)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .split("http://")
        .nth(1)
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .trim()
        .trim_end_matches('/')
        .to_string();
    Served { child, addr }
}

/// An untrained mlp (seed 3) with class names, saved in a temp dir and served with `flags`.
fn serve(flags: &[&str]) -> (Served, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = dir.path().join("mlp.safetensors");
    let model = mlp();
    let names: Vec<String> = (0..10).map(|c| format!("digit {c}")).collect();
    let meta = BTreeMap::from([(
        checkpoint::CLASSES_KEY.to_string(),
        serde_json::to_string(&names).unwrap(),
    )]);
    checkpoint::save(&model, &checkpoint, &meta).unwrap();
    (spawn(&checkpoint, flags), dir)
}

fn mlp() -> Model {
    Model::build(
        "mlp",
        &[1, 28, 28],
        &mut rand_chacha::ChaCha8Rng::seed_from_u64(3),
    )
    .unwrap()
}

/// The model served from `dir`, loaded in this process, for the expected answers.
fn reference(dir: &tempfile::TempDir) -> Model {
    let mut m = mlp();
    checkpoint::read(&dir.path().join("mlp.safetensors"))
        .unwrap()
        .load_into(&mut m)
        .unwrap();
    m
}

/// One HTTP/1.1 request on its own connection: (status, body).
fn get(addr: &str, path: &str) -> (u16, serde_json::Value) {
    let (status, body) = request(addr, "GET", path, "text/plain", b"");
    (status, serde_json::from_slice(&body).unwrap())
}

fn post(addr: &str, kind: &str, body: &[u8]) -> (u16, serde_json::Value) {
    let (status, body) = request(addr, "POST", "/predict", kind, body);
    let v = serde_json::from_slice(&body)
        .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&body)));
    (status, v)
}

/// A 40×40 PNG: a bright vertical stroke on black.
fn stroke_png() -> Vec<u8> {
    let img = image::GrayImage::from_fn(40, 40, |x, y| {
        image::Luma([if (18..23).contains(&x) && (6..34).contains(&y) {
            255
        } else {
            0
        }])
    });
    let mut png = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    png
}

#[test]
fn every_endpoint_answers_what_the_model_computes() {
    let (s, dir) = serve(&[]);
    let mut model = reference(&dir);

    let (status, page) = request(&s.addr, "GET", "/", "text/plain", b"");
    let page = String::from_utf8(page).unwrap();
    assert_eq!(status, 200);
    assert!(page.contains("<canvas") && page.contains("fetch(\"predict\""));
    assert!(
        !page.contains("src=\"http") && !page.contains("href=\"http"),
        "the page loads nothing from elsewhere"
    );

    assert_eq!(
        get(&s.addr, "/health"),
        (200, serde_json::json!({"status": "ok"}))
    );
    let (status, m) = get(&s.addr, "/model");
    assert_eq!(status, 200);
    assert_eq!(m["model"], model.text());
    assert_eq!(m["input_shape"], serde_json::json!([1, 28, 28]));
    assert_eq!(m["output_shape"], serde_json::json!([10]));
    assert_eq!(m["parameters"], 669_706);
    assert_eq!(m["classes"][7], "digit 7");

    // An image: every class, best first, with the probabilities of the pixels it decoded.
    let png = stroke_png();
    let (status, v) = post(&s.addr, "image/png", &png);
    assert_eq!(status, 200, "{v}");
    let pixels = image_io::decode_for_model(
        &png,
        Path::new("x"),
        [1, 28, 28],
        image_io::default_style([1, 28, 28]),
        None,
        1 << 20,
    )
    .unwrap();
    let seen: Vec<f32> = serde_json::from_value(v["input"].clone()).unwrap();
    assert_eq!(seen, pixels);
    let y = model
        .forward(Tensor::new(&[1, 1, 28, 28], pixels).unwrap(), Mode::Eval)
        .unwrap();
    let p = scratchnet::report::probabilities(y.data());
    let preds = v["predictions"].as_array().unwrap();
    assert_eq!(preds.len(), 10);
    let best = scratchnet::report::top_k(&p, 10);
    for (got, &c) in preds.iter().zip(&best) {
        assert_eq!(got["class"], format!("digit {c}"));
        assert!((got["probability"].as_f64().unwrap() - p[c] as f64).abs() < 1e-6);
    }

    // JSON: raw outputs for a batch, samples nested or flat.
    let x = scratchnet::init::uniform(
        &[2, 1, 28, 28],
        0.0,
        1.0,
        &mut rand_chacha::ChaCha8Rng::seed_from_u64(9),
    );
    let rows: Vec<Vec<f32>> = x.data().chunks(784).map(<[f32]>::to_vec).collect();
    let nested: Vec<Vec<Vec<f32>>> = vec![rows[1].chunks(28).map(<[f32]>::to_vec).collect()];
    let body = serde_json::json!({ "inputs": [rows[0], nested] }).to_string();
    let (status, v) = post(&s.addr, "application/json", body.as_bytes());
    assert_eq!(status, 200, "{v}");
    let want = model.predict(&x, 100).unwrap();
    let got: Vec<Vec<f32>> = serde_json::from_value(v["outputs"].clone()).unwrap();
    assert_eq!(got.concat(), want.data());
}

#[test]
fn bad_requests_get_a_4xx_with_a_message_and_the_server_stays_up() {
    let (s, _dir) = serve(&["--max-body", "300000"]);
    let bomb = {
        // 5000×5000 black compresses to a few kB but would decode to 25 megapixels.
        let mut png = Vec::new();
        image::GrayImage::new(5000, 5000)
            .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        assert!(png.len() < 300_000, "{}", png.len());
        png
    };
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        (
            "application/json",
            b"{\"inputs\": [[1, 2".to_vec(),
            400,
            "malformed JSON",
        ),
        (
            "application/json",
            b"{\"inputs\": [[1, 2, 3]]}".to_vec(),
            400,
            "has shape [3]; the model takes [1, 28, 28]",
        ),
        (
            "application/json",
            b"{\"input\": []}".to_vec(),
            400,
            "expected a JSON object",
        ),
        (
            "application/json",
            b"[1, 2]".to_vec(),
            400,
            "expected a JSON object",
        ),
        (
            "image/png",
            b"hello, not a picture".to_vec(),
            415,
            "not a readable",
        ),
        (
            "image/png",
            stroke_png()[..60].to_vec(),
            415,
            "not a readable",
        ),
        (
            "image/png",
            bomb,
            413,
            "5000×5000 pixels, more than the limit",
        ),
        (
            "image/png",
            vec![0u8; 300_001],
            413,
            "more than the limit of 300000",
        ),
        ("image/png", Vec::new(), 415, "not a readable"),
    ];
    for (kind, body, want, msg) in cases {
        let (status, v) = post(&s.addr, kind, &body);
        assert_eq!(status, want, "{v}");
        let e = v["error"].as_str().unwrap();
        assert!(e.contains(msg), "{e}");
        assert_eq!(get(&s.addr, "/health").0, 200);
    }
    assert_eq!(get(&s.addr, "/nowhere").0, 404);
    assert_eq!(
        request(&s.addr, "DELETE", "/predict", "text/plain", b"").0,
        405
    );
    assert_eq!(
        request(&s.addr, "GET", "/predict", "text/plain", b"").0,
        405
    );

    // A length announced far over the limit is refused before the body is sent (a server that
    // allocated the announced length to drain it would abort here).
    for length in ["999999999", "1000000000000000"] {
        let mut c = TcpStream::connect(&s.addr).unwrap();
        write!(
            c,
            "POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\n"
        )
        .unwrap();
        let (status, body) = read_response(c);
        assert_eq!(status, 413, "{}", String::from_utf8_lossy(&body));
    }
    let mut c = TcpStream::connect(&s.addr).unwrap();
    write!(c, "POST /predict HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n").unwrap();
    assert_eq!(read_response(c).0, 411);
    let mut c = TcpStream::connect(&s.addr).unwrap();
    write!(c, "GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(20_000)).unwrap();
    assert_eq!(read_response(c).0, 431);
    // A body shorter than announced: the client gives up (closes its side).
    let mut c = TcpStream::connect(&s.addr).unwrap();
    write!(
        c,
        "POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{{"
    )
    .unwrap();
    c.shutdown(std::net::Shutdown::Write).unwrap();
    assert_eq!(read_response(c).0, 400);
    // Garbage that is not HTTP at all.
    let mut c = TcpStream::connect(&s.addr).unwrap();
    c.write_all(b"\x00\x01\x02 nonsense\r\n\r\n").unwrap();
    let mut sink = Vec::new();
    let _ = c.read_to_end(&mut sink);
    assert_eq!(get(&s.addr, "/health").0, 200);
}

#[test]
fn two_hundred_requests_at_once_all_get_their_own_answer() {
    let (s, dir) = serve(&["--workers", "4"]);
    let mut model = reference(&dir);
    let n = 200;
    let x = scratchnet::init::uniform(
        &[n, 1, 28, 28],
        0.0,
        1.0,
        &mut rand_chacha::ChaCha8Rng::seed_from_u64(5),
    );
    // One sample at a time, as the server runs them (a GEMM's blocking depends on the batch).
    let want = model.predict(&x, 1).unwrap();
    let barrier = std::sync::Barrier::new(n);
    let answers: Vec<Vec<f32>> = std::thread::scope(|scope| {
        let handles: Vec<_> = x
            .data()
            .chunks(784)
            .map(|row| {
                let (addr, barrier) = (&s.addr, &barrier);
                scope.spawn(move || {
                    let body = serde_json::json!({ "inputs": [row] }).to_string();
                    barrier.wait();
                    let (status, v) = post(addr, "application/json", body.as_bytes());
                    assert_eq!(status, 200, "{v}");
                    let out: Vec<Vec<f32>> = serde_json::from_value(v["outputs"].clone()).unwrap();
                    out.concat()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let wrong = answers
        .iter()
        .zip(want.data().chunks(10))
        .filter(|(a, w)| a.as_slice() != *w)
        .count();
    assert_eq!(
        wrong, 0,
        "clients that did not get their own sample's outputs"
    );
    assert_eq!(get(&s.addr, "/health").0, 200);
}

#[test]
fn a_model_that_does_not_take_images_says_so_and_takes_json() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("xor.safetensors");
    let mut m = Model::build(
        "Linear(2,8), Tanh, Linear(8,3)",
        &[2],
        &mut rand_chacha::ChaCha8Rng::seed_from_u64(1),
    )
    .unwrap();
    checkpoint::save(&m, &path, &BTreeMap::new()).unwrap();
    let served = spawn(&path, &[]);
    let addr = served.addr.clone();
    let (status, info) = get(&addr, "/model");
    assert_eq!(
        (status, &info["input_shape"]),
        (200, &serde_json::json!([2]))
    );
    assert_eq!(info["classes"], serde_json::json!(["0", "1", "2"]));
    let (status, v) = post(&addr, "image/png", &stroke_png());
    assert_eq!(status, 415, "{v}");
    let (status, v) = post(&addr, "application/json", br#"{"inputs": [[0.5, -1]]}"#);
    let want = m
        .forward(Tensor::new(&[1, 2], vec![0.5, -1.0]).unwrap(), Mode::Eval)
        .unwrap();
    assert_eq!(status, 200);
    assert_eq!(v["outputs"][0].as_array().unwrap().len(), 3);
    for (g, w) in v["outputs"][0].as_array().unwrap().iter().zip(want.data()) {
        assert_eq!(g.as_f64().unwrap() as f32, *w);
    }
}

#[test]
fn a_bad_checkpoint_or_flag_is_a_one_line_error() {
    let e = common::fails(&[
        "serve",
        "--checkpoint",
        "/nonexistent/x.safetensors",
        "--port",
        "0",
    ]);
    assert!(e.contains("/nonexistent/x.safetensors"), "{e}");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    checkpoint::save(&mlp(), &path, &BTreeMap::new()).unwrap();
    let e = common::fails(&[
        "serve",
        "--checkpoint",
        path.to_str().unwrap(),
        "--workers",
        "0",
    ]);
    assert!(e.contains("--workers must be at least 1"), "{e}");
    let e = common::fails(&[
        "serve",
        "--checkpoint",
        path.to_str().unwrap(),
        "--input-shape",
        "3,5",
    ]);
    assert!(e.contains("[3, 5]"), "{e}");
}

/// A model trained on a colour folder with `--normalize auto` answers over HTTP exactly what
/// `predict` answers: the image made as the folder reader made the training images (the recorded
/// style, three channels, the recorded shape), then standardised as recorded, for an image body
/// and for JSON alike.
#[test]
fn serve_prepares_inputs_as_predict_does() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for (class, colour) in [("blue", [20u8, 40, 230]), ("red", [230, 30, 20])] {
        std::fs::create_dir_all(d.join("pics").join(class)).unwrap();
        for i in 0..6u32 {
            image::RgbImage::from_fn(6, 5, |x, y| {
                image::Rgb(if (x + y + i) % 3 == 0 {
                    colour
                } else {
                    [9, 9, 9]
                })
            })
            .save(d.join("pics").join(class).join(format!("{i}.png")))
            .unwrap();
        }
    }
    let ck = d.join("m.safetensors");
    common::ok(&[
        "train",
        "--data",
        d.join("pics").to_str().unwrap(),
        "--model",
        "Flatten, Linear(90,2)",
        "--normalize",
        "auto",
        "--epochs",
        "2",
        "--out",
        ck.to_str().unwrap(),
    ]);
    let served = spawn(&ck, &[]);
    let (status, m) = get(&served.addr, "/model");
    assert_eq!(status, 200);
    assert_eq!(m["input_shape"], serde_json::json!([3, 5, 6]));
    assert_eq!(m["image"]["channels"], 3);

    // A training image, uploaded (an odd size, so that it must be fitted as in training).
    let upload = d.join("upload.png");
    image::RgbImage::from_fn(9, 7, |x, y| {
        image::Rgb([(x * 25) as u8, (y * 30) as u8, 200])
    })
    .save(&upload)
    .unwrap();
    let (status, v) = post(&served.addr, "image/png", &std::fs::read(&upload).unwrap());
    assert_eq!(status, 200, "{v}");
    let info = scratchnet::data::input::InputInfo::of(&checkpoint::read(&ck).unwrap())
        .unwrap()
        .unwrap();
    let want = image_io::load_for_model(&upload, [3, 5, 6], info.image.unwrap(), None).unwrap();
    let seen: Vec<f32> = serde_json::from_value(v["input"].clone()).unwrap();
    assert_eq!(seen, want, "the pixels differ from the folder reader's");

    // `predict` on those pixels gives the served probabilities …
    let x = d.join("x.npy");
    scratchnet::data::npy::write_npy_f32(&x, &[1, 3, 5, 6], &seen).unwrap();
    let y = d.join("y.npy");
    common::ok(&[
        "predict",
        "--checkpoint",
        ck.to_str().unwrap(),
        "--input",
        x.to_str().unwrap(),
        "--output",
        y.to_str().unwrap(),
    ]);
    let scratchnet::data::npy::NpyData::Float(logits) =
        scratchnet::data::npy::read_npy(&y).unwrap().data
    else {
        panic!("predict wrote no floats");
    };
    let p = scratchnet::report::probabilities(&logits);
    for got in v["predictions"].as_array().unwrap() {
        let c = m["classes"]
            .as_array()
            .unwrap()
            .iter()
            .position(|n| *n == got["class"])
            .unwrap();
        assert!(
            (got["probability"].as_f64().unwrap() - p[c] as f64).abs() < 1e-6,
            "{v}"
        );
    }
    // … and the same pixels as JSON get predict's outputs (standardised as recorded).
    let body = serde_json::json!({ "inputs": [seen] }).to_string();
    let (status, v) = post(&served.addr, "application/json", body.as_bytes());
    assert_eq!(status, 200, "{v}");
    let got: Vec<Vec<f32>> = serde_json::from_value(v["outputs"].clone()).unwrap();
    assert_eq!(got.concat(), logits);
}
