//! One typed configuration, parsed and validated once at start.
//!
//! Sources, later ones winning: built-in defaults, the YAML file (`--config`), then
//! `CONVEYOR_<KEY>` environment variables (lists comma-separated). Unknown keys and bad
//! values are errors naming the key and where it came from.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::core::duration;
use crate::core::validate::{is_dns_label, is_dns_subdomain};

/// A configuration error naming the key at fault.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    /// The file is not valid YAML or has an unknown key or wrongly typed value.
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    /// A key has a bad value.
    #[error("config key `{key}` (from {origin}): {message}")]
    Invalid { key: &'static str, origin: String, message: String },
}

/// Result with a config [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Log output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The controller's configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// Environments `conveyor init` proposes.
    pub environments: Vec<String>,
    /// Default for `spec.rollback.automatic`.
    pub rollback_enabled: bool,
    /// Whether releases may apply cluster-scoped objects (ClusterRoles, Namespaces, CRDs, …).
    pub allow_cluster_scoped: bool,
    /// Whether HTTP checks may reach link-local and cloud metadata addresses (169.254.0.0/16, fe80::/10).
    pub allow_link_local_checks: bool,
    /// Default health-check deadline per environment.
    pub validation_timeout: Duration,
    /// Deadline for one git fetch.
    pub git_timeout: Duration,
    /// Prefix of release tags (`v` gives `v2.4.1`; empty allowed).
    pub tag_prefix: String,
    /// File release notes are prepended to.
    pub changelog_file: PathBuf,
    /// Webhooks notified of deploys, promotions, failures and rollbacks.
    pub notification_webhooks: Vec<Webhook>,
    /// Deadline for one delivery attempt to a webhook.
    pub notification_timeout: Duration,
    /// Address of `/metrics`, `/healthz`, `/readyz`.
    pub metrics_address: SocketAddr,
    /// Directory of the content-addressed artifact store.
    pub artifact_dir: PathBuf,
    /// Default Prometheus base URL for checks.
    pub prometheus_address: url::Url,
    /// Log format.
    pub log_format: LogFormat,
    /// Only one replica reconciles, elected on a Lease.
    pub leader_election: bool,
    /// Name of the Lease.
    pub lease_name: String,
    /// Namespace of the Lease (empty: the pod's namespace, else `default`).
    pub lease_namespace: String,
    /// How long a leader holds the Lease without renewing it.
    pub lease_duration: Duration,
    /// Watch Pipelines and Releases in this namespace only (empty: all namespaces).
    pub watch_namespace: String,
    /// Bounds on what one release may package.
    pub package_limits: PackageLimits,
    /// The kustomize engine: `kubectl` (runs `kubectl kustomize`) or `kustomize` (runs
    /// `kustomize build`), a name looked up on PATH or a path.
    pub kustomize_binary: PathBuf,
    /// The Helm engine (`helm template`), a name looked up on PATH or a path.
    pub helm_binary: PathBuf,
    /// Deadline for one run of an engine.
    pub render_timeout: Duration,
}

/// A webhook receiver of notifications.
///
/// Its URL is a secret (a Slack webhook URL is its own credential): `Debug` and [`Webhook::host`]
/// show the host only, and nothing else may log it.
#[derive(Clone, PartialEq, Eq)]
pub struct Webhook {
    /// Where notifications are POSTed.
    pub url: url::Url,
    /// The payload it takes.
    pub format: WebhookFormat,
}

impl Webhook {
    /// The host (and port, when given), for logs: never the path or query, which carry the secret.
    pub fn host(&self) -> String {
        let host = self.url.host_str().unwrap_or("?");
        match self.url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        }
    }
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook").field("host", &self.host()).field("format", &self.format).finish_non_exhaustive()
    }
}

/// The payload a webhook takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WebhookFormat {
    /// Conveyor's JSON object (type, namespace, pipeline, environment, release, …).
    Json,
    /// Slack-compatible `{"text": "…"}` (Slack incoming webhooks, Mattermost, Rocket.Chat, …).
    Slack,
}

impl WebhookFormat {
    /// The default for a URL: Slack's webhook host takes Slack's format, anything else JSON.
    pub fn for_url(url: &url::Url) -> Self {
        if url.host_str() == Some(SLACK_WEBHOOK_HOST) { Self::Slack } else { Self::Json }
    }
}

/// The host of Slack's incoming webhooks.
const SLACK_WEBHOOK_HOST: &str = "hooks.slack.com";

/// Bounds on untrusted repository content, checked while packaging.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PackageLimits {
    /// Most manifest files under `spec.source.path`.
    pub max_files: usize,
    /// Most bytes of one manifest file.
    pub max_file_bytes: u64,
    /// Most bytes of all manifest files together.
    pub max_bytes: u64,
    /// Most YAML nodes one document may expand to, aliases included.
    pub max_yaml_nodes: usize,
}

impl Default for PackageLimits {
    fn default() -> Self {
        Self { max_files: 20_000, max_file_bytes: 4 << 20, max_bytes: 64 << 20, max_yaml_nodes: 100_000 }
    }
}

/// Keys as they appear in the file; every field optional so defaults fill the gaps.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    environments: Option<Vec<String>>,
    rollback_enabled: Option<bool>,
    allow_cluster_scoped: Option<bool>,
    allow_link_local_checks: Option<bool>,
    validation_timeout: Option<String>,
    git_timeout: Option<String>,
    tag_prefix: Option<String>,
    changelog_file: Option<String>,
    notification_webhooks: Option<Vec<RawWebhook>>,
    notification_timeout: Option<String>,
    metrics_address: Option<String>,
    artifact_dir: Option<String>,
    prometheus_address: Option<String>,
    log_format: Option<String>,
    leader_election: Option<bool>,
    lease_name: Option<String>,
    lease_namespace: Option<String>,
    lease_duration: Option<String>,
    watch_namespace: Option<String>,
    #[serde(default, deserialize_with = "number_or_string")]
    package_max_files: Option<String>,
    #[serde(default, deserialize_with = "number_or_string")]
    package_max_file_bytes: Option<String>,
    #[serde(default, deserialize_with = "number_or_string")]
    package_max_bytes: Option<String>,
    #[serde(default, deserialize_with = "number_or_string")]
    package_max_yaml_nodes: Option<String>,
    kustomize_binary: Option<String>,
    helm_binary: Option<String>,
    render_timeout: Option<String>,
}

/// Sizes and counts are written as plain YAML numbers or as strings with a suffix (`64Mi`).
fn number_or_string<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Scalar {
        Number(u64),
        Text(String),
    }
    Ok(Option::<Scalar>::deserialize(d)?.map(|v| match v {
        Scalar::Number(n) => n.to_string(),
        Scalar::Text(s) => s,
    }))
}

/// A `notification_webhooks` entry as written: `URL`, `FORMAT=URL`, or (in the file) a mapping
/// `{url: URL, format: FORMAT}`.
#[derive(Debug)]
enum RawWebhook {
    Short(String),
    Mapping(WebhookMapping),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WebhookMapping {
    url: String,
    #[serde(default)]
    format: Option<String>,
}

impl<'de> Deserialize<'de> for RawWebhook {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = RawWebhook;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a webhook URL, or a mapping {url: URL, format: json|slack}")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> std::result::Result<RawWebhook, E> {
                Ok(RawWebhook::Short(v.to_owned()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> std::result::Result<RawWebhook, A::Error> {
                WebhookMapping::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(RawWebhook::Mapping)
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// Every key, as written in the file; `CONVEYOR_` + upper case gives the env var.
pub const KEYS: &[&str] = &[
    "environments",
    "rollback_enabled",
    "allow_cluster_scoped",
    "allow_link_local_checks",
    "validation_timeout",
    "git_timeout",
    "tag_prefix",
    "changelog_file",
    "notification_webhooks",
    "notification_timeout",
    "metrics_address",
    "artifact_dir",
    "prometheus_address",
    "log_format",
    "leader_election",
    "lease_name",
    "lease_namespace",
    "lease_duration",
    "watch_namespace",
    "package_max_files",
    "package_max_file_bytes",
    "package_max_bytes",
    "package_max_yaml_nodes",
    "kustomize_binary",
    "helm_binary",
    "render_timeout",
];

/// The environment variable that overrides `key`.
pub fn env_var(key: &str) -> String {
    format!("CONVEYOR_{}", key.to_ascii_uppercase())
}

impl Config {
    /// Loads from an optional file and the process environment.
    pub fn load(file: Option<&Path>) -> Result<Self> {
        let vars: BTreeMap<String, String> = std::env::vars().collect();
        Self::load_from(file, &vars)
    }

    /// Loads from an optional file and the given environment (for tests).
    pub fn load_from(file: Option<&Path>, vars: &BTreeMap<String, String>) -> Result<Self> {
        let (mut raw, file_origin) = match file {
            Some(path) => {
                let text =
                    std::fs::read_to_string(path).map_err(|source| Error::Read { path: path.to_owned(), source })?;
                (parse_file(path, &text)?, format!("file {}", path.display()))
            }
            None => (RawConfig::default(), "defaults".to_owned()),
        };
        let mut origins: BTreeMap<&'static str, String> = BTreeMap::new();
        for key in KEYS {
            let var = env_var(key);
            if let Some(value) = vars.get(&var) {
                apply_env(&mut raw, key, value).map_err(|message| Error::Invalid {
                    key,
                    origin: format!("env {var}"),
                    message,
                })?;
                origins.insert(key, format!("env {var}"));
            }
        }
        let origin = |key: &'static str| origins.get(key).cloned().unwrap_or_else(|| file_origin.clone());
        build(raw, &origin)
    }
}

fn parse_file(path: &Path, text: &str) -> Result<RawConfig> {
    if text.trim().is_empty() {
        return Ok(RawConfig::default());
    }
    serde_norway::from_str(text)
        .map_err(|e| Error::Parse { path: path.to_owned(), message: format!("{e} (known keys: {})", KEYS.join(", ")) })
}

fn parse_bool(value: &str) -> std::result::Result<bool, String> {
    match value.trim() {
        "true" => Ok(true),
        "false" => Ok(false),
        other => Err(format!("`{other}` is not true or false")),
    }
}

fn split_list(value: &str) -> Vec<String> {
    value.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

fn apply_env(raw: &mut RawConfig, key: &str, value: &str) -> std::result::Result<(), String> {
    let s = Some(value.to_owned());
    match key {
        "environments" => raw.environments = Some(split_list(value)),
        "rollback_enabled" => raw.rollback_enabled = Some(parse_bool(value)?),
        "allow_cluster_scoped" => raw.allow_cluster_scoped = Some(parse_bool(value)?),
        "allow_link_local_checks" => raw.allow_link_local_checks = Some(parse_bool(value)?),
        "validation_timeout" => raw.validation_timeout = s,
        "git_timeout" => raw.git_timeout = s,
        "tag_prefix" => raw.tag_prefix = s,
        "changelog_file" => raw.changelog_file = s,
        "notification_webhooks" => {
            raw.notification_webhooks = Some(split_list(value).into_iter().map(RawWebhook::Short).collect())
        }
        "notification_timeout" => raw.notification_timeout = s,
        "metrics_address" => raw.metrics_address = s,
        "artifact_dir" => raw.artifact_dir = s,
        "prometheus_address" => raw.prometheus_address = s,
        "log_format" => raw.log_format = s,
        "leader_election" => raw.leader_election = Some(parse_bool(value)?),
        "lease_name" => raw.lease_name = s,
        "lease_namespace" => raw.lease_namespace = s,
        "lease_duration" => raw.lease_duration = s,
        "watch_namespace" => raw.watch_namespace = s,
        "package_max_files" => raw.package_max_files = s,
        "package_max_file_bytes" => raw.package_max_file_bytes = s,
        "package_max_bytes" => raw.package_max_bytes = s,
        "package_max_yaml_nodes" => raw.package_max_yaml_nodes = s,
        "kustomize_binary" => raw.kustomize_binary = s,
        "helm_binary" => raw.helm_binary = s,
        "render_timeout" => raw.render_timeout = s,
        other => unreachable!("KEYS and apply_env disagree about `{other}`"),
    }
    Ok(())
}

fn build(raw: RawConfig, origin: &dyn Fn(&'static str) -> String) -> Result<Config> {
    let invalid = |key: &'static str, message: String| Error::Invalid { key, origin: origin(key), message };
    let dur = |key: &'static str, value: Option<String>, default: &str| -> Result<Duration> {
        duration::parse(value.as_deref().unwrap_or(default)).map_err(|m| invalid(key, m))
    };
    let http_url = |key: &'static str, value: &str| -> Result<url::Url> {
        match url::Url::parse(value) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => Ok(u),
            _ => Err(invalid(key, format!("`{value}` is not an http:// or https:// URL"))),
        }
    };

    let environments =
        raw.environments.unwrap_or_else(|| vec!["development".into(), "staging".into(), "production".into()]);
    if environments.is_empty() {
        return Err(invalid("environments", "is empty; list at least one environment name".into()));
    }
    if let Some(bad) = environments.iter().find(|e| !is_dns_label(e)) {
        return Err(invalid(
            "environments",
            format!("`{bad}` is not a DNS-1123 label (lowercase letters, digits, '-')"),
        ));
    }
    let validation_timeout = dur("validation_timeout", raw.validation_timeout, "5m")?;
    if validation_timeout.is_zero() {
        return Err(invalid("validation_timeout", "must be greater than 0s".into()));
    }
    let git_timeout = dur("git_timeout", raw.git_timeout, "30s")?;
    if git_timeout.is_zero() {
        return Err(invalid("git_timeout", "must be greater than 0s".into()));
    }
    let lease_duration = dur("lease_duration", raw.lease_duration, "15s")?;
    if lease_duration < Duration::from_secs(5) {
        return Err(invalid("lease_duration", "must be at least 5s".into()));
    }
    let tag_prefix = raw.tag_prefix.unwrap_or_else(|| "v".into());
    if tag_prefix.chars().any(|c| c.is_whitespace() || "~^:?*[\\".contains(c)) {
        return Err(invalid("tag_prefix", format!("`{tag_prefix}` cannot start a git tag name")));
    }
    let changelog_file = raw.changelog_file.unwrap_or_else(|| "CHANGELOG.md".into());
    if changelog_file.trim().is_empty() {
        return Err(invalid("changelog_file", "is empty; name a file such as CHANGELOG.md".into()));
    }
    let notification_webhooks = raw
        .notification_webhooks
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(i, w)| webhook(w).map_err(|m| invalid("notification_webhooks", format!("entry {}: {m}", i + 1))))
        .collect::<Result<Vec<_>>>()?;
    let notification_timeout = dur("notification_timeout", raw.notification_timeout, "5s")?;
    if notification_timeout.is_zero() {
        return Err(invalid("notification_timeout", "must be greater than 0s".into()));
    }
    let metrics_raw = raw.metrics_address.unwrap_or_else(|| "0.0.0.0:8080".into());
    let metrics_address = metrics_raw.parse().map_err(|_| {
        invalid("metrics_address", format!("`{metrics_raw}` is not HOST:PORT with an IP address, e.g. 0.0.0.0:8080"))
    })?;
    let artifact_dir = raw.artifact_dir.unwrap_or_else(|| "/var/lib/conveyor/artifacts".into());
    if artifact_dir.trim().is_empty() {
        return Err(invalid("artifact_dir", "is empty; name a writable directory".into()));
    }
    let prometheus_address =
        http_url("prometheus_address", raw.prometheus_address.as_deref().unwrap_or("http://prometheus:9090"))?;
    let log_format = match raw.log_format.as_deref().unwrap_or("text") {
        "text" => LogFormat::Text,
        "json" => LogFormat::Json,
        other => return Err(invalid("log_format", format!("`{other}` is not text or json"))),
    };
    let lease_name = raw.lease_name.unwrap_or_else(|| "conveyor-controller".into());
    if !is_dns_subdomain(&lease_name) {
        return Err(invalid("lease_name", format!("`{lease_name}` is not a valid object name")));
    }
    let lease_namespace = raw.lease_namespace.unwrap_or_default();
    if !lease_namespace.is_empty() && !is_dns_label(&lease_namespace) {
        return Err(invalid("lease_namespace", format!("`{lease_namespace}` is not a valid namespace name")));
    }
    let watch_namespace = raw.watch_namespace.unwrap_or_default();
    if !watch_namespace.is_empty() && !is_dns_label(&watch_namespace) {
        return Err(invalid("watch_namespace", format!("`{watch_namespace}` is not a valid namespace name")));
    }
    let defaults = PackageLimits::default();
    let count = |key: &'static str, value: Option<String>, default: u64| -> Result<u64> {
        match value {
            None => Ok(default),
            Some(v) => match parse_size(&v) {
                Some(n) if n > 0 => Ok(n),
                _ => Err(invalid(key, format!("`{v}` is not a positive number (suffixes Ki, Mi, Gi allowed)"))),
            },
        }
    };
    let package_limits = PackageLimits {
        max_files: usize::try_from(count("package_max_files", raw.package_max_files, defaults.max_files as u64)?)
            .unwrap_or(usize::MAX),
        max_file_bytes: count("package_max_file_bytes", raw.package_max_file_bytes, defaults.max_file_bytes)?,
        max_bytes: count("package_max_bytes", raw.package_max_bytes, defaults.max_bytes)?,
        max_yaml_nodes: usize::try_from(count(
            "package_max_yaml_nodes",
            raw.package_max_yaml_nodes,
            defaults.max_yaml_nodes as u64,
        )?)
        .unwrap_or(usize::MAX),
    };
    let binary = |key: &'static str, value: Option<String>, default: &str| -> Result<PathBuf> {
        let value = value.unwrap_or_else(|| default.to_owned());
        if value.trim().is_empty() {
            return Err(invalid(
                key,
                format!("is empty; name the binary (`{default}`, looked up on PATH) or its path"),
            ));
        }
        Ok(PathBuf::from(value.trim()))
    };
    let kustomize_binary = binary("kustomize_binary", raw.kustomize_binary, "kubectl")?;
    let helm_binary = binary("helm_binary", raw.helm_binary, "helm")?;
    let render_timeout = dur("render_timeout", raw.render_timeout, "60s")?;
    if render_timeout.is_zero() {
        return Err(invalid("render_timeout", "must be greater than 0s".into()));
    }
    Ok(Config {
        environments,
        rollback_enabled: raw.rollback_enabled.unwrap_or(true),
        // Off by default: a cluster-scoped object reaches beyond the environment's namespace.
        allow_cluster_scoped: raw.allow_cluster_scoped.unwrap_or(false),
        allow_link_local_checks: raw.allow_link_local_checks.unwrap_or(false),
        validation_timeout,
        git_timeout,
        tag_prefix,
        changelog_file: changelog_file.into(),
        notification_webhooks,
        notification_timeout,
        metrics_address,
        artifact_dir: artifact_dir.into(),
        prometheus_address,
        log_format,
        leader_election: raw.leader_election.unwrap_or(true),
        lease_name,
        lease_namespace,
        lease_duration,
        watch_namespace,
        package_limits,
        kustomize_binary,
        helm_binary,
        render_timeout,
    })
}

/// One webhook entry. Messages never echo the URL: its path is a secret.
fn webhook(raw: RawWebhook) -> std::result::Result<Webhook, String> {
    let (url, format) = match raw {
        // `FORMAT=URL`: a URL always has `scheme:` before any `=`, so a word of letters before
        // the first `=` can only be a format.
        RawWebhook::Short(s) => match s.split_once('=') {
            Some((format, url)) if !format.is_empty() && format.chars().all(|c| c.is_ascii_alphabetic()) => {
                (url.trim().to_owned(), Some(format.to_owned()))
            }
            _ => (s, None),
        },
        RawWebhook::Mapping(m) => (m.url, m.format),
    };
    let url = match url::Url::parse(&url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => u,
        Ok(u) => return Err(format!("a `{}:` URL is not an http:// or https:// URL", u.scheme())),
        Err(e) => return Err(format!("not an http:// or https:// URL ({e})")),
    };
    let format = match format.as_deref() {
        None => WebhookFormat::for_url(&url),
        Some("json") => WebhookFormat::Json,
        Some("slack") => WebhookFormat::Slack,
        Some(other) => {
            return Err(format!(
                "format `{other}` is unknown; use `json` (Conveyor's JSON) or `slack` (Slack-compatible text), \
                 as `{{url: …, format: slack}}` in the file or `slack=https://…` in a list"
            ));
        }
    };
    Ok(Webhook { url, format })
}

/// `1234`, `512Ki`, `64Mi` or `1Gi` as a number.
fn parse_size(value: &str) -> Option<u64> {
    let value = value.trim();
    let (digits, unit) = match value.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => value.split_at(i),
        None => (value, ""),
    };
    let shift = match unit {
        "" => 0,
        "Ki" => 10,
        "Mi" => 20,
        "Gi" => 30,
        _ => return None,
    };
    digits.parse::<u64>().ok()?.checked_mul(1 << shift)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
    }

    fn load(text: &str, vars: &[(&str, &str)]) -> Result<Config> {
        let f = file(text);
        let vars = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::load_from(Some(f.path()), &vars)
    }

    #[test]
    fn defaults_match_the_design() {
        let c = Config::load_from(None, &BTreeMap::new()).unwrap();
        assert_eq!(c.environments, ["development", "staging", "production"]);
        assert!(c.rollback_enabled);
        assert!(!c.allow_cluster_scoped);
        assert_eq!(c.validation_timeout, Duration::from_secs(300));
        assert_eq!(c.git_timeout, Duration::from_secs(30));
        assert_eq!(c.tag_prefix, "v");
        assert_eq!(c.changelog_file, PathBuf::from("CHANGELOG.md"));
        assert!(c.notification_webhooks.is_empty());
        assert!(c.leader_election);
        assert_eq!(c.package_limits, PackageLimits::default());
    }

    #[test]
    fn sizes_take_binary_suffixes() {
        let c =
            load("package_max_bytes: 8Mi\npackage_max_files: 10\n", &[("CONVEYOR_PACKAGE_MAX_FILE_BYTES", "512Ki")])
                .unwrap();
        assert_eq!(c.package_limits.max_bytes, 8 << 20);
        assert_eq!(c.package_limits.max_files, 10);
        assert_eq!(c.package_limits.max_file_bytes, 512 << 10);
        assert_eq!(parse_size("1Gi"), Some(1 << 30));
        assert_eq!(parse_size("1.5Mi"), None);
    }

    #[test]
    fn the_shipped_config_file_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/conveyor.yaml");
        Config::load_from(Some(&path), &BTreeMap::new()).unwrap();
    }

    #[test]
    fn unknown_key_is_named() {
        let err = load("tag_prefx: v\n", &[]).unwrap_err().to_string();
        assert!(err.contains("tag_prefx"), "{err}");
        assert!(err.contains("known keys"), "{err}");
    }

    #[test]
    fn bad_values_are_named_with_their_origin() {
        let cases = [
            ("git_timeout: soon\n", "git_timeout"),
            ("validation_timeout: 0s\n", "validation_timeout"),
            ("metrics_address: localhost\n", "metrics_address"),
            ("prometheus_address: prometheus:9090\n", "prometheus_address"),
            ("log_format: xml\n", "log_format"),
            ("environments: [Dev]\n", "environments"),
            ("notification_webhooks: [\"ftp://x\"]\n", "notification_webhooks"),
            ("rollback_enabled: maybe\n", "rollback_enabled"),
            ("allow_cluster_scoped: yes\n", "allow_cluster_scoped"),
            ("package_max_files: 0\n", "package_max_files"),
            ("package_max_bytes: 64MB\n", "package_max_bytes"),
        ];
        for (text, key) in cases {
            let err = load(text, &[]).unwrap_err().to_string();
            assert!(err.contains(key), "{text:?} gave {err}");
        }
    }

    #[test]
    fn env_vars_override_the_file_and_are_named_when_bad() {
        let c = load(
            "tag_prefix: v\nenvironments: [a]\n",
            &[
                ("CONVEYOR_TAG_PREFIX", ""),
                ("CONVEYOR_ENVIRONMENTS", "dev, prod"),
                ("CONVEYOR_ROLLBACK_ENABLED", "false"),
            ],
        )
        .unwrap();
        assert_eq!(c.tag_prefix, "");
        assert_eq!(c.environments, ["dev", "prod"]);
        assert!(!c.rollback_enabled);

        let err = load("", &[("CONVEYOR_GIT_TIMEOUT", "forever")]).unwrap_err().to_string();
        assert!(err.contains("git_timeout") && err.contains("env CONVEYOR_GIT_TIMEOUT"), "{err}");
    }

    #[test]
    fn allow_cluster_scoped_from_file_and_env() {
        assert!(load("allow_cluster_scoped: true\n", &[]).unwrap().allow_cluster_scoped);
        let c = load("allow_cluster_scoped: true\n", &[("CONVEYOR_ALLOW_CLUSTER_SCOPED", "false")]).unwrap();
        assert!(!c.allow_cluster_scoped);
        let err = load("", &[("CONVEYOR_ALLOW_CLUSTER_SCOPED", "1")]).unwrap_err().to_string();
        assert!(err.contains("allow_cluster_scoped") && err.contains("env CONVEYOR_ALLOW_CLUSTER_SCOPED"), "{err}");
    }

    #[test]
    fn webhooks_take_urls_and_mappings_with_a_format() {
        let c = load(
            "notification_webhooks:\n  - https://hooks.example.com/conveyor\n  - {url: \"https://chat.example.com/hooks/x\", format: slack}\n  - {url: \"https://hooks.slack.com/services/T/B/X\"}\n  - slack=http://127.0.0.1:9/x?a=b\nnotification_timeout: 2s\n",
            &[],
        )
        .unwrap();
        let formats: Vec<_> = c.notification_webhooks.iter().map(|w| (w.url.as_str(), w.format)).collect();
        assert_eq!(
            formats,
            [
                ("https://hooks.example.com/conveyor", WebhookFormat::Json),
                ("https://chat.example.com/hooks/x", WebhookFormat::Slack),
                // Slack's own host needs no format.
                ("https://hooks.slack.com/services/T/B/X", WebhookFormat::Slack),
                ("http://127.0.0.1:9/x?a=b", WebhookFormat::Slack),
            ]
        );
        assert_eq!(c.notification_timeout, Duration::from_secs(2));
        assert_eq!(Config::load_from(None, &BTreeMap::new()).unwrap().notification_timeout, Duration::from_secs(5));
    }

    #[test]
    fn webhooks_from_the_env_var_choose_their_format_by_prefix() {
        let c = load(
            "",
            &[(
                "CONVEYOR_NOTIFICATION_WEBHOOKS",
                "https://a.example.com/x?k=v, slack=https://b.example.com/y,json=https://hooks.slack.com/z",
            )],
        )
        .unwrap();
        let formats: Vec<_> = c.notification_webhooks.iter().map(|w| (w.url.host_str().unwrap(), w.format)).collect();
        assert_eq!(
            formats,
            [
                ("a.example.com", WebhookFormat::Json),
                ("b.example.com", WebhookFormat::Slack),
                ("hooks.slack.com", WebhookFormat::Json)
            ]
        );
        assert_eq!(c.notification_webhooks[0].url.query(), Some("k=v"));
    }

    #[test]
    fn bad_webhooks_are_named_with_the_fix_and_never_echo_the_url() {
        let cases = [
            (
                "notification_webhooks: [{url: \"https://hooks.slack.com/services/SECRET\", format: teams}]\n",
                "format `teams` is unknown; use `json`",
            ),
            ("notification_webhooks: [\"teams=https://x.example.com/SECRET\"]\n", "entry 1: format `teams` is unknown"),
            (
                "notification_webhooks: [https://ok.example.com, \"ftp://x.example.com/SECRET\"]\n",
                "entry 2: a `ftp:` URL is not an http",
            ),
            ("notification_webhooks: [\"hooks.slack.com/SECRET\"]\n", "entry 1: not an http:// or https:// URL"),
            ("notification_timeout: 0s\n", "notification_timeout"),
        ];
        for (text, words) in cases {
            let err = load(text, &[]).unwrap_err().to_string();
            assert!(err.contains(words), "{text:?} gave {err}");
            assert!(!err.contains("SECRET"), "{text:?} leaked the URL: {err}");
        }
        let err = load("notification_webhooks: [{url: \"https://x.example.com\", fromat: slack}]\n", &[]).unwrap_err();
        assert!(err.to_string().contains("fromat"), "{err}");
        let err = load("", &[("CONVEYOR_NOTIFICATION_WEBHOOKS", "xml=https://x.example.com/SECRET")]).unwrap_err();
        let err = err.to_string();
        assert!(err.contains("env CONVEYOR_NOTIFICATION_WEBHOOKS") && err.contains("`xml` is unknown"), "{err}");
        assert!(!err.contains("SECRET"), "{err}");
    }

    #[test]
    fn a_webhook_prints_its_host_only() {
        let c = load("notification_webhooks: [\"https://hooks.slack.com/services/T0/B0/SECRET\"]\n", &[]).unwrap();
        let shown = format!("{c:?}");
        assert!(shown.contains("hooks.slack.com") && !shown.contains("SECRET"), "{shown}");
        let c = load("notification_webhooks: [\"http://127.0.0.1:8081/SECRET\"]\n", &[]).unwrap();
        assert_eq!(c.notification_webhooks[0].host(), "127.0.0.1:8081");
    }

    #[test]
    fn engines_default_to_path_and_are_overridable() {
        let c = Config::load_from(None, &BTreeMap::new()).unwrap();
        assert_eq!((c.kustomize_binary.as_path(), c.helm_binary.as_path()), (Path::new("kubectl"), Path::new("helm")));
        assert_eq!(c.render_timeout, Duration::from_secs(60));
        let c = load(
            "helm_binary: /opt/helm/bin/helm\nrender_timeout: 2m\n",
            &[("CONVEYOR_KUSTOMIZE_BINARY", "/usr/local/bin/kustomize")],
        )
        .unwrap();
        assert_eq!(c.helm_binary, PathBuf::from("/opt/helm/bin/helm"));
        assert_eq!(c.kustomize_binary, PathBuf::from("/usr/local/bin/kustomize"));
        assert_eq!(c.render_timeout, Duration::from_secs(120));
        for (text, key) in [("helm_binary: ''\n", "helm_binary"), ("render_timeout: 0s\n", "render_timeout")] {
            let err = load(text, &[]).unwrap_err().to_string();
            assert!(err.contains(key), "{text:?} gave {err}");
        }
    }

    #[test]
    fn every_key_has_an_env_override() {
        for key in KEYS {
            let mut raw = RawConfig::default();
            let value = if key.ends_with("enabled")
                || ["leader_election", "allow_cluster_scoped", "allow_link_local_checks"].contains(key)
            {
                "true"
            } else {
                "x"
            };
            apply_env(&mut raw, key, value).unwrap();
        }
    }
}
