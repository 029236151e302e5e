//! Cost of one `Geo::country` lookup (the target is about 100–200 ns).
//!
//! Two databases: a synthetic one of about a million networks (random IPv4 /24 and IPv6 /48
//! from a fixed seed, 250 country codes, GeoIP2-Country-shaped records with names to skip),
//! built with `mmdb-writer` in the setup; and MaxMind's small GeoLite2-Country test
//! database. Each case cycles through 1,024 different addresses so that neither the
//! branch predictor nor the cache sees one address over and over. A country database has
//! few distinct records, so after the first pass a hit is answered from `Geo`'s memo: what
//! is measured is mostly the walk down the search tree.

use std::collections::HashSet;
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::time::{Duration, Instant, UNIX_EPOCH};

use criterion::{Criterion, criterion_group, criterion_main};
use edgeguard::geo::{Country, Geo};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use mmdb_writer::{Value, Writer};

/// IPv4 /24 and IPv6 /48 networks each in the synthetic database: 500,000 each under
/// `cargo bench`, 5,000 when `cargo test --benches` runs this once in debug as a smoke test.
fn networks_per_family() -> usize {
    if std::env::args().any(|arg| arg == "--bench") {
        500_000
    } else {
        5_000
    }
}
const COUNTRIES: usize = 250;
const SAMPLE: usize = 1024;

/// SplitMix64: a fixed seed gives the same database on every run and machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n as u64).expect("below n fits usize")
    }

    /// A public IPv4 /24 (first octet 1..=223, not 10, 100, 127, 169, 172, 192).
    fn public_v4_24(&mut self) -> u32 {
        loop {
            let network = (self.next() as u32) & 0xffff_ff00;
            let first = network >> 24;
            if (1..224).contains(&first) && ![10, 100, 127, 169, 172, 192].contains(&first) {
                return network;
            }
        }
    }

    /// A global-unicast IPv6 /48 inside 2000::/3, outside the IPv4 alias subtrees
    /// (Teredo 2001::/32 and 6to4 2002::/16) where the writer refuses inserts.
    fn global_v6_48(&mut self) -> u128 {
        loop {
            let bits = u128::from(self.next()) << 64;
            let network = (bits & (0x1fff_ffff_ffff_u128 << 80)) | (0x2000_u128 << 112);
            if network >> 112 != 0x2002 && network >> 96 != 0x2001_0000 {
                return network;
            }
        }
    }
}

/// A GeoIP2-Country-shaped record: the decoder must skip `continent` and `names` maps.
fn record(index: usize) -> Value {
    let code = format!(
        "{}{}",
        char::from(b'A' + (index / 26) as u8),
        char::from(b'A' + (index % 26) as u8)
    );
    let names = |what: &str| {
        Value::map([
            ("de", Value::from(format!("{what} {code} (de)"))),
            ("en", Value::from(format!("{what} {code}"))),
            ("fr", Value::from(format!("{what} {code} (fr)"))),
        ])
    };
    let place = |geoname_id: u32| {
        Value::map([
            ("geoname_id", Value::from(geoname_id)),
            ("iso_code", Value::from(code.clone())),
            ("names", names("Country")),
        ])
    };
    let id = u32::try_from(index).expect("250 countries");
    Value::map([
        (
            "continent",
            Value::map([
                ("code", Value::from("EU")),
                ("geoname_id", Value::from(6_255_148_u32)),
                ("names", names("Continent")),
            ]),
        ),
        ("country", place(1_000 + id)),
        ("registered_country", place(2_000 + (id + 7) % 250)),
    ])
}

struct Synthetic {
    bytes: Vec<u8>,
    v4_hits: Vec<IpAddr>,
    v6_hits: Vec<IpAddr>,
    v4_misses: Vec<IpAddr>,
    v6_misses: Vec<IpAddr>,
}

fn build_synthetic() -> Synthetic {
    let started = Instant::now();
    let mut rng = Rng(0x5eed_0001);
    let records: Vec<Value> = (0..COUNTRIES).map(record).collect();
    let mut writer = Writer::builder("Bench-Country")
        .description(&[("en", "edgeguard benchmark database")])
        .build_epoch(UNIX_EPOCH + Duration::from_secs(1_700_000_000))
        .build();
    let per_family = networks_per_family();
    let mut v4 = HashSet::with_capacity(per_family);
    while v4.len() < per_family {
        v4.insert(rng.public_v4_24());
    }
    let mut v6 = HashSet::with_capacity(per_family);
    while v6.len() < per_family {
        v6.insert(rng.global_v6_48());
    }
    // Insert in a fixed order (HashSet order is random per process).
    let mut v4_sorted: Vec<u32> = v4.iter().copied().collect();
    v4_sorted.sort_unstable();
    let mut v6_sorted: Vec<u128> = v6.iter().copied().collect();
    v6_sorted.sort_unstable();
    for &network in &v4_sorted {
        let net = Ipv4Net::new(Ipv4Addr::from(network), 24).expect("/24 is valid");
        let value = records[rng.below(COUNTRIES)].clone();
        writer
            .insert_value(IpNet::V4(net), value)
            .expect("insert v4");
    }
    for &network in &v6_sorted {
        let net = Ipv6Net::new(Ipv6Addr::from(network), 48).expect("/48 is valid");
        let value = records[rng.below(COUNTRIES)].clone();
        writer
            .insert_value(IpNet::V6(net), value)
            .expect("insert v6");
    }
    let bytes = writer.to_bytes().expect("the bench database serializes");

    let pick = |rng: &mut Rng, n: usize| rng.below(n);
    let v4_hits = (0..SAMPLE)
        .map(|_| {
            let host = v4_sorted[pick(&mut rng, v4_sorted.len())] | (rng.next() as u32 & 0xff);
            IpAddr::V4(host.into())
        })
        .collect();
    let v6_hits = (0..SAMPLE)
        .map(|_| {
            let host = v6_sorted[pick(&mut rng, v6_sorted.len())]
                | (u128::from(rng.next()) & ((1 << 80) - 1));
            IpAddr::V6(host.into())
        })
        .collect();
    let v4_misses = std::iter::repeat_with(|| rng.public_v4_24())
        .filter(|network| !v4.contains(network))
        .take(SAMPLE)
        .map(|network| IpAddr::V4((network | 1).into()))
        .collect();
    let v6_misses = std::iter::repeat_with(|| rng.global_v6_48())
        .filter(|network| !v6.contains(network))
        .take(SAMPLE)
        .map(|network| IpAddr::V6((network | 1).into()))
        .collect();
    eprintln!(
        "synthetic database: {} networks, {} bytes, built in {:.1?}",
        2 * per_family,
        bytes.len(),
        started.elapsed()
    );
    Synthetic {
        bytes,
        v4_hits,
        v6_hits,
        v4_misses,
        v6_misses,
    }
}

/// Benchmarks `country` over `addresses` in turn; `expect_known` checks the set first.
fn bench_cycle(c: &mut Criterion, name: &str, geo: &Geo, addresses: &[IpAddr], expect_known: bool) {
    assert_eq!(addresses.len(), SAMPLE);
    for &ip in addresses {
        assert_eq!(
            geo.country(ip) != Country::UNKNOWN,
            expect_known,
            "{name}: unexpected answer for {ip}"
        );
    }
    let mut next = 0;
    c.bench_function(name, |b| {
        b.iter(|| {
            next = (next + 1) % SAMPLE;
            geo.country(black_box(addresses[next]))
        });
    });
}

fn synthetic(c: &mut Criterion) {
    let data = build_synthetic();
    let geo = Geo::from_bytes(data.bytes).expect("the bench database opens");
    bench_cycle(c, "geo/1m/hit_v4", &geo, &data.v4_hits, true);
    bench_cycle(c, "geo/1m/hit_v6", &geo, &data.v6_hits, true);
    let mapped: Vec<IpAddr> = data
        .v4_hits
        .iter()
        .map(|ip| match ip {
            IpAddr::V4(v4) => IpAddr::V6(v4.to_ipv6_mapped()),
            IpAddr::V6(_) => *ip,
        })
        .collect();
    bench_cycle(c, "geo/1m/hit_v4_mapped_v6", &geo, &mapped, true);
    bench_cycle(c, "geo/1m/miss_v4", &geo, &data.v4_misses, false);
    bench_cycle(c, "geo/1m/miss_v6", &geo, &data.v6_misses, false);
    c.bench_function("geo/1m/private_v4", |b| {
        b.iter(|| geo.country(black_box(IpAddr::V4(Ipv4Addr::new(192, 168, 1, 10)))));
    });
}

fn geolite2_test(c: &mut Criterion) {
    let path = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/geoip/GeoLite2-Country-Test.mmdb"
    ));
    let geo = Geo::open(path).expect("the GeoLite2 test database opens");
    // Addresses with a country in this file (see tests/fixtures/geoip/EXPECTED.tsv).
    let hits: Vec<IpAddr> = [
        "81.2.69.142",
        "81.2.69.160",
        "89.160.20.128",
        "67.43.156.1",
        "202.196.224.1",
        "216.160.83.56",
        "2001:218::1",
        "2a02:d180::1",
    ]
    .iter()
    .map(|s| s.parse().expect("a literal address"))
    .cycle()
    .take(SAMPLE)
    .collect();
    let misses: Vec<IpAddr> = ["2.2.3.1", "8.8.8.8", "203.0.113.1", "2001:db8::1"]
        .iter()
        .map(|s| s.parse().expect("a literal address"))
        .cycle()
        .take(SAMPLE)
        .collect();
    bench_cycle(c, "geo/geolite2_test/hit", &geo, &hits, true);
    bench_cycle(c, "geo/geolite2_test/miss", &geo, &misses, false);
    c.bench_function("geo/geolite2_test/private_v4", |b| {
        b.iter(|| geo.country(black_box(IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3)))));
    });
}

criterion_group!(benches, synthetic, geolite2_test);
criterion_main!(benches);
