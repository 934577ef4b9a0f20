//! Spec validation: every problem names the field at fault and the fix.

use std::collections::HashSet;

use crate::api::Reason;
use crate::api::pipeline::{Environment, PipelineSpec};
use crate::api::release::{Release, ReleasePhase, Source};
use crate::api::types::Version;
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

const DNS_LABEL_HINT: &str =
    "use at most 63 lowercase letters, digits and '-', starting and ending with a letter or digit";

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
            Reason::InvalidServiceAccount,
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
        check_duration(http.timeout.as_deref(), format!("{at}.timeout"), problems);
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
            problems.push(Problem::new(
                Reason::InvalidHealthCheck,
                format!("{at}.successThreshold"),
                "must be at least 1",
            ));
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
            problems.push(Problem::new(
                Reason::InvalidHealthCheck,
                format!("{at}.query"),
                "is empty; write a PromQL query",
            ));
        }
        if let Err(e) = threshold::Threshold::parse(&prom.condition) {
            problems.push(Problem::new(Reason::InvalidHealthCheck, format!("{at}.condition"), e));
        }
        check_duration(prom.interval.as_deref(), format!("{at}.interval"), problems);
        check_duration(prom.timeout.as_deref(), format!("{at}.timeout"), problems);
        if prom.success_threshold.is_some_and(|n| n < 1) {
            problems.push(Problem::new(
                Reason::InvalidHealthCheck,
                format!("{at}.successThreshold"),
                "must be at least 1",
            ));
        }
        if prom.on_unreachable == Some(crate::api::pipeline::InconclusivePolicy::Pass) {
            problems.push(Problem::new(
                Reason::InvalidHealthCheck,
                format!("{at}.onUnreachable"),
                "`Pass` would let a release through while nothing can be measured; use `Fail` (default) or `Ignore`",
            ));
        }
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
                format!(
                    "`{}` is not a SemVer 2.0 version ({e}); write it like 2.4.1 or 3.0.0-rc.1, without a leading `v`",
                    spec.version
                ),
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

/// The Release that owns `version` in the same pipeline, if it is not `release`: one that has
/// already claimed it by being packaged wins, then the older by creation time, then by name.
/// The order never depends on how fresh the controller's cache is, except for the claim, which
/// protects a release that did real work from a newcomer created in the same second
/// (creation times have one-second resolution).
fn version_owner<'a>(release: &Release, version: &Version, others: &[&'a Release]) -> Option<&'a str> {
    let mine = ownership_key(release);
    same_version(release, version, others)
        .filter(|o| ownership_key(o) < mine)
        .min_by_key(|o| ownership_key(o))
        .and_then(|o| o.metadata.name.as_deref())
}

fn same_version<'a, 'b>(
    release: &'b Release,
    version: &'b Version,
    others: &'b [&'a Release],
) -> impl Iterator<Item = &'a Release> + 'b {
    others.iter().copied().filter(move |o| {
        o.metadata.name != release.metadata.name
            && o.spec.pipeline == release.spec.pipeline
            && Version::parse(&o.spec.version).is_ok_and(|v| &v == version)
    })
}

type OwnershipKey = (bool, Option<jiff::Timestamp>, Option<String>);

fn ownership_key(r: &Release) -> OwnershipKey {
    (!has_claim(r), r.metadata.creation_timestamp.as_ref().map(|t| t.0), r.metadata.name.clone())
}

/// Whether this Release has claimed its version by real work: packaging started or finished for
/// its current generation, and it is not stalled.
fn has_claim(release: &Release) -> bool {
    release.status.as_ref().is_some_and(|s| {
        s.observed_generation.is_some()
            && s.observed_generation == release.metadata.generation
            && matches!(s.phase, Some(ReleasePhase::Packaging | ReleasePhase::Packaged))
            && !crate::core::conditions::is_true(&s.conditions, crate::api::ConditionType::Stalled)
    })
}

/// Releases that use the version `release` owns but do not yet report `DuplicateVersion` for
/// their current generation: the controller re-checks them so that both sides agree at once.
pub fn displaced_duplicates<'a>(release: &Release, others: &[&'a Release]) -> Vec<&'a Release> {
    let Ok(version) = Version::parse(&release.spec.version) else { return Vec::new() };
    if version_owner(release, &version, others).is_some() {
        return Vec::new();
    }
    same_version(release, &version, others).filter(|o| !reports_duplicate(o)).collect()
}

fn reports_duplicate(release: &Release) -> bool {
    release.status.as_ref().is_some_and(|s| {
        s.observed_generation == release.metadata.generation
            && crate::core::conditions::find(&s.conditions, crate::api::ConditionType::Stalled)
                .is_some_and(|c| c.status == "True" && c.reason == Reason::DuplicateVersion.as_str())
    })
}

/// Whether `url` is a git URL Conveyor can fetch: http(s), ssh or file with a host or path, or
/// the scp-like `user@host:path`.
fn is_git_url(url: &str) -> bool {
    if url.contains("://") {
        return url::Url::parse(url).is_ok_and(|u| match u.scheme() {
            "https" | "http" | "ssh" => u.host_str().is_some_and(|h| !h.is_empty()),
            "file" => u.path().len() > 1,
            _ => false,
        });
    }
    let Some((user_host, path)) = url.split_once(':') else { return false };
    let Some((user, host)) = user_host.split_once('@') else { return false };
    !user.is_empty() && is_dns_subdomain(host) && !path.is_empty() && !url.contains(char::is_whitespace)
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
    if !is_git_url(url) {
        problems.push(Problem::new(
            Reason::InvalidSource,
            "spec.source.git.url",
            format!(
                "`{url}` is not a git URL; use https://host/repo.git, ssh://git@host/repo.git, git@host:repo.git or file:///path"
            ),
        ));
    }
    if url::Url::parse(url).is_ok_and(|u| u.password().is_some()) {
        problems.push(Problem::new(
            Reason::InvalidSource,
            "spec.source.git.url",
            "carries a password; remove it from the URL and put the credentials in a Secret named by spec.source.git.secretRef",
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
    if let Some(commit) = r.commit.as_deref().map(str::trim)
        && !commit.is_empty()
        && !(matches!(commit.len(), 40 | 64) && commit.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        problems.push(Problem::new(
            Reason::InvalidSource,
            "spec.source.git.ref.commit",
            format!("`{commit}` is not a full commit id; use all 40 hex digits (or use tag or branch)"),
        ));
    }
    if let Some(path) = source.path.as_deref() {
        validate_path("spec.source.path", path, problems);
    }
    validate_rendering(source, problems);
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

/// A source directory: relative, without `..`, with no variable but `${CONVEYOR_ENVIRONMENT}`.
fn validate_path(field: &str, path: &str, problems: &mut Vec<Problem>) {
    let path = path.trim();
    if path.starts_with('/') || path.split('/').any(|c| c == "..") {
        problems.push(Problem::new(
            Reason::InvalidPath,
            field,
            format!("`{path}` leaves the repository; use a relative directory without `..`, e.g. deploy"),
        ));
    }
    check_variables(field, path, problems);
}

/// Only `${CONVEYOR_ENVIRONMENT}` is replaced in paths; anything else that looks like a
/// variable would silently stay as it is.
fn check_variables(field: &str, text: &str, problems: &mut Vec<Problem>) {
    if text.replace(crate::core::paths::ENVIRONMENT_VARIABLE, "").contains("${") {
        problems.push(Problem::new(
            Reason::InvalidPath,
            field,
            format!("`{text}` holds a variable other than ${{CONVEYOR_ENVIRONMENT}}, the only one replaced in paths"),
        ));
    }
}

/// Helm values files: relative to `dir`, inside the repository.
fn validate_values_files(field: &str, dir: &str, files: &[String], problems: &mut Vec<Problem>) {
    for (i, file) in files.iter().enumerate() {
        let field = format!("{field}[{i}]");
        if file.trim().is_empty() {
            problems.push(Problem::new(Reason::InvalidPath, field, "is empty; name a values file"));
        } else if crate::core::paths::inside_repository(dir, file).is_none() {
            problems.push(Problem::new(
                Reason::InvalidPath,
                field.clone(),
                format!("`{file}` (relative to `{dir}`) reaches outside the repository; name a file inside it"),
            ));
        } else {
            check_variables(&field, file, problems);
        }
    }
}

/// The renderer, Helm options and per-environment overrides.
fn validate_rendering(source: &Source, problems: &mut Vec<Problem>) {
    use crate::api::release::Renderer;
    let not_helm = source.renderer.filter(|r| *r != Renderer::Helm);
    let path = source.path.as_deref().unwrap_or_default().trim();
    if let Some(helm) = &source.helm {
        if let Some(renderer) = not_helm {
            problems.push(Problem::new(
                Reason::InvalidSource,
                "spec.source.helm",
                format!(
                    "is set, but spec.source.renderer is {}; remove spec.source.helm or set the renderer to Helm",
                    renderer.as_str()
                ),
            ));
        }
        if let Some(name) = &helm.release_name
            && !(is_dns_label(name) && name.len() <= 53)
        {
            problems.push(Problem::new(
                Reason::InvalidSource,
                "spec.source.helm.releaseName",
                format!("`{name}` is not a Helm release name (lowercase letters, digits and '-', at most 53)"),
            ));
        }
        validate_values_files("spec.source.helm.valuesFiles", path, &helm.values_files, problems);
    }
    let mut seen = std::collections::BTreeSet::new();
    for (i, env) in source.environments.iter().enumerate() {
        let field = |f: &str| format!("spec.source.environments[{i}]{f}");
        if !is_dns_label(&env.name) {
            problems.push(Problem::new(
                Reason::InvalidSource,
                field(".name"),
                format!("`{}` is not an environment name (a DNS-1123 label)", env.name),
            ));
        } else if !seen.insert(env.name.as_str()) {
            problems.push(Problem::new(
                Reason::InvalidSource,
                field(".name"),
                format!("`{}` is listed twice; merge the two entries", env.name),
            ));
        }
        if env.path.is_none() && env.values_files.is_empty() {
            problems.push(Problem::new(
                Reason::InvalidSource,
                field(""),
                "changes nothing; set path or valuesFiles, or remove the entry",
            ));
        }
        if let Some(own) = &env.path {
            validate_path(&field(".path"), own, problems);
        }
        if !env.values_files.is_empty()
            && let Some(renderer) = not_helm
        {
            problems.push(Problem::new(
                Reason::InvalidSource,
                field(".valuesFiles"),
                format!(
                    "values files are for Helm, but spec.source.renderer is {}; remove them or set the renderer to Helm",
                    renderer.as_str()
                ),
            ));
        }
        let dir = env.path.as_deref().unwrap_or(path).trim();
        validate_values_files(&field(".valuesFiles"), dir, &env.values_files, problems);
    }
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::api::pipeline::{HealthChecks, HttpCheck, PrometheusCheck};
    use crate::api::release::{GitRef, ReleaseSpec};
    use crate::core::fixtures::{pipeline_spec as pipeline, release, release_spec, t};

    // ---- builders -------------------------------------------------------------------------

    /// A fully featured, valid pipeline as a user would write it.
    fn valid_pipeline() -> PipelineSpec {
        serde_norway::from_str(
            r#"
environments:
  - name: development
    namespace: shop-dev
  - name: staging
    namespace: shop-staging
    soak: 10m
    serviceAccountName: conveyor-deployer
    healthChecks:
      timeout: 5m
      http:
        - url: https://staging.shop.example/healthz
          expectStatus: 204
          interval: 5s
          successThreshold: 3
          failureLimit: 0
      prometheus:
        - name: error-rate
          query: sum(rate(http_errors_total[5m]))
          condition: "< 0.05"
          interval: 30s
          failureLimit: 2
        - name: latency
          query: histogram_quantile(0.99, rate(http_duration_seconds_bucket[5m]))
          condition: "<= 0.3"
          address: http://prometheus.monitoring:9090
  - name: production
    namespace: shop-prod
    approval: Manual
    soak: 1h30m
historyLimit: 20
"#,
        )
        .expect("valid pipeline fixture parses")
    }

    fn staging_checks(spec: &mut PipelineSpec) -> &mut HealthChecks {
        spec.environments[1].health_checks.as_mut().expect("fixture has staging health checks")
    }

    fn staging_http(spec: &mut PipelineSpec) -> &mut HttpCheck {
        &mut staging_checks(spec).http[0]
    }

    fn staging_prom(spec: &mut PipelineSpec, j: usize) -> &mut PrometheusCheck {
        &mut staging_checks(spec).prometheus[j]
    }

    /// A release of pipeline `pipeline` at `version`, created at `created`.
    fn release_of(name: &str, pipeline: &str, version: &str, created: i64) -> Release {
        let mut spec = release_spec(version);
        spec.pipeline = pipeline.to_owned();
        release(name, spec, created)
    }

    fn validate_alone(r: &Release) -> Vec<Problem> {
        validate_release(r, &ReleaseNeighbours { pipeline_exists: true, others: &[] })
    }

    fn validate_among(r: &Release, others: &[&Release]) -> Vec<Problem> {
        validate_release(r, &ReleaseNeighbours { pipeline_exists: true, others })
    }

    fn reasons(problems: &[Problem]) -> Vec<Reason> {
        problems.iter().map(|p| p.reason).collect()
    }

    // ---- DNS names ------------------------------------------------------------------------

    #[test]
    fn dns_label_edge_cases() {
        let cases: &[(&str, bool)] = &[
            ("a", true),
            ("staging", true),
            ("my-app-dev", true),
            ("1st", true),
            ("0", true),
            ("a1-b2", true),
            (&"a".repeat(63), true),
            (&"a".repeat(64), false),
            ("", false),
            ("-a", false),
            ("a-", false),
            ("-", false),
            ("Staging", false),
            ("Bad_NS", false),
            ("a.b", false),
            ("a b", false),
            ("é", false),
            ("a\n", false),
        ];
        for (s, expected) in cases {
            assert_eq!(is_dns_label(s), *expected, "is_dns_label({s:?})");
        }
    }

    #[test]
    fn dns_subdomain_edge_cases() {
        // 63 + 1 + 63 + 1 + 63 + 1 + 61 = 253 characters, the maximum.
        let longest =
            [&"a".repeat(63), &"b".repeat(63), &"c".repeat(63), &"d".repeat(61)].map(|s| s.as_str()).join(".");
        assert_eq!(longest.len(), 253);
        let too_long = format!("{longest}e");
        let cases: &[(&str, bool)] = &[
            ("a", true),
            ("conveyor-deployer", true),
            ("a.b.c", true),
            ("github-credentials.v2", true),
            (&longest, true),
            (&too_long, false),
            (&"a".repeat(64), false),
            ("", false),
            (".", false),
            (".a", false),
            ("a.", false),
            ("a..b", false),
            ("a.-b", false),
            ("A.b", false),
            ("a_b.c", false),
        ];
        for (s, expected) in cases {
            assert_eq!(is_dns_subdomain(s), *expected, "is_dns_subdomain({s:?})");
        }
    }

    // ---- validate_pipeline ----------------------------------------------------------------

    #[test]
    fn valid_pipelines_have_no_problems() {
        assert_eq!(validate_pipeline(&valid_pipeline()), vec![]);
        let minimal =
            pipeline(&[("development", "shop-dev"), ("staging", "shop-staging"), ("production", "shop-prod")]);
        assert_eq!(validate_pipeline(&minimal), vec![]);
    }

    #[test]
    fn valid_edge_values_are_accepted() {
        type Edit = fn(&mut PipelineSpec);
        let cases: &[(&str, Edit)] = &[
            ("soak 0s", |s| s.environments[0].soak = Some("0s".into())),
            ("soak 0", |s| s.environments[0].soak = Some("0".into())),
            ("63-char namespace", |s| s.environments[0].namespace = "n".repeat(63)),
            ("historyLimit 1", |s| s.history_limit = Some(1)),
            ("historyLimit 100", |s| s.history_limit = Some(100)),
            ("expectStatus 100", |s| staging_http(s).expect_status = Some(100)),
            ("expectStatus 599", |s| staging_http(s).expect_status = Some(599)),
            ("successThreshold 1", |s| staging_http(s).success_threshold = Some(1)),
            ("plain http url", |s| staging_http(s).url = "http://10.0.0.1:8080/ready".into()),
            ("same check name in two environments", |s| {
                let checks = staging_checks(s).clone();
                s.environments[2].health_checks = Some(checks);
            }),
            ("empty health checks", |s| s.environments[0].health_checks = Some(HealthChecks::default())),
        ];
        for (name, edit) in cases {
            let mut spec = valid_pipeline();
            edit(&mut spec);
            assert_eq!(validate_pipeline(&spec), vec![], "{name}");
        }
    }

    #[test]
    fn each_pipeline_mistake_names_its_field_and_the_fix() {
        type Edit = fn(&mut PipelineSpec);
        // (case, edit to a valid pipeline, reason, field, text the message must contain)
        let cases: &[(&str, Edit, Reason, &str, &str)] = &[
            (
                "no environments",
                |s| s.environments.clear(),
                Reason::NoEnvironments,
                "spec.environments",
                "list at least one",
            ),
            (
                "capitalised environment name",
                |s| s.environments[1].name = "Staging".into(),
                Reason::InvalidEnvironmentName,
                "spec.environments[1].name",
                "lowercase",
            ),
            (
                "empty environment name",
                |s| s.environments[0].name = String::new(),
                Reason::InvalidEnvironmentName,
                "spec.environments[0].name",
                "at most 63",
            ),
            (
                "duplicate environment name",
                |s| s.environments[2].name = "development".into(),
                Reason::DuplicateEnvironment,
                "spec.environments[2].name",
                "unique",
            ),
            (
                "namespace with upper case and underscore",
                |s| s.environments[1].namespace = "Bad_NS".into(),
                Reason::InvalidNamespace,
                "spec.environments[1].namespace",
                "`Bad_NS`",
            ),
            (
                "64-character namespace",
                |s| s.environments[0].namespace = "n".repeat(64),
                Reason::InvalidNamespace,
                "spec.environments[0].namespace",
                "at most 63",
            ),
            (
                "duplicate namespace",
                |s| s.environments[2].namespace = "shop-dev".into(),
                Reason::DuplicateNamespace,
                "spec.environments[2].namespace",
                "give each its own namespace",
            ),
            (
                "invalid serviceAccountName",
                |s| s.environments[1].service_account_name = Some("Deployer!".into()),
                Reason::InvalidServiceAccount,
                "spec.environments[1].serviceAccountName",
                "ServiceAccount",
            ),
            (
                "bad soak",
                |s| s.environments[2].soak = Some("an hour".into()),
                Reason::InvalidDuration,
                "spec.environments[2].soak",
                "30s, 5m or 1h30m",
            ),
            (
                "negative soak",
                |s| s.environments[2].soak = Some("-5m".into()),
                Reason::InvalidDuration,
                "spec.environments[2].soak",
                "30s, 5m or 1h30m",
            ),
            (
                "bad health check timeout",
                |s| staging_checks(s).timeout = Some("5 minutes please".into()),
                Reason::InvalidDuration,
                "spec.environments[1].healthChecks.timeout",
                "30s, 5m or 1h30m",
            ),
            (
                "bad http interval",
                |s| staging_http(s).interval = Some("often".into()),
                Reason::InvalidDuration,
                "spec.environments[1].healthChecks.http[0].interval",
                "30s, 5m or 1h30m",
            ),
            (
                "bad prometheus interval",
                |s| staging_prom(s, 1).interval = Some("10".into()),
                Reason::InvalidDuration,
                "spec.environments[1].healthChecks.prometheus[1].interval",
                "30s, 5m or 1h30m",
            ),
            (
                "http url with another scheme",
                |s| staging_http(s).url = "ftp://staging.shop.example/healthz".into(),
                Reason::InvalidHealthCheck,
                "spec.environments[1].healthChecks.http[0].url",
                "http:// or https://",
            ),
            (
                "http url without scheme",
                |s| staging_http(s).url = "staging.shop.example/healthz".into(),
                Reason::InvalidHealthCheck,
                "spec.environments[1].healthChecks.http[0].url",
                "http:// or https://",
            ),
            (
                "expectStatus 700",
                |s| staging_http(s).expect_status = Some(700),
                Reason::InvalidHealthCheck,
                "spec.environments[1].healthChecks.http[0].expectStatus",
                "100–599",
            ),
            (
                "expectStatus 99",
                |s| staging_http(s).expect_status = Some(99),
                Reason::InvalidHealthCheck,
                "spec.environments[1].healthChecks.http[0].expectStatus",
                "100–599",
            ),
            (
                "successThreshold 0",
                |s| staging_http(s).success_threshold = Some(0),
                Reason::InvalidHealthCheck,
                "spec.environments[1].healthChecks.http[0].successThreshold",
                "at least 1",
            ),
            (
                "http timeout not a duration",
                |s| staging_http(s).timeout = Some("soon".into()),
                Reason::InvalidDuration,
                "spec.environments[1].healthChecks.http[0].timeout",
                "soon",
            ),
            (
                "prometheus successThreshold 0",
                |s| staging_prom(s, 0).success_threshold = Some(0),
                Reason::InvalidHealthCheck,
                "spec.environments[1].healthChecks.prometheus[0].successThreshold",
                "at least 1",
            ),
            (
                "unreachable Prometheus counted as a pass",
                |s| staging_prom(s, 0).on_unreachable = Some(crate::api::pipeline::InconclusivePolicy::Pass),
                Reason::InvalidHealthCheck,
                "spec.environments[1].healthChecks.prometheus[0].onUnreachable",
                "use `Fail` (default) or `Ignore`",
            ),
            (
                "negative http failureLimit",
                |s| staging_http(s).failure_limit = Some(-1),
                Reason::InvalidHealthCheck,
                "spec.environments[1].healthChecks.http[0].failureLimit",
                "0 or more",
            ),
            (
                "empty prometheus check name",
                |s| staging_prom(s, 0).name = String::new(),
                Reason::InvalidHealthCheck,
                "spec.environments[1].healthChecks.prometheus[0].name",
                "name the check",
            ),
            (
                "blank prometheus check name",
                |s| staging_prom(s, 1).name = "   ".into(),
                Reason::InvalidHealthCheck,
                "spec.environments[1].healthChecks.prometheus[1].name",
                "name the check",
            ),
            (
                "duplicate prometheus check name",
                |s| staging_prom(s, 1).name = "error-rate".into(),
                Reason::InvalidHealthCheck,
                "spec.environments[1].healthChecks.prometheus[1].name",
                "unique",
            ),
            (
                "empty prometheus query",
                |s| staging_prom(s, 0).query = " ".into(),
                Reason::InvalidHealthCheck,
                "spec.environments[1].healthChecks.prometheus[0].query",
                "PromQL",
            ),
            (
                "condition without operator",
                |s| staging_prom(s, 0).condition = "0.05".into(),
                Reason::InvalidHealthCheck,
                "spec.environments[1].healthChecks.prometheus[0].condition",
                "e.g. `< 0.05`",
            ),
            (
                "condition without number",
                |s| staging_prom(s, 0).condition = "< low".into(),
                Reason::InvalidHealthCheck,
                "spec.environments[1].healthChecks.prometheus[0].condition",
                "e.g. `< 0.05`",
            ),
            (
                "negative prometheus failureLimit",
                |s| staging_prom(s, 0).failure_limit = Some(-3),
                Reason::InvalidHealthCheck,
                "spec.environments[1].healthChecks.prometheus[0].failureLimit",
                "0 or more",
            ),
            (
                "prometheus address without scheme",
                |s| staging_prom(s, 1).address = Some("prometheus.monitoring:9090".into()),
                Reason::InvalidHealthCheck,
                "spec.environments[1].healthChecks.prometheus[1].address",
                "http:// or https://",
            ),
            (
                "historyLimit 0",
                |s| s.history_limit = Some(0),
                Reason::InvalidHistoryLimit,
                "spec.historyLimit",
                "from 1 to 100",
            ),
            (
                "historyLimit 101",
                |s| s.history_limit = Some(101),
                Reason::InvalidHistoryLimit,
                "spec.historyLimit",
                "from 1 to 100",
            ),
            (
                "negative historyLimit",
                |s| s.history_limit = Some(-1),
                Reason::InvalidHistoryLimit,
                "spec.historyLimit",
                "from 1 to 100",
            ),
        ];
        for (case, edit, reason, field, hint) in cases {
            let mut spec = valid_pipeline();
            edit(&mut spec);
            let problems = validate_pipeline(&spec);
            assert_eq!(reasons(&problems), vec![*reason], "{case}: {problems:#?}");
            let p = &problems[0];
            assert_eq!(p.field, *field, "{case}");
            assert!(p.message.contains(hint), "{case}: message {:?} should contain {hint:?}", p.message);
            assert_eq!(p.to_string(), format!("{field}: {}", p.message), "{case}");
        }
    }

    #[test]
    fn duplicates_point_at_the_later_entry_only() {
        let spec = pipeline(&[("dev", "a"), ("dev", "a"), ("dev", "a")]);
        let problems = validate_pipeline(&spec);
        let got: Vec<(Reason, &str)> = problems.iter().map(|p| (p.reason, p.field.as_str())).collect();
        assert_eq!(
            got,
            vec![
                (Reason::DuplicateEnvironment, "spec.environments[1].name"),
                (Reason::DuplicateNamespace, "spec.environments[1].namespace"),
                (Reason::DuplicateEnvironment, "spec.environments[2].name"),
                (Reason::DuplicateNamespace, "spec.environments[2].namespace"),
            ]
        );
        assert!(problems[0].message.contains("`dev`"), "{}", problems[0].message);
        assert!(problems[1].message.contains("`a`"), "{}", problems[1].message);
    }

    #[test]
    fn invalid_names_are_not_also_reported_as_duplicates() {
        let spec = pipeline(&[("Staging", "Bad_NS"), ("Staging", "Bad_NS")]);
        let got: Vec<(Reason, String)> = validate_pipeline(&spec).into_iter().map(|p| (p.reason, p.field)).collect();
        assert_eq!(
            got,
            vec![
                (Reason::InvalidEnvironmentName, "spec.environments[0].name".to_owned()),
                (Reason::InvalidNamespace, "spec.environments[0].namespace".to_owned()),
                (Reason::InvalidEnvironmentName, "spec.environments[1].name".to_owned()),
                (Reason::InvalidNamespace, "spec.environments[1].namespace".to_owned()),
            ]
        );
    }

    #[test]
    fn every_problem_is_reported_in_field_order() {
        let mut spec = valid_pipeline();
        spec.environments[0].name = "Dev".into();
        staging_http(&mut spec).expect_status = Some(700);
        spec.environments[2].soak = Some("forever".into());
        spec.history_limit = Some(0);
        let problems = validate_pipeline(&spec);
        let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "spec.environments[0].name",
                "spec.environments[1].healthChecks.http[0].expectStatus",
                "spec.environments[2].soak",
                "spec.historyLimit",
            ]
        );
        let all = describe(&problems);
        let expected = problems.iter().map(|p| format!("{}: {}", p.field, p.message)).collect::<Vec<_>>().join("; ");
        assert_eq!(all, expected);
    }

    #[test]
    fn describe_joins_problems() {
        assert_eq!(describe(&[]), "");
        let problems = [
            Problem::new(Reason::InvalidVersion, "spec.version", "bad"),
            Problem::new(Reason::MissingSource, "spec.source", "missing"),
        ];
        assert_eq!(describe(&problems), "spec.version: bad; spec.source: missing");
    }

    // ---- validate_release -----------------------------------------------------------------

    #[test]
    fn valid_release_has_no_problems() {
        let r = release("shop-2-4-1", release_spec("2.4.1"), 100);
        assert_eq!(validate_alone(&r), vec![]);
    }

    #[test]
    fn valid_release_variants_are_accepted() {
        type Edit = fn(&mut ReleaseSpec);
        fn git(s: &mut ReleaseSpec) -> &mut crate::api::release::GitSource {
            s.source.as_mut().unwrap().git.as_mut().unwrap()
        }
        let cases: &[(&str, Edit)] = &[
            ("pre-release version", |s| s.version = "3.0.0-rc.1".into()),
            ("build metadata", |s| s.version = "1.0.0+build.5".into()),
            ("ssh url", |s| git(s).url = "ssh://git@github.com/acme/shop.git".into()),
            ("scp-like url", |s| git(s).url = "git@github.com:acme/shop.git".into()),
            ("file url", |s| git(s).url = "file:///srv/git/shop.git".into()),
            ("http url", |s| git(s).url = "http://git.internal/shop.git".into()),
            ("branch ref", |s| git(s).reference = GitRef { branch: Some("main".into()), ..Default::default() }),
            ("sha1 commit", |s| git(s).reference = GitRef { commit: Some("a".repeat(40)), ..Default::default() }),
            ("sha256 commit", |s| git(s).reference = GitRef { commit: Some("0f".repeat(32)), ..Default::default() }),
            ("no path", |s| s.source.as_mut().unwrap().path = None),
            ("dotted path", |s| s.source.as_mut().unwrap().path = Some("./deploy/..prod".into())),
            ("no secretRef", |s| git(s).secret_ref = None),
        ];
        for (case, edit) in cases {
            let mut spec = release_spec("1.0.0");
            edit(&mut spec);
            assert_eq!(validate_alone(&release("r", spec, 1)), vec![], "{case}");
        }
    }

    #[test]
    fn renderer_helm_and_per_environment_sources() {
        use crate::api::release::{EnvironmentSource, HelmSource, Renderer};
        fn source(s: &mut ReleaseSpec) -> &mut Source {
            s.source.as_mut().unwrap()
        }
        fn over(name: &str, path: Option<&str>, values: &[&str]) -> EnvironmentSource {
            EnvironmentSource {
                name: name.into(),
                path: path.map(Into::into),
                values_files: values.iter().map(|v| (*v).to_owned()).collect(),
            }
        }
        fn helm(values: &[&str]) -> Option<HelmSource> {
            Some(HelmSource { release_name: None, values_files: values.iter().map(|v| (*v).to_owned()).collect() })
        }
        type Edit = fn(&mut ReleaseSpec);
        let valid: &[(&str, Edit)] = &[
            ("overlay per environment", |s| source(s).path = Some("deploy/overlays/${CONVEYOR_ENVIRONMENT}".into())),
            ("explicit kustomize", |s| source(s).renderer = Some(Renderer::Kustomize)),
            ("helm with values", |s| {
                source(s).path = Some("charts/shop".into());
                source(s).helm = helm(&["values.yaml", "../values/${CONVEYOR_ENVIRONMENT}.yaml"]);
            }),
            ("overrides", |s| {
                source(s).environments =
                    vec![over("production", Some("deploy/prod"), &[]), over("staging", None, &["staging.yaml"])];
            }),
        ];
        for (case, edit) in valid {
            let mut spec = release_spec("1.0.0");
            edit(&mut spec);
            assert_eq!(validate_alone(&release("r", spec, 1)), vec![], "{case}");
        }
        // (case, edit, reason, field, text the message must contain)
        let invalid: &[(&str, Edit, Reason, &str, &str)] = &[
            (
                "another variable in the path",
                |s| source(s).path = Some("deploy/${CONVEYOR_VERSION}".into()),
                Reason::InvalidPath,
                "spec.source.path",
                "the only one replaced in paths",
            ),
            (
                "helm options for kustomize",
                |s| {
                    source(s).renderer = Some(Renderer::Kustomize);
                    source(s).helm = helm(&["values.yaml"]);
                },
                Reason::InvalidSource,
                "spec.source.helm",
                "remove spec.source.helm or set the renderer to Helm",
            ),
            (
                "values climbing out",
                |s| source(s).helm = helm(&["../../../secrets.yaml"]),
                Reason::InvalidPath,
                "spec.source.helm.valuesFiles[0]",
                "reaches outside the repository",
            ),
            (
                "bad release name",
                |s| source(s).helm = Some(HelmSource { release_name: Some("Shop_1".into()), values_files: vec![] }),
                Reason::InvalidSource,
                "spec.source.helm.releaseName",
                "not a Helm release name",
            ),
            (
                "override changing nothing",
                |s| source(s).environments = vec![over("staging", None, &[])],
                Reason::InvalidSource,
                "spec.source.environments[0]",
                "set path or valuesFiles",
            ),
            (
                "override listed twice",
                |s| source(s).environments = vec![over("staging", Some("a"), &[]), over("staging", Some("b"), &[])],
                Reason::InvalidSource,
                "spec.source.environments[1].name",
                "listed twice",
            ),
            (
                "override path climbing out",
                |s| source(s).environments = vec![over("staging", Some("../other"), &[])],
                Reason::InvalidPath,
                "spec.source.environments[0].path",
                "leaves the repository",
            ),
            (
                "values for plain",
                |s| {
                    source(s).renderer = Some(Renderer::Plain);
                    source(s).environments = vec![over("staging", None, &["v.yaml"])];
                },
                Reason::InvalidSource,
                "spec.source.environments[0].valuesFiles",
                "values files are for Helm",
            ),
        ];
        for (case, edit, reason, field, hint) in invalid {
            let mut spec = release_spec("1.0.0");
            edit(&mut spec);
            let problems = validate_alone(&release("r", spec, 1));
            let found = problems.iter().find(|p| p.field == *field);
            let Some(found) = found else { panic!("{case}: no problem at {field}: {problems:?}") };
            assert_eq!(found.reason, *reason, "{case}");
            assert!(found.message.contains(hint), "{case}: {}", found.message);
        }
    }

    #[test]
    fn each_release_mistake_names_its_field_and_the_fix() {
        type Edit = fn(&mut ReleaseSpec);
        fn git(s: &mut ReleaseSpec) -> &mut crate::api::release::GitSource {
            s.source.as_mut().unwrap().git.as_mut().unwrap()
        }
        fn reference(tag: Option<&str>, commit: Option<&str>, branch: Option<&str>) -> GitRef {
            GitRef { tag: tag.map(Into::into), commit: commit.map(Into::into), branch: branch.map(Into::into) }
        }
        const SHA: &str = "3f786850e387550fdab836ed7e6dc881de23001b";
        // (case, edit to a valid release, reason, field, text the message must contain)
        let cases: &[(&str, Edit, Reason, &str, &str)] = &[
            (
                "leading v",
                |s| s.version = "v1.0".into(),
                Reason::InvalidVersion,
                "spec.version",
                "without a leading `v`",
            ),
            ("two-part version", |s| s.version = "1.0".into(), Reason::InvalidVersion, "spec.version", "like 2.4.1"),
            ("missing source", |s| s.source = None, Reason::MissingSource, "spec.source", "spec.source.git.url"),
            (
                "source without git",
                |s| s.source.as_mut().unwrap().git = None,
                Reason::MissingSource,
                "spec.source.git",
                "spec.source.git.ref",
            ),
            (
                "ftp url",
                |s| git(s).url = "ftp://x".into(),
                Reason::InvalidSource,
                "spec.source.git.url",
                "https://host/repo.git",
            ),
            ("empty url", |s| git(s).url = "  ".into(), Reason::InvalidSource, "spec.source.git.url", "not a git URL"),
            (
                "bare path url",
                |s| git(s).url = "github.com/acme/shop".into(),
                Reason::InvalidSource,
                "spec.source.git.url",
                "not a git URL",
            ),
            (
                "ref with nothing set",
                |s| git(s).reference = reference(None, None, None),
                Reason::InvalidSource,
                "spec.source.git.ref",
                "0 of tag, commit and branch are set; set exactly one",
            ),
            (
                "ref with tag and branch",
                |s| git(s).reference = reference(Some("v1"), None, Some("main")),
                Reason::InvalidSource,
                "spec.source.git.ref",
                "2 of tag, commit and branch are set; set exactly one",
            ),
            (
                "ref with tag and commit",
                |s| git(s).reference = reference(Some("v1"), Some(SHA), None),
                Reason::InvalidSource,
                "spec.source.git.ref",
                "set exactly one",
            ),
            (
                "empty tag",
                |s| git(s).reference = reference(Some(" "), None, None),
                Reason::InvalidSource,
                "spec.source.git.ref.tag",
                "is empty",
            ),
            (
                "empty branch",
                |s| git(s).reference = reference(None, None, Some("")),
                Reason::InvalidSource,
                "spec.source.git.ref.branch",
                "is empty",
            ),
            (
                "short commit id",
                |s| git(s).reference = reference(None, Some("3f78685"), None),
                Reason::InvalidSource,
                "spec.source.git.ref.commit",
                "all 40 hex digits",
            ),
            (
                "non-hex commit id",
                |s| git(s).reference = reference(None, Some(&"z".repeat(40)), None),
                Reason::InvalidSource,
                "spec.source.git.ref.commit",
                "not a full commit id",
            ),
            (
                "path climbing out",
                |s| s.source.as_mut().unwrap().path = Some("deploy/../../etc".into()),
                Reason::InvalidPath,
                "spec.source.path",
                "without `..`",
            ),
            (
                "path of only ..",
                |s| s.source.as_mut().unwrap().path = Some("..".into()),
                Reason::InvalidPath,
                "spec.source.path",
                "leaves the repository",
            ),
            (
                "absolute path",
                |s| s.source.as_mut().unwrap().path = Some("/etc/kubernetes".into()),
                Reason::InvalidPath,
                "spec.source.path",
                "relative directory",
            ),
            (
                "password in the URL",
                |s| git(s).url = "https://deploy:hunter2@git.example.com/shop.git".into(),
                Reason::InvalidSource,
                "spec.source.git.url",
                "put the credentials in a Secret",
            ),
            (
                "bad secret name",
                |s| git(s).secret_ref.as_mut().unwrap().name = "GitHub_Token".into(),
                Reason::InvalidSource,
                "spec.source.git.secretRef.name",
                "`GitHub_Token`",
            ),
        ];
        for (case, edit, reason, field, hint) in cases {
            let mut spec = release_spec("1.0.0");
            edit(&mut spec);
            let problems = validate_alone(&release("r", spec, 1));
            assert_eq!(reasons(&problems), vec![*reason], "{case}: {problems:#?}");
            let p = &problems[0];
            assert_eq!(p.field, *field, "{case}");
            assert!(p.message.contains(hint), "{case}: message {:?} should contain {hint:?}", p.message);
        }
    }

    #[test]
    fn missing_pipeline_is_reported_with_its_name() {
        let r = release("r", release_spec("1.0.0"), 1);
        let problems = validate_release(&r, &ReleaseNeighbours { pipeline_exists: false, others: &[] });
        assert_eq!(reasons(&problems), [Reason::PipelineNotFound]);
        assert_eq!(problems[0].field, "spec.pipeline");
        assert!(problems[0].message.contains("`shop`"), "{}", problems[0].message);
        assert!(problems[0].message.contains("create it or fix the name"), "{}", problems[0].message);
    }

    #[test]
    fn every_release_problem_is_reported() {
        let mut spec = release_spec("latest");
        spec.source = None;
        let r = release("r", spec, 1);
        let problems = validate_release(&r, &ReleaseNeighbours { pipeline_exists: false, others: &[] });
        assert_eq!(reasons(&problems), [Reason::InvalidVersion, Reason::PipelineNotFound, Reason::MissingSource]);
    }

    #[test]
    fn only_the_newer_release_gets_duplicate_version() {
        // (case, mine (name, pipeline, version, created), other, owner named in DuplicateVersion)
        type R = (&'static str, &'static str, &'static str, i64);
        let cases: &[(&str, R, R, Option<&str>)] = &[
            ("newer release", ("b", "shop", "1.0.0", 20), ("a", "shop", "1.0.0", 10), Some("a")),
            ("older release", ("a", "shop", "1.0.0", 10), ("b", "shop", "1.0.0", 20), None),
            ("older by time, later by name", ("z", "shop", "1.0.0", 10), ("a", "shop", "1.0.0", 20), None),
            ("newer by time, earlier by name", ("a", "shop", "1.0.0", 20), ("z", "shop", "1.0.0", 10), Some("z")),
            ("same time, later name", ("b", "shop", "1.0.0", 10), ("a", "shop", "1.0.0", 10), Some("a")),
            ("same time, earlier name", ("a", "shop", "1.0.0", 10), ("b", "shop", "1.0.0", 10), None),
            ("build metadata ignored", ("b", "shop", "1.0.0+b", 20), ("a", "shop", "1.0.0+a", 10), Some("a")),
            ("different pipeline", ("b", "shop", "1.0.0", 20), ("a", "cart", "1.0.0", 10), None),
            ("different version", ("b", "shop", "1.0.1", 20), ("a", "shop", "1.0.0", 10), None),
            ("pre-release differs", ("b", "shop", "1.0.0", 20), ("a", "shop", "1.0.0-rc.1", 10), None),
            ("other has invalid version", ("b", "shop", "1.0.0", 20), ("a", "shop", "v1.0.0", 10), None),
        ];
        for (case, mine, other, owner) in cases {
            let me = release_of(mine.0, mine.1, mine.2, mine.3);
            let them = release_of(other.0, other.1, other.2, other.3);
            let problems = validate_among(&me, &[&them]);
            match owner {
                None => assert_eq!(problems, vec![], "{case}"),
                Some(owner) => {
                    assert_eq!(reasons(&problems), [Reason::DuplicateVersion], "{case}");
                    assert_eq!(problems[0].field, "spec.version", "{case}");
                    let m = &problems[0].message;
                    assert!(m.contains(&format!("Release `{owner}`")), "{case}: {m}");
                    assert!(m.contains("pipeline `shop`"), "{case}: {m}");
                    assert!(m.contains("choose a new version"), "{case}: {m}");
                }
            }
        }
    }

    #[test]
    fn duplicate_version_names_the_oldest_owner() {
        let a = release_of("a", "shop", "1.0.0", 10);
        let b = release_of("b", "shop", "1.0.0", 20);
        let c = release_of("c", "shop", "1.0.0", 30);
        let all = [&a, &b, &c];
        // Every release sees the whole namespace, itself included, as the controller's cache gives it.
        assert_eq!(validate_among(&a, &all), vec![]);
        for newer in [&b, &c] {
            let problems = validate_among(newer, &all);
            assert_eq!(reasons(&problems), [Reason::DuplicateVersion]);
            assert!(problems[0].message.contains("Release `a`"), "{}", problems[0].message);
        }
        // Order of the neighbours does not matter.
        let problems = validate_among(&c, &[&b, &c, &a]);
        assert!(problems[0].message.contains("Release `a`"), "{}", problems[0].message);
    }

    #[test]
    fn release_is_not_compared_with_itself() {
        let me = release_of("a", "shop", "1.0.0", 10);
        assert_eq!(validate_among(&me, &[&me]), vec![]);
        // A stale copy of itself (same name) in the cache is not a duplicate either.
        let stale = release_of("a", "shop", "1.0.0", 5);
        assert_eq!(validate_among(&me, &[&stale]), vec![]);
    }

    /// `r` after a reconcile that found `problems`, with packaging at `phase`.
    fn reconciled(mut r: Release, problems: &[Problem], phase: ReleasePhase, at: i64) -> Release {
        let mut status = crate::core::release::release_status(&r, problems, None, t(at));
        status.phase = Some(phase);
        r.status = Some(status);
        r
    }

    #[test]
    fn a_packaged_release_keeps_its_version_against_a_same_second_newcomer() {
        // `b` was accepted and packaged; `a` appears with the same creation second and a name
        // that sorts first. The version stays with `b`, the release that did the work.
        let b = reconciled(release_of("b", "shop", "1.0.0", 10), &[], ReleasePhase::Packaged, 10);
        let a = release_of("a", "shop", "1.0.0", 10);
        let problems = validate_among(&a, &[&a, &b]);
        assert_eq!(reasons(&problems), [Reason::DuplicateVersion]);
        assert!(problems[0].message.contains("Release `b`"), "{}", problems[0].message);
        assert_eq!(validate_among(&b, &[&a, &b]), vec![]);
    }

    #[test]
    fn without_packaging_the_order_is_creation_time_then_name_whatever_the_cache_shows() {
        // Status written by an earlier reconcile (Pending) is no claim: both sides agree on the
        // owner whether or not the cache already shows the other's status.
        let b_pending = reconciled(release_of("b", "shop", "1.0.0", 10), &[], ReleasePhase::Pending, 10);
        let a = release_of("a", "shop", "1.0.0", 10);
        assert_eq!(validate_among(&a, &[&a, &b_pending]), vec![]);
        assert_eq!(reasons(&validate_among(&b_pending, &[&a, &b_pending])), [Reason::DuplicateVersion]);
    }

    #[test]
    fn a_claim_from_an_older_generation_does_not_count() {
        // `a` was packaged as 0.9.0, then its spec was edited to 1.0.0 (generation 2, status
        // still at 1): it must not take 1.0.0 from the packaged `b`.
        let mut a = reconciled(release_of("a", "shop", "0.9.0", 10), &[], ReleasePhase::Packaged, 10);
        a.spec.version = "1.0.0".into();
        a.metadata.generation = Some(2);
        let b = reconciled(release_of("b", "shop", "1.0.0", 20), &[], ReleasePhase::Packaged, 20);
        assert_eq!(validate_among(&b, &[&a, &b]), vec![]);
        assert_eq!(reasons(&validate_among(&a, &[&a, &b])), [Reason::DuplicateVersion]);
    }

    #[test]
    fn a_stalled_release_holds_no_claim() {
        let a = release_of("a", "shop", "1.0.0", 10);
        let missing_source = [Problem::new(Reason::MissingSource, "spec.source", "missing")];
        let b = reconciled(release_of("b", "shop", "1.0.0", 20), &missing_source, ReleasePhase::Packaged, 20);
        assert_eq!(validate_among(&a, &[&a, &b]), vec![]);
        assert!(reasons(&validate_among(&b, &[&a, &b])).contains(&Reason::DuplicateVersion));
    }

    #[test]
    fn the_owner_asks_to_recheck_duplicates_that_do_not_report_it_yet() {
        let a = release_of("a", "shop", "1.0.0", 10);
        let b = release_of("b", "shop", "1.0.0", 20);
        let other = release_of("c", "shop", "2.0.0", 20);
        let names = |v: Vec<&Release>| v.into_iter().map(|r| r.metadata.name.clone().unwrap()).collect::<Vec<_>>();
        assert_eq!(names(displaced_duplicates(&a, &[&a, &b, &other])), ["b"]);
        assert!(displaced_duplicates(&b, &[&a, &b, &other]).is_empty(), "only the owner asks");
        // Once `b` reports the duplicate at its generation, nothing is asked again: no loop.
        let b_stalled = reconciled(b.clone(), &validate_among(&b, &[&a, &b]), ReleasePhase::Pending, 21);
        assert!(displaced_duplicates(&a, &[&a, &b_stalled]).is_empty());
    }

    #[test]
    fn invalid_version_skips_the_duplicate_check() {
        let a = release_of("a", "shop", "v1.0", 10);
        let b = release_of("b", "shop", "v1.0", 20);
        assert_eq!(reasons(&validate_among(&b, &[&a])), [Reason::InvalidVersion]);
    }
}
