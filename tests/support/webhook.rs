//! Webhook receivers for notification tests, on `127.0.0.1`, each on its own thread and tokio
//! runtime (they keep serving while a test blocks, and stop on drop):
//! - [`WebhookReceiver`]: an HTTP server that records every POST in arrival order and answers
//!   a fixed status (200 for a live receiver, 500 for one failing forever), at once or, when
//!   slow, after a delay (then a request counts only once it has been answered);
//! - [`HangingReceiver`]: accepts connections, reads each request, and never answers; it knows
//!   whether the client is still waiting on a connection or gave up (closed it).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::Value;
use tokio::io::AsyncReadExt;
use tokio::sync::oneshot;

/// One request as received.
#[derive(Clone, Debug)]
pub struct Received {
    /// Path and query.
    pub path: String,
    /// `Content-Type` header.
    pub content_type: Option<String>,
    /// The body, parsed as JSON (`Null` when it is not JSON).
    pub body: Value,
}

/// Runs `serve` on its own thread and runtime until the returned sender fires or is dropped.
fn spawn(name: String, serve: impl Future<Output = ()> + Send + 'static) -> (oneshot::Sender<()>, JoinHandle<()>) {
    let (shutdown, stop) = oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name(name)
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .expect("receiver runtime");
            rt.block_on(async move {
                tokio::select! {
                    () = serve => {}
                    _ = stop => {}
                }
            });
            // Handlers parked forever must not hold up the test's end.
            rt.shutdown_timeout(Duration::from_millis(100));
        })
        .expect("spawn receiver thread");
    (shutdown, thread)
}

fn bind() -> (std::net::TcpListener, SocketAddr) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind receiver");
    listener.set_nonblocking(true).expect("non-blocking listener");
    let addr = listener.local_addr().expect("receiver address");
    (listener, addr)
}

/// An HTTP server recording every POST, answering `status` to each.
pub struct WebhookReceiver {
    addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl WebhookReceiver {
    /// Starts answering `status` to every POST; listening when this returns.
    pub fn start(status: u16) -> Self {
        Self::start_slow(status, Duration::ZERO)
    }

    /// Starts answering `status` to every POST after `delay`, and recording it then: a request
    /// whose client gives up first is not recorded.
    pub fn start_slow(status: u16, delay: Duration) -> Self {
        let status = StatusCode::from_u16(status).expect("a valid status");
        let received = Arc::new(Mutex::new(Vec::new()));
        let (listener, addr) = bind();
        let app = Router::new().route("/", post(record)).route("/{*path}", post(record)).with_state((
            received.clone(),
            status,
            delay,
        ));
        let (shutdown, thread) = spawn(format!("webhook-{}", addr.port()), async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
            axum::serve(listener, app).await.expect("webhook receiver");
        });
        Self { addr, received, shutdown: Some(shutdown), thread: Some(thread) }
    }

    /// `http://127.0.0.1:PORT<path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}/{}", self.addr, path.trim_start_matches('/'))
    }

    /// Every request so far, in arrival order.
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Waits (deadline `deadline`) until at least `n` requests arrived; returns them all.
    pub async fn wait_for(&self, n: usize, deadline: Duration) -> Vec<Received> {
        super::poll(&format!("{n} webhook requests at {}", self.addr), deadline, || {
            let got = self.received();
            async move { (got.len() >= n).then_some(got) }
        })
        .await
    }
}

/// What [`record`] shares: the requests so far, the status to answer, the delay before it.
type Recording = (Arc<Mutex<Vec<Received>>>, StatusCode, Duration);

async fn record(
    State((received, status, delay)): State<Recording>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let content_type = headers.get("content-type").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
    received.lock().unwrap().push(Received { path: uri.to_string(), content_type, body });
    status
}

impl Drop for WebhookReceiver {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One connection to a [`HangingReceiver`].
#[derive(Clone, Debug, Default)]
pub struct HeldConnection {
    /// Everything the client sent.
    pub bytes: Vec<u8>,
    /// Whether the client closed it (gave up waiting).
    pub closed: bool,
}

impl HeldConnection {
    /// The request's body as JSON, once fully received (`Content-Length` bytes after the head).
    pub fn body(&self) -> Option<Value> {
        let text = std::str::from_utf8(&self.bytes).ok()?;
        let (head, body) = text.split_once("\r\n\r\n")?;
        let length: usize = head.lines().find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length").then(|| value.trim().parse().ok())?
        })?;
        (body.len() == length).then(|| serde_json::from_str(body).ok())?
    }
}

/// Accepts connections and reads requests, and never answers.
pub struct HangingReceiver {
    addr: SocketAddr,
    connections: Arc<Mutex<Vec<HeldConnection>>>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl HangingReceiver {
    /// Starts accepting; listening when this returns.
    pub fn start() -> Self {
        let connections: Arc<Mutex<Vec<HeldConnection>>> = Arc::new(Mutex::new(Vec::new()));
        let (listener, addr) = bind();
        let held = connections.clone();
        let (shutdown, thread) = spawn(format!("hanging-{}", addr.port()), async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
            loop {
                let Ok((mut stream, _)) = listener.accept().await else { continue };
                let index = {
                    let mut all = held.lock().unwrap();
                    all.push(HeldConnection::default());
                    all.len() - 1
                };
                let held = held.clone();
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    loop {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => {
                                held.lock().unwrap()[index].closed = true;
                                return;
                            }
                            Ok(n) => held.lock().unwrap()[index].bytes.extend_from_slice(&buf[..n]),
                        }
                    }
                });
            }
        });
        Self { addr, connections, shutdown: Some(shutdown), thread: Some(thread) }
    }

    /// `http://127.0.0.1:PORT<path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}/{}", self.addr, path.trim_start_matches('/'))
    }

    /// Every connection so far, in the order accepted.
    pub fn connections(&self) -> Vec<HeldConnection> {
        self.connections.lock().unwrap().clone()
    }
}

impl Drop for HangingReceiver {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
