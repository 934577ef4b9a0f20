//! The Prometheus probe: one instant query whose single value is judged by a condition.
//!
//! Outcomes, as the core counts them:
//! - `Pass`/`Fail`: the value holds the condition or not.
//! - `NoData`: no series, or NaN.
//! - `Fail` also for a query that can never give one value: more than one series (aggregate it,
//!   e.g. with `sum`), a range vector or string, or a query Prometheus refuses (HTTP 400 or 422:
//!   bad PromQL, or an expression it cannot execute). A bad query must never pass, whatever
//!   the unreachable policy says.
//! - `Unreachable`: Prometheus could not be asked or did not answer usefully (connection
//!   error, timeout, any other error status such as 5xx or 429, an answer that is not
//!   Prometheus' JSON).
//!
//! The same link-local policy as HTTP checks applies: the address can come from a Pipeline.

use std::time::Duration;

use serde::Deserialize;
use tracing::instrument;
use url::Url;

use super::http::{Prober, describe, read_prefix, redacted};
use crate::core::checks::Sample;
use crate::core::threshold::Threshold;

/// The largest answer read. One series is a few hundred bytes; a larger answer has many series
/// and fails anyway.
const MAX_ANSWER: usize = 1 << 20;

impl Prober {
    /// Instant query `query` at `base` (+ `/api/v1/query`), the single value judged by `condition`.
    ///
    /// `base` may carry a path prefix (`http://h/prometheus/`), kept with or without its
    /// trailing slash. `condition_text` is how the condition is shown in messages. The call is
    /// bounded by `timeout` and not retried.
    #[instrument(skip_all, fields(prometheus = tracing::field::Empty))]
    pub async fn prometheus(
        &self,
        base: &Url,
        query: &str,
        condition: &Threshold,
        condition_text: &str,
        timeout: Duration,
    ) -> Sample {
        let shown = redacted(base);
        tracing::Span::current().record("prometheus", shown.as_str());
        let unreachable =
            |why: String| Sample::Unreachable(format!("Prometheus at {shown} could not be queried: {why}"));
        if let Some(refusal) = self.refusal(base) {
            return Sample::Fail(format!("Prometheus at {shown}: {refusal}"));
        }
        let Some(mut endpoint) = query_endpoint(base) else {
            return Sample::Fail(format!("Prometheus at {shown}: only http and https URLs can be queried"));
        };
        endpoint.query_pairs_mut().append_pair("query", query);
        let response = match self.client().get(endpoint).timeout(timeout).send().await {
            Ok(response) => response,
            Err(e) => return unreachable(describe(e, timeout)),
        };
        let status = response.status();
        let (body, truncated) = match read_prefix(response, MAX_ANSWER).await {
            Ok(read) => read,
            Err(e) => return unreachable(describe(e, timeout)),
        };
        match judge(status.as_u16(), &body, truncated, condition, condition_text) {
            Judged::Sample(sample) => sample,
            Judged::Unreachable(why) => unreachable(why),
        }
    }
}

/// `{base}/api/v1/query`, keeping base's path; `None` unless http(s).
fn query_endpoint(base: &Url) -> Option<Url> {
    if !matches!(base.scheme(), "http" | "https") {
        return None;
    }
    let mut url = base.clone();
    url.set_query(None);
    url.set_fragment(None);
    url.path_segments_mut().ok()?.pop_if_empty().extend(["api", "v1", "query"]);
    Some(url)
}

/// The envelope of every Prometheus API answer.
#[derive(Deserialize)]
struct Answer {
    status: String,
    data: Option<Data>,
    #[serde(rename = "errorType")]
    error_type: Option<String>,
    error: Option<String>,
}

#[derive(Deserialize)]
struct Data {
    #[serde(rename = "resultType")]
    result_type: String,
    result: serde_json::Value,
}

/// One series of a vector: its labels and `[timestamp, "value"]`.
#[derive(Deserialize)]
struct Series {
    value: (serde_json::Value, String),
}

enum Judged {
    Sample(Sample),
    /// Why Prometheus could not be queried (the caller names Prometheus).
    Unreachable(String),
}

/// What an answer with HTTP `status` and `body` means.
fn judge(status: u16, body: &[u8], truncated: bool, condition: &Threshold, condition_text: &str) -> Judged {
    let answer: Option<Answer> = serde_json::from_slice(body).ok();
    match (status, answer) {
        (200, Some(Answer { status, data: Some(data), .. })) if status == "success" => {
            Judged::Sample(evaluate(&data, condition, condition_text))
        }
        (400 | 422, Some(Answer { error_type, error: Some(error), .. })) => Judged::Sample(Sample::Fail(format!(
            "query refused by Prometheus ({}): {error}",
            error_type.as_deref().unwrap_or("error")
        ))),
        (200, _) if truncated => Judged::Sample(Sample::Fail(format!(
            "the answer is larger than {} KiB: the query returns many series; aggregate it to one, e.g. with sum(…)",
            MAX_ANSWER / 1024
        ))),
        (200, _) => Judged::Unreachable(format!("the answer is not Prometheus' JSON: {}", snippet(body))),
        (status, Some(Answer { error: Some(error), .. })) => Judged::Unreachable(format!("HTTP {status}: {error}")),
        (status, _) => Judged::Unreachable(format!("HTTP {status}")),
    }
}

/// The single value of a query result, judged.
fn evaluate(data: &Data, condition: &Threshold, condition_text: &str) -> Sample {
    let value = match data.result_type.as_str() {
        "vector" => match serde_json::from_value::<Vec<Series>>(data.result.clone()) {
            Ok(series) => match series.as_slice() {
                [] => return Sample::NoData("query returned no series".into()),
                [one] => one.value.1.clone(),
                many => {
                    return Sample::Fail(format!(
                        "query returned {} series, expected one: aggregate it, e.g. with sum(…)",
                        many.len()
                    ));
                }
            },
            Err(e) => return Sample::Fail(format!("query returned a malformed vector: {e}")),
        },
        "scalar" => match serde_json::from_value::<(serde_json::Value, String)>(data.result.clone()) {
            Ok((_, value)) => value,
            Err(e) => return Sample::Fail(format!("query returned a malformed scalar: {e}")),
        },
        "matrix" => {
            return Sample::Fail("query returned a range vector: write an instant query that gives one value".into());
        }
        other => return Sample::Fail(format!("query returned a {other}, not a number")),
    };
    // Prometheus writes values as Go does ("NaN", "+Inf", "1e-05"); Rust parses those.
    let Ok(value) = value.parse::<f64>() else {
        return Sample::Fail(format!("query returned {value:?}, not a number"));
    };
    if value.is_nan() {
        Sample::NoData("query returned NaN".into())
    } else if condition.holds(value) {
        Sample::Pass(format!("{value} (wants {condition_text})"))
    } else {
        Sample::Fail(format!("{value}, wants {condition_text}"))
    }
}

/// The start of a body that is not what was expected, for a message.
fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(80)]);
    let text = text.trim();
    if text.is_empty() { "empty body".into() } else { format!("{text:?}") }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::net::TcpListener;
    use std::sync::{Arc, Mutex};
    use std::time::Instant;

    use axum::Router;
    use axum::extract::RawQuery;
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    use axum::routing::get;
    use serde_json::json;

    use super::*;
    use crate::checks::test_server::serve;

    const TIMEOUT: Duration = Duration::from_secs(5);

    /// A fake Prometheus answering `answers[query]` at `{prefix}/api/v1/query`, recording the
    /// queries it was asked.
    async fn fake(prefix: &str, answers: Vec<(&str, StatusCode, &str)>) -> (Url, Arc<Mutex<Vec<String>>>) {
        let answers: HashMap<String, (StatusCode, String)> =
            answers.into_iter().map(|(q, status, body)| (q.to_owned(), (status, body.to_owned()))).collect();
        let asked = Arc::new(Mutex::new(Vec::new()));
        let seen = asked.clone();
        let handler = move |RawQuery(raw): RawQuery| async move {
            let query = url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
                .find_map(|(k, v)| (k == "query").then(|| v.into_owned()))
                .unwrap_or_default();
            seen.lock().unwrap().push(query.clone());
            if query == "slow" {
                tokio::time::sleep(Duration::from_secs(30)).await;
            }
            match answers.get(&query) {
                Some((status, body)) => (*status, [("content-type", "application/json")], body.clone()).into_response(),
                None => StatusCode::NOT_FOUND.into_response(),
            }
        };
        let addr = serve(Router::new().route(&format!("{prefix}/api/v1/query"), get(handler))).await;
        (Url::parse(&format!("http://{addr}{prefix}/")).unwrap(), asked)
    }

    fn vector(values: &[&str]) -> String {
        let result: Vec<_> = values
            .iter()
            .enumerate()
            .map(|(i, v)| json!({"metric": {"pod": format!("p{i}")}, "value": [1.5, v]}))
            .collect();
        json!({"status": "success", "data": {"resultType": "vector", "result": result}}).to_string()
    }

    async fn probe(base: &Url, query: &str, condition: &str) -> Sample {
        let threshold = Threshold::parse(condition).unwrap();
        Prober::new(false).unwrap().prometheus(base, query, &threshold, condition, TIMEOUT).await
    }

    #[tokio::test]
    async fn one_value_is_judged_by_the_condition() {
        let low = vector(&["0.01"]);
        let high = vector(&["0.2"]);
        let (base, _) = fake("", vec![("low", StatusCode::OK, &low), ("high", StatusCode::OK, &high)]).await;
        assert_eq!(probe(&base, "low", "< 0.05").await, Sample::Pass("0.01 (wants < 0.05)".into()));
        assert_eq!(probe(&base, "high", "< 0.05").await, Sample::Fail("0.2, wants < 0.05".into()));
    }

    #[tokio::test]
    async fn the_query_is_sent_encoded_and_arrives_intact() {
        let query = r#"sum(rate(http_requests_total{code=~"5..", job="a b&c"}[1m])) / 2 + 1"#;
        let answer = vector(&["1"]);
        let (base, asked) = fake("", vec![(query, StatusCode::OK, &answer)]).await;
        assert!(matches!(probe(&base, query, ">= 1").await, Sample::Pass(_)));
        assert_eq!(*asked.lock().unwrap(), vec![query.to_owned()]);
    }

    #[tokio::test]
    async fn no_series_and_nan_are_no_data() {
        let none = vector(&[]);
        let nan = vector(&["NaN"]);
        let (base, _) = fake("", vec![("none", StatusCode::OK, &none), ("nan", StatusCode::OK, &nan)]).await;
        assert_eq!(probe(&base, "none", "< 1").await, Sample::NoData("query returned no series".into()));
        assert_eq!(probe(&base, "nan", "< 1").await, Sample::NoData("query returned NaN".into()));
    }

    #[tokio::test]
    async fn more_than_one_series_fails_asking_for_aggregation() {
        let two = vector(&["0", "0"]);
        let (base, _) = fake("", vec![("two", StatusCode::OK, &two)]).await;
        let sample = probe(&base, "two", "< 1").await;
        assert_eq!(
            sample,
            Sample::Fail("query returned 2 series, expected one: aggregate it, e.g. with sum(…)".into())
        );
    }

    #[tokio::test]
    async fn scalars_and_infinities_are_values() {
        let scalar = json!({"status": "success", "data": {"resultType": "scalar", "result": [1.5, "3"]}}).to_string();
        let inf = vector(&["+Inf"]);
        let tiny = vector(&["1e-05"]);
        let (base, _) = fake(
            "",
            vec![("scalar", StatusCode::OK, &scalar), ("inf", StatusCode::OK, &inf), ("tiny", StatusCode::OK, &tiny)],
        )
        .await;
        assert_eq!(probe(&base, "scalar", "== 3").await, Sample::Pass("3 (wants == 3)".into()));
        assert_eq!(probe(&base, "inf", "< 1").await, Sample::Fail("inf, wants < 1".into()));
        assert_eq!(probe(&base, "tiny", "< 0.001").await, Sample::Pass("0.00001 (wants < 0.001)".into()));
    }

    #[tokio::test]
    async fn range_vectors_and_strings_fail() {
        let matrix = json!({"status": "success", "data": {"resultType": "matrix", "result": []}}).to_string();
        let string = json!({"status": "success", "data": {"resultType": "string", "result": [1.5, "x"]}}).to_string();
        let (base, _) = fake("", vec![("matrix", StatusCode::OK, &matrix), ("string", StatusCode::OK, &string)]).await;
        assert!(matches!(probe(&base, "matrix", "< 1").await, Sample::Fail(m) if m.contains("range vector")));
        assert!(matches!(probe(&base, "string", "< 1").await, Sample::Fail(m) if m.contains("string")));
    }

    #[tokio::test]
    async fn a_query_prometheus_refuses_fails_with_its_error() {
        let bad = json!({"status": "error", "errorType": "bad_data",
            "error": "invalid parameter \"query\": 1:5: parse error: unclosed left parenthesis"})
        .to_string();
        let exec = json!({"status": "error", "errorType": "execution",
            "error": "found duplicate series for the match group"})
        .to_string();
        let (base, _) = fake(
            "",
            vec![("sum(", StatusCode::BAD_REQUEST, &bad), ("a / on() b", StatusCode::UNPROCESSABLE_ENTITY, &exec)],
        )
        .await;
        assert_eq!(
            probe(&base, "sum(", "< 1").await,
            Sample::Fail(
                "query refused by Prometheus (bad_data): invalid parameter \"query\": 1:5: parse error: unclosed \
                 left parenthesis"
                    .into()
            )
        );
        assert!(matches!(probe(&base, "a / on() b", "< 1").await, Sample::Fail(m) if m.contains("duplicate series")));
    }

    #[tokio::test]
    async fn errors_of_prometheus_are_unreachable() {
        let timeout = json!({"status": "error", "errorType": "timeout", "error": "query timed out"}).to_string();
        let (base, _) = fake(
            "",
            vec![
                ("busy", StatusCode::SERVICE_UNAVAILABLE, &timeout),
                ("limited", StatusCode::TOO_MANY_REQUESTS, "slow down"),
                ("html", StatusCode::OK, "<html>login</html>"),
                ("bare400", StatusCode::BAD_REQUEST, "bad request"),
            ],
        )
        .await;
        let at = format!("Prometheus at {base} could not be queried");
        assert_eq!(probe(&base, "busy", "< 1").await, Sample::Unreachable(format!("{at}: HTTP 503: query timed out")));
        assert_eq!(probe(&base, "limited", "< 1").await, Sample::Unreachable(format!("{at}: HTTP 429")));
        assert_eq!(
            probe(&base, "html", "< 1").await,
            Sample::Unreachable(format!("{at}: the answer is not Prometheus' JSON: \"<html>login</html>\""))
        );
        assert_eq!(probe(&base, "bare400", "< 1").await, Sample::Unreachable(format!("{at}: HTTP 400")));
        // A wrong path: the fake answers 404 to queries it does not know.
        assert_eq!(probe(&base, "unknown", "< 1").await, Sample::Unreachable(format!("{at}: HTTP 404")));
    }

    #[tokio::test]
    async fn a_slow_prometheus_is_unreachable_within_the_timeout() {
        let (base, _) = fake("", vec![]).await;
        let threshold = Threshold::parse("< 1").unwrap();
        let started = Instant::now();
        let sample =
            Prober::new(false).unwrap().prometheus(&base, "slow", &threshold, "< 1", Duration::from_millis(300)).await;
        assert_eq!(
            sample,
            Sample::Unreachable(format!("Prometheus at {base} could not be queried: timed out after 300ms"))
        );
        assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
    }

    #[tokio::test]
    async fn a_refused_connection_is_unreachable() {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let base = Url::parse(&format!("http://127.0.0.1:{port}")).unwrap();
        assert_eq!(
            probe(&base, "up", "== 1").await,
            Sample::Unreachable(format!(
                "Prometheus at http://127.0.0.1:{port}/ could not be queried: connection refused"
            ))
        );
    }

    #[tokio::test]
    async fn a_path_prefix_is_kept_with_or_without_its_slash() {
        let one = vector(&["1"]);
        let (base, asked) = fake("/prom", vec![("up", StatusCode::OK, &one)]).await;
        assert!(matches!(probe(&base, "up", "== 1").await, Sample::Pass(_)));
        let without_slash = Url::parse(base.as_str().trim_end_matches('/')).unwrap();
        assert_eq!(without_slash.path(), "/prom");
        assert!(matches!(probe(&without_slash, "up", "== 1").await, Sample::Pass(_)));
        assert_eq!(asked.lock().unwrap().len(), 2);
    }

    #[test]
    fn the_endpoint_keeps_the_prefix_and_drops_query_and_fragment() {
        let endpoint = |base: &str| query_endpoint(&Url::parse(base).unwrap()).map(|u| u.to_string());
        assert_eq!(endpoint("http://h:9090").as_deref(), Some("http://h:9090/api/v1/query"));
        assert_eq!(endpoint("http://h/prom/").as_deref(), Some("http://h/prom/api/v1/query"));
        assert_eq!(endpoint("https://h/a/b?x=1#f").as_deref(), Some("https://h/a/b/api/v1/query"));
        assert_eq!(endpoint("ftp://h/"), None);
    }

    #[tokio::test]
    async fn link_local_prometheus_is_refused_and_userinfo_hidden() {
        let base = Url::parse("http://admin:s3cret@169.254.169.254:9090/").unwrap();
        let sample = probe(&base, "up", "== 1").await;
        assert_eq!(
            sample,
            Sample::Fail(
                "Prometheus at http://169.254.169.254:9090/: 169.254.169.254 is a link-local or cloud metadata \
                 address; refused unless allow_link_local_checks is set"
                    .into()
            )
        );
    }

    #[test]
    fn an_oversized_answer_fails() {
        let threshold = Threshold::parse("< 1").unwrap();
        let Judged::Sample(Sample::Fail(message)) =
            judge(200, b"{\"status\":\"success\",\"da", true, &threshold, "< 1")
        else {
            panic!("an oversized answer should fail");
        };
        assert!(message.contains("aggregate"), "{message}");
    }
}
