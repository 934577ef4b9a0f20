//! Paths inside a repository, as the spec writes them: normalized, kept inside the root, and
//! with `${CONVEYOR_ENVIRONMENT}` replaced. Pure: used by validation and by the adapters that
//! read the repository.

/// Replaced by the environment's name in `spec.source.path` and in values file paths.
pub const ENVIRONMENT_VARIABLE: &str = "${CONVEYOR_ENVIRONMENT}";

/// `a/./b//c/../d` → `a/b/d`; `None` when it climbs above its start.
pub fn normalize(path: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.trim().split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p),
        }
    }
    Some(parts.join("/"))
}

/// `template` with `${CONVEYOR_ENVIRONMENT}` replaced by `environment`.
///
/// Environment names are DNS labels: no `/`, no `..`, so the substitution cannot make a path
/// climb, and checks made on the template hold for every environment.
pub fn substitute(template: &str, environment: &str) -> String {
    template.replace(ENVIRONMENT_VARIABLE, environment)
}

/// `file` (relative to the directory `dir`, both relative to the repository root) as a path
/// from the repository root; `None` when it is absolute or climbs above the root.
pub fn inside_repository(dir: &str, file: &str) -> Option<String> {
    if file.trim().starts_with('/') {
        return None;
    }
    normalize(&format!("{}/{}", dir.trim(), file.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_cases() {
        // (input, expected)
        let cases = [
            ("deploy", Some("deploy")),
            ("./deploy/", Some("deploy")),
            ("a/./b//c/../d", Some("a/b/d")),
            ("", Some("")),
            (".", Some("")),
            ("a/..", Some("")),
            ("..", None),
            ("a/../../b", None),
        ];
        for (input, expected) in cases {
            assert_eq!(normalize(input).as_deref(), expected, "{input}");
        }
    }

    #[test]
    fn substitution_and_paths_inside_the_repository() {
        assert_eq!(substitute("deploy/overlays/${CONVEYOR_ENVIRONMENT}", "staging"), "deploy/overlays/staging");
        assert_eq!(substitute("values-${CONVEYOR_ENVIRONMENT}.yaml", "production"), "values-production.yaml");
        assert_eq!(substitute("deploy/${CONVEYOR_VERSION}", "staging"), "deploy/${CONVEYOR_VERSION}");
        let cases = [
            ("charts/shop", "values.yaml", Some("charts/shop/values.yaml")),
            ("charts/shop", "../../values/prod.yaml", Some("values/prod.yaml")),
            ("charts/shop", "./a/../b.yaml", Some("charts/shop/b.yaml")),
            ("charts/shop", "../../../etc/passwd", None),
            ("charts/shop", "/etc/passwd", None),
            ("", "values.yaml", Some("values.yaml")),
            ("", "../values.yaml", None),
        ];
        for (dir, file, want) in cases {
            assert_eq!(inside_repository(dir, file).as_deref(), want, "{dir} + {file}");
        }
    }
}
