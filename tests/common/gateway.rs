//! An in-process gateway on 127.0.0.1 ephemeral ports, its access log
//! captured, and a blocking raw HTTP/1.1 client for exact bytes on the wire.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use edgeguard::gateway::Shared;
use edgeguard::log::AccessLog;
use edgeguard::server::{self, Running};

use super::Folder;

/// A running gateway and what it logged.
pub struct Gateway {
    /// The public address.
    pub addr: SocketAddr,
    /// The admin address.
    pub admin: Option<SocketAddr>,
    running: Option<Running>,
    log: Arc<Mutex<Vec<u8>>>,
    /// The folder holding its rulebook.
    pub folder: Folder,
}

#[derive(Clone)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Gateway {
    /// Starts a gateway on `rulebook`; `{upstream}` in it is replaced by
    /// `upstream`. Without a `[server]` table, one listening on ephemeral
    /// loopback ports is added.
    pub fn start(rulebook: &str, upstream: Option<SocketAddr>) -> Gateway {
        Self::start_with(rulebook, upstream, &[], 1)
    }

    /// Like `start`, with extra files and `workers` worker threads.
    pub fn start_with(
        rulebook: &str,
        upstream: Option<SocketAddr>,
        files: &[(&str, &str)],
        workers: usize,
    ) -> Gateway {
        let mut text = rulebook.to_owned();
        if let Some(up) = upstream {
            text = text.replace("{upstream}", &format!("http://{up}"));
        }
        if !text.contains("[server]") {
            text = format!("[server]\nlisten = [\"127.0.0.1:0\"]\nadmin = \"127.0.0.1:0\"\n{text}");
        }
        let mut all = vec![("r.toml", text.as_str())];
        all.extend_from_slice(files);
        let folder = Folder::with(&all);
        let loaded = match folder.load() {
            Ok(l) => l,
            Err(errors) => panic!("rulebook did not load:\n{}", errors.join("\n")),
        };
        let log = Arc::new(Mutex::new(Vec::new()));
        let capture = Capture(Arc::clone(&log));
        let access = AccessLog::to_writer(move || Box::new(capture));
        let shared = Shared::new(loaded.policy, access);
        let running = server::start(shared, workers).expect("gateway starts");
        Gateway {
            addr: running.listen[0],
            admin: running.admin,
            running: Some(running),
            log,
            folder,
        }
    }

    /// The running server.
    pub fn running(&self) -> &Running {
        self.running.as_ref().expect("running")
    }

    /// Stops the gateway and waits for it.
    pub fn stop(&mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown();
        }
    }

    /// Takes the running server (to shut it down by hand).
    pub fn take(&mut self) -> Running {
        self.running.take().expect("running")
    }

    /// The access-log lines so far, parsed; waits up to 5 s for `at_least`.
    pub fn log_lines(&self, at_least: usize) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let text = String::from_utf8(self.log.lock().expect("lock").clone()).expect("utf-8");
            let lines: Vec<serde_json::Value> = text
                .lines()
                .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
                .collect();
            if lines.len() >= at_least || Instant::now() > deadline {
                return lines;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A response read off the wire.
#[derive(Debug, Clone)]
pub struct Raw {
    /// The status code (0 when the connection closed without one).
    pub status: u16,
    /// Header lines, names lowercased, in order.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked.
    pub body: Vec<u8>,
}

impl Raw {
    /// The first value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.text()))
    }
}

/// A blocking HTTP/1.1 connection that sends exact bytes.
pub struct Client {
    reader: BufReader<TcpStream>,
}

impl Client {
    /// Connects to `addr`.
    pub fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        stream.set_nodelay(true).expect("nodelay");
        Client {
            reader: BufReader::new(stream),
        }
    }

    /// Sends bytes as they are.
    pub fn send(&mut self, bytes: &[u8]) {
        self.reader.get_mut().write_all(bytes).expect("send");
    }

    /// Reads one response (to a HEAD request when `head`).
    pub fn read(&mut self, head: bool) -> Raw {
        let mut status_line = String::new();
        if self.reader.read_line(&mut status_line).unwrap_or(0) == 0 {
            return Raw {
                status: 0,
                headers: Vec::new(),
                body: Vec::new(),
            };
        }
        let status = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            self.reader.read_line(&mut line).expect("header line");
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            let (name, value) = line.split_once(':').expect("header colon");
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
        let mut raw = Raw {
            status,
            headers,
            body: Vec::new(),
        };
        if head || status == 204 || status == 304 || (100..200).contains(&status) {
            return raw;
        }
        if raw
            .header("transfer-encoding")
            .is_some_and(|te| te.contains("chunked"))
        {
            loop {
                let mut size = String::new();
                self.reader.read_line(&mut size).expect("chunk size");
                let size = usize::from_str_radix(size.trim().split(';').next().unwrap_or("0"), 16)
                    .expect("hex chunk size");
                let mut chunk = vec![0; size + 2];
                self.reader.read_exact(&mut chunk).expect("chunk");
                if size == 0 {
                    break;
                }
                raw.body.extend_from_slice(&chunk[..size]);
            }
        } else if let Some(len) = raw.header("content-length").and_then(|l| l.parse().ok()) {
            let mut body = vec![0; len];
            self.reader.read_exact(&mut body).expect("body");
            raw.body = body;
        } else {
            let _ = self.reader.read_to_end(&mut raw.body);
        }
        raw
    }

    /// The connection, for reading bytes as they come.
    pub fn reader_mut(&mut self) -> &mut BufReader<TcpStream> {
        &mut self.reader
    }

    /// Whether the server closed the connection (reads EOF within 2 s).
    pub fn is_closed(&mut self) -> bool {
        self.reader
            .get_mut()
            .set_read_timeout(Some(Duration::from_secs(2)))
            .expect("timeout");
        let mut b = [0u8; 1];
        matches!(self.reader.read(&mut b), Ok(0))
    }
}

/// Sends `bytes` on a new connection and reads one response.
pub fn raw(addr: SocketAddr, bytes: &[u8]) -> Raw {
    let mut c = Client::connect(addr);
    c.send(bytes);
    c.read(bytes.starts_with(b"HEAD "))
}

/// `GET target` with `Host: test` and extra header lines.
pub fn get(addr: SocketAddr, target: &str, headers: &[&str]) -> Raw {
    let mut req = format!("GET {target} HTTP/1.1\r\nHost: test\r\n");
    for h in headers {
        req.push_str(h);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    raw(addr, req.as_bytes())
}
