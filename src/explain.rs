//! Rendering a decided probe for people (`explain`, `test` failures) and as
//! the JSON object of SPEC 1 (`explain --json`, the admin `/explain`).

use std::fmt::Write as _;

use serde_json::{Value, json};

use crate::decision::{Outcome, Reason};
use crate::evaluate::Step;
use crate::policy::{Policy, Target};
use crate::probe::{Probe, ProbeResult};
use crate::respond::{RefusalView, prefers_html};

/// The refusal body the gateway would send, or `None` when allowed.
pub fn body(
    policy: &Policy,
    probe: &Probe,
    result: &ProbeResult,
    request_id: &str,
) -> Option<String> {
    let refusal = result.decision.refusal()?;
    let view = RefusalView::new(policy, refusal, result.roles.as_deref(), request_id);
    Some(
        if prefers_html(
            probe
                .headers
                .get(http::header::ACCEPT)
                .map(http::HeaderValue::as_bytes),
        ) {
            view.html()
        } else {
            view.json()
        },
    )
}

fn rule_name(policy: &Policy, result: &ProbeResult) -> Option<String> {
    match &result.decision.outcome {
        Outcome::Allow { rule } => Some(rule.map_or("(default)".to_owned(), |id| {
            policy.rule(id).name.to_string()
        })),
        Outcome::Refuse(r) => match r.rule {
            Some(id) => Some(policy.rule(id).name.to_string()),
            None if r.reason == Reason::DefaultDeny => Some("(default)".to_owned()),
            None => None,
        },
    }
}

/// The JSON object of `explain --json`.
pub fn to_json(policy: &Policy, probe: &Probe, result: &ProbeResult, request_id: &str) -> Value {
    let (decision, status, reason) = match &result.decision.outcome {
        Outcome::Allow { .. } => ("allow", 200, None),
        Outcome::Refuse(r) => ("deny", r.status.as_u16(), Some(r.reason.code())),
    };
    let trace: Vec<Value> = result
        .trace
        .iter()
        .map(|entry| {
            let name = &*policy.rule(entry.rule).name;
            match &entry.step {
                Step::Decided => json!({ "name": name, "outcome": "decided" }),
                Step::GatePassed => json!({ "name": name, "outcome": "gate_passed" }),
                Step::DryRun { would_refuse } => json!({
                    "name": name,
                    "outcome": "dry_run",
                    "would_refuse": would_refuse.map(Reason::code),
                }),
                Step::NoMatch { condition, why } => json!({
                    "name": name,
                    "outcome": "no_match",
                    "condition": condition,
                    "why": why,
                }),
                Step::NotReached => json!({ "name": name, "outcome": "not_reached" }),
            }
        })
        .collect();
    let hits: Vec<Value> = result
        .decision
        .dry_run_hits
        .iter()
        .map(|h| json!({ "rule": &*policy.rule(h.rule).name, "reason": h.reason.code() }))
        .collect();
    json!({
        "decision": decision,
        "status": status,
        "reason": reason,
        "rule": rule_name(policy, result),
        "client_ip": result.client_ip.to_string(),
        "country": result.country.map(|c| c.to_string()),
        "canonical_path": result.canonical_path.as_ref().ok(),
        "trace": trace,
        "dry_run_hits": hits,
        "body": body(policy, probe, result, request_id),
    })
}

/// The human report of `explain`: the request, each rule and what happened
/// to it, the decision, the route, and the body that would be sent.
pub fn to_text(policy: &Policy, probe: &Probe, result: &ProbeResult, request_id: &str) -> String {
    let mut out = String::new();
    let host = if probe.host.is_empty() {
        "(none)"
    } else {
        &probe.host
    };
    let country = result
        .country
        .map_or("(no GeoIP database)".to_owned(), |c| c.to_string());
    let _ = writeln!(
        out,
        "request   {} {} Host: {host}",
        probe.method, probe.target
    );
    let _ = writeln!(out, "client    {} country {country}", result.client_ip);
    match &result.canonical_path {
        Ok(p) => {
            let _ = writeln!(out, "path      {p}");
        }
        Err(e) => {
            let _ = writeln!(out, "path      refused: {e}");
        }
    }
    if !result.trace.is_empty() {
        out.push_str("rules\n");
        let width = policy.rules.iter().map(|r| r.name.len()).max().unwrap_or(0);
        for (n, entry) in result.trace.iter().enumerate() {
            let rule = policy.rule(entry.rule);
            let what = match &entry.step {
                Step::Decided => match (&result.decision.outcome, rule.action) {
                    (Outcome::Refuse(r), _) => {
                        format!("MATCHED: refuses, {} {}", r.status.as_u16(), r.reason)
                    }
                    (Outcome::Allow { .. }, _) => "MATCHED: allows".to_owned(),
                },
                Step::GatePassed => "matched: token has a required role, going on".to_owned(),
                Step::DryRun {
                    would_refuse: Some(r),
                } => {
                    format!("matched (dry run): would refuse with {r}, going on")
                }
                Step::DryRun { would_refuse: None } => "matched (dry run): going on".to_owned(),
                Step::NoMatch { condition, why } => format!("no match: {condition}: {why}"),
                Step::NotReached => "not reached".to_owned(),
            };
            let _ = writeln!(out, "  {:>2}. {:<width$}  {what}", n + 1, rule.name);
        }
    }
    match &result.decision.outcome {
        Outcome::Allow { rule } => {
            let by = rule.map_or("default_action".to_owned(), |id| {
                format!("rule \"{}\"", policy.rule(id).name)
            });
            let _ = writeln!(out, "decision  allow ({by})");
            if let Ok(path) = &result.canonical_path {
                let host = crate::host::normalize_host(&probe.host);
                match policy.routes.choose(&host, path) {
                    Some(route) => {
                        let target = match &route.target {
                            Target::Upstream(u) => format!("{}://{}", u.scheme, u.authority),
                            Target::Root(dir) => format!("files in {}", dir.display()),
                        };
                        let _ = writeln!(out, "route     {target} ({})", route.location);
                    }
                    None => {
                        let _ = writeln!(out, "route     none: the gateway answers 404 not_found");
                    }
                }
            }
        }
        Outcome::Refuse(r) => {
            let by = match r.rule {
                Some(id) => format!(" (rule \"{}\")", policy.rule(id).name),
                None => String::new(),
            };
            let hidden = if r.is_hidden() {
                ", answered as a plain not_found"
            } else {
                ""
            };
            let _ = writeln!(
                out,
                "decision  deny {} {}{by}{hidden}",
                r.status.as_u16(),
                r.reason
            );
        }
    }
    for hit in &result.decision.dry_run_hits {
        let _ = writeln!(
            out,
            "dry run   rule \"{}\" would refuse with {}",
            policy.rule(hit.rule).name,
            hit.reason
        );
    }
    if let Some(body) = body(policy, probe, result, request_id) {
        let _ = writeln!(
            out,
            "body      {}",
            body.trim_end().replace('\n', "\n          ")
        );
    }
    out
}
