//! Whether the gateway may read a file or search a folder, decided from its
//! mode bits the way the kernel decides for a process that is not root.
//!
//! The rule, for the process's effective uid and gid and its supplementary
//! groups (read once from `/proc/self/status`):
//! - a process that is not root uses exactly one class of bits: the owner's
//!   when it owns the file, else the group's when the file's group is its
//!   effective or a supplementary group, else the others'. That class must
//!   hold every bit asked for (`r` to read a file, `x` to search a folder,
//!   both to list one);
//! - root (euid 0) would read anything, so a file is readable only when at
//!   least one class holds each bit asked for — as the kernel already does
//!   for root and `x` on files. A file with mode `000` is thus unreadable even
//!   to root, and a file only its owner may read is served by root.
//!
//! ACLs and capabilities are not looked at; an `open` that fails with
//! `EACCES` counts as unreadable too, whatever the bits say. Where
//! `/proc/self/status` cannot be read, only that `open` decides.

use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;
use std::sync::OnceLock;

/// Read permission, in one class of mode bits.
pub(super) const READ: u32 = 0o4;
/// Search (execute) permission, in one class of mode bits.
pub(super) const SEARCH: u32 = 0o1;

/// Who the process is, for permission checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Identity {
    /// Effective user id.
    pub(super) uid: u32,
    /// Effective group id.
    pub(super) gid: u32,
    /// Supplementary groups.
    pub(super) groups: Vec<u32>,
}

/// The process's identity, read once; `None` where `/proc` is not there.
fn current() -> Option<&'static Identity> {
    static IDENTITY: OnceLock<Option<Identity>> = OnceLock::new();
    IDENTITY
        .get_or_init(|| {
            let status = std::fs::read_to_string("/proc/self/status").ok()?;
            parse_status(&status)
        })
        .as_ref()
}

/// The effective uid and gid and the supplementary groups of a
/// `/proc/<pid>/status` text (`Uid:` real, effective, saved, fs).
pub(super) fn parse_status(status: &str) -> Option<Identity> {
    let mut uid = None;
    let mut gid = None;
    let mut groups = Vec::new();
    for line in status.lines() {
        if let Some(rest) = line.strip_prefix("Uid:") {
            uid = rest.split_whitespace().nth(1).and_then(|v| v.parse().ok());
        } else if let Some(rest) = line.strip_prefix("Gid:") {
            gid = rest.split_whitespace().nth(1).and_then(|v| v.parse().ok());
        } else if let Some(rest) = line.strip_prefix("Groups:") {
            groups = rest
                .split_whitespace()
                .filter_map(|v| v.parse().ok())
                .collect();
        }
    }
    Some(Identity {
        uid: uid?,
        gid: gid?,
        groups,
    })
}

/// Whether this process may do `wanted` (`READ`, `SEARCH` or both) to the
/// file `meta` describes, by the rule of the module doc.
pub(super) fn permits(meta: &Metadata, wanted: u32) -> bool {
    current().is_none_or(|id| permits_mode(id, meta.mode(), meta.uid(), meta.gid(), wanted))
}

/// [`permits`] on raw values, for tests.
pub(super) fn permits_mode(id: &Identity, mode: u32, uid: u32, gid: u32, wanted: u32) -> bool {
    let owner = (mode >> 6) & 0o7;
    let group = (mode >> 3) & 0o7;
    let other = mode & 0o7;
    if id.uid == 0 {
        let any = owner | group | other;
        return any & wanted == wanted;
    }
    let class = if id.uid == uid {
        owner
    } else if id.gid == gid || id.groups.contains(&gid) {
        group
    } else {
        other
    };
    class & wanted == wanted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_gives_the_effective_ids_and_groups() {
        let status = "Name:\tedgeguard\nUid:\t1000\t1001\t1000\t1001\n\
                      Gid:\t100\t101\t100\t101\nGroups:\t4 27 101 \n";
        assert_eq!(
            parse_status(status),
            Some(Identity {
                uid: 1001,
                gid: 101,
                groups: vec![4, 27, 101],
            })
        );
        assert_eq!(parse_status("Name:\tx\n"), None);
    }

    #[test]
    fn one_class_of_bits_decides_for_a_process_that_is_not_root() {
        let id = Identity {
            uid: 1000,
            gid: 100,
            groups: vec![27],
        };
        // (mode, owner uid, group gid, wanted, permitted)
        let table = [
            (0o644, 1000, 100, READ, true),
            (0o044, 1000, 100, READ, false), // the owner's bits decide, even if group may
            (0o604, 2000, 100, READ, false), // the group's bits decide, even if others may
            (0o640, 2000, 27, READ, true),   // a supplementary group
            (0o640, 2000, 200, READ, false),
            (0o004, 2000, 200, READ, true),
            (0o755, 2000, 200, READ | SEARCH, true),
            (0o754, 2000, 200, READ | SEARCH, false),
            (0o711, 2000, 200, SEARCH, true),
            (0o000, 1000, 100, READ, false),
        ];
        for (mode, uid, gid, wanted, ok) in table {
            assert_eq!(permits_mode(&id, mode, uid, gid, wanted), ok, "{mode:o}");
        }
    }

    #[test]
    fn root_needs_the_bit_in_some_class() {
        let root = Identity {
            uid: 0,
            gid: 0,
            groups: Vec::new(),
        };
        assert!(!permits_mode(&root, 0o000, 0, 0, READ));
        assert!(permits_mode(&root, 0o400, 1000, 1000, READ));
        assert!(permits_mode(&root, 0o004, 1000, 1000, READ));
        assert!(!permits_mode(&root, 0o644, 0, 0, READ | SEARCH));
        assert!(permits_mode(&root, 0o701, 0, 0, READ | SEARCH));
    }
}
