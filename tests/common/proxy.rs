//! An HTTP/1.1 proxy in front of a registry, for tests: counts the bytes and
//! requests that pass, and injects faults per request (503, 429 with
//! Retry-After, a connection cut in the middle of a response or request body).

use std::io::{self, BufRead, BufReader, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Default, Clone, Copy)]
pub struct Faults {
    /// Answer every Nth request with 503 (not forwarded).
    pub unavailable_every: Option<u64>,
    /// Answer every Nth request with 429 and `Retry-After: 1`.
    pub too_many_every: Option<u64>,
    /// Cut the connection halfway through every Nth response body.
    pub cut_response_every: Option<u64>,
    /// Cut the connection halfway through every Nth request body (uploads),
    /// counted among requests with a body: a client whose retry is always
    /// the same few requests (start, PUT, cancel) would otherwise meet the
    /// cut at every attempt.
    pub cut_request_every: Option<u64>,
    /// Pass bodies at this many bytes per second (a slow link).
    pub throttle: Option<u64>,
    /// Flip one byte in the body of responses larger than this many bytes.
    pub corrupt_bodies_over: Option<u64>,
}

#[derive(Default)]
pub struct Stats {
    pub bytes: AtomicU64,
    pub requests: AtomicU64,
    pub faults: AtomicU64,
    /// Requests with a body that were forwarded.
    pub bodies: AtomicU64,
    /// `METHOD PATH -> STATUS` per request.
    pub log: Mutex<Vec<String>>,
}

pub struct Proxy {
    pub addr: String,
    pub stats: Arc<Stats>,
}

impl Proxy {
    pub fn start(upstream: &str, faults: Faults) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let stats = Arc::new(Stats::default());
        let (up, st) = (upstream.to_string(), stats.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let (up, st) = (up.clone(), st.clone());
                std::thread::spawn(move || {
                    let _ = serve(client, &up, &st, faults);
                });
            }
        });
        Proxy { addr, stats }
    }

    pub fn bytes(&self) -> u64 {
        self.stats.bytes.load(Ordering::SeqCst)
    }

    pub fn reset(&self) {
        self.stats.bytes.store(0, Ordering::SeqCst);
        self.stats.log.lock().unwrap().clear();
    }

    pub fn log(&self) -> Vec<String> {
        self.stats.log.lock().unwrap().clone()
    }
}

struct Head {
    lines: Vec<String>,
    length: Option<u64>,
    chunked: bool,
}

impl Head {
    fn read(r: &mut impl BufRead) -> io::Result<Option<Head>> {
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            if r.read_line(&mut line)? == 0 {
                return Ok(None);
            }
            let line = line.trim_end().to_string();
            if line.is_empty() {
                break;
            }
            lines.push(line);
        }
        let header = |name: &str| {
            lines.iter().skip(1).find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
            })
        };
        let length = header("content-length").and_then(|v| v.parse().ok());
        let chunked = header("transfer-encoding").is_some_and(|v| v.contains("chunked"));
        Ok(Some(Head {
            lines,
            length,
            chunked,
        }))
    }

    fn bytes(&self) -> Vec<u8> {
        let mut s = self.lines.join("\r\n");
        s.push_str("\r\n\r\n");
        s.into_bytes()
    }
}

fn due(every: Option<u64>, n: u64) -> bool {
    every.is_some_and(|e| n.is_multiple_of(e))
}

/// Copies a body; `cut` stops halfway (the caller then drops the connection).
fn copy_body(
    r: &mut impl BufRead,
    w: &mut impl Write,
    head: &Head,
    cut: bool,
    count: &AtomicU64,
    throttle: Option<u64>,
    corrupt: bool,
) -> io::Result<bool> {
    let pass = |bytes: &[u8], w: &mut dyn Write| -> io::Result<()> {
        count.fetch_add(bytes.len() as u64, Ordering::SeqCst);
        if let Some(rate) = throttle {
            let secs = bytes.len() as f64 / rate as f64;
            std::thread::sleep(std::time::Duration::from_secs_f64(secs));
        }
        w.write_all(bytes)
    };
    if head.chunked {
        loop {
            let mut size_line = String::new();
            r.read_line(&mut size_line)?;
            pass(size_line.as_bytes(), w)?;
            let size = u64::from_str_radix(size_line.trim().split(';').next().unwrap_or("0"), 16)
                .unwrap_or(0);
            if cut && size > 1 {
                let mut part = vec![0; (size / 2) as usize];
                r.read_exact(&mut part)?;
                pass(&part, w)?;
                return Ok(true);
            }
            let mut data = vec![0; size as usize + 2];
            r.read_exact(&mut data)?;
            pass(&data, w)?;
            if size == 0 {
                return Ok(false);
            }
        }
    }
    let len = head.length.unwrap_or(0);
    let limit = if cut && len > 1 { len / 2 } else { len };
    let mut left = limit;
    let mut buf = vec![0; 64 << 10];
    let mut flip = corrupt;
    while left > 0 {
        let want = left.min(buf.len() as u64) as usize;
        let n = r.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        if std::mem::take(&mut flip) {
            buf[n / 2] ^= 0xff;
        }
        pass(&buf[..n], w)?;
        left -= n as u64;
    }
    Ok(limit < len)
}

fn serve(client: TcpStream, upstream: &str, stats: &Stats, faults: Faults) -> io::Result<()> {
    let mut from_client = BufReader::new(client.try_clone()?);
    let mut to_client = client;
    let server = TcpStream::connect(upstream)?;
    let mut from_server = BufReader::new(server.try_clone()?);
    let mut to_server = server;
    while let Some(request) = Head::read(&mut from_client)? {
        let n = stats.requests.fetch_add(1, Ordering::SeqCst) + 1;
        stats
            .bytes
            .fetch_add(request.bytes().len() as u64, Ordering::SeqCst);
        let line = request.lines[0].clone();
        let canned = if due(faults.unavailable_every, n) {
            Some("503 Service Unavailable\r\nContent-Length: 0")
        } else if due(faults.too_many_every, n) {
            Some("429 Too Many Requests\r\nRetry-After: 1\r\nContent-Length: 0")
        } else {
            None
        };
        if let Some(status) = canned {
            stats.faults.fetch_add(1, Ordering::SeqCst);
            stats
                .log
                .lock()
                .unwrap()
                .push(format!("{line} -> fault {status:.3}"));
            to_client
                .write_all(format!("HTTP/1.1 {status}\r\nConnection: close\r\n\r\n").as_bytes())?;
            let _ = to_client.shutdown(Shutdown::Both);
            return Ok(());
        }
        to_server.write_all(&request.bytes())?;
        let has_body = request.length.is_some_and(|l| l > 0) || request.chunked;
        let cut = has_body
            && due(
                faults.cut_request_every,
                stats.bodies.fetch_add(1, Ordering::SeqCst) + 1,
            );
        if copy_body(
            &mut from_client,
            &mut to_server,
            &request,
            cut,
            &stats.bytes,
            faults.throttle,
            false,
        )? {
            stats.faults.fetch_add(1, Ordering::SeqCst);
            stats
                .log
                .lock()
                .unwrap()
                .push(format!("{line} -> fault: request cut"));
            let _ = to_client.shutdown(Shutdown::Both);
            let _ = to_server.shutdown(Shutdown::Both);
            return Ok(());
        }
        let Some(response) = Head::read(&mut from_server)? else {
            return Ok(());
        };
        stats
            .bytes
            .fetch_add(response.bytes().len() as u64, Ordering::SeqCst);
        to_client.write_all(&response.bytes())?;
        let status = response.lines[0]
            .split(' ')
            .nth(1)
            .unwrap_or("")
            .to_string();
        let bodiless = line.starts_with("HEAD ") || status == "204" || status == "304";
        let cut = !bodiless && due(faults.cut_response_every, n);
        let corrupt = faults
            .corrupt_bodies_over
            .is_some_and(|min| response.length.is_some_and(|l| l > min));
        let was_cut = !bodiless
            && copy_body(
                &mut from_server,
                &mut to_client,
                &response,
                cut,
                &stats.bytes,
                faults.throttle,
                corrupt,
            )?;
        to_client.flush()?;
        let suffix = if was_cut { " (cut)" } else { "" };
        stats
            .log
            .lock()
            .unwrap()
            .push(format!("{line} -> {status}{suffix}"));
        if was_cut {
            stats.faults.fetch_add(1, Ordering::SeqCst);
            let _ = to_client.shutdown(Shutdown::Both);
            let _ = to_server.shutdown(Shutdown::Both);
            return Ok(());
        }
    }
    Ok(())
}
