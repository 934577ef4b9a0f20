//! `conveyor release`: tag a new version in a local repository and write its Release.

use crate::config::Config;

/// Arguments of `conveyor release`.
#[derive(clap::Args, Debug)]
pub struct Args {}

/// Runs `conveyor release`.
pub fn run(_args: Args, _config: &Config) -> anyhow::Result<()> {
    anyhow::bail!("not implemented yet")
}
