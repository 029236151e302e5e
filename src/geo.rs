//! GeoIP country lookup: opens a MaxMind DB (`.mmdb`) file and answers `country(ip)`.
//!
//! Owns the [`Country`] code type, the table of known ISO 3166-1 alpha-2 codes used by the
//! `check` lint, the list of addresses that are `"XX"` without a lookup
//! ([`is_non_public`]), and the reading of one record (SPEC §3, Country). Apart from
//! [`Geo::open`] reading the file, everything here is pure; the only state is a small
//! lock-free memo of countries already decoded, private to each [`Geo`].
//!
//! Does not own: where the database path comes from (the rulebook), reloading or watching
//! the file, logging the test-database warning (the loader asks [`Geo::is_test_database`]),
//! or which address is the client (`client_ip`).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use maxminddb::{LookupResult, MaxMindDbError, PathElement, Reader};

/// An ISO 3166-1 alpha-2 country code in upper case, or `"XX"` for unknown.
///
/// Any two ASCII letters are accepted (databases also carry codes such as `XK` or `AP`);
/// whether a code is assigned is a separate question, see [`Country::is_known`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Country([u8; 2]);

impl Country {
    /// `"XX"`: no record, a record without a country, a lookup error, or a non-public
    /// address.
    pub const UNKNOWN: Country = Country(*b"XX");

    /// Parses two ASCII letters, case-insensitively, and stores them in upper case.
    ///
    /// Refuses (`None`) anything else: other lengths, digits, spaces, non-ASCII.
    pub const fn parse(s: &str) -> Option<Country> {
        match *s.as_bytes() {
            [a, b] if a.is_ascii_alphabetic() && b.is_ascii_alphabetic() => {
                Some(Country([a.to_ascii_uppercase(), b.to_ascii_uppercase()]))
            }
            _ => None,
        }
    }

    /// The two upper-case letters, e.g. `"GB"`.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("a country code is two ASCII letters")
    }

    /// True for `"XX"`.
    pub const fn is_unknown(&self) -> bool {
        self.0[0] == b'X' && self.0[1] == b'X'
    }

    /// True for a currently assigned ISO 3166-1 alpha-2 code, `XX` (unknown) and `XK`
    /// (Kosovo: not assigned by ISO, but a user-assigned code that DB-IP and other
    /// databases use). False for everything else, e.g. `EU`, `AP`, `UK`, `ZZ`.
    pub const fn is_known(&self) -> bool {
        let row = (self.0[0] - b'A') as usize;
        let column = self.0[1] - b'A';
        KNOWN[row] & (1 << column) != 0
    }
}

impl Default for Country {
    /// [`Country::UNKNOWN`].
    fn default() -> Country {
        Country::UNKNOWN
    }
}

impl fmt::Display for Country {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl fmt::Debug for Country {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Country").field(&self.as_str()).finish()
    }
}

impl serde::Serialize for Country {
    /// Serializes as the two-letter string.
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// True when `code` is two ASCII letters (any case, as [`Country::parse`] reads them) that
/// [`Country::is_known`] accepts: an assigned ISO 3166-1 alpha-2 code, `XX` or `XK`.
pub fn is_known_country_code(code: &str) -> bool {
    Country::parse(code).is_some_and(|country| country.is_known())
}

/// ISO 3166-1 alpha-2 codes officially assigned, sorted (249; Debian iso-codes 4.15.0).
const ASSIGNED: [[u8; 2]; 249] = [
    *b"AD", *b"AE", *b"AF", *b"AG", *b"AI", *b"AL", *b"AM", *b"AO", *b"AQ", *b"AR", *b"AS", *b"AT",
    *b"AU", *b"AW", *b"AX", *b"AZ", *b"BA", *b"BB", *b"BD", *b"BE", *b"BF", *b"BG", *b"BH", *b"BI",
    *b"BJ", *b"BL", *b"BM", *b"BN", *b"BO", *b"BQ", *b"BR", *b"BS", *b"BT", *b"BV", *b"BW", *b"BY",
    *b"BZ", *b"CA", *b"CC", *b"CD", *b"CF", *b"CG", *b"CH", *b"CI", *b"CK", *b"CL", *b"CM", *b"CN",
    *b"CO", *b"CR", *b"CU", *b"CV", *b"CW", *b"CX", *b"CY", *b"CZ", *b"DE", *b"DJ", *b"DK", *b"DM",
    *b"DO", *b"DZ", *b"EC", *b"EE", *b"EG", *b"EH", *b"ER", *b"ES", *b"ET", *b"FI", *b"FJ", *b"FK",
    *b"FM", *b"FO", *b"FR", *b"GA", *b"GB", *b"GD", *b"GE", *b"GF", *b"GG", *b"GH", *b"GI", *b"GL",
    *b"GM", *b"GN", *b"GP", *b"GQ", *b"GR", *b"GS", *b"GT", *b"GU", *b"GW", *b"GY", *b"HK", *b"HM",
    *b"HN", *b"HR", *b"HT", *b"HU", *b"ID", *b"IE", *b"IL", *b"IM", *b"IN", *b"IO", *b"IQ", *b"IR",
    *b"IS", *b"IT", *b"JE", *b"JM", *b"JO", *b"JP", *b"KE", *b"KG", *b"KH", *b"KI", *b"KM", *b"KN",
    *b"KP", *b"KR", *b"KW", *b"KY", *b"KZ", *b"LA", *b"LB", *b"LC", *b"LI", *b"LK", *b"LR", *b"LS",
    *b"LT", *b"LU", *b"LV", *b"LY", *b"MA", *b"MC", *b"MD", *b"ME", *b"MF", *b"MG", *b"MH", *b"MK",
    *b"ML", *b"MM", *b"MN", *b"MO", *b"MP", *b"MQ", *b"MR", *b"MS", *b"MT", *b"MU", *b"MV", *b"MW",
    *b"MX", *b"MY", *b"MZ", *b"NA", *b"NC", *b"NE", *b"NF", *b"NG", *b"NI", *b"NL", *b"NO", *b"NP",
    *b"NR", *b"NU", *b"NZ", *b"OM", *b"PA", *b"PE", *b"PF", *b"PG", *b"PH", *b"PK", *b"PL", *b"PM",
    *b"PN", *b"PR", *b"PS", *b"PT", *b"PW", *b"PY", *b"QA", *b"RE", *b"RO", *b"RS", *b"RU", *b"RW",
    *b"SA", *b"SB", *b"SC", *b"SD", *b"SE", *b"SG", *b"SH", *b"SI", *b"SJ", *b"SK", *b"SL", *b"SM",
    *b"SN", *b"SO", *b"SR", *b"SS", *b"ST", *b"SV", *b"SX", *b"SY", *b"SZ", *b"TC", *b"TD", *b"TF",
    *b"TG", *b"TH", *b"TJ", *b"TK", *b"TL", *b"TM", *b"TN", *b"TO", *b"TR", *b"TT", *b"TV", *b"TW",
    *b"TZ", *b"UA", *b"UG", *b"UM", *b"US", *b"UY", *b"UZ", *b"VA", *b"VC", *b"VE", *b"VG", *b"VI",
    *b"VN", *b"VU", *b"WF", *b"WS", *b"YE", *b"YT", *b"ZA", *b"ZM", *b"ZW",
];

/// Known codes as a 26×26 bitmap: row = first letter, bit = second letter. Built at compile
/// time from [`ASSIGNED`] plus `XX` (unknown) and `XK` (Kosovo, used by DB-IP).
const KNOWN: [u32; 26] = {
    let mut rows = [0u32; 26];
    let mut i = 0;
    while i < ASSIGNED.len() {
        let [first, second] = ASSIGNED[i];
        rows[(first - b'A') as usize] |= 1 << (second - b'A');
        i += 1;
    }
    rows[(b'X' - b'A') as usize] |= (1 << (b'X' - b'A')) | (1 << (b'K' - b'A'));
    rows
};

/// True for the addresses whose country is `"XX"` without a lookup (SPEC §3), after reading
/// an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) as IPv4:
///
/// - IPv4: `0.0.0.0/8` (this network, unspecified), `10.0.0.0/8`, `172.16.0.0/12`,
///   `192.168.0.0/16` (private), `100.64.0.0/10` (CGNAT), `127.0.0.0/8` (loopback),
///   `169.254.0.0/16` (link-local), `224.0.0.0/4` (multicast), `240.0.0.0/4` (reserved,
///   including the broadcast address `255.255.255.255`);
/// - IPv6: `::` (unspecified), `::1` (loopback), `fe80::/10` (link-local), `fc00::/7`
///   (ULA), `ff00::/8` (multicast).
///
/// None of these is ever the source of a request from the public internet. Documentation
/// and benchmarking ranges (`192.0.2.0/24`, `198.51.100.0/24`, `203.0.113.0/24`,
/// `198.18.0.0/15`, `2001:db8::/32`) are *not* in the list: they are looked up like any
/// other address, so a test database may give them a country. 6to4 (`2002::/16`) and
/// IPv4-compatible (`::a.b.c.d`) addresses are looked up as they are.
pub fn is_non_public(ip: IpAddr) -> bool {
    match ip.to_canonical() {
        IpAddr::V4(v4) => is_non_public_v4(v4),
        IpAddr::V6(v6) => is_non_public_v6(v6),
    }
}

/// `(network, prefix length)` pairs of [`is_non_public`] for IPv4.
const NON_PUBLIC_V4: [(u32, u32); 9] = [
    (0x0000_0000, 8),  // 0.0.0.0/8
    (0x0a00_0000, 8),  // 10.0.0.0/8
    (0x6440_0000, 10), // 100.64.0.0/10
    (0x7f00_0000, 8),  // 127.0.0.0/8
    (0xa9fe_0000, 16), // 169.254.0.0/16
    (0xac10_0000, 12), // 172.16.0.0/12
    (0xc0a8_0000, 16), // 192.168.0.0/16
    (0xe000_0000, 4),  // 224.0.0.0/4
    (0xf000_0000, 4),  // 240.0.0.0/4
];

fn is_non_public_v4(ip: Ipv4Addr) -> bool {
    let bits = u32::from(ip);
    NON_PUBLIC_V4
        .iter()
        .any(|&(network, len)| bits >> (32 - len) == network >> (32 - len))
}

fn is_non_public_v6(ip: Ipv6Addr) -> bool {
    let bits = u128::from(ip);
    bits <= 1 // :: and ::1
        || bits >> 118 == 0x3fa // fe80::/10
        || bits >> 121 == 0x7e // fc00::/7
        || bits >> 120 == 0xff // ff00::/8
}

/// Why a GeoIP database could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum GeoError {
    /// The file could not be read (missing, unreadable, a directory).
    #[error("cannot read geoip database \"{}\": {reason}", .path.display())]
    Read {
        /// The path given to [`Geo::open`].
        path: PathBuf,
        /// The I/O error.
        reason: std::io::Error,
    },
    /// The file was read but is not a MaxMind DB the reader accepts.
    #[error("invalid geoip database \"{}\": {reason}", .path.display())]
    Invalid {
        /// The path given to [`Geo::open`].
        path: PathBuf,
        /// The reader's reason.
        reason: MaxMindDbError,
    },
    /// The bytes given to [`Geo::from_bytes`] are not a MaxMind DB the reader accepts.
    #[error("invalid geoip database: {reason}")]
    InvalidBytes {
        /// The reader's reason.
        reason: MaxMindDbError,
    },
}

/// An opened country database (MaxMind DB format: GeoIP2/GeoLite2 Country or City, or a
/// flat `country_code` layout such as ip-location-db's). `Send + Sync`: share one by
/// reference between threads. The whole file is held in memory, plus a 32 KiB memo.
#[derive(Debug)]
pub struct Geo {
    reader: Reader<Vec<u8>>,
    ipv4_only: bool,
    is_test: bool,
    memo: Memo,
}

/// Slots of [`Memo`]: 32 KiB, more than the distinct records of a country database.
const MEMO_SLOTS: usize = 4096;

/// Remembers the country decoded for a record, by the record's data-section offset, so the
/// many networks that share one record cost one decode. Direct-mapped, lock-free, shared by
/// every thread: a slot holds `(offset + 1) << 16 | code` in one atomic word, so a reader
/// sees a whole entry or another one, never half of each; a race only costs a second decode.
/// Lookup errors are never remembered.
struct Memo {
    slots: Box<[AtomicU64]>,
}

impl Memo {
    fn new() -> Memo {
        Memo {
            slots: (0..MEMO_SLOTS).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// The slot and tag of `offset`; `None` past 2⁴⁷ (never, in a file that fits memory).
    fn slot(&self, offset: usize) -> Option<(&AtomicU64, u64)> {
        let offset = u64::try_from(offset).ok().filter(|o| *o < 1 << 47)?;
        let hash = offset.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - MEMO_SLOTS.ilog2());
        let slot = usize::try_from(hash).expect("a hash below MEMO_SLOTS fits usize");
        Some((&self.slots[slot], offset + 1))
    }

    fn get(&self, offset: usize) -> Option<Country> {
        let (slot, tag) = self.slot(offset)?;
        let entry = slot.load(Ordering::Relaxed);
        // Only `put` writes a slot, so a matching tag carries a country it stored.
        (entry >> 16 == tag).then(|| Country((entry as u16).to_be_bytes()))
    }

    fn put(&self, offset: usize, country: Country) {
        if let Some((slot, tag)) = self.slot(offset) {
            let code = u64::from(u16::from_be_bytes(country.0));
            slot.store(tag << 16 | code, Ordering::Relaxed);
        }
    }
}

impl fmt::Debug for Memo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Memo")
            .field("slots", &self.slots.len())
            .finish()
    }
}

/// Where GeoIP2/GeoLite2 Country and City records keep the country (SPEC §3).
const ISO_CODE_PATH: [PathElement<'static>; 2] =
    [PathElement::Key("country"), PathElement::Key("iso_code")];
/// Where flat layouts (ip-location-db and similar) keep it.
const COUNTRY_CODE_PATH: [PathElement<'static>; 1] = [PathElement::Key("country_code")];

impl Geo {
    /// Reads the whole file at `path` and opens it as a MaxMind DB.
    ///
    /// Refuses with [`GeoError::Read`] when the file cannot be read, and with
    /// [`GeoError::Invalid`] when the reader rejects it (truncated, no metadata, format
    /// major version other than 2, a search tree larger than the file, an absurd build
    /// epoch, …). A file that opens may still be corrupt in places: lookups there answer
    /// `"XX"`.
    pub fn open(path: &Path) -> Result<Geo, GeoError> {
        Reader::open_readfile(path)
            .map(Geo::from_reader)
            .map_err(|reason| match reason {
                MaxMindDbError::Io(reason) => GeoError::Read {
                    path: path.to_owned(),
                    reason,
                },
                reason => GeoError::Invalid {
                    path: path.to_owned(),
                    reason,
                },
            })
    }

    /// Opens a MaxMind DB held in memory. Refuses with [`GeoError::InvalidBytes`] what
    /// [`Geo::open`] refuses with [`GeoError::Invalid`].
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Geo, GeoError> {
        Reader::from_source(bytes)
            .map(Geo::from_reader)
            .map_err(|reason| GeoError::InvalidBytes { reason })
    }

    fn from_reader(reader: Reader<Vec<u8>>) -> Geo {
        let metadata = reader.metadata();
        let is_test = std::iter::once(&metadata.database_type)
            .chain(metadata.description.values())
            .any(|text| says_test_or_fake(text));
        Geo {
            ipv4_only: metadata.ip_version == 4,
            is_test,
            reader,
            memo: Memo::new(),
        }
    }

    /// The country of `ip` (SPEC §3), never failing and never panicking:
    ///
    /// - an IPv4-mapped IPv6 address is looked up as IPv4;
    /// - an address for which [`is_non_public`] holds is `"XX"` without a lookup;
    /// - otherwise the record's `country.iso_code`, else its flat `country_code` (each used
    ///   only when it is two ASCII letters; read in upper case); `registered_country` and
    ///   `represented_country` are never used;
    /// - no record, a record without either field, an IPv6 address in an IPv4-only
    ///   database, and any lookup or decoding error (a corrupt file) are `"XX"`.
    pub fn country(&self, ip: IpAddr) -> Country {
        self.try_country(ip).unwrap_or(Country::UNKNOWN)
    }

    /// [`Geo::country`], with the reader's error instead of `"XX"` for a corrupt record.
    fn try_country(&self, ip: IpAddr) -> Result<Country, MaxMindDbError> {
        let ip = ip.to_canonical();
        let skip = match ip {
            IpAddr::V4(v4) => is_non_public_v4(v4),
            // The reader refuses IPv6 in an IPv4-only database with an error that
            // allocates its message: answer before asking.
            IpAddr::V6(v6) => self.ipv4_only || is_non_public_v6(v6),
        };
        if skip {
            return Ok(Country::UNKNOWN);
        }
        let found = self.reader.lookup(ip)?;
        let Some(offset) = found.offset() else {
            return Ok(Country::UNKNOWN);
        };
        if let Some(country) = self.memo.get(offset) {
            return Ok(country);
        }
        let country = decode_country(&found)?;
        self.memo.put(offset, country);
        Ok(country)
    }

    /// True when the metadata calls this a test or fake database: its `database_type` or
    /// any of its descriptions contains the word "test" or "fake" (whole words, any case:
    /// "GeoIP2 Country Test Database (fake GeoIP2 data, …)" does, "latest" does not).
    /// MaxMind's test databases all say so. The loader warns about such a database.
    pub fn is_test_database(&self) -> bool {
        self.is_test
    }

    /// The metadata's `database_type`, e.g. `"GeoLite2-Country"`.
    pub fn database_type(&self) -> &str {
        &self.reader.metadata().database_type
    }

    /// The metadata's `build_epoch`: when the database was built, in seconds since the Unix
    /// epoch.
    pub fn build_epoch(&self) -> u64 {
        self.reader.metadata().build_epoch
    }

    /// The number of nodes in the search tree (a rough measure of the database's size).
    pub fn node_count(&self) -> u32 {
        self.reader.metadata().node_count
    }
}

/// The record's `country.iso_code`, else its `country_code`, else unknown (each only when
/// it is two ASCII letters).
fn decode_country(found: &LookupResult<'_, Vec<u8>>) -> Result<Country, MaxMindDbError> {
    // Up to two path walks over the record, borrowing the strings. The first stops at
    // `country.iso_code` and never reads what follows it (`location`, `registered_country`,
    // `traits`…): measured at about 75 ns against 165 ns for a borrowed serde struct of both
    // fields on GeoLite2-Country-Test records (the struct wins on flat records, 32 ns
    // against 58). A type mismatch on the first path (say `country` is a string) still
    // lets a flat `country_code` answer.
    let iso_code = code_at(found, &ISO_CODE_PATH);
    if let Ok(Some(country)) = iso_code {
        return Ok(country);
    }
    match (iso_code, code_at(found, &COUNTRY_CODE_PATH)) {
        (_, Ok(Some(country))) => Ok(country),
        (Err(error), _) | (_, Err(error)) => Err(error),
        (Ok(_), Ok(None)) => Ok(Country::UNKNOWN),
    }
}

/// The code at `path` when it is a string of two ASCII letters. The string is borrowed
/// from the database: nothing is allocated.
fn code_at(
    found: &LookupResult<'_, Vec<u8>>,
    path: &[PathElement<'_>],
) -> Result<Option<Country>, MaxMindDbError> {
    Ok(found.decode_path::<&str>(path)?.and_then(Country::parse))
}

/// True when `text` holds "test" or "fake" as a word (split at anything but letters).
fn says_test_or_fake(text: &str) -> bool {
    text.split(|c: char| !c.is_alphabetic())
        .any(|word| word.eq_ignore_ascii_case("test") || word.eq_ignore_ascii_case("fake"))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::time::{Duration, UNIX_EPOCH};

    use mmdb_writer::ipnet::IpNet;
    use mmdb_writer::{IpVersion, Ipv4Aliasing, Value, Writer};

    use super::*;

    /// The repository root: the fixtures live under `tests/fixtures/geoip/`, the Country test
    /// databases under `geoip/`.
    fn repo() -> &'static Path {
        Path::new(env!("CARGO_MANIFEST_DIR"))
    }

    fn fixture(name: &str) -> PathBuf {
        repo().join("tests/fixtures/geoip").join(name)
    }

    /// The file of a database named in EXPECTED.tsv.
    fn maxmind_db(name: &str) -> PathBuf {
        match name {
            "GeoIP2-Country-Test" | "GeoLite2-Country-Test" => {
                repo().join("geoip").join(format!("{name}.mmdb"))
            }
            "GeoIP2-City-Test" | "GeoLite2-City-Test" => fixture(&format!("{name}.mmdb")),
            other => panic!("EXPECTED.tsv names an unknown database {other:?}"),
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse()
            .unwrap_or_else(|_| panic!("bad address literal {s:?}"))
    }

    fn cc(s: &str) -> Country {
        Country::parse(s).unwrap_or_else(|| panic!("bad country literal {s:?}"))
    }

    fn map(entries: &[(&str, Value)]) -> Value {
        Value::map(entries.iter().map(|(key, value)| (*key, value.clone())))
    }

    fn iso(code: &str) -> Value {
        map(&[("iso_code", Value::from(code))])
    }

    /// Builds a database with mmdb-writer; `records` are `(network, record)`.
    fn build(version: IpVersion, aliasing: Ipv4Aliasing, records: &[(&str, Value)]) -> Geo {
        build_named(
            "Edgeguard-Country",
            "unit test database",
            version,
            aliasing,
            records,
        )
    }

    fn build_named(
        database_type: &str,
        description: &str,
        version: IpVersion,
        aliasing: Ipv4Aliasing,
        records: &[(&str, Value)],
    ) -> Geo {
        let mut writer = Writer::builder(database_type)
            .description(&[("en", description)])
            .ip_version(version)
            .ipv4_aliasing(aliasing)
            .build_epoch(UNIX_EPOCH + Duration::from_secs(1_700_000_000))
            .build();
        for (network, record) in records {
            let network: IpNet = network.parse().expect("test network");
            writer
                .insert_value(network, record.clone())
                .expect("insert test record");
        }
        Geo::from_bytes(writer.to_bytes().expect("serialize test database"))
            .expect("a database written by mmdb-writer opens")
    }

    #[test]
    fn country_parse_reads_two_letters_in_any_case_as_upper_case() {
        for (input, expected) in [
            ("GB", "GB"),
            ("gb", "GB"),
            ("Gb", "GB"),
            ("xx", "XX"),
            ("XK", "XK"),
            ("zz", "ZZ"),
        ] {
            let country = Country::parse(input).unwrap_or_else(|| panic!("{input:?} refused"));
            assert_eq!(country.as_str(), expected, "{input:?}");
            assert_eq!(country.to_string(), expected, "{input:?}");
        }
    }

    #[test]
    fn country_parse_refuses_anything_but_two_ascii_letters() {
        for input in [
            "", "G", "GBR", "G1", "1G", "G ", " G", "G-", "é", "éé", "ÉE", "\u{0}G", "ＧＢ",
        ] {
            assert_eq!(Country::parse(input), None, "{input:?}");
        }
    }

    #[test]
    fn country_unknown_is_xx_and_the_default() {
        assert_eq!(Country::UNKNOWN.as_str(), "XX");
        assert_eq!(Country::default(), Country::UNKNOWN);
        assert_eq!(Country::parse("xx"), Some(Country::UNKNOWN));
        assert!(Country::UNKNOWN.is_unknown());
        assert!(!cc("GB").is_unknown());
        assert_eq!(std::mem::size_of::<Country>(), 2);
    }

    #[test]
    fn country_formats_as_its_code() {
        let gb = cc("gb");
        assert_eq!(format!("{gb}"), "GB");
        assert_eq!(format!("[{gb:>4}]"), "[  GB]");
        assert_eq!(format!("{gb:?}"), "Country(\"GB\")");
        assert_eq!(serde_json::to_string(&gb).expect("serialize"), "\"GB\"");
    }

    #[test]
    fn assigned_table_is_sorted_unique_upper_case_and_complete() {
        assert!(ASSIGNED.windows(2).all(|pair| pair[0] < pair[1]));
        assert!(ASSIGNED.iter().flatten().all(u8::is_ascii_uppercase));
        let known = (b'A'..=b'Z')
            .flat_map(|a| (b'A'..=b'Z').map(move |b| Country([a, b])))
            .filter(Country::is_known)
            .count();
        assert_eq!(known, 249 + 2, "249 assigned codes plus XX and XK");
    }

    #[test]
    fn known_country_codes_are_assigned_iso_codes_xx_and_xk() {
        for code in "US GB KP IR AD ZW SS BQ SX kp gb XX xx XK".split(' ') {
            assert!(is_known_country_code(code), "{code:?}");
        }
        // EU and AP appear in some databases; AN, YU and CS were withdrawn.
        for code in [
            "EU", "AP", "UK", "ZZ", "AA", "AN", "YU", "CS", "XY", "", "USA", "U1",
        ] {
            assert!(!is_known_country_code(code), "{code:?}");
        }
    }

    #[test]
    fn non_public_addresses_are_private_loopback_link_local_cgnat_ula_and_unroutable() {
        let non_public = "0.0.0.0 0.255.255.255 10.0.0.0 10.255.255.255 100.64.0.0 \
             100.127.255.255 127.0.0.1 127.255.255.255 169.254.0.0 169.254.255.255 \
             172.16.0.0 172.31.255.255 192.168.0.0 192.168.255.255 224.0.0.1 \
             239.255.255.255 240.0.0.1 255.255.255.255 :: ::1 fe80::1 febf:ffff::1 \
             fc00::1 fdff:ffff::1 ff02::1 ff00:: ::ffff:10.0.0.1 ::ffff:127.0.0.1 \
             ::ffff:100.64.0.1";
        let public = "1.0.0.0 9.255.255.255 11.0.0.0 100.63.255.255 100.128.0.0 \
             126.255.255.255 128.0.0.0 169.253.255.255 169.255.0.0 172.15.255.255 \
             172.32.0.0 192.0.2.1 192.167.255.255 192.169.0.0 198.18.0.1 \
             198.51.100.1 203.0.113.1 223.255.255.255 ::2 fec0::1 fe7f::1 fbff::1 \
             fe00::1 2001:db8::1 2001:4860::8888 2002:a00:1:: ::ffff:8.8.8.8 \
             ::ffff:81.2.69.160";
        for address in non_public.split_whitespace() {
            assert!(is_non_public(ip(address)), "{address} is not public");
        }
        for address in public.split_whitespace() {
            assert!(!is_non_public(ip(address)), "{address} is public");
        }
    }

    /// One line of EXPECTED.tsv.
    struct Row {
        db: String,
        ip: IpAddr,
        iso_code: Option<Country>,
        note: String,
    }

    fn expected_rows() -> Vec<Row> {
        let text = std::fs::read_to_string(fixture("EXPECTED.tsv")).expect("read EXPECTED.tsv");
        let mut lines = text.lines();
        assert_eq!(
            lines.next(),
            Some(
                "db\tip\tiso_code\tregistered_country_iso_code\t\
                 represented_country_iso_code\tprefix_len_in_ipv6_tree\tnote"
            )
        );
        lines
            .filter(|line| !line.is_empty())
            .map(|line| {
                let fields: Vec<&str> = line.split('\t').collect();
                assert_eq!(fields.len(), 7, "{line:?}");
                Row {
                    db: fields[0].to_owned(),
                    ip: ip(fields[1]),
                    iso_code: (fields[2] != "-").then(|| cc(fields[2])),
                    note: fields[6].to_owned(),
                }
            })
            .collect()
    }

    #[test]
    fn every_expected_tsv_row_matches_the_four_maxmind_databases() {
        let rows = expected_rows();
        assert_eq!(rows.len(), 200);
        let names: BTreeSet<&str> = rows.iter().map(|row| row.db.as_str()).collect();
        assert_eq!(
            names.into_iter().collect::<Vec<_>>(),
            [
                "GeoIP2-City-Test",
                "GeoIP2-Country-Test",
                "GeoLite2-City-Test",
                "GeoLite2-Country-Test"
            ]
        );
        let mut notes = BTreeSet::new();
        for name in [
            "GeoIP2-City-Test",
            "GeoIP2-Country-Test",
            "GeoLite2-City-Test",
        ]
        .into_iter()
        .chain(["GeoLite2-Country-Test"])
        {
            let geo = Geo::open(&maxmind_db(name)).expect("a MaxMind test database opens");
            let mut checked = 0;
            for row in rows.iter().filter(|row| row.db == name) {
                let expected = row.iso_code.unwrap_or(Country::UNKNOWN);
                assert_eq!(
                    row.note == "ok",
                    row.iso_code.is_some(),
                    "{name} {}: the note says {}",
                    row.ip,
                    row.note
                );
                if is_non_public(row.ip) {
                    assert_eq!(row.iso_code, None, "{name} {} is not public", row.ip);
                }
                assert_eq!(geo.country(row.ip), expected, "{name} {}", row.ip);
                assert_eq!(geo.country(row.ip), expected, "{name} {} again", row.ip);
                assert!(geo.try_country(row.ip).is_ok(), "{name} {}", row.ip);
                notes.insert(row.note.as_str());
                checked += 1;
            }
            assert_eq!(checked, 50, "{name}");
        }
        assert_eq!(
            notes.into_iter().collect::<Vec<_>>(),
            ["no_record", "ok", "record_without_country"]
        );
    }

    #[test]
    fn maxmind_country_never_falls_back_to_registered_or_represented_country() {
        let geo = Geo::open(&maxmind_db("GeoIP2-Country-Test")).expect("open");
        for (address, expected) in [
            ("2.125.160.216", "GB"),      // registered FR
            ("202.196.224.1", "PH"),      // represented US
            ("81.2.69.160", "GB"),        // registered US
            ("::ffff:81.2.69.160", "GB"), // IPv4-mapped
            ("2002:5102:45a0::1", "GB"),  // 6to4 alias in the file
            ("2001:220::", "SE"),         // a /128 inside a KR network
            ("2001:220::1", "KR"),
            ("214.1.1.1", "XX"),    // record with only traits
            ("2a02:d500::1", "XX"), // record with only continent
        ] {
            assert_eq!(geo.country(ip(address)), cc(expected), "{address}");
        }
    }

    #[test]
    fn record_layouts_give_country_iso_code_else_flat_country_code_else_unknown() {
        let cases: [(&str, Value, &str); 17] = [
            ("198.51.100.0/24", map(&[("country", iso("FR"))]), "FR"),
            (
                "192.0.2.0/24",
                map(&[("country_code", Value::from("DE"))]),
                "DE",
            ),
            (
                "203.0.113.0/24",
                map(&[("country", iso("GB")), ("country_code", Value::from("US"))]),
                "GB",
            ),
            (
                "2001:db8:1::/48",
                map(&[
                    ("registered_country", iso("US")),
                    ("represented_country", iso("US")),
                ]),
                "XX",
            ),
            ("2001:db8:2::/48", map(&[("country", iso("se"))]), "SE"),
            (
                "2001:db8:3::/48",
                map(&[("country", iso("SWE")), ("country_code", Value::from("se"))]),
                "SE",
            ),
            ("2001:db8:4::/48", map(&[("country", iso(""))]), "XX"),
            (
                "2001:db8:5::/48",
                map(&[
                    ("country", Value::from("US")),
                    ("country_code", Value::from("CA")),
                ]),
                "CA",
            ),
            (
                "2001:db8:6::/48",
                map(&[("country", Value::from("US"))]),
                "XX",
            ),
            (
                "2001:db8:7::/48",
                map(&[("country", map(&[("iso_code", Value::from(840_u32))]))]),
                "XX",
            ),
            ("2001:db8:8::/48", Value::from("US"), "XX"),
            (
                "2001:db8:9::/48",
                map(&[(
                    "country",
                    map(&[
                        ("geoname_id", Value::from(2_635_167_u32)),
                        ("names", map(&[("en", Value::from("United Kingdom"))])),
                    ]),
                )]),
                "XX",
            ),
            ("2001:db8:a::/48", map(&[]), "XX"),
            (
                "2001:db8:b::/48",
                map(&[("country_code", Value::from("XK"))]),
                "XK",
            ),
            (
                "2001:db8:c::/48",
                map(&[("country_code", Value::from("EU"))]),
                "EU",
            ),
            (
                "2001:db8:d::/48",
                map(&[("country_code", Value::from("USA"))]),
                "XX",
            ),
            (
                "2001:db8:e::/48",
                map(&[
                    ("continent", map(&[("code", Value::from("EU"))])),
                    ("country", iso("NL")),
                    ("registered_country", iso("DE")),
                    ("traits", map(&[("is_anycast", Value::from(true))])),
                ]),
                "NL",
            ),
        ];
        let records: Vec<(&str, Value)> = cases
            .iter()
            .map(|(network, record, _)| (*network, record.clone()))
            .collect();
        let geo = build(IpVersion::V6, Ipv4Aliasing::Enabled, &records);
        for (network, _, expected) in &cases {
            let network: IpNet = network.parse().expect("test network");
            let host = match network.network() {
                IpAddr::V4(v4) => IpAddr::V4((u32::from(v4) | 7).into()),
                IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) | 7).into()),
            };
            assert_eq!(geo.country(host), cc(expected), "{network}");
        }
    }

    #[test]
    fn non_public_addresses_are_unknown_even_when_the_database_has_a_country_for_them() {
        let networks = [
            "0.0.0.0/8",
            "10.0.0.0/8",
            "100.64.0.0/10",
            "127.0.0.0/8",
            "169.254.0.0/16",
            "172.16.0.0/12",
            "192.168.0.0/16",
            "224.0.0.0/4",
            "240.0.0.0/4",
            "fc00::/7",
            "fe80::/10",
            "ff00::/8",
            "8.8.8.0/24",
            "2001:4860::/32",
        ];
        let fr = map(&[("country", iso("FR"))]);
        let records: Vec<(&str, Value)> = networks.iter().map(|n| (*n, fr.clone())).collect();
        let geo = build(IpVersion::V6, Ipv4Aliasing::Enabled, &records);
        for (address, expected) in [
            ("0.1.2.3", "XX"),
            ("10.1.2.3", "XX"),
            ("100.64.1.2", "XX"),
            ("127.0.0.1", "XX"),
            ("169.254.1.2", "XX"),
            ("172.16.1.2", "XX"),
            ("192.168.1.2", "XX"),
            ("224.0.0.1", "XX"),
            ("255.255.255.255", "XX"),
            ("fd00::1", "XX"),
            ("fe80::1", "XX"),
            ("ff02::1", "XX"),
            ("::ffff:10.1.2.3", "XX"),
            ("::ffff:192.168.1.2", "XX"),
            ("8.8.8.8", "FR"),
            ("::ffff:8.8.8.8", "FR"),
            ("2001:4860::8888", "FR"),
        ] {
            assert_eq!(geo.country(ip(address)), cc(expected), "{address}");
        }
    }

    #[test]
    fn ipv4_mapped_ipv6_is_looked_up_as_ipv4_without_aliases_in_the_database() {
        let fr = map(&[("country", iso("FR"))]);
        let geo = build(
            IpVersion::V6,
            Ipv4Aliasing::Disabled,
            &[("198.51.100.0/24", fr)],
        );
        for (address, expected) in [
            ("198.51.100.7", "FR"),
            ("::ffff:198.51.100.7", "FR"),
            ("::ffff:c633:6407", "FR"),
            // 6to4 is looked up as it is: without aliases in the file it has no record.
            ("2002:c633:6407::1", "XX"),
        ] {
            assert_eq!(geo.country(ip(address)), cc(expected), "{address}");
        }
    }

    #[test]
    fn ipv4_only_database_answers_ipv6_with_unknown() {
        let fr = map(&[("country", iso("FR"))]);
        let built = build(
            IpVersion::V4,
            Ipv4Aliasing::Enabled,
            &[("198.51.100.0/24", fr)],
        );
        let maxmind = Geo::open(&fixture("MaxMind-DB-test-ipv4-24.mmdb")).expect("open");
        for (geo, address, expected) in [
            (&built, "198.51.100.7", "FR"),
            (&built, "::ffff:198.51.100.7", "FR"),
            (&built, "2001:db8::1", "XX"),
            (&built, "2a02:d180::1", "XX"),
            (&maxmind, "1.1.1.1", "XX"),
            (&maxmind, "::1.1.1.1", "XX"),
            (&maxmind, "::ffff:1.1.1.1", "XX"),
            (&maxmind, "2001:218::1", "XX"),
        ] {
            assert_eq!(geo.country(ip(address)), cc(expected), "{address}");
            // Answered before the reader is asked, so no error is even made.
            assert!(geo.try_country(ip(address)).is_ok(), "{address}");
        }
    }

    use Bad::{Answers, Fails, Refused};

    /// What the reader does with each file of bad-data/ (MaxMind's corrupt databases).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
    enum Bad {
        /// `open` refuses it.
        Refused,
        /// It opens, and some lookups of the sweep end in a reader error ("XX").
        Fails,
        /// It opens, and every lookup of the sweep answers without error.
        Answers,
    }

    /// bad-data/ files that `open` refuses.
    const REFUSED: [&str; 10] = [
        "libmaxminddb/libmaxminddb-metadata-marker-only.mmdb",
        "libmaxminddb/libmaxminddb-offset-integer-overflow.mmdb",
        "libmaxminddb/libmaxminddb-uint64-max-epoch.mmdb",
        "maxminddb-golang/cyclic-data-structure.mmdb",
        "maxminddb-golang/invalid-bytes-length.mmdb",
        "maxminddb-golang/invalid-data-record-offset.mmdb",
        "maxminddb-golang/invalid-map-key-length.mmdb",
        "maxminddb-golang/invalid-string-length.mmdb",
        "maxminddb-golang/metadata-is-an-uint128.mmdb",
        "maxminddb-golang/unexpected-bytes.mmdb",
    ];

    /// bad-data/ files that open, where some lookups of the sweep end in a reader error.
    const OPEN_SOME_LOOKUPS_FAIL: [&str; 8] = [
        "libmaxminddb/libmaxminddb-deep-array-nesting.mmdb",
        "libmaxminddb/libmaxminddb-deep-nesting.mmdb",
        "libmaxminddb/libmaxminddb-oversized-array.mmdb",
        "libmaxminddb/libmaxminddb-oversized-map.mmdb",
        "libmaxminddb/libmaxminddb-separator-record-max-left.mmdb",
        "libmaxminddb/libmaxminddb-separator-record-min-left.mmdb",
        "libmaxminddb/libmaxminddb-separator-record-min-right.mmdb",
        "maxminddb-python/bad-unicode-in-map-key.mmdb",
    ];

    /// bad-data/ files that open, where every lookup of the sweep answers without error.
    const OPEN_EVERY_LOOKUP_ANSWERS: [&str; 3] = [
        "libmaxminddb/libmaxminddb-corrupt-search-tree.mmdb",
        "libmaxminddb/libmaxminddb-empty-array-last-in-metadata.mmdb",
        "libmaxminddb/libmaxminddb-empty-map-last-in-metadata.mmdb",
    ];

    fn bad_data() -> Vec<(&'static str, Bad)> {
        let mut files: Vec<(&str, Bad)> = REFUSED.iter().map(|f| (*f, Refused)).collect();
        files.extend(OPEN_SOME_LOOKUPS_FAIL.iter().map(|f| (*f, Fails)));
        files.extend(OPEN_EVERY_LOOKUP_ANSWERS.iter().map(|f| (*f, Answers)));
        files.sort_unstable();
        files
    }

    /// About 2,000 addresses spread over IPv4 and IPv6 (SplitMix64, fixed seed), the
    /// address-space edges, and every address of EXPECTED.tsv.
    fn sweep() -> Vec<IpAddr> {
        let mut state = 0x9e37_79b9_u64;
        let mut next = move || {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        let mut addresses: Vec<IpAddr> = Vec::new();
        for _ in 0..1000 {
            addresses.push(IpAddr::V4(Ipv4Addr::from((next() >> 32) as u32)));
            addresses.push(IpAddr::V6(Ipv6Addr::from(
                (u128::from(next()) << 64) | u128::from(next()),
            )));
        }
        for first in 0..=255_u8 {
            addresses.push(IpAddr::V4(Ipv4Addr::new(first, 1, 2, 3)));
        }
        for edge in [
            "0.0.0.0",
            "0.0.0.1",
            "1.0.0.0",
            "127.255.255.255",
            "128.0.0.0",
            "223.255.255.255",
            "255.255.255.255",
            "::",
            "::1",
            "::ffff:0:0",
            "::ffff:255.255.255.255",
            "2001::1",
            "2002::1",
            "8000::",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        ] {
            addresses.push(ip(edge));
        }
        addresses.extend(expected_rows().iter().map(|row| row.ip));
        addresses
    }

    #[test]
    fn bad_data_files_are_refused_or_answer_every_lookup_without_panicking() {
        let root = fixture("bad-data");
        let mut on_disk = BTreeSet::new();
        for group in std::fs::read_dir(&root).expect("read bad-data/") {
            let group = group.expect("bad-data/ entry").path();
            for file in std::fs::read_dir(&group).expect("read a bad-data/ folder") {
                let file = file.expect("bad-data/ file").path();
                let relative = file.strip_prefix(&root).expect("under bad-data/");
                on_disk.insert(relative.to_string_lossy().replace('\\', "/"));
            }
        }
        let listed: BTreeSet<String> = bad_data().iter().map(|(f, _)| (*f).to_owned()).collect();
        assert_eq!(
            on_disk, listed,
            "bad-data/ and the lists of expectations disagree"
        );

        let addresses = sweep();
        assert!(addresses.len() >= 2_000 + 200);
        let mut seen = Vec::new();
        for (file, _) in bad_data() {
            let path = root.join(file);
            let found = match Geo::open(&path) {
                Err(error) => {
                    let message = error.to_string();
                    assert!(
                        matches!(error, GeoError::Invalid { .. }),
                        "{file}: {message}"
                    );
                    assert!(
                        message.starts_with("invalid geoip database \"")
                            && message.contains(&path.display().to_string()),
                        "{file}: {message}"
                    );
                    let reason = message.rsplit_once("\": ").map(|(_, r)| r);
                    assert!(reason.is_some_and(|r| r.len() > 5), "{file}: {message}");
                    Refused
                }
                Ok(geo) => {
                    let mut failed = 0;
                    for &address in &addresses {
                        let country = geo.country(address);
                        assert!(country.0.iter().all(u8::is_ascii_uppercase), "{file}");
                        match geo.try_country(address) {
                            Ok(again) => assert_eq!(again, country, "{file} {address}"),
                            Err(_) => {
                                assert_eq!(country, Country::UNKNOWN, "{file} {address}");
                                failed += 1;
                            }
                        }
                    }
                    if failed > 0 { Fails } else { Answers }
                }
            };
            seen.push((file, found));
        }
        assert_eq!(seen, bad_data());
    }

    #[test]
    fn open_refuses_a_missing_file_or_a_directory_naming_the_path() {
        for path in [fixture("no-such-file.mmdb"), fixture("bad-data")] {
            let error = Geo::open(&path).expect_err("must not open");
            let message = error.to_string();
            assert!(matches!(error, GeoError::Read { .. }), "{message}");
            assert!(
                message.starts_with(&format!(
                    "cannot read geoip database \"{}\": ",
                    path.display()
                )),
                "{message}"
            );
        }
    }

    #[test]
    fn open_refuses_a_file_that_is_not_a_maxmind_database() {
        let path = fixture("EXPECTED.tsv");
        let error = Geo::open(&path).expect_err("must not open");
        let message = error.to_string();
        assert!(matches!(error, GeoError::Invalid { .. }), "{message}");
        assert!(
            message.starts_with(&format!(
                "invalid geoip database \"{}\": invalid database",
                path.display()
            )),
            "{message}"
        );
    }

    #[test]
    fn from_bytes_refuses_bytes_that_are_not_a_maxmind_database() {
        let valid = std::fs::read(maxmind_db("GeoLite2-Country-Test")).expect("read");
        let truncated = valid[..valid.len() / 2].to_vec();
        for bytes in [Vec::new(), b"not a database".to_vec(), truncated] {
            let error = Geo::from_bytes(bytes).expect_err("must not open");
            assert!(matches!(error, GeoError::InvalidBytes { .. }), "{error}");
            assert!(
                error.to_string().starts_with("invalid geoip database: "),
                "{error}"
            );
        }
        let geo = Geo::from_bytes(valid).expect("the whole file opens");
        assert_eq!(geo.country(ip("89.160.20.128")), cc("SE"));
    }

    #[test]
    fn metadata_is_exposed() {
        let geo = Geo::open(&maxmind_db("GeoIP2-Country-Test")).expect("open");
        assert_eq!(geo.database_type(), "GeoIP2-Country");
        assert_eq!(geo.build_epoch(), 1_770_245_369);
        assert_eq!(geo.node_count(), 1704);
        let built = build(IpVersion::V6, Ipv4Aliasing::Enabled, &[]);
        assert_eq!(built.database_type(), "Edgeguard-Country");
        assert_eq!(built.build_epoch(), 1_700_000_000);
    }

    #[test]
    fn maxmind_test_databases_are_test_databases() {
        for path in [
            maxmind_db("GeoIP2-Country-Test"),
            maxmind_db("GeoLite2-Country-Test"),
            maxmind_db("GeoIP2-City-Test"),
            maxmind_db("GeoLite2-City-Test"),
            fixture("MaxMind-DB-test-ipv4-24.mmdb"),
        ] {
            let geo = Geo::open(&path).expect("open");
            assert!(geo.is_test_database(), "{}", path.display());
        }
    }

    #[test]
    fn test_database_is_told_by_whole_words_test_or_fake_in_type_or_description() {
        for (database_type, description, is_test) in [
            ("GeoLite2-Country", "GeoLite2 Country database", false),
            (
                "DBIP-Country-Lite",
                "dbip-country-lite, latest release",
                false,
            ),
            ("ip-location-db", "", false),
            ("Contest-Country", "attested data", false),
            ("Acme-Country-Test", "Acme country", true),
            ("Acme-Country", "FAKE data for demos", true),
            ("Acme-Country", "unit test database", true),
            ("Test", "", true),
        ] {
            let geo = build_named(
                database_type,
                description,
                IpVersion::V6,
                Ipv4Aliasing::Enabled,
                &[],
            );
            assert_eq!(
                geo.is_test_database(),
                is_test,
                "{database_type} / {description}"
            );
        }
    }

    #[test]
    fn memo_returns_only_what_was_put_for_that_offset() {
        let memo = Memo::new();
        assert_eq!(memo.get(0), None);
        memo.put(0, cc("FR"));
        assert_eq!(memo.get(0), Some(cc("FR")));
        // Two offsets that share a slot evict each other and are never confused.
        let (slot, _) = memo.slot(12_345).expect("small offset");
        let rival = (12_346..)
            .find(|&o| memo.slot(o).is_some_and(|(s, _)| std::ptr::eq(s, slot)))
            .expect("some offset shares the slot");
        memo.put(12_345, cc("DE"));
        memo.put(rival, cc("GB"));
        assert_eq!(memo.get(12_345), None);
        assert_eq!(memo.get(rival), Some(cc("GB")));
        assert_eq!(memo.slot(usize::MAX).map(|(_, tag)| tag), None);
        memo.put(usize::MAX, cc("US"));
        assert_eq!(memo.get(usize::MAX), None);
    }

    #[test]
    fn more_distinct_records_than_memo_slots_still_answer_right_in_any_order() {
        let count = MEMO_SLOTS * 2;
        let code = |i: usize| {
            let letter = |n: usize| char::from(b'A' + u8::try_from(n % 26).expect("below 26"));
            format!("{}{}", letter(i / 26), letter(i))
        };
        let networks: Vec<String> = (0..count)
            .map(|i| format!("{}.{}.{}.0/24", 1 + i / 65_536, (i / 256) % 256, i % 256))
            .collect();
        let records: Vec<(&str, Value)> = networks
            .iter()
            .enumerate()
            .map(|(i, network)| {
                let serial = Value::from(u32::try_from(i).expect("small"));
                let record = map(&[("country", iso(&code(i))), ("serial", serial)]);
                (network.as_str(), record)
            })
            .collect();
        let geo = build(IpVersion::V6, Ipv4Aliasing::Enabled, &records);
        let host = |i: usize| ip(&networks[i].replace(".0/24", ".9"));
        for pass in 0..3 {
            for step in 0..count {
                // Forwards, backwards, then strided: records evict each other in the memo.
                let i = match pass {
                    0 => step,
                    1 => count - 1 - step,
                    _ => (step * 4099) % count,
                };
                assert_eq!(
                    geo.country(host(i)),
                    cc(&code(i)),
                    "pass {pass}, record {i}"
                );
            }
        }
    }

    #[test]
    fn geo_can_be_shared_between_threads() {
        fn shared<T: Send + Sync>() {}
        shared::<Geo>();
        shared::<Country>();
    }
}
