//! The HTTP probe, and the one HTTP client every outbound check uses.
//!
//! The client never uses a proxy and never follows redirects, and it refuses link-local and
//! cloud metadata addresses (169.254.0.0/16, fe80::/10, their IPv4-mapped forms,
//! `fd00:ec2::254`, `metadata.google.internal`) unless `allow_link_local_checks` is set: check
//! URLs come from Pipelines, and a check pointed at a metadata service would read the
//! controller's cloud credentials into a status message. Literal addresses are refused before
//! connecting; names are filtered after DNS resolution, so a name that resolves (or rebinds)
//! to such an address cannot reach it either.

use std::error::Error as StdError;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use tracing::instrument;
use url::{Host, Url};

use crate::core::checks::Sample;

/// Errors of this module.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The HTTP client could not be built (TLS set-up).
    #[error("building the HTTP client for checks: {0}")]
    Client(#[source] reqwest::Error),
}

impl Error {
    /// A bounded name for metrics and events.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Client(_) => "CheckClient",
        }
    }

    /// Whether retrying can help (building a client fails the same way every time).
    pub fn is_transient(&self) -> bool {
        false
    }
}

/// This module's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How much of a response body is read to look for the expected text.
pub const MAX_BODY_READ: usize = 64 * 1024;

/// The configuration key that lets checks reach link-local addresses; refusals name it.
const ALLOW_KEY: &str = "allow_link_local_checks";

/// AWS's IPv6 instance metadata address.
const AWS_METADATA_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254);

/// One HTTP client for all outbound checks: no proxy, no redirects followed, link-local policy.
/// Cheap to clone (clones share the connection pool).
#[derive(Clone, Debug)]
pub struct Prober {
    client: reqwest::Client,
    allow_link_local: bool,
}

impl Prober {
    /// A prober that refuses link-local and metadata addresses unless `allow_link_local`.
    pub fn new(allow_link_local: bool) -> Result<Self> {
        Self::with_resolver(allow_link_local, Arc::new(SystemResolver))
    }

    /// As [`new`](Self::new), resolving names with `resolver` (tests script DNS answers).
    fn with_resolver(allow_link_local: bool, resolver: Arc<dyn Resolve>) -> Result<Self> {
        let client = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(Arc::new(PolicyResolver { inner: resolver, allow_link_local }))
            .user_agent(concat!("conveyor/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(Error::Client)?;
        Ok(Self { client, allow_link_local })
    }

    /// GET url; Pass when status == expect_status and (if given) body contains expect_body.
    ///
    /// Redirects are not followed: a 3xx is compared with `expect_status` like any other status.
    /// Only the first [`MAX_BODY_READ`] bytes of the body are searched. A wrong status or body,
    /// a refused connection, a DNS failure or a timeout all fail: the application is not
    /// serving. Messages never show the URL's user and password.
    #[instrument(skip_all, fields(url = tracing::field::Empty))]
    pub async fn http(&self, url: &str, expect_status: u16, expect_body: Option<&str>, timeout: Duration) -> Sample {
        let url = match Url::parse(url) {
            Ok(url) => url,
            Err(e) => return Sample::Fail(format!("GET {}: invalid URL: {e}", redacted_str(url))),
        };
        let shown = redacted(&url);
        tracing::Span::current().record("url", shown.as_str());
        let fail = |why: String| Sample::Fail(format!("GET {shown}: {why}"));
        if !matches!(url.scheme(), "http" | "https") {
            return fail("only http and https URLs can be checked".into());
        }
        if let Some(refusal) = self.refusal(&url) {
            return fail(refusal);
        }
        let response = match self.client.get(url.clone()).timeout(timeout).send().await {
            Ok(response) => response,
            Err(e) => return fail(describe(e, timeout)),
        };
        let status = response.status().as_u16();
        if status != expect_status {
            return fail(format!("{status}, expected {expect_status}"));
        }
        if let Some(expected) = expect_body {
            let (body, truncated) = match read_prefix(response, MAX_BODY_READ).await {
                Ok(read) => read,
                Err(e) => return fail(describe(e, timeout)),
            };
            if !contains(&body, expected.as_bytes()) {
                let read = if truncated { " (first 64 KiB read)" } else { "" };
                return fail(format!("body does not contain {expected:?}{read}"));
            }
        }
        Sample::Pass(format!("GET {shown}: {status}"))
    }

    /// The client shared by the probes.
    pub(super) fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// Why `url` may not be probed, when its host is a literal link-local or metadata address
    /// or a metadata host name (checked before connecting; resolved names are checked by the
    /// resolver).
    pub(super) fn refusal(&self, url: &Url) -> Option<String> {
        if self.allow_link_local {
            return None;
        }
        let ip = match url.host()? {
            Host::Ipv4(ip) => IpAddr::V4(ip),
            Host::Ipv6(ip) => IpAddr::V6(ip),
            Host::Domain(name) => return forbidden_name(name).then(|| refused_name(name)),
        };
        forbidden_ip(ip)
            .then(|| format!("{ip} is a link-local or cloud metadata address; refused unless {ALLOW_KEY} is set"))
    }
}

/// Whether `ip` is link-local or a cloud metadata address (IPv4-mapped forms included).
pub(crate) fn forbidden_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => {
            v6.is_unicast_link_local()
                || v6 == AWS_METADATA_V6
                || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_link_local())
        }
    }
}

/// Whether `name` is a cloud metadata host name (any case, trailing dot or not).
pub(crate) fn forbidden_name(name: &str) -> bool {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name == "metadata.google.internal" || name == "metadata"
}

fn refused_name(name: &str) -> String {
    format!("{name} is a cloud metadata host name; refused unless {ALLOW_KEY} is set")
}

/// The addresses `name` resolved to that a check may connect to: link-local and metadata ones
/// are dropped unless allowed, and when nothing is left the refusal names what was dropped.
pub(crate) fn permitted(
    name: &str,
    addrs: Vec<SocketAddr>,
    allow_link_local: bool,
) -> Result<Vec<SocketAddr>, Refused> {
    if allow_link_local {
        return Ok(addrs);
    }
    let (refused, kept): (Vec<SocketAddr>, Vec<SocketAddr>) = addrs.into_iter().partition(|a| forbidden_ip(a.ip()));
    match refused.first() {
        Some(first) if kept.is_empty() => Err(Refused(format!(
            "{name} resolves to {}, a link-local or cloud metadata address; refused unless {ALLOW_KEY} is set",
            first.ip()
        ))),
        _ => Ok(kept),
    }
}

/// A connection the link-local policy refused; the message says what and how to allow it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct Refused(String);

/// The operating system's resolver (getaddrinfo on a blocking thread).
struct SystemResolver;

impl Resolve for SystemResolver {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(async move {
            // Port 0: reqwest puts the URL's port in.
            match tokio::net::lookup_host((name.as_str(), 0)).await {
                Ok(addrs) => Ok(Box::new(addrs.collect::<Vec<_>>().into_iter()) as Addrs),
                Err(e) => Err(format!("cannot resolve {}: {e}", name.as_str()).into()),
            }
        })
    }
}

/// Applies the link-local policy to what another resolver answers.
struct PolicyResolver {
    inner: Arc<dyn Resolve>,
    allow_link_local: bool,
}

impl Resolve for PolicyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        let allow = self.allow_link_local;
        if !allow && forbidden_name(&host) {
            return Box::pin(async move { Err(Refused(refused_name(&host)).into()) });
        }
        let answer = self.inner.resolve(name);
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = answer.await?.collect();
            let kept = permitted(&host, addrs, allow)?;
            Ok(Box::new(kept.into_iter()) as Addrs)
        })
    }
}

/// Why a request failed, in a few words: a timeout, a refused connection, a policy refusal, or
/// the innermost cause (a DNS or TLS error). Never the URL: the caller names it, redacted.
pub(super) fn describe(err: reqwest::Error, timeout: Duration) -> String {
    if err.is_timeout() {
        return format!("timed out after {}", humantime::format_duration(timeout));
    }
    let mut innermost = None;
    let mut next = err.source();
    while let Some(cause) = next {
        if let Some(refused) = cause.downcast_ref::<Refused>() {
            return refused.to_string();
        }
        if let Some(io) = cause.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::ConnectionRefused
        {
            return "connection refused".into();
        }
        innermost = Some(cause.to_string());
        next = cause.source();
    }
    // reqwest's own message would repeat the URL, user and password included.
    innermost.unwrap_or_else(|| err.without_url().to_string())
}

/// Reads at most `limit` bytes of the body; `true` when there was more.
pub(super) async fn read_prefix(mut response: reqwest::Response, limit: usize) -> reqwest::Result<(Vec<u8>, bool)> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = limit - body.len();
        if chunk.len() > room {
            body.extend_from_slice(&chunk[..room]);
            return Ok((body, true));
        }
        body.extend_from_slice(&chunk);
    }
    Ok((body, false))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

/// `url` as shown in messages: without user and password.
pub(super) fn redacted(url: &Url) -> String {
    let mut url = url.clone();
    // Both fail only for URLs without a host, which have no user or password to hide.
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url.to_string()
}

/// A string that did not parse as a URL, as shown in messages: anything before an `@` in what
/// looks like its authority is dropped.
fn redacted_str(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://{}", &rest[at + 1..]),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, TcpListener};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Instant;

    use axum::Router;
    use axum::body::{Body, Bytes};
    use axum::http::{StatusCode, header};
    use axum::response::IntoResponse;
    use axum::routing::get;

    use super::*;
    use crate::checks::test_server::serve;

    const TIMEOUT: Duration = Duration::from_secs(5);

    fn prober() -> Prober {
        Prober::new(false).expect("client builds")
    }

    async fn app() -> SocketAddr {
        serve(
            Router::new()
                .route("/healthz", get(|| async { "all ok" }))
                .route("/down", get(|| async { (StatusCode::SERVICE_UNAVAILABLE, "failing") }))
                .route(
                    "/slow",
                    get(|| async {
                        tokio::time::sleep(Duration::from_secs(30)).await;
                        "late"
                    }),
                )
                .route("/large", get(|| async { format!("{}needle", "x".repeat(MAX_BODY_READ)) }))
                .route(
                    "/endless",
                    get(|| async {
                        let chunk = Bytes::from(vec![b'x'; 8192]);
                        Body::from_stream(futures::stream::repeat_with(move || Ok::<_, std::io::Error>(chunk.clone())))
                    }),
                ),
        )
        .await
    }

    fn is_fail(sample: &Sample) -> &str {
        match sample {
            Sample::Fail(m) => m,
            other => panic!("expected Fail, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn expected_status_passes_and_names_it() {
        let addr = app().await;
        let sample = prober().http(&format!("http://{addr}/healthz"), 200, None, TIMEOUT).await;
        assert_eq!(sample, Sample::Pass(format!("GET http://{addr}/healthz: 200")));
    }

    #[tokio::test]
    async fn other_status_fails_either_way() {
        let addr = app().await;
        let down = prober().http(&format!("http://{addr}/down"), 200, None, TIMEOUT).await;
        assert_eq!(down, Sample::Fail(format!("GET http://{addr}/down: 503, expected 200")));
        let up = prober().http(&format!("http://{addr}/healthz"), 204, None, TIMEOUT).await;
        assert_eq!(up, Sample::Fail(format!("GET http://{addr}/healthz: 200, expected 204")));
        // A check may expect a failure status, e.g. a page that must stay forbidden.
        let expected = prober().http(&format!("http://{addr}/down"), 503, None, TIMEOUT).await;
        assert!(matches!(expected, Sample::Pass(_)), "{expected:?}");
    }

    #[tokio::test]
    async fn body_must_contain_the_expected_text() {
        let addr = app().await;
        let url = format!("http://{addr}/healthz");
        assert!(matches!(prober().http(&url, 200, Some("ok"), TIMEOUT).await, Sample::Pass(_)));
        let sample = prober().http(&url, 200, Some("ready"), TIMEOUT).await;
        assert_eq!(sample, Sample::Fail(format!("GET {url}: body does not contain \"ready\"")));
    }

    #[tokio::test]
    async fn body_read_is_bounded() {
        let addr = app().await;
        // The text sits just past the bound: not seen.
        let large = prober().http(&format!("http://{addr}/large"), 200, Some("needle"), TIMEOUT).await;
        assert!(is_fail(&large).ends_with("body does not contain \"needle\" (first 64 KiB read)"), "{large:?}");
        // A body that never ends is judged on its start, well within the timeout.
        let started = Instant::now();
        let endless = prober().http(&format!("http://{addr}/endless"), 200, Some("needle"), TIMEOUT).await;
        assert!(is_fail(&endless).contains("first 64 KiB read"), "{endless:?}");
        assert!(started.elapsed() < TIMEOUT / 2, "took {:?}", started.elapsed());
    }

    #[tokio::test]
    async fn slow_answer_times_out() {
        let addr = app().await;
        let started = Instant::now();
        let sample = prober().http(&format!("http://{addr}/slow"), 200, None, Duration::from_millis(300)).await;
        assert_eq!(sample, Sample::Fail(format!("GET http://{addr}/slow: timed out after 300ms")));
        assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
    }

    #[tokio::test]
    async fn refused_connection_fails() {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let sample = prober().http(&format!("http://127.0.0.1:{port}/healthz"), 200, None, TIMEOUT).await;
        assert_eq!(sample, Sample::Fail(format!("GET http://127.0.0.1:{port}/healthz: connection refused")));
    }

    #[tokio::test]
    async fn unknown_host_fails() {
        let sample = prober().http("http://conveyor-test.invalid/healthz", 200, None, TIMEOUT).await;
        let message = is_fail(&sample);
        // Without DNS at all the lookup may time out instead: still a failure.
        assert!(
            message.starts_with("GET http://conveyor-test.invalid/healthz: cannot resolve conveyor-test.invalid: ")
                || message.ends_with("timed out after 5s"),
            "{message}"
        );
    }

    #[tokio::test]
    async fn redirects_are_compared_not_followed() {
        let followed = Arc::new(AtomicUsize::new(0));
        let counter = followed.clone();
        let addr = serve(
            Router::new()
                .route("/old", get(|| async { (StatusCode::FOUND, [(header::LOCATION, "/new")]).into_response() }))
                .route(
                    "/new",
                    get(move || async move {
                        counter.fetch_add(1, Ordering::SeqCst);
                        "ok"
                    }),
                ),
        )
        .await;
        let url = format!("http://{addr}/old");
        assert_eq!(
            prober().http(&url, 200, None, TIMEOUT).await,
            Sample::Fail(format!("GET {url}: 302, expected 200"))
        );
        assert!(matches!(prober().http(&url, 302, None, TIMEOUT).await, Sample::Pass(_)));
        assert_eq!(followed.load(Ordering::SeqCst), 0, "the redirect was followed");
    }

    #[tokio::test]
    async fn messages_never_show_user_and_password() {
        let addr = app().await;
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        for (url, status) in [
            (format!("http://alice:s3cret@{addr}/healthz"), 200),
            (format!("http://alice:s3cret@{addr}/healthz"), 500),
            (format!("http://alice:s3cret@{addr}/slow"), 200),
            (format!("http://alice:s3cret@127.0.0.1:{port}/"), 200),
            ("http://alice:s3cret@[::1/".to_owned(), 200),
        ] {
            let sample = prober().http(&url, status, None, Duration::from_millis(300)).await;
            let message = format!("{sample:?}");
            assert!(!message.contains("s3cret") && !message.contains("alice"), "{message}");
        }
    }

    #[tokio::test]
    async fn literal_link_local_addresses_are_refused_before_connecting() {
        for url in [
            "http://169.254.169.254/latest/meta-data/",
            "http://0xa9.254.169.254/",
            "http://[fe80::1]/",
            "http://[::ffff:169.254.169.254]/",
            "http://[fd00:ec2::254]/",
        ] {
            let started = Instant::now();
            let sample = prober().http(url, 200, None, TIMEOUT).await;
            let message = is_fail(&sample);
            assert!(message.contains("link-local or cloud metadata address"), "{message}");
            assert!(message.contains("allow_link_local_checks"), "{message}");
            assert!(started.elapsed() < Duration::from_secs(1), "{url} took {:?}", started.elapsed());
        }
        let sample = prober().http("http://169.254.169.254/", 200, None, TIMEOUT).await;
        assert!(
            is_fail(&sample).starts_with("GET http://169.254.169.254/: 169.254.169.254 is a link-local"),
            "{sample:?}"
        );
    }

    #[tokio::test]
    async fn metadata_host_names_are_refused() {
        for url in [
            "http://metadata.google.internal/computeMetadata/v1/",
            "http://METADATA.google.internal./",
            "http://metadata/",
        ] {
            let sample = prober().http(url, 200, None, TIMEOUT).await;
            let message = is_fail(&sample);
            assert!(message.contains("cloud metadata host name") && message.contains(ALLOW_KEY), "{message}");
        }
    }

    /// Answers every name with fixed addresses, and counts the questions.
    struct Scripted(Vec<IpAddr>, Arc<AtomicUsize>);

    impl Resolve for Scripted {
        fn resolve(&self, _: Name) -> Resolving {
            self.1.fetch_add(1, Ordering::SeqCst);
            let addrs: Vec<SocketAddr> = self.0.iter().map(|ip| SocketAddr::new(*ip, 0)).collect();
            Box::pin(async move { Ok(Box::new(addrs.into_iter()) as Addrs) })
        }
    }

    fn scripted(allow: bool, answer: &[IpAddr]) -> (Prober, Arc<AtomicUsize>) {
        let asked = Arc::new(AtomicUsize::new(0));
        (Prober::with_resolver(allow, Arc::new(Scripted(answer.to_vec(), asked.clone()))).unwrap(), asked)
    }

    #[tokio::test]
    async fn names_resolving_to_link_local_addresses_are_refused() {
        let metadata: IpAddr = "169.254.169.254".parse().unwrap();
        let (prober, asked) = scripted(false, &[metadata]);
        let sample = prober.http("http://rebind.example/", 200, None, TIMEOUT).await;
        assert_eq!(
            sample,
            Sample::Fail(
                "GET http://rebind.example/: rebind.example resolves to 169.254.169.254, a link-local or cloud \
                 metadata address; refused unless allow_link_local_checks is set"
                    .into()
            )
        );
        assert_eq!(asked.load(Ordering::SeqCst), 1, "the custom resolver was not used");
    }

    #[tokio::test]
    async fn link_local_answers_are_dropped_and_the_rest_used() {
        let addr = app().await;
        let (prober, _) = scripted(false, &["169.254.169.254".parse().unwrap(), Ipv4Addr::LOCALHOST.into()]);
        let sample = prober.http(&format!("http://app.example:{}/healthz", addr.port()), 200, None, TIMEOUT).await;
        assert!(matches!(sample, Sample::Pass(_)), "{sample:?}");
    }

    #[tokio::test]
    async fn allowing_link_local_lifts_the_name_refusal() {
        let addr = app().await;
        let (prober, _) = scripted(true, &[Ipv4Addr::LOCALHOST.into()]);
        let sample = prober.http(&format!("http://metadata:{}/healthz", addr.port()), 200, None, TIMEOUT).await;
        assert!(matches!(sample, Sample::Pass(_)), "{sample:?}");
    }

    #[test]
    fn the_resolver_filter_drops_link_local_and_metadata_addresses() {
        let at = |s: &str| SocketAddr::new(s.parse().unwrap(), 80);
        let refused =
            ["169.254.169.254", "169.254.0.1", "fe80::1", "febf::1", "::ffff:169.254.169.254", "fd00:ec2::254"];
        let allowed = [
            "10.0.0.1",
            "127.0.0.1",
            "169.253.255.255",
            "169.255.0.1",
            "::1",
            "fec0::1",
            "::ffff:10.1.2.3",
            "fd00:ec2::253",
        ];
        for ip in refused {
            assert!(permitted("h", vec![at(ip)], false).is_err(), "{ip} should be refused");
            assert_eq!(
                permitted("h", vec![at(ip)], true).unwrap(),
                vec![at(ip)],
                "{ip} should be allowed when allowed"
            );
        }
        for ip in allowed {
            assert_eq!(permitted("h", vec![at(ip)], false).unwrap(), vec![at(ip)], "{ip} should be kept");
        }
        let mixed = vec![at("169.254.169.254"), at("10.0.0.1"), at("::ffff:169.254.1.1")];
        assert_eq!(permitted("h", mixed, false).unwrap(), vec![at("10.0.0.1")]);
        let err = permitted("h", vec![at("::ffff:169.254.169.254")], false).unwrap_err().to_string();
        assert!(err.contains("h resolves to ::ffff:169.254.169.254") && err.contains(ALLOW_KEY), "{err}");
    }

    #[test]
    fn redacts_userinfo_from_unparsable_urls() {
        assert_eq!(redacted_str("http://u:p@h:bad/x@y"), "http://h:bad/x@y");
        assert_eq!(redacted_str("http://h/x@y"), "http://h/x@y");
        assert_eq!(redacted_str("not a url"), "not a url");
    }
}
