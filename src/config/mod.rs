//! The rulebook as written: [`read`] turns a TOML file, and the CIDR list files
//! it names, into a [`Rulebook`] of typed specs with their spans — or into
//! every problem found, each at `PATH:LINE:COLUMN`.
//!
//! This module checks shape (syntax, unknown keys, types, enum values) and reads
//! list files; what values mean (addresses, regexes, durations, defaults) is
//! checked by `policy::compile`, which reports through the same [`Diagnostics`].

mod load;
mod source;
mod spec;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use toml::Spanned;
use toml::de::DeValue;

pub use source::{ConfigError, ConfigErrors, Diagnostics, Location, SourceFile};
pub use spec::*;

use crate::ipset::parse_net;
use load::{closest, deserialize_all, parse_document};

/// Most errors reported for one list file; the rest are counted.
const MAX_ERRORS_PER_LIST_FILE: usize = 20;

/// A rulebook as written, with the spans of its values.
#[derive(Debug)]
pub struct Rulebook {
    /// The rulebook's text and path as messages show it.
    pub source: SourceFile,
    /// The folder that relative paths in the rulebook are resolved against.
    pub dir: PathBuf,
    /// `[server]`.
    pub server: ServerSpec,
    /// `[client_ip]`.
    pub client_ip: ClientIpSpec,
    /// `[paths]`.
    pub paths: PathsSpec,
    /// `[geoip]`.
    pub geoip: Option<Spanned<GeoipSpec>>,
    /// `[auth]`.
    pub auth: Option<Spanned<AuthSpec>>,
    /// `[log]`.
    pub log: LogSpec,
    /// `[lists]`, in file order, with list files already read.
    pub lists: Vec<List>,
    /// `[[route]]`, in file order.
    pub routes: Vec<Spanned<RouteSpec>>,
    /// `[[rule]]`, in file order.
    pub rules: Vec<Spanned<RuleSpec>>,
    /// `[[test]]`, in file order.
    pub tests: Vec<Spanned<TestSpec>>,
}

/// One named address list.
#[derive(Debug)]
pub struct List {
    /// The name, used as `@name`.
    pub name: Spanned<String>,
    /// Its entries.
    pub entries: ListEntries,
}

/// Where a list's addresses come from.
#[derive(Debug)]
pub enum ListEntries {
    /// Written in the rulebook.
    Inline(Vec<Spanned<String>>),
    /// Read from a file: parsed networks with their 1-based line numbers.
    File {
        /// The `file` value in the rulebook.
        spec: Spanned<String>,
        /// The file's path as messages show it.
        path: Arc<Path>,
        /// Every valid entry with its line.
        nets: Vec<(ipnet::IpNet, u32)>,
    },
}

impl Rulebook {
    /// A path written in the rulebook, resolved against the rulebook's folder.
    pub fn resolve(&self, path: &str) -> PathBuf {
        resolve(&self.dir, path)
    }

    /// Where a span of the rulebook is.
    pub fn locate(&self, span: &std::ops::Range<usize>) -> Location {
        self.source.locate(span)
    }
}

fn resolve(dir: &Path, path: &str) -> PathBuf {
    let p = Path::new(path);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        dir.join(p)
    }
}

/// Reads the rulebook at `path` and the list files it names.
///
/// Returns the rulebook unless the file cannot be read or is not valid TOML —
/// with the keys that were wrong left out, so that compiling it reports the
/// remaining problems too. It is only usable when `diags` holds no error.
pub fn read(path: &Path, diags: &mut Diagnostics) -> Option<Rulebook> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) => {
            let location = Location::new(Arc::from(path), 1, 1);
            diags.error_with(location, format!("cannot read rulebook: {e}"), e);
            return None;
        }
    };
    let text = match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => {
            let valid = e.utf8_error().valid_up_to();
            let prefix = String::from_utf8_lossy(&e.as_bytes()[..valid]).into_owned();
            let source = SourceFile::new(path, prefix);
            let location = source.locate(&(valid..valid));
            diags.error_with(location, "rulebook is not valid UTF-8", e.utf8_error());
            return None;
        }
    };
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    parse(SourceFile::new(path, text), dir, diags)
}

/// Parses rulebook text already read; `dir` resolves relative paths.
pub fn parse(source: SourceFile, dir: PathBuf, diags: &mut Diagnostics) -> Option<Rulebook> {
    let doc = parse_document(&source, diags)?;
    let mut book = Rulebook {
        source: source.clone(),
        dir,
        server: ServerSpec::default(),
        client_ip: ClientIpSpec::default(),
        paths: PathsSpec::default(),
        geoip: None,
        auth: None,
        log: LogSpec::default(),
        lists: Vec::new(),
        routes: Vec::new(),
        rules: Vec::new(),
        tests: Vec::new(),
    };
    for (key, value) in doc {
        let name = key.get_ref().as_ref();
        match name {
            "server" => {
                book.server = deserialize_all(value, "[server]", &source, diags).unwrap_or_default()
            }
            "client_ip" => {
                book.client_ip =
                    deserialize_all(value, "[client_ip]", &source, diags).unwrap_or_default()
            }
            "paths" => {
                book.paths = deserialize_all(value, "[paths]", &source, diags).unwrap_or_default()
            }
            "geoip" => book.geoip = deserialize_all(value, "[geoip]", &source, diags),
            "auth" => book.auth = deserialize_all(value, "[auth]", &source, diags),
            "log" => book.log = deserialize_all(value, "[log]", &source, diags).unwrap_or_default(),
            "lists" => book.lists = read_lists(value, &book.dir, &source, diags),
            "route" => {
                book.routes = each_table(value, "route", &source, diags, |i, _| {
                    format!("route #{}", i + 1)
                })
            }
            "rule" => {
                book.rules = each_table(value, "rule", &source, diags, |i, t| label("rule", i, t))
            }
            "test" => {
                book.tests = each_table(value, "test", &source, diags, |i, t| label("test", i, t));
                for test in &mut book.tests {
                    let whole = test.get_ref().expect.span();
                    if let Some(decision) = &mut test.get_mut().expect.get_mut().decision
                        && decision.span().is_empty()
                    {
                        *decision = Spanned::new(whole, *decision.get_ref());
                    }
                }
            }
            other => {
                const TOP: [&str; 10] = [
                    "server",
                    "client_ip",
                    "paths",
                    "geoip",
                    "auth",
                    "log",
                    "lists",
                    "route",
                    "rule",
                    "test",
                ];
                let hint = match closest(other, &TOP) {
                    Some(t) => format!("; did you mean \"{t}\"?"),
                    None => format!("; expected one of: {}", TOP.join(", ")),
                };
                diags.error(
                    source.locate(&key.span()),
                    format!("unknown table \"{other}\"{hint}"),
                );
            }
        }
    }

    Some(book)
}

/// `rule "name"`, or `rule #n` when the name cannot be read.
fn label(kind: &str, index: usize, table: &DeValue<'_>) -> String {
    match table.get("name").and_then(|n| n.get_ref().as_str()) {
        Some(name) => format!("{kind} \"{name}\""),
        None => format!("{kind} #{}", index + 1),
    }
}

/// Deserializes each table of an array of tables on its own.
fn each_table<'i, T: serde::Deserialize<'i>>(
    value: Spanned<DeValue<'i>>,
    kind: &str,
    source: &SourceFile,
    diags: &mut Diagnostics,
    label: impl Fn(usize, &DeValue<'i>) -> String,
) -> Vec<Spanned<T>> {
    let span = value.span();
    let DeValue::Array(array) = value.into_inner() else {
        diags.error(
            source.locate(&span),
            format!("\"{kind}\" must be an array of tables, written [[{kind}]]"),
        );
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, item) in array.into_iter().enumerate() {
        let context = label(i, item.get_ref());
        if !item.get_ref().is_table() {
            diags.error(
                source.locate(&item.span()),
                format!("{context}: expected a table"),
            );
            continue;
        }
        let span = item.span();
        if let Some(t) = deserialize_all::<T>(item, &context, source, diags) {
            out.push(Spanned::new(span, t));
        }
    }
    out
}

/// `[lists]`: each entry inline or a file, files read and parsed here.
fn read_lists(
    value: Spanned<DeValue<'_>>,
    dir: &Path,
    source: &SourceFile,
    diags: &mut Diagnostics,
) -> Vec<List> {
    let span = value.span();
    let DeValue::Table(table) = value.into_inner() else {
        diags.error(source.locate(&span), "[lists] must be a table");
        return Vec::new();
    };
    let mut lists = Vec::new();
    for (name, value) in table {
        let name = Spanned::new(name.span(), name.get_ref().to_string());
        let context = format!("list \"{}\"", name.get_ref());
        if !is_list_name(name.get_ref()) {
            diags.error(
                source.locate(&name.span()),
                format!(
                    "invalid list name \"{}\": use letters, digits, '-' and '_'",
                    name.get_ref()
                ),
            );
        }
        let Some(spec) = deserialize_all::<ListSpec>(value, &context, source, diags) else {
            continue;
        };
        let entries = match spec {
            ListSpec::Inline(entries) => ListEntries::Inline(entries),
            ListSpec::File(ListFileSpec { file }) => {
                let path: Arc<Path> = Arc::from(resolve(dir, file.get_ref()));
                let nets = read_list_file(&path, &file, source, diags);
                ListEntries::File {
                    spec: file,
                    path,
                    nets,
                }
            }
        };
        lists.push(List { name, entries });
    }
    lists
}

/// Whether `name` can be a list name (`@name`).
pub fn is_list_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Reads a CIDR list file: one IP or CIDR a line, `#` starts a comment, blank
/// lines are skipped. Bad lines are reported at `FILE:LINE:COLUMN`.
fn read_list_file(
    path: &Arc<Path>,
    spec: &Spanned<String>,
    source: &SourceFile,
    diags: &mut Diagnostics,
) -> Vec<(ipnet::IpNet, u32)> {
    let text = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) => {
            let message = format!("cannot read list file \"{}\": {e}", path.display());
            diags.error_with(source.locate(&spec.span()), message, e);
            return Vec::new();
        }
    };
    let mut nets = Vec::new();
    let mut bad = 0usize;
    for (i, line) in text.split(|&b| b == b'\n').enumerate() {
        let line_no = u32::try_from(i + 1).unwrap_or(u32::MAX);
        let content = match line.iter().position(|&b| b == b'#') {
            Some(hash) => &line[..hash],
            None => line,
        };
        let start = content
            .iter()
            .position(|b| !b.is_ascii_whitespace())
            .unwrap_or(content.len());
        let entry = content[start..].trim_ascii_end();
        if entry.is_empty() {
            continue;
        }
        let parsed = std::str::from_utf8(entry)
            .ok()
            .and_then(|s| parse_net(s).ok());
        match parsed {
            Some(net) => nets.push((net, line_no)),
            None => {
                bad += 1;
                if bad <= MAX_ERRORS_PER_LIST_FILE {
                    let shown = String::from_utf8_lossy(entry);
                    let column = String::from_utf8_lossy(&line[..start]).chars().count() + 1;
                    let location = Location::new(
                        Arc::clone(path),
                        line_no,
                        u32::try_from(column).unwrap_or(u32::MAX),
                    );
                    diags.error(location, format!("invalid IP address or CIDR \"{shown}\""));
                }
            }
        }
    }
    if bad > MAX_ERRORS_PER_LIST_FILE {
        let message = format!(
            "{} more invalid entries in list file \"{}\" not shown",
            bad - MAX_ERRORS_PER_LIST_FILE,
            path.display()
        );
        diags.error(source.locate(&spec.span()), message);
    }
    nets
}
