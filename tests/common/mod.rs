//! Helpers shared by the integration tests.

#![allow(dead_code)]

pub mod admin;
pub mod gateway;
pub mod process;
pub mod scripted;
pub mod stub;

use std::path::{Path, PathBuf};

use edgeguard::policy::{self, Loaded};

/// A folder holding a rulebook and the files it names, removed on drop.
pub struct Folder {
    pub dir: tempfile::TempDir,
}

impl Folder {
    /// A new folder with these files (`path`, `contents`).
    pub fn with(files: &[(&str, &str)]) -> Folder {
        let dir = tempfile::tempdir().expect("temp dir");
        for (path, contents) in files {
            let full = dir.path().join(path);
            if let Some(parent) = full.parent() {
                std::fs::create_dir_all(parent).expect("create folders");
            }
            std::fs::write(full, contents).expect("write file");
        }
        Folder { dir }
    }

    /// The path of a file in the folder.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Loads `r.toml` from the folder.
    pub fn load(&self) -> Result<Loaded, Vec<String>> {
        policy::load(&self.path("r.toml")).map_err(|errors| {
            errors
                .0
                .iter()
                .map(|e| self.relative(&e.to_string()))
                .collect()
        })
    }

    /// Loads `r.toml` and returns its errors, paths relative to the folder.
    pub fn errors(&self) -> Vec<String> {
        match self.load() {
            Ok(_) => Vec::new(),
            Err(errors) => errors,
        }
    }

    /// Loads `r.toml`, which must load, and returns its warnings.
    pub fn warnings(&self) -> Vec<String> {
        match self.load() {
            Ok(loaded) => loaded
                .warnings
                .iter()
                .map(|w| self.relative(&w.to_string()))
                .collect(),
            Err(errors) => panic!("rulebook did not load:\n{}", errors.join("\n")),
        }
    }

    fn relative(&self, s: &str) -> String {
        s.replace(&format!("{}/", self.dir.path().display()), "")
    }
}

/// Errors of a rulebook given as text alone.
pub fn errors_of(rulebook: &str) -> Vec<String> {
    Folder::with(&[("r.toml", rulebook)]).errors()
}

/// The policy of a rulebook given as text alone, which must load.
pub fn policy_of(rulebook: &str) -> edgeguard::policy::Policy {
    match Folder::with(&[("r.toml", rulebook)]).load() {
        Ok(loaded) => loaded.policy,
        Err(errors) => panic!("rulebook did not load:\n{}", errors.join("\n")),
    }
}

/// The repository's root.
pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The built `edgeguard` binary.
pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_edgeguard")
}

/// The path a mainstream upstream resolves a request path to: it decodes
/// percent-escapes once, reads `\` as `/`, drops `;` parameters from each
/// segment, merges slashes and resolves dot segments.
pub fn mainstream_view(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz");
            if let Ok(b) = u8::from_str_radix(hex, 16) {
                decoded.push(b);
                i += 3;
                continue;
            }
        }
        decoded.push(bytes[i]);
        i += 1;
    }
    let text = String::from_utf8_lossy(&decoded).replace('\\', "/");
    let mut segments: Vec<&str> = Vec::new();
    for segment in text.split('/') {
        let segment = segment.split(';').next().unwrap_or("");
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    format!("/{}", segments.join("/"))
}

/// Whether a mainstream upstream would serve `path` from under `prefix`.
pub fn reaches(path: &str, prefix: &str) -> bool {
    let view = mainstream_view(path.split('?').next().unwrap_or(""));
    view == prefix || view.starts_with(&format!("{prefix}/"))
}
