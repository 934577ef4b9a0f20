//! `conveyor package`: package a git source exactly as the controller does.

use crate::config::Config;

/// Arguments of `conveyor package`.
#[derive(clap::Args, Debug)]
pub struct Args {}

/// Runs `conveyor package`.
pub fn run(_args: Args, _config: &Config) -> anyhow::Result<()> {
    anyhow::bail!("not implemented yet")
}
