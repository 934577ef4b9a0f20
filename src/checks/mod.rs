//! Probes: I/O that looks at what runs in an environment and returns a typed sample for the core
//! to judge: workload readiness, HTTP endpoints and Prometheus queries. A probe decides nothing
//! itself: verdict rules live in [`crate::core`]. Workload reads return errors to the shell,
//! which retries; HTTP and Prometheus probes fold every outcome into a
//! [`Sample`](crate::core::checks::Sample), each call bounded by its timeout and never retried.

pub mod http;
pub mod prometheus;
pub mod workloads;

#[cfg(test)]
pub(crate) mod test_server {
    use std::net::SocketAddr;

    /// Serves `app` on `127.0.0.1:0` on the test's runtime; returns its address.
    pub(crate) async fn serve(app: axum::Router) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind test server");
        let addr = listener.local_addr().expect("test server address");
        tokio::spawn(async move { axum::serve(listener, app).await.expect("test server") });
        addr
    }
}
