//! Webhook notifications from the real controller process on the real API server: a release
//! walking three environments is announced to every receiver in the order it happened (JSON and
//! Slack-compatible), a failed release is announced as failed and then rolled back, a dead
//! receiver configured first neither holds up the promotions nor the other receivers, a release
//! blocked by a namespace that has not opted in is announced once, and what is still queued at
//! SIGTERM goes out before the process exits.

mod support;

use std::time::Duration;

use conveyor::api::pipeline::EnvironmentPhase;
use serde_json::{Value, json};
use support::kubelet::Kubelet;
use support::probe_server::ProbeServer;
use support::webhook::{HangingReceiver, Received, WebhookReceiver};
use support::world::*;

const DEV: &str = "development";

/// (type, environment, release) of each JSON notification, in order.
fn summary(received: &[Received]) -> Vec<(String, String, String)> {
    received
        .iter()
        .map(|r| {
            let field = |k: &str| r.body[k].as_str().unwrap_or_else(|| panic!("no {k} in {}", r.body)).to_owned();
            (field("type"), field("environment"), field("release"))
        })
        .collect()
}

fn triples(expected: &[(&str, &str, &str)]) -> Vec<(String, String, String)> {
    expected.iter().map(|(a, b, c)| ((*a).to_owned(), (*b).to_owned(), (*c).to_owned())).collect()
}

/// What a three-environment walk of `release` announces, in order.
fn walk(release: &str) -> Vec<(String, String, String)> {
    triples(&[
        ("deploy_started", "development", release),
        ("healthy", "development", release),
        ("promoted", "staging", release),
        ("healthy", "staging", release),
        ("promoted", "production", release),
        ("healthy", "production", release),
    ])
}

#[tokio::test]
async fn a_release_walking_the_environments_is_announced_in_order_to_every_receiver() {
    let json_receiver = WebhookReceiver::start(200);
    let slack_receiver = WebhookReceiver::start(200);
    // The env var form: a plain URL takes JSON, `slack=` chooses Slack's format.
    let webhooks = format!("{},slack={}", json_receiver.url("/conveyor?token=t"), slack_receiver.url("/hooks/abc"));
    let w =
        World::with_controller_env("notify-walk", &THREE, &[], &[("CONVEYOR_NOTIFICATION_WEBHOOKS", &webhooks)]).await;
    let _kubelet = Kubelet::start(w.client.clone(), &w.namespaces());
    w.pipeline(|_| json!({})).await;
    let release = w.release("1.0.0", &app("1.0.0")).await;
    w.settled("production", EnvironmentPhase::Healthy, &release).await;

    let got = json_receiver.wait_for(6, LONG).await;
    assert_eq!(summary(&got), walk(&release), "{got:#?}");
    let mut ids = Vec::new();
    let mut last_time = jiff::Timestamp::MIN;
    for (r, (kind, env, _)) in got.iter().zip(walk(&release)) {
        assert_eq!(r.path, "/conveyor?token=t");
        assert_eq!(r.content_type.as_deref(), Some("application/json"));
        let b = &r.body;
        assert_eq!(b["namespace"], w.ns.as_str(), "{b}");
        assert_eq!(b["pipeline"], "shop", "{b}");
        assert_eq!(b["version"], "1.0.0", "{b}");
        assert_eq!(b["deployment_id"], format!("{env}-1"), "{b}");
        assert_eq!(b["severity"], "info", "{b}");
        let reason = b["reason"].as_str().unwrap();
        let message = b["message"].as_str().unwrap();
        match kind.as_str() {
            "deploy_started" => {
                assert_eq!(reason, "Deploying");
                assert!(message.contains(&format!("deploying {release} to development")), "{message}");
            }
            "promoted" => {
                assert_eq!(reason, "Promoting");
                assert!(message.contains(&format!("to {env}")), "{message}");
            }
            _ => {
                assert_eq!(reason, "Healthy");
                assert!(message.contains(&format!("is healthy in {env}")), "{message}");
            }
        }
        let time: jiff::Timestamp = b["time"].as_str().unwrap().parse().expect("time is RFC 3339");
        assert!(time >= last_time, "notifications out of time order: {got:#?}");
        last_time = time;
        ids.push(b["id"].as_str().unwrap().to_owned());
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 6, "ids are unique per notification");

    // The Slack-format receiver got the same story as one line each.
    let texts: Vec<String> = slack_receiver
        .wait_for(6, LONG)
        .await
        .iter()
        .map(|r| {
            let obj = r.body.as_object().expect("a JSON object");
            assert_eq!(obj.keys().collect::<Vec<_>>(), ["text"], "{}", r.body);
            r.body["text"].as_str().unwrap().to_owned()
        })
        .collect();
    let headlines: Vec<String> = walk(&release)
        .iter()
        .map(|(kind, env, _)| {
            let headline = match kind.as_str() {
                "deploy_started" => "Deploy started",
                "promoted" => "Promoted",
                _ => "Healthy",
            };
            format!("[{}/shop] {headline} {release} in {env}: ", w.ns)
        })
        .collect();
    for (text, headline) in texts.iter().zip(&headlines) {
        assert!(text.starts_with(headline.as_str()), "{text:?} should start with {headline:?}");
        assert!(!text.contains('\n'), "{text:?}");
    }
    assert_eq!(texts.len(), 6, "{texts:#?}");
    // Counted once per receiver.
    let delivered = "conveyor_notifications_total{result=\"delivered\"}";
    support::poll("12 deliveries counted", support::DEADLINE, || async {
        w.controller.metric(delivered).await.filter(|n| *n == 12.0)
    })
    .await;
    let logs = w.controller.logs();
    assert!(logs.contains("webhook notification delivered"), "{logs}");
    assert!(!logs.contains("token=t") && !logs.contains("/hooks/abc"), "a webhook URL was logged");
}

#[tokio::test]
async fn a_failed_release_is_announced_as_failed_then_rolled_back() {
    let app_server = ProbeServer::start().await;
    let json_receiver = WebhookReceiver::start(200);
    let slack_receiver = WebhookReceiver::start(200);
    // The file form: mappings choosing the format.
    let config = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        config.path(),
        format!(
            "notification_webhooks:\n  - {{url: \"{}\", format: json}}\n  - {{url: \"{}\", format: slack}}\n",
            json_receiver.url("/json"),
            slack_receiver.url("/slack")
        ),
    )
    .unwrap();
    let config_path = config.path().to_str().unwrap();
    let w = World::with_controller_env("notify-fail", &[DEV], &[], &[("CONVEYOR_CONFIG", config_path)]).await;
    let _kubelet = Kubelet::start(w.client.clone(), &w.namespaces());
    let url = app_server.url("/healthz");
    w.pipeline(|_| json!({"healthChecks": {"http": [{"name": "healthz", "url": url, "interval": "1s"}]}})).await;
    let good = w.release("1.0.0", &app("1.0.0")).await;
    w.settled(DEV, EnvironmentPhase::Healthy, &good).await;

    // 1.1.0 ships while the application answers 503: its check fails, and 1.0.0 comes back.
    app_server.set_health(503);
    let bad = w.release("1.1.0", &app("1.1.0")).await;
    w.until("development rolling back", |p| {
        environment(p, DEV).is_some_and(|e| e.phase == EnvironmentPhase::RollingBack)
    })
    .await;
    app_server.set_health(200);
    w.settled(DEV, EnvironmentPhase::Healthy, &good).await;

    let got = json_receiver.wait_for(5, LONG).await;
    assert_eq!(
        summary(&got),
        triples(&[
            ("deploy_started", DEV, &good),
            ("healthy", DEV, &good),
            ("deploy_started", DEV, &bad),
            ("failed", DEV, &bad),
            ("rolled_back", DEV, &bad),
        ]),
        "{got:#?}"
    );
    let failed = &got[3].body;
    assert_eq!((failed["reason"].as_str(), failed["severity"].as_str()), (Some("RollingBack"), Some("warning")));
    assert_eq!(failed["version"], "1.1.0");
    assert_eq!(failed["deployment_id"], "development-2");
    let message = failed["message"].as_str().unwrap();
    assert!(
        message.contains("HTTP check healthz failed") && message.contains("rolling back to shop-1.0.0"),
        "{message}"
    );
    let rolled_back = &got[4].body;
    assert_eq!(rolled_back["reason"], "RolledBack");
    assert!(rolled_back["message"].as_str().unwrap().contains("rolled back to shop-1.0.0"), "{rolled_back}");

    let texts: Vec<Value> =
        slack_receiver.wait_for(5, LONG).await.into_iter().map(|r| r.body["text"].clone()).collect();
    let failed = texts[3].as_str().unwrap();
    assert!(failed.starts_with(&format!("*Warning:* [{}/shop] Failed {bad} in {DEV}: ", w.ns)), "{failed}");
    let rolled_back = texts[4].as_str().unwrap();
    assert!(
        rolled_back.starts_with(&format!("*Warning:* [{}/shop] Rolled back {bad} in {DEV}: ", w.ns)),
        "{rolled_back}"
    );
}

#[tokio::test]
async fn a_dead_receiver_holds_up_neither_promotions_nor_other_receivers() {
    // Configured first: one that never answers, one that fails every request, then a live one.
    let hanging = HangingReceiver::start();
    let failing = WebhookReceiver::start(500);
    let live = WebhookReceiver::start(200);
    let webhooks = format!("{},{},{}", hanging.url("/dead"), failing.url("/failing"), live.url("/live"));
    // An attempt's deadline far beyond the test: the hanging receiver keeps its first request
    // for as long as the controller is not the one waiting on it.
    let env = [("CONVEYOR_NOTIFICATION_WEBHOOKS", webhooks.as_str()), ("CONVEYOR_NOTIFICATION_TIMEOUT", "1h")];
    let mut w = World::with_controller_env("notify-dead", &THREE, &[], &env).await;
    let _kubelet = Kubelet::start(w.client.clone(), &w.namespaces());
    w.pipeline(|_| json!({})).await;
    let release = w.release("1.0.0", &app("1.0.0")).await;
    w.settled("production", EnvironmentPhase::Healthy, &release).await;

    // Every environment is Healthy and the live receiver has the whole story…
    let got = live.wait_for(6, LONG).await;
    assert_eq!(summary(&got), walk(&release), "{got:#?}");
    // …while the hanging receiver still holds the first notification's one request, unanswered,
    // its sender still waiting on it: nothing else waited for it.
    let held = hanging.connections();
    assert_eq!(held.len(), 1, "one connection, never retried: {held:?}");
    assert!(!held[0].closed, "the sender gave up on the hanging receiver");
    let first = held[0].body().expect("the first notification's request arrived whole");
    assert_eq!((first["type"].as_str(), first["id"].as_str()), (Some("deploy_started"), got[0].body["id"].as_str()));

    // The failing receiver gets every attempt of a notification with the same id, 5 in all,
    // then the next notification: it was retried, given up, and did not block its own queue.
    let attempts = failing.wait_for(6, LONG).await;
    let ids: Vec<&str> = attempts.iter().map(|r| r.body["id"].as_str().unwrap()).collect();
    assert!(ids[..5].iter().all(|id| *id == ids[0]), "{ids:?}");
    assert_eq!(ids[0], got[0].body["id"].as_str().unwrap());
    assert_eq!(ids[5], got[1].body["id"].as_str().unwrap(), "{ids:?}");
    let failed = "conveyor_notifications_total{result=\"failed\"}";
    support::poll("a failure counted", support::DEADLINE, || async {
        w.controller.metric(failed).await.filter(|n| *n >= 1.0)
    })
    .await;
    let logs = w.controller.logs();
    assert!(logs.contains("webhook notification not delivered; giving up"), "{logs}");
    assert!(!logs.contains("/failing") && !logs.contains("/dead"), "a webhook URL was logged");

    // Shutting down does not wait for the hanging request.
    assert_eq!(w.controller.terminate(), Some(0));
}

#[tokio::test]
async fn notifications_still_queued_at_sigterm_are_delivered_before_exit() {
    // Each answer takes 2 s and counts only once given: when the release settles, the receiver
    // has not answered both notifications yet, and a process that exited at once would lose them.
    let receiver = WebhookReceiver::start_slow(200, Duration::from_secs(2));
    let webhooks = receiver.url("/hook");
    let mut w =
        World::with_controller_env("notify-drain", &[DEV], &[], &[("CONVEYOR_NOTIFICATION_WEBHOOKS", &webhooks)]).await;
    let _kubelet = Kubelet::start(w.client.clone(), &w.namespaces());
    w.pipeline(|_| json!({})).await;
    let release = w.release("1.0.0", &app("1.0.0")).await;
    w.settled(DEV, EnvironmentPhase::Healthy, &release).await;
    let answered = receiver.received().len();
    assert!(answered < 2, "the receiver answered {answered} before SIGTERM: the test shows nothing");

    assert_eq!(w.controller.terminate(), Some(0), "{}", w.controller.logs());
    let expected = triples(&[("deploy_started", DEV, &release), ("healthy", DEV, &release)]);
    assert_eq!(summary(&receiver.received()), expected);
    assert!(!w.controller.logs().contains("abandoned"), "{}", w.controller.logs());
}

#[tokio::test]
async fn a_release_blocked_by_a_namespace_that_has_not_opted_in_is_announced_once() {
    let receiver = WebhookReceiver::start(200);
    let webhooks = receiver.url("/hook");
    let w = World::with_controller_env(
        "notify-blocked",
        &[DEV, "production"],
        &["production"],
        &[("CONVEYOR_NOTIFICATION_WEBHOOKS", &webhooks)],
    )
    .await;
    let _kubelet = Kubelet::start(w.client.clone(), &w.namespaces());
    w.pipeline(|_| json!({})).await;
    let release = w.release("1.0.0", &app("1.0.0")).await;
    w.settled(DEV, EnvironmentPhase::Healthy, &release).await;

    let got = receiver.wait_for(3, LONG).await;
    let expected =
        triples(&[("deploy_started", DEV, &release), ("healthy", DEV, &release), ("blocked", "production", &release)]);
    assert_eq!(summary(&got), expected, "{got:#?}");
    let blocked = &got[2].body;
    assert_eq!(
        (blocked["reason"].as_str(), blocked["severity"].as_str()),
        (Some("NamespaceNotAllowed"), Some("warning"))
    );
    let message = blocked["message"].as_str().unwrap();
    assert!(message.contains(w.namespace("production")) && message.contains("allow-from"), "{message}");
    // Announced on the transition, not on every look: after a spec change the controller has
    // reconciled (its status observes the new generation), and there is still one.
    let before = w.pipelines.get("shop").await.unwrap().metadata.generation;
    w.pipeline(|_| json!({"soak": "1s"})).await;
    support::poll("the changed pipeline reconciled", support::DEADLINE, || async {
        let p = w.pipelines.get("shop").await.ok()?;
        let observed = p.status?.observed_generation;
        (p.metadata.generation != before && observed == p.metadata.generation).then_some(())
    })
    .await;
    assert_eq!(receiver.received().len(), 3, "{:#?}", receiver.received());
}
