//! Compiled CIDR sets: the structure behind every `ip`/`not_ip` condition, every `@list`
//! and `trusted_proxies`, plus parsing of one list entry and the overlap lint of `check`.
//!
//! This module does not read list files, strip comments, or know what a rule does with a
//! match; callers hand it parsed networks and ask `contains`.
//!
//! An [`IpSet`] keeps, per address family, the sorted boundaries of its merged intervals: an
//! address is in the set when an odd number of boundaries is at or below it. Large sets add a
//! bucket table on the leading bits of the address, so a lookup reads one table slot and then
//! searches a few neighbouring boundaries: no step grows with the number of prefixes, and
//! memory stays at 8 bytes per IPv4 interval and 32 per IPv6 interval, plus a table of about
//! a quarter of that at most (256 KiB at most per family). A plain binary search over the
//! same boundaries, and an Eytzinger layout of them, measured 3–5 times slower at 1M.

use std::fmt;
use std::net::IpAddr;

use ipnet::{IpNet, Ipv4Net};

/// An immutable set of IPv4 and IPv6 networks.
///
/// IPv4-mapped IPv6 networks and addresses (`::ffff:a.b.c.d`) are IPv4 here. An IPv6 network
/// shorter than `/96` that contains the mapped range (for example `::/0`) therefore matches
/// no IPv4 address. The default set is empty and contains nothing.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct IpSet {
    v4: Table<u32>,
    v6: Table<u128>,
}

impl IpSet {
    /// Builds the set from networks, in any order, duplicates and overlaps allowed.
    ///
    /// IPv4-mapped IPv6 networks (`::ffff:0:0/96` and longer) are folded to IPv4; host bits
    /// beyond the prefix are ignored (`10.1.2.3/8` = `10.0.0.0/8`). Overlapping and adjacent
    /// networks are merged. Never fails.
    pub fn new(nets: impl IntoIterator<Item = IpNet>) -> IpSet {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for net in nets {
            match normalize(net) {
                IpNet::V4(n) => v4.push((u32::from(n.network()), u32::from(n.broadcast()))),
                IpNet::V6(n) => v6.push((u128::from(n.network()), u128::from(n.broadcast()))),
            }
        }
        IpSet {
            v4: Table::build(v4),
            v6: Table::build(v6),
        }
    }

    /// Whether `ip` is in one of the set's networks. IPv4-mapped IPv6 addresses are looked up
    /// as IPv4.
    #[inline]
    pub fn contains(&self, ip: IpAddr) -> bool {
        match ip.to_canonical() {
            IpAddr::V4(a) => self.v4.contains(u32::from(a)),
            IpAddr::V6(a) => self.v6.contains(u128::from(a)),
        }
    }

    /// Whether the set holds no network at all.
    pub fn is_empty(&self) -> bool {
        self.v4.bounds.is_empty() && self.v6.bounds.is_empty()
    }

    /// Number of merged intervals, IPv4 and IPv6 together (for memory reports): adjacent and
    /// overlapping networks count once.
    pub fn interval_count(&self) -> usize {
        self.v4.interval_count() + self.v6.interval_count()
    }

    /// Heap bytes held by the set (for memory reports), computed from its allocations.
    pub fn heap_bytes(&self) -> usize {
        self.v4.heap_bytes() + self.v6.heap_bytes()
    }
}

impl FromIterator<IpNet> for IpSet {
    fn from_iter<I: IntoIterator<Item = IpNet>>(nets: I) -> IpSet {
        IpSet::new(nets)
    }
}

/// A summary, never the networks: a set may hold a million of them.
impl fmt::Debug for IpSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IpSet")
            .field("v4_intervals", &self.v4.interval_count())
            .field("v6_intervals", &self.v6.interval_count())
            .finish()
    }
}

/// The form a network takes inside an [`IpSet`] and in [`overlaps`]: an IPv4-mapped IPv6
/// network of `/96` or longer becomes the IPv4 network it maps, and host bits are cleared.
/// Shorter IPv6 networks stay IPv6.
pub fn normalize(net: IpNet) -> IpNet {
    match net {
        IpNet::V4(n) => IpNet::V4(n.trunc()),
        IpNet::V6(n) => {
            let mapped = n.prefix_len().checked_sub(96).and_then(|len| {
                let addr = n.network().to_ipv4_mapped()?;
                Ipv4Net::new(addr, len).ok()
            });
            match mapped {
                Some(v4) => IpNet::V4(v4.trunc()),
                None => IpNet::V6(n.trunc()),
            }
        }
    }
}

/// Why one list entry is not an address or a network.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseNetError {
    /// Neither an IP address nor `address/length`.
    #[error("invalid IP address or CIDR {value:?}")]
    Invalid {
        /// The entry as given.
        value: String,
    },
    /// A well-formed network whose prefix length exceeds its family's (32 or 128).
    #[error("prefix length too long in {value:?} (at most {max})")]
    PrefixTooLong {
        /// The entry as given.
        value: String,
        /// The family's longest prefix: 32 or 128.
        max: u8,
    },
}

/// Parses one list entry: a bare IPv4/IPv6 address (→ `/32` or `/128`) or a CIDR
/// `address/length`. Host bits are kept as written (an [`IpSet`] ignores them), and an
/// IPv4-mapped IPv6 form such as `::ffff:1.2.3.4` or `::ffff:1.2.3.0/120` is accepted and
/// returned as IPv6 (see [`normalize`]).
///
/// Refuses with [`ParseNetError::Invalid`] anything else, including surrounding or inner
/// whitespace (the caller trims), a zone id (`fe80::1%eth0`), an IPv4 octet with a leading
/// zero, and a length that is empty, signed or not decimal; with
/// [`ParseNetError::PrefixTooLong`] a length above 32 (IPv4) or 128 (IPv6).
pub fn parse_net(s: &str) -> Result<IpNet, ParseNetError> {
    let invalid = || ParseNetError::Invalid {
        value: s.to_owned(),
    };
    let Some((addr, len)) = s.split_once('/') else {
        return s.parse::<IpAddr>().map(IpNet::from).map_err(|_| invalid());
    };
    let addr: IpAddr = addr.parse().map_err(|_| invalid())?;
    if len.is_empty() || !len.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    let max: u8 = if addr.is_ipv4() { 32 } else { 128 };
    match len.parse::<u8>() {
        Ok(len) if len <= max => IpNet::new(addr, len).map_err(|_| invalid()),
        _ => Err(ParseNetError::PrefixTooLong {
            value: s.to_owned(),
            max,
        }),
    }
}

/// How the two entries of an [`Overlap`] relate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverlapKind {
    /// `second` is the same network as `first` (after [`normalize`]).
    Duplicate,
    /// `first` strictly contains `second`.
    Contains,
}

/// One redundant list entry, found by [`overlaps`]: `second` adds nothing because of `first`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overlap {
    /// The caller's index of the entry that makes `second` redundant.
    pub first: usize,
    /// The caller's index of the redundant entry.
    pub second: usize,
    /// Whether `second` repeats `first` or lies inside it.
    pub kind: OverlapKind,
}

/// For the `check` lint: the entries of one list that are redundant, each reported once, at
/// most `limit` of them, in order of their index (ties in input order).
///
/// `entries` pairs each network with an index the caller uses to locate it (a line number,
/// say). Entries are compared after [`normalize`]. Two CIDR networks are either disjoint or
/// nested, so an entry is redundant in one of two ways:
/// - it repeats an earlier entry: [`OverlapKind::Duplicate`], `first` being the earliest
///   occurrence (the lowest index, ties in input order);
/// - otherwise it lies inside a larger entry: [`OverlapKind::Contains`], `first` being the
///   smallest such entry (its earliest occurrence when repeated).
///
/// Runs in O(n log n) time and O(n) memory whatever `limit` is.
pub fn overlaps(entries: &[(IpNet, usize)], limit: usize) -> Vec<Overlap> {
    struct Item {
        v6: bool,
        start: u128,
        len: u8,
        index: usize,
        pos: usize,
    }
    impl Item {
        fn end(&self) -> u128 {
            let width = if self.v6 { 128 } else { 32 };
            self.start
                | u128::MAX
                    .checked_shr(u32::from(self.len) + 128 - width)
                    .unwrap_or(0)
        }
    }
    let mut items: Vec<Item> = entries
        .iter()
        .enumerate()
        .map(|(pos, &(net, index))| match normalize(net) {
            IpNet::V4(n) => Item {
                v6: false,
                start: u128::from(u32::from(n.network())),
                len: n.prefix_len(),
                index,
                pos,
            },
            IpNet::V6(n) => Item {
                v6: true,
                start: u128::from(n.network()),
                len: n.prefix_len(),
                index,
                pos,
            },
        })
        .collect();
    // Containers sort before what they contain; repeats of one network, earliest first.
    items.sort_unstable_by_key(|i| (i.v6, i.start, i.len, i.index, i.pos));

    // The nested networks enclosing the current one, innermost last; one item per network.
    let mut open: Vec<&Item> = Vec::new();
    let mut found: Vec<(Overlap, usize)> = Vec::new();
    for item in &items {
        while open
            .last()
            .is_some_and(|o| o.v6 != item.v6 || o.end() < item.start)
        {
            open.pop();
        }
        match open.last() {
            Some(o) if o.len == item.len => {
                let kind = OverlapKind::Duplicate;
                found.push((overlap(o, item, kind), item.pos));
            }
            Some(o) => {
                found.push((overlap(o, item, OverlapKind::Contains), item.pos));
                open.push(item);
            }
            None => open.push(item),
        }
    }
    fn overlap(first: &Item, second: &Item, kind: OverlapKind) -> Overlap {
        Overlap {
            first: first.index,
            second: second.index,
            kind,
        }
    }
    found.sort_unstable_by_key(|&(o, pos)| (o.second, pos));
    found.truncate(limit);
    found.into_iter().map(|(o, _)| o).collect()
}

/// Below this many boundaries a plain binary search beats a table lookup.
const MIN_INDEXED: usize = 64;
/// Largest bucket table: 2^16 slots (256 KiB), which stays in a core's L2 cache.
const MAX_BUCKET_BITS: u32 = 16;

/// The merged intervals of one family, as sorted boundaries: `[b0, b1)`, `[b2, b3)`, …; an odd
/// count means the last interval runs to the family's top address, whose successor does not
/// exist.
#[derive(Clone, Default, PartialEq, Eq)]
struct Table<K> {
    bounds: Box<[K]>,
    /// `buckets[b]` counts the boundaries whose bucket is below `b`; empty for small tables.
    buckets: Box<[u32]>,
    /// Leading bits shared by every boundary, skipped when taking an address's bucket.
    skip: u32,
    /// Bits that name a bucket, taken after the skipped ones; at least 1 when indexed.
    bits: u32,
}

impl<K: Key> Table<K> {
    fn build(mut ranges: Vec<(K, K)>) -> Table<K> {
        ranges.sort_unstable();
        let mut bounds = Vec::with_capacity(ranges.len() * 2);
        let mut ranges = ranges.into_iter();
        if let Some((mut start, mut end)) = ranges.next() {
            for (s, e) in ranges {
                if s.saturating_dec() <= end {
                    end = end.max(e);
                } else {
                    bounds.push(start);
                    bounds.push(end.checked_inc().expect("end < s - 1, so end + 1 exists"));
                    (start, end) = (s, e);
                }
            }
            bounds.push(start);
            bounds.extend(end.checked_inc());
        }
        let mut table = Table {
            bounds: bounds.into_boxed_slice(),
            ..Table::default()
        };
        table.index();
        table
    }

    /// Builds the bucket table of a large table.
    fn index(&mut self) {
        let b = &self.bounds;
        let (Some(&first), Some(&last)) = (b.first(), b.last()) else {
            return;
        };
        if b.len() < MIN_INDEXED || u32::try_from(b.len()).is_err() {
            return;
        }
        // Every address between `first` and `last` shares their leading bits; the rest of
        // the tree lies in the next `bits`. About four boundaries per bucket when uniform.
        self.skip = first.common_prefix(last);
        let log2 = usize::BITS - 1 - b.len().leading_zeros();
        self.bits = log2
            .saturating_sub(2)
            .clamp(1, MAX_BUCKET_BITS)
            .min(K::BITS - self.skip);
        let slots = 1usize << self.bits;
        let mut buckets = Vec::with_capacity(slots + 1);
        let mut below = 0;
        for slot in 0..=slots {
            while below < b.len() && b[below].bucket(self.skip, self.bits) < slot {
                below += 1;
            }
            buckets.push(u32::try_from(below).expect("checked: the count fits u32"));
        }
        self.buckets = buckets.into_boxed_slice();
    }

    #[inline]
    fn contains(&self, x: K) -> bool {
        self.count_at_or_below(x) % 2 == 1
    }

    #[inline]
    fn count_at_or_below(&self, x: K) -> usize {
        let b = &self.bounds;
        if self.buckets.is_empty() {
            return b.partition_point(|&k| k <= x);
        }
        // An indexed table has at least MIN_INDEXED boundaries.
        if x < b[0] {
            return 0;
        }
        if x >= b[b.len() - 1] {
            return b.len();
        }
        let slot = x.bucket(self.skip, self.bits);
        let lo = self.buckets[slot] as usize;
        let hi = self.buckets[slot + 1] as usize;
        lo + b[lo..hi].partition_point(|&k| k <= x)
    }

    fn interval_count(&self) -> usize {
        self.bounds.len().div_ceil(2)
    }

    fn heap_bytes(&self) -> usize {
        std::mem::size_of_val(&*self.bounds) + std::mem::size_of_val(&*self.buckets)
    }
}

/// An address family's integer form.
trait Key: Copy + Ord + Default {
    const BITS: u32;
    fn saturating_dec(self) -> Self;
    fn checked_inc(self) -> Option<Self>;
    /// Leading bits `self` and `other` share; below `BITS` when they differ.
    fn common_prefix(self, other: Self) -> u32;
    /// The `bits` bits after the first `skip` ones; `skip < BITS` and `1 <= bits <= BITS`.
    fn bucket(self, skip: u32, bits: u32) -> usize;
}

macro_rules! key {
    ($t:ty) => {
        impl Key for $t {
            const BITS: u32 = <$t>::BITS;
            #[inline]
            fn saturating_dec(self) -> Self {
                self.saturating_sub(1)
            }
            #[inline]
            fn checked_inc(self) -> Option<Self> {
                self.checked_add(1)
            }
            #[inline]
            fn common_prefix(self, other: Self) -> u32 {
                (self ^ other).leading_zeros()
            }
            #[inline]
            fn bucket(self, skip: u32, bits: u32) -> usize {
                // At most MAX_BUCKET_BITS bits survive the shifts, so the cast is exact.
                ((self << skip) >> (Self::BITS - bits)) as usize
            }
        }
    };
}
key!(u32);
key!(u128);

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use ipnet::Ipv6Net;
    use proptest::prelude::*;

    use super::*;

    fn net(s: &str) -> IpNet {
        parse_net(s).unwrap()
    }

    fn set(nets: &[&str]) -> IpSet {
        nets.iter().map(|s| net(s)).collect()
    }

    const TOP6: &str = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";

    #[test]
    fn contains_answers_by_table() {
        #[rustfmt::skip]
        let cases: &[(&str, &[&str], &str, bool)] = &[
            ("empty set holds nothing", &[], "0.0.0.0", false),
            ("empty set holds no v6", &[], "::", false),
            ("v4 default route holds the bottom", &["0.0.0.0/0"], "0.0.0.0", true),
            ("v4 default route holds the top", &["0.0.0.0/0"], "255.255.255.255", true),
            ("v4 default route holds mapped addresses", &["0.0.0.0/0"], "::ffff:1.2.3.4", true),
            ("v4 default route holds no v6", &["0.0.0.0/0"], "::1", false),
            ("v6 default route holds the bottom", &["::/0"], "::", true),
            ("v6 default route holds the top", &["::/0"], TOP6, true),
            ("v6 default route holds no v4", &["::/0"], "1.2.3.4", false),
            ("v6 default route holds no mapped v4", &["::/0"], "::ffff:1.2.3.4", false),
            ("single v4 holds itself", &["10.0.0.1"], "10.0.0.1", true),
            ("single v4 not the one below", &["10.0.0.1"], "10.0.0.0", false),
            ("single v4 not the one above", &["10.0.0.1"], "10.0.0.2", false),
            ("single v4 /32 holds itself", &["10.0.0.1/32"], "10.0.0.1", true),
            ("single v6 holds itself", &["2001:db8::1"], "2001:db8::1", true),
            ("single v6 not the one below", &["2001:db8::1"], "2001:db8::", false),
            ("single v6 not the one above", &["2001:db8::1"], "2001:db8::2", false),
            ("bottom v4 single", &["0.0.0.0/32"], "0.0.0.0", true),
            ("bottom v4 single not its neighbour", &["0.0.0.0/32"], "0.0.0.1", false),
            ("bottom v6 single", &["::/128"], "::", true),
            ("bottom v6 single not its neighbour", &["::/128"], "::1", false),
            ("top v4 single", &["255.255.255.255"], "255.255.255.255", true),
            ("top v4 single not its neighbour", &["255.255.255.255"], "255.255.255.254", false),
            ("top v4 /24 holds the top", &["255.255.255.0/24"], "255.255.255.255", true),
            ("top v4 /24 not below it", &["255.255.255.0/24"], "255.255.254.255", false),
            ("top v6 single", &[TOP6], TOP6, true),
            ("top v6 single not its neighbour", &[TOP6], "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe", false),
            ("top v6 /16 holds the top", &["ffff::/16"], TOP6, true),
            ("top v6 /16 not below it", &["ffff::/16"], "fffe:ffff::", false),
            ("host bits are ignored", &["10.1.2.3/8"], "10.200.0.1", true),
            ("host bits do not widen", &["10.1.2.3/8"], "11.0.0.0", false),
            ("v6 host bits are ignored", &["2001:db8::1/32"], "2001:db8:ffff::", true),
            ("adjacent halves hold the seam below", &["10.0.0.0/25", "10.0.0.128/25"], "10.0.0.127", true),
            ("adjacent halves hold the seam above", &["10.0.0.0/25", "10.0.0.128/25"], "10.0.0.128", true),
            ("adjacent halves end where they end", &["10.0.0.0/25", "10.0.0.128/25"], "10.0.1.0", false),
            ("gap between two networks", &["10.0.0.0/24", "10.0.2.0/24"], "10.0.1.7", false),
            ("mapped network is v4", &["::ffff:10.0.0.0/104"], "10.1.2.3", true),
            ("mapped network holds mapped address", &["::ffff:10.0.0.0/104"], "::ffff:10.9.9.9", true),
            ("mapped network stops at its end", &["::ffff:10.0.0.0/104"], "11.0.0.0", false),
            ("mapped /96 holds every v4 bottom", &["::ffff:0:0/96"], "0.0.0.0", true),
            ("mapped /96 holds every v4 top", &["::ffff:0:0/96"], "255.255.255.255", true),
            ("mapped /96 holds no v6", &["::ffff:0:0/96"], "::1", false),
            ("mapped single is v4", &["::ffff:1.2.3.4"], "1.2.3.4", true),
            ("mapped address looked up as v4", &["10.0.0.0/8"], "::ffff:10.1.1.1", true),
            ("mapped address outside v4 network", &["10.0.0.0/8"], "::ffff:11.1.1.1", false),
            ("v6 shorter than /96 stays v6", &["::ffff:0:0/95"], "::fffe:0:1", true),
            ("v6 shorter than /96 holds no v4", &["::ffff:0:0/95"], "1.2.3.4", false),
            ("compatible form is not mapped", &["::1.2.3.4"], "1.2.3.4", false),
            ("nested networks", &["10.0.0.0/8", "10.1.0.0/16"], "10.255.0.0", true),
            ("families do not mix", &["10.0.0.0/8"], "::a00:1", false),
        ];
        for &(name, nets, ip, expected) in cases {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(set(nets).contains(ip), expected, "{name}");
        }
    }

    #[test]
    fn overlapping_and_adjacent_networks_merge_into_intervals() {
        #[rustfmt::skip]
        let cases: &[(&[&str], usize)] = &[
            (&[], 0),
            (&["10.0.0.0/25", "10.0.0.128/25"], 1),
            (&["10.0.0.0/24", "10.0.0.5"], 1),
            (&["10.0.0.5", "10.0.0.0/24", "10.0.0.5"], 1),
            (&["10.0.0.0/24", "10.0.2.0/24"], 2),
            (&["10.0.0.0/24", "10.0.1.0/24", "10.0.2.0/24"], 1),
            (&["0.0.0.0/0", "1.2.3.4"], 1),
            (&["0.0.0.0", "0.0.0.1"], 1),
            (&["255.255.255.254", "255.255.255.255"], 1),
            (&["255.255.255.255", "0.0.0.0"], 2),
            (&["::/0", "0.0.0.0/0"], 2),
            (&["::ffff:10.0.0.0/104", "10.0.0.0/8"], 1),
            (&[TOP6, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe/127"], 1),
            (&["::", "::1", "::2"], 1),
            (&["::", "::2"], 2),
        ];
        for &(nets, intervals) in cases {
            assert_eq!(set(nets).interval_count(), intervals, "{nets:?}");
        }
    }

    #[test]
    fn empty_only_without_networks() {
        assert!(IpSet::default().is_empty());
        assert!(IpSet::new([]).is_empty());
        assert!(!set(&["::/0"]).is_empty());
        assert!(!set(&["255.255.255.255"]).is_empty());
    }

    #[test]
    fn memory_report_counts_boundaries() {
        assert_eq!(IpSet::default().heap_bytes(), 0);
        assert_eq!(set(&["10.0.0.0/8"]).heap_bytes(), 8);
        assert_eq!(set(&["0.0.0.0/0"]).heap_bytes(), 4);
        assert_eq!(set(&["2001:db8::/32"]).heap_bytes(), 32);
    }

    #[test]
    fn debug_prints_a_summary_not_the_networks() {
        let s = set(&["10.0.0.0/8", "2001:db8::/32", "2001:db9::/32"]);
        assert_eq!(
            format!("{s:?}"),
            "IpSet { v4_intervals: 1, v6_intervals: 1 }"
        );
    }

    #[test]
    fn indexed_table_agrees_with_scan_on_dense_cluster() {
        // Every third address of 10.0.0.0/23 plus the ends of the space: enough boundaries
        // for the bucket table, sharing leading bits so buckets start after them.
        let mut nets: Vec<IpNet> = (0..512u32)
            .step_by(3)
            .map(|i| IpNet::V4(Ipv4Net::from(Ipv4Addr::from(0x0a00_0000 + i))))
            .collect();
        let clustered = IpSet::new(nets.iter().copied());
        assert!(!clustered.v4.buckets.is_empty());
        assert_eq!(clustered.v4.skip, 23);
        nets.extend([net("0.0.0.0/31"), net("255.255.255.255")]);
        let spread = IpSet::new(nets.iter().copied());
        assert!(!spread.v4.buckets.is_empty());
        let probes = (0x09ff_ff00..0x0a00_0300u32).chain([0, 1, 2, u32::MAX - 1, u32::MAX]);
        for a in probes {
            let ip = IpAddr::V4(Ipv4Addr::from(a));
            assert_eq!(spread.contains(ip), scan(&nets, ip), "{ip}");
            assert_eq!(clustered.contains(ip), scan(&nets[..171], ip), "{ip}");
        }
    }

    #[test]
    fn normalize_folds_mapped_and_clears_host_bits() {
        let cases = [
            ("10.1.2.3/8", "10.0.0.0/8"),
            ("::ffff:10.1.2.3/104", "10.0.0.0/8"),
            ("::ffff:1.2.3.4", "1.2.3.4/32"),
            ("::ffff:0:0/96", "0.0.0.0/0"),
            ("::ffff:1.2.3.4/95", "::fffe:0:0/95"),
            ("::ffff:1.2.3.4/0", "::/0"),
            ("2001:db8::1/32", "2001:db8::/32"),
            ("::1.2.3.4", "::102:304/128"),
        ];
        for (input, expected) in cases {
            assert_eq!(normalize(net(input)), net(expected), "{input}");
        }
    }

    #[test]
    fn parse_net_accepts_addresses_and_cidrs() {
        let v6 = |a: &str, len| IpNet::V6(Ipv6Net::new(a.parse().unwrap(), len).unwrap());
        let v4 = |a: &str, len| IpNet::V4(Ipv4Net::new(a.parse().unwrap(), len).unwrap());
        let cases = [
            ("10.0.0.1", v4("10.0.0.1", 32)),
            ("10.0.0.0/8", v4("10.0.0.0", 8)),
            ("10.1.2.3/8", v4("10.1.2.3", 8)),
            ("0.0.0.0/0", v4("0.0.0.0", 0)),
            ("10.0.0.0/008", v4("10.0.0.0", 8)),
            ("::1", v6("::1", 128)),
            ("::/0", v6("::", 0)),
            ("2001:db8::/32", v6("2001:db8::", 32)),
            ("::ffff:1.2.3.4", v6("::ffff:1.2.3.4", 128)),
            ("::ffff:1.2.3.0/120", v6("::ffff:1.2.3.0", 120)),
            (TOP6, v6(TOP6, 128)),
        ];
        for (input, expected) in cases {
            assert_eq!(parse_net(input), Ok(expected), "{input}");
        }
    }

    #[test]
    fn parse_net_refuses_naming_the_value() {
        #[rustfmt::skip]
        let cases = [
            ("10.0.0.300/8", r#"invalid IP address or CIDR "10.0.0.300/8""#),
            ("10.0.0.0/33", r#"prefix length too long in "10.0.0.0/33" (at most 32)"#),
            ("10.0.0.0/256", r#"prefix length too long in "10.0.0.0/256" (at most 32)"#),
            ("10.0.0.0/99999999999", r#"prefix length too long in "10.0.0.0/99999999999" (at most 32)"#),
            ("::/129", r#"prefix length too long in "::/129" (at most 128)"#),
            ("::ffff:1.2.3.4/129", r#"prefix length too long in "::ffff:1.2.3.4/129" (at most 128)"#),
            ("", r#"invalid IP address or CIDR """#),
            ("10.0.0.0/", r#"invalid IP address or CIDR "10.0.0.0/""#),
            ("/8", r#"invalid IP address or CIDR "/8""#),
            ("10.0.0.0/+8", r#"invalid IP address or CIDR "10.0.0.0/+8""#),
            ("10.0.0.0/-1", r#"invalid IP address or CIDR "10.0.0.0/-1""#),
            ("10.0.0.0/ 8", r#"invalid IP address or CIDR "10.0.0.0/ 8""#),
            ("10.0.0.0/8/9", r#"invalid IP address or CIDR "10.0.0.0/8/9""#),
            (" 10.0.0.1", r#"invalid IP address or CIDR " 10.0.0.1""#),
            ("10.0.0", r#"invalid IP address or CIDR "10.0.0""#),
            ("010.0.0.1", r#"invalid IP address or CIDR "010.0.0.1""#),
            ("1.2.3.4:80", r#"invalid IP address or CIDR "1.2.3.4:80""#),
            ("[::1]", r#"invalid IP address or CIDR "[::1]""#),
            ("fe80::1%eth0", r#"invalid IP address or CIDR "fe80::1%eth0""#),
            ("example.com", r#"invalid IP address or CIDR "example.com""#),
            ("10.0.0.0/8 # office", r#"invalid IP address or CIDR "10.0.0.0/8 # office""#),
        ];
        for (input, message) in cases {
            let err = parse_net(input).unwrap_err();
            assert_eq!(err.to_string(), message, "{input}");
        }
    }

    #[test]
    fn overlaps_reports_each_redundant_entry_once() {
        use OverlapKind::{Contains, Duplicate};
        let o = |first, second, kind| Overlap {
            first,
            second,
            kind,
        };
        type Case<'a> = (&'a str, &'a [(&'a str, usize)], usize, &'a [Overlap]);
        #[rustfmt::skip]
        let cases: &[Case<'_>] = &[
            ("nothing to compare", &[], 10, &[]),
            ("disjoint entries", &[("10.0.0.0/8", 1), ("11.0.0.0/8", 2)], 10, &[]),
            ("adjacent is not overlapping", &[("10.0.0.0/25", 1), ("10.0.0.128/25", 2)], 10, &[]),
            ("duplicate", &[("10.0.0.0/8", 1), ("10.0.0.0/8", 5)], 10, &[o(1, 5, Duplicate)]),
            ("duplicate given later first", &[("10.0.0.0/8", 5), ("10.0.0.0/8", 1)], 10, &[o(1, 5, Duplicate)]),
            ("host bits make a duplicate", &[("10.0.0.0/8", 1), ("10.1.2.3/8", 2)], 10, &[o(1, 2, Duplicate)]),
            ("mapped network duplicates v4", &[("10.0.0.0/8", 1), ("::ffff:10.0.0.0/104", 2)], 10, &[o(1, 2, Duplicate)]),
            ("mapped address inside v4", &[("::ffff:10.0.0.1", 1), ("10.0.0.0/8", 2)], 10, &[o(2, 1, Contains)]),
            ("v6 default route does not hold mapped", &[("::/0", 1), ("::ffff:1.2.3.4", 2)], 10, &[]),
            ("families do not mix", &[("0.0.0.0/0", 1), ("::/0", 2)], 10, &[]),
            ("container listed after", &[("10.1.0.0/16", 3), ("10.0.0.0/8", 7)], 10, &[o(7, 3, Contains)]),
            ("nearest container named", &[("10.0.0.0/8", 1), ("10.1.0.0/16", 2), ("10.1.2.0/24", 3)], 10,
                &[o(1, 2, Contains), o(2, 3, Contains)]),
            ("three copies name the first", &[("::1", 1), ("::1", 2), ("::1", 3)], 10,
                &[o(1, 2, Duplicate), o(1, 3, Duplicate)]),
            ("copy of a contained entry", &[("10.0.0.0/8", 1), ("10.1.0.0/16", 2), ("10.1.0.0/16", 3)], 10,
                &[o(1, 2, Contains), o(2, 3, Duplicate)]),
            ("repeated container named by first copy", &[("10.1.0.0/16", 1), ("10.0.0.0/8", 3), ("10.0.0.0/8", 2)], 10,
                &[o(2, 1, Contains), o(2, 3, Duplicate)]),
            ("sibling after a nested one", &[("10.0.0.0/8", 1), ("10.1.0.0/16", 2), ("10.2.0.0/16", 3)], 10,
                &[o(1, 2, Contains), o(1, 3, Contains)]),
            ("top v4 address", &[("255.0.0.0/8", 1), ("255.255.255.255", 2)], 10, &[o(1, 2, Contains)]),
            ("top v6 address", &[("ffff::/16", 1), (TOP6, 2)], 10, &[o(1, 2, Contains)]),
            ("everything inside the default route", &[("0.0.0.0/0", 1), ("255.255.255.255", 2), ("0.0.0.0", 3)], 10,
                &[o(1, 2, Contains), o(1, 3, Contains)]),
            ("limit keeps the lowest indexes", &[("::1", 4), ("::1", 3), ("::1", 2), ("::1", 1)], 2,
                &[o(1, 2, Duplicate), o(1, 3, Duplicate)]),
            ("limit zero", &[("::1", 1), ("::1", 2)], 0, &[]),
        ];
        for &(name, entries, limit, expected) in cases {
            let entries: Vec<(IpNet, usize)> = entries.iter().map(|&(s, i)| (net(s), i)).collect();
            assert_eq!(overlaps(&entries, limit), expected, "{name}");
        }
    }

    /// The linear reference for `contains`, written without `normalize`.
    fn scan(nets: &[IpNet], ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(a) => a.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        nets.iter().any(|net| match (net, ip) {
            (IpNet::V4(n), IpAddr::V4(a)) => n.contains(&a),
            (IpNet::V6(n), IpAddr::V6(a)) => n.contains(&a),
            (IpNet::V6(n), IpAddr::V4(a)) => {
                n.prefix_len() >= 96 && n.contains(&a.to_ipv6_mapped())
            }
            (IpNet::V4(_), IpAddr::V6(_)) => false,
        })
    }

    /// The quadratic reference for `overlaps`, straight from its doc.
    fn overlaps_reference(entries: &[(IpNet, usize)], limit: usize) -> Vec<Overlap> {
        let norm: Vec<IpNet> = entries.iter().map(|&(n, _)| normalize(n)).collect();
        let key = |i: usize| (entries[i].1, i);
        let mut found = Vec::new();
        for j in 0..entries.len() {
            let earlier_copy = (0..entries.len())
                .filter(|&i| norm[i] == norm[j] && key(i) < key(j))
                .min_by_key(|&i| key(i));
            let container = (0..entries.len())
                .filter(|&i| norm[i] != norm[j] && norm[i].contains(&norm[j]))
                .min_by_key(|&i| (std::cmp::Reverse(norm[i].prefix_len()), key(i)));
            let finding = match (earlier_copy, container) {
                (Some(i), _) => Some((i, OverlapKind::Duplicate)),
                (None, Some(i)) => Some((i, OverlapKind::Contains)),
                (None, None) => None,
            };
            if let Some((i, kind)) = finding {
                let o = Overlap {
                    first: entries[i].1,
                    second: entries[j].1,
                    kind,
                };
                found.push((key(j), o));
            }
        }
        found.sort_by_key(|&(k, _)| k);
        found.into_iter().take(limit).map(|(_, o)| o).collect()
    }

    /// IPv4 addresses, most of them near the ends of the space or in one small cluster.
    fn arb_v4() -> impl Strategy<Value = u32> {
        prop_oneof![
            any::<u32>(),
            (0u32..1024).prop_map(|x| 0x0a00_0000 + x),
            (0u32..1024).prop_map(|x| u32::MAX - x),
            0u32..1024,
        ]
    }

    /// IPv6 addresses likewise, plus mapped ones and ones around the mapped range.
    fn arb_v6() -> impl Strategy<Value = u128> {
        prop_oneof![
            any::<u128>(),
            (0u128..1024).prop_map(|x| (0x2001_0db8 << 96) + x),
            (0u128..1024).prop_map(|x| u128::MAX - x),
            0u128..1024,
            arb_v4().prop_map(|a| (0xffff << 32) | u128::from(a)),
            (0u128..1024).prop_map(|x| (0xffff << 32) - 512 + x),
        ]
    }

    fn arb_net() -> impl Strategy<Value = IpNet> {
        let v4 = (arb_v4(), prop_oneof![1 => 0u8..=32, 4 => 20u8..=32])
            .prop_map(|(a, len)| IpNet::V4(Ipv4Net::new(Ipv4Addr::from(a), len).unwrap()));
        let v6 = (
            arb_v6(),
            prop_oneof![1 => 0u8..=128, 2 => 94u8..=128, 2 => 116u8..=128],
        )
            .prop_map(|(a, len)| IpNet::V6(Ipv6Net::new(Ipv6Addr::from(a), len).unwrap()));
        prop_oneof![v4, v6]
    }

    /// Long prefixes of mostly spread addresses, so that sets of a few hundred keep enough
    /// intervals to be indexed.
    fn arb_long_net() -> impl Strategy<Value = IpNet> {
        let v4 = (prop_oneof![3 => any::<u32>(), 1 => arb_v4()], 24u8..=32)
            .prop_map(|(a, len)| IpNet::V4(Ipv4Net::new(Ipv4Addr::from(a), len).unwrap()));
        let v6 = (prop_oneof![3 => any::<u128>(), 1 => arb_v6()], 112u8..=128)
            .prop_map(|(a, len)| IpNet::V6(Ipv6Net::new(Ipv6Addr::from(a), len).unwrap()));
        prop_oneof![v4, v6]
    }

    fn arb_addr() -> impl Strategy<Value = IpAddr> {
        prop_oneof![
            arb_v4().prop_map(|a| IpAddr::V4(Ipv4Addr::from(a))),
            arb_v6().prop_map(|a| IpAddr::V6(Ipv6Addr::from(a))),
        ]
    }

    /// Every address at or next to an edge of a network, in v4, v6 and mapped forms.
    fn edges(nets: &[IpNet]) -> Vec<IpAddr> {
        let mut out = Vec::new();
        for net in nets {
            match net {
                IpNet::V4(n) => {
                    let (lo, hi) = (u32::from(n.network()), u32::from(n.broadcast()));
                    for a in [lo.wrapping_sub(1), lo, hi, hi.wrapping_add(1)] {
                        out.push(IpAddr::V4(Ipv4Addr::from(a)));
                        out.push(IpAddr::V6(Ipv4Addr::from(a).to_ipv6_mapped()));
                    }
                }
                IpNet::V6(n) => {
                    let (lo, hi) = (u128::from(n.network()), u128::from(n.broadcast()));
                    for a in [lo.wrapping_sub(1), lo, hi, hi.wrapping_add(1)] {
                        let a = Ipv6Addr::from(a);
                        out.push(IpAddr::V6(a));
                        out.extend(a.to_ipv4_mapped().map(IpAddr::V4));
                    }
                }
            }
        }
        out
    }

    proptest! {
        #[test]
        fn contains_equals_linear_scan(
            nets in prop::collection::vec(arb_net(), 0..160),
            extra in prop::collection::vec(arb_addr(), 0..64),
        ) {
            let s = IpSet::new(nets.iter().copied());
            for ip in edges(&nets).into_iter().chain(extra) {
                prop_assert_eq!(s.contains(ip), scan(&nets, ip), "{}", ip);
            }
        }

        #[test]
        fn contains_equals_linear_scan_on_indexed_sets(
            nets in prop::collection::vec(arb_long_net(), 160..320),
            extra in prop::collection::vec(arb_addr(), 0..64),
        ) {
            let s = IpSet::new(nets.iter().copied());
            prop_assume!(!s.v4.buckets.is_empty() && !s.v6.buckets.is_empty());
            for ip in edges(&nets[..32]).into_iter().chain(extra) {
                prop_assert_eq!(s.contains(ip), scan(&nets, ip), "{}", ip);
            }
        }

        #[test]
        fn overlaps_equals_quadratic_reference(
            entries in prop::collection::vec((arb_net(), 0usize..8), 0..48),
            limit in 0usize..64,
        ) {
            prop_assert_eq!(overlaps(&entries, limit), overlaps_reference(&entries, limit));
        }
    }
}
