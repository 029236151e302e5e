use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::PathBuf;

use bytes::Bytes;
use http::header::{
    ETAG, HeaderName, IF_MODIFIED_SINCE, IF_NONE_MATCH, IF_RANGE, LAST_MODIFIED, RANGE,
};
use http_body_util::BodyExt;
use tempfile::TempDir;

use super::*;
use crate::decision::RuleId;

/// A served folder and, beside it, one that is outside the root.
struct Site {
    _dir: TempDir,
    root: PathBuf,
    outside: PathBuf,
}

impl Site {
    fn new() -> Site {
        let dir = tempfile::tempdir().expect("temp dir");
        let base = std::fs::canonicalize(dir.path()).expect("canonical temp dir");
        let root = base.join("root");
        let outside = base.join("outside");
        std::fs::create_dir(&root).expect("root");
        std::fs::create_dir(&outside).expect("outside");
        std::fs::write(outside.join("secret.txt"), "secret").expect("secret");
        Site {
            _dir: dir,
            root,
            outside,
        }
    }

    fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.root.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("parent folder");
        }
        std::fs::write(&path, contents).expect("write file");
        path
    }

    fn mkdir(&self, name: &str) {
        std::fs::create_dir_all(self.root.join(name)).expect("folder");
    }

    async fn get(&self, path: &str) -> Served {
        self.ask(Ask::get(path)).await
    }

    async fn ask(&self, ask: Ask<'_>) -> Served {
        let index: Vec<String> = ask.index.iter().map(|s| (*s).to_owned()).collect();
        serve(
            &self.root,
            &index,
            ask.autoindex,
            &ask.method,
            ask.path,
            ask.query,
            &ask.headers,
            ask.decide,
        )
        .await
    }
}

/// One request to serve, with the route's `index` and `autoindex`.
struct Ask<'a> {
    index: &'a [&'a str],
    autoindex: bool,
    method: Method,
    path: &'a str,
    query: Option<&'a str>,
    headers: HeaderMap,
    decide: &'a Decide<'a>,
}

fn allow_all(_: &str) -> Result<(), Refusal> {
    Ok(())
}

impl<'a> Ask<'a> {
    fn get(path: &'a str) -> Ask<'a> {
        Ask {
            index: &["index.html"],
            autoindex: false,
            method: Method::GET,
            path,
            query: None,
            headers: HeaderMap::new(),
            decide: &allow_all,
        }
    }

    fn header(mut self, name: HeaderName, value: &str) -> Ask<'a> {
        let value = HeaderValue::from_str(value).expect("header value");
        self.headers.append(name, value);
        self
    }
}

fn response(served: Served) -> Response<ResponseBody> {
    match served {
        Served::Response(r) => r,
        Served::Refused(refusal) => panic!("refused: {refusal:?}"),
    }
}

fn refusal(served: Served) -> Refusal {
    match served {
        Served::Refused(refusal) => refusal,
        Served::Response(r) => panic!("answered {}: {:?}", r.status(), r.headers()),
    }
}

fn reason(served: Served) -> Reason {
    refusal(served).reason
}

fn header(response: &Response<ResponseBody>, name: HeaderName) -> &str {
    response
        .headers()
        .get(&name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .expect("ascii header")
}

/// The body's frames.
async fn frames(response: Response<ResponseBody>) -> Vec<Bytes> {
    let mut body = response.into_body();
    let mut frames = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.expect("body frame");
        if let Ok(data) = frame.into_data() {
            frames.push(data);
        }
    }
    frames
}

async fn body(response: Response<ResponseBody>) -> String {
    let bytes: Vec<u8> = frames(response).await.concat();
    String::from_utf8(bytes).expect("utf-8 body")
}

#[tokio::test]
async fn a_file_is_served_with_its_type_length_and_validators() {
    let site = Site::new();
    site.write("hello.txt", "hello, world\n");
    let r = response(site.get("/hello.txt").await);
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(header(&r, CONTENT_TYPE), "text/plain; charset=utf-8");
    assert_eq!(header(&r, CONTENT_LENGTH), "13");
    assert_eq!(header(&r, ACCEPT_RANGES), "bytes");
    assert!(header(&r, ETAG).starts_with("W/\""), "{}", header(&r, ETAG));
    assert!(header(&r, LAST_MODIFIED).ends_with(" GMT"));
    assert!(r.headers().get(CACHE_CONTROL).is_none());
    assert_eq!(body(r).await, "hello, world\n");
}

#[tokio::test]
async fn content_type_follows_the_extension() {
    let site = Site::new();
    let table = [
        ("page.html", "text/html; charset=utf-8"),
        ("style.css", "text/css; charset=utf-8"),
        ("data.json", "application/json; charset=utf-8"),
        ("logo.png", "image/png"),
        ("photo.JPG", "image/jpeg"),
        ("archive.tar.gz", "application/gzip"),
        ("blob.unknownext", "application/octet-stream"),
        ("README", "application/octet-stream"),
    ];
    for (name, content_type) in table {
        site.write(name, "x");
        let r = response(site.get(&format!("/{name}")).await);
        assert_eq!(header(&r, CONTENT_TYPE), content_type, "{name}");
    }
    site.write("app.js", "x");
    let r = response(site.get("/app.js").await);
    assert!(
        header(&r, CONTENT_TYPE).ends_with("javascript; charset=utf-8"),
        "{}",
        header(&r, CONTENT_TYPE)
    );
}

#[tokio::test]
async fn head_has_the_headers_of_get_and_no_body() {
    let site = Site::new();
    site.write("hello.txt", "hello");
    let mut ask = Ask::get("/hello.txt").header(RANGE, "bytes=0-1");
    ask.method = Method::HEAD;
    let r = response(site.ask(ask).await);
    // Range is defined for GET only (RFC 9110 14.2).
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(header(&r, CONTENT_LENGTH), "5");
    assert_eq!(header(&r, CONTENT_TYPE), "text/plain; charset=utf-8");
    assert!(r.headers().contains_key(ETAG));
    assert!(frames(r).await.is_empty());
}

#[tokio::test]
async fn other_methods_are_refused_405() {
    let site = Site::new();
    site.write("hello.txt", "hello");
    for method in [Method::POST, Method::PUT, Method::DELETE, Method::OPTIONS] {
        let mut ask = Ask::get("/hello.txt");
        ask.method = method;
        assert_eq!(reason(site.ask(ask).await), Reason::MethodNotAllowed);
    }
}

#[tokio::test]
async fn if_none_match_with_the_etag_is_304() {
    let site = Site::new();
    site.write("a.txt", "abc");
    let etag = header(&response(site.get("/a.txt").await), ETAG).to_owned();
    let strong = etag.trim_start_matches("W/").to_owned();
    for value in [
        etag.as_str(),
        strong.as_str(),
        &format!("\"other\", {etag}"),
        "*",
    ] {
        let r = response(
            site.ask(Ask::get("/a.txt").header(IF_NONE_MATCH, value))
                .await,
        );
        assert_eq!(r.status(), StatusCode::NOT_MODIFIED, "{value}");
        assert_eq!(header(&r, ETAG), etag);
        assert!(r.headers().contains_key(LAST_MODIFIED));
        assert!(frames(r).await.is_empty());
    }
    // A stale tag wins over a date that alone would give 304.
    let r = response(
        site.ask(
            Ask::get("/a.txt")
                .header(IF_NONE_MATCH, "W/\"stale\"")
                .header(IF_MODIFIED_SINCE, "Fri, 31 Dec 9998 23:59:59 GMT"),
        )
        .await,
    );
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(body(r).await, "abc");
}

#[tokio::test]
async fn if_modified_since_not_older_than_the_file_is_304() {
    let site = Site::new();
    site.write("a.txt", "abc");
    let last_modified = header(&response(site.get("/a.txt").await), LAST_MODIFIED).to_owned();
    let r = response(
        site.ask(Ask::get("/a.txt").header(IF_MODIFIED_SINCE, &last_modified))
            .await,
    );
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
    let r = response(
        site.ask(Ask::get("/a.txt").header(IF_MODIFIED_SINCE, "Thu, 01 Jan 1970 00:00:01 GMT"))
            .await,
    );
    assert_eq!(r.status(), StatusCode::OK);
    let r = response(
        site.ask(Ask::get("/a.txt").header(IF_MODIFIED_SINCE, "not a date"))
            .await,
    );
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn one_range_is_206_and_an_unsatisfiable_one_416() {
    let site = Site::new();
    site.write("digits.txt", "0123456789");
    // (Range, status, Content-Range, body)
    let table = [
        ("bytes=2-5", 206, Some("bytes 2-5/10"), "2345"),
        ("bytes=7-", 206, Some("bytes 7-9/10"), "789"),
        ("bytes=-3", 206, Some("bytes 7-9/10"), "789"),
        ("bytes=8-100", 206, Some("bytes 8-9/10"), "89"),
        ("bytes=10-", 416, Some("bytes */10"), ""),
        ("bytes=0-1, 4-5", 200, None, "0123456789"),
        ("bytes=5-2", 200, None, "0123456789"),
        ("lines=1-2", 200, None, "0123456789"),
    ];
    for (range, status, content_range, expected) in table {
        let r = response(site.ask(Ask::get("/digits.txt").header(RANGE, range)).await);
        assert_eq!(r.status().as_u16(), status, "{range}");
        assert_eq!(
            r.headers()
                .get(CONTENT_RANGE)
                .map(|v| v.to_str().expect("ascii")),
            content_range,
            "{range}"
        );
        assert_eq!(header(&r, CONTENT_LENGTH), expected.len().to_string());
        assert_eq!(body(r).await, expected, "{range}");
    }
}

#[tokio::test]
async fn if_range_other_than_last_modified_gets_the_whole_file() {
    let site = Site::new();
    site.write("digits.txt", "0123456789");
    let first = response(site.get("/digits.txt").await);
    let last_modified = header(&first, LAST_MODIFIED).to_owned();
    let etag = header(&first, ETAG).to_owned();
    let table = [
        (last_modified.as_str(), 206),
        ("Thu, 01 Jan 1970 00:00:01 GMT", 200),
        (etag.as_str(), 200),
    ];
    for (if_range, status) in table {
        let ask = Ask::get("/digits.txt")
            .header(RANGE, "bytes=0-0")
            .header(IF_RANGE, if_range);
        let r = response(site.ask(ask).await);
        assert_eq!(r.status().as_u16(), status, "{if_range}");
    }
}

#[tokio::test]
async fn a_large_file_is_streamed_in_several_frames() {
    let site = Site::new();
    let content: Vec<u8> = (0..1_048_576u32).map(|i| (i % 251) as u8).collect();
    site.write("big.bin", &content);
    let r = response(site.get("/big.bin").await);
    assert!(matches!(r.body(), ResponseBody::File(_)));
    assert_eq!(header(&r, CONTENT_LENGTH), "1048576");
    let sent = frames(r).await;
    assert!(sent.len() > 1, "{} frames", sent.len());
    assert!(sent.iter().all(|f| f.len() <= stream::CHUNK));
    assert_eq!(sent.concat(), content);

    // A range of it, larger than one chunk, streamed from its offset.
    let ask = Ask::get("/big.bin").header(RANGE, "bytes=100000-299999");
    let r = response(site.ask(ask).await);
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(frames(r).await.concat(), &content[100_000..300_000]);
}

#[tokio::test]
async fn a_file_that_shrinks_while_sent_ends_the_body_with_an_error() {
    let site = Site::new();
    let content = vec![7u8; 4 * stream::CHUNK];
    let path = site.write("shrinking.bin", &content);
    let r = response(site.get("/shrinking.bin").await);
    assert_eq!(header(&r, CONTENT_LENGTH), content.len().to_string());
    let mut body = r.into_body();
    let first = body.frame().await.expect("a first frame").expect("read");
    let mut sent = first.into_data().expect("data").len();
    // Cut to just past the first chunk: the second read comes up short, the
    // third finds nothing.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .and_then(|f| f.set_len((stream::CHUNK + 10) as u64))
        .expect("truncate");
    let mut error = None;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => sent += frame.into_data().map_or(0, |d| d.len()),
            Err(e) => {
                error = Some(e);
                break;
            }
        }
    }
    let error = error.expect("the body ends with an error, not short");
    let io = error
        .downcast_ref::<std::io::Error>()
        .expect("an I/O error");
    assert_eq!(io.kind(), std::io::ErrorKind::UnexpectedEof);
    assert_eq!(sent, stream::CHUNK + 10);
}

#[tokio::test]
async fn a_missing_file_is_404() {
    let site = Site::new();
    site.write("a.txt", "a");
    for path in ["/missing.txt", "/nowhere/a.txt", "/a.txt/", "/a.txt/x"] {
        assert_eq!(reason(site.get(path).await), Reason::NotFound, "{path}");
    }
}

#[tokio::test]
async fn a_folder_without_its_slash_is_redirected_with_the_query() {
    let site = Site::new();
    site.mkdir("docs/api");
    let mut ask = Ask::get("/docs/api");
    ask.query = Some("v=2&x=%2F");
    let r = response(site.ask(ask).await);
    assert_eq!(r.status(), StatusCode::MOVED_PERMANENTLY);
    assert_eq!(header(&r, LOCATION), "/docs/api/?v=2&x=%2F");
    let r = response(site.get("/docs").await);
    assert_eq!(header(&r, LOCATION), "/docs/");
}

#[tokio::test]
async fn a_redirect_never_leads_to_another_host() {
    let site = Site::new();
    site.mkdir("evil.example");
    // `//evil.example` reaches here only with merge_slashes = false.
    for path in ["//evil.example", "///evil.example"] {
        let r = response(site.get(path).await);
        assert_eq!(r.status(), StatusCode::MOVED_PERMANENTLY);
        let location = header(&r, LOCATION);
        assert_eq!(location, "/evil.example/");
    }
}

#[tokio::test]
async fn the_first_existing_index_is_served_in_the_listed_order() {
    let site = Site::new();
    site.write("both/index.htm", "htm");
    site.write("both/index.html", "html");
    site.write("second/index.html", "html");
    site.mkdir("folder-named-index/index.htm");
    site.write("folder-named-index/index.html", "html");
    let index = ["index.htm", "index.html"];
    for (path, expected) in [
        ("/both/", "htm"),
        ("/second/", "html"),
        ("/folder-named-index/", "html"),
    ] {
        let mut ask = Ask::get(path);
        ask.index = &index;
        let r = response(site.ask(ask).await);
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(body(r).await, expected, "{path}");
    }
    site.write("index.html", "home");
    let r = response(site.get("/").await);
    assert_eq!(header(&r, CONTENT_TYPE), "text/html; charset=utf-8");
    assert_eq!(body(r).await, "home");
}

#[tokio::test]
async fn an_index_candidate_is_decided_like_a_request() {
    let site = Site::new();
    site.write("docs/index.html", "docs");
    let denied = Refusal {
        reason: Reason::PathDenied,
        rule: Some(RuleId(3)),
        status: StatusCode::FORBIDDEN,
    };
    let asked = std::sync::Mutex::new(Vec::new());
    let decide = |path: &str| {
        asked.lock().expect("lock").push(path.to_owned());
        if path.ends_with("index.html") {
            Err(denied.clone())
        } else {
            Ok(())
        }
    };
    let mut ask = Ask::get("/docs/");
    ask.decide = &decide;
    assert_eq!(refusal(site.ask(ask).await), denied);
    assert_eq!(*asked.lock().expect("lock"), ["/docs/index.html"]);
}

#[tokio::test]
async fn a_folder_without_index_is_refused_unless_autoindex() {
    let site = Site::new();
    site.write("pub/a.txt", "a");
    assert_eq!(
        reason(site.get("/pub/").await),
        Reason::DirectoryListingDisabled
    );
    let mut ask = Ask::get("/pub/");
    ask.index = &[];
    ask.autoindex = true;
    let r = response(site.ask(ask).await);
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(header(&r, CACHE_CONTROL), "no-store");
    assert_eq!(header(&r, CONTENT_TYPE), "text/html; charset=utf-8");
    assert!(body(r).await.contains(">a.txt</a>"));
}

/// The `href` values of a listing page.
fn links(page: &str) -> Vec<&str> {
    page.split("href=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .collect()
}

#[tokio::test]
async fn a_listing_escapes_hostile_names_and_hides_refused_entries() {
    let site = Site::new();
    let names = [
        "<b>bold<i>.txt",
        "a&b.txt",
        "it's \"quoted\" and spaced.txt",
        "100%.txt",
        "%2e%2e",
        "caf\u{e9}.txt",
        ".env",
    ];
    for name in names {
        site.write(&format!("list/{name}"), name);
    }
    site.mkdir("list/zz-sub");
    site.mkdir("list/.git");
    symlink(&site.outside, site.root.join("list/leads-out")).expect("symlink");
    symlink(
        site.root.join("list/a&b.txt"),
        site.root.join("list/inner-link.txt"),
    )
    .expect("symlink");
    let dotfiles = |path: &str| {
        if path.contains("/.") {
            Err(Refusal::of(Reason::PathDenied))
        } else {
            Ok(())
        }
    };
    let mut ask = Ask::get("/list/");
    ask.autoindex = true;
    ask.decide = &dotfiles;
    let page = body(response(site.ask(ask).await)).await;

    assert!(!page.contains("<b>"), "{page}");
    assert!(page.contains(">&lt;b&gt;bold&lt;i&gt;.txt</a>"), "{page}");
    assert!(page.contains("href=\"./%3Cb%3Ebold%3Ci%3E.txt\""), "{page}");
    assert!(page.contains(">a&amp;b.txt</a>"), "{page}");
    assert!(page.contains(">it&#39;s &quot;quoted&quot; and spaced.txt</a>"));
    assert!(page.contains("href=\"./it%27s%20%22quoted%22%20and%20spaced.txt\""));
    assert!(page.contains("href=\"./100%25.txt\""), "{page}");
    assert!(page.contains(">caf\u{e9}.txt</a>"), "{page}");
    assert!(page.contains("href=\"./zz-sub/\">zz-sub/</a>"), "{page}");
    assert!(page.contains("href=\"./inner-link.txt\""), "{page}");
    assert!(page.contains("href=\"../\""), "{page}");
    for hidden in [".env", ".git", "leads-out"] {
        assert!(!page.contains(hidden), "{hidden} listed: {page}");
    }
    // Folders first.
    assert!(page.find("zz-sub").expect("sub") < page.find("a&amp;b").expect("file"));
    // Sizes and dates.
    assert!(page.contains("<td class=\"n\">7</td>"), "{page}");
    assert!(page.contains("<td class=\"d\">20"), "{page}");

    // Each link is a canonical path that leads to the entry it names.
    let options = crate::path::PathOptions::default();
    for link in links(&page) {
        let Some(relative) = link.strip_prefix("./") else {
            assert_eq!(link, "../");
            continue;
        };
        let path = format!("/list/{relative}");
        if relative == "%252e%252e" {
            // Unreachable by design: `%252e` is refused by canonicalization.
            assert!(crate::path::canonicalize(&path, &options).is_err());
            continue;
        }
        assert_eq!(
            crate::path::canonicalize(&path, &options).as_deref(),
            Ok(path.as_str())
        );
        if !relative.ends_with('/') {
            assert_eq!(response(site.get(&path).await).status(), StatusCode::OK);
        }
    }
}

#[tokio::test]
async fn symlinks_that_lead_out_of_the_root_are_refused() {
    let site = Site::new();
    symlink(
        site.outside.join("secret.txt"),
        site.root.join("secret.txt"),
    )
    .expect("symlink");
    symlink(&site.outside, site.root.join("out")).expect("symlink");
    site.mkdir("deep");
    symlink("../../outside", site.root.join("deep/relative")).expect("symlink");
    for path in [
        "/secret.txt",
        "/out",
        "/out/",
        "/out/secret.txt",
        "/out/missing.txt",
        "/deep/relative/secret.txt",
    ] {
        assert_eq!(reason(site.get(path).await), Reason::OutsideRoot, "{path}");
    }
}

#[tokio::test]
async fn a_symlink_inside_the_root_is_served() {
    let site = Site::new();
    site.write("real/page.txt", "inside");
    symlink("real/page.txt", site.root.join("alias.txt")).expect("symlink");
    symlink(site.root.join("real"), site.root.join("alias-dir")).expect("symlink");
    assert_eq!(body(response(site.get("/alias.txt").await)).await, "inside");
    let r = response(site.get("/alias-dir/page.txt").await);
    assert_eq!(body(r).await, "inside");
}

#[tokio::test]
async fn escapes_and_dot_segments_in_the_decoded_path_are_refused() {
    let site = Site::new();
    site.write("a/b.txt", "b");
    for path in [
        "/a/%2E%2E/a/b.txt",
        "/%2e%2e/outside/secret.txt",
        "/a/../a/b.txt",
        "/a/./b.txt",
        "/a%2Fb.txt",
        "/a%5Cb.txt",
        "/a/b.txt%00",
        "/a/%ZZ",
        "/a/b.txt%2",
        "a/b.txt",
    ] {
        assert_eq!(reason(site.get(path).await), Reason::NotFound, "{path}");
    }
    // A leading `//` stays under the root rather than naming `/`.
    assert_eq!(reason(site.get("//etc/passwd").await), Reason::NotFound);
    assert_eq!(body(response(site.get("/a/b%2Etxt").await)).await, "b");
}

#[tokio::test]
async fn a_file_without_read_bits_is_not_readable_even_to_root() {
    let site = Site::new();
    let locked = site.write("locked.txt", "locked");
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).expect("chmod");
    assert_eq!(
        reason(site.get("/locked.txt").await),
        Reason::FileNotReadable
    );
    let mut head = Ask::get("/locked.txt");
    head.method = Method::HEAD;
    assert_eq!(reason(site.ask(head).await), Reason::FileNotReadable);

    site.write("closed/index.html", "closed");
    let closed = site.root.join("closed");
    std::fs::set_permissions(&closed, std::fs::Permissions::from_mode(0o000)).expect("chmod");
    assert_eq!(reason(site.get("/closed/").await), Reason::FileNotReadable);

    // Searchable but not readable: its index is served, it is not listed.
    site.write("blind/index.html", "blind");
    site.mkdir("blind-list");
    for dir in ["blind", "blind-list"] {
        let path = site.root.join(dir);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o111)).expect("chmod");
    }
    assert_eq!(body(response(site.get("/blind/").await)).await, "blind");
    let mut ask = Ask::get("/blind-list/");
    ask.autoindex = true;
    assert_eq!(reason(site.ask(ask).await), Reason::FileNotReadable);
}

#[tokio::test]
async fn a_special_file_is_not_readable() {
    let site = Site::new();
    let fifo = site.root.join("pipe");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("run mkfifo");
    assert!(made.success());
    assert_eq!(reason(site.get("/pipe").await), Reason::FileNotReadable);
    // A Unix socket: `open` fails with ENXIO, which is not a missing file.
    let _socket = std::os::unix::net::UnixListener::bind(site.root.join("sock")).expect("bind");
    assert_eq!(reason(site.get("/sock").await), Reason::FileNotReadable);
}

#[tokio::test]
async fn an_empty_file_is_served_empty() {
    let site = Site::new();
    site.write("empty.txt", "");
    let r = response(site.get("/empty.txt").await);
    assert_eq!(header(&r, CONTENT_LENGTH), "0");
    assert!(frames(r).await.is_empty());
    let r = response(
        site.ask(Ask::get("/empty.txt").header(RANGE, "bytes=0-"))
            .await,
    );
    assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(header(&r, CONTENT_RANGE), "bytes */0");
}
