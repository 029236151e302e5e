//! The built `edgeguard run` as a child process on ephemeral loopback ports,
//! its stdout collected; stopped by PID when dropped.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{Folder, binary};

/// A running `edgeguard run`.
pub struct Process {
    /// The child.
    pub child: Child,
    /// The public address.
    pub addr: SocketAddr,
    /// The admin address, when on.
    pub admin: Option<SocketAddr>,
    lines: Arc<Mutex<Vec<String>>>,
    /// The rulebook's folder.
    pub folder: Folder,
}

impl Process {
    /// Starts `edgeguard run` on a rulebook (`{upstream}` replaced); the
    /// rulebook should listen on 127.0.0.1:0.
    pub fn start(rulebook: &str, files: &[(&str, &str)], env: &[(&str, &str)]) -> Process {
        let mut all = vec![("r.toml", rulebook)];
        all.extend_from_slice(files);
        let folder = Folder::with(&all);
        let mut command = Command::new(binary());
        command
            .args(["run", "--config"])
            .arg(folder.path("r.toml"))
            .env("EDGEGUARD_WORKERS", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command.spawn().expect("start edgeguard run");
        let stdout = child.stdout.take().expect("stdout");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                sink.lock().expect("lock").push(line);
            }
        });
        let Some(started) = wait_for(
            &lines,
            |l| l.contains("\"edgeguard started\""),
            Duration::from_secs(20),
        ) else {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "edgeguard did not start: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let v: serde_json::Value = serde_json::from_str(&started).expect("json");
        let addr = v["listen"]
            .as_str()
            .and_then(|l| l.split(' ').next())
            .and_then(|a| a.parse().ok())
            .expect("listen address");
        let admin = v["admin"].as_str().and_then(|a| a.parse().ok());
        Process {
            child,
            addr,
            admin,
            lines,
            folder,
        }
    }

    /// Stdout lines so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().expect("lock").clone()
    }

    /// Waits for a stdout line holding `needle`.
    pub fn wait_line(&self, needle: &str, timeout: Duration) -> Option<String> {
        wait_for(&self.lines, |l| l.contains(needle), timeout)
    }

    /// A field of /proc/PID/status, in kB (VmRSS, VmHWM).
    pub fn memory_kb(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("read /proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{field}:")))
            .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
            .expect("memory field")
    }

    /// Sends a signal to the child, by PID.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// Waits for the child to exit; its status code.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }
}

fn wait_for(
    lines: &Mutex<Vec<String>>,
    matches: impl Fn(&str) -> bool,
    timeout: Duration,
) -> Option<String> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(l) = lines.lock().expect("lock").iter().find(|l| matches(l)) {
            return Some(l.clone());
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
