//! The dashboard (`GET /`): one self-contained HTML page — inline CSS and
//! SVG, no script, nothing loaded from elsewhere, every value escaped — that
//! shows what is being refused over the last hour (per minute, by reason,
//! rule and country), the last refusals, the rulebook in force and the
//! reload history. It refreshes itself every 10 seconds.

use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use super::Control;
use super::feed::{MINUTES, Series, Snapshot};
use crate::policy::Policy;
use crate::reload::rfc3339;
use crate::respond::html_escape;

/// Rows shown per breakdown table.
const TOP: usize = 15;

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222;background:#fafafa}\
h1{font-size:1.4em;margin:0 0 .2em}h2{font-size:1.1em;margin:1.5em 0 .4em}\
table{border-collapse:collapse;background:#fff;font-size:13px}\
td,th{padding:.25em .6em;border-bottom:1px solid #e4e4e4;text-align:left;vertical-align:top}\
th{background:#f0f0f0}td.n{text-align:right;font-variant-numeric:tabular-nums}\
.muted{color:#777}.ok{color:#17773a}.err{color:#b3261e}code{font-size:12px}\
svg{display:block}.bars rect{fill:#b3261e}.spark rect{fill:#d36b63}\
.grid{display:flex;flex-wrap:wrap;gap:1.5em}";

/// The page.
pub(super) fn render(
    policy: &Policy,
    control: &Control,
    feed: &Snapshot,
    now: SystemTime,
) -> String {
    let mut out = String::with_capacity(32 * 1024);
    out.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">");
    out.push_str("<meta http-equiv=\"refresh\" content=\"10\">");
    out.push_str("<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">");
    out.push_str("<title>edgeguard: refusals</title><style>");
    out.push_str(STYLE);
    out.push_str("</style></head><body>\n<h1>edgeguard: what is refused</h1>\n<p class=\"muted\">");
    text(&mut out, &rfc3339(now));
    let _ = write!(
        out,
        " · {} refusals since start, {} in the last hour",
        feed.total,
        feed.per_minute.iter().map(|&n| u64::from(n)).sum::<u64>()
    );
    if feed.dropped > 0 {
        let _ = write!(
            out,
            " · {} not shown (the feed could not keep up)",
            feed.dropped
        );
    }
    out.push_str("</p>\n");

    out.push_str("<h2>Refusals per minute, last hour</h2>\n");
    bars(&mut out, &feed.per_minute, 720, 90, "bars");
    let _ = writeln!(
        out,
        "<p class=\"muted\">from {} to {} (UTC)</p>",
        minute_label(feed.first_minute),
        minute_label(feed.first_minute + MINUTES as u64 - 1)
    );

    out.push_str("<div class=\"grid\">\n");
    breakdown(
        &mut out,
        "By reason",
        feed.by_reason.iter().map(|(r, s)| (r.code(), s)),
    );
    breakdown(
        &mut out,
        "By rule",
        feed.by_rule
            .iter()
            .map(|(r, s)| (r.as_deref().unwrap_or("(no rule)"), s)),
    );
    breakdown(
        &mut out,
        "By country",
        feed.by_country
            .iter()
            .map(|(c, s)| (c.as_ref().map_or("(not looked up)", |c| c.as_str()), s)),
    );
    out.push_str("</div>\n");

    recent(&mut out, feed);
    rulebook(&mut out, policy);
    history(&mut out, control);
    out.push_str("</body></html>\n");
    out
}

/// Appends escaped text.
fn text(out: &mut String, s: &str) {
    html_escape(out, s);
}

fn minute_label(minute: u64) -> String {
    let at = UNIX_EPOCH + std::time::Duration::from_secs(minute * 60);
    let full = humantime::format_rfc3339_seconds(at).to_string();
    full.get(11..16).unwrap_or(&full).to_owned()
}

/// A bar per minute, scaled to the largest.
fn bars(out: &mut String, per_minute: &[u32; MINUTES], width: u32, height: u32, class: &str) {
    let max = per_minute.iter().copied().max().unwrap_or(0).max(1);
    let step = width as f64 / MINUTES as f64;
    let _ = write!(
        out,
        "<svg class=\"{class}\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" role=\"img\"><title>per minute, largest {max}</title>"
    );
    for (i, &n) in per_minute.iter().enumerate() {
        if n == 0 {
            continue;
        }
        let h = (f64::from(n) / f64::from(max) * f64::from(height)).max(1.0);
        let _ = write!(
            out,
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{h:.1}\"><title>{n}</title></rect>",
            i as f64 * step,
            f64::from(height) - h,
            (step - 1.0).max(1.0)
        );
    }
    out.push_str("</svg>");
}

fn breakdown<'a>(out: &mut String, title: &str, rows: impl Iterator<Item = (&'a str, &'a Series)>) {
    let _ = write!(
        out,
        "<section><h2>{title}</h2><table><tr><th>{}</th><th>last hour</th><th>per minute</th></tr>",
        title.trim_start_matches("By ")
    );
    let mut any = false;
    for (name, series) in rows.take(TOP) {
        any = true;
        out.push_str("<tr><td><code>");
        text(out, name);
        let _ = write!(out, "</code></td><td class=\"n\">{}</td><td>", series.total);
        bars(out, &series.per_minute, 180, 18, "spark");
        out.push_str("</td></tr>");
    }
    if !any {
        out.push_str("<tr><td colspan=\"3\" class=\"muted\">nothing refused</td></tr>");
    }
    out.push_str("</table></section>\n");
}

fn recent(out: &mut String, feed: &Snapshot) {
    let _ = write!(
        out,
        "<h2>Last {} refusals</h2>\n<table><tr>",
        feed.recent.len()
    );
    for h in [
        "time", "client", "method", "path", "status", "reason", "rule", "country",
    ] {
        let _ = write!(out, "<th>{h}</th>");
    }
    out.push_str("</tr>\n");
    for e in &feed.recent {
        out.push_str("<tr><td>");
        text(out, &rfc3339(e.at));
        out.push_str("</td><td>");
        text(out, &e.client_ip.to_string());
        out.push_str("</td><td>");
        text(out, e.method.as_str());
        out.push_str("</td><td><code>");
        text(out, e.path.as_str());
        if e.path.is_cut() {
            out.push('…');
        }
        let _ = write!(
            out,
            "</code></td><td>{}</td><td>{}</td><td>",
            e.status,
            e.reason.code()
        );
        text(out, e.rule.as_deref().unwrap_or(""));
        out.push_str("</td><td>");
        text(out, e.country.as_ref().map_or("", |c| c.as_str()));
        out.push_str("</td></tr>\n");
    }
    if feed.recent.is_empty() {
        out.push_str("<tr><td colspan=\"8\" class=\"muted\">nothing refused yet</td></tr>");
    }
    out.push_str("</table>\n");
}

fn rulebook(out: &mut String, policy: &Policy) {
    out.push_str("<h2>Rulebook in force</h2>\n<table><tr><th>file</th><td><code>");
    text(out, &policy.source.path.display().to_string());
    out.push_str("</code></td></tr><tr><th>sha256</th><td><code>");
    text(out, &policy.source.sha256);
    out.push_str("</code></td></tr><tr><th>loaded</th><td>");
    text(out, &rfc3339(policy.source.loaded_at));
    let _ = writeln!(
        out,
        "</td></tr><tr><th>contents</th><td>{} rules, {} routes, {} CIDRs, {} tests</td></tr></table>",
        policy.rules.len(),
        policy.routes.all().len(),
        policy.cidr_count(),
        policy.tests.len()
    );
}

fn history(out: &mut String, control: &Control) {
    out.push_str("<h2>Loads and reloads</h2>\n<table><tr><th>at</th><th>trigger</th><th>result</th><th>sha256</th><th>took</th><th>notes</th></tr>\n");
    for r in control.reloader.history().iter().rev() {
        out.push_str("<tr><td>");
        text(out, &rfc3339(r.at));
        let (class, result) = if r.ok { ("ok", "ok") } else { ("err", "error") };
        let _ = write!(
            out,
            "</td><td>{}</td><td class=\"{class}\">{result}</td><td><code>",
            r.trigger.as_str()
        );
        text(
            out,
            r.sha256.as_deref().map_or("", |s| s.get(..12).unwrap_or(s)),
        );
        let _ = write!(
            out,
            "</code></td><td class=\"n\">{:.1} ms</td><td>",
            r.duration.as_secs_f64() * 1000.0
        );
        for e in &r.errors {
            out.push_str("<div class=\"err\"><code>");
            text(out, e);
            out.push_str("</code></div>");
        }
        if !r.needs_restart.is_empty() {
            out.push_str("<div>needs a restart: ");
            text(out, &r.needs_restart.join(", "));
            out.push_str("</div>");
        }
        out.push_str("</td></tr>\n");
    }
    out.push_str("</table>\n");
}
