//! Human commands. Glue around the library; errors are `anyhow` here.

pub mod package;
pub mod release;
