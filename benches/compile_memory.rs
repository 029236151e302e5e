//! Load time and resident memory of the decision benches' rulebook (see `support/mod.rs`)
//! with its 1M-prefix blocklist and its GeoIP database of a million networks. Not a
//! criterion bench: it prints figures.
//!
//! Each phase runs in a fresh child process (this program again), so that nothing another
//! phase allocated or freed hides in its memory:
//! - `compile`: `config::read` (the TOML and the 1M-line list file), then `Policy::compile`
//!   (the sets, regexes and GeoIP reader), then the rulebook's `[[test]]` cases, with
//!   `VmRSS` before and after each step, after dropping the rulebook (the policy alone), and
//!   `VmHWM` (the peak) at the end;
//! - `parts`: what compiling spends on the blocklist's `IpSet` and on opening the database,
//!   timed on their own, and the `check` lints, which compiling does not run;
//! - `load`: `policy::load`, which does all of it (read, compile, lint, tests), and its peak.
//!
//! Targets (issue 3, never asserted): compiling the 1M-prefix rulebook in under 2 s, and
//! under 150 MB resident holding it. Under `cargo test --benches` this runs once on a small
//! rulebook, as a smoke test.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use edgeguard::config::{self, Diagnostics, ListEntries};
use edgeguard::geo::Geo;
use edgeguard::ipset::IpSet;
use edgeguard::policy::{self, Policy};
use edgeguard::{lints, ruletest};

use support::Fixture;

/// Set in a child process: `PHASE PATH`.
const CHILD_ENV: &str = "EDGEGUARD_COMPILE_MEMORY_CHILD";
const PHASES: [&str; 3] = ["compile", "parts", "load"];

fn main() {
    if let Ok(spec) = std::env::var(CHILD_ENV) {
        let (phase, path) = spec.split_once(' ').expect("PHASE PATH");
        child(phase, Path::new(path));
        return;
    }
    let runs = if support::full_size() { 3 } else { 1 };
    let size = *support::sizes().last().expect("at least one size");
    let fixture = Fixture::build(&[size], support::geo_per_family());
    let rulebook = fixture.rulebook(size);
    let exe = std::env::current_exe().expect("the path of this program");
    let mut figures: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for _ in 0..runs {
        for phase in PHASES {
            let output = Command::new(&exe)
                .env(CHILD_ENV, format!("{phase} {}", rulebook.display()))
                .output()
                .expect("the child process runs");
            assert!(
                output.status.success(),
                "phase {phase} failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            for line in String::from_utf8_lossy(&output.stdout).lines() {
                let (key, value) = line.split_once(' ').expect("KEY VALUE");
                let value: f64 = value.parse().expect("a number");
                figures.entry(key.to_owned()).or_default().push(value);
            }
        }
    }
    report(size, runs, &figures);
}

/// Prints the median of each figure over the runs, with the smallest and largest.
fn report(size: usize, runs: usize, figures: &BTreeMap<String, Vec<f64>>) {
    println!("rulebook with a {size}-prefix blocklist; median (min–max) of {runs} fresh processes");
    let rows: [(&str, &str, &str); 20] = [
        ("read_ms", "config::read (TOML and list file)", "ms"),
        ("compile_ms", "Policy::compile", "ms"),
        ("ipset_ms", "  of which IpSet::new of the blocklist", "ms"),
        ("geo_open_ms", "  of which Geo::open", "ms"),
        ("tests_ms", "the [[test]] cases", "ms"),
        ("lint_ms", "lints::lint (check's warnings)", "ms"),
        ("warnings", "  warnings it gave", ""),
        ("load_ms", "policy::load (read, compile, lint, tests)", "ms"),
        ("rss_start_mb", "VmRSS at start", "MB"),
        ("rss_read_mb", "VmRSS with the rulebook read", "MB"),
        ("rss_compiled_mb", "VmRSS with rulebook and policy", "MB"),
        ("rss_policy_mb", "VmRSS with the policy alone", "MB"),
        (
            "policy_growth_mb",
            "  growth from start: the policy's cost",
            "MB",
        ),
        ("hwm_compile_mb", "VmHWM (peak) reading and compiling", "MB"),
        ("hwm_load_mb", "VmHWM (peak) of policy::load", "MB"),
        ("rss_load_mb", "VmRSS after policy::load", "MB"),
        ("set_heap_mb", "blocklist IpSet heap (its own count)", "MB"),
        ("intervals", "  merged intervals in it", ""),
        ("geo_file_mb", "GeoIP database file (held in memory)", "MB"),
        ("geo_rss_mb", "  VmRSS growth opening it alone", "MB"),
    ];
    for (key, text, unit) in rows {
        let Some(values) = figures.get(key) else {
            continue;
        };
        let mut sorted = values.clone();
        sorted.sort_by(f64::total_cmp);
        let median = sorted[sorted.len() / 2];
        let (min, max) = (sorted[0], sorted[sorted.len() - 1]);
        println!("  {text:<44} {median:>10.1} {unit:<2}  ({min:.1}–{max:.1})");
    }
}

/// Resident and peak memory of this process, in MB (from `/proc/self/status`).
fn memory() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let field = |name: &str| {
        let line = status
            .lines()
            .find(|l| l.starts_with(name))
            .expect("the field is in /proc/self/status");
        let kb: f64 = line
            .split_whitespace()
            .nth(1)
            .and_then(|v| v.parse().ok())
            .expect("a number of kB");
        kb / 1024.0
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn print(key: &str, value: f64) {
    println!("{key} {value}");
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1e3
}

fn child(phase: &str, path: &Path) {
    match phase {
        "compile" => compile_phase(path),
        "parts" => parts_phase(path),
        "load" => load_phase(path),
        other => panic!("unknown phase {other}"),
    }
}

fn compile_phase(path: &Path) {
    let (start, _) = memory();
    let mut diags = Diagnostics::default();
    let t = Instant::now();
    let book = config::read(path, &mut diags).expect("the rulebook reads");
    print("read_ms", ms(t));
    print("rss_read_mb", memory().0);
    let t = Instant::now();
    let policy = Policy::compile(&book, &mut diags).expect("the rulebook compiles");
    print("compile_ms", ms(t));
    assert!(!diags.has_errors(), "{:?}", diags.errors);
    print("rss_compiled_mb", memory().0);
    drop(book);
    let (alone, _) = memory();
    print("rss_start_mb", start);
    print("rss_policy_mb", alone);
    print("policy_growth_mb", alone - start);
    let t = Instant::now();
    for test in &policy.tests {
        assert!(ruletest::run(&policy, test).passed(), "{}", test.name);
    }
    print("tests_ms", ms(t));
    let list = policy
        .lists
        .iter()
        .find(|l| l.name == "blocklist")
        .expect("the rulebook has a blocklist");
    print(
        "set_heap_mb",
        list.set.heap_bytes() as f64 / (1024.0 * 1024.0),
    );
    print("intervals", list.set.interval_count() as f64);
    print("hwm_compile_mb", memory().1);
}

fn parts_phase(path: &Path) {
    let mut diags = Diagnostics::default();
    let book = config::read(path, &mut diags).expect("the rulebook reads");
    let nets: Vec<ipnet::IpNet> = book
        .lists
        .iter()
        .filter_map(|l| match &l.entries {
            ListEntries::File { nets, .. } => Some(nets.iter().map(|(n, _)| *n)),
            ListEntries::Inline(_) => None,
        })
        .flatten()
        .collect();
    let t = Instant::now();
    let set = IpSet::new(nets);
    print("ipset_ms", ms(t));
    drop(set);
    let geo_path = path.with_file_name("geo.mmdb");
    let (before, _) = memory();
    let t = Instant::now();
    let geo = Geo::open(&geo_path).expect("the database opens");
    print("geo_open_ms", ms(t));
    print("geo_rss_mb", memory().0 - before);
    drop(geo);
    let bytes = std::fs::metadata(&geo_path).expect("geo.mmdb").len();
    print("geo_file_mb", bytes as f64 / (1024.0 * 1024.0));
    let policy = Policy::compile(&book, &mut diags).expect("the rulebook compiles");
    let warnings_before = diags.warnings.len();
    let t = Instant::now();
    lints::lint(&book, &policy, &mut diags);
    print("lint_ms", ms(t));
    print("warnings", (diags.warnings.len() - warnings_before) as f64);
}

fn load_phase(path: &Path) {
    let t = Instant::now();
    let loaded = policy::load(path).expect("the rulebook loads");
    print("load_ms", ms(t));
    let (rss, hwm) = memory();
    print("rss_load_mb", rss);
    print("hwm_load_mb", hwm);
    drop(loaded);
}
