//! Probes: I/O that looks at what runs in an environment and returns a typed sample for the core
//! to judge. Workload readiness now; HTTP and Prometheus probes later. A probe decides nothing
//! itself: verdict rules live in [`crate::core`], and errors go back to the shell, which retries.

pub mod workloads;
