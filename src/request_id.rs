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
        }
        for bad in ["", "a b", "a/b", "<x>", &"x".repeat(65), "é"] {
            assert!(!is_acceptable(bad.as_bytes()), "{bad}");
        }
    }
}
