//! Newtypes for values that are easy to mix up.

use std::cmp::Ordering;
use std::fmt;

use serde::{Deserialize, Serialize};

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

/// A content digest in its one accepted form, `sha256:<64 lowercase hex>`.
///
/// Artifacts are named and verified by it; anything else (other algorithms, upper case) is
/// refused so that two spellings can never name the same content.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Digest(String);

impl Digest {
    /// The only algorithm prefix accepted.
    const PREFIX: &'static str = "sha256:";

    /// Parses `sha256:<64 lowercase hex>`; any other form is refused with the reason.
    pub fn parse(s: &str) -> Result<Self, String> {
        let Some(hex) = s.strip_prefix(Self::PREFIX) else {
            return Err(format!("`{s}` is not a digest: it must start with `sha256:`"));
        };
        if hex.len() != 64 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(format!("`{s}` is not a digest: `sha256:` must be followed by 64 lowercase hex digits"));
        }
        Ok(Self(s.to_owned()))
    }

    /// The digest of a finished SHA-256 hash.
    pub fn from_sha256(hash: &[u8; 32]) -> Self {
        let mut s = String::with_capacity(Self::PREFIX.len() + 64);
        s.push_str(Self::PREFIX);
        const HEX: &[u8; 16] = b"0123456789abcdef";
        for byte in hash {
            s.push(char::from(HEX[usize::from(byte >> 4)]));
            s.push(char::from(HEX[usize::from(byte & 0xf)]));
        }
        Self(s)
    }

    /// The SHA-256 digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        use sha2::Digest as _;
        Self::from_sha256(&sha2::Sha256::digest(bytes).into())
    }

    /// The full string form, `sha256:<hex>`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The 64 hex digits without the algorithm prefix (used for file names).
    pub fn hex(&self) -> &str {
        &self.0[Self::PREFIX.len()..]
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for Digest {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for Digest {
    type Error = String;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<Digest> for String {
    fn from(d: Digest) -> Self {
        d.0
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

    #[test]
    fn digest_accepts_only_sha256_lowercase_hex() {
        let good = format!("sha256:{}", "0123456789abcdef".repeat(4));
        let d = Digest::parse(&good).unwrap();
        assert_eq!(d.as_str(), good);
        assert_eq!(d.hex(), "0123456789abcdef".repeat(4));
        assert_eq!(d.to_string(), good);
        let bad = [
            String::new(),
            "sha256:".to_owned(),
            "0123456789abcdef".repeat(4),
            format!("sha256:{}", "0123456789ABCDEF".repeat(4)),
            format!("sha512:{}", "0123456789abcdef".repeat(4)),
            format!("sha256:{}", "0123456789abcdef".repeat(4) + "0"),
            format!("sha256:{}", &"0123456789abcdef".repeat(4)[1..]),
            format!("sha256:{}g", &"0123456789abcdef".repeat(4)[1..]),
            format!(" sha256:{}", "0123456789abcdef".repeat(4)),
        ];
        for s in bad {
            assert!(Digest::parse(&s).is_err(), "{s:?} should be refused");
        }
    }

    #[test]
    fn digest_of_bytes_is_sha256() {
        // Known answer: sha256 of the empty string and of "abc".
        let cases = [
            (&b""[..], "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
            (b"abc", "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
        ];
        for (bytes, want) in cases {
            assert_eq!(Digest::of(bytes).as_str(), want);
            assert_eq!(Digest::parse(want).unwrap(), Digest::of(bytes));
        }
    }

    #[test]
    fn digest_serde_round_trips_and_refuses_bad_forms() {
        let d = Digest::of(b"abc");
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(json, format!("\"{d}\""));
        assert_eq!(serde_json::from_str::<Digest>(&json).unwrap(), d);
        assert!(serde_json::from_str::<Digest>("\"md5:abc\"").is_err());
    }
}
