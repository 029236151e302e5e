//! Chooses the CIDR set behind `ip`/`not_ip`, `@list`s and `trusted_proxies`: edgeguard's
//! `IpSet` (merged sorted intervals with a leading-bits bucket table) against the
//! `prefix-trie` crate (two `PrefixSet`s, `is_covered`) and a linear scan (small sizes only).
//!
//! Data: a deterministic mix of random prefixes, 90% IPv4 (half `/32`, a fifth `/24`, a
//! quarter `/25`–`/31`, the rest `/16`–`/23`) and 10% IPv6 in `2000::/3` (`/32`–`/128`).
//! Lookups cycle through 65,536 precomputed addresses of the same family mix: hits inside a
//! random member, misses verified outside every member. Build time includes folding mapped
//! networks, sorting and merging.
//!
//! Before the criterion runs, a memory report is printed for 100k and 1M prefixes: heap bytes
//! from the structures' own accounting (`IpSet::heap_bytes`, `PrefixSet::mem_size`, the
//! scan's `Vec` capacity) and the growth of resident memory (`VmRSS` in `/proc/self/status`)
//! across the build, each measured in a fresh child process so freed memory of one build
//! cannot hide another's.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use criterion::{BatchSize, BenchmarkId, Criterion};
use edgeguard::ipset::{IpSet, normalize};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use prefix_trie::PrefixSet;

const SIZES: [usize; 4] = [10, 10_000, 100_000, 1_000_000];
/// The linear scan is only run up to this size.
const NAIVE_MAX: usize = 10_000;
const QUERIES: usize = 1 << 16;
const SEED: u64 = 0x5eed_ed6e_6a4d;
const CHILD_ENV: &str = "EDGEGUARD_IPSET_BENCH_RSS";

/// splitmix64: deterministic and dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn v4(&mut self) -> u32 {
        self.next() as u32
    }

    /// An address in `2000::/3`, where global unicast lives.
    fn v6(&mut self) -> u128 {
        let raw = (u128::from(self.next()) << 64) | u128::from(self.next());
        (1 << 125) | (raw >> 3)
    }
}

fn prefixes(n: usize) -> Vec<IpNet> {
    let mut rng = Rng(SEED ^ n as u64);
    (0..n)
        .map(|_| {
            if rng.below(10) == 0 {
                let len = [32, 48, 48, 56, 64, 64, 64, 128, 128, 128][rng.below(10) as usize];
                IpNet::V6(Ipv6Net::new(Ipv6Addr::from(rng.v6()), len).expect("len <= 128"))
            } else {
                let len = match rng.below(20) {
                    0..10 => 32,
                    10..14 => 24,
                    14..19 => 25 + rng.below(7) as u8,
                    _ => 16 + rng.below(8) as u8,
                };
                IpNet::V4(Ipv4Net::new(Ipv4Addr::from(rng.v4()), len).expect("len <= 32"))
            }
        })
        .collect()
}

fn hits(nets: &[IpNet], rng: &mut Rng) -> Vec<IpAddr> {
    (0..QUERIES)
        .map(|_| match nets[rng.below(nets.len() as u64) as usize] {
            IpNet::V4(n) => {
                let host = rng.v4() & u32::from(n.hostmask());
                IpAddr::V4(Ipv4Addr::from(u32::from(n.network()) | host))
            }
            IpNet::V6(n) => {
                let host = rng.v6() & u128::from(n.hostmask());
                IpAddr::V6(Ipv6Addr::from(u128::from(n.network()) | host))
            }
        })
        .collect()
}

fn misses(set: &IpSet, rng: &mut Rng) -> Vec<IpAddr> {
    std::iter::repeat_with(|| {
        if rng.below(10) == 0 {
            IpAddr::V6(Ipv6Addr::from(rng.v6()))
        } else {
            IpAddr::V4(Ipv4Addr::from(rng.v4()))
        }
    })
    .filter(|&ip| !set.contains(ip))
    .take(QUERIES)
    .collect()
}

/// `prefix-trie` behind the same question as `IpSet::contains`.
struct Trie {
    v4: PrefixSet<Ipv4Net>,
    v6: PrefixSet<Ipv6Net>,
}

impl Trie {
    fn new(nets: &[IpNet]) -> Trie {
        let mut trie = Trie {
            v4: PrefixSet::new(),
            v6: PrefixSet::new(),
        };
        for &net in nets {
            match normalize(net) {
                IpNet::V4(n) => trie.v4.insert(n),
                IpNet::V6(n) => trie.v6.insert(n),
            };
        }
        trie
    }

    fn contains(&self, ip: IpAddr) -> bool {
        match ip.to_canonical() {
            IpAddr::V4(a) => self.v4.is_covered(&Ipv4Net::from(a)),
            IpAddr::V6(a) => self.v6.is_covered(&Ipv6Net::from(a)),
        }
    }

    fn heap_bytes(&self) -> usize {
        self.v4.mem_size() + self.v6.mem_size()
    }
}

/// The baseline: every network, scanned in order.
struct Naive(Vec<IpNet>);

impl Naive {
    fn new(nets: &[IpNet]) -> Naive {
        Naive(nets.iter().map(|&n| normalize(n)).collect())
    }

    fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|n| n.contains(&ip))
    }

    fn heap_bytes(&self) -> usize {
        self.0.capacity() * size_of::<IpNet>()
    }
}

fn lookups(c: &mut Criterion) {
    for n in SIZES {
        let nets = prefixes(n);
        let set = IpSet::new(nets.iter().copied());
        let trie = Trie::new(&nets);
        let naive = (n <= NAIVE_MAX).then(|| Naive::new(&nets));
        let mut rng = Rng(SEED.rotate_left(7) ^ n as u64);
        let cases = [
            ("hit", hits(&nets, &mut rng)),
            ("miss", misses(&set, &mut rng)),
        ];
        for (kind, queries) in &cases {
            for &ip in queries {
                let expected = *kind == "hit";
                assert_eq!(set.contains(ip), expected, "ipset {ip}");
                assert_eq!(trie.contains(ip), expected, "prefix-trie {ip}");
                if let Some(naive) = &naive {
                    assert_eq!(naive.contains(ip), expected, "naive {ip}");
                }
            }
            let mut group = c.benchmark_group(format!("lookup_{kind}"));
            group.warm_up_time(Duration::from_millis(500));
            group.measurement_time(Duration::from_secs(2));
            let mut cycle = |name: &str, contains: &dyn Fn(IpAddr) -> bool| {
                group.bench_function(BenchmarkId::new(name, n), |b| {
                    let mut i = 0;
                    b.iter(|| {
                        i = (i + 1) % QUERIES;
                        contains(black_box(queries[i]))
                    });
                });
            };
            cycle("ipset", &|ip| set.contains(ip));
            cycle("prefix-trie", &|ip| trie.contains(ip));
            if let Some(naive) = &naive {
                cycle("naive", &|ip| naive.contains(ip));
            }
            group.finish();
        }
    }
}

fn builds(c: &mut Criterion) {
    let mut group = c.benchmark_group("build");
    group.sample_size(10);
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(5));
    for n in SIZES {
        let nets = prefixes(n);
        group.bench_function(BenchmarkId::new("ipset", n), |b| {
            b.iter_batched(|| nets.clone(), IpSet::new, BatchSize::LargeInput);
        });
        group.bench_function(BenchmarkId::new("prefix-trie", n), |b| {
            b.iter(|| Trie::new(black_box(&nets)));
        });
    }
    group.finish();
}

/// Resident memory of this process, from `VmRSS` in `/proc/self/status`; 0 where unknown.
fn rss_bytes() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<usize>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// In a child process: build one structure and print `heap_bytes rss_growth intervals`.
fn measure_child(spec: &str) {
    let (structure, n) = spec.split_once(':').expect("spec is structure:size");
    let nets = prefixes(n.parse().expect("size is a number"));
    let before = rss_bytes();
    let (heap, intervals, keep): (usize, usize, Box<dyn std::any::Any>) = match structure {
        "ipset" => {
            let set = IpSet::new(nets.iter().copied());
            (set.heap_bytes(), set.interval_count(), Box::new(set))
        }
        "prefix-trie" => {
            let trie = Trie::new(&nets);
            (trie.heap_bytes(), 0, Box::new(trie))
        }
        _ => {
            let naive = Naive::new(&nets);
            (naive.heap_bytes(), 0, Box::new(naive))
        }
    };
    let grown = rss_bytes().saturating_sub(before);
    println!("{heap} {grown} {intervals}");
    drop(black_box(keep));
}

fn memory_report() {
    let exe = std::env::current_exe().expect("the bench knows its own path");
    println!("memory: structure size: heap MiB (own accounting), RSS growth MiB (fresh process)");
    for n in [100_000, 1_000_000] {
        for structure in ["ipset", "prefix-trie", "naive"] {
            let out = std::process::Command::new(&exe)
                .env(CHILD_ENV, format!("{structure}:{n}"))
                .output()
                .expect("the bench can run itself");
            let text = String::from_utf8_lossy(&out.stdout);
            let fields: Vec<f64> = text
                .split_whitespace()
                .filter_map(|f| f.parse().ok())
                .collect();
            if let [heap, grown, intervals] = fields[..] {
                let mib = 1024.0 * 1024.0;
                let merged = if intervals > 0.0 {
                    format!(" ({intervals} merged intervals)")
                } else {
                    String::new()
                };
                println!(
                    "memory: {structure:>11} {n:>7}: heap {:7.2} MiB, RSS +{:7.2} MiB{merged}",
                    heap / mib,
                    grown / mib
                );
            }
        }
    }
}

fn main() {
    if let Ok(spec) = std::env::var(CHILD_ENV) {
        measure_child(&spec);
        return;
    }
    memory_report();
    let mut c = Criterion::default().configure_from_args();
    lookups(&mut c);
    builds(&mut c);
    c.final_summary();
}
