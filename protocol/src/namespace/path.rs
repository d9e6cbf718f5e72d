//! Paths in a namespace: `/`-separated names from the root.

use std::fmt;

use super::directory::check_name;
use super::NamespaceError;

/// Longest path text accepted.
pub const MAX_PATH_LEN: usize = 64 * 1024;

/// An absolute, normalized path: the names from the root down.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NsPath(Vec<String>);

impl NsPath {
    /// The root.
    pub fn root() -> Self {
        Self(Vec::new())
    }

    /// Parses `/a/b/c`: it must start with `/`; empty components and `.`
    /// are dropped, `..` goes up (never above the root), every other
    /// component must be a valid name.
    pub fn parse(text: &str) -> Result<Self, NamespaceError> {
        let bad = |reason| NamespaceError::Path {
            path: text.chars().take(300).collect(),
            reason,
        };
        if text.len() > MAX_PATH_LEN {
            return Err(bad("longer than 64 KiB"));
        }
        if !text.starts_with('/') {
            return Err(bad("a namespace path starts with '/'"));
        }
        let mut names = Vec::new();
        for part in text.split('/') {
            match part {
                "" | "." => {}
                ".." => {
                    names.pop();
                }
                name => {
                    check_name(name)?;
                    names.push(name.to_string());
                }
            }
        }
        Ok(Self(names))
    }

    pub fn names(&self) -> &[String] {
        &self.0
    }

    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// The last name, `None` for the root.
    pub fn name(&self) -> Option<&str> {
        self.0.last().map(String::as_str)
    }

    /// The parent, `None` for the root.
    pub fn parent(&self) -> Option<Self> {
        let (_, head) = self.0.split_last()?;
        Some(Self(head.to_vec()))
    }

    /// This path with `name` appended.
    pub fn join(&self, name: &str) -> Result<Self, NamespaceError> {
        check_name(name)?;
        let mut names = self.0.clone();
        names.push(name.to_string());
        Ok(Self(names))
    }

    /// Whether `self` is `other` or below it.
    pub fn starts_with(&self, other: &Self) -> bool {
        self.0.starts_with(&other.0)
    }
}

impl fmt::Display for NsPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("/");
        }
        for name in &self.0 {
            write!(f, "/{name}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_normalize_and_refuse() {
        let p = NsPath::parse("//a/./b/../c/").unwrap();
        assert_eq!(p.names(), ["a", "c"]);
        assert_eq!(p.to_string(), "/a/c");
        assert_eq!(NsPath::parse("/").unwrap(), NsPath::root());
        assert_eq!(NsPath::parse("/..").unwrap(), NsPath::root());
        assert!(NsPath::parse("a/b").is_err());
        assert!(NsPath::parse("/a\0").is_err());
        assert!(NsPath::parse(&format!("/{}", "x".repeat(256))).is_err());
        assert_eq!(p.parent().unwrap().to_string(), "/a");
        assert_eq!(p.name(), Some("c"));
        assert!(p.starts_with(&NsPath::parse("/a").unwrap()));
        assert!(!NsPath::parse("/ab")
            .unwrap()
            .starts_with(&NsPath::parse("/a").unwrap()));
        assert_eq!(
            NsPath::parse("/名前")
                .unwrap()
                .join("x")
                .unwrap()
                .to_string(),
            "/名前/x"
        );
    }
}
