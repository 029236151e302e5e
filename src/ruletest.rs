//! The rulebook's own tests (SPEC 8): `[[test]]` cases compiled into probes
//! with expectations, run by `edgeguard test`, `check`, and every load.

use http::{HeaderName, HeaderValue, StatusCode};

use crate::config::{
    Diagnostics, ExpectDecision, ExpectSpec, Location, Rulebook, TestRequestSpec, TestSpec,
};
use crate::decision::{Outcome, Reason};
use crate::geo::Country;
use crate::policy::Policy;
use crate::policy::values::parse_method;
use crate::probe::{self, Probe, ProbeResult};

/// A compiled `[[test]]` case.
#[derive(Debug, Clone)]
pub struct RuleTest {
    /// What it checks.
    pub name: String,
    /// Where it is written.
    pub location: Location,
    /// The request.
    pub probe: Probe,
    /// What must come out.
    pub expect: Expect,
}

/// What a test expects; unset fields are not checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expect {
    /// Allowed (`true`) or refused.
    pub allow: Option<bool>,
    /// The status of a refusal (200 for an allowed request).
    pub status: Option<u16>,
    /// The reason code.
    pub reason: Option<Reason>,
    /// The deciding rule's name, or `(default)`.
    pub rule: Option<String>,
}

/// The result of running one test.
#[derive(Debug)]
pub struct TestOutcome {
    /// What the policy decided.
    pub result: ProbeResult,
    /// Each expectation that did not hold, in words; empty when the test passed.
    pub mismatches: Vec<String>,
}

impl TestOutcome {
    /// Whether every expectation held.
    pub fn passed(&self) -> bool {
        self.mismatches.is_empty()
    }
}

/// Compiles every `[[test]]`, reporting bad values.
pub(crate) fn compile(book: &Rulebook, diags: &mut Diagnostics) -> Vec<RuleTest> {
    let mut tests = Vec::new();
    for spec in &book.tests {
        let TestSpec {
            name,
            request,
            expect,
        } = spec.get_ref();
        let errors_before = diags.errors.len();
        let label = format!("test \"{}\"", name.get_ref());
        let probe = compile_request(request.get_ref(), &label, book, diags);
        let expect = compile_expect(expect, &label, book, diags);
        if diags.errors.len() == errors_before
            && let Some(probe) = probe
        {
            tests.push(RuleTest {
                name: name.get_ref().clone(),
                location: book.locate(&spec.span()),
                probe,
                expect,
            });
        }
    }
    tests
}

fn compile_request(
    spec: &TestRequestSpec,
    label: &str,
    book: &Rulebook,
    diags: &mut Diagnostics,
) -> Option<Probe> {
    let TestRequestSpec {
        ip,
        method,
        host,
        path,
        referer,
        headers,
        country,
        token_roles,
    } = spec;
    let ip_addr = match ip.get_ref().trim().parse() {
        Ok(ip) => ip,
        Err(_) => {
            diags.error(
                book.locate(&ip.span()),
                format!("{label}: invalid IP address \"{}\"", ip.get_ref()),
            );
            return None;
        }
    };
    let mut probe = Probe::new(ip_addr);
    if let Some(m) = method {
        match parse_method(m.get_ref()) {
            Ok(m) => probe.method = m,
            Err(e) => diags.error(book.locate(&m.span()), format!("{label}: {e}")),
        }
    }
    if let Some(h) = host {
        probe.host = h.get_ref().clone();
    }
    if let Some(p) = path {
        probe.target = p.get_ref().clone();
    }
    if let Some(r) = referer
        && probe.referer(r.get_ref()).is_err()
    {
        diags.error(
            book.locate(&r.span()),
            format!("{label}: invalid Referer value \"{}\"", r.get_ref()),
        );
    }
    for (name, value) in headers.iter().flatten() {
        let header = HeaderName::from_bytes(name.get_ref().as_bytes());
        match (header, HeaderValue::from_str(value.get_ref())) {
            (Ok(h), Ok(v)) => {
                probe.headers.append(h, v);
            }
            (Err(_), _) => diags.error(
                book.locate(&name.span()),
                format!("{label}: invalid header name \"{}\"", name.get_ref()),
            ),
            (_, Err(_)) => diags.error(
                book.locate(&value.span()),
                format!("{label}: invalid header value \"{}\"", value.get_ref()),
            ),
        }
    }
    if let Some(c) = country {
        match Country::parse(c.get_ref()) {
            Some(code) => probe.country = Some(code),
            None => diags.error(
                book.locate(&c.span()),
                format!("{label}: invalid country code \"{}\"", c.get_ref()),
            ),
        }
    }
    if let Some(roles) = token_roles {
        probe.roles = Some(
            roles
                .get_ref()
                .iter()
                .map(|r| r.get_ref().clone())
                .collect(),
        );
    }
    Some(probe)
}

fn compile_expect(
    spec: &toml::Spanned<ExpectSpec>,
    label: &str,
    book: &Rulebook,
    diags: &mut Diagnostics,
) -> Expect {
    let ExpectSpec {
        decision,
        status,
        reason,
        rule,
    } = spec.get_ref();
    let written = book.source.text().get(spec.span()).unwrap_or("");
    let empty = written
        .chars()
        .filter(|c| !c.is_whitespace())
        .eq("{}".chars());
    if empty {
        diags.error(
            book.locate(&spec.span()),
            format!("{label}: expect is empty; give a decision, status, reason or rule"),
        );
    }
    let status = status.as_ref().and_then(|s| {
        match StatusCode::from_u16(u16::try_from(*s.get_ref()).unwrap_or(0)) {
            Ok(code) => Some(code.as_u16()),
            Err(_) => {
                diags.error(
                    book.locate(&s.span()),
                    format!("{label}: invalid status {}", s.get_ref()),
                );
                None
            }
        }
    });
    let reason = reason
        .as_ref()
        .and_then(|r| match Reason::from_code(r.get_ref()) {
            Some(reason) => Some(reason),
            None => {
                diags.error(
                    book.locate(&r.span()),
                    format!("{label}: unknown reason \"{}\"", r.get_ref()),
                );
                None
            }
        });
    let rule = rule.as_ref().and_then(|r| {
        let name = r.get_ref();
        let known = name == "(default)"
            || book
                .rules
                .iter()
                .any(|x| x.get_ref().name.get_ref() == name);
        if !known {
            diags.error(
                book.locate(&r.span()),
                format!("{label}: no rule named \"{name}\""),
            );
        }
        known.then(|| name.clone())
    });
    Expect {
        allow: decision
            .as_ref()
            .map(|d| *d.get_ref() == ExpectDecision::Allow),
        status,
        reason,
        rule,
    }
}

/// Runs one test.
pub fn run(policy: &Policy, test: &RuleTest) -> TestOutcome {
    let result = probe::run(policy, &test.probe);
    let mut mismatches = Vec::new();
    let (allowed, status, reason, rule) = summary(policy, &result);
    let expect = &test.expect;
    if let Some(allow) = expect.allow
        && allow != allowed
    {
        mismatches.push(format!(
            "expected {}, got {}",
            if allow { "allow" } else { "deny" },
            if allowed { "allow" } else { "deny" }
        ));
    }
    if let Some(s) = expect.status
        && s != status
    {
        mismatches.push(format!("expected status {s}, got {status}"));
    }
    if let Some(r) = expect.reason
        && Some(r) != reason
    {
        let got = reason.map_or("none (allowed)", Reason::code);
        mismatches.push(format!("expected reason {r}, got {got}"));
    }
    if let Some(name) = &expect.rule
        && *name != rule
    {
        mismatches.push(format!("expected rule \"{name}\", got \"{rule}\""));
    }
    TestOutcome { result, mismatches }
}

/// Allowed, status (200 when allowed), reason and rule name (`(default)` when
/// no rule decided) of a result.
pub fn summary(policy: &Policy, result: &ProbeResult) -> (bool, u16, Option<Reason>, String) {
    match &result.decision.outcome {
        Outcome::Allow { rule } => (
            true,
            200,
            None,
            rule.map_or("(default)".to_owned(), |id| {
                policy.rule(id).name.to_string()
            }),
        ),
        Outcome::Refuse(r) => (
            false,
            r.status.as_u16(),
            Some(r.reason),
            r.rule.map_or("(default)".to_owned(), |id| {
                policy.rule(id).name.to_string()
            }),
        ),
    }
}

/// Runs every test; each failure is an error at its test (SPEC 8).
pub(crate) fn check_all(policy: &Policy, diags: &mut Diagnostics) {
    for test in &policy.tests {
        let outcome = run(policy, test);
        if !outcome.passed() {
            diags.error(
                test.location.clone(),
                format!(
                    "test \"{}\" failed: {}",
                    test.name,
                    outcome.mismatches.join("; ")
                ),
            );
        }
    }
}
