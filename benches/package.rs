//! `conveyor package` against its anchor, `git archive --format=tar.gz`, on the same generated
//! tree (10,000 manifest files), on the same machine, in the same run.
//!
//! Run with `cargo bench --bench package` (or `make bench`). `BENCH_RUNS` sets the runs per
//! tool (default 5); `--emit-json FILE` or `BENCH_JSON=FILE` also writes the figures as JSON;
//! `BENCH_KEEP=1` keeps the generated repository (its path is printed) for profiling by hand.
//! Figures are printed with PASS/MISS against the targets, never asserted: this is a
//! measurement, not a test. Only correctness is checked (exit status, file and object counts,
//! the same digest every run).

use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};

mod common;

use common::{mark, median};

/// Manifest files in the generated tree: the scale.
const FILES: usize = 10_000;
/// Four files per service directory.
const SERVICES: usize = FILES / 4;
/// The tag both tools package.
const TAG: &str = "v1.0.0";
/// The directory both tools package.
const DIR: &str = "deploy";
/// The memory target for 10,000 files, in MB (10^6 bytes).
const RSS_TARGET_MB: f64 = 50.0;
/// Fixed author and dates, so the generated repository (and the digest) is the same every run.
const SIGNATURE: &str = "Conveyor Bench <bench@conveyor.invalid> 1700000000 +0000";

fn main() -> anyhow::Result<()> {
    // `cargo test --all-targets` runs bench targets too (`test = false` does not stop it), in a
    // debug build and without the `--bench` argument that `cargo bench` always passes.
    if !std::env::args_os().any(|a| a == "--bench") {
        println!("package bench: skipped, run it with `cargo bench --bench package`");
        return Ok(());
    }
    let options = Options::parse()?;
    let dir = tempfile::tempdir().context("cannot create a temporary directory")?;
    let repo = dir.path().join("repo.git");

    let machine = Machine::probe()?;
    let started = Instant::now();
    let tree = generate(&repo)?;
    let generation = started.elapsed();

    let conveyor_out = dir.path().join("conveyor.tar.gz");
    let git_out = dir.path().join("git-archive.tar.gz");
    let mut conveyor = Tool::new("conveyor", conveyor_command(&repo, &conveyor_out), conveyor_out, true);
    let mut git = Tool::new("git archive", git_archive_command(&repo, &git_out), git_out, false);

    // One unrecorded run each warms the page cache for both, so neither pays for the other's cold start.
    for tool in [&mut conveyor, &mut git] {
        tool.run(dir.path(), &tree)?;
        tool.runs.clear();
    }
    // Alternating, with the order swapped every round, so drift (thermal, other load) hits both alike.
    for round in 0..options.runs {
        if round % 2 == 0 {
            conveyor.run(dir.path(), &tree)?;
            git.run(dir.path(), &tree)?;
        } else {
            git.run(dir.path(), &tree)?;
            conveyor.run(dir.path(), &tree)?;
        }
    }

    let report =
        Report { machine, tree, generation, runs: options.runs, conveyor: conveyor.summary()?, git: git.summary()? };
    print!("{}", report.text());
    if let Some(path) = &options.json {
        let json = serde_json::to_string_pretty(&report.json()).context("figures serialize")?;
        std::fs::write(path, json + "\n").with_context(|| format!("cannot write {}", path.display()))?;
        println!("figures written to {}", path.display());
    }
    if options.keep {
        println!("kept {}", dir.keep().join("repo.git").display());
    }
    Ok(())
}

/// What the command line and the environment ask for: the shared options, and `BENCH_KEEP`.
struct Options {
    runs: usize,
    json: Option<PathBuf>,
    keep: bool,
}

impl Options {
    fn parse() -> anyhow::Result<Self> {
        let common::Options { runs, json } = common::Options::parse()?;
        let keep = std::env::var_os("BENCH_KEEP").is_some_and(|v| !v.is_empty() && v != "0");
        Ok(Self { runs, json, keep })
    }
}

/// Facts that make figures from two machines comparable (or not).
struct Machine {
    nproc: usize,
    cpu: String,
    git: String,
}

impl Machine {
    fn probe() -> anyhow::Result<Self> {
        let (nproc, cpu) = common::cpu();
        let output = git().arg("--version").output().context("cannot run git")?;
        ensure!(output.status.success(), "git --version failed");
        let git = String::from_utf8_lossy(&output.stdout).trim().trim_start_matches("git version ").to_owned();
        Ok(Self { nproc, cpu, git })
    }
}

/// `git` with the user's and the system's configuration shut out, and a fixed identity.
fn git() -> Command {
    let mut cmd = Command::new("git");
    isolate(&mut cmd);
    cmd
}

/// Makes a command independent of the caller's git and conveyor configuration.
fn isolate(cmd: &mut Command) {
    cmd.env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "Conveyor Bench")
        .env("GIT_AUTHOR_EMAIL", "bench@conveyor.invalid")
        .env("GIT_COMMITTER_NAME", "Conveyor Bench")
        .env("GIT_COMMITTER_EMAIL", "bench@conveyor.invalid")
        .env_remove("CONVEYOR_CONFIG");
    // Every config key is also read from CONVEYOR_<KEY>: the defaults are what is measured.
    for (key, _) in std::env::vars_os() {
        if key.to_str().is_some_and(|k| k.starts_with("CONVEYOR_")) {
            cmd.env_remove(key);
        }
    }
}

fn conveyor_command(repo: &Path, out: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_conveyor"));
    cmd.arg("package").arg("--repo").arg(repo).args(["--ref", TAG, "--path", DIR, "-o", "json", "--out"]).arg(out);
    isolate(&mut cmd);
    cmd
}

fn git_archive_command(repo: &Path, out: &Path) -> Command {
    let mut cmd = git();
    cmd.arg("-C").arg(repo).args(["archive", "--format=tar.gz", "-o"]).arg(out).args([TAG, DIR]);
    cmd
}

/// The generated tree, as the generator knows it.
struct Tree {
    files: usize,
    objects: usize,
    multi_document_files: usize,
    bytes: u64,
    smallest: usize,
    median: usize,
    largest: usize,
}

/// Creates a bare repository whose `deploy/` holds [`FILES`] manifests in one commit tagged
/// [`TAG`], streamed through `git fast-import` (no work tree, no `git add`).
fn generate(repo: &Path) -> anyhow::Result<Tree> {
    let status = git().args(["init", "--quiet", "--bare", "--initial-branch=main"]).arg(repo).status()?;
    ensure!(status.success(), "git init failed: {status}");
    let mut import = git()
        .arg("-C")
        .arg(repo)
        .args(["fast-import", "--quiet", "--date-format=raw"])
        .stdin(Stdio::piped())
        .spawn()
        .context("cannot run git fast-import")?;
    let stdin = import.stdin.take().expect("stdin was piped");
    let mut stream = BufWriter::with_capacity(1 << 20, stdin);

    let message = format!("Manifests for {SERVICES} services\n");
    write!(stream, "commit refs/heads/main\nmark :1\nauthor {SIGNATURE}\ncommitter {SIGNATURE}\n")?;
    write!(stream, "data {}\n{message}", message.len())?;
    let mut rng = SplitMix(0x5eed_c0ff_ee00_0001);
    let mut sizes = Vec::with_capacity(FILES);
    let (mut objects, mut multi_document_files) = (0, 0);
    for index in 0..SERVICES {
        let service = Service::new(index, &mut rng);
        for (name, content, count) in service.files(&mut rng) {
            write!(stream, "M 100644 inline {DIR}/{}/{name}\ndata {}\n", service.name, content.len())?;
            stream.write_all(content.as_bytes())?;
            stream.write_all(b"\n")?;
            sizes.push(content.len());
            objects += count;
            multi_document_files += usize::from(count > 1);
        }
    }
    let message = format!("Release {TAG}\n");
    write!(stream, "tag {TAG}\nfrom :1\ntagger {SIGNATURE}\ndata {}\n{message}", message.len())?;
    stream.flush()?;
    drop(stream);
    let status = import.wait()?;
    ensure!(status.success(), "git fast-import failed: {status}");

    sizes.sort_unstable();
    Ok(Tree {
        files: sizes.len(),
        objects,
        multi_document_files,
        bytes: sizes.iter().map(|&s| s as u64).sum(),
        smallest: sizes[0],
        median: sizes[sizes.len() / 2],
        largest: sizes[sizes.len() - 1],
    })
}

/// A small deterministic generator (SplitMix64): the same tree every run, no dependency.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `lo..=hi`.
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next() % (hi - lo + 1) as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.range(0, items.len() - 1)]
    }
}

const SYSTEMS: &[&str] =
    &["checkout", "catalog", "payments", "search", "identity", "shipping", "billing", "ledger", "notify", "media"];
const ROLES: &[&str] = &["api", "worker", "gateway", "sync", "indexer", "scheduler", "cache", "web"];
const FLAGS: &[&str] = &["true", "false", "\"on\"", "\"1\"", "enabled", "\"2024-06-01\""];

/// One service's directory: deployment, service, configmap and one extra kind of file.
struct Service {
    index: usize,
    name: String,
    system: &'static str,
    namespace: String,
    version: String,
}

// The templates are written as the YAML they produce (string literals keep their newlines and
// indentation), so that they read like what users commit.
impl Service {
    fn new(index: usize, rng: &mut SplitMix) -> Self {
        let system = rng.pick(SYSTEMS);
        let name = format!("svc-{index:04}-{system}-{}", rng.pick(ROLES));
        let namespace = format!("team-{:02}", index % 40);
        let version = format!("1.{}.{}", rng.range(0, 40), rng.range(0, 12));
        Self { index, name, system, namespace, version }
    }

    /// `(file name, content, objects in it)` for each file of the directory.
    fn files(&self, rng: &mut SplitMix) -> [(&'static str, String, usize); 4] {
        let extra = match self.index % 4 {
            0 => ("hpa.yaml", self.hpa(rng), 1),
            1 => ("rbac.yaml", self.rbac(), 3),
            2 => ("ingress.yaml", self.ingress(rng), 1),
            _ => ("policy.yaml", self.policy(rng), 2),
        };
        [
            ("deployment.yaml", self.deployment(rng), 1),
            ("service.yaml", self.service(rng), 1),
            ("configmap.yaml", self.configmap(rng), 1),
            extra,
        ]
    }

    /// `apiVersion`, `kind` and `metadata` with the labels every object of the service carries.
    fn head(&self, api_version: &str, kind: &str, suffix: &str) -> String {
        let Self { name, system, namespace, version, .. } = self;
        format!(
            "\
apiVersion: {api_version}
kind: {kind}
metadata:
  name: {name}{suffix}
  namespace: {namespace}
  labels:
    app.kubernetes.io/name: {name}
    app.kubernetes.io/part-of: {system}
    app.kubernetes.io/version: \"{version}\"
    app.kubernetes.io/managed-by: conveyor
"
        )
    }

    fn deployment(&self, rng: &mut SplitMix) -> String {
        let Self { name, system, version, .. } = self;
        let mut y = format!("# {name}: owned by the {system} team.\n");
        y += &self.head("apps/v1", "Deployment", "");
        let replicas = rng.range(1, 6);
        let _ = write!(
            y,
            "  annotations:
    conveyor.dev/owner: {system}-oncall@example.com
spec:
  replicas: {replicas}
  revisionHistoryLimit: 5
  selector:
    matchLabels:
      app.kubernetes.io/name: {name}
  strategy:
    type: RollingUpdate
    rollingUpdate: {{maxSurge: 25%, maxUnavailable: 0}}
  template:
    metadata:
      labels:
        app.kubernetes.io/name: {name}
        app.kubernetes.io/version: \"{version}\"
    spec:
      securityContext:
        runAsNonRoot: true
      containers:
        - name: app
          image: registry.example.com/{system}/{name}:{version}
          args: [\"--port=8080\", \"--log-level=info\"]
          ports:
            - name: http
              containerPort: 8080
"
        );
        let env = rng.range(0, 8);
        if env > 0 {
            y += "          env:\n";
            let prefix = system.to_uppercase();
            for i in 0..env {
                let value = rng.pick(FLAGS);
                let _ = write!(y, "            - name: {prefix}_FEATURE_{i}\n              value: {value}\n");
            }
        }
        let (cpu, memory, limit) = (rng.range(1, 10) * 50, rng.range(1, 8) * 64, rng.range(9, 16) * 64);
        let _ = write!(
            y,
            "          resources:
            requests: {{cpu: {cpu}m, memory: {memory}Mi}}
            limits: {{memory: {limit}Mi}}
          readinessProbe:
            httpGet: {{path: /healthz, port: http}}
            periodSeconds: 10
"
        );
        if rng.range(0, 3) == 0 {
            y += "        - name: proxy
          image: registry.example.com/mesh/proxy:2.3.1
          ports:
            - {name: admin, containerPort: 15000}
";
        }
        y
    }

    fn service(&self, rng: &mut SplitMix) -> String {
        let mut y = self.head("v1", "Service", "");
        let _ = write!(
            y,
            "  annotations:
    prometheus.io/scrape: \"true\"
    prometheus.io/port: \"9090\"
spec:
  type: ClusterIP
  sessionAffinity: None
  selector:
    app.kubernetes.io/name: {}
  ports:
    - name: http
      port: 80
      targetPort: http
      protocol: TCP
",
            self.name
        );
        if rng.range(0, 1) == 0 {
            y += "    - name: metrics
      port: 9090
      targetPort: 9090
      protocol: TCP
";
        }
        y
    }

    fn configmap(&self, rng: &mut SplitMix) -> String {
        let Self { system, namespace, .. } = self;
        let mut y = self.head("v1", "ConfigMap", "-config");
        let _ = write!(
            y,
            "\
data:
  LOG_LEVEL: info
  UPSTREAM: http://{system}-api.{namespace}.svc:80
  application.properties: |
"
        );
        for i in 0..rng.range(5, 40) {
            let _ = writeln!(y, "    {system}.setting.{i} = {}", rng.next() % 100_000);
        }
        y
    }

    fn hpa(&self, rng: &mut SplitMix) -> String {
        let mut y = self.head("autoscaling/v2", "HorizontalPodAutoscaler", "");
        let (max, utilization) = (rng.range(4, 30), rng.range(50, 85));
        let _ = write!(
            y,
            "\
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {}
  minReplicas: 2
  maxReplicas: {max}
  metrics:
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {utilization}
",
            self.name
        );
        y
    }

    /// Three documents: the service account, its role and the binding.
    fn rbac(&self) -> String {
        let Self { name, namespace, .. } = self;
        let mut y = self.head("v1", "ServiceAccount", "");
        y += "---\n";
        y += &self.head("rbac.authorization.k8s.io/v1", "Role", "-reader");
        y += "\
rules:
  - apiGroups: [\"\"]
    resources: [configmaps, secrets]
    verbs: [get, list, watch]
---
";
        y += &self.head("rbac.authorization.k8s.io/v1", "RoleBinding", "-reader");
        let _ = write!(
            y,
            "\
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: {name}-reader
subjects:
  - kind: ServiceAccount
    name: {name}
    namespace: {namespace}
"
        );
        y
    }

    fn ingress(&self, rng: &mut SplitMix) -> String {
        let name = &self.name;
        let mut y = self.head("networking.k8s.io/v1", "Ingress", "");
        let _ = write!(
            y,
            "  annotations:
    cert-manager.io/cluster-issuer: letsencrypt
spec:
  ingressClassName: nginx
  tls:
    - hosts: [{name}.example.com]
      secretName: {name}-tls
  rules:
    - host: {name}.example.com
      http:
        paths:
"
        );
        for path in ["/", "/api", "/v2", "/admin"].iter().take(rng.range(1, 4)) {
            let _ = write!(
                y,
                "          - path: {path}
            pathType: Prefix
            backend:
              service: {{name: {name}, port: {{name: http}}}}
"
            );
        }
        y
    }

    /// Two documents: a disruption budget and a network policy.
    fn policy(&self, rng: &mut SplitMix) -> String {
        let name = &self.name;
        let mut y = self.head("policy/v1", "PodDisruptionBudget", "");
        let _ = write!(
            y,
            "\
spec:
  maxUnavailable: 1
  selector:
    matchLabels:
      app.kubernetes.io/name: {name}
---
# Only the gateway and monitoring may call {name}.
"
        );
        y += &self.head("networking.k8s.io/v1", "NetworkPolicy", "");
        let caller = ["gateway", "monitoring", "ingress-nginx"][rng.range(0, 2)];
        let _ = write!(
            y,
            "\
spec:
  podSelector:
    matchLabels:
      app.kubernetes.io/name: {name}
  policyTypes: [Ingress]
  ingress:
    - from:
        - namespaceSelector:
            matchLabels:
              kubernetes.io/metadata.name: {caller}
      ports:
        - {{port: 8080, protocol: TCP}}
"
        );
        y
    }
}

/// One measured run of a child process.
struct Run {
    wall: Duration,
    /// Peak resident set of the child alone, in KiB (`ru_maxrss` on Linux).
    max_rss_kib: u64,
}

/// A command measured again and again, with what it produced.
struct Tool {
    name: &'static str,
    command: Command,
    out: PathBuf,
    /// Whether stdout is conveyor's `-o json` report, to be checked against the tree.
    reports: bool,
    runs: Vec<Run>,
    /// conveyor's digest of the first run: every later run must give the same one.
    digest: Option<String>,
}

impl Tool {
    fn new(name: &'static str, command: Command, out: PathBuf, reports: bool) -> Self {
        Self { name, command, out, reports, runs: Vec::new(), digest: None }
    }

    /// Runs the command once, checks what it did, and records its time and peak memory.
    fn run(&mut self, scratch: &Path, tree: &Tree) -> anyhow::Result<()> {
        let stdout = scratch.join("stdout");
        let stderr = scratch.join("stderr");
        self.command.stdout(File::create(&stdout)?).stderr(File::create(&stderr)?);
        let (status, run) = spawn_and_wait4(&mut self.command).with_context(|| format!("cannot run {}", self.name))?;
        if !status.success() {
            let stderr = std::fs::read_to_string(&stderr).unwrap_or_default();
            bail!("{} failed ({status}):\n{stderr}", self.name);
        }
        if self.reports {
            let report: serde_json::Value =
                serde_json::from_slice(&std::fs::read(&stdout)?).context("conveyor's -o json output is not JSON")?;
            let count = |key: &str| report.get(key).and_then(serde_json::Value::as_u64);
            ensure!(
                count("files") == Some(FILES as u64),
                "conveyor reported files = {:?}, expected {FILES}",
                count("files")
            );
            ensure!(
                count("objects") == Some(tree.objects as u64),
                "conveyor reported objects = {:?}, the tree holds {}",
                count("objects"),
                tree.objects
            );
            ensure!(
                count("size") == Some(std::fs::metadata(&self.out)?.len()),
                "conveyor's size is not its file's size"
            );
            let digest = report.get("digest").and_then(serde_json::Value::as_str).unwrap_or_default().to_owned();
            match &self.digest {
                None => self.digest = Some(digest),
                Some(first) => {
                    ensure!(*first == digest, "conveyor's digest changed between runs: {first} then {digest}")
                }
            }
        }
        self.runs.push(run);
        Ok(())
    }

    fn summary(&self) -> anyhow::Result<Summary> {
        let mut ms: Vec<f64> = self.runs.iter().map(|r| r.wall.as_secs_f64() * 1e3).collect();
        let mut mb: Vec<f64> = self.runs.iter().map(|r| r.max_rss_kib as f64 * 1024.0 / 1e6).collect();
        let wall_ms = ms.clone();
        let peak_rss_mb = mb.clone();
        Ok(Summary {
            name: self.name,
            median_ms: median(&mut ms),
            min_ms: ms.iter().copied().fold(f64::INFINITY, f64::min),
            median_rss_mb: median(&mut mb),
            output_bytes: std::fs::metadata(&self.out).with_context(|| format!("{} wrote no output", self.name))?.len(),
            wall_ms,
            peak_rss_mb,
        })
    }
}

/// Spawns `command` and reaps it with `wait4`, which also returns the child's own resource usage
/// (its peak RSS, which `Child::wait` does not give). Wall time runs from before the spawn to the reap.
fn spawn_and_wait4(command: &mut Command) -> io::Result<(ExitStatus, Run)> {
    let started = Instant::now();
    let child = command.spawn()?;
    let pid = libc::pid_t::try_from(child.id()).map_err(io::Error::other)?;
    let mut status: libc::c_int = 0;
    // SAFETY: rusage is plain old data, for which all-zero bytes are a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: `pid` is our own child and is reaped only here (`Child::wait` is never called,
        // and dropping a `Child` does not wait); both pointers are valid for the call.
        let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if reaped == pid {
            break;
        }
        let error = io::Error::last_os_error();
        if error.kind() != io::ErrorKind::Interrupted {
            return Err(error);
        }
    }
    let wall = started.elapsed();
    drop(child);
    let max_rss_kib = u64::try_from(usage.ru_maxrss).unwrap_or(0);
    Ok((ExitStatus::from_raw(status), Run { wall, max_rss_kib }))
}

/// One tool's figures.
struct Summary {
    name: &'static str,
    median_ms: f64,
    min_ms: f64,
    median_rss_mb: f64,
    output_bytes: u64,
    wall_ms: Vec<f64>,
    peak_rss_mb: Vec<f64>,
}

impl Summary {
    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "median_ms": self.median_ms,
            "min_ms": self.min_ms,
            "median_peak_rss_mb": self.median_rss_mb,
            "output_bytes": self.output_bytes,
            "wall_ms": self.wall_ms,
            "peak_rss_mb": self.peak_rss_mb,
        })
    }
}

/// Everything measured in one run of the bench.
struct Report {
    machine: Machine,
    tree: Tree,
    generation: Duration,
    runs: usize,
    conveyor: Summary,
    git: Summary,
}

impl Report {
    fn time_ratio(&self) -> f64 {
        self.conveyor.median_ms / self.git.median_ms
    }

    fn rss_ratio(&self) -> f64 {
        self.conveyor.median_rss_mb / self.git.median_rss_mb
    }

    fn text(&self) -> String {
        let Self { machine, tree, generation, runs, conveyor, git } = self;
        let mut t = String::new();
        let _ = writeln!(t, "conveyor package vs git archive --format=tar.gz ({TAG}, {DIR}/)");
        let _ = writeln!(t, "machine: nproc {}, {}, git {}", machine.nproc, machine.cpu, machine.git);
        let _ = writeln!(
            t,
            "tree: {} files ({} multi-document), {} objects, {} bytes of YAML",
            tree.files, tree.multi_document_files, tree.objects, tree.bytes
        );
        let _ = writeln!(t, "file sizes: min {} / median {} / max {} bytes", tree.smallest, tree.median, tree.largest);
        let _ = writeln!(t, "generation (git fast-import, not compared): {:.0} ms", generation.as_secs_f64() * 1e3);
        let _ = writeln!(t, "runs: {runs} per tool, alternating, after one warm-up run each\n");
        let _ = writeln!(
            t,
            "{:<12} {:>10} {:>10} {:>20} {:>14}",
            "tool", "median ms", "min ms", "median peak RSS MB", "output bytes"
        );
        for s in [conveyor, git] {
            let _ = writeln!(
                t,
                "{:<12} {:>10.1} {:>10.1} {:>20.1} {:>14}",
                s.name, s.median_ms, s.min_ms, s.median_rss_mb, s.output_bytes
            );
        }
        let _ = writeln!(t, "\nconveyor/git-archive: time {:.2}, peak RSS {:.2}", self.time_ratio(), self.rss_ratio());
        let _ = writeln!(
            t,
            "target: no slower than git archive (ratio <= 1.00): {} ({:.2})",
            mark(self.time_ratio() <= 1.0),
            self.time_ratio()
        );
        let _ = writeln!(
            t,
            "target: peak RSS < {RSS_TARGET_MB:.0} MB for {FILES} files: {} ({:.1} MB)",
            mark(conveyor.median_rss_mb < RSS_TARGET_MB),
            conveyor.median_rss_mb
        );
        t
    }

    fn json(&self) -> serde_json::Value {
        let Self { machine, tree, generation, runs, conveyor, git } = self;
        serde_json::json!({
            "machine": { "nproc": machine.nproc, "cpu": machine.cpu, "git": machine.git },
            "tree": {
                "files": tree.files,
                "multi_document_files": tree.multi_document_files,
                "objects": tree.objects,
                "bytes": tree.bytes,
            },
            "generation_ms": generation.as_secs_f64() * 1e3,
            "runs": runs,
            "conveyor": conveyor.json(),
            "git_archive": git.json(),
            "ratios": { "time": self.time_ratio(), "peak_rss": self.rss_ratio() },
            "targets": {
                "time_ratio_at_most_1": self.time_ratio() <= 1.0,
                "peak_rss_below_50_mb": conveyor.median_rss_mb < RSS_TARGET_MB,
            },
        })
    }
}
