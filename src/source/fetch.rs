//! Mirror cache and fetch: one bare repository per URL, so a second release of the same
//! repository downloads only what is new; one fetch per URL at a time.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

use git2::{AutotagOption, ErrorClass, ErrorCode, FetchOptions, Oid, RemoteCallbacks, Repository};
use sha2::{Digest as _, Sha256};

use super::{Credentials, Error, Reference, Result};

/// Bare mirrors of remote repositories under one directory.
pub struct Mirrors {
    root: PathBuf,
    /// One lock per URL: two releases of the same repository must not fetch into one mirror at once.
    locks: Mutex<HashMap<String, Arc<Mutex<()>>>>,
}

impl Mirrors {
    /// Mirrors kept under `root` (created on first use).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into(), locks: Mutex::default() }
    }

    /// Brings the mirror of `url` up to date (unless `reference` is a commit it already has) and
    /// resolves `reference` to a commit. Gives up when `timeout` has passed.
    pub fn fetch(
        &self,
        url: &str,
        credentials: Option<&Credentials>,
        reference: &Reference,
        timeout: Duration,
    ) -> Result<(Repository, Oid)> {
        let lock = {
            let mut locks = self.locks.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            locks.entry(url.to_owned()).or_default().clone()
        };
        let _guard = lock.lock().unwrap_or_else(std::sync::PoisonError::into_inner);

        let repo = self.open(url)?;
        if let Reference::Commit(id) = reference
            && let Ok(oid) = Oid::from_str(id)
            && repo.find_commit(oid).is_ok()
        {
            // A commit never changes: no need to ask the remote.
            return Ok((repo, oid));
        }
        fetch_into(&repo, url, credentials, timeout)?;
        let oid = resolve(&repo, url, reference)?;
        Ok((repo, oid))
    }

    /// Opens the mirror of `url`, creating it when missing; a damaged mirror is recreated.
    fn open(&self, url: &str) -> Result<Repository> {
        std::fs::create_dir_all(&self.root)?;
        let hash = Sha256::digest(url.as_bytes());
        let name: String = hash.iter().take(12).map(|b| format!("{b:02x}")).collect();
        let path = self.root.join(format!("{name}.git"));
        match Repository::open_bare(&path) {
            Ok(repo) => Ok(repo),
            Err(_) => {
                if path.exists() {
                    tracing::warn!(mirror = %path.display(), "git mirror unreadable; recreating it");
                    std::fs::remove_dir_all(&path)?;
                }
                let repo = Repository::init_bare(&path)?;
                // Written for people looking into the cache; the mirror is keyed by the URL's hash.
                std::fs::write(path.join("description"), format!("mirror of {url}\n"))?;
                Ok(repo)
            }
        }
    }
}

/// Applies the connect and I/O timeouts libgit2 uses for every remote, once per process (the
/// configuration, and so `git_timeout`, is fixed for the life of the process).
fn set_network_timeouts(timeout: Duration) {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
        // SAFETY: these write libgit2 globals; `Once` makes this the first git network call of
        // the process and no other thread touches these options.
        unsafe {
            let _ = git2::opts::set_server_connect_timeout_in_milliseconds(ms);
            let _ = git2::opts::set_server_timeout_in_milliseconds(ms);
        }
    });
}

/// Fetches every branch and tag of `url` into `repo`, within `timeout`.
fn fetch_into(repo: &Repository, url: &str, credentials: Option<&Credentials>, timeout: Duration) -> Result<()> {
    set_network_timeouts(timeout);
    let deadline = Instant::now() + timeout;
    let mut asked = 0u32;
    let mut callbacks = RemoteCallbacks::new();
    callbacks.credentials(|_url, url_user, allowed| {
        asked += 1;
        // libgit2 asks again after each refusal; a second request means the first was refused.
        match credentials {
            None => Err(auth_error("the remote asks for credentials; name a Secret in spec.source.git.secretRef")),
            Some(c) if asked > 2 => {
                Err(auth_error(&format!("the remote refused the credentials from Secret `{}`", c.secret())))
            }
            Some(c) => c.credential(url_user, allowed).ok_or_else(|| {
                auth_error(&format!("Secret `{}` has no credential of the kind the remote asks for", c.secret()))
            }),
        }
    });
    if let Some(c) = credentials {
        callbacks.certificate_check(|cert, host| c.check_certificate(cert, host));
    }
    // Returning false aborts the transfer: this is how the deadline stops a slow fetch.
    callbacks.transfer_progress(|_| Instant::now() < deadline);
    callbacks.sideband_progress(|_| Instant::now() < deadline);

    let headers = credentials.map(Credentials::headers).unwrap_or_default();
    let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
    let mut options = FetchOptions::new();
    options.remote_callbacks(callbacks).download_tags(AutotagOption::None).prune(git2::FetchPrune::On);
    options.custom_headers(&headers);

    let mut remote = repo.remote_anonymous(url)?;
    let refspecs = ["+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"];
    let started = Instant::now();
    let result = remote.fetch(&refspecs, Some(&mut options), None);
    let elapsed = started.elapsed();
    match result {
        Ok(()) => {
            let stats = remote.stats();
            tracing::debug!(
                %url,
                objects = stats.received_objects(),
                bytes = stats.received_bytes(),
                elapsed_ms = elapsed.as_millis() as u64,
                "fetched"
            );
            Ok(())
        }
        Err(e) if e.code() == ErrorCode::Auth || e.class() == ErrorClass::Ssh && e.code() == ErrorCode::Certificate => {
            Err(Error::AuthFailed { url: url.to_owned(), message: e.message().to_owned() })
        }
        Err(e) if Instant::now() >= deadline || e.code() == ErrorCode::User => Err(Error::Unreachable {
            url: url.to_owned(),
            message: format!("no answer within git_timeout ({})", humantime::format_duration(timeout)),
        }),
        Err(e) => Err(Error::Unreachable { url: url.to_owned(), message: e.message().to_owned() }),
    }
}

fn auth_error(message: &str) -> git2::Error {
    git2::Error::new(ErrorCode::Auth, ErrorClass::Http, message)
}

/// Resolves `reference` to a commit of `repo`; `location` names the repository in messages.
pub fn resolve(repo: &Repository, location: &str, reference: &Reference) -> Result<Oid> {
    let found = match reference {
        Reference::Tag(t) => peel(repo, &format!("refs/tags/{t}")),
        Reference::Branch(b) => peel(repo, &format!("refs/heads/{b}")),
        Reference::Commit(c) => Oid::from_str(c).ok().and_then(|oid| repo.find_commit(oid).ok()).map(|c| c.id()),
        Reference::Any(r) => peel(repo, &format!("refs/tags/{r}"))
            .or_else(|| peel(repo, &format!("refs/heads/{r}")))
            .or_else(|| peel(repo, &format!("refs/remotes/origin/{r}")))
            .or_else(|| repo.revparse_single(r).ok().and_then(|o| o.peel_to_commit().ok()).map(|c| c.id())),
    };
    found.ok_or_else(|| Error::RefNotFound {
        url: location.to_owned(),
        reference: reference.clone(),
        hint: existing_refs(repo, reference),
    })
}

fn peel(repo: &Repository, name: &str) -> Option<Oid> {
    repo.find_reference(name).ok()?.peel_to_commit().ok().map(|c| c.id())
}

/// `; tags there: a, b, c` to help spot a typo.
fn existing_refs(repo: &Repository, reference: &Reference) -> String {
    let (kind, glob) = match reference {
        Reference::Tag(_) => ("tags", "refs/tags/*"),
        Reference::Branch(_) => ("branches", "refs/heads/*"),
        Reference::Commit(_) | Reference::Any(_) => return String::new(),
    };
    let mut names: Vec<String> = repo
        .references_glob(glob)
        .map(|mut refs| refs.names().flatten().map(|n| n.rsplit('/').next().unwrap_or(n).to_owned()).collect())
        .unwrap_or_default();
    names.sort();
    let shown = names.len().min(10);
    match names.len() {
        0 => format!(" (it has no {kind})"),
        n if n > shown => format!("; {kind} there include: {} (and {} more)", names[..shown].join(", "), n - shown),
        _ => format!("; {kind} there: {}", names.join(", ")),
    }
}
