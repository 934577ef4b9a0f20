//! Spec validation: every problem names the field at fault and the fix.

use std::collections::HashSet;

use crate::api::pipeline::{Environment, PipelineSpec};
use crate::api::release::{Release, Source};
use crate::api::types::Version;
use crate::api::Reason;
use crate::core::{duration, threshold};

/// One thing wrong with a spec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// Stable reason, used in the `Stalled` condition and the Event.
    pub reason: Reason,
    /// JSON path of the field at fault (`spec.environments[1].namespace`).
    pub field: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl Problem {
    fn new(reason: Reason, field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { reason, field: field.into(), message: message.into() }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// All problems as one message (`field: message; field: message`).
pub fn describe(problems: &[Problem]) -> String {
    problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
}

const DNS_LABEL_HINT: &str = "use at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit";

/// Whether `s` is an RFC 1123 DNS label (namespace and environment names).
pub fn is_dns_label(s: &str) -> bool {
    let bytes = s.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-'
}

/// Whether `s` is an RFC 1123 DNS subdomain (most object names).
pub fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_label)
}

/// Validates a Pipeline spec.
pub fn validate_pipeline(spec: &PipelineSpec) -> Vec<Problem> {
    let mut problems = Vec::new();
    if spec.environments.is_empty() {
        problems.push(Problem::new(
            Reason::NoEnvironments,
            "spec.environments",
            "no environments; list at least one, e.g. `- {name: development, namespace: my-app-dev}`",
        ));
    }
    let mut names = HashSet::new();
    let mut namespaces = HashSet::new();
    for (i, env) in spec.environments.iter().enumerate() {
        let at = format!("spec.environments[{i}]");
        if !is_dns_label(&env.name) {
            problems.push(Problem::new(
                Reason::InvalidEnvironmentName,
                format!("{at}.name"),
                format!("`{}` is not a valid environment name; {DNS_LABEL_HINT}", env.name),
            ));
        } else if !names.insert(env.name.as_str()) {
            problems.push(Problem::new(
                Reason::DuplicateEnvironment,
                format!("{at}.name"),
                format!("environment `{}` is listed twice; give each environment a unique name", env.name),
            ));
        }
        if !is_dns_label(&env.namespace) {
            problems.push(Problem::new(
                Reason::InvalidNamespace,
                format!("{at}.namespace"),
                format!("`{}` is not a valid namespace name; {DNS_LABEL_HINT}", env.namespace),
            ));
        } else if !namespaces.insert(env.namespace.as_str()) {
            problems.push(Problem::new(
                Reason::DuplicateNamespace,
                format!("{at}.namespace"),
                format!(
                    "namespace `{}` is used by an earlier environment; environments would prune each other's objects, so give each its own namespace",
                    env.namespace
                ),
            ));
        }
        validate_environment_details(env, &at, &mut problems);
    }
    if let Some(limit) = spec.history_limit
        && !(1..=100).contains(&limit)
    {
        problems.push(Problem::new(
            Reason::InvalidHistoryLimit,
            "spec.historyLimit",
            format!("{limit} is out of range; use a number from 1 to 100 (default 10)"),
        ));
    }
    problems
}

fn check_duration(value: Option<&str>, field: String, problems: &mut Vec<Problem>) {
    if let Some(v) = value
        && let Err(e) = duration::parse(v)
    {
        problems.push(Problem::new(Reason::InvalidDuration, field, e));
    }
}

fn check_http_url(url: &str, field: String, problems: &mut Vec<Problem>) {
    match url::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {}
        _ => problems.push(Problem::new(
            Reason::InvalidHealthCheck,
            field,
            format!("`{url}` is not an http:// or https:// URL with a host"),
        )),
    }
}

fn validate_environment_details(env: &Environment, at: &str, problems: &mut Vec<Problem>) {
    check_duration(env.soak.as_deref(), format!("{at}.soak"), problems);
    if let Some(sa) = &env.service_account_name
        && !is_dns_subdomain(sa)
    {
        problems.push(Problem::new(
            Reason::InvalidNamespace,
            format!("{at}.serviceAccountName"),
            format!("`{sa}` is not a valid ServiceAccount name; use lowercase letters, digits, '-' and '.'"),
        ));
    }
    let Some(checks) = &env.health_checks else { return };
    check_duration(checks.timeout.as_deref(), format!("{at}.healthChecks.timeout"), problems);
    for (j, http) in checks.http.iter().enumerate() {
        let at = format!("{at}.healthChecks.http[{j}]");
        check_http_url(&http.url, format!("{at}.url"), problems);
        check_duration(http.interval.as_deref(), format!("{at}.interval"), problems);
        if let Some(code) = http.expect_status
            && !(100..=599).contains(&code)
        {
            problems.push(Problem::new(
                Reason::InvalidHealthCheck,
                format!("{at}.expectStatus"),
                format!("{code} is not an HTTP status code; use 100–599"),
            ));
        }
        if http.success_threshold.is_some_and(|n| n < 1) {
            problems.push(Problem::new(Reason::InvalidHealthCheck, format!("{at}.successThreshold"), "must be at least 1"));
        }
        if http.failure_limit.is_some_and(|n| n < 0) {
            problems.push(Problem::new(Reason::InvalidHealthCheck, format!("{at}.failureLimit"), "must be 0 or more"));
        }
    }
    let mut check_names = HashSet::new();
    for (j, prom) in checks.prometheus.iter().enumerate() {
        let at = format!("{at}.healthChecks.prometheus[{j}]");
        if prom.name.trim().is_empty() {
            problems.push(Problem::new(Reason::InvalidHealthCheck, format!("{at}.name"), "is empty; name the check"));
        } else if !check_names.insert(prom.name.as_str()) {
            problems.push(Problem::new(
                Reason::InvalidHealthCheck,
                format!("{at}.name"),
                format!("check `{}` is listed twice in this environment; give each check a unique name", prom.name),
            ));
        }
        if prom.query.trim().is_empty() {
            problems.push(Problem::new(Reason::InvalidHealthCheck, format!("{at}.query"), "is empty; write a PromQL query"));
        }
        if let Err(e) = threshold::Threshold::parse(&prom.condition) {
            problems.push(Problem::new(Reason::InvalidHealthCheck, format!("{at}.condition"), e));
        }
        check_duration(prom.interval.as_deref(), format!("{at}.interval"), problems);
        if prom.failure_limit.is_some_and(|n| n < 0) {
            problems.push(Problem::new(Reason::InvalidHealthCheck, format!("{at}.failureLimit"), "must be 0 or more"));
        }
        if let Some(addr) = &prom.address {
            check_http_url(addr, format!("{at}.address"), problems);
        }
    }
}

/// What the release validator needs to know about other objects in the namespace.
pub struct ReleaseNeighbours<'a> {
    /// Whether the Pipeline named by `spec.pipeline` exists.
    pub pipeline_exists: bool,
    /// Other Releases in the same namespace.
    pub others: &'a [&'a Release],
}

/// Validates a Release spec against its neighbours.
pub fn validate_release(release: &Release, neighbours: &ReleaseNeighbours<'_>) -> Vec<Problem> {
    let spec = &release.spec;
    let mut problems = Vec::new();
    let version = match Version::parse(&spec.version) {
        Ok(v) => Some(v),
        Err(e) => {
            problems.push(Problem::new(
                Reason::InvalidVersion,
                "spec.version",
                format!("`{}` is not a SemVer 2.0 version ({e}); write it like 2.4.1 or 3.0.0-rc.1, without a leading `v`", spec.version),
            ));
            None
        }
    };
    if !neighbours.pipeline_exists {
        problems.push(Problem::new(
            Reason::PipelineNotFound,
            "spec.pipeline",
            format!("no Pipeline `{}` in this namespace; create it or fix the name", spec.pipeline),
        ));
    }
    if let Some(version) = &version
        && let Some(owner) = version_owner(release, version, neighbours.others)
    {
        problems.push(Problem::new(
            Reason::DuplicateVersion,
            "spec.version",
            format!(
                "version {version} of pipeline `{}` already belongs to Release `{owner}`; choose a new version",
                spec.pipeline
            ),
        ));
    }
    match &spec.source {
        None => problems.push(Problem::new(
            Reason::MissingSource,
            "spec.source",
            "missing; set spec.source.git.url and spec.source.git.ref (tag, commit or branch)",
        )),
        Some(source) => validate_source(source, &mut problems),
    }
    problems
}

/// The older Release (by creation time, then name) that already uses `version` in the same pipeline.
fn version_owner<'a>(release: &Release, version: &Version, others: &[&'a Release]) -> Option<&'a str> {
    let key = |r: &Release| (r.metadata.creation_timestamp.clone().map(|t| t.0), r.metadata.name.clone());
    let mine = key(release);
    others
        .iter()
        .filter(|o| o.metadata.name != release.metadata.name && o.spec.pipeline == release.spec.pipeline)
        .filter(|o| Version::parse(&o.spec.version).is_ok_and(|v| &v == version))
        .filter(|o| key(o) < mine)
        .min_by_key(|o| key(o))
        .and_then(|o| o.metadata.name.as_deref())
}

fn validate_source(source: &Source, problems: &mut Vec<Problem>) {
    let Some(git) = &source.git else {
        problems.push(Problem::new(
            Reason::MissingSource,
            "spec.source.git",
            "missing; set spec.source.git.url and spec.source.git.ref (tag, commit or branch)",
        ));
        return;
    };
    let url = git.url.trim();
    let scheme_ok = ["https://", "http://", "ssh://", "file://"].iter().any(|p| url.starts_with(p))
        || (url.contains('@') && url.contains(':') && !url.contains("://"));
    if url.is_empty() || !scheme_ok {
        problems.push(Problem::new(
            Reason::InvalidSource,
            "spec.source.git.url",
            format!("`{url}` is not a git URL; use https://host/repo.git, ssh://git@host/repo.git, git@host:repo.git or file:///path"),
        ));
    }
    let r = &git.reference;
    let set = [&r.tag, &r.commit, &r.branch].iter().filter(|v| v.is_some()).count();
    if set != 1 {
        problems.push(Problem::new(
            Reason::InvalidSource,
            "spec.source.git.ref",
            format!("{set} of tag, commit and branch are set; set exactly one"),
        ));
    }
    for (field, value) in [("tag", &r.tag), ("branch", &r.branch), ("commit", &r.commit)] {
        if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
            problems.push(Problem::new(Reason::InvalidSource, format!("spec.source.git.ref.{field}"), "is empty"));
        }
    }
    if let Some(commit) = &r.commit
        && !commit.trim().is_empty()
        && !(matches!(commit.len(), 40 | 64) && commit.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        problems.push(Problem::new(
            Reason::InvalidSource,
            "spec.source.git.ref.commit",
            format!("`{commit}` is not a full commit id; use all 40 hex digits (or use tag or branch)"),
        ));
    }
    if let Some(path) = &source.path
        && (path.starts_with('/') || path.split('/').any(|c| c == ".."))
    {
        problems.push(Problem::new(
            Reason::InvalidSource,
            "spec.source.path",
            format!("`{path}` leaves the repository; use a relative directory without `..`, e.g. deploy"),
        ));
    }
    if let Some(secret) = &git.secret_ref
        && !is_dns_subdomain(&secret.name)
    {
        problems.push(Problem::new(
            Reason::InvalidSource,
            "spec.source.git.secretRef.name",
            format!("`{}` is not a valid Secret name", secret.name),
        ));
    }
}
