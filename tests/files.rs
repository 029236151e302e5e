//! Root routes and directory indexes through the gateway (SPEC 6): files
//! served with their rules, index candidates decided like requests of their
//! own, and the index fallback of upstream routes against a stub.

use std::os::unix::fs::PermissionsExt;

use crate::common::gateway::{Gateway, get, raw};
use crate::common::stub::Stub;

fn site() -> Vec<(&'static str, &'static str)> {
    vec![
        ("site/index.html", "<h1>home</h1>"),
        ("site/docs/readme.txt", "docs"),
        ("site/blog/index.htm", "blog htm"),
        ("site/blog/index.html", "blog html"),
        ("site/secret/index.html", "secret index"),
        ("site/files/<b>bold<i>.txt", "x"),
        ("site/files/a&b.txt", "x"),
        ("site/files/quote\"s and spaces.txt", "x"),
        ("site/files/.env", "SECRET=1"),
        ("site/files/sub/x.txt", "x"),
        ("site/big.bin", ""),
        ("outside/secret.txt", "outside"),
    ]
}

const BOOK: &str = r#"
[[route]]
root = "site"
index = ["index.htm", "index.html"]

[[route]]
path_prefix = "/files"
root = "site"
autoindex = true

[[rule]]
name = "dotfiles"
action = "deny"
path_regex = ['/\.']

[[rule]]
name = "no-secret-index"
action = "deny"
path_regex = ['^/secret/index\.html$']
"#;

fn start() -> Gateway {
    let gw = Gateway::start_with(BOOK, None, &site(), 1);
    let dir = gw.folder.path("site");
    std::os::unix::fs::symlink(gw.folder.path("outside/secret.txt"), dir.join("leak.txt"))
        .expect("symlink");
    std::os::unix::fs::symlink(gw.folder.path("outside"), dir.join("leakdir")).expect("symlink");
    std::os::unix::fs::symlink(dir.join("index.html"), dir.join("home.html")).expect("symlink");
    std::fs::write(dir.join("locked.txt"), "locked").expect("write");
    std::fs::set_permissions(
        dir.join("locked.txt"),
        std::fs::Permissions::from_mode(0o000),
    )
    .expect("chmod");
    std::fs::write(dir.join("big.bin"), vec![7u8; 1 << 20]).expect("write");
    gw
}

#[test]
fn files_are_served_with_their_type_validators_and_ranges() {
    let gw = start();
    let r = get(gw.addr, "/", &[]);
    assert_eq!((r.status, r.text()), (200, "<h1>home</h1>".to_owned()));
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert!(r.header("x-request-id").is_some());
    let etag = r.header("etag").expect("etag").to_owned();
    let r = get(gw.addr, "/index.html", &[&format!("If-None-Match: {etag}")]);
    assert_eq!(r.status, 304);
    let r = get(gw.addr, "/big.bin", &["Range: bytes=10-19"]);
    assert_eq!((r.status, r.body.len()), (206, 10));
    assert_eq!(r.header("content-range"), Some("bytes 10-19/1048576"));
    let r = get(gw.addr, "/big.bin", &["Range: bytes=2000000-"]);
    assert_eq!(r.status, 416);
    let r = get(gw.addr, "/big.bin", &[]);
    assert_eq!((r.status, r.body.len()), (200, 1 << 20));
    let head = raw(gw.addr, b"HEAD /index.html HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!((head.status, head.body.len()), (200, 0));
    assert_eq!(head.header("content-length"), Some("13"));
    let post = raw(
        gw.addr,
        b"POST /index.html HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(post.status, 405);
    assert_eq!(post.header("allow"), Some("GET, HEAD"));
    // Without a body, the gateway's own loop answers: the same 405.
    let delete = raw(gw.addr, b"DELETE /index.html HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(delete.status, 405);
    assert_eq!(delete.header("allow"), Some("GET, HEAD"));
}

#[test]
fn directories_redirect_index_or_refuse() {
    let gw = start();
    let r = get(gw.addr, "/blog?x=1", &[]);
    assert_eq!(r.status, 301);
    assert_eq!(r.header("location"), Some("/blog/?x=1"));
    assert_eq!(
        get(gw.addr, "/blog/", &[]).text(),
        "blog htm",
        "index order"
    );
    let r = get(gw.addr, "/docs/", &[]);
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["reason"], "directory_listing_disabled");
    // The index candidate is decided like a request of its own.
    let r = get(gw.addr, "/secret/", &[]);
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["rule"], "no-secret-index");
    assert_eq!(
        get(gw.addr, "/nothing-here", &[]).json()["reason"],
        "not_found"
    );
}

#[test]
fn autoindex_lists_escaped_names_and_hides_what_rules_refuse() {
    let gw = start();
    let r = get(gw.addr, "/files/", &[]);
    assert_eq!(r.status, 200);
    let page = r.text();
    assert!(page.contains("&lt;b&gt;bold&lt;i&gt;.txt"), "{page}");
    assert!(page.contains("a&amp;b.txt"), "{page}");
    assert!(page.contains("quote&quot;s and spaces.txt"), "{page}");
    assert!(
        page.contains("href=\"./quote%22s%20and%20spaces.txt\""),
        "{page}"
    );
    assert!(page.contains("sub/"), "{page}");
    assert!(!page.contains(".env"), "a refused entry is named: {page}");
    assert!(!page.contains("<b>bold"), "an unescaped name: {page}");
    assert_eq!(get(gw.addr, "/files/a%26b.txt", &[]).status, 200);
    assert_eq!(get(gw.addr, "/files/.env", &[]).status, 403);
}

#[test]
fn symlinks_escapes_and_unreadable_files_are_refused() {
    let gw = start();
    assert_eq!(
        get(gw.addr, "/home.html", &[]).text(),
        "<h1>home</h1>",
        "a symlink inside the root"
    );
    for (target, reason) in [
        ("/leak.txt", "outside_root"),
        ("/leakdir/secret.txt", "outside_root"),
        ("/locked.txt", "file_not_readable"),
    ] {
        let r = get(gw.addr, target, &[]);
        assert_eq!(
            (r.status, r.json()["reason"].clone()),
            (403, reason.into()),
            "{target}"
        );
    }
    for target in [
        "/../outside/secret.txt",
        "/%2e%2e/outside/secret.txt",
        "/x/../../outside/secret.txt",
    ] {
        let r = get(gw.addr, target, &[]);
        assert!(
            !r.text().contains("outside"),
            "{target} leaked: {}",
            r.text()
        );
        assert_ne!(r.status, 200, "{target}");
    }
}

#[test]
fn upstream_routes_try_each_index_name() {
    let stub = Stub::start();
    let book = "[[route]]\nupstream = \"{upstream}\"\nindex = [\"missing.html\", \"index.htm\"]\n\
                [[route]]\npath_prefix = \"/none\"\nupstream = \"{upstream}\"\nindex = [\"missing.html\"]\n\
                [[route]]\npath_prefix = \"/auto\"\nupstream = \"{upstream}\"\nindex = [\"missing.html\"]\nautoindex = true\n\
                [[rule]]\nname = \"no-htm\"\naction = \"deny\"\npath_regex = ['^/guarded/index\\.htm$']\n";
    let gw = Gateway::start(book, Some(stub.addr));
    let r = get(gw.addr, "/docs/", &[]);
    assert_eq!((r.status, r.text()), (200, "ok".to_owned()));
    let r = get(gw.addr, "/none/", &[]);
    assert_eq!(
        (r.status, r.json()["reason"].clone()),
        (403, "directory_listing_disabled".into())
    );
    assert_eq!(get(gw.addr, "/auto/", &[]).status, 200);
    let r = get(gw.addr, "/guarded/", &[]);
    assert_eq!((r.status, r.json()["rule"].clone()), (403, "no-htm".into()));
    // Other methods and paths are forwarded unchanged.
    assert_eq!(
        raw(
            gw.addr,
            b"POST /docs/ HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n"
        )
        .status,
        200
    );
    assert_eq!(get(gw.addr, "/docs/page", &[]).status, 200);
    assert_eq!(
        stub.targets(),
        [
            "/docs/missing.html",
            "/docs/index.htm",
            "/none/missing.html",
            "/auto/missing.html",
            "/auto/",
            "/guarded/missing.html",
            "/docs/",
            "/docs/page",
        ]
    );
}
