//! Reading a rulebook: TOML syntax, then each table deserialized on its own so
//! that one mistake does not hide the next.
//!
//! serde stops at the first error of a value; to report every problem, each
//! table is deserialized, and after an error the key it points at is removed and
//! the table deserialized again, until it succeeds or nothing can be removed.
//! A key removed this way is not reported again as missing.

use std::ops::Range;

use serde::Deserialize;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

use super::source::{Diagnostics, SourceFile};

/// One step of a path to a value: a key, or an index in an array.
#[derive(Debug, Clone)]
enum Step {
    Key(String),
    Index(usize),
}

/// Deserializes `value` as `T`, reporting every schema problem in it.
///
/// `context` names the value in messages (`[server]`, `rule "dotfiles"`).
/// Returns `None` when a required key is missing or wrong; otherwise the value
/// without the keys that were wrong (already reported).
pub(crate) fn deserialize_all<'i, T: Deserialize<'i>>(
    mut value: Spanned<DeValue<'i>>,
    context: &str,
    source: &SourceFile,
    diags: &mut Diagnostics,
) -> Option<T> {
    let mut removed: Vec<String> = Vec::new();
    let whole = value.span();
    loop {
        let error = match T::deserialize(ValueDeserializer::from(value.clone())) {
            Ok(t) => return Some(t),
            Err(error) => error,
        };
        let raw = error.message().to_owned();
        if let Some(field) = missing_field(&raw) {
            if !removed.iter().any(|r| r == field) {
                diags.error_with(
                    source.locate(&error.span().unwrap_or(whole.clone())),
                    format!("{context}: missing key \"{field}\""),
                    error,
                );
            }
            return None;
        }
        let span = error.span().unwrap_or(whole.clone());
        let path = find_path(value.get_ref(), &span);
        let message = describe(context, &path, &raw);
        diags.error_with(source.locate(&span), message, error);
        match remove_deepest_key(value.get_mut(), &path) {
            Some(key) => removed.push(key),
            None => return None,
        }
    }
}

/// The name in serde's "missing field `x`" message.
fn missing_field(message: &str) -> Option<&str> {
    message.strip_prefix("missing field `")?.strip_suffix('`')
}

/// Turns serde's message into ours: lowercase, naming the key and where it is.
fn describe(context: &str, path: &[Step], raw: &str) -> String {
    let keys: Vec<&str> = path
        .iter()
        .filter_map(|s| match s {
            Step::Key(k) => Some(k.as_str()),
            Step::Index(_) => None,
        })
        .collect();
    let (parents, last) = keys.split_at(keys.len().saturating_sub(1));
    // `[server]` + ["limits"] → `[server.limits]`; `rule "a"` + ["hotlink"] → `rule "a" hotlink`.
    let scope = match (context.strip_suffix(']'), parents) {
        (_, []) => context.to_owned(),
        (Some(section), _) => format!("{section}.{}]", parents.join(".")),
        (None, _) => format!("{context} {}", parents.join(".")),
    };
    if let Some(rest) = raw.strip_prefix("unknown field `") {
        let (name, expected) = rest.split_once('`').unwrap_or((rest, ""));
        let candidates = backticked(expected);
        let hint = match closest(name, &candidates) {
            Some(best) => format!("; did you mean \"{best}\"?"),
            None if candidates.is_empty() => String::new(),
            None => format!("; expected one of: {}", candidates.join(", ")),
        };
        return format!("unknown key \"{name}\" in {scope}{hint}");
    }
    let detail = raw
        .replace("unknown variant", "unknown value")
        .replace('`', "\"");
    match last {
        [key] => format!("{scope}: {key}: {detail}"),
        _ => format!("{scope}: {detail}"),
    }
}

/// The names in serde's "expected one of `a`, `b`" tails.
fn backticked(s: &str) -> Vec<&str> {
    s.split('`').skip(1).step_by(2).collect()
}

/// The candidate within a small edit distance of `name`, if one is clearly closest.
pub(crate) fn closest<'a>(name: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let limit = (name.len() / 3).max(1);
    let near = candidates
        .iter()
        .map(|c| (edit_distance(name, c), *c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c);
    // A truncated name (`max_header` for `max_header_bytes`) is a typo too.
    near.or_else(|| {
        let mut prefixed = candidates
            .iter()
            .filter(|c| name.len() >= 4 && (c.starts_with(name) || name.starts_with(**c)));
        match (prefixed.next(), prefixed.next()) {
            (Some(only), None) => Some(*only),
            _ => None,
        }
    })
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = if ca == *cb {
                prev
            } else {
                1 + prev.min(cur).min(row[j])
            };
            prev = cur;
        }
    }
    row[b.len()]
}

fn contains(outer: &Range<usize>, inner: &Range<usize>) -> bool {
    outer.start <= inner.start && inner.end <= outer.end && outer.start < outer.end
}

/// The deepest key or element whose key or value span holds `span`.
///
/// Tables given as `[a.b]` headers have the header as their span, so every
/// child is searched, not only those whose span contains the target.
fn find_path(value: &DeValue<'_>, span: &Range<usize>) -> Vec<Step> {
    let mut path = Vec::new();
    find_path_into(value, span, &mut path);
    path
}

fn find_path_into(value: &DeValue<'_>, span: &Range<usize>, path: &mut Vec<Step>) -> bool {
    match value {
        DeValue::Table(table) => {
            for (key, child) in table.iter() {
                path.push(Step::Key(key.get_ref().to_string()));
                if find_path_into(child.get_ref(), span, path)
                    || contains(&key.span(), span)
                    || contains(&child.span(), span)
                {
                    return true;
                }
                path.pop();
            }
            false
        }
        DeValue::Array(array) => {
            for (i, child) in array.iter().enumerate() {
                path.push(Step::Index(i));
                if find_path_into(child.get_ref(), span, path) || contains(&child.span(), span) {
                    return true;
                }
                path.pop();
            }
            false
        }
        _ => false,
    }
}

/// Removes the deepest key on `path` (a key, never an array element, so that a
/// list with a bad entry is dropped whole rather than silently shortened).
/// Returns the removed key when it was a direct key of `value`.
fn remove_deepest_key(value: &mut DeValue<'_>, path: &[Step]) -> Option<String> {
    let last_key = path.iter().rposition(|s| matches!(s, Step::Key(_)))?;
    let mut cursor = value;
    for step in &path[..last_key] {
        cursor = match (cursor, step) {
            (DeValue::Table(t), Step::Key(k)) => t.get_mut(k.as_str())?.get_mut(),
            (DeValue::Array(a), Step::Index(i)) => a.get_mut(*i)?.get_mut(),
            _ => return None,
        };
    }
    let Step::Key(key) = &path[last_key] else {
        return None;
    };
    match cursor {
        DeValue::Table(t) => t.remove(key.as_str()).map(|_| key.clone()),
        _ => None,
    }
}

/// Parses the TOML text; syntax errors are reported and end the load.
pub(crate) fn parse_document<'i>(
    source: &'i SourceFile,
    diags: &mut Diagnostics,
) -> Option<DeTable<'i>> {
    let (doc, errors) = DeTable::parse_recoverable(source.text());
    if errors.is_empty() {
        return Some(doc.into_inner());
    }
    for error in errors {
        let span = error.span().unwrap_or(0..0);
        let message = format!("invalid TOML: {}", error.message());
        diags.error_with(source.locate(&span), message, error);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_counts_single_edits() {
        assert_eq!(edit_distance("pth_regex", "path_regex"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("same", "same"), 0);
    }

    #[test]
    fn closest_suggests_only_near_names() {
        let candidates = ["path_regex", "path_prefix", "query_regex"];
        assert_eq!(closest("pathregex", &candidates), Some("path_regex"));
        assert_eq!(closest("colour", &candidates), None);
    }
}
