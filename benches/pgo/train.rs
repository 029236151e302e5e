//! The training run of the profile-guided build (`benches/pgo/build.sh`): starts
//! the gateway it is given (an instrumented build) on a rulebook of its own, behind
//! it an upstream stub, and sends it the three kinds of traffic a gateway lives on,
//! each for a few seconds: allowed requests (forwarded), refused ones (a blocklist,
//! a country, a dotfile, a hotlink) and files (4 KB and 1 MB). Every answer's status
//! is checked: a profile of error paths would optimize the wrong code. Then the
//! gateway is stopped with SIGTERM, so that its clean exit writes the profile.
//!
//!     cargo run --release --example pgo-train -- GATEWAY [SECONDS]
//!
//! Loopback only; std threads and blocking sockets, so the trainer shares no code
//! with what it trains.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, ExitCode, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::{Duration, Instant};

/// Connections each phase keeps busy.
const CONNECTIONS: usize = 8;
/// Prefixes in the training blocklist.
const BLOCKLIST_SIZE: usize = 10_000;

const RULEBOOK: &str = r#"
[server]
listen = ["127.0.0.1:0"]
admin = "127.0.0.1:0"
[client_ip]
trusted_proxies = ["127.0.0.1"]
[log]
access = "off"
[geoip]
database = "{geoip}"
[lists]
blocklist = { file = "blocklist.txt" }
[[route]]
path_prefix = "/static"
root = "site"
[[route]]
upstream = "http://{upstream}"
[[rule]]
name = "blocklist"
action = "deny"
ip = ["@blocklist"]
[[rule]]
name = "embargo"
action = "deny"
country = ["SE"]
[[rule]]
name = "dotfiles"
action = "deny"
path_regex = ['/\.']
[[rule]]
name = "no-hotlinking"
action = "deny"
path_regex = ['(?i)\.(png|jpe?g|gif|webp)$']
hotlink = { allow = ["example.com", "*.example.com"], allow_own_host = false }
"#;

/// One request of a phase: client address (sent as X-Forwarded-For), path,
/// referer, and the status it must get.
type Probe = (&'static str, &'static str, &'static str, u16);

const ALLOWED: &[Probe] = &[
    ("198.51.100.7", "/", "https://www.example.com/", 200),
    (
        "198.51.100.8",
        "/index.html",
        "https://www.example.com/",
        200,
    ),
    (
        "81.2.69.160",
        "/img/logo.png",
        "https://shop.example.com/",
        200,
    ),
    (
        "2001:218::1",
        "/api/items?page=2",
        "https://www.example.com/",
        200,
    ),
];

const REFUSED: &[Probe] = &[
    ("203.0.113.9", "/", "https://www.example.com/", 403),
    (
        "89.160.20.128",
        "/index.html",
        "https://www.example.com/",
        403,
    ),
    ("198.51.100.7", "/.env", "https://www.example.com/", 403),
    ("198.51.100.7", "/img/logo.png", "https://evil.test/", 403),
];

const FILES: &[Probe] = &[
    ("198.51.100.7", "/static/small.bin", "", 200),
    ("198.51.100.7", "/static/small.bin", "", 200),
    ("198.51.100.7", "/static/small.bin", "", 200),
    ("198.51.100.7", "/static/big.bin", "", 200),
];

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let (Some(gateway), seconds) = (args.next(), args.next()) else {
        eprintln!("usage: pgo-train GATEWAY [SECONDS]");
        return ExitCode::from(2);
    };
    let seconds = match seconds.map(|s| s.parse::<f64>()) {
        None => 4.0,
        Some(Ok(s)) if s > 0.0 => s,
        Some(_) => {
            eprintln!("pgo-train: SECONDS must be a positive number");
            return ExitCode::from(2);
        }
    };
    match train(Path::new(&gateway), Duration::from_secs_f64(seconds)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pgo-train: {e}");
            ExitCode::FAILURE
        }
    }
}

fn train(gateway: &Path, phase: Duration) -> Result<(), String> {
    let folder = tempfile::tempdir().map_err(|e| format!("a temporary folder: {e}"))?;
    let upstream = upstream_stub()?;
    write_files(folder.path(), upstream)?;
    let mut child = Command::new(gateway)
        .arg("run")
        .arg("--config")
        .arg(folder.path().join("edgeguard.toml"))
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", gateway.display()))?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let (started, addr) = mpsc::channel();
    // Reads the start line, then drains stdout to its end; what is not
    // information is passed on.
    thread::spawn(move || {
        let mut started = Some(started);
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(tx) = started.take_if(|_| line.contains("\"edgeguard started\"")) {
                let _ = tx.send(listen_address(&line));
            } else if !line.contains("\"level\":\"INFO\"") {
                eprintln!("{line}");
            }
        }
    });
    let result = addr
        .recv_timeout(Duration::from_secs(30))
        .map_err(|_| "the gateway did not start".to_string())
        .and_then(|a| a.ok_or_else(|| "no listen address in the start line".to_string()))
        .and_then(|addr| {
            for (name, probes) in [("allowed", ALLOWED), ("refused", REFUSED), ("files", FILES)] {
                let n = run_phase(addr, probes, phase)?;
                eprintln!("pgo-train: {name}: {n} requests");
            }
            Ok(())
        });
    // SIGTERM, not SIGKILL: the profile is written at a clean exit. The
    // shell's own `kill`: a build image may have no /bin/kill.
    let _ = Command::new("sh")
        .args(["-c", &format!("kill -TERM {}", child.id())])
        .status();
    let status = wait_for_exit(&mut child, Duration::from_secs(30))?;
    result?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("the gateway exited with {status}"))
    }
}

/// The gateway's exit status; killed, and an error, if it takes longer than
/// `limit` to exit.
fn wait_for_exit(child: &mut Child, limit: Duration) -> Result<ExitStatus, String> {
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Ok(status),
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(50)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "the gateway did not exit within {limit:?} of SIGTERM"
                ));
            }
            Err(e) => return Err(format!("waiting for the gateway: {e}")),
        }
    }
}

/// `"listen":"127.0.0.1:PORT ..."` from the JSON start line.
fn listen_address(line: &str) -> Option<SocketAddr> {
    let rest = &line[line.find("\"listen\":\"")? + 10..];
    rest[..rest.find(['"', ' '])?].parse().ok()
}

/// Keeps `CONNECTIONS` keep-alive connections busy with `probes`, in turn, for
/// `time`; fails on the first wrong status. Returns the requests answered.
fn run_phase(addr: SocketAddr, probes: &'static [Probe], time: Duration) -> Result<u64, String> {
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + time;
    let workers: Vec<_> = (0..CONNECTIONS)
        .map(|i| {
            let done = Arc::clone(&done);
            thread::spawn(move || -> Result<(), String> {
                let mut conn = Client::connect(addr)?;
                let mut n = i;
                while Instant::now() < deadline {
                    let (ip, path, referer, want) = probes[n % probes.len()];
                    let got = conn.get(ip, path, referer)?;
                    if got != want {
                        return Err(format!("{path} from {ip}: {got}, expected {want}"));
                    }
                    n += 1;
                    done.fetch_add(1, Ordering::Relaxed);
                }
                Ok(())
            })
        })
        .collect();
    for w in workers {
        w.join()
            .map_err(|_| "a client thread panicked".to_string())??;
    }
    Ok(done.load(Ordering::Relaxed))
}

/// A keep-alive HTTP/1.1 client that reads Content-Length framed answers.
struct Client {
    stream: BufReader<TcpStream>,
    request: Vec<u8>,
    line: String,
    body: Vec<u8>,
}

impl Client {
    fn connect(addr: SocketAddr) -> Result<Client, String> {
        let stream = TcpStream::connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .map_err(|e| e.to_string())?;
        Ok(Client {
            stream: BufReader::new(stream),
            request: Vec::new(),
            line: String::new(),
            body: Vec::new(),
        })
    }

    /// Sends one GET and reads its answer; returns the status.
    fn get(&mut self, ip: &str, path: &str, referer: &str) -> Result<u16, String> {
        let io = |e: std::io::Error| format!("GET {path}: {e}");
        self.request.clear();
        write!(
            self.request,
            "GET {path} HTTP/1.1\r\nHost: www.example.com\r\nX-Forwarded-For: {ip}\r\n"
        )
        .map_err(io)?;
        if !referer.is_empty() {
            write!(self.request, "Referer: {referer}\r\n").map_err(io)?;
        }
        self.request.extend_from_slice(b"\r\n");
        self.stream.get_mut().write_all(&self.request).map_err(io)?;
        let mut status = None;
        let mut length = None;
        loop {
            self.line.clear();
            if self.stream.read_line(&mut self.line).map_err(io)? == 0 {
                return Err(format!("GET {path}: the connection closed"));
            }
            let line = self.line.trim_end();
            if line.is_empty() {
                break;
            }
            if status.is_none() {
                status = line.split(' ').nth(1).and_then(|s| s.parse::<u16>().ok());
            } else if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse::<usize>().ok();
            }
        }
        let (Some(status), Some(length)) = (status, length) else {
            return Err(format!("GET {path}: no status or Content-Length"));
        };
        self.body.resize(length, 0);
        self.stream.read_exact(&mut self.body).map_err(io)?;
        Ok(status)
    }
}

/// An upstream that answers every request `200 ok`, keep-alive, a thread per
/// connection; it lives as long as the process.
fn upstream_stub() -> Result<SocketAddr, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("upstream: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            thread::spawn(move || answer(stream));
        }
    });
    Ok(addr)
}

/// Answers each request head on `stream` until it closes (the training sends no bodies).
fn answer(stream: TcpStream) {
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    loop {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) if line.trim_end().is_empty() => {
                let reply =
                    b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Type: text/plain\r\n\r\nok\n";
                if writer.write_all(reply).is_err() {
                    return;
                }
            }
            Ok(_) => {}
        }
    }
}

/// The rulebook, its blocklist and the files it serves.
fn write_files(folder: &Path, upstream: SocketAddr) -> Result<(), String> {
    let geoip = Path::new(env!("CARGO_MANIFEST_DIR")).join("geoip/GeoLite2-Country-Test.mmdb");
    let rulebook = RULEBOOK
        .replace("{geoip}", &geoip.display().to_string())
        .replace("{upstream}", &upstream.to_string());
    let write = |name: &str, bytes: &[u8]| {
        let path = folder.join(name);
        std::fs::create_dir_all(path.parent().expect("a file in the folder"))
            .and_then(|()| std::fs::write(&path, bytes))
            .map_err(|e| format!("{}: {e}", path.display()))
    };
    write("edgeguard.toml", rulebook.as_bytes())?;
    write("blocklist.txt", blocklist().as_bytes())?;
    write("site/static/small.bin", &[b'a'; 4096])?;
    write("site/static/big.bin", &vec![b'b'; 1 << 20])
}

/// `BLOCKLIST_SIZE` distinct prefixes, /24 to /32 and some IPv6 /48s, from a
/// fixed-seed generator; 203.0.113.0/24 is in it, 198.51.100.0/24 and the test
/// database's 81.2.69.0/24 and 89.160.20.0/24 are not.
fn blocklist() -> String {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut prefixes = std::collections::BTreeSet::from(["203.0.113.0/24".to_string()]);
    while prefixes.len() < BLOCKLIST_SIZE {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let [a, b, c, d, kind, ..] = state.to_le_bytes();
        prefixes.insert(match kind % 10 {
            0 => format!("2a0{}:{:x}::/48", a % 10, u16::from_le_bytes([b, c])),
            _ if matches!(a, 0 | 10 | 81 | 89 | 127 | 198 | 203 | 224..) => continue,
            1..=6 => format!("{a}.{b}.{c}.0/24"),
            7 | 8 => format!("{a}.{b}.{c}.{}/28", d & 0xf0),
            _ => format!("{a}.{b}.{c}.{d}/32"),
        });
    }
    prefixes.into_iter().map(|p| p + "\n").collect()
}
