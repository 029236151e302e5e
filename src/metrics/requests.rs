//! `edgeguard_requests_total`: the label sets a policy can produce, resolved
//! at load into a [`Counters`] table, and the collector that encodes them.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, NoLabelSet};
use prometheus_client::metrics::MetricType;

use super::AtomicHistogram;
use crate::config::Action;
use crate::decision::{DryRunHit, Outcome, Reason, Refusal, RuleId};
use crate::policy::Policy;

/// The `rule` label of what `default_action` decided (SPEC 3).
const DEFAULT_RULE: &str = "(default)";

/// Reasons that no rule gives: framing, routes, files, limits and upstreams.
/// Their series carry `rule=""`.
const PLAIN_REASONS: [Reason; 10] = [
    Reason::BadRequest,
    Reason::MethodNotAllowed,
    Reason::NotFound,
    Reason::DirectoryListingDisabled,
    Reason::FileNotReadable,
    Reason::OutsideRoot,
    Reason::BodyTooLarge,
    Reason::HeadersTooLarge,
    Reason::UpstreamUnreachable,
    Reason::UpstreamTimeout,
];

type Cell = Arc<AtomicU64>;

/// The request counters of one policy: a table of cells resolved at load,
/// so that recording is a few array lookups and atomic adds.
#[derive(Debug)]
pub struct Counters {
    /// Per rule, by `RuleId`.
    rules: Box<[RuleCells]>,
    default_allow: Cell,
    default_deny: Cell,
    /// `rule=""`, by `Reason as usize`.
    plain: Box<[Cell]>,
    pub(super) duration: AtomicHistogram,
}

#[derive(Debug, Default)]
struct RuleCells {
    allow: Option<Cell>,
    refuse: Box<[(Reason, Cell)]>,
    dry_run: Box<[(Reason, Cell)]>,
}

impl Counters {
    /// Records one request: one `dry_run="false"` sample for what was done,
    /// one `dry_run="true"` sample for each dry-run rule that would have
    /// refused it, and its duration. A refusal with an upstream reason is
    /// `decision="error"`. No lock, no allocation.
    pub fn record(&self, outcome: &Outcome, dry_run_hits: &[DryRunHit], elapsed: Duration) {
        match outcome {
            Outcome::Allow { rule } => self.record_allowed(*rule, dry_run_hits, elapsed),
            Outcome::Refuse(refusal) => self.record_refused(refusal, dry_run_hits, elapsed),
        }
    }

    /// Records an allowed request (`rule`: the `allow` rule that decided,
    /// `None` for `default_action`).
    pub fn record_allowed(
        &self,
        rule: Option<RuleId>,
        dry_run_hits: &[DryRunHit],
        elapsed: Duration,
    ) {
        let cell = match rule {
            None => &self.default_allow,
            Some(id) => self
                .rules
                .get(id.0 as usize)
                .and_then(|r| r.allow.as_ref())
                .unwrap_or(&self.default_allow),
        };
        cell.fetch_add(1, Ordering::Relaxed);
        self.finish(dry_run_hits, elapsed);
    }

    /// Records a refused request: by its rule, `(default)` for
    /// `default_deny`, `rule=""` for refusals no rule made.
    pub fn record_refused(&self, refusal: &Refusal, dry_run_hits: &[DryRunHit], elapsed: Duration) {
        let plain = &self.plain[refusal.reason as usize];
        let cell = match refusal.rule {
            None if refusal.reason == Reason::DefaultDeny => &self.default_deny,
            None => plain,
            Some(id) => self
                .rules
                .get(id.0 as usize)
                .and_then(|r| find(&r.refuse, refusal.reason))
                .unwrap_or(plain),
        };
        cell.fetch_add(1, Ordering::Relaxed);
        self.finish(dry_run_hits, elapsed);
    }

    fn finish(&self, dry_run_hits: &[DryRunHit], elapsed: Duration) {
        for hit in dry_run_hits {
            if let Some(cell) = self
                .rules
                .get(hit.rule.0 as usize)
                .and_then(|r| find(&r.dry_run, hit.reason))
            {
                cell.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.duration.observe(elapsed);
    }
}

fn find(cells: &[(Reason, Cell)], reason: Reason) -> Option<&Cell> {
    cells.iter().find(|(r, _)| *r == reason).map(|(_, c)| c)
}

/// `Reason::ALL` as a static, to lend `'static` slices of it.
static REASONS: [Reason; Reason::ALL.len()] = Reason::ALL;

/// The reasons a rule can refuse with.
fn reasons_of(action: Action, reason: Reason) -> &'static [Reason] {
    const TOKEN: [Reason; 3] = [
        Reason::TokenMissing,
        Reason::TokenInvalid,
        Reason::RoleInsufficient,
    ];
    match action {
        Action::Allow => &[],
        Action::Deny => std::slice::from_ref(&REASONS[reason as usize]),
        Action::Require => &TOKEN,
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
struct RequestLabels {
    decision: &'static str,
    reason: &'static str,
    rule: Arc<str>,
    dry_run: bool,
}

/// `edgeguard_requests_total`: every label set any policy resolved. A series
/// is shown while the current policy can produce it, and afterwards as long
/// as it is not zero.
#[derive(Debug, Default)]
pub(super) struct RequestSeries {
    series: Mutex<BTreeMap<RequestLabels, (Cell, bool)>>,
}

impl RequestSeries {
    pub(super) fn counters_for(&self, policy: &Policy, duration: AtomicHistogram) -> Counters {
        let mut series = self.series.lock().unwrap_or_else(|p| p.into_inner());
        for (_, declared) in series.values_mut() {
            *declared = false;
        }
        let mut cell = |decision, reason: Option<Reason>, rule: &Arc<str>, dry_run, declare| {
            let labels = RequestLabels {
                decision,
                reason: reason.map_or("", Reason::code),
                rule: Arc::clone(rule),
                dry_run,
            };
            let entry = series.entry(labels).or_default();
            entry.1 |= declare;
            Arc::clone(&entry.0)
        };
        let refused = |reason: Reason| match reason {
            Reason::UpstreamUnreachable | Reason::UpstreamTimeout => "error",
            _ => "deny",
        };
        let mut rules = Vec::with_capacity(policy.rules.len());
        for rule in &policy.rules {
            let mut cells = Vec::new();
            for &reason in reasons_of(rule.action, rule.reason) {
                let c = cell("deny", Some(reason), &rule.name, rule.dry_run, true);
                cells.push((reason, c));
            }
            let allow = (rule.action == Action::Allow && !rule.dry_run)
                .then(|| cell("allow", None, &rule.name, false, true));
            let cells = cells.into_boxed_slice();
            rules.push(if rule.dry_run {
                RuleCells {
                    dry_run: cells,
                    ..RuleCells::default()
                }
            } else {
                RuleCells {
                    allow,
                    refuse: cells,
                    dry_run: Box::default(),
                }
            });
        }
        let default: Arc<str> = Arc::from(DEFAULT_RULE);
        let deny = policy.settings.default_action.is_deny();
        let default_allow = cell("allow", None, &default, false, !deny);
        let default_deny = cell("deny", Some(Reason::DefaultDeny), &default, false, deny);
        let none: Arc<str> = Arc::from("");
        let plain = Reason::ALL
            .iter()
            .map(|&r| {
                cell(
                    refused(r),
                    Some(r),
                    &none,
                    false,
                    PLAIN_REASONS.contains(&r),
                )
            })
            .collect();
        Counters {
            rules: rules.into_boxed_slice(),
            default_allow,
            default_deny,
            plain,
            duration,
        }
    }
}

impl Collector for RequestSeries {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let series = self.series.lock().unwrap_or_else(|p| p.into_inner());
        let mut metric = encoder.encode_descriptor(
            "edgeguard_requests",
            "Requests by decision, reason and deciding rule; dry_run=\"true\" samples count what dry-run rules would have refused",
            None,
            MetricType::Counter,
        )?;
        for (labels, (cell, declared)) in series.iter() {
            let value = cell.load(Ordering::Relaxed);
            if value == 0 && !declared {
                continue;
            }
            metric
                .encode_family(labels)?
                .encode_counter::<NoLabelSet, _, f64>(&value, None)?;
        }
        Ok(())
    }
}
