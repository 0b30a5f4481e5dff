//! `vellum serve` as a real process: it is started on port 0 (the address it prints is
//! parsed), driven over TCP with a small blocking HTTP/1.1 client, signalled, and its data
//! directory checked afterwards with `vellum verify`, `vellum checkpoint` and `LogReader`.
//!
//! - `kill_9_mid_stream_loses_and_duplicates_nothing`: 32 connections post 100,000 events;
//!   the server is SIGKILLed mid-stream and restarted; clients re-send what was not
//!   acknowledged; every acknowledged event is in the log exactly once and it verifies.
//! - `disk_full_refuses_with_503_and_recovers`: on a 4 MiB tmpfs (needs root) filled up,
//!   ingest gets 503 `storage_full`, nothing refused is stored, and once space returns
//!   ingest works again; the log verifies.
//! - `tls_listener_speaks_https_only`: with `server.tls_cert`/`tls_key` (a self-signed
//!   certificate made with `openssl`), `curl --cacert` gets through and plain HTTP does not.
//! - `sigterm_finishes_in_flight_requests_then_stops`: SIGTERM lets a half-sent request
//!   finish, `server.stopped` is the last event and the final checkpoint covers all.
//! - `an_unknown_config_key_is_a_usage_error`: exit 2, naming the key.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use vellum_event::{Category, StoredEvent};
use vellum_store::LogReader;
use vellum_testkit::{fill, mount_tmpfs};

const BIN: &str = env!("CARGO_BIN_EXE_vellum");

// ---------------------------------------------------------------------------------------
// A blocking HTTP/1.1 client with keep-alive.

mod http {
    use super::*;

    #[derive(Debug)]
    pub struct Response {
        pub status: u16,
        pub headers: Vec<(String, String)>,
        pub body: Vec<u8>,
    }

    impl Response {
        pub fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        }
        pub fn text(&self) -> String {
            String::from_utf8_lossy(&self.body).into_owned()
        }
        pub fn json(&self) -> Value {
            serde_json::from_slice(&self.body).unwrap_or_else(|e| {
                panic!("status {}: not JSON ({e}): {}", self.status, self.text())
            })
        }
    }

    /// One keep-alive connection.
    #[derive(Debug)]
    pub struct Conn {
        reader: BufReader<TcpStream>,
        writer: TcpStream,
    }

    fn bad(msg: impl Into<String>) -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::InvalidData, msg.into())
    }

    impl Conn {
        pub fn connect(addr: SocketAddr) -> std::io::Result<Conn> {
            let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
            s.set_read_timeout(Some(Duration::from_secs(60)))?;
            s.set_nodelay(true)?;
            Ok(Conn {
                reader: BufReader::new(s.try_clone()?),
                writer: s,
            })
        }

        /// Writes the head of a request (and no body).
        pub fn send_head(
            &mut self,
            method: &str,
            path: &str,
            token: Option<&str>,
            content_type: Option<&str>,
            content_length: usize,
        ) -> std::io::Result<()> {
            let mut head = format!(
                "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: server-test/1\r\nContent-Length: {content_length}\r\n"
            );
            if let Some(t) = token {
                head.push_str(&format!("Authorization: Bearer {t}\r\n"));
            }
            if let Some(ct) = content_type {
                head.push_str(&format!("Content-Type: {ct}\r\n"));
            }
            head.push_str("\r\n");
            self.writer.write_all(head.as_bytes())
        }

        pub fn send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
            self.writer.write_all(bytes)?;
            self.writer.flush()
        }

        pub fn request(
            &mut self,
            method: &str,
            path: &str,
            token: Option<&str>,
            content_type: Option<&str>,
            body: &[u8],
        ) -> std::io::Result<Response> {
            let mut buf = Vec::with_capacity(body.len() + 256);
            {
                let mut head = format!(
                    "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: server-test/1\r\nContent-Length: {}\r\n",
                    body.len()
                );
                if let Some(t) = token {
                    head.push_str(&format!("Authorization: Bearer {t}\r\n"));
                }
                if let Some(ct) = content_type {
                    head.push_str(&format!("Content-Type: {ct}\r\n"));
                }
                head.push_str("\r\n");
                buf.extend_from_slice(head.as_bytes());
            }
            buf.extend_from_slice(body);
            self.writer.write_all(&buf)?;
            self.read_response()
        }

        pub fn read_response(&mut self) -> std::io::Result<Response> {
            let mut line = String::new();
            if self.reader.read_line(&mut line)? == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "connection closed before a response",
                ));
            }
            let status = line
                .strip_prefix("HTTP/1.1 ")
                .and_then(|r| r.get(..3))
                .and_then(|s| s.parse::<u16>().ok())
                .ok_or_else(|| bad(format!("not an HTTP/1.1 status line: {line:?}")))?;
            let mut headers = Vec::new();
            loop {
                line.clear();
                if self.reader.read_line(&mut line)? == 0 {
                    return Err(bad("connection closed in the headers"));
                }
                let l = line.trim_end();
                if l.is_empty() {
                    break;
                }
                let (n, v) = l.split_once(':').ok_or_else(|| bad("bad header line"))?;
                headers.push((n.trim().to_string(), v.trim().to_string()));
            }
            let find = |name: &str| {
                headers
                    .iter()
                    .find(|(n, _): &&(String, String)| n.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.clone())
            };
            let mut body = Vec::new();
            if let Some(len) = find("content-length") {
                let len: usize = len.parse().map_err(|_| bad("bad content-length"))?;
                body.resize(len, 0);
                self.reader.read_exact(&mut body)?;
            } else if find("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
                loop {
                    line.clear();
                    self.reader.read_line(&mut line)?;
                    let size =
                        usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                            .map_err(|_| bad("bad chunk size"))?;
                    let mut chunk = vec![0u8; size + 2];
                    self.reader.read_exact(&mut chunk)?;
                    if size == 0 {
                        break;
                    }
                    body.extend_from_slice(&chunk[..size]);
                }
            } else if status != 204 && status != 304 {
                self.reader.read_to_end(&mut body)?;
            }
            Ok(Response {
                status,
                headers,
                body,
            })
        }
    }

    /// One request on a fresh connection.
    pub fn once(
        addr: SocketAddr,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<(&str, &[u8])>,
    ) -> Response {
        let mut c = Conn::connect(addr).unwrap();
        let (ct, b) = body.map_or((None, &[][..]), |(ct, b)| (Some(ct), b));
        c.request(method, path, token, ct, b)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }
}

use http::Conn;

// ---------------------------------------------------------------------------------------
// The server process.

struct Server {
    child: Child,
    addr: SocketAddr,
    https: bool,
    /// The admin token printed on first start.
    token: Option<String>,
    stderr: PathBuf,
}

impl Server {
    /// Starts `vellum --data DATA serve --listen 127.0.0.1:0 ARGS` and waits for its address.
    fn start(data: &Path, logs: &Path, args: &[&str]) -> Server {
        static RUN: AtomicU64 = AtomicU64::new(0);
        std::fs::create_dir_all(logs).unwrap();
        let stderr = logs.join(format!(
            "serve-{}.stderr",
            RUN.fetch_add(1, Ordering::Relaxed)
        ));
        let mut child = Command::new(BIN)
            .arg("--data")
            .arg(data)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(args)
            .env("VELLUM_LOG", "info")
            .env("NO_COLOR", "1")
            .env_remove("VELLUM_DATA")
            .env_remove("VELLUM_LISTEN")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    // Nobody listens any more: keep draining so the server never blocks.
                    continue;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut token = None;
        let mut expect_token = false;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match rx.recv_timeout(left) {
                Ok(l) => l,
                Err(e) => {
                    let _ = child.kill();
                    let status = child.wait().ok();
                    panic!(
                        "vellum serve did not print its address ({e:?}, exit {status:?}); stderr:\n{}",
                        std::fs::read_to_string(&stderr).unwrap_or_default()
                    );
                }
            };
            if expect_token {
                token = Some(line.trim().to_string());
                expect_token = false;
            } else if line.starts_with("vellum: no API keys yet; created an admin key") {
                expect_token = true;
            } else if let Some(rest) = line.strip_prefix("vellum: audit API on ") {
                let (https, hostport) = match rest.split_once("://") {
                    Some(("https", hp)) => (true, hp),
                    Some(("http", hp)) => (false, hp),
                    _ => panic!("unexpected address line {line:?}"),
                };
                let addr: SocketAddr = hostport.trim().parse().unwrap();
                assert_ne!(addr.port(), 0);
                return Server {
                    child,
                    addr,
                    https,
                    token,
                    stderr,
                };
            }
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &self.pid().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{sig} {}", self.pid());
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Waits for the process to exit, failing after `limit`.
    fn wait(&mut self, limit: Duration) -> ExitStatus {
        match wait_timeout(&mut self.child, limit) {
            Some(s) => s,
            None => {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "vellum serve did not exit within {limit:?}; stderr:\n{}",
                    self.stderr()
                );
            }
        }
    }

    /// SIGTERM, then the exit status (which must be success).
    fn stop(mut self) -> String {
        self.signal("TERM");
        let status = self.wait(Duration::from_secs(60));
        let stderr = self.stderr();
        assert!(
            status.success(),
            "vellum serve exited with {status} after SIGTERM; stderr:\n{stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
        stderr
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn wait_timeout(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return Some(s);
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `vellum ARGS` to completion: (exit code, stdout, stderr).
fn vellum(args: &[&str]) -> (i32, String, String) {
    let mut child = Command::new(BIN)
        .args(args)
        .env_remove("VELLUM_DATA")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = String::new();
    let mut err = String::new();
    let mut so = child.stdout.take().unwrap();
    let mut se = child.stderr.take().unwrap();
    let t = thread::spawn(move || {
        let mut s = String::new();
        let _ = se.read_to_string(&mut s);
        s
    });
    let _ = so.read_to_string(&mut out);
    err.push_str(&t.join().unwrap());
    let status = wait_timeout(&mut child, Duration::from_secs(120)).unwrap_or_else(|| {
        let _ = child.kill();
        panic!("vellum {args:?} did not finish")
    });
    (status.code().unwrap_or(-1), out, err)
}

/// `vellum verify` on `data` must pass.
#[track_caller]
fn verify_ok(data: &Path) -> String {
    let (code, out, err) = vellum(&["--data", data.to_str().unwrap(), "verify"]);
    assert_eq!(
        code, 0,
        "vellum verify failed:\n--- stdout\n{out}\n--- stderr\n{err}"
    );
    assert!(out.starts_with("ok:"), "{out}");
    out
}

/// Every stored event of a data directory.
fn read_log(data: &Path) -> Vec<StoredEvent> {
    let reader = LogReader::open(data).unwrap();
    let size = reader.size().unwrap();
    let mut out = Vec::with_capacity(size as usize);
    reader
        .for_each(0, size, |_, bytes| {
            out.push(StoredEvent::parse(bytes).unwrap());
            Ok(())
        })
        .unwrap();
    assert_eq!(out.len() as u64, size, "events stored vs. log size");
    out
}

/// The id of every stored event, read from the fixed prefix of the stored bytes
/// (`{"index":N,"received":"…","id":"…",`; quicker than parsing 100,000 events).
fn read_ids(data: &Path) -> Vec<String> {
    let reader = LogReader::open(data).unwrap();
    let size = reader.size().unwrap();
    let mut out = Vec::with_capacity(size as usize);
    reader
        .for_each(0, size, |index, bytes| {
            let text = std::str::from_utf8(bytes).unwrap();
            let at = text
                .find(",\"id\":\"")
                .unwrap_or_else(|| panic!("event {index} has no id: {text}"));
            let rest = &text[at + 7..];
            let end = rest.find('"').unwrap();
            assert!(!rest[..end].contains('\\'), "{text}");
            out.push(rest[..end].to_string());
            Ok(())
        })
        .unwrap();
    assert_eq!(out.len() as u64, size, "events stored vs. log size");
    out
}

/// NDJSON of native events `{prefix}-{n}` for `n` in `range`.
fn batch(prefix: &str, user: &str, range: std::ops::Range<u64>) -> Vec<u8> {
    let mut out = Vec::with_capacity((range.end - range.start) as usize * 340);
    for n in range {
        let ev = json!({
            "id": format!("{prefix}-{n}"),
            "time": "2026-11-26T16:55:08.976526Z",
            "category": "api_request",
            "action": "chat.completion",
            "outcome": "success",
            "actor": {"user": user, "key_id": "k_3f9a2c"},
            "source": {"ip": "203.0.113.7", "user_agent": "OpenAI/Python 1.82.0"},
            "request": {"endpoint": "/v1/chat/completions", "model": "gpt-4o",
                        "prompt_tokens": 300, "completion_tokens": 120, "status": 200},
            "details": {"n": n},
        });
        out.extend_from_slice(ev.to_string().as_bytes());
        out.push(b'\n');
    }
    out
}

/// Creates a key over the API; returns its token.
fn create_key(addr: SocketAddr, admin: &str, name: &str, role: &str) -> String {
    let body = json!({"name": name, "role": role}).to_string();
    let r = http::once(
        addr,
        "POST",
        "/v1/keys",
        Some(admin),
        Some(("application/json", body.as_bytes())),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    r.json()["token"].as_str().unwrap().to_string()
}

// ---------------------------------------------------------------------------------------
// kill -9 in the middle of 100,000 events from 32 connections.

const CLIENTS: u64 = 32;
const PER_CLIENT: u64 = 3125;
const BATCH: u64 = 125;

#[derive(Default, Debug)]
struct ClientReport {
    /// Ids acknowledged with 200.
    acked: Vec<String>,
    accepted: u64,
    duplicates: u64,
    /// Requests that failed (connection lost, 503, ...) and were sent again.
    resent: u64,
}

#[test]
fn kill_9_mid_stream_loses_and_duplicates_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let logs = tmp.path().join("logs");
    let mut server = Server::start(&data, &logs, &[]);
    let admin = server
        .token
        .clone()
        .expect("first start prints an admin key");
    let ingest = create_key(server.addr, &admin, "loader", "ingest");

    let current: Arc<Mutex<Option<SocketAddr>>> = Arc::new(Mutex::new(Some(server.addr)));
    let acked = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let current = current.clone();
            let acked = acked.clone();
            let token = ingest.clone();
            thread::spawn(move || {
                let mut report = ClientReport::default();
                let mut conn: Option<Conn> = None;
                let deadline = Instant::now() + Duration::from_secs(240);
                for b in 0..PER_CLIENT / BATCH {
                    let body = batch(
                        &format!("c{c}"),
                        &format!("u{c}"),
                        b * BATCH..(b + 1) * BATCH,
                    );
                    loop {
                        assert!(Instant::now() < deadline, "client {c} gave up on batch {b}");
                        let addr = *current.lock().unwrap();
                        let Some(addr) = addr else {
                            thread::sleep(Duration::from_millis(20));
                            continue;
                        };
                        if conn.is_none() {
                            match Conn::connect(addr) {
                                Ok(c) => conn = Some(c),
                                Err(_) => {
                                    thread::sleep(Duration::from_millis(20));
                                    continue;
                                }
                            }
                        }
                        let Some(cn) = conn.as_mut() else { continue };
                        match cn.request(
                            "POST",
                            "/v1/events",
                            Some(&token),
                            Some("application/x-ndjson"),
                            &body,
                        ) {
                            Ok(r) if r.status == 200 => {
                                let v = r.json();
                                let a = v["accepted"].as_u64().unwrap();
                                let d = v["duplicates"].as_u64().unwrap();
                                assert_eq!(a + d, BATCH, "client {c} batch {b}: {v}");
                                report.accepted += a;
                                report.duplicates += d;
                                report.acked.extend(
                                    (b * BATCH..(b + 1) * BATCH).map(|n| format!("c{c}-{n}")),
                                );
                                acked.fetch_add(BATCH, Ordering::Relaxed);
                                if r.header("connection")
                                    .is_some_and(|v| v.eq_ignore_ascii_case("close"))
                                {
                                    conn = None;
                                }
                                break;
                            }
                            Ok(r) if r.status == 503 || r.status == 429 => {
                                report.resent += 1;
                                thread::sleep(Duration::from_millis(50));
                            }
                            Ok(r) => panic!("client {c} batch {b}: {} {}", r.status, r.text()),
                            Err(_) => {
                                // Lost with the server: unacknowledged, so it is sent again.
                                report.resent += 1;
                                conn = None;
                                thread::sleep(Duration::from_millis(20));
                            }
                        }
                    }
                }
                report
            })
        })
        .collect();

    // Kill the server once about a third has been acknowledged, mid-stream.
    let total = CLIENTS * PER_CLIENT;
    let wait_until = Instant::now() + Duration::from_secs(120);
    while acked.load(Ordering::Relaxed) < total / 3 {
        assert!(
            Instant::now() < wait_until,
            "ingest too slow: {} acked",
            acked.load(Ordering::Relaxed)
        );
        thread::sleep(Duration::from_millis(5));
    }
    *current.lock().unwrap() = None;
    let at_kill = acked.load(Ordering::Relaxed);
    server.child.kill().unwrap(); // SIGKILL
    let status = server.child.wait().unwrap();
    assert!(!status.success(), "{status}");
    assert!(at_kill < total, "the kill came after the stream ended");
    let first_run = Instant::now() - started;

    let server = Server::start(&data, &logs, &[]);
    assert!(
        server.token.is_none(),
        "a restart must not create another admin key"
    );
    *current.lock().unwrap() = Some(server.addr);

    let reports: Vec<ClientReport> = clients.into_iter().map(|t| t.join().unwrap()).collect();
    let resent: u64 = reports.iter().map(|r| r.resent).sum();
    let accepted: u64 = reports.iter().map(|r| r.accepted).sum();
    let duplicates: u64 = reports.iter().map(|r| r.duplicates).sum();
    let acked_ids: Vec<&String> = reports.iter().flat_map(|r| r.acked.iter()).collect();
    assert_eq!(acked_ids.len() as u64, total);
    assert!(resent > 0, "no request was in flight at the kill");
    eprintln!(
        "e2e: {at_kill} acked at the kill after {first_run:?}; {resent} requests re-sent; \
         {accepted} accepted + {duplicates} duplicates; total {:?}",
        started.elapsed()
    );

    // Queries over the API (indexed or not) see client 7's events exactly once.
    let mut seen = HashMap::new();
    let mut cursor = String::new();
    loop {
        let path = format!("/v1/events?user=u7&limit=1000&cursor={cursor}");
        let r = http::once(server.addr, "GET", &path, Some(&admin), None);
        assert_eq!(r.status, 200, "{}", r.text());
        let v = r.json();
        for e in v["events"].as_array().unwrap() {
            *seen
                .entry(e["id"].as_str().unwrap().to_string())
                .or_insert(0u32) += 1;
        }
        match v["next_cursor"].as_str() {
            Some(c) => cursor = c.to_string(),
            None => break,
        }
    }
    assert_eq!(
        seen.len() as u64,
        PER_CLIENT,
        "distinct events of u7 by query"
    );
    assert!(
        seen.values().all(|&n| n == 1),
        "a query returned an event twice"
    );

    eprintln!("e2e: queried after {:?}", started.elapsed());
    let stderr = server.stop();
    eprintln!("e2e: stopped after {:?}", started.elapsed());

    let ids = read_ids(&data);
    eprintln!("e2e: read after {:?}", started.elapsed());
    let mut count: HashMap<&str, u32> = HashMap::new();
    for id in &ids {
        // Client events are `c{client}-{n}`; the server's own have UUIDs.
        let client_event = id
            .strip_prefix('c')
            .and_then(|r| r.split_once('-'))
            .is_some_and(|(c, n)| {
                !c.is_empty()
                    && !n.is_empty()
                    && c.bytes().all(|b| b.is_ascii_digit())
                    && n.bytes().all(|b| b.is_ascii_digit())
            });
        if client_event {
            *count.entry(id.as_str()).or_default() += 1;
        }
    }
    let missing: Vec<_> = acked_ids
        .iter()
        .filter(|id| !count.contains_key(id.as_str()))
        .take(10)
        .collect();
    assert!(
        missing.is_empty(),
        "acknowledged but not in the log: {missing:?}"
    );
    let twice: Vec<_> = count.iter().filter(|(_, n)| **n > 1).take(10).collect();
    assert!(twice.is_empty(), "stored more than once: {twice:?}");
    assert_eq!(count.len() as u64, total);
    // The data directory is whole.
    verify_ok(&data);
    eprintln!("e2e: verified after {:?}", started.elapsed());
    assert!(!stderr.contains("panicked"));
}

// ---------------------------------------------------------------------------------------
// Disk full.

#[test]
fn disk_full_refuses_with_503_and_recovers() {
    let tmp = tempfile::tempdir().unwrap();
    let mnt = tmp.path().join("small");
    let _mount = mount_tmpfs(&mnt, "4m");
    let data = mnt.join("data");
    let logs = tmp.path().join("logs"); // not on the small disk
    let mut server = Server::start(&data, &logs, &[]);
    let admin = server.token.clone().unwrap();
    let ingest = create_key(server.addr, &admin, "loader", "ingest");
    let addr = server.addr;
    let mut conn = Conn::connect(addr).unwrap();
    let post = |conn: &mut Conn, body: &[u8]| -> http::Response {
        let ct = Some("application/x-ndjson");
        match conn.request("POST", "/v1/events", Some(&ingest), ct, body) {
            Ok(r) => r,
            Err(_) => {
                *conn = Conn::connect(addr).unwrap();
                conn.request("POST", "/v1/events", Some(&ingest), ct, body)
                    .unwrap()
            }
        }
    };
    let ids = |prefix: &str, b: u64| -> Vec<String> {
        (b * 50..(b + 1) * 50)
            .map(|n| format!("{prefix}-{n}"))
            .collect()
    };
    // Everything that is wrong, reported together at the end.
    let mut problems: Vec<String> = Vec::new();

    // Some events while there is room.
    let mut acked: Vec<String> = Vec::new();
    for b in 0..4 {
        let r = post(&mut conn, &batch("before", "u", b * 50..(b + 1) * 50));
        assert_eq!(r.status, 200, "{}", r.text());
        acked.extend(ids("before", b));
    }

    let filler = mnt.join("filler");
    assert!(fill(&filler) > 0);

    // Ingest until refusals show (the segment's preallocated space takes a few batches).
    let mut refused: Vec<String> = Vec::new();
    let mut answers: Vec<(u16, String)> = Vec::new();
    for b in 0..400u64 {
        let r = post(&mut conn, &batch("full", "u", b * 50..(b + 1) * 50));
        match r.status {
            200 => acked.extend(ids("full", b)),
            503 => {
                refused.extend(ids("full", b));
                if r.header("retry-after").is_none() {
                    problems.push(format!("a 503 without Retry-After: {:?}", r.headers));
                }
                answers.push((r.status, r.text()));
                if refused.len() >= 150 {
                    break;
                }
            }
            s => panic!("unexpected status {s} on a full disk: {}", r.text()),
        }
    }
    assert!(
        !refused.is_empty(),
        "400 batches on a full 4 MiB disk and never a 503; stderr:\n{}",
        excerpt(&server.stderr())
    );
    let first = serde_json::from_str::<Value>(&answers[0].1).unwrap();
    if first["error"]["code"] != "storage_full"
        || !first["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("disk is full"))
    {
        problems.push(format!(
            "the first refusal on a full disk does not say so (want code storage_full, \"disk is full\"): {first}"
        ));
    }
    // Still alive.
    assert_eq!(http::once(addr, "GET", "/healthz", None, None).status, 200);

    // The disk stays full for a while (long enough for a periodic checkpoint to be due),
    // then space returns.
    thread::sleep(Duration::from_millis(2500));
    let r = post(&mut conn, &batch("stillfull", "u", 0..50));
    if r.status == 503 {
        refused.extend(ids("stillfull", 0));
    } else {
        problems.push(format!(
            "a POST on a full disk got {} {}",
            r.status,
            r.text()
        ));
    }
    std::fs::remove_file(&filler).unwrap();

    // Ingest works again once there is room (new ids; refused ones are never re-sent).
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut last = None;
    let mut recovered = false;
    let mut b = 0u64;
    while Instant::now() < deadline {
        let r = post(&mut conn, &batch("after", "u", b * 50..(b + 1) * 50));
        if r.status == 200 {
            acked.extend(ids("after", b));
            b += 1;
            recovered = true;
            break;
        }
        refused.extend(ids("after", b));
        last = Some((r.status, r.text()));
        b += 1;
        thread::sleep(Duration::from_millis(200));
    }
    if recovered {
        for _ in 0..5 {
            let r = post(&mut conn, &batch("after", "u", b * 50..(b + 1) * 50));
            assert_eq!(r.status, 200, "{}", r.text());
            acked.extend(ids("after", b));
            b += 1;
        }
        let r = http::once(addr, "GET", "/readyz", None, None);
        if r.status != 200 {
            problems.push(format!("/readyz after recovery: {} {}", r.status, r.text()));
        }
    } else {
        let ready = http::once(addr, "GET", "/readyz", None, None);
        problems.push(format!(
            "ingest did not recover within 15 s after space returned; last answer {last:?}; /readyz {} {}",
            ready.status,
            ready.text()
        ));
    }
    drop(conn);

    server.signal("TERM");
    let status = server.wait(Duration::from_secs(60));
    let stderr = server.stderr();
    if !status.success() {
        problems.push(format!("vellum serve exited with {status} after SIGTERM"));
    }

    // Whatever happened, nothing acknowledged is lost, nothing refused is stored, and the
    // log verifies.
    let log = read_log(&data);
    let mut count: HashMap<&str, u32> = HashMap::new();
    for e in &log {
        *count.entry(e.event.id.as_str()).or_default() += 1;
    }
    let verified = verify_ok(&data);
    let lost: Vec<&String> = acked
        .iter()
        .filter(|id| !count.contains_key(id.as_str()))
        .collect();
    if !lost.is_empty() {
        problems.push(format!(
            "{} of {} acknowledged events are not visible to readers after the shutdown \
             (LogReader sees {} events; `vellum verify` says: {}), e.g. {:?}",
            lost.len(),
            acked.len(),
            log.len(),
            verified.trim(),
            &lost[..lost.len().min(3)]
        ));
    }
    let twice: Vec<_> = count.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "stored more than once: {twice:?}");
    let (_, note, _) = vellum(&["--data", data.to_str().unwrap(), "checkpoint"]);
    let size: u64 = note
        .lines()
        .nth(1)
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    if size < acked.len() as u64 {
        problems.push(format!(
            "the latest checkpoint (size {size}) does not cover the {} acknowledged events",
            acked.len()
        ));
    }
    let stored_refused: Vec<_> = refused
        .iter()
        .filter(|id| count.contains_key(id.as_str()))
        .take(10)
        .collect();
    assert!(
        stored_refused.is_empty(),
        "refused with 503 but stored: {stored_refused:?}"
    );
    assert!(
        problems.is_empty(),
        "on a full disk:\n- {}\nserver stderr:\n{}",
        problems.join("\n- "),
        excerpt(&stderr)
    );
}

/// The first and last lines of a server's log, and its first errors.
fn excerpt(stderr: &str) -> String {
    let lines: Vec<&str> = stderr.lines().collect();
    let mut out: Vec<&str> = Vec::new();
    out.extend(lines.iter().take(5));
    out.push("...");
    out.extend(
        lines
            .iter()
            .filter(|l| l.contains("ERROR") || l.contains("WARN"))
            .take(5),
    );
    out.push("...");
    out.extend(lines.iter().skip(lines.len().saturating_sub(5)));
    out.join("\n")
}

// ---------------------------------------------------------------------------------------
// TLS.

fn need(tool: &str) {
    let ok = Command::new(tool)
        .arg(if tool == "curl" {
            "--version"
        } else {
            "version"
        })
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "this test needs `{tool}`: install curl/openssl");
}

#[test]
fn tls_listener_speaks_https_only() {
    need("openssl");
    need("curl");
    let tmp = tempfile::tempdir().unwrap();
    let key = tmp.path().join("k.pem");
    let cert = tmp.path().join("c.pem");
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .args([
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let config = tmp.path().join("vellum.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\n",
            cert.display(),
            key.display()
        ),
    )
    .unwrap();
    let data = tmp.path().join("data");
    let server = Server::start(
        &data,
        &tmp.path().join("logs"),
        &["--config", config.to_str().unwrap()],
    );
    assert!(server.https, "the address line should say https");
    let port = server.addr.port();
    let admin = server.token.clone().unwrap();

    let curl = |args: &[&str]| {
        let o = Command::new("curl")
            .args(["--silent", "--show-error", "--max-time", "10"])
            .args(args)
            .output()
            .unwrap();
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let url = |path: &str| format!("https://127.0.0.1:{port}{path}");
    let (code, out, err) = curl(&["--cacert", cert.to_str().unwrap(), &url("/healthz")]);
    assert_eq!(code, Some(0), "curl over TLS failed: {err}");
    assert_eq!(out, "ok\n");
    // An authenticated call over TLS, HTTP/2 or HTTP/1.1 as curl picks.
    let auth = format!("Authorization: Bearer {admin}");
    let (code, out, err) = curl(&[
        "--cacert",
        cert.to_str().unwrap(),
        "-H",
        &auth,
        "-w",
        "\n%{http_code}",
        &url("/v1/events?limit=1"),
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.ends_with("\n200"), "{out}");
    // Without trusting the certificate, curl refuses it.
    let (code, _, _) = curl(&[&url("/healthz")]);
    assert_ne!(code, Some(0), "curl accepted an untrusted certificate");

    // Plain HTTP to the TLS port gets no HTTP answer.
    let (code, out, _) = curl(&[&format!("http://127.0.0.1:{port}/healthz")]);
    assert_ne!(code, Some(0), "plain HTTP was answered: {out}");
    let mut c = Conn::connect(server.addr).unwrap();
    if let Ok(r) = c.request("GET", "/healthz", None, None, b"") {
        panic!("plain HTTP got an HTTP response: {} {}", r.status, r.text());
    }
    server.stop();
}

// ---------------------------------------------------------------------------------------
// Graceful shutdown.

#[test]
fn sigterm_finishes_in_flight_requests_then_stops() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut server = Server::start(&data, &tmp.path().join("logs"), &[]);
    let admin = server.token.clone().unwrap();
    for b in 0..3 {
        let body = batch("warm", "u", b * 100..(b + 1) * 100);
        let r = http::once(
            server.addr,
            "POST",
            "/v1/events",
            Some(&admin),
            Some(("application/x-ndjson", &body)),
        );
        assert_eq!(r.status, 200, "{}", r.text());
    }

    // A request whose body is half sent when SIGTERM arrives.
    let body = batch("inflight", "u", 0..200);
    let half = body.len() / 2;
    let mut c = Conn::connect(server.addr).unwrap();
    c.send_head(
        "POST",
        "/v1/events",
        Some(&admin),
        Some("application/x-ndjson"),
        body.len(),
    )
    .unwrap();
    c.send_raw(&body[..half]).unwrap();
    thread::sleep(Duration::from_millis(300));
    server.signal("TERM");
    thread::sleep(Duration::from_millis(700));
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "the server exited with a request in flight; stderr:\n{}",
        server.stderr()
    );
    // It no longer accepts new connections.
    assert!(
        TcpStream::connect_timeout(&server.addr, Duration::from_secs(2)).is_err()
            || Conn::connect(server.addr)
                .and_then(|mut c| c.request("GET", "/healthz", None, None, b""))
                .is_err(),
        "a new connection was served after SIGTERM"
    );
    c.send_raw(&body[half..]).unwrap();
    let r = c.read_response().unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["accepted"], 200);
    drop(c);

    let status = server.wait(Duration::from_secs(30));
    assert!(
        status.success(),
        "exit {status}; stderr:\n{}",
        server.stderr()
    );

    let log = read_log(&data);
    let last = log.last().unwrap();
    assert_eq!(
        (last.event.category, last.event.action.as_str()),
        (Category::Admin, "server.stopped"),
        "the last event is {:?}",
        last.event
    );
    let inflight: Vec<_> = log
        .iter()
        .filter(|e| e.event.id.as_str().starts_with("inflight-"))
        .collect();
    assert_eq!(inflight.len(), 200);
    assert!(inflight.iter().all(|e| e.index < last.index));

    // The final checkpoint covers every event.
    let (code, note, err) = vellum(&["--data", data.to_str().unwrap(), "checkpoint"]);
    assert_eq!(code, 0, "{err}");
    let size: u64 = note.lines().nth(1).unwrap().parse().unwrap();
    assert_eq!(size, log.len() as u64, "checkpoint:\n{note}");
    verify_ok(&data);
}

// ---------------------------------------------------------------------------------------
// Configuration.

#[test]
fn an_unknown_config_key_is_a_usage_error() {
    let tmp = tempfile::tempdir().unwrap();
    for (text, key) in [
        (
            "[server]\nlisten = \"127.0.0.1:0\"\nlisten_backlog = 5\n",
            "listen_backlog",
        ),
        ("[storage]\nsegment_max_mib = 8\n", "storage"),
        ("[auth]\nbrute_force_treshold = 3\n", "brute_force_treshold"),
    ] {
        let config = tmp.path().join("vellum.toml");
        std::fs::write(&config, text).unwrap();
        let data = tmp.path().join("data");
        let mut child = Command::new(BIN)
            .arg("--data")
            .arg(&data)
            .args(["serve", "--listen", "127.0.0.1:0", "--config"])
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let status = wait_timeout(&mut child, Duration::from_secs(30));
        let Some(status) = status else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("vellum serve started despite the unknown key `{key}`");
        };
        let mut err = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        assert_eq!(status.code(), Some(2), "{text}: {err}");
        assert!(err.contains(key), "the error should name `{key}`: {err}");
        assert!(
            err.contains("vellum.toml"),
            "the error should name the file: {err}"
        );
        assert!(
            !data.exists(),
            "a bad configuration still created the data directory"
        );
    }
}

/// The nice value and name of every thread of a process, from `/proc/PID/task/*/stat`.
fn thread_niceness(pid: u32) -> Vec<(String, i64)> {
    let mut out = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let Ok(stat) = std::fs::read_to_string(task.unwrap().path().join("stat")) else {
            continue;
        };
        let (head, rest) = stat.rsplit_once(')').unwrap();
        let name = head.split_once('(').unwrap().1.to_string();
        // After the name: state is field 3, nice is field 19.
        let nice: i64 = rest.split_whitespace().nth(16).unwrap().parse().unwrap();
        out.push((name, nice));
    }
    out
}

/// The query indexer runs 10 nice levels below the rest of the server, so that ingest gets
/// the CPUs first when both want them (the index catches up afterwards).
#[test]
fn the_indexer_yields_the_cpu_to_ingest() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("data"), &tmp.path().join("logs"), &[]);
    let nice_of = |threads: &[(String, i64)], thread: &str| {
        threads
            .iter()
            .find(|(name, _)| name == thread)
            .map(|(_, nice)| *nice)
    };
    // The indexer lowers its own priority as it starts: give it a moment.
    let deadline = Instant::now() + Duration::from_secs(30);
    let threads = loop {
        let threads = thread_niceness(server.child.id());
        let lowered = match (
            nice_of(&threads, "vellum"),
            nice_of(&threads, "vellum-indexer"),
        ) {
            (Some(main), Some(indexer)) => indexer != main,
            _ => false,
        };
        if lowered || Instant::now() > deadline {
            break threads;
        }
        thread::sleep(Duration::from_millis(50));
    };
    let server_nice =
        nice_of(&threads, "vellum").unwrap_or_else(|| panic!("no main thread among {threads:?}"));
    let indexer_nice = nice_of(&threads, "vellum-indexer")
        .unwrap_or_else(|| panic!("no indexer thread among {threads:?}"));
    assert_eq!(indexer_nice, (server_nice + 10).min(19), "{threads:?}");
    for (name, nice) in &threads {
        if name != "vellum-indexer" {
            assert_eq!(*nice, server_nice, "thread {name} of {threads:?}");
        }
    }
}
