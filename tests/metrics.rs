//! The controller's metrics as Prometheus sees them: a real Prometheus scrapes the controller
//! (and an application stand-in a health check queries) while a release passes and the next
//! fails its check and is rolled back. The health gauge flips to 0 and back to 1, the rollback
//! counter goes from 0 to 1, and the deployment counters and DORA histograms say what happened.

mod support;

use std::net::SocketAddr;

use conveyor::api::pipeline::EnvironmentPhase;
use serde_json::json;
use support::kubelet::Kubelet;
use support::probe_server::ProbeServer;
use support::prometheus::Prometheus;
use support::world::*;

const DEV: &str = "development";
const STAGING: &str = "staging";

#[tokio::test]
async fn prometheus_sees_the_health_gauge_flip_and_the_rollback_counted() {
    let app_server = ProbeServer::start().await;
    app_server.set_metric("app_error_ratio", 0.0);
    let w = World::new("metrics", &[DEV, STAGING], &[]).await;
    let controller: SocketAddr = w.controller.http.trim_start_matches("http://").parse().unwrap();
    let prometheus = Prometheus::start(&[app_server.addr(), controller]).await;
    let _kubelet = Kubelet::start(w.client.clone(), &w.namespaces());
    let check = json!({"name": "error-rate", "query": "max(app_error_ratio)", "condition": "< 0.05",
                       "interval": "1s", "address": prometheus.url().as_str()});
    w.pipeline(|env| {
        if env == DEV {
            json!({"healthChecks": {"prometheus": [check.clone()]}})
        } else {
            json!({"approval": "Manual"})
        }
    })
    .await;
    let gauge = |name: &str, env: &str| format!("{name}{{pipeline=\"shop\",environment=\"{env}\"}}");
    let healthy = gauge("conveyor_environment_healthy", DEV);
    let rollbacks = format!("sum(conveyor_rollbacks_total{{environment=\"{DEV}\",trigger=\"automatic\"}})");
    let deployments =
        |result: &str| format!("sum(conveyor_deployments_total{{environment=\"{DEV}\",result=\"{result}\"}})");

    // 1.0.0 passes in development and waits for approval to enter staging.
    let good = w.release("1.0.0", &app("1.0.0")).await;
    let p = w.settled(DEV, EnvironmentPhase::Healthy, &good).await;
    w.until("staging awaiting approval", |p| {
        environment(p, STAGING).map(|e| e.phase) == Some(EnvironmentPhase::AwaitingApproval)
    })
    .await;
    prometheus.wait_for_value(&healthy, |v| v == 1.0, LONG).await;
    prometheus.wait_for_value(&deployments("succeeded"), |v| v == 1.0, LONG).await;
    let info =
        format!("conveyor_environment_release_info{{environment=\"{DEV}\",release=\"{good}\",version=\"1.0.0\"}}");
    prometheus.wait_for_value(&info, |v| v == 1.0, LONG).await;
    let awaiting = gauge("conveyor_environment_phase", STAGING).replace('}', ",phase=\"AwaitingApproval\"}");
    prometheus.wait_for_value(&awaiting, |v| v == 1.0, LONG).await;
    // Staging's wait started when 1.0.0 finished healthy in development.
    let finished = history(&p, DEV)[0].finished_at.clone().unwrap().0.as_second() as f64;
    let pending = gauge("conveyor_environment_pending_since_timestamp_seconds", STAGING);
    prometheus.wait_for_value(&pending, |v| v == finished, LONG).await;
    // Lead time runs from the commit the test made moments ago, not from some other origin.
    let lead = format!("sum(conveyor_lead_time_seconds_sum{{environment=\"{DEV}\"}})");
    prometheus.wait_for_value(&lead, |v| (0.0..600.0).contains(&v), LONG).await;
    // The counters exist at 0 before anything happens, so the first rollback is an increase.
    prometheus.wait_for_value(&rollbacks, |v| v == 0.0, LONG).await;

    // 1.1.0 ships while the error ratio is high: the check fails, development rolls back.
    app_server.set_metric("app_error_ratio", 0.5);
    prometheus.wait_for_value("max(app_error_ratio)", |v| v > 0.4, LONG).await;
    w.release("1.1.0", &app("1.1.0")).await;
    // Rollback checks tolerate failures: development stays RollingBack until the ratio falls.
    prometheus.wait_for_value(&healthy, |v| v == 0.0, LONG).await;
    prometheus.wait_for_value(&rollbacks, |v| v == 1.0, LONG).await;
    let increase =
        format!("sum(increase(conveyor_rollbacks_total{{environment=\"{DEV}\",trigger=\"automatic\"}}[5m]))");
    prometheus.wait_for_value(&increase, |v| v > 0.0, LONG).await;
    app_server.set_metric("app_error_ratio", 0.0);
    w.settled(DEV, EnvironmentPhase::Healthy, &good).await;
    prometheus.wait_for_value(&healthy, |v| v == 1.0, LONG).await;

    // Counted once as a change that was rolled back; the rollback itself is not a deployment of
    // a new release, and it ended the outage: one time-to-restore observation.
    prometheus.wait_for_value(&deployments("rolled_back"), |v| v == 1.0, LONG).await;
    prometheus.wait_for_value(&deployments("succeeded"), |v| v == 1.0, LONG).await;
    prometheus.wait_for_value(&deployments("failed"), |v| v == 0.0, LONG).await;
    let restores = format!("sum(conveyor_time_to_restore_seconds_count{{environment=\"{DEV}\"}})");
    prometheus.wait_for_value(&restores, |v| v == 1.0, LONG).await;
    let durations = format!("sum(conveyor_deployment_duration_seconds_count{{environment=\"{DEV}\"}})");
    prometheus.wait_for_value(&durations, |v| v == 2.0, LONG).await;
}
