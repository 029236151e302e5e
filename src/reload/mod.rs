//! Reloading the rulebook (SPEC 9): one thread owns every reload, so that
//! reloads never overlap and never run on a request path. It reads,
//! compiles, lints and tests the rulebook ([`policy::load`]), then swaps the
//! new policy in with one store; requests in flight keep the snapshot they
//! started with. A rulebook that fails stays out: the current one is kept,
//! and the errors are logged, counted and kept for `/status`.
//!
//! Triggers: [`Reloader::request`] (SIGHUP), [`Reloader::reload`] (`POST
//! /reload`, which waits for the result), and changes to the rulebook or any
//! file it names, watched with `notify` through their folders — so that a
//! file replaced by rename (editors, geoipupdate) and a Kubernetes
//! ConfigMap's `..data` symlink swap are seen too. A burst of changes makes
//! one reload, started at most [`DEBOUNCE_MAX`] after its first event.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime};

use crate::gateway::Shared;
use crate::metrics::{Counters, Metrics};
use crate::policy::{self, Policy};

mod watch;

use watch::Watch;

/// A file change waits this long for more before its reload starts...
pub const DEBOUNCE_QUIET: Duration = Duration::from_millis(100);
/// ...but never longer than this after the first change of a burst.
pub const DEBOUNCE_MAX: Duration = Duration::from_millis(250);
/// How often policies swapped out are checked for requests still holding them.
const RETIRED_SWEEP: Duration = Duration::from_millis(500);
/// Reloads kept for the dashboard's history.
const HISTORY: usize = 20;

/// The one live snapshot: a policy and the metric cells resolved for it,
/// stored together so that a request never counts under another policy's
/// labels.
#[derive(Debug)]
pub struct Live {
    /// The policy in force.
    pub policy: Policy,
    /// Its request counters.
    pub counters: Counters,
}

impl Live {
    /// A policy and its counters (resolving them takes the metrics' lock:
    /// build this off the request path).
    pub fn new(policy: Policy, metrics: &Metrics) -> Live {
        let counters = metrics.counters_for(&policy);
        Live { policy, counters }
    }
}

/// What asked for a reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// The load at start-up.
    Start,
    /// SIGHUP.
    Signal,
    /// `POST /reload`.
    Api,
    /// A watched file changed.
    Files,
}

impl Trigger {
    /// The name logged and shown.
    pub const fn as_str(self) -> &'static str {
        match self {
            Trigger::Start => "start",
            Trigger::Signal => "signal",
            Trigger::Api => "api",
            Trigger::Files => "files",
        }
    }
}

/// How one load ended.
#[derive(Debug, Clone)]
pub struct LastReload {
    /// Whether the new rulebook is in force.
    pub ok: bool,
    /// When the load ended.
    pub at: SystemTime,
    /// Each error as `PATH:LINE:COLUMN: message`; empty when `ok`.
    pub errors: Vec<String>,
    /// What asked for it.
    pub trigger: Trigger,
    /// SHA-256 of the rulebook loaded, when `ok`.
    pub sha256: Option<String>,
    /// Restart-only keys whose new values are not in force (SPEC 9).
    pub needs_restart: Vec<&'static str>,
    /// How long reading, compiling and testing took.
    pub duration: Duration,
}

impl LastReload {
    /// The `last_reload` object of `/status` and `POST /reload`:
    /// `{ "result": "ok" | "error", "at": RFC 3339, "errors": [...] }`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "result": if self.ok { "ok" } else { "error" },
            "at": rfc3339(self.at),
            "errors": self.errors,
        })
    }
}

/// A time as RFC 3339 in UTC, with milliseconds.
pub fn rfc3339(at: SystemTime) -> String {
    humantime::format_rfc3339_millis(at).to_string()
}

/// Why the reload thread could not start.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// `start` was called twice.
    #[error("the reload thread is already started")]
    AlreadyStarted,
    /// The thread could not be spawned.
    #[error("cannot start the reload thread: {0}")]
    Thread(std::io::Error),
}

enum Msg {
    Now {
        trigger: Trigger,
        reply: Option<tokio::sync::oneshot::Sender<LastReload>>,
    },
    Changed(notify::Result<notify::Event>),
    Stop,
}

/// The handle to the reload thread; cheap to clone.
#[derive(Debug, Clone)]
pub struct Reloader {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    path: PathBuf,
    metrics: Arc<Metrics>,
    tx: Sender<Msg>,
    rx: Mutex<Option<Receiver<Msg>>>,
    history: Mutex<VecDeque<LastReload>>,
}

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Msg")
    }
}

impl Reloader {
    /// A reloader of the rulebook at `path`, whose first load gave `policy`
    /// (recorded as the first entry of the history). Nothing runs until
    /// [`Reloader::start`].
    pub fn new(path: &Path, policy: &Policy, metrics: Arc<Metrics>) -> Reloader {
        metrics.set_loaded_at(policy.source.loaded_at);
        let first = LastReload {
            ok: true,
            at: policy.source.loaded_at,
            errors: Vec::new(),
            trigger: Trigger::Start,
            sha256: Some(policy.source.sha256.clone()),
            needs_restart: Vec::new(),
            duration: Duration::ZERO,
        };
        let (tx, rx) = channel();
        Reloader {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
                metrics,
                tx,
                rx: Mutex::new(Some(rx)),
                history: Mutex::new(VecDeque::from([first])),
            }),
        }
    }

    /// Starts the reload thread for `shared` (held weakly: the thread ends
    /// with it, or on [`Reloader::stop`]), watching the rulebook's files
    /// when `watch`. Watcher errors are logged, never fatal.
    pub fn start(&self, shared: &Arc<Shared>, watch: bool) -> Result<(), ReloadError> {
        let rx = lock(&self.inner.rx)
            .take()
            .ok_or(ReloadError::AlreadyStarted)?;
        let live = shared.live.load_full();
        let policy = &live.policy;
        let mut worker = Worker {
            inner: Arc::clone(&self.inner),
            shared: Arc::downgrade(shared),
            restart: RestartKeys::of(policy),
            watch: Watch::default(),
            retired: Vec::new(),
        };
        // Watching starts before `start` returns: a change made right after
        // is seen.
        if watch {
            let tx = self.inner.tx.clone();
            match notify::recommended_watcher(move |event| {
                let _ = tx.send(Msg::Changed(event));
            }) {
                Ok(watcher) => worker.watch.watcher = Some(watcher),
                Err(e) => tracing::error!(
                    error = %e,
                    "cannot watch the rulebook's files: reload with SIGHUP or POST /reload"
                ),
            }
            worker.watch.update(&policy.source.files);
        }
        std::thread::Builder::new()
            .name("reload".into())
            .spawn(move || worker.run(rx))
            .map_err(ReloadError::Thread)?;
        Ok(())
    }

    /// Asks for a reload without waiting (SIGHUP).
    pub fn request(&self, trigger: Trigger) {
        let _ = self.inner.tx.send(Msg::Now {
            trigger,
            reply: None,
        });
    }

    /// Reloads now and returns how it went; `None` when the reload thread
    /// is not running (not started yet, or stopped).
    pub async fn reload(&self, trigger: Trigger) -> Option<LastReload> {
        if lock(&self.inner.rx).is_some() {
            return None;
        }
        let (reply, result) = tokio::sync::oneshot::channel();
        self.inner
            .tx
            .send(Msg::Now {
                trigger,
                reply: Some(reply),
            })
            .ok()?;
        result.await.ok()
    }

    /// Stops the reload thread and its watcher.
    pub fn stop(&self) {
        let _ = self.inner.tx.send(Msg::Stop);
    }

    /// The rulebook's path.
    pub fn config_path(&self) -> &Path {
        &self.inner.path
    }

    /// How the latest load ended (the start-up load until a reload).
    pub fn last(&self) -> LastReload {
        let history = lock(&self.inner.history);
        history
            .back()
            .cloned()
            .expect("the history holds the first load")
    }

    /// The latest loads, oldest first (at most 20).
    pub fn history(&self) -> Vec<LastReload> {
        lock(&self.inner.history).iter().cloned().collect()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The values of the restart-only keys the gateway started with.
#[derive(Debug, PartialEq, Eq)]
struct RestartKeys {
    listen: Vec<SocketAddr>,
    tls_listen: Option<Vec<SocketAddr>>,
    admin: Option<SocketAddr>,
    proxy_protocol: bool,
}

impl RestartKeys {
    fn of(policy: &Policy) -> RestartKeys {
        RestartKeys {
            listen: policy.settings.listen.clone(),
            tls_listen: policy.settings.tls.as_ref().map(|t| t.listen.clone()),
            admin: policy.settings.admin,
            proxy_protocol: policy.client_ip.proxy_protocol,
        }
    }

    /// The keys whose values in `new` differ from the running ones.
    fn changed(&self, new: &Policy) -> Vec<&'static str> {
        let new = RestartKeys::of(new);
        let mut keys = Vec::new();
        if new.listen != self.listen {
            keys.push("server.listen");
        }
        if new.tls_listen != self.tls_listen {
            keys.push("server.tls.listen");
        }
        if new.admin != self.admin {
            keys.push("server.admin");
        }
        if new.proxy_protocol != self.proxy_protocol {
            keys.push("client_ip.proxy_protocol");
        }
        keys
    }

    /// Puts the running values of the restart-only keys into `new`: they stay
    /// in force until a restart (SPEC 9), and what requests read and
    /// `/status` shows is what runs. A TLS listener keeps serving: with the
    /// new certificate when `[server.tls]` is still there, else the running one.
    fn keep_running(&self, new: &mut Policy, running: &Policy) {
        new.settings.listen.clone_from(&self.listen);
        new.settings.admin = self.admin;
        new.client_ip.proxy_protocol = self.proxy_protocol;
        match (&mut new.settings.tls, &self.tls_listen) {
            (Some(tls), Some(listen)) => tls.listen.clone_from(listen),
            (tls @ Some(_), None) => *tls = None,
            (tls @ None, Some(_)) => tls.clone_from(&running.settings.tls),
            (None, None) => {}
        }
    }
}

struct Worker {
    inner: Arc<Inner>,
    shared: Weak<Shared>,
    restart: RestartKeys,
    watch: Watch,
    /// Policies swapped out, until the requests holding them are done.
    retired: Vec<Arc<Live>>,
}

impl Worker {
    fn run(mut self, rx: Receiver<Msg>) {
        // The first and the latest change of a burst not yet reloaded.
        let mut burst: Option<(Instant, Instant)> = None;
        loop {
            let due = burst.map(|(first, last)| (last + DEBOUNCE_QUIET).min(first + DEBOUNCE_MAX));
            let sweep = (!self.retired.is_empty()).then(|| Instant::now() + RETIRED_SWEEP);
            let msg = match due.into_iter().chain(sweep).min() {
                None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
                Some(at) => rx.recv_timeout(at.saturating_duration_since(Instant::now())),
            };
            match msg {
                Err(RecvTimeoutError::Disconnected) | Ok(Msg::Stop) => break,
                Err(RecvTimeoutError::Timeout) => {
                    self.retired.retain(|p| Arc::strong_count(p) > 1);
                    if due.is_some_and(|at| at <= Instant::now()) {
                        burst = None;
                        if self.reload(Trigger::Files).is_none() {
                            break;
                        }
                    }
                }
                Ok(Msg::Now { trigger, reply }) => {
                    burst = None;
                    let Some(done) = self.reload(trigger) else {
                        break;
                    };
                    if let Some(reply) = reply {
                        let _ = reply.send(done);
                    }
                }
                Ok(Msg::Changed(Ok(event))) => {
                    if self.watch.is_relevant(&event) {
                        tracing::debug!(paths = ?event.paths, kind = ?event.kind, "rulebook file changed");
                        let now = Instant::now();
                        burst = Some((burst.map_or(now, |(first, _)| first), now));
                    }
                }
                Ok(Msg::Changed(Err(e))) => {
                    tracing::warn!(error = %e, paths = ?e.paths, "file watcher error");
                }
            }
        }
        tracing::debug!("reload thread stopped");
    }

    /// One load, swapped in when it succeeds; `None` when the gateway is gone.
    fn reload(&mut self, trigger: Trigger) -> Option<LastReload> {
        let shared = self.shared.upgrade()?;
        let path = &self.inner.path;
        let start = Instant::now();
        let loaded = policy::load(path);
        let duration = start.elapsed();
        let done = match loaded {
            Ok(loaded) => {
                for w in &loaded.warnings {
                    tracing::warn!(location = %w.location, "{}", w.message);
                }
                let mut policy = loaded.policy;
                let needs_restart = self.restart.changed(&policy);
                self.restart
                    .keep_running(&mut policy, &shared.live.load().policy);
                let max_connections = policy.settings.limits.max_connections;
                let sha256 = policy.source.sha256.clone();
                let files = policy.source.files.clone();
                let summary = (
                    policy.rules.len(),
                    policy.routes.all().len(),
                    policy.cidr_count(),
                );
                self.inner.metrics.set_loaded_at(policy.source.loaded_at);
                // The one store. Requests that loaded the previous snapshot
                // finish under it; this thread drops it once they are done, so
                // that freeing a large policy never falls on a request.
                let live = Live::new(policy, &self.inner.metrics);
                let previous = shared.live.swap(Arc::new(live));
                shared.connections.set(max_connections);
                self.retired.push(previous);
                self.retired.retain(|p| Arc::strong_count(p) > 1);
                let (rules, routes, cidrs) = summary;
                tracing::info!(
                    config = %path.display(),
                    trigger = trigger.as_str(),
                    sha256 = %sha256,
                    rules,
                    routes,
                    cidrs,
                    duration_ms = duration.as_secs_f64() * 1000.0,
                    "rulebook reloaded"
                );
                if !needs_restart.is_empty() {
                    tracing::warn!(
                        config = %path.display(),
                        keys = %needs_restart.join(", "),
                        "changed keys need a restart: their running values stay in force"
                    );
                }
                self.inner.metrics.reloaded(true);
                self.watch.update(&files);
                LastReload {
                    ok: true,
                    at: SystemTime::now(),
                    errors: Vec::new(),
                    trigger,
                    sha256: Some(sha256),
                    needs_restart,
                    duration,
                }
            }
            Err(errors) => {
                let errors: Vec<String> = errors.0.iter().map(ToString::to_string).collect();
                self.inner.metrics.reloaded(false);
                tracing::error!(
                    config = %path.display(),
                    trigger = trigger.as_str(),
                    errors = %serde_json::Value::from(errors.clone()),
                    error_count = errors.len(),
                    "rulebook not reloaded: the current one stays in force"
                );
                LastReload {
                    ok: false,
                    at: SystemTime::now(),
                    errors,
                    trigger,
                    sha256: None,
                    needs_restart: Vec::new(),
                    duration,
                }
            }
        };
        let mut history = lock(&self.inner.history);
        if history.len() == HISTORY {
            history.pop_front();
        }
        history.push_back(done.clone());
        Some(done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_restart_keys_that_changed_are_reported() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("r.toml");
        let load = |text: &str| {
            std::fs::write(&path, text).expect("write");
            policy::load(&path).expect("loads").policy
        };
        let running = RestartKeys::of(&load("[server]\nlisten = [\"127.0.0.1:8080\"]\n"));
        let same = load("[server]\nlisten = [\"127.0.0.1:8080\"]\ndefault_action = \"deny\"\n");
        assert!(running.changed(&same).is_empty());
        let moved = load(
            "[server]\nlisten = [\"127.0.0.1:8081\"]\nadmin = \"off\"\n[client_ip]\nproxy_protocol = true\n",
        );
        assert_eq!(
            running.changed(&moved),
            ["server.listen", "server.admin", "client_ip.proxy_protocol"]
        );
    }
}
