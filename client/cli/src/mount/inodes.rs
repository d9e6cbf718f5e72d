//! Inode numbers for namespace paths, kept for the mount's lifetime.

use std::collections::HashMap;

use cairn_protocol::namespace::NsPath;

/// The root's inode number (FUSE's).
pub const ROOT: u64 = 1;

/// Path ↔ inode number, both ways; a rename moves a whole subtree.
#[derive(Debug)]
pub struct Inodes {
    by_ino: HashMap<u64, NsPath>,
    by_path: HashMap<NsPath, u64>,
    next: u64,
}

impl Default for Inodes {
    fn default() -> Self {
        let mut t = Self {
            by_ino: HashMap::new(),
            by_path: HashMap::new(),
            next: ROOT + 1,
        };
        t.by_ino.insert(ROOT, NsPath::root());
        t.by_path.insert(NsPath::root(), ROOT);
        t
    }
}

impl Inodes {
    pub fn path(&self, ino: u64) -> Option<&NsPath> {
        self.by_ino.get(&ino)
    }

    /// The inode of `path` if it has one (assigns none).
    pub fn find(&self, path: &NsPath) -> Option<u64> {
        self.by_path.get(path).copied()
    }

    /// Every path with an inode, and its inode.
    pub fn all(&self) -> Vec<(u64, NsPath)> {
        self.by_ino.iter().map(|(i, p)| (*i, p.clone())).collect()
    }

    /// The inode of `path`, assigned on first sight.
    pub fn ino(&mut self, path: &NsPath) -> u64 {
        if let Some(i) = self.by_path.get(path) {
            return *i;
        }
        let i = self.next;
        self.next += 1;
        self.by_ino.insert(i, path.clone());
        self.by_path.insert(path.clone(), i);
        i
    }

    /// Forgets `path` and everything below it.
    pub fn remove(&mut self, path: &NsPath) {
        let gone: Vec<NsPath> = self
            .by_path
            .keys()
            .filter(|p| p.starts_with(path))
            .cloned()
            .collect();
        for p in gone {
            if let Some(i) = self.by_path.remove(&p) {
                self.by_ino.remove(&i);
            }
        }
    }

    /// `from` and everything below it now live under `to`; what was at
    /// `to` is forgotten.
    pub fn rename(&mut self, from: &NsPath, to: &NsPath) {
        self.remove(to);
        let moving: Vec<(NsPath, u64)> = self
            .by_path
            .iter()
            .filter(|(p, _)| p.starts_with(from))
            .map(|(p, i)| (p.clone(), *i))
            .collect();
        for (p, i) in moving {
            self.by_path.remove(&p);
            let mut moved = to.clone();
            for name in &p.names()[from.names().len()..] {
                // Names already in the tree are valid.
                if let Ok(next) = moved.join(name) {
                    moved = next;
                }
            }
            self.by_ino.insert(i, moved.clone());
            self.by_path.insert(moved, i);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rename_moves_the_subtree_and_keeps_numbers() {
        let p = |s: &str| NsPath::parse(s).unwrap();
        let mut t = Inodes::default();
        let a = t.ino(&p("/a"));
        let ab = t.ino(&p("/a/b"));
        let x = t.ino(&p("/x"));
        t.rename(&p("/a"), &p("/x"));
        assert_eq!(t.path(a), Some(&p("/x")));
        assert_eq!(t.path(ab), Some(&p("/x/b")));
        assert_eq!(t.path(x), None, "the replaced entry is forgotten");
        assert_eq!(t.ino(&p("/x/b")), ab);
        t.remove(&p("/x"));
        assert_eq!(t.path(ab), None);
        assert_eq!(t.path(ROOT), Some(&NsPath::root()));
    }
}
