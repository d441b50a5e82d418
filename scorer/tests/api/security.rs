//! The sidecar's protection: bearer tokens and the rate limit in process (`Sidecar::app` and
//! `oneshot`); TLS, the rotation of certificate and token files, and the rate limit over real
//! sockets, against the scorer binary run with `--model-file`. Certificates are made with the
//! `openssl` command (Debian's /usr/bin/openssl).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Request, StatusCode, header};
use clap::Parser;
use heart_schemas::AvroRecord;
use heart_scorer::Config;
use heart_scorer::http::{ROUTES, Sidecar};
use http_body_util::BodyExt;
use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tower::ServiceExt;

use crate::support::{TestApp, model_version, patient};

const TOKEN_A: &str = "token-a-0123456789abcdef";
const TOKEN_B: &str = "token-b-0123456789abcdef";
const TOKEN_C: &str = "token-c-0123456789abcdef";
const CHALLENGE: &str = "Bearer realm=\"heart-risk\"";

/// A scratch directory per test.
struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("heart-sidecar-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("model.avro"),
            model_version(7, 1.5).encode().unwrap(),
        )
        .unwrap();
        Self(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    fn arg(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

// In process.

fn sidecar(t: &TestApp, args: &[&str]) -> Router {
    let config =
        Config::try_parse_from(std::iter::once("scorer").chain(args.iter().copied())).unwrap();
    Sidecar::load(&config, &t.state.metrics)
        .unwrap()
        .app(t.state.clone())
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    json: Value,
    text: String,
}

/// `GET path`, or `POST` of one patient to a predict or infer route, from `peer`.
async fn send(app: &Router, path: &str, token: Option<&str>, peer: [u8; 4]) -> Answer {
    let body = if path.ends_with("/infer") {
        let row: Vec<Value> = patient(60)
            .features()
            .iter()
            .map(|v| serde_json::json!(v))
            .collect();
        Some(
            serde_json::json!({"inputs": [{"name": "patients", "shape": [1, 13], "datatype": "FP64", "data": row}]}),
        )
    } else if path.starts_with("/predict") {
        let p = serde_json::to_value(patient(60)).unwrap();
        Some(if path.ends_with("batch") {
            serde_json::json!([p])
        } else {
            p
        })
    } else {
        None
    };
    let mut req = match &body {
        Some(body) => Request::post(path)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string())),
        None => Request::get(path).body(Body::empty()),
    }
    .unwrap();
    if let Some(token) = token {
        req.headers_mut().insert(
            header::AUTHORIZATION,
            format!("Bearer {token}").parse().unwrap(),
        );
    }
    req.extensions_mut()
        .insert(ConnectInfo(SocketAddr::from((peer, 40_000))));
    let resp = app.clone().oneshot(req).await.unwrap();
    let (status, headers) = (resp.status(), resp.headers().clone());
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        headers,
        json: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        text: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

const PEER: [u8; 4] = [10, 0, 0, 1];

#[tokio::test]
async fn protected_routes_answer_401_with_a_challenge_in_their_protocol_shape() {
    let t = TestApp::new(true);
    let app = sidecar(&t, &["--http-auth-token", TOKEN_A]);
    for path in ["/predict", "/predict/batch", "/model", "/nope"] {
        let a = send(&app, path, None, PEER).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{path}: {}", a.text);
        assert_eq!(a.headers[header::WWW_AUTHENTICATE], CHALLENGE, "{path}");
        assert_eq!(a.json["error"]["code"], "unauthorized", "{path}");
    }
    for path in [
        "/v2",
        "/v2/models/heart-disease",
        "/v2/models/heart-disease/infer",
    ] {
        let a = send(&app, path, None, PEER).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{path}: {}", a.text);
        assert_eq!(a.headers[header::WWW_AUTHENTICATE], CHALLENGE, "{path}");
        assert!(
            a.json["error"].as_str().unwrap().contains("bearer token"),
            "{path}: {}",
            a.text
        );
    }
    let mut req = Request::get("/model").body(Body::empty()).unwrap();
    req.headers_mut().insert(
        header::AUTHORIZATION,
        format!("Basic {TOKEN_A}").parse().unwrap(),
    );
    let resp = app.clone().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let json: Value = serde_json::from_slice(&body).unwrap();
    assert!(
        json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("malformed"),
        "{json}"
    );

    let open = send(&app, "/openapi.json", None, PEER).await;
    assert_eq!(open.status, StatusCode::OK);
}

#[tokio::test]
async fn a_wrong_token_is_403_and_each_listed_token_passes_without_ever_being_shown() {
    let t = TestApp::new(true);
    let dir = Dir::new("tokens-in-process");
    std::fs::write(
        dir.path("tokens"),
        format!("# current, then the next one\n\n{TOKEN_A}\n{TOKEN_B}\n"),
    )
    .unwrap();
    let file = dir.arg("tokens");
    let app = sidecar(
        &t,
        &[
            "--http-auth-token-file",
            &file,
            "--http-auth-token",
            TOKEN_C,
            "--http-auth-metrics",
        ],
    );
    let wrong = "not-a-token-0123456789abcdef";
    for path in ["/predict", "/v2/models/heart-disease/infer"] {
        let a = send(&app, path, Some(wrong), PEER).await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{path}: {}", a.text);
        assert!(a.headers.get(header::WWW_AUTHENTICATE).is_none());
        assert!(!a.text.contains(wrong), "{}", a.text);
    }
    assert_eq!(
        send(&app, "/model", Some(wrong), PEER).await.json["error"]["code"],
        "forbidden"
    );
    // The first and the second token of the file, and the one from the environment.
    for token in [TOKEN_A, TOKEN_B, TOKEN_C] {
        for path in [
            "/predict",
            "/predict/batch",
            "/model",
            "/v2/models/heart-disease/infer",
        ] {
            let a = send(&app, path, Some(token), PEER).await;
            assert_eq!(a.status, StatusCode::OK, "{path}: {}", a.text);
        }
    }
    send(&app, "/model", None, PEER).await;
    let model = send(&app, "/model", Some(TOKEN_B), PEER).await.text;
    let metrics = send(&app, "/metrics", Some(TOKEN_A), PEER).await.text;
    for text in [&model, &metrics] {
        for token in [TOKEN_A, TOKEN_B, TOKEN_C, wrong] {
            assert!(!text.contains(token));
        }
    }
    assert!(
        metrics.contains(r#"scorer_http_auth_failures_total{reason="rejected"} 3"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"scorer_http_auth_failures_total{reason="missing"} 1"#));
    assert!(metrics.contains(r#"scorer_http_auth_failures_total{reason="malformed"} 0"#));
}

#[tokio::test]
async fn health_and_metrics_are_open_by_default_and_401_when_protected() {
    let t = TestApp::new(true);
    let app = sidecar(&t, &["--http-auth-token", TOKEN_A]);
    for path in ["/healthz", "/readyz", "/metrics", "/openapi.json"] {
        assert_eq!(
            send(&app, path, None, PEER).await.status,
            StatusCode::OK,
            "{path}"
        );
    }
    let app = sidecar(
        &t,
        &[
            "--http-auth-token",
            TOKEN_A,
            "--http-auth-health",
            "--http-auth-metrics",
        ],
    );
    for path in ["/healthz", "/readyz", "/metrics"] {
        let a = send(&app, path, None, PEER).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(a.headers[header::WWW_AUTHENTICATE], CHALLENGE);
        assert_eq!(
            send(&app, path, Some(TOKEN_A), PEER).await.status,
            StatusCode::OK,
            "{path}"
        );
    }
    assert_eq!(
        send(&app, "/openapi.json", None, PEER).await.status,
        StatusCode::OK
    );
    let app = sidecar(&t, &["--http-auth-token", TOKEN_A, "--http-auth-metrics"]);
    assert_eq!(
        send(&app, "/healthz", None, PEER).await.status,
        StatusCode::OK
    );
    assert_eq!(
        send(&app, "/metrics", None, PEER).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn past_the_rate_limit_a_client_gets_429_with_retry_after_and_others_do_not() {
    let t = TestApp::new(true);
    let app = sidecar(
        &t,
        &[
            "--http-rate-limit-per-s",
            "1",
            "--http-rate-limit-burst",
            "2",
        ],
    );
    for _ in 0..2 {
        assert_eq!(
            send(&app, "/model", None, PEER).await.status,
            StatusCode::OK
        );
    }
    let a = send(&app, "/predict", None, PEER).await;
    assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS, "{}", a.text);
    assert_eq!(a.json["error"]["code"], "rate_limited");
    let retry: u64 = a.headers[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry), "Retry-After: {retry}");
    let a = send(&app, "/v2/models/heart-disease", None, PEER).await;
    assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(
        a.json["error"].as_str().unwrap().contains("rate limit"),
        "{}",
        a.text
    );
    assert!(a.headers.contains_key(header::RETRY_AFTER));

    // Another client has its own allowance; the probes and the scrape are never limited.
    assert_eq!(
        send(&app, "/model", None, [10, 0, 0, 2]).await.status,
        StatusCode::OK
    );
    for path in ["/healthz", "/readyz", "/metrics", "/healthz", "/readyz"] {
        assert_eq!(
            send(&app, path, None, PEER).await.status,
            StatusCode::OK,
            "{path}"
        );
    }
    let metrics = send(&app, "/metrics", None, PEER).await.text;
    assert!(
        metrics.contains("scorer_http_requests_rate_limited_total 2"),
        "{metrics}"
    );
    assert!(metrics.contains(r#"route="/predict",status="429""#));

    // Guessing tokens is limited too: the limit comes before the token check.
    let app = sidecar(
        &t,
        &[
            "--http-auth-token",
            TOKEN_A,
            "--http-rate-limit-per-s",
            "1",
            "--http-rate-limit-burst",
            "2",
        ],
    );
    let wrong = "guess-0123456789abcdef";
    for expected in [
        StatusCode::FORBIDDEN,
        StatusCode::FORBIDDEN,
        StatusCode::TOO_MANY_REQUESTS,
    ] {
        assert_eq!(
            send(&app, "/model", Some(wrong), PEER).await.status,
            expected
        );
    }
}

#[tokio::test]
async fn openapi_declares_the_bearer_scheme_and_the_guard_responses() {
    let t = TestApp::new(true);
    let doc = send(&sidecar(&t, &[]), "/openapi.json", None, PEER)
        .await
        .json;
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    for (method, path) in ROUTES {
        let op = &doc["paths"][path][method.to_lowercase()];
        let codes = |c: &str| op["responses"].get(c).is_some();
        let probe = ["/healthz", "/readyz", "/metrics"].contains(&path);
        match path {
            "/openapi.json" => assert_eq!(op["security"], serde_json::json!([])),
            _ if probe => assert!(
                op["security"]
                    .as_array()
                    .unwrap()
                    .contains(&serde_json::json!({}))
            ),
            _ => assert_eq!(
                op["security"],
                serde_json::json!([{"bearer": []}]),
                "{path}"
            ),
        }
        assert_eq!(
            codes("401") && codes("403"),
            path != "/openapi.json",
            "{method} {path}"
        );
        assert_eq!(codes("429"), !probe, "{method} {path}");
    }
}

// Over sockets, against the binary.

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Scorer {
    child: Option<Child>,
    port: u16,
    log: PathBuf,
}

impl Scorer {
    /// Starts `scorer --model-file` on a free port with `args`.
    fn start(dir: &Dir, name: &str, args: &[&str]) -> Self {
        let port = free_port();
        let log = dir.path(&format!("{name}.log"));
        let child = Command::new(env!("CARGO_BIN_EXE_scorer"))
            .args(["--model-file", &dir.arg("model.avro")])
            .args([
                "--http-addr",
                &format!("127.0.0.1:{port}"),
                "--log-format",
                "text",
            ])
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Self {
            child: Some(child),
            port,
            log,
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Polls `probe` until it gives a value; fails with the log if the process exits first or
    /// `timeout` passes.
    fn wait_for<T>(
        &mut self,
        what: &str,
        timeout: Duration,
        mut probe: impl FnMut() -> Option<T>,
    ) -> T {
        let started = Instant::now();
        loop {
            if let Some(v) = probe() {
                return v;
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "scorer exited with {status} waiting for {what}:\n{}",
                    self.log_text()
                );
            }
            assert!(
                started.elapsed() < timeout,
                "{what}: not within {timeout:?}:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGTERM, and the exit status within `timeout`.
    fn terminate(&mut self, timeout: Duration) -> ExitStatus {
        let mut child = self.child.take().unwrap();
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if started.elapsed() > timeout {
                let _ = child.kill();
                panic!(
                    "no exit within {timeout:?} of SIGTERM:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Scorer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[derive(Debug)]
struct Reply {
    status: u16,
    head: String,
    body: String,
}

impl Reply {
    fn parse(raw: &[u8]) -> Option<Self> {
        let text = std::str::from_utf8(raw).ok()?;
        let (head, body) = text.split_once("\r\n\r\n")?;
        let status = head.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()?;
        Some(Self {
            status,
            head: head.to_owned(),
            body: body.to_owned(),
        })
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    /// The value of the metric series `series` (name and labels, exactly) in a /metrics body.
    fn metric(&self, series: &str) -> Option<f64> {
        self.body
            .lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }
}

fn request(path: &str, token: Option<&str>) -> String {
    let auth = token.map_or_else(String::new, |t| format!("Authorization: Bearer {t}\r\n"));
    format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n{auth}Connection: close\r\n\r\n")
}

/// Plain HTTP/1.1; None if nothing HTTP answers.
fn http(port: u16, path: &str, token: Option<&str>) -> Option<Reply> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    stream.write_all(request(path, token).as_bytes()).ok()?;
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    Reply::parse(&raw)
}

/// HTTP/1.1 over TLS to `name` (a DNS name or an IP address), trusting only `roots`: the reply
/// and the SHA-256 of the certificate the server presented, or the handshake's error.
fn https(
    port: u16,
    roots: &RootCertStore,
    name: &str,
    path: &str,
) -> Result<(Reply, [u8; 32]), String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots.clone())
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let name = ServerName::try_from(name.to_owned()).unwrap();
    let mut conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let mut sock = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut tls = rustls::Stream::new(&mut conn, &mut sock);
    tls.write_all(request(path, None).as_bytes())
        .map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    if let Err(e) = tls.read_to_end(&mut raw)
        && raw.is_empty()
    {
        return Err(e.to_string());
    }
    let served = conn
        .peer_certificates()
        .and_then(|chain| chain.first())
        .map(|cert| Sha256::digest(cert.as_ref()).into())
        .ok_or("no peer certificate")?;
    let reply = Reply::parse(&raw).ok_or_else(|| format!("not HTTP: {raw:?}"))?;
    Ok((reply, served))
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("/usr/bin/openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A throwaway certificate authority.
struct Ca {
    dir: PathBuf,
}

impl Ca {
    fn new(dir: &Path, name: &str) -> Self {
        let dir = dir.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        openssl(
            &dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.crt",
                "-days",
                "2",
                "-subj",
                &format!("/CN={name}"),
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        );
        Self { dir }
    }

    fn roots(&self) -> RootCertStore {
        let mut roots = RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_file(self.dir.join("ca.crt")).unwrap())
            .unwrap();
        roots
    }

    /// Issues a server certificate for 127.0.0.1 and localhost, with a fresh key, as
    /// `out/tls.crt` and `out/tls.key`; returns the certificate's SHA-256.
    fn issue(&self, out: &Path, serial: u32) -> [u8; 32] {
        std::fs::create_dir_all(out).unwrap();
        let ext = out.join("ext.cnf");
        std::fs::write(
            &ext,
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        let (crt, key, csr) = (
            out.join("tls.crt"),
            out.join("tls.key"),
            out.join("tls.csr"),
        );
        let p = |p: &Path| p.display().to_string();
        openssl(
            &self.dir,
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                &p(&key),
                "-out",
                &p(&csr),
                "-subj",
                "/CN=localhost",
            ],
        );
        openssl(
            &self.dir,
            &[
                "x509",
                "-req",
                "-in",
                &p(&csr),
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-set_serial",
                &serial.to_string(),
                "-days",
                "2",
                "-out",
                &p(&crt),
                "-extfile",
                &p(&ext),
            ],
        );
        Sha256::digest(CertificateDer::from_pem_file(&crt).unwrap().as_ref()).into()
    }
}

/// A Kubernetes Secret volume: `tls.crt` and `tls.key` are links through `..data`, a link to
/// the current version's directory, which an update replaces with one atomic rename.
struct SecretVolume(PathBuf);

impl SecretVolume {
    fn new(dir: &Path) -> Self {
        let root = dir.join("secret");
        std::fs::create_dir_all(&root).unwrap();
        for file in ["tls.crt", "tls.key"] {
            std::os::unix::fs::symlink(format!("..data/{file}"), root.join(file)).unwrap();
        }
        Self(root)
    }

    /// A directory for the next version's files.
    fn version(&self, n: u32) -> PathBuf {
        self.0.join(format!("..2026_{n:02}"))
    }

    /// Makes version `n` current, as the kubelet does.
    fn publish(&self, n: u32) {
        let tmp = self.0.join("..data_tmp");
        std::os::unix::fs::symlink(format!("..2026_{n:02}"), &tmp).unwrap();
        std::fs::rename(&tmp, self.0.join("..data")).unwrap();
    }

    fn arg(&self, file: &str) -> String {
        self.0.join(file).display().to_string()
    }
}

const STARTUP: Duration = Duration::from_secs(20);
/// Two polls of the files (one to see the change, one to see it hold) and then some.
const RELOAD: Duration = Duration::from_secs(20);

#[test]
fn tls_is_served_to_a_client_trusting_the_ca_and_refused_by_one_that_does_not() {
    let dir = Dir::new("tls");
    let ca = Ca::new(&dir.0, "test-ca");
    let served = ca.issue(&dir.path("pair"), 1001);
    let (cert, key) = (dir.arg("pair/tls.crt"), dir.arg("pair/tls.key"));
    // The rate limit needs each connection's peer address: a 200 says TLS connections have it.
    let mut scorer = Scorer::start(
        &dir,
        "tls",
        &[
            "--http-tls-cert",
            &cert,
            "--http-tls-key",
            &key,
            "--http-rate-limit-per-s",
            "1000",
        ],
    );
    let (port, roots) = (scorer.port, ca.roots());
    let (reply, fingerprint) = scorer.wait_for("a TLS answer", STARTUP, || {
        https(port, &roots, "localhost", "/healthz").ok()
    });
    assert_eq!(reply.status, 200);
    assert_eq!(fingerprint, served);
    let (reply, _) = https(port, &roots, "127.0.0.1", "/model").unwrap();
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(reply.body.contains("\"version\":7"), "{}", reply.body);

    let stranger = Ca::new(&dir.0, "other-ca");
    let err = https(port, &stranger.roots(), "localhost", "/healthz").unwrap_err();
    assert!(err.contains("invalid peer certificate"), "{err}");
    assert!(
        http(port, "/healthz", None).is_none(),
        "plain HTTP is not served next to TLS"
    );
    scorer.wait_for("the failed handshake counted", STARTUP, || {
        let (metrics, _) = https(port, &roots, "localhost", "/metrics").ok()?;
        let failed = metrics.metric(r#"scorer_http_tls_handshakes_total{outcome="failed"}"#)?;
        (failed >= 1.0).then_some(())
    });
    assert!(
        scorer.log_text().contains("tls=true"),
        "{}",
        scorer.log_text()
    );

    let status = scorer.terminate(Duration::from_secs(10));
    assert!(status.success(), "{status}:\n{}", scorer.log_text());
    assert!(scorer.log_text().contains("scorer stopped"));
}

/// `scorer healthcheck` run with the scorer's flags `args` against `port`: whether it exited
/// 0, and its stderr.
fn healthcheck(port: u16, args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_scorer"))
        .args(["--http-addr", &format!("127.0.0.1:{port}")])
        .args(args)
        .arg("healthcheck")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        ![TOKEN_A, TOKEN_B, TOKEN_C]
            .iter()
            .any(|t| stderr.contains(t)),
        "a token in the probe's output: {stderr}"
    );
    (out.status.success(), stderr)
}

#[test]
fn the_healthcheck_speaks_tls_and_sends_a_token_when_the_sidecar_needs_them() {
    let dir = Dir::new("healthcheck");
    let ca = Ca::new(&dir.0, "test-ca");
    ca.issue(&dir.path("pair"), 1601);
    Ca::new(&dir.0, "other-ca").issue(&dir.path("other"), 1602);
    std::fs::write(
        dir.path("tokens"),
        format!("# probes\n{TOKEN_A}\n{TOKEN_B}\n"),
    )
    .unwrap();
    std::fs::write(dir.path("wrong-tokens"), format!("{TOKEN_C}\n")).unwrap();
    let (cert, key) = (dir.arg("pair/tls.crt"), dir.arg("pair/tls.key"));
    let (other_cert, other_key) = (dir.arg("other/tls.crt"), dir.arg("other/tls.key"));
    let (tokens, wrong) = (dir.arg("tokens"), dir.arg("wrong-tokens"));
    let tls = ["--http-tls-cert", &cert, "--http-tls-key", &key];
    let served = [
        &tls[..],
        &["--http-auth-token-file", &tokens, "--http-auth-health"],
    ]
    .concat();
    let mut scorer = Scorer::start(&dir, "healthcheck", &served);
    let port = scorer.port;
    scorer.wait_for("a healthy probe", STARTUP, || {
        healthcheck(port, &served).0.then_some(())
    });
    // The token from the environment is sent as well as one from the file.
    let out = Command::new(env!("CARGO_BIN_EXE_scorer"))
        .args([
            "--http-addr",
            &format!("127.0.0.1:{port}"),
            "--http-auth-health",
        ])
        .args(tls)
        .arg("healthcheck")
        .env("SCORER_HTTP_AUTH_TOKENS", TOKEN_B)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let (ok, err) = healthcheck(
        port,
        &[
            "--http-tls-cert",
            &other_cert,
            "--http-tls-key",
            &other_key,
            "--http-auth-token-file",
            &tokens,
            "--http-auth-health",
        ],
    );
    assert!(!ok);
    assert!(
        err.contains("over TLS")
            && err.contains("a certificate other than the one in --http-tls-cert"),
        "{err}"
    );
    let (ok, err) = healthcheck(
        port,
        &[
            &tls[..],
            &["--http-auth-token-file", &wrong, "--http-auth-health"],
        ]
        .concat(),
    );
    assert!(!ok);
    assert!(
        err.contains("answered 403: the bearer token sent is not accepted"),
        "{err}"
    );
    let (ok, err) = healthcheck(port, &tls);
    assert!(!ok);
    assert!(
        err.contains("answered 401: /healthz needs a bearer token"),
        "{err}"
    );
    let (ok, err) = healthcheck(port, &[]);
    assert!(!ok);
    assert!(
        err.contains(&format!("GET /healthz on 127.0.0.1:{port}: ")),
        "{err}"
    );
    let (ok, err) = healthcheck(free_port(), &served);
    assert!(!ok);
    assert!(err.contains("cannot connect to 127.0.0.1:"), "{err}");

    let status = scorer.terminate(Duration::from_secs(10));
    assert!(status.success(), "{status}:\n{}", scorer.log_text());
}

#[test]
fn a_pair_that_cannot_be_used_stops_the_start_naming_the_file_and_the_fix() {
    let dir = Dir::new("tls-unusable");
    let ca = Ca::new(&dir.0, "test-ca");
    ca.issue(&dir.path("pair"), 1500);
    // The two files swapped, as an easy slip in a manifest.
    let out = Command::new(env!("CARGO_BIN_EXE_scorer"))
        .args([
            "--model-file",
            &dir.arg("model.avro"),
            "--http-addr",
            "127.0.0.1:0",
        ])
        .args(["--http-tls-cert", &dir.arg("pair/tls.key")])
        .args(["--http-tls-key", &dir.arg("pair/tls.crt")])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "invalid configuration: --http-tls-cert {}: no certificate in it",
            dir.arg("pair/tls.key")
        )),
        "{stderr}"
    );
}

#[test]
fn a_rotated_certificate_is_served_without_a_restart_and_a_broken_one_is_not() {
    let dir = Dir::new("tls-rotation");
    let ca = Ca::new(&dir.0, "test-ca");
    let secret = SecretVolume::new(&dir.0);
    let first = ca.issue(&secret.version(1), 2001);
    secret.publish(1);
    let mut scorer = Scorer::start(
        &dir,
        "rotation",
        &[
            "--http-tls-cert",
            &secret.arg("tls.crt"),
            "--http-tls-key",
            &secret.arg("tls.key"),
        ],
    );
    let (port, roots) = (scorer.port, ca.roots());
    let served = |expected: [u8; 32]| {
        let roots = roots.clone();
        move || {
            let (reply, fingerprint) = https(port, &roots, "localhost", "/healthz").ok()?;
            (reply.status == 200 && fingerprint == expected).then_some(())
        }
    };
    scorer.wait_for("the first certificate", STARTUP, served(first));

    // cert-manager renews: a new key and certificate, published as the kubelet does.
    let second = ca.issue(&secret.version(2), 2002);
    assert_ne!(first, second);
    secret.publish(2);
    scorer.wait_for("the renewed certificate", RELOAD, served(second));

    // A key that is not the certificate's: logged with the path, the renewed pair kept.
    ca.issue(&secret.version(3), 2003);
    ca.issue(&dir.path("unrelated"), 2004);
    std::fs::copy(
        dir.path("unrelated/tls.key"),
        secret.version(3).join("tls.key"),
    )
    .unwrap();
    secret.publish(3);
    scorer.wait_for("the refused pair logged", RELOAD, || {
        let log = scorer_log(&dir, "rotation");
        (log.contains("is not the private key of the certificate")
            && log.contains(&secret.arg("tls.key")))
        .then_some(())
    });
    let (metrics, fingerprint) = https(port, &roots, "localhost", "/metrics").unwrap();
    assert_eq!(fingerprint, second, "the last good pair keeps serving");
    assert_eq!(
        metrics.metric(r#"scorer_http_reloads_total{file="tls",outcome="reloaded"}"#),
        Some(1.0)
    );
    assert_eq!(
        metrics.metric(r#"scorer_http_reloads_total{file="tls",outcome="failed"}"#),
        Some(1.0)
    );
}

fn scorer_log(dir: &Dir, name: &str) -> String {
    std::fs::read_to_string(dir.path(&format!("{name}.log"))).unwrap_or_default()
}

#[test]
fn a_rotated_token_file_is_picked_up_without_a_restart() {
    let dir = Dir::new("token-rotation");
    let tokens = dir.path("tokens");
    std::fs::write(&tokens, format!("{TOKEN_A}\n")).unwrap();
    let mut scorer = Scorer::start(
        &dir,
        "tokens",
        &["--http-auth-token-file", &dir.arg("tokens")],
    );
    let port = scorer.port;
    let status = move |token: &str| http(port, "/model", Some(token)).map(|r| r.status);
    scorer.wait_for("the sidecar", STARTUP, || http(port, "/healthz", None));
    assert_eq!(status(TOKEN_A), Some(200));
    assert_eq!(status(TOKEN_B), Some(403));
    assert_eq!(http(port, "/model", None).unwrap().status, 401);

    // A rotation overlaps: the new token is added, clients move to it, the old one goes.
    std::fs::write(&tokens, format!("# rotating\n{TOKEN_A}\n{TOKEN_B}\n")).unwrap();
    scorer.wait_for("the second token accepted", RELOAD, || {
        (status(TOKEN_B) == Some(200)).then_some(())
    });
    assert_eq!(status(TOKEN_A), Some(200));
    std::fs::write(&tokens, format!("{TOKEN_B}\n")).unwrap();
    scorer.wait_for("the first token retired", RELOAD, || {
        (status(TOKEN_A) == Some(403)).then_some(())
    });
    assert_eq!(status(TOKEN_B), Some(200));

    // A file emptied by mistake keeps the tokens it had, and says so.
    std::fs::write(&tokens, "# nothing\n").unwrap();
    scorer.wait_for("the empty file refused", RELOAD, || {
        scorer_log(&dir, "tokens")
            .contains("lists no token")
            .then_some(())
    });
    assert_eq!(status(TOKEN_B), Some(200));
    let log = scorer.log_text();
    for token in [TOKEN_A, TOKEN_B] {
        assert!(!log.contains(token), "a token in the log:\n{log}");
    }
    assert!(log.contains("http_auth=on(env_tokens=0 file="), "{log}");
}

#[test]
fn a_client_past_the_rate_limit_gets_429_over_a_real_socket() {
    let dir = Dir::new("rate-limit");
    let mut scorer = Scorer::start(
        &dir,
        "rate",
        &[
            "--http-rate-limit-per-s",
            "1",
            "--http-rate-limit-burst",
            "3",
        ],
    );
    let port = scorer.port;
    scorer.wait_for("the sidecar", STARTUP, || http(port, "/healthz", None));
    let replies: Vec<Reply> = (0..6)
        .map(|_| http(port, "/model", None).unwrap())
        .collect();
    let statuses: Vec<u16> = replies.iter().map(|r| r.status).collect();
    assert_eq!(statuses[..3], [200, 200, 200], "{statuses:?}");
    let limited = replies
        .iter()
        .find(|r| r.status == 429)
        .unwrap_or_else(|| panic!("no 429 in {statuses:?}"));
    assert!(
        limited
            .header("retry-after")
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 1
    );
    assert!(
        limited.body.contains("\"code\":\"rate_limited\""),
        "{}",
        limited.body
    );
    assert_eq!(
        http(port, "/healthz", None).unwrap().status,
        200,
        "probes are not limited"
    );
}
