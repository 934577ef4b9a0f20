//! Kustomize: the checks made before the engine runs, and its command line.
//!
//! Kustomize reads what a kustomization names: local files and directories, and, when a
//! `resources` entry is not a local path, a remote git repository or URL. Before it runs, every
//! kustomization reachable from the rendered one is read and every path it names must resolve,
//! inside the repository, to something that exists at the commit. So a remote base (which
//! would need the network and would not be pinned by the commit) and a path climbing out of the
//! repository (which could read the controller's own files) are refused with a message naming
//! the kustomization and the entry. A kustomization that does not parse is left to kustomize,
//! whose own message is the clearest.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{Error, KUSTOMIZATION_FILES, inside_repository};

/// Fields holding a list of paths; those marked `true` may name kustomization directories.
const PATH_LISTS: [(&str, bool); 5] =
    [("resources", true), ("bases", true), ("components", true), ("crds", false), ("configurations", false)];
/// Fields holding a list of paths or inline YAML documents.
const PATH_OR_INLINE_LISTS: [&str; 4] = ["patchesStrategicMerge", "transformers", "generators", "validators"];
/// Fields holding a list of objects with a `path`.
const OBJECTS_WITH_PATH: [&str; 3] = ["patches", "patchesJson6902", "replacements"];
/// Generators whose entries name files (`files: [key=path]`, `envs: [path]`, `env: path`).
const GENERATORS: [&str; 2] = ["configMapGenerator", "secretGenerator"];

/// The command line: `kubectl kustomize <dir>`, or `kustomize build <dir>` when the binary is
/// kustomize itself. Plugins, exec functions and the Helm inflator stay off (their defaults).
pub(super) fn args(binary: &Path, dir: &str) -> (Vec<String>, String) {
    let dir = if dir.is_empty() { ".".to_owned() } else { dir.to_owned() };
    let name = binary.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    if name.starts_with("kustomize") {
        (vec!["build".into(), dir.clone()], format!("kustomize build {dir}"))
    } else {
        (vec!["kustomize".into(), dir.clone()], format!("kubectl kustomize {dir}"))
    }
}

/// Checks the kustomization in `dir` (relative to the repository root `root` on disk) and every
/// one it reaches.
pub(super) fn check(root: &Path, dir: &str) -> Result<(), Error> {
    let mut seen = BTreeSet::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(dir) = pending.pop() {
        if !seen.insert(dir.clone()) {
            continue;
        }
        let Some((file, kustomization)) = read(root, &dir) else { continue };
        let mut entry = |field: &str, value: &str, may_be_dir: bool| -> Result<(), Error> {
            let what = || format!("{field} entry `{value}`");
            let Some(resolved) = inside_repository(&dir, value) else {
                return Err(Error::Outside { what: what(), file: file.clone() });
            };
            let on_disk = on_disk(root, &resolved);
            if !on_disk.exists() {
                return Err(Error::NotInRepository { what: what(), file: file.clone() });
            }
            if may_be_dir && on_disk.is_dir() {
                pending.push(resolved);
            }
            Ok(())
        };
        for (field, may_be_dir) in PATH_LISTS {
            for value in strings(kustomization.get(field)) {
                entry(field, value, may_be_dir)?;
            }
        }
        for field in PATH_OR_INLINE_LISTS {
            // An inline document spans lines or is a mapping; a path is one line.
            for value in strings(kustomization.get(field)).filter(|v| !v.contains('\n')) {
                entry(field, value, false)?;
            }
        }
        for field in OBJECTS_WITH_PATH {
            for item in list(kustomization.get(field)) {
                if let Some(path) = item.get("path").and_then(Value::as_str) {
                    entry(&format!("{field}[].path"), path, false)?;
                }
            }
        }
        for field in GENERATORS {
            for generator in list(kustomization.get(field)) {
                for value in strings(generator.get("files")) {
                    // `key=path` names the key the file's content is stored under.
                    let path = value.split_once('=').map_or(value, |(_, path)| path);
                    entry(&format!("{field}[].files"), path, false)?;
                }
                for value in strings(generator.get("envs")).chain(generator.get("env").and_then(Value::as_str)) {
                    entry(&format!("{field}[].envs"), value, false)?;
                }
            }
        }
        if let Some(path) = kustomization.get("openapi").and_then(|o| o.get("path")).and_then(Value::as_str) {
            entry("openapi.path", path, false)?;
        }
    }
    Ok(())
}

/// The kustomization file in `dir` and its content, if there is one that parses.
fn read(root: &Path, dir: &str) -> Option<(String, Value)> {
    KUSTOMIZATION_FILES.iter().find_map(|name| {
        let rel = if dir.is_empty() { (*name).to_owned() } else { format!("{dir}/{name}") };
        let text = std::fs::read(on_disk(root, &rel)).ok()?;
        // A file that does not parse is left to kustomize, which says what is wrong with it.
        let value: Value = serde_norway::from_slice(&text).ok()?;
        value.is_object().then_some((rel, value))
    })
}

fn on_disk(root: &Path, rel: &str) -> PathBuf {
    if rel.is_empty() { root.to_owned() } else { root.join(rel) }
}

fn list(value: Option<&Value>) -> impl Iterator<Item = &Value> {
    value.and_then(Value::as_array).into_iter().flatten()
}

fn strings(value: Option<&Value>) -> impl Iterator<Item = &str> {
    list(value).filter_map(Value::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (path, content) in files {
            let file = dir.path().join(path);
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(file, content).unwrap();
        }
        dir
    }

    const BASE: (&str, &str) = ("base/kustomization.yaml", "resources: [deployment.yaml]\n");
    const DEPLOYMENT: (&str, &str) = ("base/deployment.yaml", "kind: Deployment\n");

    #[test]
    fn a_typical_overlay_passes() {
        let dir = tree(&[
            BASE,
            DEPLOYMENT,
            (
                "overlays/prod/kustomization.yaml",
                "resources: [../../base]\npatches:\n  - path: replicas.yaml\n\
                 patchesStrategicMerge:\n  - |-\n    kind: Deployment\n    metadata: {name: web}\n\
                 configMapGenerator:\n  - name: settings\n    files: [app.properties, extra=../../base/deployment.yaml]\n    literals: [MODE=https://x]\n",
            ),
            ("overlays/prod/replicas.yaml", "kind: Deployment\n"),
            ("overlays/prod/app.properties", "a=b\n"),
        ]);
        check(dir.path(), "overlays/prod").unwrap();
    }

    #[test]
    fn remote_and_outside_paths_are_refused_where_they_are_written() {
        let cases = [
            (
                "resources: [github.com/example/app//deploy?ref=v1]\n",
                "resources entry `github.com/example/app//deploy?ref=v1` in overlays/prod/kustomization.yaml is not in \
                 the repository at this commit; Conveyor renders without network, so remote bases and files must be \
                 vendored into the repository",
            ),
            (
                "resources: [https://raw.example.com/app.yaml]\n",
                "resources entry `https://raw.example.com/app.yaml` in overlays/prod/kustomization.yaml is not in the \
                 repository",
            ),
            (
                "resources: [../../../../etc]\n",
                "resources entry `../../../../etc` in overlays/prod/kustomization.yaml reaches outside the repository",
            ),
            (
                "configMapGenerator: [{name: x, files: [passwd=/etc/passwd]}]\n",
                "configMapGenerator[].files entry `/etc/passwd` in overlays/prod/kustomization.yaml reaches outside",
            ),
            (
                "patches: [{path: ../../../secret.yaml}]\n",
                "patches[].path entry `../../../secret.yaml` in overlays/prod/kustomization.yaml reaches outside",
            ),
        ];
        for (kustomization, want) in cases {
            let dir = tree(&[BASE, DEPLOYMENT, ("overlays/prod/kustomization.yaml", kustomization)]);
            let err = check(dir.path(), "overlays/prod").unwrap_err().to_string();
            assert!(err.starts_with(want), "{kustomization}: {err}");
        }
    }

    #[test]
    fn reached_kustomizations_are_checked_too_and_cycles_end() {
        let dir = tree(&[
            ("base/kustomization.yaml", "resources: [../overlay, https://example.com/x.yaml]\n"),
            ("overlay/kustomization.yaml", "resources: [../base]\n"),
        ]);
        let err = check(dir.path(), "overlay").unwrap_err().to_string();
        assert!(err.starts_with("resources entry `https://example.com/x.yaml` in base/kustomization.yaml"), "{err}");
    }

    #[test]
    fn what_does_not_parse_is_left_to_kustomize() {
        let dir = tree(&[("app/kustomization.yaml", "resources: [unclosed\n")]);
        check(dir.path(), "app").unwrap();
    }

    #[test]
    fn command_lines() {
        assert_eq!(
            args(Path::new("/usr/bin/kubectl"), "deploy/prod"),
            (vec!["kustomize".to_owned(), "deploy/prod".to_owned()], "kubectl kustomize deploy/prod".to_owned())
        );
        assert_eq!(args(Path::new("kustomize"), "").1, "kustomize build .");
    }
}
