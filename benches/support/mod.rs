//! What the decision benches share: a deterministic, realistic rulebook written to a
//! temporary folder the way a user would write one — a GeoIP database of about a million
//! networks built with `mmdb-writer`, a blocklist file at each size asked for, an office
//! allowlist, 20 path regexes, a country rule, a hotlink rule, header and query patterns,
//! and `[[test]]` cases — plus addresses each bench knows the answer for.
//!
//! Nothing here measures anything; `decide.rs` times decisions, `compile_memory.rs`
//! times loading and reads resident memory, `reload.rs` times reloads, and `geo.rs`
//! times country lookups in the database alone.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, UNIX_EPOCH};

use edgeguard::geo::is_known_country_code;
use edgeguard::ipset::IpSet;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use mmdb_writer::{Value, Writer};

/// The blocklist sizes of the issue: 10 to 1M prefixes.
const FULL_SIZES: [usize; 4] = [10, 10_000, 100_000, 1_000_000];
/// The sizes of a smoke test under `cargo test --benches`.
const SMOKE_SIZES: [usize; 2] = [10, 1_000];
/// IPv4 /24 and IPv6 /48 networks each in the database when measuring: a million in all.
const FULL_GEO_PER_FAMILY: usize = 500_000;
/// The same in a smoke test.
const SMOKE_GEO_PER_FAMILY: usize = 5_000;

/// Whether this run measures (`cargo bench`), rather than checks that the bench works
/// (`cargo test --benches`, or `cargo bench -- --test`), which must stay cheap: the full
/// setup (a million-network database, a million-prefix list) takes tens of seconds.
pub fn full_size() -> bool {
    let has = |flag: &str| std::env::args().any(|arg| arg == flag);
    has("--bench") && !has("--test") && !has("--list")
}

/// The blocklist sizes of this run, smallest first.
pub fn sizes() -> &'static [usize] {
    if full_size() {
        &FULL_SIZES
    } else {
        &SMOKE_SIZES
    }
}

/// Networks of each family in this run's GeoIP database.
pub fn geo_per_family() -> usize {
    if full_size() {
        FULL_GEO_PER_FAMILY
    } else {
        SMOKE_GEO_PER_FAMILY
    }
}

/// SplitMix64: a fixed seed gives the same data on every run and machine.
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number below `n`.
    pub fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n as u64).expect("below n fits usize")
    }

    /// A public IPv4 /24 (first octet 1..=223, not 10, 100, 127, 169, 172, 192, 198).
    pub fn public_v4_24(&mut self) -> u32 {
        loop {
            let network = (self.next() as u32) & 0xffff_ff00;
            let first = network >> 24;
            if (1..224).contains(&first) && ![10, 100, 127, 169, 172, 192, 198].contains(&first) {
                return network;
            }
        }
    }

    /// A global-unicast IPv6 /48 inside 2000::/3, outside the IPv4 alias subtrees
    /// (Teredo 2001::/32 and 6to4 2002::/16) where the writer refuses inserts, and outside
    /// the documentation prefix 2001:db8::/32 the office list uses.
    pub fn global_v6_48(&mut self) -> u128 {
        loop {
            let bits = u128::from(self.next()) << 64;
            let network = (bits & (0x1fff_ffff_ffff_u128 << 80)) | (0x2000_u128 << 112);
            if network >> 112 != 0x2002 && network >> 96 != 0x2001_0000 {
                return network;
            }
        }
    }
}

/// A synthetic country database and the networks it holds.
pub struct GeoDb {
    /// The MaxMind DB file.
    pub bytes: Vec<u8>,
    /// Its IPv4 /24 networks, sorted.
    pub v4: Vec<u32>,
    /// Its IPv6 /48 networks, sorted.
    pub v6: Vec<u128>,
}

/// A GeoIP2-Country-shaped record, so the decoder skips `continent` and `names` maps.
fn record(code: &str, geoname_id: u32) -> Value {
    let names = |what: &str| {
        Value::map([
            ("de", Value::from(format!("{what} {code} (de)"))),
            ("en", Value::from(format!("{what} {code}"))),
            ("fr", Value::from(format!("{what} {code} (fr)"))),
        ])
    };
    Value::map([
        (
            "continent",
            Value::map([
                ("code", Value::from("EU")),
                ("geoname_id", Value::from(6_255_148_u32)),
                ("names", names("Continent")),
            ]),
        ),
        (
            "country",
            Value::map([
                ("geoname_id", Value::from(geoname_id)),
                ("iso_code", Value::from(code.to_owned())),
                ("names", names("Country")),
            ]),
        ),
        (
            "registered_country",
            Value::map([
                ("geoname_id", Value::from(geoname_id + 1)),
                ("iso_code", Value::from(code.to_owned())),
                ("names", names("Country")),
            ]),
        ),
    ])
}

/// Builds a database of `per_family` random IPv4 /24 and as many IPv6 /48 networks, each
/// given one of the 248 assigned country codes (all but `XX`) at random.
pub fn build_geo(per_family: usize) -> GeoDb {
    let started = Instant::now();
    let mut rng = Rng(0x5eed_0003);
    let mut codes = Vec::new();
    for a in b'A'..=b'Z' {
        for b in b'A'..=b'Z' {
            let code = String::from_utf8(vec![a, b]).expect("two ASCII letters");
            if is_known_country_code(&code) && code != "XX" {
                codes.push(code);
            }
        }
    }
    let records: Vec<Value> = (0u32..)
        .zip(&codes)
        .map(|(i, code)| record(code, 1_000 + 2 * i))
        .collect();
    let mut writer = Writer::builder("Bench-Country")
        .description(&[("en", "edgeguard decision benchmark database")])
        .build_epoch(UNIX_EPOCH + Duration::from_secs(1_700_000_000))
        .build();
    let mut v4 = HashSet::with_capacity(per_family);
    while v4.len() < per_family {
        v4.insert(rng.public_v4_24());
    }
    let mut v6 = HashSet::with_capacity(per_family);
    while v6.len() < per_family {
        v6.insert(rng.global_v6_48());
    }
    // Insert in a fixed order (HashSet order is random per process).
    let mut v4: Vec<u32> = v4.into_iter().collect();
    v4.sort_unstable();
    let mut v6: Vec<u128> = v6.into_iter().collect();
    v6.sort_unstable();
    for &network in &v4 {
        let net = Ipv4Net::new(Ipv4Addr::from(network), 24).expect("/24 is valid");
        let value = records[rng.below(records.len())].clone();
        writer
            .insert_value(IpNet::V4(net), value)
            .expect("insert v4");
    }
    for &network in &v6 {
        let net = Ipv6Net::new(Ipv6Addr::from(network), 48).expect("/48 is valid");
        let value = records[rng.below(records.len())].clone();
        writer
            .insert_value(IpNet::V6(net), value)
            .expect("insert v6");
    }
    let bytes = writer.to_bytes().expect("the bench database serializes");
    eprintln!(
        "geoip database: {} networks, {} bytes, built in {:.1?}",
        v4.len() + v6.len(),
        bytes.len(),
        started.elapsed()
    );
    GeoDb { bytes, v4, v6 }
}

/// `n` blocklist entries; a shorter list is a prefix of a longer one, so an address outside
/// the longest list is outside every list. 90% IPv4 (half `/32`, a quarter `/24`, a fifth
/// `/25`–`/31`, the rest `/16`–`/23`), 10% IPv6 in `2000::/3` (`/32`–`/128`). None lies in
/// 198.0.0.0/8 or 203.0.0.0/8, where the rulebook's office and test addresses are.
pub fn blocklist(n: usize) -> Vec<IpNet> {
    let mut rng = Rng(0x5eed_b10c);
    let reserved = |net: &IpNet| match net {
        IpNet::V4(n) => [198, 203].contains(&n.network().octets()[0]),
        IpNet::V6(_) => false,
    };
    std::iter::repeat_with(|| {
        if rng.below(10) == 0 {
            let len = [32, 48, 48, 56, 64, 64, 64, 128, 128, 128][rng.below(10)];
            let raw = (u128::from(rng.next()) << 64) | u128::from(rng.next());
            let addr = Ipv6Addr::from((1 << 125) | (raw >> 3));
            IpNet::V6(Ipv6Net::new(addr, len).expect("len <= 128").trunc())
        } else {
            let len = match rng.below(20) {
                0..10 => 32,
                10..15 => 24,
                15..19 => 25 + rng.below(7) as u8,
                _ => 16 + rng.below(8) as u8,
            };
            let addr = Ipv4Addr::from(rng.next() as u32);
            IpNet::V4(Ipv4Net::new(addr, len).expect("len <= 32").trunc())
        }
    })
    .filter(|net| !reserved(net))
    .take(n)
    .collect()
}

/// The rulebooks of one run, written in a temporary folder that is removed on drop.
pub struct Fixture {
    /// The folder: `geo.mmdb`, `blocklist-N.txt` and `rulebook-N.toml` for each size.
    pub dir: tempfile::TempDir,
    /// The database's networks (its bytes are in `geo.mmdb`).
    pub geo_v4: Vec<u32>,
    /// The database's IPv6 networks.
    pub geo_v6: Vec<u128>,
    /// The longest blocklist; the list of size `n` is its first `n` entries.
    pub blocklist: Vec<IpNet>,
    /// The longest blocklist, compiled, to pick addresses outside every list.
    pub blocked: IpSet,
    /// Each size with its rulebook.
    pub rulebooks: Vec<(usize, PathBuf)>,
}

impl Fixture {
    /// Builds the database (`geo_per_family` networks of each family) and one rulebook per
    /// size.
    pub fn build(sizes: &[usize], geo_per_family: usize) -> Fixture {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let geo = build_geo(geo_per_family);
        std::fs::write(dir.path().join("geo.mmdb"), &geo.bytes).expect("write geo.mmdb");
        let longest = sizes.iter().copied().max().unwrap_or(0);
        let blocklist = blocklist(longest);
        let blocked = IpSet::new(blocklist.iter().copied());
        let mut fixture = Fixture {
            dir,
            geo_v4: geo.v4,
            geo_v6: geo.v6,
            blocklist,
            blocked,
            rulebooks: Vec::new(),
        };
        let allowed_v4 = fixture.unblocked(&mut Rng(0x5eed_7e57), 1, false)[0];
        for &size in sizes {
            let path = fixture.write_rulebook(size, allowed_v4);
            fixture.rulebooks.push((size, path));
        }
        fixture
    }

    /// `count` addresses inside the database's networks (IPv6 ones with `v6`) and outside
    /// every blocklist.
    pub fn unblocked(&self, rng: &mut Rng, count: usize, v6: bool) -> Vec<IpAddr> {
        std::iter::repeat_with(|| {
            if v6 {
                let network = self.geo_v6[rng.below(self.geo_v6.len())];
                let host = u128::from(rng.next()) | (u128::from(rng.next() as u16) << 64);
                IpAddr::V6(Ipv6Addr::from(network | host))
            } else {
                let network = self.geo_v4[rng.below(self.geo_v4.len())];
                IpAddr::V4(Ipv4Addr::from(network | (rng.next() as u32 & 0xff)))
            }
        })
        .filter(|ip| !self.blocked.contains(*ip))
        .take(count)
        .collect()
    }

    /// The rulebook of `size`.
    pub fn rulebook(&self, size: usize) -> &Path {
        let (_, path) = self
            .rulebooks
            .iter()
            .find(|(s, _)| *s == size)
            .expect("a rulebook of every size built");
        path
    }

    fn write_rulebook(&self, size: usize, allowed: IpAddr) -> PathBuf {
        let list_name = format!("blocklist-{size}.txt");
        let mut list = String::with_capacity(size * 20);
        list.push_str("# synthetic blocklist for the decision benchmarks\n");
        for net in &self.blocklist[..size] {
            // Single addresses written bare, as blocklists usually do.
            let written = match net {
                IpNet::V4(n) if n.prefix_len() == 32 => writeln!(list, "{}", n.addr()),
                IpNet::V6(n) if n.prefix_len() == 128 => writeln!(list, "{}", n.addr()),
                _ => writeln!(list, "{net}"),
            };
            written.expect("writing to a String cannot fail");
        }
        std::fs::write(self.dir.path().join(&list_name), list).expect("write the blocklist");
        let blocked = match self.blocklist[0] {
            IpNet::V4(n) => n.network().to_string(),
            IpNet::V6(n) => n.network().to_string(),
        };
        let text = RULEBOOK
            .replace("{blocklist}", &list_name)
            .replace("{blocked}", &blocked)
            .replace("{allowed}", &allowed.to_string());
        let path = self.dir.path().join(format!("rulebook-{size}.toml"));
        std::fs::write(&path, text).expect("write the rulebook");
        path
    }
}

/// The rulebook, written like `config/edgeguard.toml`; `{blocklist}` names the list file,
/// `{blocked}` and `{allowed}` are addresses for its tests.
const RULEBOOK: &str = r#"# The decision benchmarks' rulebook: a public site behind edgeguard.
[server]
default_action = "allow"

[geoip]
database = "geo.mmdb"

[lists]
office = ["198.51.100.0/24", "203.0.113.0/25", "2001:db8:1::/48"]
blocklist = { file = "{blocklist}" }

[[route]]
upstream = "http://127.0.0.1:3000"

[[rule]]
name = "acme-challenges"
action = "allow"
path_prefix = ["/.well-known/acme-challenge/"]

[[rule]]
name = "blocklist"
action = "deny"
ip = ["@blocklist", "198.18.0.7"]
message = "Your network is blocked."

[[rule]]
name = "admin-from-office-only"
action = "deny"
path_prefix = ["/admin", "/internal"]
not_ip = ["@office"]

[[rule]]
name = "dotfiles"
action = "deny"
path_regex = ['/\.', '~$']
status = 404

[[rule]]
name = "backup-files"
action = "deny"
path_regex = [
    '(?i)\.(bak|old|orig|save|swp|tmp)$',
    '(?i)\.(sql|sqlite3?|db)(\.(gz|bz2|xz|zip))?$',
    '(?i)\.(tar|tgz|tar\.gz|zip|7z|rar)$',
    '(?i)/(backups?|dumps?)/',
    '(?i)\.(log|ini|conf|env|yml)$',
    '(?i)/web\.config$',
]
status = 404

[[rule]]
name = "cms-probes"
action = "deny"
path_regex = [
    '^/wp-(admin|login|includes|content/plugins)',
    '(?i)/xmlrpc\.php$',
    '(?i)/php-?my-?admin',
    '(?i)\.(php[3-7]?|phtml|aspx?|jsp|cgi|pl)$',
    '^/cgi-bin/',
    '(?i)/vendor/phpunit/',
    '(?i)/(solr|actuator|jmx-console|manager/html)',
    '(?i)^/(owa|autodiscover|ecp)/',
    '(?i)/(hnap1|boaform|gponform)',
    '(?i)/(shell|cmd|c99|r57|webshell)\.',
    '/etc/passwd',
    '^/server-(status|info)$',
]
status = 404

[[rule]]
name = "embargo"
action = "deny"
country = ["KP", "IR", "SY", "CU"]
status = 451

[[rule]]
name = "no-hotlinking"
action = "deny"
path_regex = ['(?i)\.(png|jpe?g|gif|webp|avif|svg)$']
hotlink = { allow = ["example.com", "*.example.com", "*.example-cdn.net"], allow_missing = true }

[[rule]]
name = "scanners"
action = "deny"
header_regex = { "user-agent" = '(?i)sqlmap|nikto|masscan|zgrab|nuclei|dirbuster|gobuster|wpscan' }

[[rule]]
name = "sql-injection-probes"
action = "deny"
query_regex = ['(?i)union(\s|%20|\+)+select', "(?i)(%27|')(\\s|%20|\\+)*or(\\s|%20|\\+)+1=1"]

[[test]]
name = "the blocklist file is enforced"
request = { ip = "{blocked}", path = "/" }
expect = { decision = "deny", reason = "ip_denied", rule = "blocklist" }

[[test]]
name = "admin is refused outside the office"
request = { ip = "{allowed}", path = "/admin", country = "FR" }
expect = { decision = "deny", reason = "ip_denied", rule = "admin-from-office-only" }

[[test]]
name = "the office reaches admin"
request = { ip = "198.51.100.7", path = "/admin/users" }
expect = "allow"

[[test]]
name = "dotfiles are hidden"
request = { ip = "{allowed}", path = "/.git/config", country = "FR" }
expect = { decision = "deny", status = 404, rule = "dotfiles" }

[[test]]
name = "probes are hidden"
request = { ip = "{allowed}", path = "/wp-login.php", country = "FR" }
expect = { decision = "deny", status = 404, rule = "cms-probes" }

[[test]]
name = "embargoed countries are refused"
request = { ip = "{allowed}", path = "/", country = "KP" }
expect = { decision = "deny", status = 451, reason = "country_denied" }

[[test]]
name = "images linked from elsewhere are refused"
request = { ip = "{allowed}", path = "/img/logo.png", host = "www.example.com", referer = "https://evil.test/", country = "FR" }
expect = { decision = "deny", reason = "hotlink_denied" }

[[test]]
name = "images on our own pages are served"
request = { ip = "{allowed}", path = "/img/logo.png", host = "www.example.com", referer = "https://shop.example.com/", country = "FR" }
expect = "allow"

[[test]]
name = "scanners are refused"
request = { ip = "{allowed}", path = "/", headers = { "User-Agent" = "sqlmap/1.7" }, country = "FR" }
expect = { decision = "deny", reason = "pattern_denied", rule = "scanners" }

[[test]]
name = "injection probes are refused"
request = { ip = "{allowed}", path = "/search?q=1 UNION SELECT password", country = "FR" }
expect = { decision = "deny", reason = "pattern_denied", rule = "sql-injection-probes" }
"#;
