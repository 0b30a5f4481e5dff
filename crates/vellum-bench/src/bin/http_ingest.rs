//! A native load generator for HTTP ingest: NDJSON batches over keep-alive connections.
//!
//! Reads an NDJSON file, cuts it into batches of `--batch` lines and builds every request
//! (`POST /v1/events`, `Content-Type: application/x-ndjson`, Bearer token, Content-Length)
//! before the clock starts, so that while it runs the client only writes prepared bytes and
//! reads small responses: it leaves the CPUs to the server it measures (the Python client it
//! replaces in `bench/http_vs_rsyslog.py` took most of a core on the 2-core machine).
//!
//! `--conns` connections are opened before the clock starts, one thread each; batch `i` goes
//! to connection `i % conns`, and each connection sends its batches one after another,
//! reading the whole response before the next request (no pipelining). The clock runs from
//! just before the threads are released to the last response read. Every response must be a
//! 200 whose `accepted` and `duplicates` add up to the batch's lines, and no event may be a
//! duplicate: every event of the file is sent once and stored once (run it against a fresh
//! data directory). Anything else — another status, a short count, a dropped connection — is
//! an error and a non-zero exit.
//!
//! Deliberately small: plain HTTP/1.1 over `std::net::TcpStream`, no TLS, no HTTP/2, no
//! retries. Responses may use Content-Length or chunked encoding.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail, ensure};
use clap::Parser;

/// How long a connection waits on the server before the run fails.
const IO_TIMEOUT: Duration = Duration::from_secs(120);
/// The largest response body read (an ingest answer is about 100 bytes).
const MAX_RESPONSE_BODY: usize = 16 << 20;

#[derive(Parser, Debug)]
struct Args {
    /// NDJSON events, one a line (e.g. `gen_events.py 1000000`); blank lines are skipped.
    #[arg(long)]
    events: PathBuf,
    /// The server, `http://HOST:PORT` (a path after it is a prefix of `/v1/events`).
    #[arg(long)]
    url: String,
    /// An API key with the ingest (or admin) role, `vk-...`.
    #[arg(long, env = "VELLUM_TOKEN", hide_env_values = true)]
    token: String,
    /// Events (lines) per request.
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    /// Keep-alive connections, one thread each.
    #[arg(long, default_value_t = 4)]
    conns: usize,
    /// Send only the first N events of the file.
    #[arg(long)]
    limit: Option<usize>,
}

/// Where the requests go: the address to connect to, the `Host` header, the request path.
#[derive(Debug)]
struct Target {
    addr: SocketAddr,
    host: String,
    path: String,
}

impl Target {
    fn parse(url: &str) -> anyhow::Result<Self> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| anyhow!("--url must start with http:// (no TLS here): {url}"))?;
        let (authority, base) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        ensure!(!authority.is_empty(), "--url has no host: {url}");
        // `[::1]` has colons but no port; `[::1]:80` and `host:80` have one.
        let has_port = authority
            .rsplit_once(':')
            .is_some_and(|(_, port)| !port.contains(']'));
        let with_port = if has_port {
            authority.to_string()
        } else {
            format!("{authority}:80")
        };
        let addr = with_port
            .to_socket_addrs()
            .with_context(|| format!("resolving {with_port}"))?
            .next()
            .ok_or_else(|| anyhow!("{with_port} resolves to no address"))?;
        Ok(Self {
            addr,
            host: authority.to_string(),
            path: format!("{}/v1/events", base.trim_end_matches('/')),
        })
    }
}

/// One prepared request: its bytes on the wire and the events in its body.
#[derive(Debug)]
struct Request {
    bytes: Vec<u8>,
    events: u64,
}

/// Every request for the file, in order: batches of `batch` non-blank lines.
fn build_requests(args: &Args, target: &Target) -> anyhow::Result<Vec<Request>> {
    ensure!(
        !args.token.bytes().any(|b| b.is_ascii_control()),
        "--token holds a control character"
    );
    let file = std::fs::read(&args.events)
        .with_context(|| format!("reading {}", args.events.display()))?;
    let lines: Vec<&[u8]> = file
        .split(|&b| b == b'\n')
        .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
        .take(args.limit.unwrap_or(usize::MAX))
        .collect();
    ensure!(
        !lines.is_empty(),
        "{} holds no events",
        args.events.display()
    );
    Ok(lines
        .chunks(args.batch.max(1))
        .map(|batch| {
            let body_len: usize = batch.iter().map(|l| l.len() + 1).sum();
            let head = format!(
                "POST {} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\n\
                 Content-Type: application/x-ndjson\r\nContent-Length: {body_len}\r\n\
                 Connection: keep-alive\r\nUser-Agent: vellum-bench/http_ingest\r\n\r\n",
                target.path, target.host, args.token
            );
            let mut bytes = Vec::with_capacity(head.len() + body_len);
            bytes.extend_from_slice(head.as_bytes());
            for line in batch {
                bytes.extend_from_slice(line);
                bytes.push(b'\n');
            }
            Request {
                bytes,
                events: batch.len() as u64,
            }
        })
        .collect())
}

/// What one connection got done, and when it finished.
#[derive(Debug)]
struct Outcome {
    accepted: u64,
    duplicates: u64,
    end: Instant,
    /// Nanoseconds this connection's thread ran on a CPU while sending (None off Linux).
    cpu_ns: Option<u64>,
}

/// Sends `requests` one after another on `stream`, once `start` lets every connection go.
fn send_all(stream: TcpStream, requests: &[&Request], start: &Barrier) -> anyhow::Result<Outcome> {
    let mut reader = BufReader::with_capacity(64 << 10, &stream);
    let mut writer = &stream;
    let (mut accepted, mut duplicates) = (0, 0);
    start.wait();
    let cpu0 = thread_cpu_ns();
    for (n, req) in requests.iter().enumerate() {
        writer
            .write_all(&req.bytes)
            .with_context(|| format!("sending request {}", n + 1))?;
        let resp = read_response(&mut reader)
            .with_context(|| format!("reading the response to request {}", n + 1))?;
        if resp.status != 200 {
            bail!(
                "request {}: HTTP {}: {}",
                n + 1,
                resp.status,
                String::from_utf8_lossy(&resp.body[..resp.body.len().min(300)])
            );
        }
        let a = json_count(&resp.body, "accepted");
        let d = json_count(&resp.body, "duplicates");
        let (Some(a), Some(d)) = (a, d) else {
            bail!(
                "request {}: no accepted/duplicates counts in {}",
                n + 1,
                String::from_utf8_lossy(&resp.body)
            );
        };
        ensure!(
            a + d == req.events,
            "request {}: {} events sent, the server accepted {a} and found {d} duplicates",
            n + 1,
            req.events
        );
        accepted += a;
        duplicates += d;
        if resp.close && n + 1 < requests.len() {
            bail!("the server closed the connection after request {}", n + 1);
        }
    }
    let end = Instant::now();
    let cpu_ns = cpu0.zip(thread_cpu_ns()).map(|(a, b)| b.saturating_sub(a));
    Ok(Outcome {
        accepted,
        duplicates,
        end,
        cpu_ns,
    })
}

/// An HTTP/1.1 response: its status, its body (de-chunked), and whether the server will
/// close the connection after it.
#[derive(Debug)]
struct Response {
    status: u16,
    body: Vec<u8>,
    close: bool,
}

/// Reads one final response (skipping any 1xx before it).
fn read_response(r: &mut impl BufRead) -> anyhow::Result<Response> {
    let mut line = Vec::new();
    loop {
        read_line(r, &mut line)?;
        let status = parse_status_line(&line)?;
        let (mut length, mut chunked, mut close) = (None, false, false);
        loop {
            read_line(r, &mut line)?;
            if line.is_empty() {
                break;
            }
            let text = String::from_utf8_lossy(&line);
            let (name, value) = text
                .split_once(':')
                .ok_or_else(|| anyhow!("malformed header line {text:?}"))?;
            let (name, value) = (name.trim(), value.trim());
            if name.eq_ignore_ascii_case("content-length") {
                length = Some(
                    value
                        .parse::<usize>()
                        .with_context(|| format!("Content-Length {value:?}"))?,
                );
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.to_ascii_lowercase().contains("chunked");
            } else if name.eq_ignore_ascii_case("connection") {
                close = value.to_ascii_lowercase().contains("close");
            }
        }
        if (100..200).contains(&status) {
            continue;
        }
        let body = if chunked {
            read_chunked(r, &mut line)?
        } else if let Some(n) = length {
            ensure!(n <= MAX_RESPONSE_BODY, "response body of {n} bytes");
            let mut body = vec![0; n];
            r.read_exact(&mut body).context("response body cut off")?;
            body
        } else if status == 204 || status == 304 {
            Vec::new()
        } else {
            bail!("HTTP {status} response with neither Content-Length nor chunked encoding");
        };
        return Ok(Response {
            status,
            body,
            close,
        });
    }
}

/// `HTTP/1.1 200 OK` -> 200.
fn parse_status_line(line: &[u8]) -> anyhow::Result<u16> {
    let text = String::from_utf8_lossy(line);
    let mut parts = text.splitn(3, ' ');
    match (parts.next(), parts.next().map(str::parse::<u16>)) {
        (Some(v), Some(Ok(code))) if v.starts_with("HTTP/1.") => Ok(code),
        _ => bail!("not an HTTP/1.x status line: {text:?}"),
    }
}

/// A chunked body: hex size lines (extensions ignored), data, and trailers to an empty line.
fn read_chunked(r: &mut impl BufRead, line: &mut Vec<u8>) -> anyhow::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        read_line(r, line)?;
        let text = String::from_utf8_lossy(line);
        let hex = text.split(';').next().unwrap_or_default().trim();
        let size =
            usize::from_str_radix(hex, 16).with_context(|| format!("chunk size line {text:?}"))?;
        if size == 0 {
            loop {
                read_line(r, line)?;
                if line.is_empty() {
                    return Ok(body);
                }
            }
        }
        ensure!(
            body.len() + size <= MAX_RESPONSE_BODY,
            "chunked response body over {MAX_RESPONSE_BODY} bytes"
        );
        let at = body.len();
        body.resize(at + size, 0);
        r.read_exact(&mut body[at..])
            .context("chunked response body cut off")?;
        read_line(r, line)?;
        ensure!(line.is_empty(), "no CRLF after a chunk");
    }
}

/// One line without its CRLF (or LF); a connection closed before it is an error.
fn read_line(r: &mut impl BufRead, line: &mut Vec<u8>) -> anyhow::Result<()> {
    line.clear();
    let n = r
        .read_until(b'\n', line)
        .context("reading from the server")?;
    ensure!(n > 0, "the server closed the connection");
    ensure!(
        line.last() == Some(&b'\n'),
        "the server closed the connection mid-line"
    );
    line.pop();
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    Ok(())
}

/// The unsigned integer after `"key":` in a JSON object. Enough for the ingest answer's flat
/// shape (`{"accepted":N,"duplicates":N,...}`, see `vellum-server/src/routes/events.rs`);
/// not a JSON parser.
fn json_count(body: &[u8], key: &str) -> Option<u64> {
    let pattern = format!("\"{key}\"");
    let at = body
        .windows(pattern.len())
        .position(|w| w == pattern.as_bytes())?;
    let rest = body[at + pattern.len()..].trim_ascii_start();
    let rest = rest.strip_prefix(b":")?.trim_ascii_start();
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()
}

/// This thread's time on a CPU so far, in ns (`/proc/thread-self/schedstat`).
fn thread_cpu_ns() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    stat.split_whitespace().next()?.parse().ok()
}

fn connect(target: &Target) -> anyhow::Result<TcpStream> {
    let stream = TcpStream::connect_timeout(&target.addr, IO_TIMEOUT)
        .with_context(|| format!("connecting to {}", target.addr))?;
    stream.set_nodelay(true).context("setting TCP_NODELAY")?;
    stream
        .set_read_timeout(Some(IO_TIMEOUT))
        .context("setting a read timeout")?;
    stream
        .set_write_timeout(Some(IO_TIMEOUT))
        .context("setting a write timeout")?;
    Ok(stream)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let target = Target::parse(&args.url)?;
    let requests = build_requests(&args, &target)?;
    let events: u64 = requests.iter().map(|r| r.events).sum();
    let conns = args.conns.max(1);
    let mut shares: Vec<Vec<&Request>> = vec![Vec::new(); conns];
    for (i, req) in requests.iter().enumerate() {
        shares[i % conns].push(req);
    }
    shares.retain(|s| !s.is_empty());
    eprintln!(
        "http_ingest: {events} events in {} requests of up to {} over {} connections to {}{}",
        requests.len(),
        args.batch.max(1),
        shares.len(),
        target.addr,
        target.path
    );
    // Connect before the clock starts (and before any thread waits on the barrier, so a
    // refused connection cannot leave the others waiting).
    let streams = shares
        .iter()
        .map(|_| connect(&target))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let barrier = Barrier::new(shares.len() + 1);
    let (start, results) = std::thread::scope(|s| {
        let handles: Vec<_> = shares
            .iter()
            .zip(streams)
            .map(|(share, stream)| {
                let barrier = &barrier;
                s.spawn(move || send_all(stream, share, barrier))
            })
            .collect();
        let start = Instant::now();
        barrier.wait();
        let results: Vec<anyhow::Result<Outcome>> = handles
            .into_iter()
            .map(|h| {
                h.join()
                    .map_err(|_| anyhow!("a connection thread panicked"))?
            })
            .collect();
        (start, results)
    });
    let mut outcomes = Vec::with_capacity(results.len());
    for (i, r) in results.into_iter().enumerate() {
        outcomes.push(r.with_context(|| format!("connection {}", i + 1))?);
    }
    let end = outcomes.iter().map(|o| o.end).max().unwrap_or(start);
    let secs = (end - start).as_secs_f64();
    let accepted: u64 = outcomes.iter().map(|o| o.accepted).sum();
    let duplicates: u64 = outcomes.iter().map(|o| o.duplicates).sum();
    ensure!(
        duplicates == 0,
        "the server found {duplicates} of {events} events already in its log: \
         measure against a fresh data directory"
    );
    ensure!(
        accepted == events,
        "the server accepted {accepted} of {events} events"
    );
    let rate = accepted as f64 / secs;
    let cpu: Option<u64> = outcomes.iter().map(|o| o.cpu_ns).sum();
    let cpu_s = cpu.map_or(f64::NAN, |ns| ns as f64 / 1e9);
    println!(
        "http_ingest: {accepted} events accepted in {secs:.3} s = {rate:.0} events/s; \
         client threads on a CPU {cpu_s:.3} s ({:.0}% of one core)",
        cpu_s / secs * 100.0
    );
    println!(
        "RESULT http_ingest events={accepted} seconds={secs:.3} events_per_s={rate:.0} client_cpu_s={cpu_s:.3}"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(wire: &[u8]) -> anyhow::Result<Response> {
        read_response(&mut BufReader::new(wire))
    }

    #[test]
    fn reads_a_content_length_response_and_leaves_the_next_one() {
        let wire = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 14\r\n\r\n{\"accepted\":3}HTTP/1.1 429 Too Many\r\nContent-Length: 0\r\n\r\n";
        let mut r = BufReader::new(&wire[..]);
        let first = read_response(&mut r).unwrap();
        assert_eq!(first.status, 200);
        assert_eq!(json_count(&first.body, "accepted"), Some(3));
        let second = read_response(&mut r).unwrap();
        assert_eq!(second.status, 429);
        assert!(second.body.is_empty());
    }

    #[test]
    fn reads_a_chunked_response_with_trailers_after_a_100() {
        let wire = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5;x=y\r\n{\"acc\r\nA\r\nepted\": 42\r\n0\r\nX-T: 1\r\n\r\n";
        let r = response(wire).unwrap();
        assert_eq!(r.status, 200);
        assert!(r.close);
        assert_eq!(r.body, b"{\"accepted\": 42");
        assert_eq!(json_count(&r.body, "accepted"), Some(42));
    }

    #[test]
    fn a_cut_off_response_is_an_error() {
        assert!(response(b"").is_err());
        assert!(response(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{}").is_err());
        assert!(response(b"HTTP/1.1 200 OK\r\nContent-Len").is_err());
        assert!(response(b"SSH-2.0-OpenSSH\r\n\r\n").is_err());
        assert!(response(b"HTTP/1.1 200 OK\r\n\r\n{}").is_err());
    }

    #[test]
    fn counts_from_the_ingest_answer() {
        let body = br#"{"accepted":1000,"duplicates":0,"first_index":5,"last_index":1004,"tree_size":1005}"#;
        assert_eq!(json_count(body, "accepted"), Some(1000));
        assert_eq!(json_count(body, "duplicates"), Some(0));
        assert_eq!(json_count(body, "missing"), None);
        assert_eq!(json_count(br#"{"accepted":"x"}"#, "accepted"), None);
    }

    #[test]
    fn urls() {
        let t = Target::parse("http://127.0.0.1:7700").unwrap();
        assert_eq!(t.addr, "127.0.0.1:7700".parse().unwrap());
        assert_eq!(
            (t.host.as_str(), t.path.as_str()),
            ("127.0.0.1:7700", "/v1/events")
        );
        let t = Target::parse("http://[::1]/audit/").unwrap();
        assert_eq!(t.addr, "[::1]:80".parse().unwrap());
        assert_eq!(t.path, "/audit/v1/events");
        assert!(Target::parse("https://127.0.0.1:7700").is_err());
        assert!(Target::parse("http:///v1").is_err());
    }
}
