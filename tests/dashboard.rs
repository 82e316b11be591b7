//! `train --dashboard` and `scratchnet playground`, run as a user runs them: the real binary on
//! 127.0.0.1 (a free port), asked over plain TCP for every endpoint and some bad requests.

use serde_json::Value;
use std::io::{BufRead, BufReader, Lines};
use std::process::{Child, ChildStdout, Stdio};

mod common;
use common::{request, s};

/// A running binary, killed when dropped.
struct Running {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
    addr: String,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `scratchnet ARGS` and reads its output up to the line with the address.
fn spawn(args: &[&str]) -> Running {
    let mut child = common::bin()
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = loop {
        let line = lines.next().expect("an address line").unwrap();
        if let Some(a) = line.split("http://").nth(1) {
            break a.trim().trim_end_matches('/').to_string();
        }
    };
    Running { child, lines, addr }
}

fn call(addr: &str, method: &str, path: &str, body: &str) -> (u16, Value) {
    let (status, body) = request(addr, method, path, "application/json", body.as_bytes());
    let v = serde_json::from_slice(&body)
        .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&body)));
    (status, v)
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

#[test]
fn the_dashboard_follows_the_run_and_stays_after_it_with_keep() {
    let dir = tempfile::tempdir().unwrap();
    let data = common::toy_data(dir.path(), 60);
    let out = dir.path().join("m.safetensors");
    let mut run = spawn(&[
        "train",
        "--model",
        "Linear(4,8), Tanh, Linear(8,3)",
        "--data",
        &data,
        "--batch-size",
        "4",
        "--epochs",
        "3",
        "--lr",
        "0.05",
        "--out",
        s(&out),
        "--stats-every",
        "5",
        "--dashboard",
        "0",
        "--dashboard-keep",
        "--quiet",
    ]);
    let a = run.addr.clone();
    // The page is up while training; then wait for the end of the run.
    let (status, page) = request(&a, "GET", "/", "text/plain", b"");
    let page = String::from_utf8(page).unwrap();
    assert_eq!(status, 200);
    assert!(page.contains("function lineChart") && !page.contains("/*CHART_JS*/"));
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "no CDN"
    );
    while !run
        .lines
        .next()
        .expect("the process still runs")
        .unwrap()
        .starts_with("training finished")
    {}
    let (status, info) = call(&a, "GET", "/api/run", "");
    assert_eq!(status, 200);
    assert_eq!(info["epochs"], 3);
    assert_eq!(info["batches_per_epoch"], 15);
    assert_eq!(info["samples"].as_array().unwrap().len(), 8);
    assert_eq!(info["labels"].as_array().unwrap().len(), 8);
    let (status, st) = call(&a, "GET", "/api/state", "");
    assert_eq!(status, 200);
    assert_eq!(st["status"], "finished");
    assert_eq!(st["step"], 45);
    // 15 batches an epoch: a point after every batch, each the loss of that batch; batches are
    // all of 4 samples, so an epoch's points average to its training loss.
    let curve = st["curve"].as_array().unwrap();
    assert_eq!(curve.len(), 45);
    let epochs = st["epochs"].as_array().unwrap();
    assert_eq!(epochs.len(), 3);
    for (e, epoch) in epochs.iter().enumerate() {
        let mean = curve[e * 15..(e + 1) * 15]
            .iter()
            .map(|p| f(&p["loss"]))
            .sum::<f64>()
            / 15.0;
        let want = f(&epoch["train_loss"]);
        assert!(
            (mean - want).abs() < 1e-6 * want.max(1.0),
            "{mean} vs {want}"
        );
        let acc = curve[e * 15..(e + 1) * 15]
            .iter()
            .map(|p| f(&p["accuracy"]))
            .sum::<f64>()
            / 15.0;
        assert!((acc - f(&epoch["train_accuracy"])).abs() < 1e-9);
    }
    assert!(curve.iter().all(|p| (f(&p["lr"]) - 0.05).abs() < 1e-6));
    // The layer statistics: 4 parameter tensors with update ratios, 3 layers, Tanh saturation.
    let layers = &st["layers"];
    let params = layers["params"].as_array().unwrap();
    assert_eq!(params.len(), 4);
    assert_eq!(params[0]["name"], "0.weight");
    assert!(params.iter().all(|p| f(&p["update_ratio"]) > 0.0));
    let acts = layers["activations"].as_array().unwrap();
    assert_eq!(acts.len(), 3);
    let tanh = &acts[1];
    assert!(tanh["layer"].as_str().unwrap().starts_with("Tanh"));
    assert!((0.0..=1.0).contains(&f(&tanh["saturated"])));
    assert!(acts[0]["saturated"].is_null());
    // Samples at batches 1, 6, 11 of each epoch, each complete one batch later.
    let ratios = st["ratios"].as_array().unwrap();
    assert_eq!(ratios.len(), 9);
    assert_eq!(ratios[0]["step"], 1);
    // The shown samples, predicted by the final model.
    let preds = st["predictions"].as_array().unwrap();
    assert_eq!(preds.len(), 8);
    for p in preds {
        assert!(["0", "1", "2"].contains(&p["predicted"].as_str().unwrap()));
        assert!((0.0..=1.0).contains(&f(&p["probability"])) && p["correct"].is_boolean());
    }
    // Bad requests: a JSON 4xx, and the server stays up.
    let (status, v) = call(&a, "GET", "/nope", "");
    assert!(status == 404 && v["error"].as_str().unwrap().contains("/api/state"));
    assert_eq!(call(&a, "POST", "/api/state", "{}").0, 405);
    let (status, body) = request(&a, "GET", "/health", "x", &vec![b'x'; 1 << 20]);
    assert_eq!(status, 413, "{}", String::from_utf8_lossy(&body));
    assert_eq!(call(&a, "GET", "/health", "").0, 200);
    // Ctrl-C ends the kept server cleanly.
    common::signal(run.child.id(), "-INT");
    assert!(run.child.wait().unwrap().success());
}

#[test]
fn without_keep_the_run_ends_and_bad_dashboard_flags_are_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let data = common::toy_data(dir.path(), 40);
    let out = dir.path().join("m.safetensors");
    let base = [
        "train",
        "--model",
        "Linear(4,3)",
        "--data",
        &data,
        "--epochs",
        "1",
        "--out",
        s(&out),
        "--quiet",
    ];
    let text = common::ok(&[&base[..], &["--dashboard", "0"]].concat());
    assert!(text.contains("dashboard on http://127.0.0.1:"), "{text}");
    let o = common::run(&[&base[..], &["--dashboard-keep"]].concat());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && e.contains("--dashboard"), "{e}");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let e = common::fails(&[&base[..], &["--dashboard", &port]].concat());
    assert!(
        e.contains("--dashboard: cannot listen on 127.0.0.1:") && e.lines().count() == 1,
        "{e}"
    );
}

#[test]
fn the_playground_trains_each_dataset_and_refuses_bad_requests() {
    let run = spawn(&["playground", "--port", "0"]);
    let a = run.addr.as_str();
    let (status, page) = request(a, "GET", "/", "text/plain", b"");
    let page = String::from_utf8(page).unwrap();
    assert!(status == 200 && page.contains("function lineChart") && page.contains("spiral"));
    for dataset in ["circle", "xor", "gauss", "spiral"] {
        let body = format!(r#"{{"dataset": "{dataset}", "noise": 0.1, "samples": 200}}"#);
        let (status, v) = call(a, "POST", "/api/runs", &body);
        assert_eq!(status, 200, "{}", v["error"]);
        assert_eq!(v["epoch"], 0);
        assert_eq!(v["train"].as_array().unwrap().len(), 160);
        assert_eq!(v["test"].as_array().unwrap().len(), 40);
        assert_eq!(v["grid"]["p"].as_array().unwrap().len(), 50 * 50);
    }
    // A circle is learnt: the boundary moves and the test accuracy climbs.
    let (_, v) = call(
        a,
        "POST",
        "/api/runs",
        r#"{"dataset": "circle", "seed": 3}"#,
    );
    let id = v["id"].as_u64().unwrap();
    let before = v["grid"]["p"].clone();
    let (status, after) = call(
        a,
        "POST",
        &format!("/api/runs/{id}/step"),
        r#"{"epochs": 40}"#,
    );
    assert_eq!(status, 200, "{}", after["error"]);
    assert_eq!(after["epoch"], 40);
    assert_ne!(after["grid"]["p"], before);
    assert!(
        f(&after["test_accuracy"]) > 0.9,
        "{}",
        after["test_accuracy"]
    );
    // The centre is class 1 (inside the circle), a corner class 0.
    let p = after["grid"]["p"].as_array().unwrap();
    assert!(f(&p[25 * 50 + 25]) > 0.5 && f(&p[0]) < 0.5);
    let (_, again) = call(a, "GET", &format!("/api/runs/{id}"), "");
    assert_eq!(again["epoch"], 40);
    assert_eq!(again["grid"], after["grid"]);
    // Bad requests: 4xx with a message, and the server stays up.
    let step = format!("/api/runs/{id}/step");
    for (method, path, body, status, want) in [
        (
            "POST",
            "/api/runs",
            r#"{"dataset": "moons"}"#,
            400,
            "unknown dataset 'moons'",
        ),
        (
            "POST",
            "/api/runs",
            r#"{"model": "Linear(2,3)"}"#,
            400,
            "must output 2",
        ),
        (
            "POST",
            "/api/runs",
            r#"{"model": "Linear(3,2)"}"#,
            400,
            "expects input",
        ),
        ("POST", "/api/runs", r#"{"model": "Wat(2)"}"#, 400, "model:"),
        (
            "POST",
            "/api/runs",
            r#"{"model": "Linear(2,400), Linear(400,400), Linear(400,2)"}"#,
            400,
            "at most",
        ),
        ("POST", "/api/runs", r#"{"samples": 5}"#, 400, "samples 5"),
        ("POST", "/api/runs", r#"{"noise": -1}"#, 400, "noise -1"),
        ("POST", "/api/runs", r#"{"lr": 0}"#, 400, "lr 0"),
        (
            "POST",
            "/api/runs",
            r#"{"batch_size": 0}"#,
            400,
            "batch_size 0",
        ),
        (
            "POST",
            "/api/runs",
            r#"{"optimizer": "lbfgs"}"#,
            400,
            "sgd or adam",
        ),
        (
            "POST",
            "/api/runs",
            r#"{"colour": 1}"#,
            400,
            "unknown field",
        ),
        ("POST", "/api/runs", "{", 400, "bad JSON"),
        ("POST", &step, r#"{"epochs": 0}"#, 400, "epochs 0"),
        ("POST", &step, r#"{"epochs": "x"}"#, 400, "bad JSON"),
        ("POST", "/api/runs/999/step", "", 404, "no run 999"),
        ("POST", "/api/runs/x/step", "", 404, "no run 'x'"),
        ("DELETE", &step, "", 405, "not served"),
        ("GET", "/api/runs", "", 405, "not served"),
        ("GET", "/nope", "", 404, "no page /nope"),
    ] {
        let (got, v) = call(a, method, path, body);
        assert_eq!(got, status, "{method} {path} {body}: {}", v["error"]);
        assert!(v["error"].as_str().unwrap().contains(want), "{v}");
    }
    // A learning rate that makes the loss diverge is the request's fault.
    let (_, v) = call(
        a,
        "POST",
        "/api/runs",
        r#"{"optimizer": "sgd", "lr": 10, "model": "Linear(2,64), Linear(64,64), Linear(64,64), Linear(64,2)"}"#,
    );
    let (status, v) = call(
        a,
        "POST",
        &format!("/api/runs/{}/step", v["id"]),
        r#"{"epochs": 20}"#,
    );
    assert_eq!(status, 422, "{}", v["error"]);
    assert_eq!(call(a, "GET", "/health", "").0, 200);
    // Only the newest runs are kept.
    for _ in 0..32 {
        assert_eq!(
            call(
                a,
                "POST",
                "/api/runs",
                r#"{"samples": 10, "batch_size": 2}"#
            )
            .0,
            200
        );
    }
    assert_eq!(call(a, "GET", &format!("/api/runs/{id}"), "").0, 404);
}
