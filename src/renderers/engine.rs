//! Running an engine (`kubectl kustomize`, `kustomize build`, `helm template`) on the scratch
//! copy: with a deadline, bounded output, and an environment cleared of everything the
//! controller has (credentials, kubeconfig, PATH). HOME, TMPDIR and Helm's directories point
//! into the scratch directory, and every proxy variable points at a closed local port, so a
//! lookup the checks before it missed still cannot reach the network.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use wait_timeout::ChildExt;

use super::Error;
use crate::config::Config;

/// Most bytes of an engine's standard error kept for the condition message (its end, where
/// both kustomize and helm put the error).
const STDERR_BYTES: usize = 2048;

/// Where every proxy variable points: nothing listens on port 9 (discard) on loopback, so any
/// HTTP(S) attempt fails at once instead of waiting for a timeout.
const CLOSED_PROXY: &str = "http://127.0.0.1:9";

/// The engines as configured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Engines {
    /// `kubectl` or `kustomize` (name or path).
    pub kustomize: PathBuf,
    /// `helm` (name or path).
    pub helm: PathBuf,
    /// Deadline for one run.
    pub timeout: Duration,
    /// Where scratch copies are written (`None`: the system's temporary directory).
    pub scratch_dir: Option<PathBuf>,
}

impl Engines {
    /// The engines the config names; scratch copies in the system's temporary directory.
    pub fn from_config(config: &Config) -> Self {
        Self {
            kustomize: config.kustomize_binary.clone(),
            helm: config.helm_binary.clone(),
            timeout: config.render_timeout,
            scratch_dir: None,
        }
    }

    /// As [`Engines::from_config`], scratch copies under `artifact_dir/render`: the controller's
    /// volume, writable where the root filesystem is read-only, and sized for repositories.
    pub fn for_controller(config: &Config) -> Self {
        Self { scratch_dir: Some(config.artifact_dir.join("render")), ..Self::from_config(config) }
    }
}

/// The executable `binary` names: a path as it is, a bare name looked up on the controller's PATH.
pub fn resolve_binary(binary: &Path) -> Option<PathBuf> {
    let is_file = |p: &Path| p.is_file();
    if binary.components().count() > 1 || binary.is_absolute() {
        return is_file(binary).then(|| binary.to_owned());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(binary)).find(|candidate| is_file(candidate))
}

/// One run of an engine.
pub(super) struct Run<'a> {
    /// The executable (resolved).
    pub binary: &'a Path,
    /// Its arguments, paths relative to `repo`.
    pub args: Vec<String>,
    /// The scratch copy of the repository (the working directory).
    pub repo: &'a Path,
    /// A writable directory for HOME and the tools' own files.
    pub home: &'a Path,
    /// The deadline.
    pub timeout: Duration,
    /// Most bytes of output accepted.
    pub max_output: u64,
    /// The command as shown in messages (`kubectl kustomize deploy/overlays/staging`).
    pub shown: String,
    /// ` for environment <name>`, or empty.
    pub for_env: String,
}

impl Run<'_> {
    /// Runs the engine; its standard output on success.
    pub fn output(self) -> Result<Vec<u8>, Error> {
        let home = self.home;
        let mut command = Command::new(self.binary);
        command.args(&self.args).current_dir(self.repo).env_clear();
        for (key, dir) in [
            ("HOME", "home"),
            ("TMPDIR", "tmp"),
            ("HELM_CACHE_HOME", "helm/cache"),
            ("HELM_CONFIG_HOME", "helm/config"),
            ("HELM_DATA_HOME", "helm/data"),
            ("HELM_PLUGINS", "helm/plugins"),
        ] {
            let dir = home.join(dir);
            std::fs::create_dir_all(&dir)?;
            command.env(key, dir);
        }
        command
            .env("HELM_REPOSITORY_CONFIG", home.join("helm/config/repositories.yaml"))
            .env("HELM_REGISTRY_CONFIG", home.join("helm/config/registry.json"))
            .env("KUBECONFIG", home.join("home/no-kubeconfig"))
            .env("NO_PROXY", "")
            .env("no_proxy", "");
        for key in ["HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"] {
            command.env(key, CLOSED_PROXY);
        }
        // Its own process group, so that whatever it starts is stopped with it.
        command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0);
        let mut child = command.spawn()?;
        let (mut stdout, mut stderr) =
            (child.stdout.take().expect("stdout is piped"), child.stderr.take().expect("stderr is piped"));
        let limit = self.max_output;
        // Readers on their own threads so that neither pipe fills up and blocks the engine.
        let out = std::thread::spawn(move || -> std::io::Result<(Vec<u8>, bool)> {
            let mut bytes = Vec::new();
            (&mut stdout).take(limit + 1).read_to_end(&mut bytes)?;
            let over = bytes.len() as u64 > limit;
            // Dropping the pipe past the limit makes the engine fail writing; it is killed below.
            Ok((bytes, over))
        });
        let err = std::thread::spawn(move || tail(&mut stderr));
        let status = child.wait_timeout(self.timeout)?;
        // On time or not, nothing it started may live on (and hold the pipes open).
        stop_group(&mut child);
        let (bytes, over) = out.join().map_err(|_| std::io::Error::other("the output reader panicked"))??;
        let stderr = err.join().map_err(|_| std::io::Error::other("the error reader panicked"))?;
        let Some(status) = status else {
            return Err(Error::Timeout { command: self.shown, for_env: self.for_env, seconds: self.timeout.as_secs() });
        };
        if over {
            return Err(Error::OutputTooLarge { command: self.shown, for_env: self.for_env, limit });
        }
        if !status.success() {
            let shown_status = match status.code() {
                Some(code) => format!("exit code {code}"),
                None => "killed by a signal".to_owned(),
            };
            return Err(Error::EngineFailed {
                command: self.shown,
                for_env: self.for_env,
                status: shown_status,
                stderr: clean(&stderr, self.repo),
            });
        }
        Ok(bytes)
    }
}

/// Kills the engine's process group and reaps the engine.
fn stop_group(child: &mut Child) {
    if let Ok(pgid) = i32::try_from(child.id()) {
        // SAFETY: kill(2) takes plain integers and touches no memory of this process; the
        // negative id names the group the engine leads (`process_group(0)`), nothing else.
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// The last [`STDERR_BYTES`] of a stream, read to its end.
fn tail(stream: &mut impl Read) -> Vec<u8> {
    let mut kept = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                kept.extend_from_slice(&chunk[..n]);
                if kept.len() > 2 * STDERR_BYTES {
                    kept.drain(..kept.len() - STDERR_BYTES);
                }
            }
        }
    }
    if kept.len() > STDERR_BYTES {
        let mut cut = kept.split_off(kept.len() - STDERR_BYTES);
        cut.splice(0..0, "…".bytes());
        return cut;
    }
    kept
}

/// The engine's message as a user reads it: paths relative to the repository (the scratch
/// directory's name means nothing to them, and would make the message differ at every try),
/// lines joined, whitespace trimmed.
fn clean(stderr: &[u8], repo: &Path) -> String {
    let text = String::from_utf8_lossy(stderr);
    let root = format!("{}/", repo.display());
    let text = text.replace(&root, "").replace(&repo.display().to_string(), ".");
    let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    if lines.is_empty() { "(no message on standard error)".to_owned() } else { lines.join("; ") }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shell(script: &str, timeout: Duration, max_output: u64) -> Result<Vec<u8>, Error> {
        let dir = tempfile::tempdir().unwrap();
        let (repo, home) = (dir.path().join("repo"), dir.path().join("scratch"));
        std::fs::create_dir_all(&repo).unwrap();
        Run {
            binary: Path::new("/bin/sh"),
            args: vec!["-c".into(), script.into()],
            repo: &repo,
            home: &home,
            timeout,
            max_output,
            shown: "sh".into(),
            for_env: " for environment staging".into(),
        }
        .output()
    }

    #[test]
    fn output_of_a_successful_run() {
        let out = shell("printf 'kind: A\\n'", Duration::from_secs(10), 100).unwrap();
        assert_eq!(out, b"kind: A\n");
    }

    #[test]
    fn the_environment_is_cleared_and_proxies_closed() {
        let dir = tempfile::tempdir().unwrap();
        let run = Run {
            binary: Path::new("/usr/bin/env"),
            args: vec![],
            repo: dir.path(),
            home: &dir.path().join("scratch"),
            timeout: Duration::from_secs(10),
            max_output: 10_000,
            shown: "env".into(),
            for_env: String::new(),
        };
        let out = String::from_utf8(run.output().unwrap()).unwrap();
        let vars: std::collections::BTreeMap<&str, &str> = out.lines().filter_map(|l| l.split_once('=')).collect();
        // The test process has a PATH and a KUBECONFIG of its own; the engine sees neither.
        assert_eq!(vars.get("PATH"), None, "{out}");
        assert!(vars["KUBECONFIG"].ends_with("scratch/home/no-kubeconfig"), "{out}");
        assert_eq!(vars["HTTPS_PROXY"], CLOSED_PROXY);
        assert_eq!(vars["https_proxy"], CLOSED_PROXY);
        assert!(vars["HOME"].ends_with("scratch/home"), "{out}");
        assert!(vars["HELM_CACHE_HOME"].ends_with("scratch/helm/cache"), "{out}");
    }

    #[test]
    fn a_failure_carries_the_end_of_stderr_with_repository_paths() {
        let err = shell(
            "echo \"warning: noise\" >&2; echo \"Error: $PWD/deploy/x.yaml: bad\" >&2; exit 3",
            Duration::from_secs(10),
            100,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "sh for environment staging failed (exit code 3): warning: noise; Error: deploy/x.yaml: bad"
        );
        let long = shell(
            "i=0; while [ $i -lt 2000 ]; do echo line-$i >&2; i=$((i+1)); done; exit 1",
            Duration::from_secs(10),
            100,
        )
        .unwrap_err()
        .to_string();
        assert!(long.contains("line-1999") && !long.contains("line-10;"), "{long}");
        assert!(long.len() < 2 * STDERR_BYTES, "{}", long.len());
    }

    #[test]
    fn a_slow_engine_is_stopped_at_the_deadline() {
        let started = std::time::Instant::now();
        // The shell starts `sleep` as a child: it must be stopped too, or its pipe stays open.
        let err = shell("sleep 30; echo done", Duration::from_millis(300), 100).unwrap_err();
        assert!(matches!(err, Error::Timeout { .. }), "{err}");
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn too_much_output_is_refused() {
        let err = shell("yes kind: A", Duration::from_secs(10), 1000).unwrap_err();
        assert!(matches!(err, Error::OutputTooLarge { limit: 1000, .. }), "{err}");
    }

    #[test]
    fn binaries_are_found_on_path_or_at_a_path() {
        assert_eq!(resolve_binary(Path::new("/bin/sh")), Some(PathBuf::from("/bin/sh")));
        assert!(resolve_binary(Path::new("sh")).is_some());
        assert_eq!(resolve_binary(Path::new("no-such-engine-anywhere")), None);
        assert_eq!(resolve_binary(Path::new("/nonexistent/helm")), None);
    }
}
