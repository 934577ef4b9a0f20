//! Test harness: a real control plane, one namespace per test, the controller as a real
//! process, waits on conditions with deadlines, and a test kubelet.
#![allow(dead_code)] // each test binary uses a different part of the harness

pub mod cli;
pub mod fixtures;
pub mod git;
pub mod git_server;
pub mod kubelet;
pub mod probe_server;
pub mod prometheus;
pub mod webhook;
pub mod world;

use std::future::Future;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use conveyor::api::crds;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Client, Resource};
use serde::de::DeserializeOwned;

/// Default deadline for waits.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// The kubeconfig of the control plane for this test run: `CONVEYOR_TEST_KUBECONFIG` when the
/// test command started one, else one started here (stopped when this test process exits).
pub fn kubeconfig() -> &'static Path {
    static KUBECONFIG: OnceLock<PathBuf> = OnceLock::new();
    KUBECONFIG.get_or_init(|| {
        if let Ok(path) = std::env::var("CONVEYOR_TEST_KUBECONFIG") {
            return PathBuf::from(path);
        }
        let dir = std::env::temp_dir().join(format!("conveyor-test-cp-{}", std::process::id()));
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/control-plane.sh");
        let out = Command::new("bash")
            .arg(&script)
            .arg("start")
            .arg(&dir)
            .stderr(Stdio::inherit())
            .output()
            .expect("run control-plane.sh");
        assert!(out.status.success(), "control-plane.sh start failed");
        // Stop exactly what was started once this test process is gone.
        let reaper = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; bash '{script}' stop '{dir}'",
            pid = std::process::id(),
            script = script.display(),
            dir = dir.display()
        );
        // `setsid -f` forks the reaper into its own session and returns at once.
        let status = Command::new("setsid")
            .args(["-f", "bash", "-c", &reaper])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("spawn reaper");
        assert!(status.success(), "setsid failed to start the reaper");
        dir.join("kubeconfig")
    })
}

/// A client for the test control plane (one per test: clients belong to their runtime).
pub async fn client() -> Client {
    let kc = Kubeconfig::read_from(kubeconfig()).expect("read kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await.expect("kubeconfig");
    Client::try_from(config).expect("client")
}

/// Installs the CRDs by server-side apply and waits until they are Established.
pub async fn install_crds(client: &Client) {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in crds() {
        let name = crd.metadata.name.clone().expect("CRDs have names");
        api.patch(&name, &PatchParams::apply("conveyor-tests").force(), &Patch::Apply(&crd)).await.expect("apply CRD");
        wait("CRD Established", DEADLINE, await_condition(api.clone(), &name, conditions::is_crd_established())).await;
    }
}

/// Creates a namespace with a unique name starting with `prefix`.
pub async fn namespace(client: &Client, prefix: &str) -> String {
    static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    let name = format!("{prefix}-{}-{n}-{:x}", std::process::id(), nanos % 0xfffff);
    let ns =
        Namespace { metadata: ObjectMeta { name: Some(name.clone()), ..Default::default() }, ..Default::default() };
    Api::<Namespace>::all(client.clone()).create(&PostParams::default(), &ns).await.expect("create namespace");
    name
}

/// Awaits `fut` or panics naming `what` after `deadline`.
pub async fn wait<T, E: std::fmt::Debug>(what: &str, deadline: Duration, fut: impl Future<Output = Result<T, E>>) -> T {
    match tokio::time::timeout(deadline, fut).await {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => panic!("waiting for {what}: {e:?}"),
        Err(_) => panic!("timed out after {deadline:?} waiting for {what}"),
    }
}

/// Waits (watch-based) until object `name` satisfies `cond`; returns it.
pub async fn wait_for<K>(api: &Api<K>, name: &str, what: &str, cond: impl Fn(&K) -> bool + Send + 'static) -> K
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    let found =
        wait(what, DEADLINE, await_condition(api.clone(), name, move |o: Option<&K>| o.is_some_and(&cond))).await;
    found.expect("await_condition returns the object that satisfied the condition")
}

/// Polls `check` until it returns `Some` or the deadline passes (for things no watch can see).
pub async fn poll<T, F, Fut>(what: &str, deadline: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let end = Instant::now() + deadline;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < end, "timed out after {deadline:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A free TCP port on loopback.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The controller binary running as its own process, scoped to one namespace.
pub struct ControllerProcess {
    child: Child,
    /// Identity in the Lease (`POD_NAME`).
    pub identity: String,
    /// `http://127.0.0.1:PORT` of /metrics, /healthz, /readyz.
    pub http: String,
    /// File receiving the controller's logs.
    pub log: PathBuf,
    /// The controller's artifact directory (store and git mirrors).
    pub artifact_dir: PathBuf,
}

impl ControllerProcess {
    /// Starts `conveyor controller` watching `namespace`, with its Lease there (5 s lease).
    pub fn start(namespace: &str, identity: &str) -> Self {
        Self::start_with(namespace, identity, &[])
    }

    /// As [`start`](Self::start) with extra environment variables.
    pub fn start_with(namespace: &str, identity: &str, env: &[(&str, &str)]) -> Self {
        let port = free_port();
        let log = std::env::temp_dir().join(format!("conveyor-{namespace}-{identity}.log"));
        let file = std::fs::File::create(&log).expect("create log file");
        let artifact_dir = std::env::temp_dir().join(format!("conveyor-artifacts-{namespace}-{identity}"));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_conveyor"));
        cmd.arg("controller")
            .env("KUBECONFIG", kubeconfig())
            .env("CONVEYOR_WATCH_NAMESPACE", namespace)
            .env("CONVEYOR_LEASE_NAMESPACE", namespace)
            .env("CONVEYOR_METRICS_ADDRESS", format!("127.0.0.1:{port}"))
            .env("CONVEYOR_LEASE_DURATION", "5s")
            .env("CONVEYOR_ARTIFACT_DIR", &artifact_dir)
            .env("CONVEYOR_GIT_TIMEOUT", "5s")
            .env("POD_NAME", identity)
            .env("RUST_LOG", std::env::var("CONVEYOR_TEST_RUST_LOG").unwrap_or_else(|_| "info,conveyor=debug".into()))
            .env_remove("CONVEYOR_CONFIG")
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("dup log file"))
            .stderr(file);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("start conveyor controller");
        Self { child, identity: identity.to_owned(), http: format!("http://127.0.0.1:{port}"), log, artifact_dir }
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().expect("query child").is_none()
    }

    /// Sends SIGTERM and waits for the exit code (deadline [`DEADLINE`]).
    pub fn terminate(&mut self) -> Option<i32> {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let end = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().expect("query child") {
                return status.code();
            }
            assert!(Instant::now() < end, "controller {} ignored SIGTERM", self.identity);
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills the process at once (a crash: no cleanup, no lease release).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The controller's log so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// GET a path of the controller's HTTP server; `None` while it is not listening.
    pub async fn get(&self, path: &str) -> Option<(u16, String)> {
        let stream = tokio::net::TcpStream::connect(self.http.trim_start_matches("http://")).await.ok()?;
        http_get(stream, path).await
    }

    /// The value of a metric sample (exact name with labels), if exported.
    pub async fn metric(&self, sample: &str) -> Option<f64> {
        let (_, body) = self.get("/metrics").await?;
        body.lines().find_map(|l| l.strip_prefix(sample).and_then(|rest| rest.trim().parse().ok()))
    }
}

impl Drop for ControllerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let mut err = std::io::stderr();
            let _ = writeln!(err, "---- log of controller {} ----\n{}", self.identity, self.logs());
        }
    }
}

async fn http_get(mut stream: tokio::net::TcpStream, path: &str) -> Option<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream.write_all(req.as_bytes()).await.ok()?;
    let mut buf = Vec::new();
    stream.read_to_end(&mut buf).await.ok()?;
    let text = String::from_utf8_lossy(&buf);
    let code = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
    Some((code, body))
}
