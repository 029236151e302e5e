//! `root` routes (SPEC 6): files served from a folder, with the directory
//! index, autoindex listings, and the permission and symlink checks that
//! turn into `file_not_readable`, `outside_root` and `not_found`.
//!
//! It owns the file system side of a request already allowed by the rules:
//! it never sees the policy, only a `decide` callback for the paths it
//! rewrites (index candidates, listing entries). The refusal bodies are
//! `respond`'s; the successful answers (200, 206, 301, 304, 416, listings)
//! are built here.
//!
//! The lookup (one `lstat` per path component below the root), `open`,
//! `fstat` and, for a body of at most 64 KiB, one `read` are plain blocking
//! calls on the worker thread, as nginx makes them: on a local file system
//! each costs a microsecond or two, and a thread-pool hop per call
//! (`tokio::fs`, tower-http's `ServeDir`) costs more than the call. A larger
//! body is streamed in 128 KiB chunks read on the blocking pool ([`FileBody`]), and
//! a listing reads its folder on the blocking pool, since both can take long.
//!
//! Symlinks are followed: a path with one is resolved whole (`realpath`), and
//! the result must lie under the root's canonical path (compared by
//! components, never as a string). The resolved path is what is opened; a
//! root whose contents an adversary can swap while a request is served is
//! not defended against.

mod access;
mod headers;
mod listing;
mod stream;
#[cfg(test)]
mod tests;

use std::ffi::OsStr;
use std::fs::{File, Metadata};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use http::header::{
    ACCEPT_RANGES, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, LOCATION,
};
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode};

use crate::body::ResponseBody;
use crate::decision::{Reason, Refusal};

use headers::{Span, Validators, content_type, insert, span};

pub use stream::FileBody;

/// What serving a root route produced.
// Made once per request and taken apart at once: boxing the response would
// cost an allocation per request to save a move.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Served {
    /// A response to send as it is: 200 (a file or a listing), 206, 301,
    /// 304 or 416.
    Response(Response<ResponseBody>),
    /// A refusal for `respond` to answer: `method_not_allowed`, `not_found`,
    /// `outside_root`, `file_not_readable`, `directory_listing_disabled`, or
    /// whatever `decide` answered for an index candidate.
    Refused(Refusal),
}

/// Decides a path the gateway rewrote (an index candidate, a listing entry)
/// as if it were a request of its own: `Err` with the refusal when the rules
/// refuse it.
pub type Decide<'a> = dyn Fn(&str) -> Result<(), Refusal> + Sync + 'a;

/// Serves the canonical `path` (SPEC 5: ASCII, escapes upper-case) of a
/// request allowed by the rules from the folder `root` (already canonical):
/// the file is `root` + `path`, the route's prefix is not stripped, as
/// nginx's `root` does.
///
/// - A method other than GET and HEAD: refused `method_not_allowed` (405).
/// - A path whose decoded form holds `/`, `\` or NUL inside a segment, or a
///   `.` or `..` segment (the canonical path never does, with the default
///   `[paths]`): refused `not_found`.
/// - A path that resolves, through a symlink at any level, outside `root`:
///   refused `outside_root`, and so is a missing path under a symlink that
///   leads out.
/// - A missing path, or a file asked for with a trailing `/`: refused
///   `not_found`.
/// - A file the process may not read (the mode-bit rule of the `access`
///   module, or an `open` that fails with `EACCES`), or one that is neither a
///   regular file nor a folder: refused `file_not_readable`.
/// - A file: 200 with Content-Type (from the extension; text types with
///   `charset=utf-8`, unknown ones `application/octet-stream`), a weak ETag
///   and Last-Modified; 304 when `If-None-Match` matches the ETag (weak
///   comparison) or, without `If-None-Match`, when it was not modified after
///   `If-Modified-Since`. A GET with one satisfiable `Range` (and an
///   `If-Range`, if any, equal to Last-Modified): 206 with Content-Range; an
///   unsatisfiable one: 416 with `Content-Range: bytes */LEN`; several
///   ranges, or a malformed `Range`: the whole file. HEAD: the same headers,
///   no body.
/// - A folder without a trailing `/`: 301 to the same path with one, the
///   query kept; the Location is always a path with a single leading `/`.
/// - A folder: each `index` name in turn is first decided as its own path
///   (a refusal there is the answer, whether or not the file exists, so a
///   refusal never tells whether a file exists); the first that exists as a
///   file is served as above. With none: refused `directory_listing_disabled`
///   without `autoindex`; else the listing (200, `no-store`), which leaves out
///   every entry whose own path `decide` refuses and every symlink that leads
///   out of `root`. A folder the process may not search (or list):
///   `file_not_readable`.
#[allow(clippy::too_many_arguments)]
pub async fn serve(
    root: &Path,
    index: &[String],
    autoindex: bool,
    method: &Method,
    path: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    decide: &Decide<'_>,
) -> Served {
    let request = Request {
        root,
        head: match *method {
            Method::GET => false,
            Method::HEAD => true,
            _ => return Served::Refused(Refusal::of(Reason::MethodNotAllowed)),
        },
        headers,
    };
    let answer = match decode(path) {
        Some(decoded) => {
            request
                .serve(index, autoindex, path, &decoded, query, decide)
                .await
        }
        None => Err(Refusal::of(Reason::NotFound)),
    };
    match answer {
        Ok(response) => Served::Response(response),
        Err(refusal) => Served::Refused(refusal),
    }
}

/// A step's result; the refusal is a rule's (for an index candidate) or one
/// of [`serve`]'s own reasons.
type Step<T> = Result<T, Refusal>;

/// One GET or HEAD to a root route.
struct Request<'a> {
    /// The route's root, canonical.
    root: &'a Path,
    /// HEAD: headers only.
    head: bool,
    headers: &'a HeaderMap,
}

impl Request<'_> {
    /// [`serve`] once the method is known and the path decoded.
    async fn serve(
        &self,
        index: &[String],
        autoindex: bool,
        path: &str,
        decoded: &[u8],
        query: Option<&str>,
        decide: &Decide<'_>,
    ) -> Step<Response<ResponseBody>> {
        let relative = Path::new(OsStr::from_bytes(trim_slashes(decoded)));
        let full = self.root.join(relative);
        let Found { real, meta, file } = self.locate(self.root, relative)?;
        if !meta.is_dir() {
            if path.ends_with('/') {
                return Err(Refusal::of(Reason::NotFound));
            }
            return self.file(&full, &real, &meta, file);
        }
        if !path.ends_with('/') {
            return Ok(redirect(path, query));
        }
        if !access::permits(&meta, access::SEARCH) {
            return Err(Refusal::of(Reason::FileNotReadable));
        }
        for name in index {
            let mut candidate = String::with_capacity(path.len() + name.len());
            candidate.push_str(path);
            listing::encode_segment(&mut candidate, name.as_bytes());
            decide(&candidate)?;
            let full = real.join(name);
            match self.locate(&real, Path::new(name)) {
                Ok(found) if found.meta.is_file() => {
                    return self.file(&full, &found.real, &found.meta, found.file);
                }
                // A folder named like an index is not one.
                Ok(_) => continue,
                Err(refusal) if refusal.reason == Reason::NotFound => continue,
                Err(refusal) => return Err(refusal),
            }
        }
        if !autoindex {
            return Err(Refusal::of(Reason::DirectoryListingDisabled));
        }
        if !access::permits(&meta, access::READ | access::SEARCH) {
            return Err(Refusal::of(Reason::FileNotReadable));
        }
        self.listing(real, path, decoded, decide).await
    }

    /// The autoindex page of the real folder `dir`, asked for as `path`.
    async fn listing(
        &self,
        dir: PathBuf,
        path: &str,
        decoded: &[u8],
        decide: &Decide<'_>,
    ) -> Step<Response<ResponseBody>> {
        let root = self.root.to_path_buf();
        let entries = tokio::task::spawn_blocking(move || listing::read_entries(&dir, &root))
            .await
            .map_err(|_| Refusal::of(Reason::NotFound))?
            .map_err(|e| Refusal::of(io_reason(&e)))?;
        let display = String::from_utf8_lossy(decoded);
        let page = listing::render(path, &display, entries, decide);
        let mut response = empty(StatusCode::OK, page.len() as u64);
        let headers = response.headers_mut();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if !self.head {
            *response.body_mut() = ResponseBody::full(page);
        }
        Ok(response)
    }

    /// The resolved path of `relative` under `base` (the root or a real
    /// folder in it), its metadata and, for the last component, the file
    /// already open, if it lies in the root.
    ///
    /// Each component but the last is looked at with `lstat` from `base`
    /// down; the last one is opened without following a symlink (and
    /// without blocking, should it be a FIFO) and looked at with `fstat`, so
    /// a file is opened once and stat'ed once. While none is a symlink the
    /// path is already resolved, at the cost of one call per component below
    /// the root (`realpath` would also walk the root's own components and
    /// stat the result). At the first symlink, the whole path is resolved
    /// and checked by [`Request::resolve`].
    fn locate(&self, base: &Path, relative: &Path) -> Step<Found> {
        let mut real = base.to_path_buf();
        let mut components = relative.components().peekable();
        while let Some(component) = components.next() {
            // `decode` leaves no root, `.` or `..` component; refuse any anyway.
            let std::path::Component::Normal(name) = component else {
                return Err(Refusal::of(Reason::NotFound));
            };
            real.push(name);
            if components.peek().is_none() {
                return match open_leaf(&real) {
                    Ok(file) => {
                        let meta = file.metadata().map_err(|e| Refusal::of(io_reason(&e)))?;
                        let file = meta.is_file().then_some(file);
                        Ok(Found { real, meta, file })
                    }
                    Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
                        self.resolve(&base.join(relative))
                    }
                    Err(e) => Err(Refusal::of(io_reason(&e))),
                };
            }
            match std::fs::symlink_metadata(&real) {
                Ok(m) if m.file_type().is_symlink() => return self.resolve(&base.join(relative)),
                Ok(_) => {}
                Err(e) => return Err(Refusal::of(io_reason(&e))),
            }
        }
        // No component: `base` itself, a real folder.
        let meta = std::fs::metadata(&real).map_err(|e| Refusal::of(io_reason(&e)))?;
        Ok(Found {
            real,
            meta,
            file: None,
        })
    }

    /// The resolved path of `full`, which goes through a symlink, and its
    /// metadata, if it lies in the root.
    fn resolve(&self, full: &Path) -> Step<Found> {
        match std::fs::canonicalize(full) {
            Ok(real) if !real.starts_with(self.root) => Err(Refusal::of(Reason::OutsideRoot)),
            Ok(real) => {
                let meta = std::fs::metadata(&real).map_err(|e| Refusal::of(io_reason(&e)))?;
                Ok(Found {
                    real,
                    meta,
                    file: None,
                })
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // A missing file under a symlink that leads out is outside
                // the root too, so a 404 never tells what exists out there.
                for ancestor in full.ancestors().skip(1) {
                    if !ancestor.starts_with(self.root) {
                        break;
                    }
                    if let Ok(real) = std::fs::canonicalize(ancestor) {
                        if !real.starts_with(self.root) {
                            return Err(Refusal::of(Reason::OutsideRoot));
                        }
                        break;
                    }
                }
                Err(Refusal::of(Reason::NotFound))
            }
            Err(e) => Err(Refusal::of(io_reason(&e))),
        }
    }

    /// Serves the regular file at `real`, named `name` in the request: `open`
    /// when [`Request::locate`] opened it already (`meta` is then its
    /// `fstat`), else opened here.
    fn file(
        &self,
        name: &Path,
        real: &Path,
        meta: &Metadata,
        open: Option<File>,
    ) -> Step<Response<ResponseBody>> {
        // Checked before `open`, which would block on a FIFO.
        if !meta.is_file() {
            return Err(Refusal::of(Reason::FileNotReadable));
        }
        // Opened here, the file is looked at again: it may have changed
        // since `meta` was taken.
        let opened_meta;
        let (mut file, meta) = match open {
            Some(file) => (file, meta),
            None => {
                let file = File::open(real).map_err(|e| Refusal::of(io_reason(&e)))?;
                opened_meta = file.metadata().map_err(|e| Refusal::of(io_reason(&e)))?;
                (file, &opened_meta)
            }
        };
        if !meta.is_file() || !access::permits(meta, access::READ) {
            return Err(Refusal::of(Reason::FileNotReadable));
        }
        let len = meta.len();
        let modified = meta.modified().unwrap_or(UNIX_EPOCH);
        let validators = Validators::of(len, modified);
        if validators.not_modified(self.headers) {
            let mut response = Response::new(ResponseBody::Empty);
            *response.status_mut() = StatusCode::NOT_MODIFIED;
            validators.insert(response.headers_mut());
            return Ok(response);
        }
        let span = if self.head {
            Span::Whole
        } else {
            span(self.headers, len, validators.last_modified_at)
        };
        let (status, start, count) = match span {
            Span::Whole => (StatusCode::OK, 0, len),
            Span::Part(first, last) => (StatusCode::PARTIAL_CONTENT, first, last - first + 1),
            Span::Unsatisfiable => {
                let mut response = empty(StatusCode::RANGE_NOT_SATISFIABLE, 0);
                insert(
                    response.headers_mut(),
                    CONTENT_RANGE,
                    &format!("bytes */{len}"),
                );
                validators.insert(response.headers_mut());
                return Ok(response);
            }
        };
        let mut response = empty(status, count);
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, content_type(name));
        headers.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        validators.insert(headers);
        if status == StatusCode::PARTIAL_CONTENT {
            let range = format!("bytes {start}-{}/{len}", start + count - 1);
            insert(headers, CONTENT_RANGE, &range);
        }
        if self.head || count == 0 {
            return Ok(response);
        }
        if start > 0 {
            file.seek(SeekFrom::Start(start))
                .map_err(|_| Refusal::of(Reason::NotFound))?;
        }
        *response.body_mut() = if count <= READ_AT_ONCE {
            // Read into spare capacity (no zeroing first); a file that
            // shrank since `fstat` is not sent short.
            let mut bytes = Vec::with_capacity(count as usize);
            match (&file).take(count).read_to_end(&mut bytes) {
                Ok(n) if n as u64 == count => ResponseBody::full(bytes),
                _ => return Err(Refusal::of(Reason::NotFound)),
            }
        } else {
            ResponseBody::File(FileBody::new(file, count))
        };
        Ok(response)
    }
}

/// A body this small is read at once, on the worker: from the page cache
/// that costs less than a hop to the blocking pool.
const READ_AT_ONCE: u64 = 64 * 1024;

/// What [`Request::locate`] found.
struct Found {
    /// The resolved path.
    real: PathBuf,
    /// Its metadata (of the open file, when there is one).
    meta: Metadata,
    /// The regular file, open, when `locate` opened it.
    file: Option<File>,
}

/// Opens the last component of a path for reading: `O_NOFOLLOW` (a symlink
/// fails with `ELOOP`), `O_NONBLOCK` (a FIFO does not wait for a writer; reads
/// of a regular file ignore it) and `O_NOCTTY`.
fn open_leaf(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
}

/// An empty response with this status and Content-Length (the length of the
/// body a GET gets; HEAD keeps the header and sends nothing).
fn empty(status: StatusCode, len: u64) -> Response<ResponseBody> {
    let mut response = Response::new(ResponseBody::Empty);
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_LENGTH, HeaderValue::from(len));
    response
}

/// The refusal reason of a failed file system call.
fn io_reason(e: &io::Error) -> Reason {
    match e.kind() {
        io::ErrorKind::PermissionDenied => Reason::FileNotReadable,
        // There, but not a file one reads: a Unix socket, a device without
        // its driver.
        _ if matches!(e.raw_os_error(), Some(libc::ENXIO | libc::ENODEV)) => {
            Reason::FileNotReadable
        }
        // Missing, a file used as a folder, a symlink loop, a name too long.
        _ => Reason::NotFound,
    }
}

/// The bytes a canonical path names, or `None` when it does not start with
/// `/`, holds an invalid escape, an escaped `/`, `\` or NUL, or a `.` or
/// `..` segment once decoded.
fn decode(path: &str) -> Option<Vec<u8>> {
    let bytes = path.as_bytes();
    if bytes.first() != Some(&b'/') {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let decoded = u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?;
            if matches!(decoded, b'/' | b'\\' | 0) {
                return None;
            }
            out.push(decoded);
            i += 3;
        } else {
            if b == 0 || b == b'\\' {
                return None;
            }
            out.push(b);
            i += 1;
        }
    }
    let dot_segment = out
        .split(|&b| b == b'/')
        .any(|segment| segment == b"." || segment == b"..");
    (!dot_segment).then_some(out)
}

/// `path` without its leading slashes, so that joining it to the root never
/// replaces the root (`Path::join` of an absolute path does).
fn trim_slashes(path: &[u8]) -> &[u8] {
    let start = path.iter().position(|&b| b != b'/').unwrap_or(path.len());
    &path[start..]
}

/// The 301 that adds a folder's trailing slash, the query kept. The
/// Location starts with exactly one `/`, so it can never read as
/// `//host/…`, another site.
fn redirect(path: &str, query: Option<&str>) -> Response<ResponseBody> {
    let mut location = String::with_capacity(path.len() + 2 + query.map_or(0, str::len));
    location.push('/');
    location.push_str(path.trim_start_matches(['/', '\\']));
    location.push('/');
    let without_query = location.len();
    if let Some(query) = query {
        location.push('?');
        location.push_str(query);
    }
    let value = HeaderValue::from_str(&location)
        .or_else(|_| HeaderValue::from_str(&location[..without_query]))
        .unwrap_or_else(|_| HeaderValue::from_static("/"));
    let mut response = Response::new(ResponseBody::Empty);
    *response.status_mut() = StatusCode::MOVED_PERMANENTLY;
    let headers = response.headers_mut();
    headers.insert(LOCATION, value);
    headers.insert(CONTENT_LENGTH, HeaderValue::from_static("0"));
    response
}
