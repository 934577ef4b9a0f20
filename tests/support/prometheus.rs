//! A real Prometheus server (Debian's `prometheus` package) scraping test targets every second,
//! on a free loopback port with its own data directory; killed and reaped on drop.
//!
//! The binary is `CONVEYOR_TEST_PROMETHEUS` if set, else `prometheus` on `PATH`, else
//! `/usr/bin/prometheus`. `start` is async: it polls the HTTP API until every target has been
//! scraped, which Prometheus 2.42 does only ~5–6 s after it starts, whatever the interval.

use std::cell::RefCell;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use serde_json::Value;
use url::Url;

use super::{DEADLINE, free_port, poll};

/// The scrape job's name (the `job` label of every scraped series).
pub const JOB: &str = "conveyor-test";

/// How many times a start is tried when the free port was taken before Prometheus bound it.
const START_ATTEMPTS: usize = 3;

/// A Prometheus server on `127.0.0.1`.
pub struct Prometheus {
    child: Child,
    url: Url,
    log: PathBuf,
    client: reqwest::Client,
    // Last: removed after the process is gone.
    _dir: tempfile::TempDir,
}

impl Prometheus {
    /// Starts Prometheus scraping `targets` (`/metrics` every second, job [`JOB`]) and returns
    /// once every target is reported `up`, or once it is ready when there are none. Panics,
    /// with Prometheus' log, if it exits or is not ready within [`DEADLINE`].
    pub async fn start(targets: &[SocketAddr]) -> Self {
        let binary = binary();
        for attempt in 1..=START_ATTEMPTS {
            let mut prometheus = Self::spawn(&binary, targets);
            match prometheus.until_scraping(targets).await {
                Ok(()) => return prometheus,
                // Another process took the free port between `free_port` and Prometheus' bind.
                Err(_) if attempt < START_ATTEMPTS && prometheus.logs().contains("address already in use") => {}
                Err(status) => panic!("prometheus exited ({status}) before it was ready:\n{}", prometheus.logs()),
            }
        }
        unreachable!("the last attempt returns or panics")
    }

    fn spawn(binary: &Path, targets: &[SocketAddr]) -> Self {
        let dir = tempfile::Builder::new().prefix("conveyor-prometheus-").tempdir().expect("prometheus data directory");
        let config = dir.path().join("prometheus.yml");
        let targets: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: {JOB}\n    static_configs:\n      - targets: [{}]\n",
                targets.join(", ")
            ),
        )
        .expect("write prometheus.yml");
        let log = dir.path().join("prometheus.log");
        let file = std::fs::File::create(&log).expect("create prometheus log");
        let port = free_port();
        let child = Command::new(binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("dup prometheus log"))
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", binary.display()));
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(5))
            .build()
            .expect("HTTP client for prometheus");
        let url = Url::parse(&format!("http://127.0.0.1:{port}/")).expect("prometheus URL");
        Self { child, url, log, client, _dir: dir }
    }

    /// Waits until every target is `up` (or, with none, until Prometheus is ready); `Err` with
    /// the exit status if the process ends first.
    async fn until_scraping(&mut self, targets: &[SocketAddr]) -> Result<(), ExitStatus> {
        let wanted: Vec<String> = targets.iter().map(ToString::to_string).collect();
        let (client, url, child) = (self.client.clone(), self.url.clone(), &mut self.child);
        let last = RefCell::new(String::new());
        poll("prometheus scraping every target", DEADLINE, || {
            let exited = child.try_wait().expect("query prometheus process");
            let (client, url, wanted, last) = (client.clone(), url.clone(), wanted.clone(), &last);
            async move {
                if let Some(status) = exited {
                    return Some(Err(status));
                }
                if wanted.is_empty() {
                    let ready = client.get(url.join("-/ready").ok()?).send().await.ok()?;
                    return ready.status().is_success().then_some(Ok(()));
                }
                let answer: Value =
                    client.get(url.join("api/v1/targets").ok()?).send().await.ok()?.json().await.ok()?;
                let health = target_health(&answer);
                let seen = format!("{health:?}");
                if seen != *last.borrow() {
                    // Shown only when the test fails: what the wait saw last.
                    eprintln!("prometheus targets: {seen}");
                    *last.borrow_mut() = seen;
                }
                let up = |t: &String| health.iter().any(|(instance, h)| instance == t && h == "up");
                wanted.iter().all(up).then_some(Ok(()))
            }
        })
        .await
    }

    /// `http://127.0.0.1:PORT/`, the base URL of its HTTP API.
    pub fn url(&self) -> Url {
        self.url.clone()
    }

    /// Kills the server (a crash: no shutdown) and waits for it to exit; `url` then refuses
    /// connections.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The values of instant query `query` (one per series, or the scalar), or why not.
    pub async fn query(&self, query: &str) -> Result<Vec<f64>, String> {
        let mut url = self.url.join("api/v1/query").expect("query URL");
        url.query_pairs_mut().append_pair("query", query);
        let response = self.client.get(url).send().await.map_err(|e| e.to_string())?;
        let answer: Value = response.json().await.map_err(|e| e.to_string())?;
        if answer["status"] != "success" {
            return Err(format!("{}: {}", answer["errorType"], answer["error"]));
        }
        let data = &answer["data"];
        let values: Vec<&Value> = match data["resultType"].as_str() {
            Some("vector") => data["result"].as_array().into_iter().flatten().map(|s| &s["value"][1]).collect(),
            Some("scalar") => vec![&data["result"][1]],
            other => return Err(format!("result type {other:?}")),
        };
        values
            .into_iter()
            .map(|v| v.as_str().and_then(|s| s.parse().ok()).ok_or_else(|| format!("value {v}")))
            .collect()
    }

    /// Polls `query` until it gives exactly one value for which `predicate` holds, and returns
    /// that value; panics after `deadline`. Use it to know Prometheus has scraped a change
    /// before asserting on a probe.
    pub async fn wait_for_value(&self, query: &str, predicate: impl Fn(f64) -> bool, deadline: Duration) -> f64 {
        let last = RefCell::new(String::new());
        poll(&format!("prometheus query {query:?} to give the expected value"), deadline, || {
            let (last, predicate) = (&last, &predicate);
            async move {
                let values = self.query(query).await;
                let seen = format!("{values:?}");
                if seen != *last.borrow() {
                    eprintln!("prometheus {query:?}: {seen}");
                    *last.borrow_mut() = seen;
                }
                match values.ok()?.as_slice() {
                    [value] if predicate(*value) => Some(*value),
                    _ => None,
                }
            }
        })
        .await
    }

    /// Prometheus' log so far (warnings and errors).
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            let _ = writeln!(std::io::stderr(), "---- prometheus log ----\n{}", self.logs());
        }
    }
}

/// `(instance, health)` of each active target in a `/api/v1/targets` answer.
fn target_health(answer: &Value) -> Vec<(String, String)> {
    let targets = answer["data"]["activeTargets"].as_array().into_iter().flatten();
    targets
        .map(|t| {
            let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
            (text(&t["labels"]["instance"]), text(&t["health"]))
        })
        .collect()
}

/// The Prometheus binary to run.
fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("CONVEYOR_TEST_PROMETHEUS") {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "CONVEYOR_TEST_PROMETHEUS={} is not a file (unset it to use prometheus on PATH)",
            path.display()
        );
        return path;
    }
    let on_path = std::env::var_os("PATH").map(|p| std::env::split_paths(&p).collect::<Vec<_>>()).unwrap_or_default();
    on_path
        .into_iter()
        .map(|dir| dir.join("prometheus"))
        .chain([PathBuf::from("/usr/bin/prometheus")])
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "prometheus not found on PATH or at /usr/bin/prometheus: install it with \
                 `apt-get install --no-install-recommends prometheus` (tests/run-tests.sh does), \
                 or set CONVEYOR_TEST_PROMETHEUS to the binary"
            )
        })
}
