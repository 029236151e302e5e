//! The autoindex page: a folder's entries as a small self-contained HTML
//! page, every name HTML-escaped in text and percent-encoded in links.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::respond::html_escape;

/// One entry of a folder, as read from disk.
#[derive(Debug)]
pub(super) struct Entry {
    name: OsString,
    is_dir: bool,
    size: u64,
    modified: Option<SystemTime>,
}

/// The entries of `dir` that can be shown: regular files and folders, a
/// symlink only when it resolves inside `root` (a dangling link, or one that
/// leads out, is left out). Blocking: run it off the worker thread.
pub(super) fn read_entries(dir: &Path, root: &Path) -> std::io::Result<Vec<Entry>> {
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let Ok(entry) = entry else { continue };
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        let path = entry.path();
        if kind.is_symlink() && !resolves_inside(&path, root) {
            continue;
        }
        // Follows a symlink: an entry shows what a request for it would get.
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        if !meta.is_file() && !meta.is_dir() {
            continue;
        }
        entries.push(Entry {
            name: entry.file_name(),
            is_dir: meta.is_dir(),
            size: meta.len(),
            modified: meta.modified().ok(),
        });
    }
    Ok(entries)
}

fn resolves_inside(path: &Path, root: &Path) -> bool {
    std::fs::canonicalize(path).is_ok_and(|real: PathBuf| real.starts_with(root))
}

/// The listing page of the folder at the canonical `path` (ending in `/`):
/// folders first, then files, each group sorted by name; an entry whose own
/// path `decide` refuses is left out.
pub(super) fn render(
    path: &str,
    display_path: &str,
    mut entries: Vec<Entry>,
    decide: &(dyn Fn(&str) -> Result<(), crate::decision::Refusal> + Sync),
) -> String {
    entries.sort_by(|a, b| {
        b.is_dir
            .cmp(&a.is_dir)
            .then_with(|| a.name.as_bytes().cmp(b.name.as_bytes()))
    });
    let mut out = String::with_capacity(1024 + entries.len() * 160);
    out.push_str(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>Index of ",
    );
    html_escape(&mut out, display_path);
    out.push_str(
        "</title>\n<style>\
         body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}\
         table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.2rem 1rem .2rem 0}\
         td.n{text-align:right;font-family:ui-monospace,monospace}td.d{font-family:ui-monospace,monospace}\
         </style>\n</head>\n<body>\n<h1>Index of ",
    );
    html_escape(&mut out, display_path);
    out.push_str(
        "</h1>\n<table>\n<thead><tr><th>Name</th><th>Size</th><th>Modified</th></tr></thead>\n<tbody>\n",
    );
    if path != "/" {
        out.push_str("<tr><td><a href=\"../\">../</a></td><td></td><td></td></tr>\n");
    }
    let mut link = String::with_capacity(path.len() + 64);
    for entry in &entries {
        let name = entry.name.as_bytes();
        link.clear();
        link.push_str(path);
        encode_segment(&mut link, name);
        if entry.is_dir {
            link.push('/');
        }
        if decide(&link).is_err() {
            continue;
        }
        let shown = String::from_utf8_lossy(name);
        out.push_str("<tr><td><a href=\"");
        // The link is relative to the page, so it never names a host.
        out.push_str("./");
        html_escape(&mut out, &link[path.len()..]);
        out.push_str("\">");
        html_escape(&mut out, &shown);
        if entry.is_dir {
            out.push('/');
        }
        out.push_str("</a></td><td class=\"n\">");
        if entry.is_dir {
            out.push('-');
        } else {
            let _ = write!(out, "{}", entry.size);
        }
        out.push_str("</td><td class=\"d\">");
        if let Some(modified) = entry.modified {
            write_date(&mut out, modified);
        }
        out.push_str("</td></tr>\n");
    }
    out.push_str("</tbody>\n</table>\n</body>\n</html>\n");
    out
}

/// Appends `name` percent-encoded as one path segment: every byte but the
/// unreserved ones (`A–Z a–z 0–9 - . _ ~`) as an upper-case escape. That is
/// exactly the canonical form (SPEC 5) of the segment, so the path a link
/// leads to is the path `decide` was asked about.
pub(super) fn encode_segment(out: &mut String, name: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in name {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xF)]));
        }
    }
}

/// Appends `time` as `YYYY-MM-DD HH:MM` in UTC.
fn write_date(out: &mut String, time: SystemTime) {
    let Ok(since) = time.duration_since(UNIX_EPOCH) else {
        return;
    };
    let secs = since.as_secs();
    let days = i64::try_from(secs / 86_400).unwrap_or(i64::MAX / 2);
    let (y, m, d) = civil_from_days(days);
    let rest = secs % 86_400;
    let _ = write!(
        out,
        "{y:04}-{m:02}-{d:02} {:02}:{:02}",
        rest / 3600,
        rest % 3600 / 60
    );
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard
/// Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = (if mp < 10 { mp + 3 } else { mp - 9 }) as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_utc_calendar_dates() {
        let table = [
            (0, "1970-01-01 00:00"),
            (951_782_400, "2000-02-29 00:00"),
            (1_700_000_000, "2023-11-14 22:13"),
        ];
        for (secs, shown) in table {
            let mut out = String::new();
            write_date(&mut out, UNIX_EPOCH + std::time::Duration::from_secs(secs));
            assert_eq!(out, shown);
        }
    }

    #[test]
    fn segments_are_encoded_in_canonical_form() {
        let mut out = String::new();
        encode_segment(&mut out, "a b%<\"'&é~.txt".as_bytes());
        assert_eq!(out, "a%20b%25%3C%22%27%26%C3%A9~.txt");
        let path = format!("/{out}");
        let canonical = crate::path::canonicalize(&path, &crate::path::PathOptions::default());
        assert_eq!(canonical.as_deref(), Ok(path.as_str()));
    }
}
