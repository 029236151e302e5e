//! The decision (SPEC 3, 7, 8) as a pure function of policy and facts: every
//! condition and its `not_` form, reason priority, dry runs, `require`,
//! `default_action`, status overrides — no sockets.

use edgeguard::decision::Reason;
use edgeguard::policy::Policy;
use edgeguard::probe::{self, Probe};
use edgeguard::ruletest::summary;

use crate::common::{Folder, policy_of, repo};

/// A request: `ip path [key=value …]` where keys are method, host, referer,
/// country, roles (comma list; empty for none) and `h:Name=value` headers.
fn probe(spec: &str) -> Probe {
    let mut parts = spec.split_whitespace();
    let ip = parts.next().expect("ip").parse().expect("valid ip");
    let mut p = Probe::new(ip);
    p.target = parts.next().unwrap_or("/").to_owned();
    for part in parts {
        let (key, value) = part.split_once('=').expect("key=value");
        match key {
            "method" => p.method = value.parse().expect("method"),
            "host" => p.host = value.to_owned(),
            "referer" => p.referer(value).expect("referer"),
            "country" => p.country = edgeguard::geo::Country::parse(value),
            "roles" => {
                p.roles = Some(
                    value
                        .split(',')
                        .filter(|r| !r.is_empty())
                        .map(str::to_owned)
                        .collect(),
                )
            }
            header if header.starts_with("h:") => {
                let name: http::HeaderName = header[2..].parse().expect("header name");
                p.headers
                    .append(name, value.replace('+', " ").parse().expect("header value"));
            }
            other => panic!("unknown probe key {other}"),
        }
    }
    p
}

/// `allow (rule)` or `deny STATUS reason (rule)`.
fn decide(policy: &Policy, spec: &str) -> String {
    let result = probe::run(policy, &probe(spec));
    let (allowed, status, reason, rule) = summary(policy, &result);
    if allowed {
        format!("allow ({rule})")
    } else {
        format!(
            "deny {status} {} ({rule})",
            reason.map_or("-", Reason::code)
        )
    }
}

fn check(policy: &Policy, table: &[(&str, &str)]) {
    let mut failures = Vec::new();
    for (spec, expected) in table {
        let got = decide(policy, spec);
        if got != *expected {
            failures.push(format!(
                "{spec}\n    expected {expected}\n    got      {got}"
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

fn deny_rule(conditions: &str) -> Policy {
    policy_of(&format!(
        "[[rule]]\nname = \"r\"\naction = \"deny\"\n{conditions}\n"
    ))
}

#[test]
fn method_and_not_method() {
    check(
        &deny_rule("method = [\"POST\", \"delete\"]"),
        &[
            ("192.0.2.1 / method=POST", "deny 403 method_denied (r)"),
            ("192.0.2.1 / method=DELETE", "deny 403 method_denied (r)"),
            ("192.0.2.1 / method=GET", "allow ((default))"),
        ],
    );
    check(
        &deny_rule("not_method = [\"GET\", \"HEAD\"]"),
        &[
            ("192.0.2.1 / method=GET", "allow ((default))"),
            ("192.0.2.1 / method=HEAD", "allow ((default))"),
            ("192.0.2.1 / method=PATCH", "deny 403 method_denied (r)"),
        ],
    );
}

#[test]
fn host_and_not_host() {
    check(
        &deny_rule("host = [\"admin.example.com\", \"*.internal.example\"]"),
        &[
            (
                "192.0.2.1 / host=admin.example.com",
                "deny 403 host_denied (r)",
            ),
            (
                "192.0.2.1 / host=ADMIN.Example.COM:8443",
                "deny 403 host_denied (r)",
            ),
            (
                "192.0.2.1 / host=admin.example.com.",
                "deny 403 host_denied (r)",
            ),
            (
                "192.0.2.1 / host=db.internal.example",
                "deny 403 host_denied (r)",
            ),
            ("192.0.2.1 / host=internal.example", "allow ((default))"),
            ("192.0.2.1 / host=evilinternal.example", "allow ((default))"),
            ("192.0.2.1 / host=www.example.com", "allow ((default))"),
            ("192.0.2.1 /", "allow ((default))"),
        ],
    );
    check(
        &deny_rule("not_host = [\"www.example.com\"]"),
        &[
            ("192.0.2.1 / host=www.example.com", "allow ((default))"),
            (
                "192.0.2.1 / host=other.example.com",
                "deny 403 host_denied (r)",
            ),
            ("192.0.2.1 /", "deny 403 host_denied (r)"),
        ],
    );
}

#[test]
fn path_prefix_is_segment_aware_and_sees_the_canonical_path() {
    check(
        &deny_rule("path_prefix = [\"/admin\", \"/private/\"]"),
        &[
            ("192.0.2.1 /admin", "deny 403 path_denied (r)"),
            ("192.0.2.1 /admin/", "deny 403 path_denied (r)"),
            ("192.0.2.1 /admin/users?x=1", "deny 403 path_denied (r)"),
            ("192.0.2.1 /administrator", "allow ((default))"),
            ("192.0.2.1 /Admin", "allow ((default))"),
            ("192.0.2.1 /%61dmin", "deny 403 path_denied (r)"),
            ("192.0.2.1 //admin", "deny 403 path_denied (r)"),
            ("192.0.2.1 /x/../admin", "deny 403 path_denied (r)"),
            ("192.0.2.1 /./admin/./x", "deny 403 path_denied (r)"),
            ("192.0.2.1 /%2e%2e/admin", "deny 403 path_denied (r)"),
            ("192.0.2.1 /private/x", "deny 403 path_denied (r)"),
            ("192.0.2.1 /private", "allow ((default))"),
            ("192.0.2.1 /admin%2Fx", "deny 400 bad_request ((default))"),
            ("192.0.2.1 /admin;x", "deny 400 bad_request ((default))"),
            ("192.0.2.1 /a%00", "deny 400 bad_request ((default))"),
        ],
    );
    check(
        &deny_rule("not_path_prefix = [\"/public\"]"),
        &[
            ("192.0.2.1 /public/a.css", "allow ((default))"),
            ("192.0.2.1 /publicity", "deny 403 path_denied (r)"),
            ("192.0.2.1 /", "deny 403 path_denied (r)"),
        ],
    );
}

#[test]
fn path_regex_and_not_path_regex() {
    check(
        &deny_rule("path_regex = ['/\\.', '(?i)\\.(bak|sql)$']"),
        &[
            ("192.0.2.1 /.env", "deny 403 path_denied (r)"),
            ("192.0.2.1 /a/.git/config", "deny 403 path_denied (r)"),
            ("192.0.2.1 /%2egit", "deny 403 path_denied (r)"),
            ("192.0.2.1 /dump.SQL", "deny 403 path_denied (r)"),
            ("192.0.2.1 /db.bak?x", "deny 403 path_denied (r)"),
            ("192.0.2.1 /x?.bak", "allow ((default))"),
            ("192.0.2.1 /index.html", "allow ((default))"),
        ],
    );
    check(
        &deny_rule("not_path_regex = ['^/api/v[12]/']"),
        &[
            ("192.0.2.1 /api/v1/items", "allow ((default))"),
            ("192.0.2.1 /api/v3/items", "deny 403 path_denied (r)"),
        ],
    );
}

#[test]
fn query_regex_sees_the_query_as_received() {
    check(
        &deny_rule("query_regex = ['(?i)union(\\s|%20|\\+)+select', '^debug=1$']"),
        &[
            (
                "192.0.2.1 /s?q=1%20UNION%20SELECT%201",
                "deny 403 pattern_denied (r)",
            ),
            (
                "192.0.2.1 /s?q=1+union+select+1",
                "deny 403 pattern_denied (r)",
            ),
            ("192.0.2.1 /s?debug=1", "deny 403 pattern_denied (r)"),
            ("192.0.2.1 /s?debug=10", "allow ((default))"),
            ("192.0.2.1 /union+select", "allow ((default))"),
            ("192.0.2.1 /s", "allow ((default))"),
        ],
    );
}

#[test]
fn header_regex_holds_when_any_instance_matches() {
    check(
        &deny_rule("header_regex = { \"User-Agent\" = '(?i)sqlmap|nikto' }"),
        &[
            (
                "192.0.2.1 / h:user-agent=sqlmap/1.7",
                "deny 403 pattern_denied (r)",
            ),
            (
                "192.0.2.1 / h:user-agent=Mozilla h:user-agent=Nikto",
                "deny 403 pattern_denied (r)",
            ),
            ("192.0.2.1 / h:user-agent=Mozilla/5.0", "allow ((default))"),
            ("192.0.2.1 /", "allow ((default))"),
        ],
    );
    // Several headers in one table must all match.
    check(
        &deny_rule("header_regex = { \"x-a\" = '^1$', \"x-b\" = '^2$' }"),
        &[
            ("192.0.2.1 / h:x-a=1 h:x-b=2", "deny 403 pattern_denied (r)"),
            ("192.0.2.1 / h:x-a=1", "allow ((default))"),
            ("192.0.2.1 / h:x-b=2", "allow ((default))"),
        ],
    );
}

#[test]
fn ip_and_not_ip_with_lists_ipv6_and_mapped_addresses() {
    let policy = policy_of(
        "[lists]\noffice = [\"198.51.100.0/24\", \"2001:db8:1::/48\"]\n\
         [[rule]]\nname = \"block\"\naction = \"deny\"\nip = [\"203.0.113.7\", \"10.0.0.0/8\", \"2001:db8:bad::/48\"]\n\
         [[rule]]\nname = \"office\"\naction = \"deny\"\npath_prefix = [\"/admin\"]\nnot_ip = [\"@office\"]\n",
    );
    check(
        &policy,
        &[
            ("203.0.113.7 /", "deny 403 ip_denied (block)"),
            ("203.0.113.8 /", "allow ((default))"),
            ("10.200.1.1 /", "deny 403 ip_denied (block)"),
            ("::ffff:10.1.2.3 /", "deny 403 ip_denied (block)"),
            ("2001:db8:bad:1::1 /", "deny 403 ip_denied (block)"),
            ("2001:db8:bae::1 /", "allow ((default))"),
            ("198.51.100.7 /admin", "allow ((default))"),
            ("::ffff:198.51.100.7 /admin", "allow ((default))"),
            ("2001:db8:1:ffff::1 /admin", "allow ((default))"),
            ("192.0.2.1 /admin", "deny 403 ip_denied (office)"),
        ],
    );
}

fn geo_policy(rules: &str) -> Policy {
    let db = repo().join("geoip/GeoIP2-Country-Test.mmdb");
    let rulebook = format!(
        "[geoip]\ndatabase = {:?}\n{rules}",
        db.display().to_string()
    );
    policy_of(&rulebook)
}

#[test]
fn country_and_not_country_use_the_database_or_the_override() {
    let policy =
        geo_policy("[[rule]]\nname = \"embargo\"\naction = \"deny\"\ncountry = [\"GB\", \"XX\"]\n");
    check(
        &policy,
        &[
            // The test database's (fake) answers: GB, GB registered in FR, SE, JP.
            ("81.2.69.160 /", "deny 403 country_denied (embargo)"),
            ("2.125.160.216 /", "deny 403 country_denied (embargo)"),
            ("::ffff:81.2.69.160 /", "deny 403 country_denied (embargo)"),
            ("89.160.20.128 /", "allow ((default))"),
            ("2001:218::1 /", "allow ((default))"),
            // Private and unknown addresses are XX.
            ("10.0.0.1 /", "deny 403 country_denied (embargo)"),
            ("8.8.8.8 /", "deny 403 country_denied (embargo)"),
            (
                "89.160.20.128 / country=GB",
                "deny 403 country_denied (embargo)",
            ),
            ("81.2.69.160 / country=FR", "allow ((default))"),
        ],
    );
    let policy =
        geo_policy("[[rule]]\nname = \"only-se\"\naction = \"deny\"\nnot_country = [\"SE\"]\n");
    check(
        &policy,
        &[
            ("89.160.20.128 /", "allow ((default))"),
            ("81.2.69.160 /", "deny 403 country_denied (only-se)"),
        ],
    );
}

#[test]
fn hotlink_condition_follows_spec_section_3() {
    let policy = deny_rule(
        "path_regex = ['\\.png$']\nhotlink = { allow = [\"example.com\", \"*.cdn.example\"] }",
    );
    check(
        &policy,
        &[
            ("192.0.2.1 /a.png host=www.site.test", "allow ((default))"),
            (
                "192.0.2.1 /a.png host=www.site.test referer=https://example.com/x",
                "allow ((default))",
            ),
            (
                "192.0.2.1 /a.png host=www.site.test referer=http://EXAMPLE.com:8080/",
                "allow ((default))",
            ),
            (
                "192.0.2.1 /a.png host=www.site.test referer=https://img.cdn.example/",
                "allow ((default))",
            ),
            (
                "192.0.2.1 /a.png host=www.site.test referer=https://cdn.example/",
                "deny 403 hotlink_denied (r)",
            ),
            (
                "192.0.2.1 /a.png host=www.site.test referer=https://www.site.test/page",
                "allow ((default))",
            ),
            (
                "192.0.2.1 /a.png host=www.site.test referer=https://evil.test/",
                "deny 403 hotlink_denied (r)",
            ),
            (
                "192.0.2.1 /a.png host=www.site.test referer=https://example.com.evil.test/",
                "deny 403 hotlink_denied (r)",
            ),
            (
                "192.0.2.1 /a.png host=www.site.test referer=https://example.com@evil.test/",
                "deny 403 hotlink_denied (r)",
            ),
            (
                "192.0.2.1 /a.png host=www.site.test referer=notaurl",
                "deny 403 hotlink_denied (r)",
            ),
            (
                "192.0.2.1 /a.html host=www.site.test referer=https://evil.test/",
                "allow ((default))",
            ),
        ],
    );
    let strict = deny_rule(
        "hotlink = { allow = [\"example.com\"], allow_missing = false, allow_malformed = true, allow_own_host = false }",
    );
    check(
        &strict,
        &[
            (
                "192.0.2.1 / host=example.org",
                "deny 403 hotlink_denied (r)",
            ),
            (
                "192.0.2.1 / host=example.org referer=garbage",
                "allow ((default))",
            ),
            (
                "192.0.2.1 / host=example.org referer=https://example.org/",
                "deny 403 hotlink_denied (r)",
            ),
            (
                "192.0.2.1 / host=example.org referer=https://example.com/",
                "allow ((default))",
            ),
        ],
    );
}

#[test]
fn a_rule_without_conditions_matches_everything() {
    check(
        &policy_of("[[rule]]\nname = \"all\"\naction = \"deny\"\n"),
        &[("192.0.2.1 /anything", "deny 403 rule_denied (all)")],
    );
}

#[test]
fn the_reason_is_that_of_the_first_condition_in_spec_order() {
    let cases = [
        ("path_prefix = [\"/\"]\nhost = [\"*\"]", "path_denied"),
        ("host = [\"*\"]\nmethod = [\"GET\"]", "method_denied"),
        ("method = [\"GET\"]\nquery_regex = ['']", "pattern_denied"),
        ("query_regex = ['']\nip = [\"0.0.0.0/0\"]", "ip_denied"),
        (
            "path_regex = ['/']\nnot_path_prefix = [\"/x\"]\nip = [\"0.0.0.0/0\"]\nheader_regex = { host = '' }",
            "ip_denied",
        ),
        (
            "ip = [\"0.0.0.0/0\"]\nhotlink = { allow_missing = false }",
            "hotlink_denied",
        ),
    ];
    for (conditions, reason) in cases {
        let policy = deny_rule(conditions);
        let got = decide(&policy, "192.0.2.1 /?q h:host=x method=GET");
        assert_eq!(got, format!("deny 403 {reason} (r)"), "{conditions}");
    }
    let policy = geo_policy(
        "[[rule]]\nname = \"r\"\naction = \"deny\"\nip = [\"0.0.0.0/0\"]\ncountry = [\"GB\"]\npath_prefix = [\"/\"]\n",
    );
    assert_eq!(
        decide(&policy, "81.2.69.160 /"),
        "deny 403 country_denied (r)"
    );
}

#[test]
fn the_first_allow_or_deny_that_matches_decides() {
    let policy = policy_of(
        "[server]\ndefault_action = \"deny\"\n\
         [[rule]]\nname = \"health\"\naction = \"allow\"\npath_prefix = [\"/health\"]\n\
         [[rule]]\nname = \"no-admin\"\naction = \"deny\"\npath_prefix = [\"/admin\", \"/health/admin\"]\n\
         [[rule]]\nname = \"site\"\naction = \"allow\"\npath_prefix = [\"/\"]\nmethod = [\"GET\"]\n",
    );
    check(
        &policy,
        &[
            ("192.0.2.1 /health/admin", "allow (health)"),
            ("192.0.2.1 /admin", "deny 403 path_denied (no-admin)"),
            ("192.0.2.1 /page", "allow (site)"),
            (
                "192.0.2.1 /page method=POST",
                "deny 403 default_deny ((default))",
            ),
        ],
    );
}

#[test]
fn dry_run_rules_are_reported_not_enforced() {
    let policy = policy_of(
        "[[rule]]\nname = \"trial\"\naction = \"deny\"\npath_prefix = [\"/beta\"]\ndry_run = true\n\
         [[rule]]\nname = \"trial-allow\"\naction = \"allow\"\npath_prefix = [\"/beta\"]\ndry_run = true\n\
         [[rule]]\nname = \"later\"\naction = \"deny\"\npath_prefix = [\"/beta/x\"]\n",
    );
    check(
        &policy,
        &[
            ("192.0.2.1 /beta", "allow ((default))"),
            ("192.0.2.1 /beta/x", "deny 403 path_denied (later)"),
        ],
    );
    let result = probe::run(&policy, &probe("192.0.2.1 /beta/x"));
    let hits: Vec<(String, Reason)> = result
        .decision
        .dry_run_hits
        .iter()
        .map(|h| (policy.rule(h.rule).name.to_string(), h.reason))
        .collect();
    assert_eq!(hits, [("trial".to_owned(), Reason::PathDenied)]);
}

fn auth_policy(rules: &str) -> Policy {
    let jwks = repo().join("tests/fixtures/auth/jwks.json");
    policy_of(&format!(
        "[auth]\njwks_file = {:?}\n{rules}",
        jwks.display().to_string()
    ))
}

#[test]
fn require_gates_on_roles_and_lets_evaluation_go_on() {
    let policy = auth_policy(
        "[[rule]]\nname = \"admins\"\naction = \"require\"\npath_prefix = [\"/admin\"]\nroles = [\"admin\", \"ops\"]\n\
         [[rule]]\nname = \"no-delete\"\naction = \"deny\"\nmethod = [\"DELETE\"]\n",
    );
    check(
        &policy,
        &[
            ("192.0.2.1 /admin", "deny 401 token_missing (admins)"),
            (
                "192.0.2.1 /admin roles=viewer",
                "deny 403 role_insufficient (admins)",
            ),
            (
                "192.0.2.1 /admin roles=",
                "deny 403 role_insufficient (admins)",
            ),
            ("192.0.2.1 /admin roles=viewer,ops", "allow ((default))"),
            (
                "192.0.2.1 /admin roles=admin method=DELETE",
                "deny 403 method_denied (no-delete)",
            ),
            ("192.0.2.1 /public", "allow ((default))"),
            (
                "192.0.2.1 /admin h:authorization=Bearer+not.a.jwt",
                "deny 401 token_invalid (admins)",
            ),
        ],
    );
}

#[test]
fn default_deny_has_no_rule() {
    let policy = policy_of("[server]\ndefault_action = \"deny\"\n");
    let result = probe::run(&policy, &probe("192.0.2.1 /"));
    let refusal = result.decision.refusal().expect("refused");
    assert_eq!(refusal.reason, Reason::DefaultDeny);
    assert_eq!(refusal.rule, None);
    let body =
        edgeguard::explain::body(&policy, &probe("192.0.2.1 /"), &result, "id1").expect("body");
    assert_eq!(
        body,
        r#"{"error":"Forbidden","message":"No rule allows access to this resource","reason":"default_deny","statusCode":403,"request_id":"id1"}"#
    );
}

#[test]
fn status_404_answers_exactly_like_a_missing_page() {
    let policy = deny_rule("path_prefix = [\"/secret\"]\nstatus = 404\nmessage = \"Go away.\"");
    let p = probe("192.0.2.1 /secret");
    let result = probe::run(&policy, &p);
    let refusal = result.decision.refusal().expect("refused");
    assert_eq!(
        (refusal.status.as_u16(), refusal.reason),
        (404, Reason::PathDenied)
    );
    assert!(refusal.is_hidden());
    let body = edgeguard::explain::body(&policy, &p, &result, "id2").expect("body");
    assert_eq!(
        body,
        r#"{"error":"Not Found","message":"The requested resource was not found","reason":"not_found","statusCode":404,"request_id":"id2"}"#
    );
}

#[test]
fn statuses_410_and_451_keep_the_refusal_body() {
    for (status, error) in [(410, "Gone"), (451, "Unavailable For Legal Reasons")] {
        let policy = deny_rule(&format!("path_prefix = [\"/old\"]\nstatus = {status}"));
        let p = probe("192.0.2.1 /old");
        let result = probe::run(&policy, &p);
        let body = edgeguard::explain::body(&policy, &p, &result, "id").expect("body");
        assert!(body.contains(&format!("\"error\":\"{error}\"")), "{body}");
        assert!(
            body.contains("\"reason\":\"path_denied\",\"rule\":\"r\""),
            "{body}"
        );
        assert!(body.contains(&format!("\"statusCode\":{status}")), "{body}");
    }
}

#[test]
fn hidden_rule_names_and_custom_messages_shape_the_body() {
    let policy = policy_of(
        "[server]\nexpose_rule_names = false\n[[rule]]\nname = \"secret-rule\"\naction = \"deny\"\nmessage = \"No <b>.\"\n",
    );
    let p = probe("192.0.2.1 / h:accept=text/html");
    let result = probe::run(&policy, &p);
    let html = edgeguard::explain::body(&policy, &p, &result, "rid").expect("body");
    assert!(html.contains("No &lt;b&gt;."), "{html}");
    assert!(!html.contains("secret-rule"), "{html}");
    assert!(
        html.contains("rid") && html.contains("rule_denied"),
        "{html}"
    );
}

#[test]
fn rulebook_tests_that_fail_keep_the_rulebook_from_loading() {
    let folder = Folder::with(&[(
        "r.toml",
        "[[rule]]\nname = \"r\"\naction = \"deny\"\npath_prefix = [\"/a\"]\n\
         [[test]]\nname = \"wrong\"\nrequest = { ip = \"192.0.2.1\", path = \"/a\" }\nexpect = \"allow\"\n",
    )]);
    assert_eq!(
        folder.errors(),
        ["r.toml:5:1: test \"wrong\" failed: expected allow, got deny"]
    );
}
