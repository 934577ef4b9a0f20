//! The decision core: pure and synchronous. No kube client, tokio, git, HTTP, clock or env reads;
//! time comes in as an argument.

pub mod checks;
pub mod conditions;
pub mod duration;
pub mod environments;
#[cfg(test)]
pub(crate) mod fixtures;
pub mod health;
pub mod metrics;
pub mod notes;
pub mod paths;
pub mod plan;
pub mod release;
pub mod status;
pub mod threshold;
pub mod validate;

pub use validate::Problem;
