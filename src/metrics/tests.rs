use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::*;
use crate::config::{Diagnostics, SourceFile};
use crate::decision::{Outcome, Reason, Refusal};
use crate::probe::{self, Probe};

fn policy(text: &str) -> Policy {
    let mut diags = Diagnostics::default();
    let book = crate::config::parse(SourceFile::new("r.toml", text), PathBuf::new(), &mut diags)
        .expect("parses");
    let policy = Policy::compile(&book, &mut diags);
    assert!(!diags.has_errors(), "{:?}", diags.errors);
    policy.expect("compiles")
}

// Any variable that is set will do as the secret: no token is verified here.
const RULEBOOK: &str = r#"
[auth]
hs256_secret_env = "PATH"

[[rule]]
name = "health"
action = "allow"
path_prefix = ["/healthz"]

[[rule]]
name = "dotfiles"
action = "deny"
path_regex = ['/\.']

[[rule]]
name = "embargo-trial"
action = "deny"
ip = ["203.0.113.0/24"]
dry_run = true

[[rule]]
name = "admin-needs-role"
action = "require"
path_prefix = ["/admin"]
roles = ["admin"]
"#;

/// Decides a GET of `path` from `ip` and records it.
fn decide(policy: &Policy, counters: &Counters, ip: &str, path: &str) {
    let mut probe = Probe::new(ip.parse::<IpAddr>().expect("ip"));
    probe.target = path.to_owned();
    let result = probe::run(policy, &probe);
    let d = &result.decision;
    counters.record(&d.outcome, &d.dry_run_hits, Duration::from_millis(3));
}

/// The `edgeguard_requests_total` samples, as `labels value` lines.
fn requests(metrics: &Metrics) -> Vec<String> {
    metrics
        .encode(Format::Prometheus)
        .lines()
        .filter_map(|l| l.strip_prefix("edgeguard_requests_total"))
        .map(str::to_owned)
        .collect()
}

fn sample(decision: &str, reason: &str, rule: &str, dry_run: bool, n: u64) -> String {
    format!(
        "{{decision=\"{decision}\",reason=\"{reason}\",rule=\"{rule}\",dry_run=\"{dry_run}\"}} {n}"
    )
}

#[test]
fn each_request_counts_what_was_done_and_each_dry_run_hit() {
    let metrics = Metrics::new();
    let p = policy(RULEBOOK);
    let counters = metrics.counters_for(&p);
    decide(&p, &counters, "198.51.100.1", "/healthz");
    decide(&p, &counters, "198.51.100.1", "/.env");
    decide(&p, &counters, "203.0.113.9", "/.git/config");
    decide(&p, &counters, "203.0.113.9", "/admin/users");
    decide(&p, &counters, "198.51.100.1", "/page");
    let lines = requests(&metrics);
    for expected in [
        sample("allow", "", "health", false, 1),
        sample("deny", "path_denied", "dotfiles", false, 2),
        sample("deny", "ip_denied", "embargo-trial", true, 1),
        sample("deny", "token_missing", "admin-needs-role", false, 1),
        sample("deny", "role_insufficient", "admin-needs-role", false, 0),
        sample("allow", "", "(default)", false, 1),
    ] {
        assert!(lines.contains(&expected), "{expected} not in {lines:#?}");
    }
    // A dry-run rule never counts as deciding.
    assert!(
        !lines
            .iter()
            .any(|l| l.contains("embargo-trial") && l.contains("dry_run=\"false\""))
    );
    let (count, sum) = counters.duration.count_and_sum();
    assert_eq!(count, 5);
    assert!((sum - 0.015).abs() < 1e-9, "{sum}");
}

#[test]
fn label_values_come_from_the_rulebook_never_the_request() {
    let metrics = Metrics::new();
    let p = policy(RULEBOOK);
    let counters = metrics.counters_for(&p);
    decide(&p, &counters, "198.51.100.1", "/.x\"injected=\"1");
    decide(&p, &counters, "198.51.100.1", "/%ZZ");
    let text = metrics.encode(Format::Prometheus);
    assert!(!text.contains("injected"), "{text}");
    let rules: Vec<&str> = p.rules.iter().map(|r| &*r.name).collect();
    for line in requests(&metrics) {
        let rule = line
            .split("rule=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .expect("rule label");
        assert!(
            rule.is_empty() || rule == "(default)" || rules.contains(&rule),
            "{line}"
        );
    }
    assert!(requests(&metrics).contains(&sample("deny", "bad_request", "", false, 1)));
}

#[test]
fn rule_refusals_of_other_reasons_and_upstream_errors_have_their_own_series() {
    let metrics = Metrics::new();
    let p = policy(&format!("[server]\n{}", "default_action = \"deny\"\n"));
    let counters = metrics.counters_for(&p);
    counters.record(
        &Outcome::Refuse(Refusal::of(Reason::DefaultDeny)),
        &[],
        Duration::ZERO,
    );
    counters.record_refused(&Refusal::of(Reason::UpstreamTimeout), &[], Duration::ZERO);
    let lines = requests(&metrics);
    assert!(lines.contains(&sample("deny", "default_deny", "(default)", false, 1)));
    assert!(lines.contains(&sample("error", "upstream_timeout", "", false, 1)));
    // default_action = "deny": no allow series is declared.
    assert!(
        !lines.iter().any(|l| l.contains("decision=\"allow\"")),
        "{lines:#?}"
    );
    // Rule reasons without a rule are hidden while zero.
    assert!(!lines.iter().any(|l| l.contains("ip_denied")), "{lines:#?}");
}

#[test]
fn series_keep_counting_across_reloads_and_a_removed_rule_stays_while_not_zero() {
    let metrics = Metrics::new();
    let before = policy(RULEBOOK);
    let counters = metrics.counters_for(&before);
    decide(&before, &counters, "198.51.100.1", "/.env");
    decide(&before, &counters, "198.51.100.1", "/healthz");
    let after = policy("[[rule]]\nname = \"dotfiles\"\naction = \"deny\"\npath_regex = ['/\\.']\n");
    let counters = metrics.counters_for(&after);
    decide(&after, &counters, "198.51.100.1", "/.env");
    let lines = requests(&metrics);
    assert!(lines.contains(&sample("deny", "path_denied", "dotfiles", false, 2)));
    // "health" is gone but counted once: still shown. The rules never used are not.
    assert!(lines.contains(&sample("allow", "", "health", false, 1)));
    assert!(
        !lines.iter().any(|l| l.contains("embargo-trial")),
        "{lines:#?}"
    );
    assert!(
        !lines.iter().any(|l| l.contains("admin-needs-role")),
        "{lines:#?}"
    );
}

#[test]
fn reason_discriminants_index_reason_all() {
    for (i, reason) in Reason::ALL.iter().enumerate() {
        assert_eq!(*reason as usize, i);
    }
    for (i, kind) in ConnErrorKind::ALL.iter().enumerate() {
        assert_eq!(*kind as usize, i);
    }
}

#[test]
fn reloads_connections_and_errors_are_counted() {
    let metrics = Metrics::new();
    metrics.reloaded(true);
    metrics.reloaded(false);
    metrics.reloaded(false);
    metrics.set_loaded_at(UNIX_EPOCH + Duration::from_secs(1_700_000_000));
    let a = metrics.connection_opened();
    let b = metrics.connection_opened();
    drop(a);
    metrics.connection_error(ConnErrorKind::HeaderTimeout);
    let text = metrics.encode(Format::Prometheus);
    for line in [
        "edgeguard_config_reloads_total{result=\"ok\"} 1",
        "edgeguard_config_reloads_total{result=\"error\"} 2",
        "edgeguard_config_loaded_timestamp_seconds 1700000000",
        "edgeguard_open_connections 1",
        "edgeguard_connection_errors_total{kind=\"header_timeout\"} 1",
        "edgeguard_connection_errors_total{kind=\"io\"} 0",
        "# TYPE edgeguard_request_duration_seconds histogram",
        "edgeguard_upstream_duration_seconds_count 0",
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(line)),
            "{line} not in\n{text}"
        );
    }
    drop(b);
}

#[test]
fn histogram_buckets_are_cumulative_and_count_equals_inf() {
    let metrics = Metrics::new();
    for ms in [0, 1, 3, 40, 20_000] {
        metrics.upstream_duration(Duration::from_millis(ms));
    }
    let text = metrics.encode(Format::Prometheus);
    let bucket = |le: &str| {
        let prefix = format!("edgeguard_upstream_duration_seconds_bucket{{le=\"{le}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("no bucket {le} in\n{text}"))
            .to_owned()
    };
    assert_eq!(bucket("0.0005"), "1");
    assert_eq!(bucket("0.001"), "2");
    assert_eq!(bucket("0.005"), "3");
    assert_eq!(bucket("0.05"), "4");
    assert_eq!(bucket("10"), "4");
    assert_eq!(bucket("+Inf"), "5");
    assert!(text.contains("edgeguard_upstream_duration_seconds_count 5"));
    assert!(text.contains("edgeguard_upstream_duration_seconds_sum 20.044"));
}

#[test]
fn openmetrics_is_served_when_asked_for() {
    assert_eq!(Format::negotiate(None), Format::Prometheus);
    assert_eq!(Format::negotiate(Some("*/*")), Format::Prometheus);
    let prometheus = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5";
    assert_eq!(Format::negotiate(Some(prometheus)), Format::OpenMetrics);
    let metrics = Metrics::new();
    let text = metrics.encode(Format::OpenMetrics);
    assert!(text.ends_with("# EOF\n"), "{text}");
    assert!(text.contains("# UNIT edgeguard_request_duration_seconds seconds"));
}

#[test]
fn io_errors_and_hyper_timeouts_are_classified() {
    let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
    assert_eq!(ConnErrorKind::of(&io), ConnErrorKind::Io);
    let other = std::fmt::Error;
    assert_eq!(ConnErrorKind::of(&other), ConnErrorKind::Protocol);
}
