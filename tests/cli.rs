//! The command line (SPEC 1): `check`, `test`, `explain`, `--version`, exit
//! codes and output, run as the built binary.

use std::process::{Command, Output};

use crate::common::{Folder, binary, repo};

fn run(args: &[&str], cwd: &std::path::Path) -> Output {
    Command::new(binary())
        .args(args)
        .current_dir(cwd)
        .env_remove("EDGEGUARD_CONFIG")
        .output()
        .expect("run edgeguard")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn check_on_the_shipped_rulebook_prints_a_summary_and_exits_0() {
    let out = run(&["check"], repo());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.starts_with(
            "config/edgeguard.toml: ok: 10 rules, 2 lists, 6 CIDRs, 3 routes, 12 tests passed"
        ),
        "{stdout}"
    );
    // --strict fails on the warning about the bundled test database.
    let strict = run(&["check", "--strict"], repo());
    assert_eq!(strict.status.code(), Some(1));
    assert!(
        text(&strict.stderr).contains("warning: GeoIP database"),
        "{}",
        text(&strict.stderr)
    );
}

#[test]
fn check_prints_every_error_and_exits_1() {
    let folder = Folder::with(&[(
        "broken.toml",
        "[server]\nlisten = [\"x\"]\nbogus = true\n[[rule]]\nname = \"r\"\naction = \"deny\"\nip = [\"@nope\"]\n",
    )]);
    let out = run(&["check", "--config", "broken.toml"], folder.dir.path());
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "broken.toml:2:11: invalid address \"x\": write IP:PORT, e.g. \"0.0.0.0:8080\" or \"[::]:8080\"\n\
         broken.toml:3:1: unknown key \"bogus\" in [server]; expected one of: listen, admin, admin_token_env, default_action, expose_rule_names, tls, limits\n\
         broken.toml:7:7: unknown list \"@nope\"; [lists] defines none\n\
         edgeguard: 3 errors in broken.toml\n"
    );
}

#[test]
fn config_comes_from_the_environment_when_not_given() {
    let folder = Folder::with(&[("env.toml", "[[route]]\nupstream = \"http://127.0.0.1:1\"\n")]);
    let out = Command::new(binary())
        .arg("check")
        .current_dir(folder.dir.path())
        .env("EDGEGUARD_CONFIG", "env.toml")
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("env.toml: ok: 0 rules"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn check_warns_about_rules_that_can_never_match() {
    let folder = Folder::with(&[(
        "r.toml",
        "[lists]\nl = [\"10.0.0.0/8\", \"10.1.0.0/16\", \"192.0.2.1\", \"192.0.2.1\"]\n\
         [[rule]]\nname = \"admin\"\naction = \"deny\"\npath_prefix = [\"/admin\", \"/ops\"]\n\
         [[rule]]\nname = \"admin-post\"\naction = \"deny\"\npath_prefix = [\"/admin\"]\nmethod = [\"POST\"]\n\
         [[rule]]\nname = \"everything\"\naction = \"allow\"\n\
         [[rule]]\nname = \"after-all\"\naction = \"deny\"\ncountry = [\"ZZ\"]\n[geoip]\ndatabase = \"../x.mmdb\"\n",
    )]);
    std::fs::copy(
        repo().join("geoip/GeoLite2-Country-Test.mmdb"),
        folder.dir.path().parent().expect("parent").join("x.mmdb"),
    )
    .ok();
    let loaded = folder.load();
    let warnings: Vec<String> = match loaded {
        Ok(l) => l.warnings.iter().map(|w| w.to_string()).collect(),
        Err(e) => panic!("{e:?}"),
    };
    let mine: Vec<&String> = warnings
        .iter()
        .filter(|w| !w.contains("test database"))
        .collect();
    let rel: Vec<String> = mine
        .iter()
        .map(|w| w.replace(&format!("{}/", folder.dir.path().display()), ""))
        .collect();
    assert_eq!(
        rel,
        [
            "r.toml:2:20: list \"l\": 10.1.0.0/16 overlaps 10.0.0.0/8 at line 2",
            "r.toml:2:48: list \"l\": 192.0.2.1/32 duplicates the entry at line 2",
            "r.toml:8:8: rule \"admin-post\" can never match: rule \"admin\" (line 4) matches every request this one matches and decides first",
            "r.toml:16:8: rule \"after-all\" can never match: rule \"everything\" (line 13) has no conditions and decides first",
            "r.toml:18:12: rule \"after-all\": \"ZZ\" is not an ISO 3166-1 alpha-2 country code",
        ]
    );
    std::fs::remove_file(folder.dir.path().parent().expect("parent").join("x.mmdb")).ok();
}

#[test]
fn test_command_prints_each_case_and_the_trace_of_failures() {
    let folder = Folder::with(&[(
        "r.toml",
        "[[rule]]\nname = \"r\"\naction = \"deny\"\npath_prefix = [\"/a\"]\n\
         [[test]]\nname = \"passes\"\nrequest = { ip = \"192.0.2.1\", path = \"/a\" }\nexpect = \"deny\"\n\
         [[test]]\nname = \"fails\"\nrequest = { ip = \"192.0.2.1\", path = \"/b\" }\nexpect = { decision = \"deny\", reason = \"path_denied\" }\n",
    )]);
    let out = run(&["test", "--config", "r.toml"], folder.dir.path());
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    assert!(
        stdout.starts_with("ok    passes\nFAIL  fails (r.toml:9:1)\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("      expected deny, got allow\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("expected reason path_denied, got none (allowed)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("no match: path_prefix: path /b is not under /a"),
        "{stdout}"
    );
    assert!(
        stdout.ends_with("2 tests, 1 passed, 1 failed\n"),
        "{stdout}"
    );
    let shipped = run(&["test"], repo());
    assert!(shipped.status.success(), "{}", text(&shipped.stdout));
}

#[test]
fn explain_json_has_exactly_the_fields_of_spec_section_1() {
    let out = run(
        &[
            "explain",
            "--ip",
            "198.51.100.7",
            "--path",
            "/admin/users?x=1",
            "--roles",
            "viewer",
            "--json",
        ],
        repo(),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let keys: Vec<&str> = v
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "decision",
            "status",
            "reason",
            "rule",
            "client_ip",
            "country",
            "canonical_path",
            "trace",
            "dry_run_hits",
            "body"
        ]
    );
    assert_eq!(v["decision"], "deny");
    assert_eq!(v["status"], 403);
    assert_eq!(v["reason"], "role_insufficient");
    assert_eq!(v["rule"], "admin-needs-role");
    assert_eq!(v["canonical_path"], "/admin/users");
    assert_eq!(v["country"], "XX");
    assert_eq!(v["trace"].as_array().expect("trace").len(), 10);
    assert_eq!(v["trace"][3]["outcome"], "no_match");
    assert_eq!(v["trace"][3]["condition"], "not_ip");
    assert_eq!(v["trace"][4]["outcome"], "decided");
    assert_eq!(v["trace"][5]["outcome"], "not_reached");
    let body: serde_json::Value =
        serde_json::from_str(v["body"].as_str().expect("body string")).expect("body json");
    assert_eq!(body["required_role"], "admin");
    assert_eq!(body["your_role"], "viewer");
}

#[test]
fn explain_reports_dry_run_hits_and_html_bodies() {
    let out = run(
        &[
            "explain",
            "--ip",
            "192.0.2.1",
            "--country",
            "kp",
            "--header",
            "Accept: text/html",
            "--json",
        ],
        repo(),
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["decision"], "allow");
    assert_eq!(
        v["dry_run_hits"],
        serde_json::json!([{ "rule": "embargo", "reason": "country_denied" }])
    );
    assert_eq!(v["body"], serde_json::Value::Null);
    let out = run(
        &[
            "explain",
            "--ip",
            "192.0.2.1",
            "--path",
            "/.env",
            "--header",
            "Accept: text/html",
        ],
        repo(),
    );
    let report = text(&out.stdout);
    assert!(
        report.contains("decision  deny 403 path_denied (rule \"dotfiles\")"),
        "{report}"
    );
    assert!(report.contains("<!DOCTYPE html>"), "{report}");
}

#[test]
fn explain_refuses_bad_flags_with_a_message() {
    let out = run(
        &["explain", "--ip", "192.0.2.1", "--header", "no-colon"],
        repo(),
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "edgeguard: invalid --header \"no-colon\": write 'Name: value'\n"
    );
    let out = run(&["explain", "--ip", "not-an-ip"], repo());
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn version_prints_the_crate_version() {
    let out = run(&["--version"], repo());
    assert_eq!(
        text(&out.stdout),
        format!("edgeguard {}\n", env!("CARGO_PKG_VERSION"))
    );
}
