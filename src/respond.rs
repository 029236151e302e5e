//! The only place that builds synthetic answers: refusal bodies as JSON or a
//! small HTML page (SPEC 7), chosen by the client's `Accept`.
//!
//! A body carries the reason, the message, the rule (unless hidden), role
//! details on role refusals, and the request id — never a rule's addresses or
//! patterns, nor the client's token. A `deny` with `status = 404` is answered
//! exactly like a missing page.

use std::fmt::Write as _;
use std::sync::Arc;

use bytes::Bytes;

use http::header::{ALLOW, CACHE_CONTROL, CONNECTION, CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderName, HeaderValue, Response, StatusCode};

use crate::body::ResponseBody;
use crate::decision::{Reason, Refusal, RuleId};
use crate::policy::Policy;
use crate::request_id::Id;

/// `X-Request-Id`.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The methods the gateway itself answers `OPTIONS *` and 405 with.
const ALLOWED_METHODS: &str = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS";

/// Where the request id goes in a body made ahead of time.
const ID_MARK: &str = "@@edgeguard-request-id@@";

/// A refusal body made when the policy is compiled: everything but the
/// request id, so that a refusal costs one copy, not a formatting.
#[derive(Debug, Clone)]
pub struct Prebuilt {
    status: StatusCode,
    reason: Reason,
    json: (Arc<str>, Arc<str>),
    html: (Arc<str>, Arc<str>),
}

impl Prebuilt {
    fn of(view: &RefusalView<'_>) -> Prebuilt {
        let split = |body: String| -> (Arc<str>, Arc<str>) {
            let (before, after) = body
                .split_once(ID_MARK)
                .expect("the body holds the id once");
            (before.into(), after.into())
        };
        Prebuilt {
            status: view.status,
            reason: view.reason,
            json: split(view.json()),
            html: split(view.html()),
        }
    }

    fn body(&self, html: bool) -> RefusedBody {
        let (before, after) = if html { &self.html } else { &self.json };
        RefusedBody::Around(Arc::clone(before), Arc::clone(after))
    }
}

/// Every refusal body a policy can send, but role refusals (which name the
/// token's roles): by rule, and by reason for refusals no rule makes.
#[derive(Debug, Clone, Default)]
pub struct RefusalBodies {
    /// A rule's own refusal (`deny`), or its `token_missing` (`require`).
    by_rule: Vec<Option<Prebuilt>>,
    /// A `require` rule's `token_invalid`.
    invalid_token: Vec<Option<Prebuilt>>,
    /// By `Reason::ALL` index, for refusals without a rule.
    by_reason: Vec<Prebuilt>,
}

impl RefusalBodies {
    /// The bodies of `policy` (rule names shown per `expose_rule_names`).
    pub fn build(policy: &Policy) -> RefusalBodies {
        let made = |rule: Option<RuleId>, reason: Reason, status: StatusCode| {
            let refusal = Refusal {
                reason,
                rule,
                status,
            };
            Prebuilt::of(&RefusalView::new(policy, &refusal, None, ID_MARK))
        };
        let mut bodies = RefusalBodies::default();
        for (i, rule) in policy.rules.iter().enumerate() {
            let id = Some(RuleId(i as u32));
            let (own, invalid) = match rule.action {
                crate::config::Action::Allow => (None, None),
                crate::config::Action::Deny => (Some(made(id, rule.reason, rule.status)), None),
                crate::config::Action::Require => (
                    Some(made(
                        id,
                        Reason::TokenMissing,
                        Reason::TokenMissing.status(),
                    )),
                    Some(made(
                        id,
                        Reason::TokenInvalid,
                        Reason::TokenInvalid.status(),
                    )),
                ),
            };
            bodies.by_rule.push(own);
            bodies.invalid_token.push(invalid);
        }
        bodies.by_reason = Reason::ALL
            .iter()
            .map(|&r| made(None, r, r.status()))
            .collect();
        bodies
    }

    /// The body made ahead for this refusal, if there is one.
    fn find(&self, refusal: &Refusal) -> Option<&Prebuilt> {
        let hit = match refusal.rule {
            // A hidden refusal is answered exactly like a missing page.
            _ if refusal.is_hidden() => {
                let i = Reason::ALL.iter().position(|r| *r == Reason::NotFound)?;
                return self.by_reason.get(i);
            }
            None => {
                let i = Reason::ALL.iter().position(|r| *r == refusal.reason)?;
                self.by_reason.get(i)
            }
            Some(RuleId(i)) if refusal.reason == Reason::TokenInvalid => {
                self.invalid_token.get(i as usize)?.as_ref()
            }
            Some(RuleId(i)) => self.by_rule.get(i as usize)?.as_ref(),
        }?;
        // A refusal that differs from what was made ahead (a hidden 404, a
        // status set at request time) is made then.
        (hit.status == refusal.status && hit.reason == refusal.reason).then_some(hit)
    }
}

/// A refusal ready to be written: its status, its headers (fixed strings
/// but for the request id, which the writer adds, and the length) and its
/// body. The HTTP/1 loop writes it without a header map; hyper's server
/// gets it as a response ([`Refused::into_response`]).
#[derive(Debug)]
pub struct Refused {
    status: StatusCode,
    html: bool,
    /// What the reason adds: `WWW-Authenticate` or `Allow`.
    extra: Option<(Extra, &'static str)>,
    /// The connection ends after it (`Connection: close`).
    close: bool,
    body: RefusedBody,
}

/// The headers a reason adds to a refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Extra {
    WwwAuthenticate,
    Allow,
}

#[derive(Debug)]
enum RefusedBody {
    /// Made with the policy: the request id goes between the two.
    Around(Arc<str>, Arc<str>),
    /// Made for this request, the request id in it (role refusals).
    Whole(Bytes),
}

impl Refused {
    /// The status sent.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// Whether the connection ends after this answer.
    pub fn closes(&self) -> bool {
        self.close
    }

    /// Names these methods in `Allow`, if this is a `405`.
    pub fn allow(&mut self, methods: &'static str) {
        if self.status == StatusCode::METHOD_NOT_ALLOWED {
            self.extra = Some((Extra::Allow, methods));
        }
    }

    /// Calls `emit` with each header but `X-Request-Id`, `Content-Length`,
    /// `Connection` and `Date`, which the writer adds.
    pub fn each_header(&self, mut emit: impl FnMut(&HeaderName, &'static str)) {
        emit(
            &CONTENT_TYPE,
            if self.html {
                "text/html; charset=utf-8"
            } else {
                "application/json"
            },
        );
        emit(&CACHE_CONTROL, "no-store");
        match self.extra {
            Some((Extra::WwwAuthenticate, value)) => emit(&WWW_AUTHENTICATE, value),
            Some((Extra::Allow, value)) => emit(&ALLOW, value),
            None => {}
        }
    }

    /// The body's length with `id` in it.
    pub fn body_len(&self, id: &[u8]) -> usize {
        match &self.body {
            RefusedBody::Around(before, after) => before.len() + id.len() + after.len(),
            RefusedBody::Whole(body) => body.len(),
        }
    }

    /// Writes the body, with `id` in it, behind `out`.
    pub fn write_body(&self, id: &[u8], out: &mut Vec<u8>) {
        match &self.body {
            RefusedBody::Around(before, after) => {
                out.extend_from_slice(before.as_bytes());
                out.extend_from_slice(id);
                out.extend_from_slice(after.as_bytes());
            }
            RefusedBody::Whole(body) => out.extend_from_slice(body),
        }
    }

    /// The refusal as a response, with `X-Request-Id: id`.
    pub fn into_response(self, id: &Id) -> Response<ResponseBody> {
        let body = match self.body {
            RefusedBody::Whole(ref body) => body.clone(),
            RefusedBody::Around(..) => {
                let mut body = Vec::with_capacity(self.body_len(id.as_bytes()));
                self.write_body(id.as_bytes(), &mut body);
                Bytes::from(body)
            }
        };
        let mut response = Response::new(ResponseBody::full(body));
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        self.each_header(|name, value| {
            headers.insert(name.clone(), HeaderValue::from_static(value));
        });
        headers.insert(X_REQUEST_ID.clone(), id.header_value());
        if self.close {
            headers.insert(CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

/// The answer for a refusal: JSON, or HTML when the client prefers it
/// (SPEC 7). Bodies come ready-made from the policy where they can;
/// role refusals, which name the token's roles, are made per request.
pub fn refusal(
    policy: &Policy,
    refusal: &Refusal,
    roles: Option<&[String]>,
    id: &Id,
    accept: Option<&[u8]>,
) -> Refused {
    let html = prefers_html(accept);
    let made = (refusal.reason != Reason::RoleInsufficient)
        .then(|| policy.refusal_bodies.find(refusal))
        .flatten();
    let (body, status, reason) = match made {
        Some(p) => (p.body(html), p.status, p.reason),
        None => {
            let view = RefusalView::new(policy, refusal, roles, id.as_str());
            let body = if html { view.html() } else { view.json() };
            (
                RefusedBody::Whole(Bytes::from(body)),
                view.status,
                view.reason,
            )
        }
    };
    let extra = match reason {
        Reason::TokenMissing => Some((Extra::WwwAuthenticate, "Bearer")),
        Reason::TokenInvalid => Some((Extra::WwwAuthenticate, "Bearer error=\"invalid_token\"")),
        Reason::MethodNotAllowed => Some((Extra::Allow, ALLOWED_METHODS)),
        _ => None,
    };
    Refused {
        status,
        html,
        extra,
        // A request that could not be read, or whose body was not read to
        // its end (too large, too slow), leaves the connection in no state
        // to carry another.
        close: matches!(reason, Reason::BadRequest | Reason::BodyTooLarge)
            || status == StatusCode::REQUEST_TIMEOUT,
        body,
    }
}

/// The answer to `OPTIONS *`: 200 with `Allow`, no body.
pub fn options_star() -> Response<ResponseBody> {
    let mut response = Response::new(ResponseBody::Empty);
    response
        .headers_mut()
        .insert(ALLOW, HeaderValue::from_static(ALLOWED_METHODS));
    response
}

/// A small plain-text answer (admin endpoints).
pub fn text(status: StatusCode, body: &'static str) -> Response<ResponseBody> {
    let mut response = Response::new(ResponseBody::full(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Everything a refusal body shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusalView<'a> {
    /// The status sent.
    pub status: StatusCode,
    /// The reason shown (`not_found` for a hidden refusal).
    pub reason: Reason,
    /// The message shown.
    pub message: &'a str,
    /// The rule shown, when rule names are exposed.
    pub rule: Option<&'a str>,
    /// On role refusals: the roles the rule requires.
    pub required_roles: Option<&'a [String]>,
    /// On role refusals: the token's roles (`Some(None)`: no roles claim / no token).
    pub your_roles: Option<Option<&'a [String]>>,
    /// The request id.
    pub request_id: &'a str,
}

impl<'a> RefusalView<'a> {
    /// What a refusal shows, per the policy's `expose_rule_names`; `roles` are
    /// the token's roles for a role refusal.
    pub fn new(
        policy: &'a Policy,
        refusal: &Refusal,
        roles: Option<&'a [String]>,
        request_id: &'a str,
    ) -> RefusalView<'a> {
        if refusal.is_hidden() {
            return RefusalView::plain(Reason::NotFound, request_id);
        }
        let rule = refusal.rule.map(|id| policy.rule(id));
        let message = rule
            .and_then(|r| r.message.as_deref())
            .unwrap_or(refusal.reason.message());
        let role_refusal = refusal.reason == Reason::RoleInsufficient;
        RefusalView {
            status: refusal.status,
            reason: refusal.reason,
            message,
            rule: rule
                .filter(|_| policy.settings.expose_rule_names)
                .map(|r| &*r.name),
            required_roles: rule.filter(|_| role_refusal).map(|r| r.roles.as_slice()),
            your_roles: role_refusal.then_some(roles),
            request_id,
        }
    }

    /// A refusal that no rule made, with its reason's status and message.
    pub fn plain(reason: Reason, request_id: &'a str) -> RefusalView<'a> {
        RefusalView {
            status: reason.status(),
            reason,
            message: reason.message(),
            rule: None,
            required_roles: None,
            your_roles: None,
            request_id,
        }
    }

    /// The status's reason phrase (`Forbidden`).
    pub fn error(&self) -> &'static str {
        self.status.canonical_reason().unwrap_or("Error")
    }

    /// The JSON body.
    pub fn json(&self) -> String {
        let mut out = String::with_capacity(256);
        out.push_str("{\"error\":");
        json_string(&mut out, self.error());
        out.push_str(",\"message\":");
        json_string(&mut out, self.message);
        out.push_str(",\"reason\":");
        json_string(&mut out, self.reason.code());
        if let Some(rule) = self.rule {
            out.push_str(",\"rule\":");
            json_string(&mut out, rule);
        }
        if let Some(required) = self.required_roles {
            out.push_str(",\"required_role\":");
            json_roles(&mut out, Some(required));
        }
        if let Some(yours) = self.your_roles {
            out.push_str(",\"your_role\":");
            json_roles(&mut out, yours);
        }
        let _ = write!(out, ",\"statusCode\":{}", self.status.as_u16());
        out.push_str(",\"request_id\":");
        json_string(&mut out, self.request_id);
        out.push('}');
        out
    }

    /// The HTML page: self-contained, every value escaped.
    pub fn html(&self) -> String {
        let mut out = String::with_capacity(1024);
        let status = self.status.as_u16();
        let _ = write!(
            out,
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
             <title>{status} {error}</title>\n<style>\
             body{{font-family:system-ui,sans-serif;max-width:40rem;margin:4rem auto;padding:0 1rem;color:#222}}\
             h1{{font-size:1.6rem}}dl{{display:grid;grid-template-columns:max-content 1fr;gap:.3rem 1rem}}\
             dt{{color:#666}}dd{{margin:0;font-family:ui-monospace,monospace}}\
             </style>\n</head>\n<body>\n<h1>{status} {error}</h1>\n<p>",
            error = self.error(),
        );
        html_escape(&mut out, self.message);
        out.push_str("</p>\n<dl>\n<dt>Reason</dt><dd>");
        html_escape(&mut out, self.reason.code());
        out.push_str("</dd>\n");
        if let Some(rule) = self.rule {
            out.push_str("<dt>Rule</dt><dd>");
            html_escape(&mut out, rule);
            out.push_str("</dd>\n");
        }
        if let Some(required) = self.required_roles {
            out.push_str("<dt>Required role</dt><dd>");
            html_escape(&mut out, &required.join(", "));
            out.push_str("</dd>\n");
        }
        if let Some(yours) = self.your_roles {
            out.push_str("<dt>Your role</dt><dd>");
            match yours {
                Some(roles) if !roles.is_empty() => html_escape(&mut out, &roles.join(", ")),
                _ => out.push_str("(none)"),
            }
            out.push_str("</dd>\n");
        }
        out.push_str("<dt>Request ID</dt><dd>");
        html_escape(&mut out, self.request_id);
        out.push_str("</dd>\n</dl>\n</body>\n</html>\n");
        out
    }
}

/// One role as a string, several as an array, none (no token, or a token
/// without roles) as null (SPEC 7).
fn json_roles(out: &mut String, roles: Option<&[String]>) {
    match roles {
        None | Some([]) => out.push_str("null"),
        Some([one]) => json_string(out, one),
        Some(many) => {
            out.push('[');
            for (i, r) in many.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                json_string(out, r);
            }
            out.push(']');
        }
    }
}

/// Appends `s` as a JSON string literal.
pub fn json_string(out: &mut String, s: &str) {
    out.push('"');
    let plain = s
        .bytes()
        .all(|b| b >= 0x20 && !matches!(b, b'"' | b'\\' | b'<' | b'>' | b'&'));
    if plain {
        out.push_str(s);
        out.push('"');
        return;
    }
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            // `<` and `>` escaped so that a body shown as HTML by mistake is inert.
            c if (c as u32) < 0x20 || c == '<' || c == '>' || c == '&' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Appends `s` escaped for HTML text and attribute values.
pub fn html_escape(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

/// Whether the client's `Accept` ranks `text/html` above `application/json`
/// (by q-value, most specific range first); no Accept, `*/*` alone, or a tie
/// mean JSON.
pub fn prefers_html(accept: Option<&[u8]>) -> bool {
    // Visible ASCII only, as `HeaderValue::to_str` took it.
    let Some(accept) = accept
        .filter(|a| a.iter().all(|&b| b == b'\t' || (b' '..=b'~').contains(&b)))
        .and_then(|a| std::str::from_utf8(a).ok())
    else {
        return false;
    };
    let html = quality(accept, "text", "html");
    let json = quality(accept, "application", "json");
    html > json
}

/// The q-value (in thousandths) that an Accept header gives a media type,
/// from its most specific matching range.
fn quality(accept: &str, kind: &str, sub: &str) -> u16 {
    let mut best: Option<(u8, u16)> = None;
    for range in accept.split(',') {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or("").trim();
        let Some((k, s)) = media.split_once('/') else {
            continue;
        };
        let specificity = match (k.trim(), s.trim()) {
            (k, s) if k.eq_ignore_ascii_case(kind) && s.eq_ignore_ascii_case(sub) => 3,
            (k, "*") if k.eq_ignore_ascii_case(kind) => 2,
            ("*", "*") => 1,
            _ => continue,
        };
        let mut q = 1000;
        for param in parts {
            if let Some((name, value)) = param.split_once('=')
                && name.trim().eq_ignore_ascii_case("q")
            {
                q = parse_q(value.trim()).unwrap_or(0);
            }
        }
        if best.is_none_or(|(s, _)| specificity > s) {
            best = Some((specificity, q));
        }
    }
    best.map_or(0, |(_, q)| q)
}

/// Parses a q-value (`0`, `0.5`, `1.000`) into thousandths.
fn parse_q(v: &str) -> Option<u16> {
    let (int, frac) = v.split_once('.').unwrap_or((v, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let int: u16 = match int {
        "0" => 0,
        "1" => 1000,
        _ => return None,
    };
    let mut frac_value = 0u16;
    for (i, b) in frac.bytes().enumerate() {
        frac_value += u16::from(b - b'0') * [100, 10, 1][i];
    }
    let q = int + frac_value;
    (q <= 1000).then_some(q)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_negotiation_follows_q_values() {
        let table = [
            (None, false),
            (Some("*/*"), false),
            (Some("text/html"), true),
            (Some("application/json"), false),
            (
                Some("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
                true,
            ),
            (Some("application/json, text/html"), false),
            (Some("text/html;q=0.9, application/json"), false),
            (Some("text/html, application/json;q=0.9"), true),
            (Some("text/*, application/json;q=0.5"), true),
            (Some("text/html;q=0, */*"), false),
            (Some("TEXT/HTML"), true),
            (Some("text/html;q=1.5"), false),
            (Some("text/html;q=0.5"), true),
            (Some("garbage"), false),
        ];
        for (accept, html) in table {
            let value = accept.map(|a| HeaderValue::from_str(a).expect("header"));
            assert_eq!(
                prefers_html(value.as_ref().map(HeaderValue::as_bytes)),
                html,
                "{accept:?}"
            );
        }
    }

    #[test]
    fn json_strings_are_escaped_and_inert_in_html() {
        let mut out = String::new();
        json_string(&mut out, "a\"b\\c\n<script>&\u{1}");
        assert_eq!(out, r#""a\"b\\c\n\u003cscript\u003e\u0026\u0001""#);
    }

    #[test]
    fn html_escapes_every_special_character() {
        let mut out = String::new();
        html_escape(&mut out, "<b>\"x\" & 'y'</b>");
        assert_eq!(out, "&lt;b&gt;&quot;x&quot; &amp; &#39;y&#39;&lt;/b&gt;");
    }

    #[test]
    fn role_refusal_json_has_the_shape_of_spec_section_7() {
        let required = vec!["admin".to_owned()];
        let yours = vec!["viewer".to_owned()];
        let view = RefusalView {
            status: StatusCode::FORBIDDEN,
            reason: Reason::RoleInsufficient,
            message: Reason::RoleInsufficient.message(),
            rule: Some("admin-needs-role"),
            required_roles: Some(&required),
            your_roles: Some(Some(&yours)),
            request_id: "4f1c2b8e9a7d4c3b",
        };
        assert_eq!(
            view.json(),
            r#"{"error":"Forbidden","message":"You do not have permission to access this resource","reason":"role_insufficient","rule":"admin-needs-role","required_role":"admin","your_role":"viewer","statusCode":403,"request_id":"4f1c2b8e9a7d4c3b"}"#
        );
        let several = vec!["a".to_owned(), "b".to_owned()];
        let view = RefusalView {
            required_roles: Some(&several),
            your_roles: Some(None),
            ..view
        };
        assert!(
            view.json()
                .contains(r#""required_role":["a","b"],"your_role":null"#)
        );
        // A token without roles is shown like no token.
        let none: Vec<String> = Vec::new();
        let view = RefusalView {
            your_roles: Some(Some(&none)),
            ..view
        };
        assert!(
            view.json().contains(r#""your_role":null"#),
            "{}",
            view.json()
        );
    }
}
