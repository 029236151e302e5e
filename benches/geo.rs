//! Cost of one `Geo::country` lookup (the target is about 100–200 ns).
//!
//! Two databases: the decision benches' synthetic one of about a million networks (random
//! IPv4 /24 and IPv6 /48 from a fixed seed, every assigned country code, GeoIP2-Country-shaped
//! records with names to skip; see `support/mod.rs`), built with `mmdb-writer` in the setup;
//! and MaxMind's small GeoLite2-Country test database. Each case cycles through 1,024 different addresses so that neither the
//! branch predictor nor the cache sees one address over and over. A country database has
//! few distinct records, so after the first pass a hit is answered from `Geo`'s memo: what
//! is measured is mostly the walk down the search tree.

#[allow(dead_code)] // the decision benches' support, of which this bench uses the database
mod support;

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};
use edgeguard::geo::{Country, Geo};

use support::Rng;

const SAMPLE: usize = 1024;

struct Synthetic {
    bytes: Vec<u8>,
    v4_hits: Vec<IpAddr>,
    v6_hits: Vec<IpAddr>,
    v4_misses: Vec<IpAddr>,
    v6_misses: Vec<IpAddr>,
}

/// The decision benches' database (`support::build_geo`), with addresses inside its
/// networks and outside them.
fn build_synthetic() -> Synthetic {
    let db = support::build_geo(support::geo_per_family());
    let mut rng = Rng(0x5eed_0001);
    let v4_hits = (0..SAMPLE)
        .map(|_| {
            let host = db.v4[rng.below(db.v4.len())] | (rng.next() as u32 & 0xff);
            IpAddr::V4(host.into())
        })
        .collect();
    let v6_hits = (0..SAMPLE)
        .map(|_| {
            let host = db.v6[rng.below(db.v6.len())] | (u128::from(rng.next()) & ((1 << 80) - 1));
            IpAddr::V6(host.into())
        })
        .collect();
    let v4_misses = std::iter::repeat_with(|| rng.public_v4_24())
        .filter(|network| db.v4.binary_search(network).is_err())
        .take(SAMPLE)
        .map(|network| IpAddr::V4((network | 1).into()))
        .collect();
    let v6_misses = std::iter::repeat_with(|| rng.global_v6_48())
        .filter(|network| db.v6.binary_search(network).is_err())
        .take(SAMPLE)
        .map(|network| IpAddr::V6((network | 1).into()))
        .collect();
    Synthetic {
        bytes: db.bytes,
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
