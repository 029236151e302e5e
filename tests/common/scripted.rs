//! A scripted upstream: raw bytes on 127.0.0.1, for the answers a
//! well-behaved server never gives (ambiguous framing, bytes after a body,
//! a close without notice). Every accepted connection is numbered from 0;
//! each request head read on one is answered with the bytes the script
//! gives for its target, and the connection is then kept or closed as the
//! script says.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// What the upstream does after answering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum After {
    /// Waits for the next request on the connection.
    Keep,
    /// Closes the connection.
    Close,
}

type Script = dyn Fn(&str) -> (Vec<u8>, After) + Send + Sync;

/// A running scripted upstream.
pub struct Scripted {
    /// Where it listens.
    pub addr: SocketAddr,
    requests: Arc<Mutex<Vec<(usize, String)>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Scripted {
    /// Starts an upstream answering each target with `script(target)`.
    pub fn start(script: impl Fn(&str) -> (Vec<u8>, After) + Send + Sync + 'static) -> Scripted {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind scripted upstream");
        let addr = listener.local_addr().expect("addr");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let script: Arc<Script> = Arc::new(script);
        let (seen, stopping) = (Arc::clone(&requests), Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            for (number, stream) in listener.incoming().enumerate() {
                if stopping.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                let (script, seen) = (Arc::clone(&script), Arc::clone(&seen));
                std::thread::spawn(move || answer(stream, number, &*script, &seen));
            }
        });
        Scripted {
            addr,
            requests,
            stop,
            thread: Some(thread),
        }
    }

    /// Every request so far: the connection's number and the target.
    pub fn requests(&self) -> Vec<(usize, String)> {
        self.requests.lock().expect("lock").clone()
    }
}

fn answer(stream: TcpStream, number: usize, script: &Script, seen: &Mutex<Vec<(usize, String)>>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut reader = BufReader::new(stream);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if line == "\r\n" || line == "\n" {
                break;
            }
        }
        let target = request_line.split(' ').nth(1).unwrap_or("").to_owned();
        seen.lock().expect("lock").push((number, target.clone()));
        let (bytes, after) = script(&target);
        if reader.get_mut().write_all(&bytes).is_err() || after == After::Close {
            return;
        }
    }
}

impl Drop for Scripted {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
