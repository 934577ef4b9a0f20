//! Objects the CLI tests create as users would write them.

use conveyor::api::Release;

/// Release `checkout-<version>` of pipeline `checkout`, from a git tag `v<version>` (never
/// fetched: the CLI tests write its status themselves).
pub fn checkout_release(version: &str) -> Release {
    serde_norway::from_str(&format!(
        r#"
apiVersion: conveyor.dev/v1alpha1
kind: Release
metadata: {{ name: checkout-{version} }}
spec:
  pipeline: checkout
  version: {version}
  source:
    git: {{ url: "https://git.example.com/shop/checkout.git", ref: {{ tag: v{version} }} }}
    path: deploy
"#
    ))
    .expect("a valid Release")
}
