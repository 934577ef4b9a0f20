//! Git credentials from a Secret: basic auth or a token over HTTPS, a private key over SSH.
//!
//! Values never leave this type in text form: `Debug` is redacted and errors name keys only.

use std::collections::BTreeMap;

use base64::Engine as _;
use git2::cert::Cert;
use git2::{CertificateCheckStatus, Cred, CredentialType};

/// Credentials read from the Secret named by `spec.source.git.secretRef`.
///
/// Keys (the same as Flux's): `username` + `password` (HTTPS basic auth; a `password` alone or a
/// `token` is sent with username `git`), `bearerToken` (HTTPS `Authorization: Bearer`), and
/// `identity` (PEM private key) + `known_hosts` (required with `identity`), optional `password`
/// as the key's passphrase.
#[derive(Clone, Default)]
pub struct Credentials {
    secret: String,
    username: Option<String>,
    password: Option<String>,
    bearer_token: Option<String>,
    identity: Option<String>,
    known_hosts: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("secret", &self.secret)
            .field("username", &self.username.as_ref().map(|_| "<redacted>"))
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("bearer_token", &self.bearer_token.as_ref().map(|_| "<redacted>"))
            .field("identity", &self.identity.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl Credentials {
    /// Reads the Secret's `data`; `secret` is its name, used in messages.
    pub fn from_secret(secret: &str, data: &BTreeMap<String, Vec<u8>>) -> Result<Self, String> {
        let text = |key: &str| -> Result<Option<String>, String> {
            match data.get(key) {
                None => Ok(None),
                Some(bytes) => String::from_utf8(bytes.clone())
                    .map(|s| Some(s.trim_end_matches(['\r', '\n']).to_owned()))
                    .map_err(|_| format!("key `{key}` of Secret `{secret}` is not UTF-8 text")),
            }
        };
        let creds = Self {
            secret: secret.to_owned(),
            username: text("username")?,
            password: text("password")?.or(text("token")?),
            bearer_token: text("bearerToken")?,
            identity: text("identity")?,
            known_hosts: text("known_hosts")?,
        };
        if creds.password.is_none() && creds.bearer_token.is_none() && creds.identity.is_none() {
            return Err(format!(
                "Secret `{secret}` has none of the keys password, token, bearerToken or identity; \
                 add username/password for HTTPS or identity/known_hosts for SSH"
            ));
        }
        if creds.identity.is_some() && creds.known_hosts.as_deref().is_none_or(|k| k.trim().is_empty()) {
            return Err(format!(
                "Secret `{secret}` has an SSH identity but no known_hosts; add the server's host key \
                 (ssh-keyscan HOST) so that Conveyor can tell it is talking to the right server"
            ));
        }
        Ok(creds)
    }

    /// The Secret's name, for messages.
    pub fn secret(&self) -> &str {
        &self.secret
    }

    /// Extra HTTP headers (a bearer token).
    pub(super) fn headers(&self) -> Vec<String> {
        self.bearer_token.iter().map(|t| format!("Authorization: Bearer {t}")).collect()
    }

    /// The credential libgit2 asks for, if these credentials can give it.
    pub(super) fn credential(&self, url_user: Option<&str>, allowed: CredentialType) -> Option<Cred> {
        if allowed.contains(CredentialType::USER_PASS_PLAINTEXT)
            && let Some(password) = &self.password
        {
            let user = self.username.as_deref().or(url_user).unwrap_or("git");
            return Cred::userpass_plaintext(user, password).ok();
        }
        if let Some(identity) = &self.identity {
            let user = url_user.or(self.username.as_deref()).unwrap_or("git");
            if allowed.contains(CredentialType::USERNAME) {
                return Cred::username(user).ok();
            }
            if allowed.contains(CredentialType::SSH_MEMORY) || allowed.contains(CredentialType::SSH_KEY) {
                return Cred::ssh_key_from_memory(user, None, identity, self.password.as_deref()).ok();
            }
        }
        None
    }

    /// Checks an SSH host key against `known_hosts`; other certificates go to libgit2's checks.
    pub(super) fn check_certificate(&self, cert: &Cert<'_>, host: &str) -> Result<CertificateCheckStatus, git2::Error> {
        let Some(hostkey) = cert.as_hostkey() else { return Ok(CertificateCheckStatus::CertificatePassthrough) };
        let (Some(key), Some(kind)) = (hostkey.hostkey(), hostkey.hostkey_type()) else {
            return Err(git2::Error::from_str("the SSH server sent no usable host key"));
        };
        let known = self.known_hosts.as_deref().unwrap_or_default();
        if known_hosts_accepts(known, host, kind.name(), key) {
            Ok(CertificateCheckStatus::CertificateOk)
        } else {
            Err(git2::Error::new(
                git2::ErrorCode::Certificate,
                git2::ErrorClass::Ssh,
                format!(
                    "the {} host key of {host} is not in known_hosts of Secret `{}`; add it (ssh-keyscan {host})",
                    kind.name(),
                    self.secret
                ),
            ))
        }
    }
}

/// Whether a known_hosts text lists `key` of type `kind` for `host`. Hashed host names
/// (`|1|…`) cannot be matched without HMAC; a hashed entry with the same key is accepted.
fn known_hosts_accepts(known_hosts: &str, host: &str, kind: &str, key: &[u8]) -> bool {
    known_hosts.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).any(|line| {
        let mut fields = line.split_whitespace();
        let (Some(hosts), Some(line_kind), Some(line_key)) = (fields.next(), fields.next(), fields.next()) else {
            return false;
        };
        let host_matches = hosts.starts_with("|1|")
            || hosts.split(',').any(|h| {
                h == host || h.strip_prefix('[').and_then(|h| h.split_once("]:")).is_some_and(|(h, _)| h == host)
            });
        host_matches
            && line_kind == kind
            && base64::engine::general_purpose::STANDARD.decode(line_key).is_ok_and(|k| k == key)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, Vec<u8>> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.as_bytes().to_vec())).collect()
    }

    #[test]
    fn secrets_are_read_or_refused_by_key_name() {
        // (case, data, error fragment)
        type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], Option<&'a str>);
        let cases: &[Case] = &[
            ("basic auth", &[("username", "deploy"), ("password", "s3cret\n")], None),
            ("token alone", &[("token", "ghp_x")], None),
            ("bearer", &[("bearerToken", "abc")], None),
            ("ssh", &[("identity", "-----BEGIN"), ("known_hosts", "git.example.com ssh-ed25519 AAAA")], None),
            ("nothing usable", &[("username", "deploy")], Some("none of the keys")),
            ("ssh without known_hosts", &[("identity", "-----BEGIN")], Some("no known_hosts")),
        ];
        for (case, pairs, error) in cases {
            let got = Credentials::from_secret("git-auth", &data(pairs));
            match (error, got) {
                (None, Ok(c)) => assert_eq!(c.secret(), "git-auth", "{case}"),
                (Some(fragment), Err(e)) => {
                    assert!(e.contains(fragment) && e.contains("git-auth"), "{case}: {e}");
                }
                (_, other) => panic!("{case}: unexpected {other:?}"),
            }
        }
    }

    #[test]
    fn debug_never_shows_values() {
        let c =
            Credentials::from_secret("git-auth", &data(&[("username", "deploy"), ("password", "hunter2")])).unwrap();
        let shown = format!("{c:?}");
        assert!(!shown.contains("hunter2") && !shown.contains("deploy"), "{shown}");
        assert!(shown.contains("git-auth"), "{shown}");
        assert_eq!(c.headers(), Vec::<String>::new());
    }

    #[test]
    fn password_wins_over_token_and_username_defaults_to_git() {
        let c = Credentials::from_secret("s", &data(&[("password", "p"), ("token", "t")])).unwrap();
        assert_eq!(c.password.as_deref(), Some("p"));
        assert!(c.credential(None, CredentialType::USER_PASS_PLAINTEXT).is_some());
        assert!(c.credential(None, CredentialType::SSH_KEY).is_none());
    }

    #[test]
    fn known_hosts_matching() {
        let key = b"\x00\x00\x00\x0bssh-ed25519key";
        let b64 = base64::engine::general_purpose::STANDARD.encode(key);
        let text = format!(
            "# comment\nother.example.com ssh-ed25519 {b64}\n[git.example.com]:2222,10.0.0.1 ssh-ed25519 {b64}\n"
        );
        assert!(known_hosts_accepts(&text, "git.example.com", "ssh-ed25519", key));
        assert!(known_hosts_accepts(&text, "10.0.0.1", "ssh-ed25519", key));
        assert!(!known_hosts_accepts(&text, "evil.example.com", "ssh-ed25519", key));
        assert!(!known_hosts_accepts(&text, "git.example.com", "ssh-rsa", key));
        assert!(!known_hosts_accepts(&text, "git.example.com", "ssh-ed25519", b"other"));
        let hashed = format!("|1|c2FsdA==|aGFzaA== ssh-ed25519 {b64}\n");
        assert!(known_hosts_accepts(&hashed, "anything", "ssh-ed25519", key));
    }
}
