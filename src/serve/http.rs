//! A small HTTP/1.1 server with a fixed pool of workers and bounded memory.
//!
//! Requests are parsed by `httparse`; everything around it is here, because what we need is a
//! guarantee the light crates do not give: `tiny_http` 0.12, tried first, starts a thread per open
//! connection and, when a request is dropped with its body unread, allocates a buffer of the
//! announced `Content-Length` to drain it (one `Content-Length: 10¹⁵` aborts the process). Here:
//! - one thread accepts and hands connections to a bounded queue (full: 503 at once);
//! - `workers` threads each take a connection, read its head (at most [`MAX_HEAD`] bytes) and its
//!   body (at most `max_body`, refused with 413 from the announced length before it is read),
//!   answer, and close it (`Connection: close`: an idle keep-alive client would hold a worker);
//! - reads and writes time out, so a slow client holds a worker for at most [`TIMEOUT`].
//!
//! Memory is therefore bounded by `workers × (MAX_HEAD + max_body)` plus the queue of sockets.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// The longest request line plus headers.
pub const MAX_HEAD: usize = 16 << 10;
/// How long a read or a write may wait for the client.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// Connections accepted but not yet taken by a worker, per worker.
const QUEUE_PER_WORKER: usize = 64;

/// A request as the handlers see it.
pub struct Request {
    /// `GET`, `POST`, ….
    pub method: String,
    /// The path without the query string.
    pub path: String,
    /// The text after `?`, if any.
    pub query: String,
    /// The `Content-Type` header.
    pub content_type: String,
    /// The body, at most the configured limit.
    pub body: Vec<u8>,
}

/// An answer: status, content type, body.
pub struct Response {
    /// The HTTP status code.
    pub status: u16,
    /// The `Content-Type` header.
    pub content_type: &'static str,
    /// The body.
    pub body: Vec<u8>,
}

impl Response {
    /// A JSON answer.
    pub fn json(status: u16, v: &serde_json::Value) -> Response {
        Response {
            status,
            content_type: "application/json",
            body: v.to_string().into_bytes(),
        }
    }

    /// `{"error": msg}` with a 4xx/5xx status.
    pub fn error(status: u16, msg: impl Into<String>) -> Response {
        Response::json(status, &serde_json::json!({ "error": msg.into() }))
    }
}

/// A running server.
pub struct Server {
    addr: SocketAddr,
    stopping: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Server {
    /// The address it listens on (with the real port when 0 was asked for).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until the process ends.
    pub fn wait(self) {
        for t in self.threads {
            let _ = t.join();
        }
    }

    /// Stops accepting, lets the workers finish the connections they hold, and returns.
    pub fn stop(self) {
        self.stopping.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect(self.addr);
        self.wait();
    }
}

/// Serves `listener` with one worker per element of `states` (each worker owns its state: a model,
/// say); `handle` answers a complete request.
pub fn serve<S: Send + 'static>(
    listener: TcpListener,
    states: Vec<S>,
    max_body: usize,
    handle: fn(&mut S, &Request) -> Response,
) -> std::io::Result<Server> {
    let addr = listener.local_addr()?;
    let stopping = Arc::new(AtomicBool::new(false));
    let (tx, rx) = sync_channel::<TcpStream>(QUEUE_PER_WORKER * states.len().max(1));
    let rx = Arc::new(Mutex::new(rx));
    let mut threads: Vec<JoinHandle<()>> = states
        .into_iter()
        .map(|mut state| {
            let rx = rx.clone();
            std::thread::spawn(move || {
                while let Some(stream) = next(&rx) {
                    connection(stream, max_body, &mut |r| handle(&mut state, r));
                }
            })
        })
        .collect();
    let flag = stopping.clone();
    threads.push(std::thread::spawn(move || accept(listener, tx, &flag)));
    Ok(Server {
        addr,
        stopping,
        threads,
    })
}

fn next(rx: &Mutex<Receiver<TcpStream>>) -> Option<TcpStream> {
    rx.lock().ok()?.recv().ok()
}

/// Hands accepted connections to the workers until `stopping`; a full queue gets 503 at once.
/// Returning drops the sender, which ends the workers once the queue is empty.
fn accept(listener: TcpListener, tx: SyncSender<TcpStream>, stopping: &AtomicBool) {
    for stream in listener.incoming() {
        if stopping.load(Ordering::SeqCst) {
            return;
        }
        // A failed accept (out of file descriptors, a reset) ends nothing.
        let Ok(stream) = stream else { continue };
        let _ = stream.set_read_timeout(Some(TIMEOUT));
        let _ = stream.set_write_timeout(Some(TIMEOUT));
        match tx.try_send(stream) {
            Ok(()) => {}
            Err(TrySendError::Full(mut s)) => write_response(
                &mut s,
                &Response::error(503, "the server is busy; try again"),
            ),
            Err(TrySendError::Disconnected(_)) => return,
        }
    }
}

/// Reads one request from `stream`, answers it, and closes the connection.
fn connection(
    mut stream: TcpStream,
    max_body: usize,
    handle: &mut dyn FnMut(&Request) -> Response,
) {
    let response = match read_request(&mut stream, max_body) {
        Ok(req) => handle(&req),
        Err(Some(r)) => r,
        Err(None) => return, // the client went away or timed out: nobody to answer
    };
    write_response(&mut stream, &response);
}

fn write_response(stream: &mut TcpStream, r: &Response) {
    let head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\nCache-Control: no-store\r\n\r\n",
        r.status,
        reason(r.status),
        r.content_type,
        r.body.len()
    );
    // A client that went away is not our error.
    let _ = stream
        .write_all(head.as_bytes())
        .and_then(|()| stream.write_all(&r.body));
    let _ = stream.flush();
    // Closing with unread input would reset the connection before the client read the answer
    // (a 413 sent before the body): shut down writing, then discard a little of what is left.
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
    let mut sink = [0u8; 4096];
    for _ in 0..16 {
        if !matches!(stream.read(&mut sink), Ok(n) if n > 0) {
            break;
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        411 => "Length Required",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Content",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "",
    }
}

/// The request on `stream`, or the answer to give instead (`None`: no one to answer).
fn read_request(stream: &mut TcpStream, max_body: usize) -> Result<Request, Option<Response>> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let end = buf.windows(4).position(|w| w == b"\r\n\r\n");
        if end.unwrap_or(buf.len()) > MAX_HEAD {
            return Err(Some(Response::error(
                431,
                format!("the request head is longer than {MAX_HEAD} bytes"),
            )));
        }
        if let Some(i) = end {
            break i + 4;
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return Err(None),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut parsed = httparse::Request::new(&mut headers);
    let bad = |msg: String| Some(Response::error(400, msg));
    match parsed.parse(&buf[..head_end]) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err(bad("an incomplete request head".into())),
        Err(e) => return Err(bad(format!("not an HTTP request: {e}"))),
    }
    let header = |name: &str| {
        parsed
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).trim().to_string())
    };
    if header("Transfer-Encoding").is_some() {
        return Err(Some(Response::error(
            411,
            "send the body with a Content-Length, not a Transfer-Encoding",
        )));
    }
    let length = match header("Content-Length").map(|v| v.parse::<u64>()) {
        None => 0,
        Some(Ok(n)) => n,
        Some(Err(_)) => return Err(bad("Content-Length is not a number".into())),
    };
    if length > max_body as u64 {
        return Err(Some(Response::error(
            413,
            format!("the body is {length} bytes, more than the limit of {max_body} (--max-body)"),
        )));
    }
    if header("Expect").is_some_and(|v| v.eq_ignore_ascii_case("100-continue")) {
        let _ = stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n");
    }
    let target = parsed.path.unwrap_or("/");
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let req = Request {
        method: parsed.method.unwrap_or("").to_string(),
        path: path.to_string(),
        query: query.to_string(),
        content_type: header("Content-Type").unwrap_or_default(),
        body: Vec::new(),
    };
    let mut body = buf.split_off(head_end);
    body.truncate(length as usize);
    let rest = length as usize - body.len();
    body.reserve_exact(rest);
    if stream
        .take(rest as u64)
        .read_to_end(&mut body)
        .map_or(true, |n| n < rest)
    {
        return Err(bad(format!(
            "the body ended after {} of {length} bytes",
            body.len()
        )));
    }
    Ok(Request { body, ..req })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(n: &mut u32, r: &Request) -> Response {
        *n += 1;
        Response::json(
            200,
            &serde_json::json!({ "path": r.path, "query": r.query, "n": *n }),
        )
    }

    #[test]
    fn answers_splits_the_query_and_stops_when_asked() {
        let server = serve(
            TcpListener::bind("127.0.0.1:0").unwrap(),
            vec![0u32],
            10,
            count,
        )
        .unwrap();
        let mut c = TcpStream::connect(server.addr()).unwrap();
        c.write_all(b"GET /a?b=1 HTTP/1.1\r\n\r\n").unwrap();
        let mut out = String::new();
        c.read_to_string(&mut out).unwrap();
        assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
        assert!(
            out.ends_with(r#"{"n":1,"path":"/a","query":"b=1"}"#),
            "{out}"
        );
        server.stop();
    }
}
