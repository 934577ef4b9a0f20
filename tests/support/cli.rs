//! Runs of the `conveyor` binary, as a person runs it.

use std::path::Path;
use std::process::{Command, Output};

/// One run of the binary.
pub struct Run {
    /// Exit status 0.
    pub success: bool,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(out: Output) -> Self {
        Self {
            success: out.status.success(),
            stdout: String::from_utf8(out.stdout).unwrap(),
            stderr: String::from_utf8(out.stderr).unwrap(),
        }
    }
}

impl Run {
    /// Asserts success and returns the run.
    #[track_caller]
    pub fn ok(self) -> Self {
        assert!(self.success, "conveyor failed:\n{}{}", self.stdout, self.stderr);
        self
    }

    /// Asserts a non-zero exit with nothing on stdout and every one of `texts` on stderr.
    #[track_caller]
    pub fn fails_with(self, texts: &[&str]) {
        assert!(!self.success, "conveyor succeeded but should not have:\n{}", self.stdout);
        assert!(self.stdout.is_empty(), "nothing goes to stdout on failure: {}", self.stdout);
        for text in texts {
            assert!(self.stderr.contains(text), "{text:?} missing in:\n{}", self.stderr);
        }
    }
}

/// A `conveyor` command with no inherited Conveyor settings.
pub fn command() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_conveyor"));
    for (key, _) in std::env::vars() {
        if key.starts_with("CONVEYOR_") {
            cmd.env_remove(key);
        }
    }
    cmd
}

/// Runs `conveyor <args>` against the cluster of `kubeconfig`.
pub fn conveyor_with(kubeconfig: &Path, args: &[&str]) -> Run {
    Run::from(command().env("KUBECONFIG", kubeconfig).args(args).output().unwrap())
}

/// Runs `conveyor <args>` against the test cluster.
pub fn conveyor(args: &[&str]) -> Run {
    conveyor_with(super::kubeconfig(), args)
}

/// Runs the real `kubectl <args>` against the test cluster, with `extra_path` (if any) first on
/// PATH (for plugins). kubectl is `CONVEYOR_TEST_KUBECTL` (the test command sets it), else the
/// one on PATH.
pub fn kubectl(args: &[&str], extra_path: Option<&Path>) -> Run {
    let kubectl = std::env::var("CONVEYOR_TEST_KUBECTL").unwrap_or_else(|_| "kubectl".to_owned());
    let mut cmd = Command::new(&kubectl);
    cmd.args(args).env("KUBECONFIG", super::kubeconfig());
    if let Some(dir) = extra_path {
        cmd.env("PATH", format!("{}:{}", dir.display(), std::env::var("PATH").unwrap_or_default()));
    }
    let out = cmd.output().unwrap_or_else(|e| {
        panic!("cannot run kubectl ({kubectl}): {e}; install it or set CONVEYOR_TEST_KUBECTL to its path")
    });
    Run::from(out)
}
