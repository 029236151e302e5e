//! The headers of a file response: Content-Type from the extension, the
//! validators (ETag, Last-Modified), conditional GET and `Range`.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::header::{ETAG, IF_MODIFIED_SINCE, IF_NONE_MATCH, IF_RANGE, LAST_MODIFIED, RANGE};
use http::{HeaderMap, HeaderName, HeaderValue};
use http_range_header::RangeUnsatisfiableError;

/// The Content-Types of the most served extensions, as [`guess`] gives
/// them, looked up without `mime_guess`'s case-insensitive binary search or
/// formatting the charset.
const COMMON: [(&str, &str); 16] = [
    ("html", "text/html; charset=utf-8"),
    ("css", "text/css; charset=utf-8"),
    ("js", "text/javascript; charset=utf-8"),
    ("json", "application/json; charset=utf-8"),
    ("txt", "text/plain; charset=utf-8"),
    ("svg", "image/svg+xml"),
    ("png", "image/png"),
    ("jpg", "image/jpeg"),
    ("jpeg", "image/jpeg"),
    ("gif", "image/gif"),
    ("webp", "image/webp"),
    ("ico", "image/x-icon"),
    ("woff2", "font/woff2"),
    ("pdf", "application/pdf"),
    ("wasm", "application/wasm"),
    ("bin", "application/octet-stream"),
];

/// The Content-Type for a file of this name, from its extension.
pub(super) fn content_type(name: &Path) -> HeaderValue {
    if let Some(ext) = name.extension().and_then(|e| e.to_str())
        && let Some((_, mime)) = COMMON.iter().find(|(common, _)| *common == ext)
    {
        return HeaderValue::from_static(mime);
    }
    guess(name)
}

/// The Content-Type `mime_guess` gives for this name, with a charset for
/// text.
fn guess(name: &Path) -> HeaderValue {
    match mime_guess::from_path(name).first_raw() {
        Some(mime)
            if mime.starts_with("text/")
                || mime == "application/javascript"
                || mime == "application/json" =>
        {
            value(format_args!("{mime}; charset=utf-8"))
                .unwrap_or_else(|| HeaderValue::from_static("application/octet-stream"))
        }
        Some(mime) => HeaderValue::from_static(mime),
        None => HeaderValue::from_static("application/octet-stream"),
    }
}

/// Inserts a header whose value is made here of visible ASCII.
pub(super) fn insert(headers: &mut HeaderMap, name: HeaderName, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        headers.insert(name, value);
    }
}

/// A header value written in place: one allocation, no copy. `None` when
/// what is written is not a valid value.
pub(super) fn value(args: std::fmt::Arguments<'_>) -> Option<HeaderValue> {
    use std::fmt::Write as _;
    let mut out = bytes::BytesMut::with_capacity(48);
    out.write_fmt(args).ok()?;
    HeaderValue::from_maybe_shared(out.freeze()).ok()
}

/// A file's ETag and Last-Modified.
pub(super) struct Validators {
    /// `W/"LEN-SECS.NANOS"` in hex: weak, since it is not computed from the content.
    etag: HeaderValue,
    /// The modification time, whole seconds; `None` when it cannot be
    /// written as an HTTP date (before 1970 or after 9999).
    pub(super) last_modified_at: Option<SystemTime>,
}

impl Validators {
    /// The validators of a file of `len` bytes modified at `modified`.
    pub(super) fn of(len: u64, modified: SystemTime) -> Validators {
        let since = modified.duration_since(UNIX_EPOCH).unwrap_or_default();
        let etag = value(format_args!(
            "W/\"{len:x}-{:x}.{:x}\"",
            since.as_secs(),
            since.subsec_nanos()
        ))
        // Hex digits, quotes and `W/` always make a value.
        .unwrap_or_else(|| HeaderValue::from_static("W/\"0\""));
        // 253402300800: 10000-01-01, past which httpdate does not write dates.
        let last_modified_at = (modified >= UNIX_EPOCH && since.as_secs() < 253_402_300_800)
            .then(|| UNIX_EPOCH + Duration::from_secs(since.as_secs()));
        Validators {
            etag,
            last_modified_at,
        }
    }

    /// The ETag as text.
    fn etag_str(&self) -> &str {
        self.etag.to_str().unwrap_or_default()
    }

    /// Adds `ETag` and, when there is one, `Last-Modified`.
    pub(super) fn insert(&self, headers: &mut HeaderMap) {
        headers.insert(ETAG, self.etag.clone());
        if let Some(date) = self
            .last_modified_at
            .and_then(|at| value(format_args!("{}", httpdate::HttpDate::from(at))))
        {
            headers.insert(LAST_MODIFIED, date);
        }
    }

    /// Whether a conditional GET or HEAD gets 304 (RFC 9110 13.2.2): by
    /// `If-None-Match` when the request has one, else by `If-Modified-Since`.
    pub(super) fn not_modified(&self, headers: &HeaderMap) -> bool {
        let mut none_match = headers.get_all(IF_NONE_MATCH).iter().peekable();
        if none_match.peek().is_some() {
            return none_match
                .filter_map(|v| v.to_str().ok())
                .any(|list| etag_list_matches(list, self.etag_str()));
        }
        let since = headers
            .get(IF_MODIFIED_SINCE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| httpdate::parse_http_date(v).ok());
        match (since, self.last_modified_at) {
            (Some(since), Some(at)) => at <= since,
            _ => false,
        }
    }
}

/// Whether an `If-None-Match` list holds `etag`, by weak comparison.
pub(super) fn etag_list_matches(list: &str, etag: &str) -> bool {
    let opaque = |tag: &str| {
        let tag = tag.trim();
        tag.strip_prefix("W/").unwrap_or(tag).to_owned()
    };
    let ours = opaque(etag);
    list.trim() == "*" || list.split(',').any(|tag| opaque(tag) == ours)
}

/// The part of a file a GET asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Span {
    Whole,
    /// First and last byte, inclusive.
    Part(u64, u64),
    Unsatisfiable,
}

/// The span a `Range` header asks for in a file of `len` bytes: one
/// satisfiable range is a part; no header, a malformed one, several ranges,
/// or an `If-Range` that is not our Last-Modified (an entity tag never
/// matches: ours is weak) mean the whole file.
pub(super) fn span(headers: &HeaderMap, len: u64, last_modified_at: Option<SystemTime>) -> Span {
    let Some(range) = headers.get(RANGE).and_then(|v| v.to_str().ok()) else {
        return Span::Whole;
    };
    if let Some(if_range) = headers.get(IF_RANGE) {
        let date = if_range
            .to_str()
            .ok()
            .and_then(|v| httpdate::parse_http_date(v).ok());
        if date.is_none() || date != last_modified_at {
            return Span::Whole;
        }
    }
    let Ok(parsed) = http_range_header::parse_range_header(range) else {
        return Span::Whole;
    };
    match parsed.validate(len) {
        Ok(ranges) => match ranges.as_slice() {
            [one] => Span::Part(*one.start(), *one.end()),
            _ => Span::Whole,
        },
        Err(RangeUnsatisfiableError::Unsatisfiable) => Span::Unsatisfiable,
        Err(_) => Span::Whole,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_common_types_are_what_mime_guess_gives() {
        for (ext, mime) in COMMON {
            let name = format!("x.{ext}");
            assert_eq!(guess(Path::new(&name)), mime, "{ext}");
            assert_eq!(content_type(Path::new(&name)), mime, "{ext}");
        }
    }

    #[test]
    fn etag_lists_match_by_weak_comparison() {
        let ours = "W/\"a-1.0\"";
        let table = [
            ("W/\"a-1.0\"", true),
            ("\"a-1.0\"", true),
            (" \"x\" ,W/\"a-1.0\" ", true),
            ("*", true),
            ("\"a-1.1\"", false),
            ("", false),
        ];
        for (list, matches) in table {
            assert_eq!(etag_list_matches(list, ours), matches, "{list}");
        }
    }
}
