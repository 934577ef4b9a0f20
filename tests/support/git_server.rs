//! A real git smart-HTTP server on loopback: axum in front of git's own `git http-backend` CGI,
//! with HTTP basic auth. It runs on its own thread and tokio runtime, so it serves sync and async
//! tests alike and outlives a test's runtime; it stops on drop.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use tokio::sync::oneshot;

/// Largest request body accepted (and buffered) from a client.
const MAX_REQUEST: usize = 256 << 20;

/// One request the server answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Served {
    pub method: String,
    /// Path and query, as requested.
    pub uri: String,
    pub status: u16,
    /// The request's `Content-Encoding` (git sends `gzip` for larger negotiation bodies).
    pub content_encoding: Option<String>,
    /// The request's `Git-Protocol` header (`version=2` from a recent git CLI; none from libgit2).
    pub git_protocol: Option<String>,
}

/// A git smart-HTTP server on `127.0.0.1`; stops on drop.
pub struct GitHttpServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

struct Shared {
    root: PathBuf,
    backend: PathBuf,
    user: String,
    password: String,
    requests: AtomicUsize,
    upload_pack_bytes: AtomicU64,
    served: Mutex<Vec<Served>>,
}

impl GitHttpServer {
    /// Serves every repository under `root` (bare or not; `/<name>` is `<root>/<name>`),
    /// requiring HTTP basic auth `user:password`.
    pub fn start(root: &Path, user: &str, password: &str) -> Self {
        let shared = Arc::new(Shared {
            root: root.canonicalize().unwrap_or_else(|e| panic!("git server root {}: {e}", root.display())),
            backend: http_backend(),
            user: user.to_owned(),
            password: password.to_owned(),
            requests: AtomicUsize::new(0),
            upload_pack_bytes: AtomicU64::new(0),
            served: Mutex::new(Vec::new()),
        });
        // Bound here, so the port is known (and accepting) before `start` returns.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind git server");
        listener.set_nonblocking(true).expect("non-blocking listener");
        let addr = listener.local_addr().expect("git server address");
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let (shutdown, stop) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(format!("git-http-server-{}", addr.port()))
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("git server runtime");
                rt.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
                    let serve = std::future::IntoFuture::into_future(axum::serve(listener, app));
                    tokio::select! {
                        result = serve => result.expect("git server"),
                        _ = stop => {}
                    }
                });
                // Open connections and running CGIs are abandoned, not awaited.
                rt.shutdown_timeout(Duration::from_secs(5));
            })
            .expect("spawn git server thread");
        Self { addr, shared, shutdown: Some(shutdown), thread: Some(thread) }
    }

    /// `http://127.0.0.1:PORT/<repo>` (no credentials).
    pub fn url(&self, repo: &str) -> String {
        format!("http://{}/{}", self.addr, repo.trim_start_matches('/'))
    }

    /// `http://user:password@127.0.0.1:PORT/<repo>`, with any credentials.
    pub fn url_with(&self, user: &str, password: &str, repo: &str) -> String {
        format!("http://{user}:{password}@{}/{}", self.addr, repo.trim_start_matches('/'))
    }

    /// `http://USER:PASSWORD@127.0.0.1:PORT/<repo>` with the right credentials.
    pub fn url_with_credentials(&self, repo: &str) -> String {
        self.url_with(&self.shared.user, &self.shared.password, repo)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Requests answered so far, whatever their status.
    pub fn requests(&self) -> usize {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// Total body bytes of the `git-upload-pack` POST responses so far (the negotiation and
    /// pack data a fetch downloads).
    pub fn upload_pack_bytes(&self) -> u64 {
        self.shared.upload_pack_bytes.load(Ordering::SeqCst)
    }

    /// Every request answered so far, in order.
    pub fn served(&self) -> Vec<Served> {
        self.shared.served.lock().unwrap().clone()
    }
}

impl Drop for GitHttpServer {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// git's own `git-http-backend`: the one beside the `git` on PATH, else Debian's.
fn http_backend() -> PathBuf {
    let exec_path = super::git::git_command().arg("--exec-path").output().ok().filter(|o| o.status.success());
    let candidates = exec_path
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()).join("git-http-backend"))
        .into_iter()
        .chain([PathBuf::from("/usr/lib/git-core/git-http-backend")]);
    for candidate in candidates {
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!("git-http-backend not found (install git)");
}

async fn handle(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let mut served = {
        let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        Served {
            method: req.method().to_string(),
            uri: req.uri().path_and_query().map_or_else(|| req.uri().path().to_owned(), |pq| pq.to_string()),
            status: 0,
            content_encoding: header("content-encoding"),
            git_protocol: header("git-protocol"),
        }
    };
    let upload_pack = req.method() == Method::POST && req.uri().path().ends_with("/git-upload-pack");
    let (response, body_len) = serve(&shared, req).await;
    if upload_pack && response.status().is_success() {
        shared.upload_pack_bytes.fetch_add(body_len as u64, Ordering::SeqCst);
    }
    served.status = response.status().as_u16();
    shared.served.lock().unwrap().push(served);
    shared.requests.fetch_add(1, Ordering::SeqCst);
    response
}

fn authorized(shared: &Shared, headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) else { return false };
    let Some((scheme, encoded)) = value.split_once(' ') else { return false };
    if !scheme.eq_ignore_ascii_case("basic") {
        return false;
    }
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else { return false };
    decoded == format!("{}:{}", shared.user, shared.password).as_bytes()
}

/// The response and its body's length.
async fn serve(shared: &Arc<Shared>, req: Request) -> (Response, usize) {
    if !authorized(shared, req.headers()) {
        let response = (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Basic realm=\"git\"")],
            "authentication required\n",
        );
        return (response.into_response(), 0);
    }
    let (parts, body) = req.into_parts();
    let body = match axum::body::to_bytes(body, MAX_REQUEST).await {
        Ok(body) => body,
        Err(e) => return ((StatusCode::BAD_REQUEST, format!("reading request body: {e}\n")).into_response(), 0),
    };
    let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let mut env = vec![
        ("GIT_PROJECT_ROOT", shared.root.to_string_lossy().into_owned()),
        ("GIT_HTTP_EXPORT_ALL", "1".to_owned()),
        ("GIT_HTTP_MAX_REQUEST_BUFFER", MAX_REQUEST.to_string()),
        ("GATEWAY_INTERFACE", "CGI/1.1".to_owned()),
        ("SERVER_PROTOCOL", "HTTP/1.1".to_owned()),
        ("REQUEST_METHOD", parts.method.to_string()),
        ("PATH_INFO", parts.uri.path().to_owned()),
        ("QUERY_STRING", parts.uri.query().unwrap_or("").to_owned()),
        ("CONTENT_LENGTH", body.len().to_string()),
        ("AUTH_TYPE", "Basic".to_owned()),
        ("REMOTE_USER", shared.user.clone()),
        ("REMOTE_ADDR", "127.0.0.1".to_owned()),
    ];
    for (var, name) in [
        ("CONTENT_TYPE", "content-type"),
        ("HTTP_CONTENT_ENCODING", "content-encoding"),
        ("GIT_PROTOCOL", "git-protocol"),
    ] {
        if let Some(value) = header(name) {
            env.push((var, value));
        }
    }
    let shared = shared.clone();
    let output = tokio::task::spawn_blocking(move || run_cgi(&shared, &env, body)).await.expect("CGI task");
    match output.and_then(|stdout| parse_cgi(&stdout)) {
        Ok((status, headers, body)) => {
            let len = body.len();
            let mut response = Response::new(Body::from(body));
            *response.status_mut() = status;
            *response.headers_mut() = headers;
            (response, len)
        }
        Err(e) => {
            eprintln!("git server: {} {}: {e}", parts.method, parts.uri);
            ((StatusCode::BAD_GATEWAY, format!("{e}\n")).into_response(), 0)
        }
    }
}

/// Runs `git http-backend` with `env`, `body` on stdin; its stdout.
fn run_cgi(shared: &Shared, env: &[(&str, String)], body: Bytes) -> Result<Vec<u8>, String> {
    let mut cmd = Command::new(&shared.backend);
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", &shared.root)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("LC_ALL", "C")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| format!("run {}: {e}", shared.backend.display()))?;
    let mut stdin = child.stdin.take().expect("piped stdin");
    // Written from another thread, so a backend that answers before reading all of its input
    // cannot deadlock us; it may also stop reading early (broken pipe is fine then).
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&body);
    });
    let output = child.wait_with_output().map_err(|e| format!("wait for git http-backend: {e}"))?;
    let _ = writer.join();
    if !output.stderr.is_empty() {
        eprintln!("git http-backend: {}", String::from_utf8_lossy(&output.stderr).trim_end());
    }
    if output.stdout.is_empty() {
        return Err(format!(
            "git http-backend {} with no output: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim_end()
        ));
    }
    Ok(output.stdout)
}

/// Splits a CGI response: headers (`Status:` optional, default 200), a blank line, the body.
fn parse_cgi(stdout: &[u8]) -> Result<(StatusCode, HeaderMap, Vec<u8>), String> {
    let (head, body) = [&b"\r\n\r\n"[..], b"\n\n"]
        .iter()
        .filter_map(|sep| stdout.windows(sep.len()).position(|w| w == *sep).map(|at| (at, sep.len())))
        .min()
        .map(|(at, len)| (&stdout[..at], &stdout[at + len..]))
        .ok_or("CGI response without a blank line after its headers")?;
    let head = std::str::from_utf8(head).map_err(|_| "CGI headers are not UTF-8")?;
    let mut status = StatusCode::OK;
    let mut headers = HeaderMap::new();
    for line in head.lines().filter(|l| !l.is_empty()) {
        let (name, value) = line.split_once(':').ok_or_else(|| format!("bad CGI header line {line:?}"))?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("status") {
            let code = value.split_whitespace().next().unwrap_or_default();
            status = code.parse::<u16>().ok().and_then(|c| StatusCode::from_u16(c).ok()).ok_or("bad CGI Status")?;
        } else {
            let name =
                HeaderName::from_bytes(name.trim().as_bytes()).map_err(|e| format!("CGI header {name:?}: {e}"))?;
            let value = HeaderValue::from_str(value).map_err(|e| format!("CGI header {name}: {e}"))?;
            headers.append(name, value);
        }
    }
    Ok((status, headers, body.to_vec()))
}
