//! An in-process gateway with its full admin API (its `Control` attached)
//! and its rulebook watched, as `edgeguard run` has them; admin requests;
//! polling with a deadline; and writing files the ways operators do.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use edgeguard::admin::Control;
use edgeguard::gateway::Shared;
use edgeguard::log::AccessLog;
use edgeguard::policy;
use edgeguard::server::{self, Running};

use super::Folder;
use super::gateway::{Raw, raw};

/// The `[server]` table of every test rulebook: ephemeral loopback ports.
pub const SERVER: &str = "[server]\nlisten = [\"127.0.0.1:0\"]\nadmin = \"127.0.0.1:0\"\n";

/// How long a change may take to be enforced (issue 8).
pub const WITHIN: Duration = Duration::from_secs(2);

/// A running gateway whose rulebook reloads.
pub struct Watched {
    /// The public address.
    pub addr: SocketAddr,
    /// The admin address.
    pub admin: SocketAddr,
    /// Its metrics, reloader and refusal feed.
    pub control: Control,
    running: Option<Running>,
    /// The folder of its rulebook.
    pub folder: Folder,
}

impl Watched {
    /// Starts on `r.toml` among `files` (written to a new folder).
    pub fn with(files: &[(&str, &str)]) -> Watched {
        let folder = Folder::with(files);
        let config = folder.path("r.toml");
        Watched::start(folder, &config)
    }

    /// Starts on the rulebook at `config` (inside `folder`), watching it.
    pub fn start(folder: Folder, config: &Path) -> Watched {
        let loaded = match policy::load(config) {
            Ok(l) => l,
            Err(errors) => panic!("rulebook did not load:\n{errors}"),
        };
        let shared = Shared::new(
            loaded.policy,
            AccessLog::to_writer(|| Box::new(std::io::sink())),
        );
        let control = shared.control.clone();
        let running = server::start(shared, 1).expect("gateway starts");
        control
            .reloader
            .start(running.shared(), true)
            .expect("reload thread starts");
        Watched {
            addr: running.listen[0],
            admin: running.admin.expect("admin on"),
            control,
            running: Some(running),
            folder,
        }
    }

    /// The TLS listeners' addresses.
    pub fn tls_listen(&self) -> Vec<SocketAddr> {
        self.running.as_ref().expect("running").tls_listen.clone()
    }

    /// The shared state.
    pub fn shared(&self) -> &std::sync::Arc<Shared> {
        self.running.as_ref().expect("running").shared()
    }

    /// A path in the rulebook's folder.
    pub fn path(&self, name: &str) -> PathBuf {
        self.folder.path(name)
    }

    /// `GET path` on the admin listener.
    pub fn admin_get(&self, path: &str) -> Raw {
        admin_request(self.admin, "GET", path, &[])
    }

    /// `POST /reload`.
    pub fn post_reload(&self) -> Raw {
        admin_request(self.admin, "POST", "/reload", &[])
    }

    /// `GET /status`, parsed.
    pub fn status(&self) -> serde_json::Value {
        let r = self.admin_get("/status");
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()
    }

    /// `GET /metrics`, as text.
    pub fn metrics(&self) -> String {
        let r = self.admin_get("/metrics");
        assert_eq!(r.status, 200, "{}", r.text());
        r.text()
    }

    /// The value of a sample line of /metrics (`name{labels}`), 0 when absent.
    pub fn sample(&self, series: &str) -> f64 {
        sample(&self.metrics(), series)
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        self.control.reloader.stop();
        if let Some(r) = self.running.take() {
            r.shutdown();
        }
    }
}

/// A request to an admin listener, with extra header lines.
pub fn admin_request(addr: SocketAddr, method: &str, path: &str, headers: &[&str]) -> Raw {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n");
    if method == "POST" {
        req.push_str("Content-Length: 0\r\n");
    }
    for h in headers {
        req.push_str(h);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    raw(addr, req.as_bytes())
}

/// The value of a sample line (`name{labels}` exactly) in metrics text, 0 when absent.
pub fn sample(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map_or(0.0, |v| v.trim().parse().expect("a number"))
}

/// Polls `check` until it holds or `within` passes; whether it held.
pub fn eventually(within: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if check() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Writes `contents` to `path` in place: same inode, truncated then written.
pub fn write_in_place(path: &Path, contents: impl AsRef<[u8]>) {
    use std::io::Write as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
        .expect("open for writing");
    f.write_all(contents.as_ref()).expect("write");
}

/// Replaces `path` by renaming a new file over it, as editors and
/// geoipupdate do.
pub fn replace_by_rename(path: &Path, contents: impl AsRef<[u8]>) {
    let name = path.file_name().expect("a file name").to_string_lossy();
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    std::fs::write(&tmp, contents).expect("write the new file");
    std::fs::rename(&tmp, path).expect("rename over");
}

/// A Kubernetes ConfigMap mount: `dir/NAME -> ..data/NAME`, `..data -> ..VERSION/`.
pub struct ConfigMap {
    /// The mount point.
    pub dir: PathBuf,
    version: u32,
}

impl ConfigMap {
    /// Lays out a mount in `dir` holding `files` (flat names).
    pub fn create(dir: &Path, files: &[(&str, &str)]) -> ConfigMap {
        let mut map = ConfigMap {
            dir: dir.to_path_buf(),
            version: 0,
        };
        let first = map.write_version(files);
        std::os::unix::fs::symlink(&first, dir.join("..data")).expect("..data");
        for (name, _) in files {
            std::os::unix::fs::symlink(format!("..data/{name}"), dir.join(name)).expect("link");
        }
        map
    }

    fn write_version(&mut self, files: &[(&str, &str)]) -> String {
        self.version += 1;
        let name = format!(
            "..2024_01_01_00_00_{:02}.{}",
            self.version,
            1000 + self.version
        );
        std::fs::create_dir(self.dir.join(&name)).expect("version folder");
        for (file, contents) in files {
            std::fs::write(self.dir.join(&name).join(file), contents).expect("write");
        }
        name
    }

    /// Swaps in new contents as the kubelet does: a new version folder, a
    /// `..data_tmp` link to it renamed over `..data`, the old folder removed.
    pub fn update(&mut self, files: &[(&str, &str)]) {
        let old = std::fs::read_link(self.dir.join("..data")).expect("..data");
        let new = self.write_version(files);
        let tmp = self.dir.join("..data_tmp");
        std::os::unix::fs::symlink(&new, &tmp).expect("..data_tmp");
        std::fs::rename(&tmp, self.dir.join("..data")).expect("swap ..data");
        std::fs::remove_dir_all(self.dir.join(old)).expect("remove the old version");
    }
}
