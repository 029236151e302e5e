//! The rulebook (SPEC 1–2): every kind of mistake reported at its
//! PATH:LINE:COLUMN with an exact message, all of them at once, defaults, and
//! the shipped and documented rulebooks loading cleanly.

use std::time::Duration;

use edgeguard::config::{AccessLog, DefaultAction};
use edgeguard::path::{Backslash, EncodedSlash, Semicolon};

use crate::common::{Folder, errors_of, policy_of, repo};

const ROUTE: &str = "[[route]]\nupstream = \"http://127.0.0.1:3000\"\n";

fn one(rulebook: &str) -> String {
    let errors = errors_of(rulebook);
    assert_eq!(
        errors.len(),
        1,
        "expected one error, got:\n{}",
        errors.join("\n")
    );
    errors.into_iter().next().expect("one error")
}

#[test]
fn syntax_error_is_located() {
    assert_eq!(
        one("[server]\nlisten = [\"0.0.0.0:8080\"\n"),
        "r.toml:2:25: invalid TOML: unclosed array, expected `]`"
    );
}

#[test]
fn unknown_top_level_table_suggests_the_closest() {
    assert_eq!(
        one("[sever]\nlisten = []\n"),
        "r.toml:1:2: unknown table \"sever\"; did you mean \"server\"?"
    );
}

#[test]
fn unknown_key_in_a_nested_table_is_located() {
    assert_eq!(
        one("[server.limits]\nheader_timeout = \"10s\"\nmax_header = 9000\n"),
        "r.toml:3:1: unknown key \"max_header\" in [server.limits]; did you mean \"max_header_bytes\"?"
    );
}

#[test]
fn unknown_key_in_a_rule_names_the_rule() {
    assert_eq!(
        one("[[rule]]\nname = \"dotfiles\"\naction = \"deny\"\npth_regex = ['/\\.']\n"),
        "r.toml:4:1: unknown key \"pth_regex\" in rule \"dotfiles\"; did you mean \"path_regex\"?"
    );
}

#[test]
fn wrong_type_is_located_at_the_value() {
    assert_eq!(
        one("[server]\nexpose_rule_names = \"yes\"\n"),
        "r.toml:2:21: [server]: expose_rule_names: invalid type: string \"yes\", expected a boolean"
    );
}

#[test]
fn unknown_enum_value_lists_the_known_ones() {
    assert_eq!(
        one("[log]\naccess = \"some\"\n"),
        "r.toml:2:10: [log]: access: unknown value \"some\", expected one of \"all\", \"refusals\", \"off\""
    );
}

#[test]
fn missing_required_key_points_at_the_table() {
    assert_eq!(
        one("[[rule]]\naction = \"deny\"\n"),
        "r.toml:1:1: rule #1: missing key \"name\""
    );
}

#[test]
fn bad_cidr_in_a_rule_is_located() {
    assert_eq!(
        one("[[rule]]\nname = \"r\"\naction = \"deny\"\nip = [\"10.0.0.0/8\", \"10.0.0.300\"]\n"),
        "r.toml:4:21: invalid IP address or CIDR \"10.0.0.300\""
    );
}

#[test]
fn bad_cidr_in_a_list_file_is_located_in_that_file() {
    let folder = Folder::with(&[
        ("r.toml", "[lists]\nbad = { file = \"lists/bad.txt\" }\n"),
        (
            "lists/bad.txt",
            "# header\n10.0.0.0/8\n\n   2001:db8::/129   # too long\n",
        ),
    ]);
    assert_eq!(
        folder.errors(),
        ["lists/bad.txt:4:4: invalid IP address or CIDR \"2001:db8::/129\""]
    );
}

#[test]
fn unreadable_list_file_points_at_the_key() {
    let errors = errors_of("[lists]\nbad = { file = \"nowhere.txt\" }\n");
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0].starts_with("r.toml:2:16: cannot read list file \"")
            && errors[0].ends_with("nowhere.txt\": No such file or directory (os error 2)"),
        "{}",
        errors[0]
    );
}

#[test]
fn bad_regex_says_what_rust_regex_lacks() {
    let rulebook = "[[rule]]\nname = \"r\"\naction = \"deny\"\npath_regex = ['(?!admin)', '(']\n";
    assert_eq!(
        errors_of(rulebook),
        [
            "r.toml:4:15: invalid regex \"(?!admin)\": look-around, including look-ahead and look-behind, is not supported (Rust regex syntax has no lookaround)",
            "r.toml:4:28: invalid regex \"(\": unclosed group",
        ]
    );
}

#[test]
fn unknown_list_name_lists_the_known_ones() {
    let rulebook = "[lists]\noffice = [\"10.0.0.0/8\"]\n[[rule]]\nname = \"r\"\naction = \"deny\"\nnot_ip = [\"@ofice\"]\n";
    assert_eq!(
        one(rulebook),
        "r.toml:6:11: unknown list \"@ofice\"; known lists: office"
    );
}

#[test]
fn duplicate_rule_names_point_at_the_second() {
    let rulebook =
        "[[rule]]\nname = \"a\"\naction = \"allow\"\n\n[[rule]]\nname = \"a\"\naction = \"deny\"\n";
    assert_eq!(
        one(rulebook),
        "r.toml:6:8: duplicate rule name \"a\" (first at line 2)"
    );
}

#[test]
fn country_rule_needs_geoip() {
    let rulebook = "[[rule]]\nname = \"r\"\naction = \"deny\"\ncountry = [\"KP\"]\n";
    assert_eq!(
        one(rulebook),
        "r.toml:4:11: rule \"r\": country needs a [geoip] database"
    );
}

#[test]
fn require_rule_needs_auth() {
    let rulebook = "[[rule]]\nname = \"r\"\naction = \"require\"\nroles = [\"admin\"]\n";
    assert_eq!(
        one(rulebook),
        "r.toml:3:10: rule \"r\": a require rule needs an [auth] table to verify tokens"
    );
}

#[test]
fn geoip_database_that_will_not_open_points_at_the_key() {
    let folder = Folder::with(&[
        ("r.toml", "[geoip]\ndatabase = \"broken.mmdb\"\n"),
        ("broken.mmdb", "this is not a MaxMind database"),
    ]);
    let errors = folder.errors();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with("r.toml:2:12: invalid geoip database \""),
        "{}",
        errors[0]
    );
}

#[test]
fn max_header_bytes_has_a_floor() {
    assert_eq!(
        one("[server.limits]\nmax_header_bytes = 4096\n"),
        "r.toml:2:20: [server.limits] max_header_bytes 4096 must be between 8192 and 16777216"
    );
}

#[test]
fn upstream_must_be_scheme_host_port() {
    assert_eq!(
        one("[[route]]\nupstream = \"http://127.0.0.1:3000/app\"\n"),
        "r.toml:2:12: upstream \"http://127.0.0.1:3000/app\" must not have a path: routes forward the request's path unchanged"
    );
    assert_eq!(
        one("[[route]]\nupstream = \"ftp://files\"\n"),
        "r.toml:2:12: upstream \"ftp://files\": unsupported scheme \"ftp\"; use http:// or https://"
    );
}

#[test]
fn https_upstream_keys_are_checked_and_located() {
    let https = "[[route]]\nupstream = \"https://127.0.0.1:8443\"\n";
    assert_eq!(
        one("[[route]]\nupstream = \"http://127.0.0.1:3000\"\nca_file = \"ca.pem\"\n"),
        "r.toml:3:11: route ca_file only applies to https:// upstreams"
    );
    assert_eq!(
        one("[[route]]\nroot = \".\"\nsni = \"app.internal\"\n"),
        "r.toml:3:7: route sni only applies to https:// upstreams"
    );
    assert_eq!(
        one(&format!("{https}sni = \"not a name\"\n")),
        "r.toml:3:7: invalid TLS server name \"not a name\""
    );
    let missing = one(&format!("{https}ca_file = \"missing.pem\"\n"));
    assert!(
        missing.starts_with("r.toml:3:11: cannot read ca_file \"")
            && missing.contains("missing.pem"),
        "{missing}"
    );
    let folder = Folder::with(&[
        ("r.toml", &format!("{https}ca_file = \"empty.pem\"\n")),
        ("empty.pem", "no certificate here\n"),
    ]);
    let errors = folder.errors();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with("r.toml:3:11: ca_file \""),
        "{}",
        errors[0]
    );
    assert!(
        errors[0].ends_with("holds no PEM certificate"),
        "{}",
        errors[0]
    );
}

#[test]
fn an_https_upstreams_ca_file_is_watched() {
    let ca = repo().join("tests/fixtures/tls/ca.pem");
    let policy = policy_of(&format!(
        "[[route]]\nupstream = \"https://localhost:8443\"\nca_file = \"{}\"\n",
        ca.display()
    ));
    assert!(
        policy.source.files.contains(&ca),
        "{:?}",
        policy.source.files
    );
}

#[test]
fn durations_need_a_unit() {
    assert_eq!(
        one("[server.limits]\nidle_timeout = \"60\"\n"),
        "r.toml:2:16: [server.limits] idle_timeout: invalid duration \"60\": write a whole number and a unit, e.g. \"250ms\", \"10s\", \"5m\", \"1h\""
    );
}

#[test]
fn five_mistakes_print_five_lines_in_file_order() {
    let rulebook = r#"[server]
listen = ["0.0.0.0:80800"]
default_action = "block"

[[rule]]
name = "a"
action = "deny"
path_regex = ["[z-a]"]
colour = "red"

[[rule]]
name = "b"
action = "deny"
ip = ["@missing"]
"#;
    assert_eq!(
        errors_of(rulebook),
        [
            "r.toml:2:11: invalid address \"0.0.0.0:80800\": write IP:PORT, e.g. \"0.0.0.0:8080\" or \"[::]:8080\"",
            "r.toml:3:18: [server]: default_action: unknown value \"block\", expected \"allow\" or \"deny\"",
            "r.toml:8:15: invalid regex \"[z-a]\": invalid character class range, the start must be <= the end",
            "r.toml:9:1: unknown key \"colour\" in rule \"a\"; expected one of: name, action, ip, not_ip, country, not_country, method, not_method, host, not_host, path_prefix, not_path_prefix, path_regex, not_path_regex, query_regex, header_regex, hotlink, roles, message, status, dry_run",
            "r.toml:14:7: unknown list \"@missing\"; [lists] defines none",
        ]
    );
}

#[test]
fn defaults_are_those_of_spec_section_2() {
    let policy = policy_of(ROUTE);
    let s = &policy.settings;
    assert_eq!(s.listen, ["0.0.0.0:8080".parse().expect("addr")]);
    assert_eq!(s.admin, Some("127.0.0.1:9901".parse().expect("addr")));
    assert_eq!(s.default_action, DefaultAction::Allow);
    assert!(s.expose_rule_names);
    assert_eq!(s.access_log, AccessLog::All);
    let l = &s.limits;
    assert_eq!(l.header_timeout, Duration::from_secs(10));
    assert_eq!(l.max_header_bytes, 65536);
    assert_eq!(l.max_body_bytes, None);
    assert_eq!(l.body_timeout, Duration::from_secs(60));
    assert_eq!(l.idle_timeout, Duration::from_secs(60));
    assert_eq!(l.shutdown_grace, Duration::from_secs(10));
    assert_eq!(l.max_connections, 10000);
    assert_eq!(l.upstream_connect_timeout, Duration::from_secs(3));
    assert_eq!(l.upstream_timeout, Duration::from_secs(60));
    assert!(policy.client_ip.trusted.is_empty());
    assert!(!policy.client_ip.proxy_protocol);
    let p = policy.paths;
    assert!(p.merge_slashes);
    assert_eq!(p.encoded_slash, EncodedSlash::Reject);
    assert_eq!(p.backslash, Backslash::Reject);
    assert_eq!(p.semicolon, Semicolon::Reject);
    let route = &policy.routes.all()[0];
    assert_eq!(route.path_prefix, "/");
    assert!(route.index.is_empty());
    assert!(!route.autoindex && route.preserve_host);
}

#[test]
fn admin_off_disables_the_admin_listener() {
    let policy = policy_of("[server]\nadmin = \"off\"\n");
    assert_eq!(policy.settings.admin, None);
}

#[test]
fn relative_paths_resolve_against_the_rulebook_folder() {
    let folder = Folder::with(&[
        (
            "conf/r.toml",
            "[lists]\nb = { file = \"lists/b.txt\" }\n[geoip]\ndatabase = \"../db/c.mmdb\"\n",
        ),
        ("conf/lists/b.txt", "192.0.2.0/24\n"),
    ]);
    std::fs::create_dir_all(folder.path("db")).expect("mkdir");
    std::fs::copy(
        repo().join("geoip/GeoLite2-Country-Test.mmdb"),
        folder.path("db/c.mmdb"),
    )
    .expect("copy database");
    let loaded = edgeguard::policy::load(&folder.path("conf/r.toml")).expect("loads");
    assert_eq!(loaded.policy.lists[0].entries, 1);
    assert!(loaded.policy.geo.is_some());
}

#[test]
fn list_files_take_comments_blank_lines_and_bare_addresses() {
    let folder = Folder::with(&[
        ("r.toml", "[lists]\nb = { file = \"b.txt\" }\n"),
        (
            "b.txt",
            "# blocklist\n\n192.0.2.1\n  198.51.100.0/24 # office\n2001:db8::/32\n\t\n",
        ),
    ]);
    let loaded = folder.load().expect("loads");
    let list = &loaded.policy.lists[0];
    let set = &list.set;
    assert_eq!((list.name.as_str(), list.entries), ("b", 3));
    for ip in ["192.0.2.1", "198.51.100.77", "2001:db8::5"] {
        assert!(set.contains(ip.parse().expect("ip")), "{ip}");
    }
    assert!(!set.contains("192.0.2.2".parse().expect("ip")));
}

#[test]
fn the_shipped_rulebook_loads_and_passes_its_tests() {
    let loaded = edgeguard::policy::load(&repo().join("config/edgeguard.toml"))
        .unwrap_or_else(|e| panic!("config/edgeguard.toml does not load:\n{e}"));
    assert!(loaded.policy.tests.len() >= 10);
    assert!(!loaded.policy.rules.is_empty());
    // The only warning is the honest one: the bundled GeoIP database is MaxMind's test data.
    let warnings: Vec<String> = loaded.warnings.iter().map(|w| w.message.clone()).collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("is a test database"), "{warnings:?}");
}

/// Every ```toml block of the README and docs loads (a block that is a
/// fragment says so with `toml fragment` and is only parsed as TOML).
#[test]
fn every_toml_example_in_the_docs_loads() {
    let mut checked = 0;
    for doc in ["README.md", "geoip/README.md"] {
        let text = std::fs::read_to_string(repo().join(doc)).expect("read doc");
        let mut lines = text.lines();
        while let Some(line) = lines.next() {
            let fence = line.trim();
            if !fence.starts_with("```toml") {
                continue;
            }
            let block: Vec<&str> = lines.by_ref().take_while(|l| l.trim() != "```").collect();
            let block = block.join("\n");
            if fence.contains("fragment") {
                toml::from_str::<toml::Table>(&block).unwrap_or_else(|e| {
                    panic!("{doc}: TOML fragment does not parse: {e}\n{block}")
                });
            } else {
                // Examples name files relative to config/, as the shipped rulebook does.
                let path = repo()
                    .join("config")
                    .join(format!(".doc-example-{checked}.toml"));
                std::fs::write(&path, &block).expect("write example");
                let result = edgeguard::policy::load(&path);
                std::fs::remove_file(&path).expect("remove example");
                if let Err(e) = result {
                    panic!("{doc}: TOML example does not load:\n{e}\n---\n{block}");
                }
            }
            checked += 1;
        }
    }
    assert!(checked > 0, "no TOML examples found in the docs");
}
