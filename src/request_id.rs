//! Request ids: 16 lowercase hex digits, unique within a process and hard to
//! guess across processes, made without a lock or a system call.

use std::cell::Cell;
use std::hash::{BuildHasher, RandomState};

thread_local! {
    static STATE: Cell<u64> = Cell::new(RandomState::new().hash_one(std::thread::current().id()));
}

/// A new request id.
pub fn new() -> RequestId {
    let n = STATE.with(|s| {
        // splitmix64: a full-period sequence per thread, well mixed.
        let next = s.get().wrapping_add(0x9e37_79b9_7f4a_7c15);
        s.set(next);
        let mut z = next;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    });
    let mut bytes = [0u8; 16];
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = HEX[((n >> (60 - 4 * i)) & 0xf) as usize];
    }
    RequestId(bytes)
}

/// A request id, kept inline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RequestId([u8; 16]);

impl RequestId {
    /// The id as text.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("hex digits are ASCII")
    }
}

/// The longest id a client may send (SPEC 4).
const MAX_GIVEN: usize = 64;

/// A request's id as it travels with the request: a new one, or one a
/// trusted peer sent. Kept inline, so that no request allocates for it.
#[derive(Clone, Copy)]
pub struct Id {
    bytes: [u8; MAX_GIVEN],
    len: u8,
}

impl Id {
    /// A new id.
    pub fn fresh() -> Id {
        let made = new();
        let mut bytes = [0u8; MAX_GIVEN];
        bytes[..made.0.len()].copy_from_slice(&made.0);
        Id {
            bytes,
            len: made.0.len() as u8,
        }
    }

    /// A client's id, when it may be kept.
    pub fn given(id: &[u8]) -> Option<Id> {
        if !is_acceptable(id) {
            return None;
        }
        let mut bytes = [0u8; MAX_GIVEN];
        bytes[..id.len()].copy_from_slice(id);
        Some(Id {
            bytes,
            len: id.len() as u8,
        })
    }

    /// The id's bytes: `[A-Za-z0-9._-]`, at most 64 of them.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(self.as_bytes()).unwrap_or("")
    }

    /// The id as a header value.
    pub fn header_value(&self) -> http::HeaderValue {
        http::HeaderValue::from_bytes(self.as_bytes()).expect("an id is a valid header value")
    }
}

impl std::fmt::Debug for Id {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether a client-sent id may be kept (SPEC 4): `[A-Za-z0-9._-]{1,64}`.
pub fn is_acceptable(id: &[u8]) -> bool {
    (1..=64).contains(&id.len())
        && id
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_sixteen_hex_digits_and_distinct() {
        let ids: std::collections::HashSet<String> =
            (0..10_000).map(|_| new().as_str().to_owned()).collect();
        assert_eq!(ids.len(), 10_000);
        assert!(
            ids.iter()
                .all(|id| id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit()))
        );
    }

    #[test]
    fn client_ids_are_kept_only_when_plain() {
        for ok in ["a", "4f1c2b8e9a7d4c3b", "req-1.2_3", &"x".repeat(64)] {
            assert!(is_acceptable(ok.as_bytes()), "{ok}");
            let id = Id::given(ok.as_bytes()).expect(ok);
            assert_eq!(id.as_str(), ok);
            assert_eq!(id.header_value(), ok);
        }
        for bad in ["", "a b", "a/b", "<x>", &"x".repeat(65), "é"] {
            assert!(!is_acceptable(bad.as_bytes()), "{bad}");
            assert!(Id::given(bad.as_bytes()).is_none(), "{bad}");
        }
    }

    #[test]
    fn new_ids_travel_whole() {
        let id = Id::fresh();
        assert_eq!(id.as_bytes().len(), 16);
        assert!(id.as_bytes().iter().all(u8::is_ascii_hexdigit));
        assert_ne!(Id::fresh().as_str(), id.as_str());
    }
}
