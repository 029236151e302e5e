//! The rulebook loader on arbitrary text: `config::parse` then `Policy::compile`, in
//! an empty folder so that no file the text names exists. Never panics, and every
//! error and warning points at a line and column (both from 1) inside the text.

#![no_main]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use edgeguard::config::{self, ConfigError, Diagnostics, SourceFile};
use edgeguard::policy::Policy;
use libfuzzer_sys::fuzz_target;

/// An empty folder that relative paths in the rulebook resolve against.
fn empty_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join("edgeguard-fuzz-empty");
        std::fs::create_dir_all(&dir).expect("create an empty folder");
        dir
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if names_a_special_file(text) {
        return;
    }
    let dir = empty_dir();
    let path = dir.join("r.toml");
    let source = SourceFile::new(&path, text);
    let mut diags = Diagnostics::default();
    if let Some(book) = config::parse(source, dir.to_path_buf(), &mut diags) {
        let _ = Policy::compile(&book, &mut diags);
    }
    // Lines as `SourceFile` counts them: split at `\n`, one more after a final one.
    let lines: Vec<&str> = text.split('\n').collect();
    for error in diags.errors.iter().chain(&diags.warnings) {
        check_location(error, &path, &lines);
    }
    diags.sort();
    let _ = config::ConfigErrors(diags.errors).to_string();
});

fn check_location(error: &ConfigError, path: &Path, lines: &[&str]) {
    let loc = &error.location;
    let shown = error.to_string();
    assert!(loc.line >= 1 && loc.column >= 1, "{shown}: not from 1");
    assert!(!error.message.is_empty(), "{shown}: no message");
    if *loc.path != *path {
        // A file the rulebook names by an absolute path that happens to exist.
        return;
    }
    let line = usize::try_from(loc.line).expect("u32 fits usize");
    assert!(
        line <= lines.len(),
        "{shown}: line {line} past the end ({} lines)",
        lines.len()
    );
    let chars = lines[line - 1].chars().count();
    let column = usize::try_from(loc.column).expect("u32 fits usize");
    assert!(
        column <= chars + 1,
        "{shown}: column {column} past the end of line {line} ({chars} characters)"
    );
}

/// Whether any string or key of the text names a device or pseudo file, which
/// reading could block on or never finish (`/dev/zero`, `/proc/self/fd/0`): those
/// inputs are skipped, they test the machine rather than the loader. Text that is not
/// TOML is never read past its syntax error, so it is kept.
fn names_a_special_file(text: &str) -> bool {
    fn visit(value: &toml::Value) -> bool {
        match value {
            toml::Value::String(s) => is_special(s),
            toml::Value::Array(items) => items.iter().any(visit),
            toml::Value::Table(table) => table.iter().any(|(k, v)| is_special(k) || visit(v)),
            _ => false,
        }
    }
    fn is_special(s: &str) -> bool {
        ["dev", "proc", "sys", "fd", "run"]
            .iter()
            .any(|word| s.contains(word))
    }
    match text.parse::<toml::Table>() {
        Ok(table) => table.iter().any(|(k, v)| is_special(k) || visit(v)),
        Err(_) => false,
    }
}
