//! Where a problem is, and how problems are collected: the source texts of the
//! rulebook and the files it names, byte offsets turned into `PATH:LINE:COLUMN`,
//! and the [`Diagnostics`] that gather every error and warning of a load.
//!
//! Nothing here knows the rulebook's schema.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A text file that problems can point into: its path as shown to the user and
/// the offsets where its lines start.
#[derive(Debug, Clone)]
pub struct SourceFile {
    path: Arc<Path>,
    text: Arc<str>,
    line_starts: Arc<[usize]>,
}

impl SourceFile {
    /// Wraps a file's text; `path` is how messages name it.
    pub fn new(path: impl Into<PathBuf>, text: impl Into<Arc<str>>) -> SourceFile {
        let text: Arc<str> = text.into();
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        SourceFile {
            path: Arc::from(path.into()),
            text,
            line_starts,
        }
    }

    /// The path as messages show it.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The whole text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The 1-based line and column (in characters) of a byte offset; an offset
    /// past the end points just after the last character.
    pub fn line_column(&self, offset: usize) -> (u32, u32) {
        let offset = offset.min(self.text.len());
        let line = self.line_starts.partition_point(|&start| start <= offset) - 1;
        let start = self.line_starts[line];
        let column = self
            .text
            .get(start..offset)
            .map_or(offset - start, |prefix| prefix.chars().count());
        (to_u32(line + 1), to_u32(column + 1))
    }

    /// The location of the start of a span.
    pub fn locate(&self, span: &Range<usize>) -> Location {
        let (line, column) = self.line_column(span.start);
        Location {
            path: Arc::clone(&self.path),
            line,
            column,
        }
    }
}

fn to_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// A place in a file: `PATH:LINE:COLUMN`, 1-based.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The file as messages show it.
    pub path: Arc<Path>,
    /// 1-based line.
    pub line: u32,
    /// 1-based column, in characters.
    pub column: u32,
}

impl Location {
    /// A location at a given line and column of a file.
    pub fn new(path: Arc<Path>, line: u32, column: u32) -> Location {
        Location { path, line, column }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.path.display(), self.line, self.column)
    }
}

/// One problem found in a rulebook or a file it names.
#[derive(Debug, thiserror::Error)]
#[error("{location}: {message}")]
pub struct ConfigError {
    /// Where it is.
    pub location: Location,
    /// What is wrong: lowercase, no trailing period, naming the value.
    pub message: String,
    /// The underlying error, when there is one (a toml, regex or I/O error).
    #[source]
    pub source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

/// Every error and warning of one load, in the order found.
#[derive(Debug, Default)]
pub struct Diagnostics {
    /// Problems that keep the rulebook from loading.
    pub errors: Vec<ConfigError>,
    /// Problems that do not (lints, test databases); `check --strict` counts them.
    pub warnings: Vec<ConfigError>,
}

impl Diagnostics {
    /// Records an error.
    pub fn error(&mut self, location: Location, message: impl Into<String>) {
        self.errors.push(ConfigError {
            location,
            message: message.into(),
            source: None,
        });
    }

    /// Records an error caused by another error.
    pub fn error_with(
        &mut self,
        location: Location,
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) {
        self.errors.push(ConfigError {
            location,
            message: message.into(),
            source: Some(Box::new(source)),
        });
    }

    /// Records a warning.
    pub fn warning(&mut self, location: Location, message: impl Into<String>) {
        self.warnings.push(ConfigError {
            location,
            message: message.into(),
            source: None,
        });
    }

    /// Orders errors and warnings by file, line and column (stable: problems
    /// at one place keep the order they were found in).
    pub fn sort(&mut self) {
        for list in [&mut self.errors, &mut self.warnings] {
            list.sort_by(|a, b| {
                let (a, b) = (&a.location, &b.location);
                (&a.path, a.line, a.column).cmp(&(&b.path, b.line, b.column))
            });
        }
    }

    /// Whether any error was recorded.
    pub fn has_errors(&self) -> bool {
        !self.errors.is_empty()
    }
}

/// The errors that kept a rulebook from loading, printed one per line.
#[derive(Debug, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_column_counts_from_one_in_characters() {
        let file = SourceFile::new("r.toml", "ab\nçd = 1\n\nx");
        assert_eq!(file.line_column(0), (1, 1));
        assert_eq!(file.line_column(1), (1, 2));
        assert_eq!(file.line_column(3), (2, 1));
        // 'ç' is two bytes but one column
        assert_eq!(file.line_column(5), (2, 2));
        assert_eq!(file.line_column(12), (4, 1));
        assert_eq!(file.line_column(999), (4, 2));
    }

    #[test]
    fn location_prints_path_line_column() {
        let file = SourceFile::new("config/r.toml", "a\nb");
        assert_eq!(file.locate(&(2..3)).to_string(), "config/r.toml:2:1");
    }
}
