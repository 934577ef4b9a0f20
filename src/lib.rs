//! Conveyor: ships releases through environments in order.

pub mod api;
pub mod config;
pub mod core;
pub mod leader;
pub mod reconcile;
pub mod telemetry;
