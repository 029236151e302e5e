//! `evaluate(&Policy, &RequestFacts) -> Decision`: the rules of SPEC 3,
//! pure and synchronous, and the same evaluation with a trace for `explain`.
//!
//! The first `allow` or `deny` rule that matches decides; a matching `require`
//! rule is a gate that refuses without a valid token carrying one of its roles
//! and otherwise lets evaluation go on; `dry_run` rules are recorded, never
//! enforced; when no rule decides, `default_action` does. Work that costs more
//! than a comparison — the GeoIP lookup, parsing the Referer, verifying the
//! token — happens at most once, and only when a condition needs it.

use std::borrow::Cow;

use http::header::REFERER;

use crate::config::Action;
use crate::decision::{Decision, DryRunHit, Outcome, Reason, Refusal, RuleId};
use crate::facts::{RequestFacts, Token};
use crate::geo::Country;
use crate::host::Referer;
use crate::matcher::PathHits;
use crate::policy::{Condition, Policy, Rule};

/// What happened to one rule during an evaluation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// It matched and decided (allow or deny), or its gate refused.
    Decided,
    /// A `require` rule matched and the token carried one of its roles.
    GatePassed,
    /// It matched but is `dry_run`; `would_refuse` holds its refusal reason.
    DryRun {
        /// The reason it would have refused with, `None` for an allow or a passed gate.
        would_refuse: Option<Reason>,
    },
    /// A condition did not hold.
    NoMatch {
        /// The first condition that failed (its rulebook key).
        condition: &'static str,
        /// Why, in words.
        why: String,
    },
    /// An earlier rule decided.
    NotReached,
}

/// One entry per rule, in rule order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceEntry {
    /// The rule.
    pub rule: RuleId,
    /// What happened to it.
    pub step: Step,
}

/// Decides a request.
pub fn evaluate(policy: &Policy, facts: &RequestFacts<'_>) -> Decision {
    evaluate_inner(policy, facts, None).0
}

/// Decides a request and records what happened to every rule.
pub fn evaluate_traced(policy: &Policy, facts: &RequestFacts<'_>) -> (Decision, Vec<TraceEntry>) {
    let mut trace = Vec::with_capacity(policy.rules.len());
    let (decision, _) = evaluate_inner(policy, facts, Some(&mut trace));
    (decision, trace)
}

/// Decides a request, and returns the country it looked up or was given, for
/// logs: `None` when no country condition was reached and none was given.
pub fn evaluate_with_country(
    policy: &Policy,
    facts: &RequestFacts<'_>,
) -> (Decision, Option<Country>) {
    evaluate_inner(policy, facts, None)
}

/// Lazily computed facts, each at most once per evaluation.
struct Lazy<'f> {
    /// Which of the policy's path regexes match, per path read (the
    /// canonical one, then the upstream's reading when it differs).
    /// Keyed by the path's address and length: one evaluation reads at most
    /// two paths, both alive throughout.
    path_hits: [Option<((usize, usize), PathHits)>; 2],
    country: Option<Country>,
    referer: Option<Referer<'f>>,
    token: Option<Verified<'f>>,
}

enum Verified<'f> {
    Missing,
    Invalid,
    Roles(Cow<'f, [String]>),
}

fn evaluate_inner(
    policy: &Policy,
    facts: &RequestFacts<'_>,
    mut trace: Option<&mut Vec<TraceEntry>>,
) -> (Decision, Option<Country>) {
    let mut lazy = Lazy {
        path_hits: [None, None],
        country: facts.country,
        referer: None,
        token: None,
    };
    let mut dry_run_hits = Vec::new();
    let mut decided = None;
    for (i, rule) in policy.rules.iter().enumerate() {
        let id = RuleId(i as u32);
        if decided.is_some() {
            if let Some(t) = trace.as_deref_mut() {
                t.push(TraceEntry {
                    rule: id,
                    step: Step::NotReached,
                });
            }
            continue;
        }
        if let Some(failed) = first_failure(rule, policy, facts, &mut lazy) {
            if let Some(t) = trace.as_deref_mut() {
                let why = describe_failure(failed, facts, &mut lazy, policy);
                t.push(TraceEntry {
                    rule: id,
                    step: Step::NoMatch {
                        condition: failed.key(),
                        why,
                    },
                });
            }
            continue;
        }
        let effect = apply(rule, id, policy, facts, &mut lazy);
        let step = match (&effect, rule.dry_run) {
            (Effect::Pass, false) => Step::GatePassed,
            (Effect::Pass, true) => Step::DryRun { would_refuse: None },
            (Effect::Decide(Outcome::Allow { .. }), true) => Step::DryRun { would_refuse: None },
            (Effect::Decide(Outcome::Refuse(r)), true) => {
                dry_run_hits.push(DryRunHit {
                    rule: id,
                    reason: r.reason,
                });
                Step::DryRun {
                    would_refuse: Some(r.reason),
                }
            }
            (Effect::Decide(_), false) => Step::Decided,
        };
        if let Some(t) = trace.as_deref_mut() {
            t.push(TraceEntry { rule: id, step });
        }
        if let (Effect::Decide(outcome), false) = (effect, rule.dry_run) {
            decided = Some(outcome);
        }
    }
    let outcome = decided.unwrap_or_else(|| {
        if policy.settings.default_action.is_deny() {
            Outcome::Refuse(Refusal::of(Reason::DefaultDeny))
        } else {
            Outcome::Allow { rule: None }
        }
    });
    let decision = Decision {
        outcome,
        dry_run_hits,
    };
    (decision, lazy.country)
}

/// The first condition of `rule` that does not hold, or `None` when the rule
/// matches — for the canonical path or for the upstream's reading of it.
fn first_failure<'r, 'f>(
    rule: &'r Rule,
    policy: &Policy,
    facts: &RequestFacts<'f>,
    lazy: &mut Lazy<'f>,
) -> Option<&'r Condition> {
    let failed = rule
        .conditions
        .iter()
        .find(|c| !holds(c, policy, facts, lazy))?;
    let Some(upstream_path) = facts.upstream_path else {
        return Some(failed);
    };
    let read_upstream = RequestFacts {
        path: upstream_path,
        ..*facts
    };
    let matches = rule
        .conditions
        .iter()
        .all(|c| holds(c, policy, &read_upstream, lazy));
    (!matches).then_some(failed)
}

enum Effect {
    Decide(Outcome),
    Pass,
}

/// What a matching rule does.
fn apply<'f>(
    rule: &Rule,
    id: RuleId,
    policy: &Policy,
    facts: &RequestFacts<'f>,
    lazy: &mut Lazy<'f>,
) -> Effect {
    match rule.action {
        Action::Allow => Effect::Decide(Outcome::Allow { rule: Some(id) }),
        Action::Deny => Effect::Decide(Outcome::Refuse(Refusal {
            reason: rule.reason,
            rule: Some(id),
            status: rule.status,
        })),
        Action::Require => {
            let reason = match verify(policy, facts, lazy) {
                Verified::Missing => Reason::TokenMissing,
                Verified::Invalid => Reason::TokenInvalid,
                Verified::Roles(roles) if roles.iter().any(|r| rule.roles.contains(r)) => {
                    return Effect::Pass;
                }
                Verified::Roles(_) => Reason::RoleInsufficient,
            };
            Effect::Decide(Outcome::Refuse(Refusal {
                reason,
                rule: Some(id),
                status: reason.status(),
            }))
        }
    }
}

fn verify<'f, 'l>(
    policy: &Policy,
    facts: &RequestFacts<'f>,
    lazy: &'l mut Lazy<'f>,
) -> &'l Verified<'f> {
    lazy.token.get_or_insert_with(|| match facts.token {
        Token::Missing => Verified::Missing,
        Token::Roles(roles) => Verified::Roles(Cow::Borrowed(roles)),
        Token::Bearer(token) => match policy.auth.as_ref().map(|a| a.verify(token)) {
            Some(Ok(roles)) => Verified::Roles(Cow::Owned(roles)),
            Some(Err(_)) | None => Verified::Invalid,
        },
    })
}

/// The roles of a token, when it is valid (for role refusal bodies).
pub fn token_roles_of(policy: &Policy, token: Token<'_>) -> Option<Vec<String>> {
    match token {
        Token::Missing => None,
        Token::Roles(roles) => Some(roles.to_vec()),
        Token::Bearer(token) => policy.auth.as_ref()?.verify(token).ok(),
    }
}

fn country(policy: &Policy, facts: &RequestFacts<'_>, lazy: &mut Lazy<'_>) -> Country {
    *lazy.country.get_or_insert_with(|| {
        policy
            .geo
            .as_ref()
            .map_or(Country::UNKNOWN, |g| g.country(facts.client_ip))
    })
}

/// Which path regexes of the policy match `path`, computed once per path.
fn path_hits<'l>(policy: &Policy, path: &str, lazy: &'l mut Lazy<'_>) -> &'l PathHits {
    let key = (path.as_ptr() as usize, path.len());
    let slot = match lazy
        .path_hits
        .iter()
        .position(|s| matches!(s, Some((k, _)) if *k == key))
    {
        Some(i) => i,
        None => {
            let i = usize::from(lazy.path_hits[0].is_some());
            lazy.path_hits[i] = Some((key, policy.path_set.matches(path)));
            i
        }
    };
    lazy.path_hits[slot]
        .as_ref()
        .map(|(_, hits)| hits)
        .expect("the slot was found or just filled")
}

fn referer<'f, 'l>(facts: &RequestFacts<'f>, lazy: &'l mut Lazy<'f>) -> &'l Referer<'f> {
    lazy.referer
        .get_or_insert_with(|| crate::host::referer(facts.headers.get_all(&REFERER)))
}

/// Whether a condition holds for the request.
fn holds<'f>(
    condition: &Condition,
    policy: &Policy,
    facts: &RequestFacts<'f>,
    lazy: &mut Lazy<'f>,
) -> bool {
    match condition {
        Condition::Method { methods, negate } => {
            let m = facts.method.as_str();
            methods.iter().any(|x| x.as_str().eq_ignore_ascii_case(m)) != *negate
        }
        Condition::Host { hosts, negate } => hosts.matches(facts.host) != *negate,
        Condition::PathPrefix {
            prefixes,
            boundaries,
            negate,
        } => prefixes.iter().any(|p| boundaries.is_under(facts.path, p)) != *negate,
        Condition::PathRegex { range, negate, .. } => {
            path_hits(policy, facts.path, lazy).any(range) != *negate
        }
        Condition::QueryRegex { set } => set.is_match(facts.query.unwrap_or("")),
        Condition::HeaderRegex { headers } => headers
            .iter()
            .all(|(name, re)| facts.headers.get_all(name).any(|v| re.is_match(v))),
        Condition::Ip { sets, negate } => {
            sets.iter().any(|s| s.contains(facts.client_ip)) != *negate
        }
        Condition::Hotlink(hotlink) => {
            let host = facts.host;
            hotlink.is_hotlink(referer(facts, lazy), host)
        }
        Condition::Country { countries, negate } => {
            countries.contains(country(policy, facts, lazy)) != *negate
        }
    }
}

/// Why a condition did not hold, for the trace.
fn describe_failure<'f>(
    condition: &Condition,
    facts: &RequestFacts<'f>,
    lazy: &mut Lazy<'f>,
    policy: &Policy,
) -> String {
    let list = |items: &mut dyn Iterator<Item = String>| items.collect::<Vec<_>>().join(", ");
    match condition {
        Condition::Method { methods, negate } => {
            let names = list(&mut methods.iter().map(|m| m.to_string()));
            if *negate {
                format!("method {} is one of {names}", facts.method)
            } else {
                format!("method {} is not one of {names}", facts.method)
            }
        }
        Condition::Host { negate, .. } => {
            let host = if facts.host.is_empty() {
                "(none)"
            } else {
                facts.host
            };
            if *negate {
                format!("host {host} matches a listed host")
            } else {
                format!("host {host} matches none of the listed hosts")
            }
        }
        Condition::PathPrefix {
            prefixes, negate, ..
        } => {
            let names = list(&mut prefixes.iter().cloned());
            if *negate {
                format!("path {} is under {names}", facts.path)
            } else {
                format!("path {} is not under {names}", facts.path)
            }
        }
        Condition::PathRegex { set, negate, .. } => {
            if *negate {
                let hit = set.matches(facts.path).iter().next().unwrap_or(0);
                format!("path {} matches '{}'", facts.path, set.patterns()[hit])
            } else {
                format!("path {} matches none of the patterns", facts.path)
            }
        }
        Condition::QueryRegex { .. } => match facts.query {
            Some(q) => format!("query \"{q}\" matches none of the patterns"),
            None => "no query matches none of the patterns".to_owned(),
        },
        Condition::HeaderRegex { headers } => {
            let failing = headers
                .iter()
                .find(|(name, re)| !facts.headers.get_all(name).any(|v| re.is_match(v)))
                .map(|(name, _)| name);
            match failing {
                Some(name) if facts.headers.contains(name) => {
                    format!("header {} does not match", name.as_str())
                }
                Some(name) => format!("header {} is missing", name.as_str()),
                None => "header ? is missing".to_owned(),
            }
        }
        Condition::Ip { negate, .. } => {
            if *negate {
                format!("client {} is in the listed addresses", facts.client_ip)
            } else {
                format!("client {} is not in the listed addresses", facts.client_ip)
            }
        }
        Condition::Hotlink(_) => match referer(facts, lazy) {
            Referer::Missing => "no Referer, which is allowed".to_owned(),
            Referer::Malformed => "malformed Referer, which is allowed".to_owned(),
            Referer::Host(h) => format!("Referer host {h} is allowed"),
        },
        Condition::Country { negate, .. } => {
            let c = country(policy, facts, lazy);
            if *negate {
                format!("country {c} is listed")
            } else {
                format!("country {c} is not listed")
            }
        }
    }
}
