//! What a notification says, built from a planner Event (pure): which events are announced,
//! the JSON payload, and the Slack-compatible line.

use jiff::Timestamp;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::config::WebhookFormat;
use crate::core::plan::{self, EnvironmentState};

/// What happened, as receivers see it (`type` in the JSON payload).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A release started deploying into the first environment.
    DeployStarted,
    /// A release that passed an environment started deploying into the next one.
    Promoted,
    /// A release passed its checks (and soak) in an environment.
    Healthy,
    /// A release waits for `conveyor approve` to enter an environment.
    AwaitingApproval,
    /// A deployment or a rollback failed (an automatic rollback starts with this one).
    Failed,
    /// A rollback requested with `conveyor rollback` started.
    RollingBack,
    /// A rollback finished: the environment runs the restored release again.
    RolledBack,
    /// A release cannot enter an environment whose namespace the controller may not deploy to.
    Blocked,
    /// A rollback requested with `conveyor rollback` was refused (the message says why).
    RollbackRefused,
}

impl Kind {
    /// The kind a planner Event announces; `None` for any other Event.
    pub fn of(event: &plan::Event) -> Option<Self> {
        Some(match event.reason {
            "Deploying" => Self::DeployStarted,
            "Promoting" => Self::Promoted,
            "Healthy" => Self::Healthy,
            "AwaitingApproval" => Self::AwaitingApproval,
            "DeploymentFailed" | "DeployFailed" | "RollbackFailed" => Self::Failed,
            // The planner makes no separate failure Event when an automatic rollback starts:
            // its Warning `RollingBack` is that failure ("… failed in …; rolling back to …").
            "RollingBack" if event.warning => Self::Failed,
            "RollingBack" => Self::RollingBack,
            "RolledBack" => Self::RolledBack,
            "NamespaceNotAllowed" => Self::Blocked,
            "RollbackRefused" => Self::RollbackRefused,
            _ => return None,
        })
    }

    /// The name receivers see (`deploy_started`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::DeployStarted => "deploy_started",
            Self::Promoted => "promoted",
            Self::Healthy => "healthy",
            Self::AwaitingApproval => "awaiting_approval",
            Self::Failed => "failed",
            Self::RollingBack => "rolling_back",
            Self::RolledBack => "rolled_back",
            Self::Blocked => "blocked",
            Self::RollbackRefused => "rollback_refused",
        }
    }

    /// A few words for the Slack line.
    fn headline(self) -> &'static str {
        match self {
            Self::DeployStarted => "Deploy started",
            Self::Promoted => "Promoted",
            Self::Healthy => "Healthy",
            Self::AwaitingApproval => "Awaiting approval",
            Self::Failed => "Failed",
            Self::RollingBack => "Rolling back",
            Self::RolledBack => "Rolled back",
            Self::Blocked => "Blocked",
            Self::RollbackRefused => "Rollback refused",
        }
    }
}

/// `info`, or `warning` for what needs a person's attention (the Event was a Warning).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Things going as planned.
    Info,
    /// A failure or an automatic rollback.
    Warning,
}

/// Where an Event happened and what runs there, as the shell knows it.
#[derive(Clone, Copy, Debug)]
pub struct Subject<'a> {
    /// The Pipeline's namespace.
    pub namespace: &'a str,
    /// The Pipeline's name.
    pub pipeline: &'a str,
    /// The Pipeline's uid: a Pipeline deleted and made again starts its deployment ids afresh,
    /// and its notifications must not share ids with the old one's.
    pub pipeline_uid: &'a str,
    /// The environment's name.
    pub environment: &'a str,
    /// The deployment of the Event's release there, when known.
    pub deployment_id: Option<&'a str>,
    /// The Event's release's version, when known.
    pub version: Option<&'a str>,
}

/// One notification, as every JSON receiver gets it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Notification {
    /// Stable id: the same for every attempt (and for the same Event made again after a
    /// restart), so a receiver can drop duplicates.
    pub id: String,
    /// What happened.
    #[serde(rename = "type")]
    pub kind: Kind,
    /// The Kubernetes Event's reason (PascalCase, stable), finer than `type`.
    pub reason: &'static str,
    /// Info or warning.
    pub severity: Severity,
    /// The Pipeline's namespace.
    pub namespace: String,
    /// The Pipeline.
    pub pipeline: String,
    /// The environment.
    pub environment: String,
    /// The Release object's name.
    pub release: String,
    /// The release's version, when known.
    pub version: Option<String>,
    /// The deployment (`<environment>-<n>`), when known.
    pub deployment_id: Option<String>,
    /// The Event's message.
    pub message: String,
    /// When it was announced (RFC 3339).
    pub time: String,
}

impl Notification {
    /// The notification announcing `event`, or `None` when the Event is not announced.
    pub fn new(subject: &Subject<'_>, event: &plan::Event, now: Timestamp) -> Option<Self> {
        let kind = Kind::of(event)?;
        let id = {
            let mut hash = Sha256::new();
            for part in [
                subject.pipeline_uid,
                subject.namespace,
                subject.pipeline,
                subject.environment,
                subject.deployment_id.unwrap_or(""),
                &event.release,
                event.reason,
                &event.message,
            ] {
                hash.update(part.as_bytes());
                hash.update([0]);
            }
            hash.finalize()[..16].iter().map(|b| format!("{b:02x}")).collect()
        };
        Some(Self {
            id,
            kind,
            reason: event.reason,
            severity: if event.warning { Severity::Warning } else { Severity::Info },
            namespace: subject.namespace.to_owned(),
            pipeline: subject.pipeline.to_owned(),
            environment: subject.environment.to_owned(),
            release: event.release.clone(),
            version: subject.version.map(str::to_owned),
            deployment_id: subject.deployment_id.map(str::to_owned),
            message: event.message.clone(),
            time: Timestamp::from_second(now.as_second()).unwrap_or(now).to_string(),
        })
    }

    /// One readable line for chat (Slack mrkdwn, special characters escaped).
    pub fn slack_text(&self) -> String {
        let release = match &self.version {
            // Release names usually carry their version already.
            Some(v) if !self.release.contains(v.as_str()) => format!("{} ({v})", self.release),
            _ => self.release.clone(),
        };
        let line = format!(
            "[{}/{}] {} {release} in {}: {}",
            self.namespace,
            self.pipeline,
            self.kind.headline(),
            self.environment,
            self.message
        );
        let marker = match self.severity {
            Severity::Info => "",
            Severity::Warning => "*Warning:* ",
        };
        format!("{marker}{}", slack_escape(&line))
    }

    /// The request body for a receiver of `format`.
    pub fn body(&self, format: WebhookFormat) -> Vec<u8> {
        let value = match format {
            WebhookFormat::Json => serde_json::to_value(self),
            WebhookFormat::Slack => Ok(serde_json::json!({ "text": self.slack_text() })),
        };
        serde_json::to_vec(&value.expect("a notification is plain strings")).expect("JSON values serialize")
    }
}

/// Slack's three control characters in text (`&`, `<`, `>`), as its docs ask.
fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// The deployment of `release` in an environment after the plan: the current one when it runs
/// `release`, else the newest finished one that did (a refused or rolled-back deployment is no
/// longer current). Returns its id and version.
pub fn deployment_of<'a>(state: &'a EnvironmentState, release: &str) -> Option<(&'a str, &'a semver::Version)> {
    if let Some(c) = state.current.as_ref().filter(|c| c.release == release) {
        return Some((&c.id, &c.version));
    }
    state.history.iter().find(|h| h.release == release).map(|h| (h.id.as_str(), &h.version))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::pipeline::DeploymentResult;
    use crate::core::fixtures::t;
    use crate::core::plan::{Deployment, Finished};
    use serde_json::{Value, json};

    fn event(reason: &'static str, warning: bool, release: &str, message: &str) -> plan::Event {
        plan::Event { warning, reason, message: message.to_owned(), environment: 1, release: release.to_owned() }
    }

    fn subject<'a>() -> Subject<'a> {
        Subject {
            namespace: "checkout",
            pipeline: "shop",
            pipeline_uid: "uid-1",
            environment: "staging",
            deployment_id: Some("staging-1"),
            version: Some("1.0.0"),
        }
    }

    #[test]
    fn every_event_about_a_deployment_or_a_request_is_announced_and_only_those() {
        let cases = [
            ("Deploying", false, Some(Kind::DeployStarted)),
            ("Promoting", false, Some(Kind::Promoted)),
            ("Healthy", false, Some(Kind::Healthy)),
            ("AwaitingApproval", false, Some(Kind::AwaitingApproval)),
            ("DeploymentFailed", true, Some(Kind::Failed)),
            ("DeployFailed", true, Some(Kind::Failed)),
            ("RollbackFailed", true, Some(Kind::Failed)),
            ("RollingBack", true, Some(Kind::Failed)),
            ("RollingBack", false, Some(Kind::RollingBack)),
            ("RolledBack", true, Some(Kind::RolledBack)),
            ("RolledBack", false, Some(Kind::RolledBack)),
            ("NamespaceNotAllowed", true, Some(Kind::Blocked)),
            ("RollbackRefused", true, Some(Kind::RollbackRefused)),
            ("Paused", false, None),
            ("", true, None),
        ];
        for (reason, warning, kind) in cases {
            assert_eq!(Kind::of(&event(reason, warning, "shop-1.0.0", "m")), kind, "{reason} warning={warning}");
        }
    }

    #[test]
    fn kinds_are_named_alike_in_payloads_and_logs() {
        use Kind::*;
        for kind in [
            DeployStarted,
            Promoted,
            Healthy,
            AwaitingApproval,
            Failed,
            RollingBack,
            RolledBack,
            Blocked,
            RollbackRefused,
        ] {
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str());
        }
    }

    #[test]
    fn the_json_payload_carries_every_field() {
        let e = event("Promoting", false, "shop-1.0.0", "promoting shop-1.0.0 from development to staging");
        let n = Notification::new(&subject(), &e, t(1_700_000_000)).unwrap();
        let body: Value = serde_json::from_slice(&n.body(WebhookFormat::Json)).unwrap();
        assert_eq!(
            body,
            json!({
                "id": n.id, "type": "promoted", "reason": "Promoting", "severity": "info",
                "namespace": "checkout", "pipeline": "shop", "environment": "staging",
                "release": "shop-1.0.0", "version": "1.0.0", "deployment_id": "staging-1",
                "message": "promoting shop-1.0.0 from development to staging",
                "time": "2023-11-14T22:13:20Z",
            })
        );
        assert_eq!(n.id.len(), 32);
        assert!(n.id.chars().all(|c| c.is_ascii_hexdigit()), "{}", n.id);

        let unknown = Subject { version: None, deployment_id: None, ..subject() };
        let body: Value =
            serde_json::from_slice(&Notification::new(&unknown, &e, t(0)).unwrap().body(WebhookFormat::Json)).unwrap();
        assert_eq!((&body["version"], &body["deployment_id"]), (&Value::Null, &Value::Null));
    }

    #[test]
    fn ids_are_stable_and_tell_events_apart() {
        let e = event("Healthy", false, "shop-1.0.0", "shop-1.0.0 is healthy in staging");
        let id = |s: &Subject, e: &plan::Event| Notification::new(s, e, t(0)).unwrap().id;
        // Same Event, later (a retry or a restart): same id.
        assert_eq!(Notification::new(&subject(), &e, t(5)).unwrap().id, id(&subject(), &e));
        let others = [
            id(&Subject { pipeline_uid: "uid-2", ..subject() }, &e),
            id(&Subject { environment: "production", ..subject() }, &e),
            id(&Subject { deployment_id: Some("staging-2"), ..subject() }, &e),
            id(&subject(), &event("Promoting", false, "shop-1.0.0", "shop-1.0.0 is healthy in staging")),
            id(&subject(), &event("Healthy", false, "shop-1.1.0", "shop-1.0.0 is healthy in staging")),
        ];
        for other in others {
            assert_ne!(other, id(&subject(), &e));
        }
    }

    #[test]
    fn the_slack_payload_is_one_escaped_line() {
        let e = event("Promoting", false, "shop-1.0.0", "promoting shop-1.0.0 from development to staging");
        let n = Notification::new(&subject(), &e, t(0)).unwrap();
        let body: Value = serde_json::from_slice(&n.body(WebhookFormat::Slack)).unwrap();
        assert_eq!(
            body,
            json!({"text": "[checkout/shop] Promoted shop-1.0.0 in staging: promoting shop-1.0.0 from development to staging"})
        );

        let e = event("RollingBack", true, "web-build-7", "web-build-7 failed in staging: <b> & co; rolling back");
        let n = Notification::new(&Subject { version: Some("2.0.0"), ..subject() }, &e, t(0)).unwrap();
        let text = n.slack_text();
        assert_eq!(
            text,
            "*Warning:* [checkout/shop] Failed web-build-7 (2.0.0) in staging: web-build-7 failed in staging: &lt;b&gt; &amp; co; rolling back"
        );
        assert!(!text.contains('\n'));
    }

    fn deployment(id: &str, release: &str, version: &str) -> Deployment {
        Deployment {
            id: id.into(),
            release: release.into(),
            version: semver::Version::parse(version).unwrap(),
            digest: "sha256:0".into(),
            started_at: t(0),
            healthy_since: None,
            applied_at: None,
            rollback_of: None,
        }
    }

    fn finished(d: &Deployment, result: DeploymentResult) -> Finished {
        Finished {
            id: d.id.clone(),
            release: d.release.clone(),
            version: d.version.clone(),
            result,
            started_at: t(0),
            finished_at: t(1),
            reason: None,
            rollback_of: None,
            checks: vec![],
        }
    }

    #[test]
    fn the_deployment_is_the_current_one_or_the_newest_that_ran_the_release() {
        let old = deployment("dev-1", "shop-1.0.0", "1.0.0");
        let bad = deployment("dev-2", "shop-1.1.0", "1.1.0");
        let rollback = deployment("dev-3", "shop-1.0.0", "1.0.0");
        // After an automatic rollback: 1.0.0 runs again (dev-3); 1.1.0's was dev-2.
        let state = EnvironmentState {
            current: Some(rollback.clone()),
            history: vec![
                finished(&rollback, DeploymentResult::Succeeded),
                finished(&bad, DeploymentResult::RolledBack),
                finished(&old, DeploymentResult::Succeeded),
            ],
            ..EnvironmentState::default()
        };
        let id = |release| deployment_of(&state, release).map(|(id, v)| (id.to_owned(), v.to_string()));
        assert_eq!(id("shop-1.0.0"), Some(("dev-3".into(), "1.0.0".into())));
        assert_eq!(id("shop-1.1.0"), Some(("dev-2".into(), "1.1.0".into())));
        assert_eq!(id("shop-2.0.0"), None);
    }
}
