//! The content-addressed artifact store: `<root>/sha256/<hex>.tar.gz`, built in `<root>/tmp/`.
//!
//! An archive appears under its final name only by an atomic rename after it was written in
//! full and fsynced, so a crash leaves at most a stray file in `tmp/`, never a partial
//! artifact; and since the name is the digest, writing the same artifact twice is harmless.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;

use super::{Error, Result};
use crate::api::types::Digest;

/// Content-addressed store rooted at a directory.
#[derive(Clone, Debug)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    /// Opens the store at `root`, creating `root/sha256` and `root/tmp` when missing.
    pub fn open(root: impl Into<PathBuf>) -> io::Result<Self> {
        let store = Self { root: root.into() };
        fs::create_dir_all(store.objects_dir())?;
        fs::create_dir_all(store.tmp_dir())?;
        Ok(store)
    }

    /// Where the artifact with this digest lives (whether or not it is there).
    pub fn path(&self, digest: &Digest) -> PathBuf {
        self.objects_dir().join(format!("{}.tar.gz", digest.hex()))
    }

    /// Whether the artifact with this digest is in the store (its content is checked by [`Store::read`]).
    pub fn contains(&self, digest: &Digest) -> bool {
        self.path(digest).is_file()
    }

    /// Stores the archive that `write` writes (returning its digest and size): into a temp file
    /// inside the store, fsynced, then renamed to its digest name, so a crash never leaves a
    /// partial file under a final name. When `write` fails, or `expected` is given and the
    /// digest differs (`Error::DigestMismatch`), nothing is stored.
    pub fn put_with<E: From<Error>>(
        &self,
        expected: Option<&Digest>,
        write: impl FnOnce(&mut dyn Write) -> Result<(Digest, u64), E>,
    ) -> Result<(Digest, u64), E> {
        let temp = NamedTempFile::new_in(self.tmp_dir()).map_err(Error::from)?;
        let mut out = BufWriter::new(temp);
        // On any error below, dropping the temp file deletes it.
        let (digest, size) = write(&mut out)?;
        let temp = out.into_inner().map_err(|e| Error::from(e.into_error()))?;
        if let Some(expected) = expected
            && *expected != digest
        {
            return Err(Error::DigestMismatch { expected: expected.clone(), actual: digest }.into());
        }
        let persist = || -> Result<()> {
            temp.as_file().sync_all()?;
            temp.persist(self.path(&digest)).map_err(|e| e.error)?;
            // The rename is durable only once the directory holding the new name is synced.
            sync_dir(&self.objects_dir())?;
            Ok(())
        };
        persist()?;
        Ok((digest, size))
    }

    /// Reads an archive and verifies its digest (Error::DigestMismatch if the bytes on disk were altered).
    ///
    /// A missing artifact is `Error::Io` with kind `NotFound`; check [`Store::contains`] first.
    pub fn read(&self, digest: &Digest) -> Result<Vec<u8>> {
        let bytes = fs::read(self.path(digest))?;
        let actual = Digest::of(&bytes);
        if actual != *digest {
            return Err(Error::DigestMismatch { expected: digest.clone(), actual });
        }
        Ok(bytes)
    }

    fn objects_dir(&self) -> PathBuf {
        self.root.join("sha256")
    }

    fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> io::Result<()> {
    // Directories cannot be opened for syncing elsewhere; the rename is as durable as the OS makes it.
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::{ManifestFile, write_archive};
    use super::*;

    /// Stores the archive of `files`.
    fn put(store: &Store, files: &[ManifestFile], expected: Option<&Digest>) -> Result<(Digest, u64)> {
        store.put_with(expected, |out| write_archive(files, out).map_err(Error::from))
    }

    fn files() -> Vec<ManifestFile> {
        vec![
            ManifestFile { path: "app.yaml".into(), content: b"apiVersion: v1\nkind: ConfigMap\n".to_vec() },
            ManifestFile { path: "db/db.yaml".into(), content: b"kind: Secret\n".to_vec() },
        ]
    }

    fn entries(dir: &Path) -> Vec<PathBuf> {
        let mut paths: Vec<PathBuf> = fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
        paths.sort();
        paths
    }

    #[test]
    fn put_then_contains_and_read() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("store")).unwrap();
        let (digest, size) = put(&store, &files(), None).unwrap();

        let mut direct = Vec::new();
        assert_eq!(write_archive(&files(), &mut direct).unwrap(), (digest.clone(), size));
        assert!(store.contains(&digest));
        assert_eq!(store.path(&digest), dir.path().join(format!("store/sha256/{}.tar.gz", digest.hex())));
        let bytes = store.read(&digest).unwrap();
        assert_eq!(bytes, direct);
        assert_eq!(super::super::read_archive(&bytes).unwrap(), files());
        assert_eq!(entries(&dir.path().join("store/tmp")), Vec::<PathBuf>::new());

        // Again, with the digest now expected: same result, still one artifact.
        assert_eq!(put(&store, &files(), Some(&digest)).unwrap(), (digest.clone(), size));
        assert_eq!(entries(&dir.path().join("store/sha256")), [store.path(&digest)]);
        // Reopening an existing store is fine.
        assert!(Store::open(dir.path().join("store")).unwrap().contains(&digest));
    }

    #[test]
    fn missing_artifact_is_not_contained_and_reads_as_not_found() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let digest = Digest::of(b"nothing");
        assert!(!store.contains(&digest));
        match store.read(&digest) {
            Err(Error::Io(e)) => assert_eq!(e.kind(), io::ErrorKind::NotFound),
            other => panic!("expected NotFound, got {other:?}"),
        }
    }

    #[test]
    fn wrong_expected_digest_stores_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let wrong = Digest::of(b"something else");
        match put(&store, &files(), Some(&wrong)) {
            Err(err @ Error::DigestMismatch { .. }) => {
                let Error::DigestMismatch { expected, actual } = &err else { unreachable!() };
                assert_eq!(expected, &wrong);
                assert!(!store.contains(actual));
                assert!(!err.is_transient());
            }
            other => panic!("expected DigestMismatch, got {other:?}"),
        }
        assert_eq!(entries(&dir.path().join("sha256")), Vec::<PathBuf>::new());
        assert_eq!(entries(&dir.path().join("tmp")), Vec::<PathBuf>::new());
    }

    #[test]
    fn a_failing_writer_stores_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let result: Result<_> = store.put_with(None, |out| {
            out.write_all(b"half an archive")?;
            Err(Error::Io(io::Error::other("manifest check failed")))
        });
        assert!(matches!(result, Err(Error::Io(e)) if e.to_string() == "manifest check failed"));
        assert_eq!(entries(&dir.path().join("sha256")), Vec::<PathBuf>::new());
        assert_eq!(entries(&dir.path().join("tmp")), Vec::<PathBuf>::new());
    }

    #[test]
    fn read_detects_a_tampered_artifact() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let (digest, _) = put(&store, &files(), None).unwrap();
        let mut bytes = fs::read(store.path(&digest)).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        fs::write(store.path(&digest), &bytes).unwrap();
        match store.read(&digest) {
            Err(Error::DigestMismatch { expected, actual }) => {
                assert_eq!(expected, digest);
                assert_eq!(actual, Digest::of(&bytes));
            }
            other => panic!("expected DigestMismatch, got {other:?}"),
        }
    }

    #[test]
    fn invalid_paths_fail_without_leaving_files() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let bad = [ManifestFile { path: "../escape.yaml".into(), content: Vec::new() }];
        assert!(matches!(put(&store, &bad, None), Err(Error::Io(e)) if e.kind() == io::ErrorKind::InvalidInput));
        assert_eq!(entries(&dir.path().join("tmp")), Vec::<PathBuf>::new());
    }
}
