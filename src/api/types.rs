//! Newtypes for values that are easy to mix up.

use std::cmp::Ordering;
use std::fmt;

/// A release version: SemVer 2.0, ordered by SemVer precedence (build metadata ignored).
#[derive(Clone, Debug)]
pub struct Version(semver::Version);

impl Version {
    /// Parses SemVer 2.0; a leading `v` is refused so that versions and tags stay distinct.
    pub fn parse(s: &str) -> Result<Self, semver::Error> {
        semver::Version::parse(s).map(Self)
    }

    /// The underlying SemVer value.
    pub fn as_semver(&self) -> &semver::Version {
        &self.0
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Version {}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.cmp_precedence(&other.0)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precedence_ignores_build_metadata() {
        assert_eq!(Version::parse("1.2.3+a").unwrap(), Version::parse("1.2.3+b").unwrap());
        assert!(Version::parse("1.2.3-rc.1").unwrap() < Version::parse("1.2.3").unwrap());
        assert!(Version::parse("1.10.0").unwrap() > Version::parse("1.9.9").unwrap());
    }

    #[test]
    fn refuses_non_semver() {
        for bad in ["v1.2.3", "1.2", "latest", "", "1.2.3.4", "01.2.3"] {
            assert!(Version::parse(bad).is_err(), "{bad} should be refused");
        }
    }
}
