//! Which folders a reload watches, and which of their events may change what
//! a load reads.

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};

use notify::event::{AccessKind, AccessMode, EventKind};
use notify::{RecommendedWatcher, RecursiveMode, Watcher as _};

/// The folders watched, and in each the names whose changes matter.
#[derive(Default)]
pub(super) struct Watch {
    pub(super) watcher: Option<RecommendedWatcher>,
    dirs: HashMap<PathBuf, HashSet<OsString>>,
}

impl Watch {
    /// Watches the folders of `files` (and stops watching folders no longer
    /// needed). A file's own name matters in its folder; for a symlink, so
    /// do the first name of its relative target (a ConfigMap's `..data`) and
    /// the file it resolves to.
    pub(super) fn update(&mut self, files: &[PathBuf]) {
        let Some(watcher) = self.watcher.as_mut() else {
            return;
        };
        let wanted = targets(files);
        for dir in self.dirs.keys() {
            if !wanted.contains_key(dir) {
                let _ = watcher.unwatch(dir);
            }
        }
        for dir in wanted.keys() {
            if !self.dirs.contains_key(dir)
                && let Err(e) = watcher.watch(dir, RecursiveMode::NonRecursive)
            {
                tracing::warn!(folder = %dir.display(), error = %e, "cannot watch a folder of the rulebook's files");
            }
        }
        self.dirs = wanted;
    }

    /// Whether an event may change what a load reads: a change, creation,
    /// removal or rename of a name that matters, or a lost event queue.
    /// Opening and reading (a load's own) are not changes.
    pub(super) fn is_relevant(&mut self, event: &notify::Event) -> bool {
        if event.need_rescan() {
            return true;
        }
        if let EventKind::Access(kind) = event.kind
            && kind != AccessKind::Close(AccessMode::Write)
        {
            return false;
        }
        let mut relevant = false;
        for path in &event.paths {
            if matches!(event.kind, EventKind::Remove(_)) && self.dirs.remove(path).is_some() {
                // A watched folder went away: watch it again at the next update.
                relevant = true;
            }
            let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
                continue;
            };
            relevant |= self.dirs.get(dir).is_some_and(|names| names.contains(name));
        }
        relevant
    }
}

fn targets(files: &[PathBuf]) -> HashMap<PathBuf, HashSet<OsString>> {
    let mut dirs: HashMap<PathBuf, HashSet<OsString>> = HashMap::new();
    let mut add = |path: &Path| {
        if let (Some(dir), Some(name)) = (path.parent(), path.file_name()) {
            dirs.entry(dir.to_path_buf())
                .or_default()
                .insert(name.to_owned());
        }
    };
    for file in files {
        let Ok(file) = std::path::absolute(file) else {
            continue;
        };
        add(&file);
        if let Ok(target) = std::fs::read_link(&file) {
            if let (true, Some(Component::Normal(first)), Some(dir)) = (
                target.is_relative(),
                target.components().next(),
                file.parent(),
            ) {
                add(&dir.join(first));
            }
            if let Ok(real) = std::fs::canonicalize(&file) {
                add(&real);
            }
        }
    }
    dirs
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{CreateKind, ModifyKind, RenameMode};

    fn event(kind: EventKind, paths: &[&Path]) -> notify::Event {
        let mut e = notify::Event::new(kind);
        e.paths = paths.iter().map(|p| p.to_path_buf()).collect();
        e
    }

    #[test]
    fn a_configmap_data_swap_and_renames_over_a_watched_name_are_relevant() {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path();
        std::fs::create_dir(root.join("..2024_01")).expect("mkdir");
        std::fs::write(root.join("..2024_01/r.toml"), "").expect("write");
        std::os::unix::fs::symlink("..2024_01", root.join("..data")).expect("symlink");
        std::os::unix::fs::symlink("..data/r.toml", root.join("r.toml")).expect("symlink");
        std::fs::create_dir(root.join("lists")).expect("mkdir");
        let files = [root.join("r.toml"), root.join("lists/block.txt")];
        let mut watch = Watch {
            watcher: None,
            dirs: targets(&files),
        };
        let rename_to = EventKind::Modify(ModifyKind::Name(RenameMode::To));
        let relevant = [
            event(rename_to, &[&root.join("..data")]),
            event(rename_to, &[&root.join("lists/block.txt")]),
            event(
                EventKind::Modify(ModifyKind::Name(RenameMode::Both)),
                &[
                    &root.join("lists/.block.txt.swp"),
                    &root.join("lists/block.txt"),
                ],
            ),
            event(
                EventKind::Access(AccessKind::Close(AccessMode::Write)),
                &[&root.join("r.toml")],
            ),
        ];
        for e in &relevant {
            assert!(watch.is_relevant(e), "{e:?}");
        }
        let irrelevant = [
            event(
                EventKind::Create(CreateKind::File),
                &[&root.join("other.toml")],
            ),
            event(rename_to, &[&root.join("..data_tmp")]),
            event(
                EventKind::Access(AccessKind::Open(AccessMode::Any)),
                &[&root.join("r.toml")],
            ),
            event(
                EventKind::Access(AccessKind::Close(AccessMode::Read)),
                &[&root.join("lists/block.txt")],
            ),
        ];
        for e in &irrelevant {
            assert!(!watch.is_relevant(e), "{e:?}");
        }
    }
}
