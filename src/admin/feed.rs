//! The refusal feed behind the dashboard: the gateway hands each refusal to
//! [`Feed::refused`], which never waits, never locks and never allocates (a
//! bounded channel's `try_send` of a fixed-size event; what does not fit is
//! counted as dropped). A thread of its own aggregates the events into
//! per-minute counts by reason, rule and country over the last hour, and
//! keeps the last [`RECENT`] refusals. Only that thread and the admin
//! listener take the aggregate's lock.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use fnv::FnvHashMap;

use crate::decision::Reason;
use crate::geo::Country;
use crate::queue::{BoundedReceiver, BoundedSender, Empty, bounded};

/// Refusals shown in the dashboard's list.
pub const RECENT: usize = 50;
/// Minutes of per-minute counts kept.
pub const MINUTES: usize = 60;
/// Events waiting for the aggregator before new ones are dropped (about 270
/// bytes each; the queue holds only what waits).
const CHANNEL_EVENTS: usize = 4096;
/// How often the aggregator drains the channel while refusals are few.
const DRAIN_EVERY: std::time::Duration = std::time::Duration::from_millis(25);
/// How often it drains while refusals come fast: up to 2M a second fit.
const DRAIN_BUSY: std::time::Duration = std::time::Duration::from_millis(2);
/// A drain every [`DRAIN_EVERY`] that finds this many (10k refusals a
/// second) starts the busy pace: the events waiting then stay within the
/// room the queue keeps (70 KB), instead of the 25 ms batches of a fast
/// stream growing it to hundreds of KB and evicting the gateway's caches.
const BUSY_FROM: usize = 256;
/// A busy drain that finds fewer than this (5k a second) ends the busy pace.
const BUSY_UNTIL: usize = 10;

/// Text kept inline, cut at `N` bytes (on a character boundary).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Inline<const N: usize> {
    bytes: [u8; N],
    len: usize,
    cut: bool,
}

impl<const N: usize> Inline<N> {
    /// The first `N` bytes of `s`, at most.
    pub fn new(s: &str) -> Inline<N> {
        let mut len = s.len().min(N);
        while !s.is_char_boundary(len) {
            len -= 1;
        }
        let mut bytes = [0; N];
        bytes[..len].copy_from_slice(&s.as_bytes()[..len]);
        Inline {
            bytes,
            len,
            cut: len < s.len(),
        }
    }

    /// The text kept.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..self.len]).expect("cut on a character boundary")
    }

    /// Whether the text was longer than `N` bytes.
    pub fn is_cut(&self) -> bool {
        self.cut
    }
}

impl<const N: usize> std::fmt::Debug for Inline<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

/// One refused request, as the dashboard shows it.
#[derive(Debug, Clone)]
pub struct RefusalEvent {
    /// When it arrived.
    pub at: SystemTime,
    /// The client address (after the trusted-proxy walk).
    pub client_ip: IpAddr,
    /// The method.
    pub method: Inline<16>,
    /// The path as logged (canonical once known), cut at 160 bytes.
    pub path: Inline<160>,
    /// Why.
    pub reason: Reason,
    /// The status sent.
    pub status: u16,
    /// The rule's name, `(default)` for `default_deny`, `None` when no rule refused.
    pub rule: Option<Arc<str>>,
    /// The client's country, when looked up.
    pub country: Option<Country>,
}

impl RefusalEvent {
    /// An event; `path` and `method` are copied inline, `rule` is shared.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        at: SystemTime,
        client_ip: IpAddr,
        method: &str,
        path: &str,
        reason: Reason,
        status: u16,
        rule: Option<Arc<str>>,
        country: Option<Country>,
    ) -> RefusalEvent {
        RefusalEvent {
            at,
            client_ip,
            method: Inline::new(method),
            path: Inline::new(path),
            reason,
            status,
            rule,
            country,
        }
    }
}

/// The sending side of the feed and the aggregate it fills; cheap to clone.
#[derive(Debug, Clone)]
pub struct Feed {
    /// `None` for a feed that is off.
    tx: Option<BoundedSender<RefusalEvent>>,
    board: Arc<Board>,
}

#[derive(Debug, Default)]
struct Board {
    state: Mutex<State>,
    dropped: AtomicU64,
}

#[derive(Debug, Default)]
struct State {
    /// Oldest first; each minute since the Unix epoch at most once.
    minutes: VecDeque<Minute>,
    /// Newest last.
    recent: VecDeque<RefusalEvent>,
    total: u64,
}

#[derive(Debug)]
struct Minute {
    minute: u64,
    by_reason: [u32; Reason::ALL.len()],
    // FNV: a handful of short keys, hashed once per refusal.
    by_rule: FnvHashMap<Option<Arc<str>>, u32>,
    by_country: FnvHashMap<Option<Country>, u32>,
}

impl Feed {
    /// A feed and its aggregator thread (which ends when the last clone of
    /// the feed is dropped).
    pub fn new() -> Feed {
        let (tx, rx) = bounded(CHANNEL_EVENTS);
        let board = Arc::new(Board::default());
        let aggregated = Arc::clone(&board);
        if let Err(e) = std::thread::Builder::new()
            .name("refusal-feed".into())
            .spawn(move || aggregate(rx, &aggregated))
        {
            tracing::error!(error = %e, "cannot start the refusal feed: the dashboard stays empty");
        }
        Feed {
            tx: Some(tx),
            board,
        }
    }

    /// A feed that takes nothing and has no thread: for a gateway without an
    /// admin listener, whose dashboard nobody can read (`server.admin` is
    /// restart-only, so it cannot come on later).
    pub fn off() -> Feed {
        Feed {
            tx: None,
            board: Arc::default(),
        }
    }

    /// Whether refusals are taken: when not, the gateway does not make the
    /// events at all.
    pub fn is_on(&self) -> bool {
        self.tx.is_some()
    }

    /// Hands a refusal to the aggregator; never waits. When the aggregator
    /// is behind, the event is dropped and counted.
    pub fn refused(&self, event: RefusalEvent) {
        if let Some(tx) = &self.tx
            && tx.try_send(event).is_err()
        {
            self.board.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Events dropped because the aggregator could not keep up.
    pub fn dropped(&self) -> u64 {
        self.board.dropped.load(Ordering::Relaxed)
    }

    /// The aggregate as of `now`.
    pub fn snapshot(&self, now: SystemTime) -> Snapshot {
        let state = self.board.state.lock().unwrap_or_else(|p| p.into_inner());
        let last = minute_of(now);
        let first = last + 1 - MINUTES as u64;
        let mut snapshot = Snapshot {
            first_minute: first,
            total: state.total,
            dropped: self.dropped(),
            ..Snapshot::default()
        };
        let mut reasons: HashMap<Reason, Series> = HashMap::new();
        let mut rules: HashMap<Option<Arc<str>>, Series> = HashMap::new();
        let mut countries: HashMap<Option<Country>, Series> = HashMap::new();
        for m in state
            .minutes
            .iter()
            .filter(|m| (first..=last).contains(&m.minute))
        {
            let i = (m.minute - first) as usize;
            for (reason, n) in Reason::ALL.iter().zip(m.by_reason) {
                if n > 0 {
                    reasons.entry(*reason).or_default().add(i, n);
                }
            }
            for (rule, n) in &m.by_rule {
                rules.entry(rule.clone()).or_default().add(i, *n);
            }
            for (country, n) in &m.by_country {
                countries.entry(*country).or_default().add(i, *n);
            }
            let total: u32 = m.by_reason.iter().sum();
            snapshot.per_minute[i] = total;
        }
        snapshot.by_reason = sorted(reasons);
        snapshot.by_rule = sorted(rules);
        snapshot.by_country = sorted(countries);
        snapshot.recent = state.recent.iter().rev().cloned().collect();
        snapshot
    }
}

impl Default for Feed {
    fn default() -> Feed {
        Feed::new()
    }
}

/// Most first; ties by key.
fn sorted<K: Ord>(map: HashMap<K, Series>) -> Vec<(K, Series)> {
    let mut v: Vec<(K, Series)> = map.into_iter().collect();
    v.sort_by(|a, b| b.1.total.cmp(&a.1.total).then_with(|| a.0.cmp(&b.0)));
    v
}

fn minute_of(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs() / 60
}

/// Drains the channel every [`DRAIN_EVERY`], or every [`DRAIN_BUSY`] while
/// refusals come fast (see [`is_busy`]). The aggregator never waits on
/// the channel itself: a receiver blocked in `recv` makes every send wake it
/// (a system call and a context switch per refused request); a sleeping one
/// costs senders nothing.
fn aggregate(mut rx: BoundedReceiver<RefusalEvent>, board: &Board) {
    let mut busy = false;
    loop {
        std::thread::sleep(pause(busy));
        let mut state = board.state.lock().unwrap_or_else(|p| p.into_inner());
        let mut drained = 0;
        loop {
            match rx.try_recv() {
                Ok(event) => {
                    state.add(event);
                    drained += 1;
                }
                Err(Empty::Now) => break,
                Err(Empty::ForGood) => return,
            }
        }
        busy = is_busy(busy, drained);
    }
}

/// The wait before the next drain.
fn pause(busy: bool) -> std::time::Duration {
    if busy { DRAIN_BUSY } else { DRAIN_EVERY }
}

/// Whether the next drain comes at the busy pace, after one (busy or not)
/// that found `drained` events.
fn is_busy(busy: bool, drained: usize) -> bool {
    drained >= if busy { BUSY_UNTIL } else { BUSY_FROM }
}

impl State {
    fn add(&mut self, event: RefusalEvent) {
        let minute = minute_of(event.at);
        self.total += 1;
        // Events arrive about in time order; one older than the hour kept
        // is counted in the total only.
        let newest = self.minutes.back().map_or(minute, |m| m.minute);
        if minute + (MINUTES as u64) <= newest {
            self.keep_recent(event);
            return;
        }
        // Searched from the newest minute, where nearly every event goes.
        let slot = match self.minutes.iter().rposition(|m| m.minute == minute) {
            Some(i) => i,
            None => {
                let at = self.minutes.partition_point(|m| m.minute < minute);
                self.minutes.insert(
                    at,
                    Minute {
                        minute,
                        by_reason: [0; Reason::ALL.len()],
                        by_rule: FnvHashMap::default(),
                        by_country: FnvHashMap::default(),
                    },
                );
                at
            }
        };
        let m = &mut self.minutes[slot];
        m.by_reason[event.reason as usize] += 1;
        match m.by_rule.get_mut(&event.rule) {
            Some(n) => *n += 1,
            None => {
                m.by_rule.insert(event.rule.clone(), 1);
            }
        }
        *m.by_country.entry(event.country).or_default() += 1;
        let newest = newest.max(minute);
        while self
            .minutes
            .front()
            .is_some_and(|m| m.minute + (MINUTES as u64) <= newest)
        {
            self.minutes.pop_front();
        }
        self.keep_recent(event);
    }

    fn keep_recent(&mut self, event: RefusalEvent) {
        if self.recent.len() == RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back(event);
    }
}

/// Counts per minute over the last hour.
#[derive(Debug, Clone)]
pub struct Series {
    /// Oldest minute first.
    pub per_minute: [u32; MINUTES],
    /// Their sum.
    pub total: u64,
}

impl Default for Series {
    fn default() -> Series {
        Series {
            per_minute: [0; MINUTES],
            total: 0,
        }
    }
}

impl Series {
    fn add(&mut self, minute: usize, n: u32) {
        self.per_minute[minute] += n;
        self.total += u64::from(n);
    }
}

/// What the dashboard shows of the feed.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The first minute of the series, in minutes since the Unix epoch.
    pub first_minute: u64,
    /// All refusals per minute.
    pub per_minute: [u32; MINUTES],
    /// By reason, most first.
    pub by_reason: Vec<(Reason, Series)>,
    /// By rule (`None`: no rule refused), most first.
    pub by_rule: Vec<(Option<Arc<str>>, Series)>,
    /// By country (`None`: not looked up), most first.
    pub by_country: Vec<(Option<Country>, Series)>,
    /// The latest refusals, newest first.
    pub recent: Vec<RefusalEvent>,
    /// Refusals since start (including minutes no longer shown).
    pub total: u64,
    /// Events dropped because the aggregator could not keep up.
    pub dropped: u64,
}

impl Default for Snapshot {
    fn default() -> Snapshot {
        Snapshot {
            first_minute: 0,
            per_minute: [0; MINUTES],
            by_reason: Vec::new(),
            by_rule: Vec::new(),
            by_country: Vec::new(),
            recent: Vec::new(),
            total: 0,
            dropped: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn event(at: SystemTime, reason: Reason, rule: Option<&str>, cc: &str) -> RefusalEvent {
        RefusalEvent::new(
            at,
            "192.0.2.1".parse().expect("ip"),
            "GET",
            "/x",
            reason,
            403,
            rule.map(Arc::from),
            Country::parse(cc),
        )
    }

    fn wait_for(feed: &Feed, now: SystemTime, total: u64) -> Snapshot {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let s = feed.snapshot(now);
            if s.total >= total || Instant::now() > deadline {
                return s;
            }
            std::thread::yield_now();
        }
    }

    #[test]
    fn a_feed_that_is_off_takes_nothing() {
        let feed = Feed::off();
        assert!(!feed.is_on());
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        feed.refused(event(now, Reason::IpDenied, Some("r"), "FR"));
        let s = feed.snapshot(now);
        assert_eq!((s.total, s.dropped, s.recent.len()), (0, 0, 0));
        assert!(Feed::new().is_on());
    }

    #[test]
    fn refusals_are_counted_per_minute_by_reason_rule_and_country() {
        let feed = Feed::new();
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let minute = Duration::from_secs(60);
        feed.refused(event(
            now - minute * 90,
            Reason::IpDenied,
            Some("old"),
            "FR",
        ));
        feed.refused(event(
            now - minute * 2,
            Reason::IpDenied,
            Some("block"),
            "CN",
        ));
        feed.refused(event(now, Reason::IpDenied, Some("block"), "CN"));
        feed.refused(event(now, Reason::PathDenied, Some("dotfiles"), "XX"));
        feed.refused(event(now, Reason::BadRequest, None, "XX"));
        let s = wait_for(&feed, now, 5);
        assert_eq!(s.total, 5);
        assert_eq!(s.per_minute[MINUTES - 1], 3);
        assert_eq!(s.per_minute[MINUTES - 3], 1);
        assert_eq!(
            s.per_minute.iter().sum::<u32>(),
            4,
            "the 90-minute-old one is out"
        );
        assert_eq!(s.by_reason[0].0, Reason::IpDenied);
        assert_eq!(s.by_reason[0].1.total, 2);
        assert_eq!(s.by_rule[0].0.as_deref(), Some("block"));
        assert_eq!(s.by_country[0].0, Country::parse("CN"));
        assert_eq!(s.recent.len(), 5);
        assert_eq!(s.recent[0].reason, Reason::BadRequest, "newest first");
    }

    #[test]
    fn only_the_last_fifty_refusals_are_kept() {
        let feed = Feed::new();
        let now = SystemTime::now();
        for i in 0..RECENT + 10 {
            let mut e = event(now, Reason::PathDenied, None, "XX");
            e.path = Inline::new(&format!("/{i}"));
            feed.refused(e);
        }
        let s = wait_for(&feed, now, (RECENT + 10) as u64);
        assert_eq!(s.recent.len(), RECENT);
        assert_eq!(s.recent[0].path.as_str(), format!("/{}", RECENT + 9));
    }

    #[test]
    fn the_busy_pace_starts_at_ten_thousand_a_second_and_ends_below_five() {
        let per_second = |drained: usize, busy: bool| drained as f64 / pause(busy).as_secs_f64();
        assert!(!is_busy(false, BUSY_FROM - 1));
        assert!(is_busy(false, BUSY_FROM));
        assert_eq!(per_second(BUSY_FROM, false).round(), 10_240.0);
        // Once busy, a stream as fast keeps it so: 20 events per 2 ms.
        assert!(is_busy(true, 20));
        assert!(is_busy(true, BUSY_UNTIL));
        assert!(!is_busy(true, BUSY_UNTIL - 1));
        assert_eq!(per_second(BUSY_UNTIL, true).round(), 5_000.0);
        // The busy pace keeps a stream of 100k a second within the room
        // the queue keeps.
        assert!(100_000.0 * DRAIN_BUSY.as_secs_f64() < BUSY_FROM as f64);
    }

    #[test]
    fn a_flood_is_counted_or_dropped_never_lost() {
        let feed = Feed::new();
        let now = SystemTime::now();
        let sent = (CHANNEL_EVENTS * 3) as u64;
        for _ in 0..sent {
            feed.refused(event(now, Reason::IpDenied, None, "XX"));
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        let s = loop {
            let s = feed.snapshot(now);
            if s.total + s.dropped >= sent || Instant::now() > deadline {
                break s;
            }
            std::thread::yield_now();
        };
        assert_eq!(
            s.total + s.dropped,
            sent,
            "{} counted, {} dropped",
            s.total,
            s.dropped
        );
        assert!(
            s.total >= CHANNEL_EVENTS as u64,
            "a full channel's worth is counted"
        );
    }

    #[test]
    fn long_paths_are_cut_on_a_character_boundary() {
        let long = "é".repeat(100);
        let cut = Inline::<160>::new(&long);
        assert_eq!(cut.as_str().len(), 160);
        assert!(cut.is_cut());
        let odd = Inline::<5>::new("abcé");
        assert_eq!((odd.as_str(), odd.is_cut()), ("abcé", false));
        let odd = Inline::<4>::new("abcé");
        assert_eq!((odd.as_str(), odd.is_cut()), ("abc", true));
    }
}
