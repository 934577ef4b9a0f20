//! `conveyor status` end to end: the real binary against the real API server, each test in its
//! own namespace. No controller runs: Pipeline and Release status is written here as the
//! controller would write it, and the command reads it back.

mod support;

use conveyor::api::{Pipeline, Release};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use support::cli::{conveyor, kubectl};

const AT: &str = "2024-05-01T10:00:00Z";
const DONE: &str = "2024-05-01T10:01:30Z";

/// A namespace with Pipeline `checkout` (development, staging) and Releases 2.3.0, 2.4.0 and
/// 2.4.1 (tagged, packaged), and the status the controller would have written after: 2.3.0 and
/// 2.4.1 healthy in development; in staging 2.3.0 healthy (staging-1), 2.4.0 failed its check and
/// rolled back to 2.3.0 (staging-2, staging-3), 2.4.1 healthy and running (staging-4).
async fn setup(prefix: &str) -> String {
    let client = support::client().await;
    support::install_crds(&client).await;
    let ns = support::namespace(&client, prefix).await;
    let pipeline: Pipeline = serde_norway::from_str(&format!(
        r#"
apiVersion: conveyor.dev/v1alpha1
kind: Pipeline
metadata: {{ name: checkout }}
spec:
  environments:
    - {{ name: development, namespace: {ns} }}
    - {{ name: staging, namespace: {ns}-staging }}
"#
    ))
    .unwrap();
    let pipelines: Api<Pipeline> = Api::namespaced(client.clone(), &ns);
    pipelines.create(&PostParams::default(), &pipeline).await.unwrap();
    let releases: Api<Release> = Api::namespaced(client, &ns);
    for version in ["2.3.0", "2.4.0", "2.4.1"] {
        let release = support::fixtures::checkout_release(version);
        let name = format!("checkout-{version}");
        releases.create(&PostParams::default(), &release).await.unwrap();
        let status = json!({"status": {"phase": "Packaged", "commit": format!("c0ffee{}", version.replace('.', "")),
            "notes": format!("Release {version}"),
            "artifact": {"digest": digest(version), "size": 1024, "files": 1, "objects": 1}}});
        releases.patch_status(&name, &PatchParams::default(), &Patch::Merge(&status)).await.unwrap();
    }

    let ran = |id: &str, version: &str, result: &str| {
        json!({"deploymentId": id, "release": format!("checkout-{version}"), "version": version,
            "result": result, "startedAt": AT, "finishedAt": DONE})
    };
    let deployed = |id: &str, version: &str| {
        json!({"deploymentId": id, "release": format!("checkout-{version}"), "version": version,
            "digest": digest(version), "since": AT, "appliedAt": AT})
    };
    let mut failed = ran("staging-2", "2.4.0", "RolledBack");
    failed["reason"] = json!("Prometheus check error-rate failed (1 failure): value 0.2 is not < 0.05");
    failed["checks"] = json!([{"name": "error-rate", "type": "Prometheus", "result": "Failed",
        "message": "value 0.2 is not < 0.05", "failures": 1, "at": DONE}]);
    let mut rollback = ran("staging-3", "2.3.0", "Succeeded");
    rollback["rollbackOf"] = json!("checkout-2.4.0");
    let message = "development=2.4.1 staging=2.4.1";
    let condition = |type_: &str, status: &str| {
        json!({"type": type_, "status": status, "reason": "Succeeded", "message": message,
            "lastTransitionTime": AT, "observedGeneration": 1})
    };
    let status = json!({"status": {
    "conditions": [condition("Ready", "True"), condition("Reconciling", "False"), condition("Stalled", "False")],
    "environments": [
        {"name": "development", "phase": "Healthy", "deployments": 2,
         "current": deployed("development-2", "2.4.1"),
         "history": [ran("development-2", "2.4.1", "Succeeded"), ran("development-1", "2.3.0", "Succeeded")]},
        {"name": "staging", "phase": "Healthy", "deployments": 4,
         "current": deployed("staging-4", "2.4.1"),
         "history": [ran("staging-4", "2.4.1", "Succeeded"), rollback, failed, ran("staging-1", "2.3.0", "Succeeded")]},
    ]}});
    pipelines.patch_status("checkout", &PatchParams::default(), &Patch::Merge(&status)).await.unwrap();
    ns
}

fn digest(version: &str) -> String {
    format!("sha256:{}", version.replace('.', ""))
}

#[tokio::test]
async fn the_table_shows_each_environment() {
    let ns = setup("cli-status-table").await;
    let run = conveyor(&["status", "checkout", "-n", &ns]).ok();
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines[0], format!("checkout (namespace {ns}): Ready Succeeded: development=2.4.1 staging=2.4.1"));
    let cells = |line: &str| line.split_whitespace().map(str::to_owned).collect::<Vec<_>>();
    assert_eq!(cells(lines[1]), ["ENVIRONMENT", "PHASE", "VERSION", "SINCE", "CHECKS", "NOTE"]);
    // (environment, phase, version); SINCE depends on the clock.
    for (line, want) in lines[2..].iter().zip([("development", "Healthy", "2.4.1"), ("staging", "Healthy", "2.4.1")]) {
        let cells = cells(line);
        assert_eq!((cells[0].as_str(), cells[1].as_str(), cells[2].as_str()), want, "{line}");
        assert!(cells[3].ends_with('d'), "running since 2024: {line}");
    }
    assert_eq!(lines.len(), 4, "{}", run.stdout);

    // Without PIPELINE: every Pipeline of the namespace, the same table.
    let all = conveyor(&["status", "-n", &ns]).ok();
    assert_eq!(all.stdout, run.stdout);
    // Every namespace: this table among the others.
    let everywhere = conveyor(&["status", "-A"]).ok();
    assert!(everywhere.stdout.contains(&run.stdout), "{}", everywhere.stdout);
}

#[tokio::test]
async fn json_and_yaml_report_every_deployment() {
    let ns = setup("cli-status-json").await;
    let json: Value = serde_json::from_str(&conveyor(&["status", "checkout", "-n", &ns, "-o", "json"]).ok().stdout)
        .expect("the output is JSON");
    let entries = json.as_array().expect("a JSON array");
    let outline: Vec<(&str, &str)> = entries
        .iter()
        .map(|e| (e["deployment"]["deployment_id"].as_str().unwrap(), e["deployment"]["status"].as_str().unwrap()))
        .collect();
    assert_eq!(
        outline,
        [
            ("development-2", "Succeeded"),
            ("development-1", "Succeeded"),
            ("staging-4", "Succeeded"),
            ("staging-3", "Succeeded"),
            ("staging-2", "RolledBack"),
            ("staging-1", "Succeeded"),
        ]
    );
    for entry in entries {
        let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
        assert_eq!(keys(entry), ["deployment", "release_info", "rollback_capability", "validation_results"]);
        let want = [
            (
                "deployment",
                &["deployment_id", "duration_seconds", "end_time", "environment", "start_time", "status", "version"][..],
            ),
            ("release_info", &["commit_hash", "release_notes", "released_by", "tag", "version"]),
            ("validation_results", &["functional_tests", "health_checks", "post_deployment", "pre_deployment"]),
            ("rollback_capability", &["available", "previous_version", "rollback_possible"]),
        ];
        for (part, fields) in want {
            assert_eq!(keys(&entry[part]), fields, "{part}");
        }
    }

    let succeeded = &entries[2];
    assert_eq!(
        succeeded,
        &json!({
            "deployment": {"deployment_id": "staging-4", "version": "2.4.1", "environment": "staging",
                "status": "Succeeded", "start_time": AT, "end_time": DONE, "duration_seconds": 90},
            "release_info": {"version": "2.4.1", "tag": "v2.4.1", "commit_hash": "c0ffee241",
                "release_notes": "Release 2.4.1", "released_by": null},
            "validation_results": {
                "pre_deployment": {"result": "Passed", "message": null},
                "post_deployment": {"result": "Passed", "message": null},
                "health_checks": [], "functional_tests": null},
            "rollback_capability": {"available": true, "previous_version": "2.3.0", "rollback_possible": true},
        })
    );
    let rolled_back = &entries[4];
    assert_eq!(
        rolled_back,
        &json!({
            "deployment": {"deployment_id": "staging-2", "version": "2.4.0", "environment": "staging",
                "status": "RolledBack", "start_time": AT, "end_time": DONE, "duration_seconds": 90},
            "release_info": {"version": "2.4.0", "tag": "v2.4.0", "commit_hash": "c0ffee240",
                "release_notes": "Release 2.4.0", "released_by": null},
            "validation_results": {
                "pre_deployment": {"result": "Passed", "message": null},
                "post_deployment": {"result": "Passed", "message": null},
                "health_checks": [{"name": "error-rate", "type": "Prometheus", "result": "Failed",
                    "message": "value 0.2 is not < 0.05", "at": DONE}],
                "functional_tests": null},
            "rollback_capability": {"available": true, "previous_version": "2.3.0", "rollback_possible": true},
        })
    );

    // The whole output validates against the report's published JSON Schema (docs/), with an
    // independent validator (python3-jsonschema).
    let report = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(report.path(), serde_json::to_vec(&json).unwrap()).unwrap();
    let schema = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/status-report.schema.json");
    let validate = "import json, sys, jsonschema\n\
        schema = json.load(open(sys.argv[1]))\n\
        jsonschema.Draft202012Validator.check_schema(schema)\n\
        jsonschema.Draft202012Validator(schema).validate(json.load(open(sys.argv[2])))";
    let out = std::process::Command::new("python3")
        .args(["-c", validate, schema])
        .arg(report.path())
        .output()
        .expect("python3 (with python3-jsonschema) runs");
    assert!(out.status.success(), "the report does not match {schema}:\n{}", String::from_utf8_lossy(&out.stderr));

    let yaml: Value = serde_norway::from_str(&conveyor(&["status", "checkout", "-n", &ns, "-o", "yaml"]).ok().stdout)
        .expect("the output is YAML");
    assert_eq!(yaml, json);
}

#[tokio::test]
async fn an_unknown_pipeline_is_an_error() {
    let ns = setup("cli-status-unknown").await;
    conveyor(&["status", "cart", "-n", &ns])
        .fails_with(&[&format!("no Pipeline `cart` in namespace {ns}"), "kubectl get pipelines -A"]);
    // An empty namespace is not an error: nothing to show.
    let client = support::client().await;
    let empty = support::namespace(&client, "cli-status-empty").await;
    let run = conveyor(&["status", "-n", &empty]).ok();
    assert_eq!(run.stdout, "");
    assert!(run.stderr.contains(&format!("no Pipelines in namespace {empty}")), "{}", run.stderr);
    assert_eq!(conveyor(&["status", "-n", &empty, "-o", "json"]).ok().stdout.trim(), "[]");
}

// ---------------------------------------------------------------------------------------------
// `conveyor status --watch` with the real controller: releases walk, the watch follows.

use conveyor::api::pipeline::EnvironmentPhase;
use support::cli::Run;
use support::kubelet::Kubelet;
use support::probe_server::ProbeServer;
use support::world::{THREE, World, app};

/// `conveyor status <args>` run to its end on a blocking thread, so that the test's runtime
/// (the test kubelet, the probe server) keeps running meanwhile.
async fn run_watch(args: &[&str]) -> Run {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        support::cli::conveyor(&args)
    })
    .await
    .unwrap()
}

/// `(environment, phase)` of each line of a line-mode watch about pipeline `shop`, in order.
fn phases(stdout: &str) -> Vec<(String, String)> {
    stdout
        .lines()
        .filter_map(|line| {
            let (env, text) = line.split_once("] shop/")?.1.split_once(": ")?;
            Some((env.to_owned(), text.split_whitespace().next()?.to_owned()))
        })
        .collect()
}

/// The cells of the final frame's row for `env` (the last line starting with its name).
fn final_row<'a>(frame: &'a str, env: &str) -> Vec<&'a str> {
    let line = frame.lines().rev().find(|l| l.split_whitespace().next() == Some(env));
    line.unwrap_or_else(|| panic!("no row for {env} in:\n{frame}")).split_whitespace().collect()
}

#[tokio::test]
async fn watch_prints_a_line_per_change_until_the_release_is_healthy_everywhere() {
    let w = World::new("cli-watch-lines", &THREE, &[]).await;
    let _kubelet = Kubelet::start(w.client.clone(), &w.namespaces());
    w.pipeline(|_| json!({})).await;
    let release = w.release("1.0.0", &app("1.0.0")).await;
    // Started while the release is on its way: it waits for it, then follows it.
    let run = run_watch(&["status", "shop", "-n", &w.ns, "--watch", "--timeout", "90s"]).await;
    assert!(run.success, "the watch failed:\n{}\n{}", run.stdout, run.stderr);
    assert!(!run.stdout.contains('\x1b'), "no escape codes into a pipe:\n{}", run.stdout);

    let seen = phases(&run.stdout);
    let at = |env: &str, phase: &str| seen.iter().position(|(e, p)| e == env && p == phase);
    let moving = |env: &str| {
        seen.iter().position(|(e, p)| e == env && ["Deploying", "Verifying", "Soaking"].contains(&p.as_str()))
    };
    let mut healthy_before = None;
    for env in THREE {
        let healthy = at(env, "Healthy").unwrap_or_else(|| panic!("{env} never Healthy:\n{}", run.stdout));
        let started = moving(env).unwrap_or_else(|| panic!("{env} never seen deploying:\n{}", run.stdout));
        assert!(started < healthy, "{env}: Healthy before deploying:\n{}", run.stdout);
        if let Some(before) = healthy_before {
            assert!(started > before, "{env} started before the environment before it was Healthy:\n{}", run.stdout);
        }
        healthy_before = Some(healthy);
        let line = run.stdout.lines().find(|l| l.contains(&format!("shop/{env}: Healthy"))).unwrap();
        assert!(line.contains(&release), "{line}");
    }
    // The final frame: the table, every environment Healthy, and why the watch stopped.
    let (_, frame) = run.stdout.rsplit_once("\n\n").expect("a final frame after the lines");
    for env in THREE {
        assert_eq!(&final_row(&run.stdout, env)[..3], [env, "Healthy", "1.0.0"], "{frame}");
    }
    assert!(frame.trim_end().lines().last().unwrap().starts_with("settled after "), "{frame}");
    assert!(frame.trim_end().ends_with(": Ready"), "{frame}");

    // Settled already: one look, the same verdict, at once.
    let again = run_watch(&["status", "shop", "-n", &w.ns, "--watch"]).await.ok();
    assert!(again.stdout.contains("shop/production: Healthy"), "{}", again.stdout);
}

#[tokio::test]
async fn watch_exits_1_and_shows_the_failure_when_a_release_fails() {
    let probe = ProbeServer::start().await;
    probe.set_health(503);
    let w = World::new("cli-watch-fail", &["development"], &[]).await;
    let _kubelet = Kubelet::start(w.client.clone(), &w.namespaces());
    let url = probe.url("/healthz");
    w.pipeline(|_| json!({"healthChecks": {"http": [{"name": "healthz", "url": url, "interval": "1s"}]}})).await;
    w.release("1.0.0", &app("1.0.0")).await;
    let run = run_watch(&["status", "shop", "-n", &w.ns, "--watch", "--timeout", "90s"]).await;
    assert!(!run.success, "a failed release is not success:\n{}", run.stdout);
    assert!(
        run.stderr.contains("shop is not Ready: Stalled DeploymentFailed: development:"),
        "the reason on stderr: {}",
        run.stderr
    );
    let failed = run.stdout.lines().find(|l| l.contains("shop/development: Failed")).expect(&run.stdout);
    assert!(failed.contains("healthz failed") && failed.contains("503"), "{failed}");
    assert_eq!(&final_row(&run.stdout, "development")[..3], ["development", "Failed", "1.0.0"], "{}", run.stdout);
    assert!(run.stdout.contains("settled after") && run.stdout.contains("not Ready"), "{}", run.stdout);
}

#[test]
fn watch_refuses_a_report_format() {
    let run = support::cli::command().args(["status", "--watch", "-o", "json"]).output().unwrap();
    Run::from(run).fails_with(&["--watch", "-o json"]);
    let run = support::cli::command().args(["status", "--timeout", "1m"]).output().unwrap();
    Run::from(run).fails_with(&["--timeout", "--watch"]);
}

/// A release walks development and staging (Manual): the watch in a real terminal redraws in
/// place, says it waits for approval, and Ctrl-C stops it with 130 and a tidy terminal; a second
/// watch follows the approved release to the end: every environment Healthy, exit 0.
#[tokio::test]
async fn watch_in_a_terminal_redraws_in_place() {
    let w = World::new("cli-watch-tty", &["development", "staging"], &[]).await;
    let _kubelet = Kubelet::start(w.client.clone(), &w.namespaces());
    w.pipeline(|env| if env == "staging" { json!({"approval": "Manual"}) } else { json!({}) }).await;
    let release = w.release("1.0.0", &app("1.0.0")).await;
    let args = ["status", "shop", "-n", &w.ns, "--watch", "--timeout", "90s"].map(str::to_owned);

    let first = args.clone();
    let interrupted = tokio::task::spawn_blocking(move || {
        let tty = tty::Tty::spawn(&first, &[]);
        tty.wait_for("waiting for approval");
        tty.type_keys(b"\x03");
        tty.finish()
    })
    .await
    .unwrap();
    assert_eq!(interrupted.code, Some(130), "Ctrl-C exits 130:\n{}", interrupted.text);
    let frames = interrupted.frames();
    assert!(frames.len() >= 2, "redrawn, not printed once:\n{}", interrupted.text);
    assert!(interrupted.text.contains("\r\x1b["), "the cursor goes back up over the frame");
    let last = frames.last().unwrap();
    assert_eq!(&final_row(last, "development")[..3], ["development", "Healthy", "1.0.0"], "{last}");
    assert!(last.contains("interrupted after"), "{last}");
    assert!(interrupted.text.ends_with("\x1b[?7h"), "line wrap restored last: {:?}", interrupted.tail());
    assert!(interrupted.text.contains("\x1b[32m"), "colours on a terminal");

    let second = args.clone();
    let watching = tokio::task::spawn_blocking(move || {
        let tty = tty::Tty::spawn(&second, &[("NO_COLOR", "1")]);
        tty.wait_for("waiting for approval");
        tty
    })
    .await
    .unwrap();
    conveyor(&["approve", "shop", "staging", "-n", &w.ns]).ok();
    w.settled("staging", EnvironmentPhase::Healthy, &release).await;
    let done = tokio::task::spawn_blocking(move || watching.finish()).await.unwrap();
    assert_eq!(done.code, Some(0), "settled Ready:\n{}", done.text);
    let frames = done.frames();
    assert!(frames.iter().any(|f| f.contains("Verifying") || f.contains("Deploying")), "{}", done.text);
    let last = frames.last().unwrap();
    for env in ["development", "staging"] {
        assert_eq!(&final_row(last, env)[..3], [env, "Healthy", "1.0.0"], "{last}");
    }
    assert!(last.contains("settled after") && last.trim_end().ends_with(": Ready"), "{last}");
    assert!(!done.text.contains("\x1b[32m"), "NO_COLOR: no colours");
}

#[tokio::test]
async fn kubectl_runs_conveyor_as_a_plugin() {
    let ns = setup("cli-status-kubectl").await;
    let plugins = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_conveyor"), plugins.path().join("kubectl-conveyor")).unwrap();
    let kubectl_run = |args: &[&str]| kubectl(args, Some(plugins.path()));
    let table = kubectl_run(&["conveyor", "status", "checkout", "-n", &ns]).ok();
    assert_eq!(table.stdout, conveyor(&["status", "checkout", "-n", &ns]).ok().stdout);
    assert!(table.stdout.contains("ENVIRONMENT") && table.stdout.contains("staging"), "{}", table.stdout);
    let help = kubectl_run(&["conveyor", "status", "--help"]).ok();
    assert!(help.stdout.contains("Usage: kubectl conveyor status"), "{}", help.stdout);
    let listed = kubectl_run(&["plugin", "list"]);
    assert!(listed.stdout.contains("kubectl-conveyor"), "{}{}", listed.stdout, listed.stderr);
}

/// A program in a pseudo-terminal of its own, as in a person's terminal (session leader with the
/// terminal as its controlling terminal, so that Ctrl-C typed there interrupts it).
mod tty {
    use std::fs::File;
    use std::io::{Read, Write};
    use std::os::fd::FromRawFd;
    use std::os::unix::process::CommandExt;
    use std::process::Child;
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    const DEADLINE: Duration = Duration::from_secs(90);

    pub struct Tty {
        master: File,
        child: Child,
        output: Arc<Mutex<Vec<u8>>>,
        reader: std::thread::JoinHandle<()>,
    }

    /// Everything the terminal received, and the exit code.
    pub struct Screen {
        pub text: String,
        pub code: Option<i32>,
    }

    impl Screen {
        /// Each frame drawn: what follows each "line wrap off", escape codes removed.
        pub fn frames(&self) -> Vec<String> {
            self.text.split("\x1b[?7l").skip(1).map(plain).collect()
        }

        pub fn tail(&self) -> &str {
            let start = self.text.char_indices().rev().nth(200).map_or(0, |(i, _)| i);
            &self.text[start..]
        }
    }

    /// `text` without ANSI escape sequences (CSI: ESC [ params final-byte).
    fn plain(text: &str) -> String {
        let mut out = String::new();
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '\x1b' && chars.peek() == Some(&'[') {
                chars.next();
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            } else if c != '\r' {
                out.push(c);
            }
        }
        out
    }

    impl Tty {
        /// Runs `conveyor <args>` in a new 160×50 terminal (TERM=xterm).
        pub fn spawn(args: &[String], env: &[(&str, &str)]) -> Self {
            let (mut master, mut slave) = (0, 0);
            let size = libc::winsize { ws_row: 50, ws_col: 160, ws_xpixel: 0, ws_ypixel: 0 };
            // SAFETY: openpty writes two descriptors into the integers given; no name, default termios.
            let rc = unsafe { libc::openpty(&mut master, &mut slave, std::ptr::null_mut(), std::ptr::null(), &size) };
            assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
            // SAFETY: both descriptors were just opened and are owned here only.
            let (master, slave) = unsafe { (File::from_raw_fd(master), File::from_raw_fd(slave)) };
            let mut cmd = super::support::cli::command();
            cmd.args(args)
                .env("KUBECONFIG", super::support::kubeconfig())
                .env("TERM", "xterm")
                .env_remove("NO_COLOR")
                .stdin(slave.try_clone().unwrap())
                .stdout(slave.try_clone().unwrap())
                .stderr(slave.try_clone().unwrap());
            for (k, v) in env {
                cmd.env(k, v);
            }
            // SAFETY: only async-signal-safe calls between fork and exec.
            unsafe {
                cmd.pre_exec(|| {
                    if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
            let child = cmd.spawn().expect("start conveyor in a terminal");
            // Only the child holds the terminal's other end now: its exit ends the reads.
            drop(cmd);
            drop(slave);
            let output = Arc::new(Mutex::new(Vec::new()));
            let (sink, mut from) = (output.clone(), master.try_clone().unwrap());
            let reader = std::thread::spawn(move || {
                let mut buf = [0; 4096];
                // Linux answers EIO once the terminal's last other end is closed.
                while let Ok(n) = from.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    sink.lock().unwrap().extend_from_slice(&buf[..n]);
                }
            });
            Self { master, child, output, reader }
        }

        fn text(&self) -> String {
            String::from_utf8_lossy(&self.output.lock().unwrap()).into_owned()
        }

        /// Waits until the terminal shows `what` (escape codes removed).
        pub fn wait_for(&self, what: &str) {
            let end = Instant::now() + DEADLINE;
            while !plain(&self.text()).contains(what) {
                assert!(Instant::now() < end, "the terminal never showed {what:?}:\n{}", plain(&self.text()));
                std::thread::sleep(Duration::from_millis(50));
            }
        }

        /// Types `keys` into the terminal.
        pub fn type_keys(&self, keys: &[u8]) {
            (&self.master).write_all(keys).unwrap();
        }

        /// Waits for the program to exit; what the terminal received.
        pub fn finish(mut self) -> Screen {
            let end = Instant::now() + DEADLINE;
            let status = loop {
                if let Some(status) = self.child.try_wait().unwrap() {
                    break status;
                }
                if Instant::now() > end {
                    let _ = self.child.kill();
                    panic!("still running after {DEADLINE:?}:\n{}", plain(&self.text()));
                }
                std::thread::sleep(Duration::from_millis(50));
            };
            let text = {
                let Self { reader, output, .. } = self;
                reader.join().unwrap();
                String::from_utf8_lossy(&output.lock().unwrap()).into_owned()
            };
            Screen { text, code: status.code() }
        }
    }
}
