//! Bearer-token authentication of the sidecar's routes.
//!
//! Accepted tokens come from `--http-auth-token` / `SCORER_HTTP_AUTH_TOKENS` and from
//! `--http-auth-token-file` (re-read when it changes, see [`super::reload`]). Only their
//! SHA-256 digests are kept, and a presented token's digest is compared with every accepted
//! one in constant time. No token is ever logged, answered, counted or shown in `--help`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::Response;
use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};
use thiserror::Error;

use super::error::ApiError;
use super::in_protocol_shape;
use super::reload::Contents;
use crate::metrics::Metrics;

/// Shortest token accepted: a guessable token is no protection.
pub const MIN_TOKEN_CHARS: usize = 16;

/// A bearer token given on the command line or in the environment. Its `Debug` never shows
/// it; it is checked by [`BearerToken::check`] (from `Config::validate`), not by clap, whose
/// error messages would repeat the value.
#[derive(Clone)]
pub struct BearerToken(String);

impl std::fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BearerToken(<redacted>)")
    }
}

impl From<String> for BearerToken {
    fn from(s: String) -> Self {
        Self(s)
    }
}

impl BearerToken {
    /// Whether this can serve as a token.
    ///
    /// # Errors
    /// [`TokenError`], which never contains the token.
    pub fn check(&self) -> Result<(), TokenError> {
        check_token(&self.0)
    }

    /// Whether it is empty (as an empty `SCORER_HTTP_AUTH_TOKENS` gives).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The token itself, to send it (`scorer healthcheck`); never to log or show.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }

    fn digest(&self) -> [u8; 32] {
        digest(&self.0)
    }
}

/// Why a string cannot be a bearer token. Never carries the token.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TokenError {
    /// Empty.
    #[error("is empty")]
    Empty,
    /// Too short to resist guessing.
    #[error(
        "is {chars} characters long; use at least {MIN_TOKEN_CHARS} (e.g. `openssl rand -hex 32`)"
    )]
    TooShort {
        /// Its length.
        chars: usize,
    },
    /// A character an `Authorization: Bearer` header cannot carry.
    #[error(
        "has a character a bearer token cannot carry at position {position}; use letters, digits and - . _ ~ + /, with = only at the end"
    )]
    BadCharacter {
        /// 1-based position of the first such character.
        position: usize,
    },
}

/// RFC 6750 `b64token`: `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
fn check_token(token: &str) -> Result<(), TokenError> {
    if token.is_empty() {
        return Err(TokenError::Empty);
    }
    let body = token.trim_end_matches('=');
    if let Some(i) = body
        .chars()
        .position(|c| !(c.is_ascii_alphanumeric() || "-._~+/".contains(c)))
    {
        return Err(TokenError::BadCharacter { position: i + 1 });
    }
    if body.is_empty() {
        return Err(TokenError::BadCharacter { position: 1 });
    }
    let chars = token.chars().count();
    if chars < MIN_TOKEN_CHARS {
        return Err(TokenError::TooShort { chars });
    }
    Ok(())
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// The token file cannot be used.
#[derive(Debug, Error)]
pub enum TokenFileError {
    /// It cannot be read.
    #[error("--http-auth-token-file {path}: {detail}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        detail: String,
    },
    /// It is not UTF-8 text.
    #[error("--http-auth-token-file {path}: not UTF-8 text; write one token a line")]
    NotText {
        /// The file.
        path: PathBuf,
    },
    /// A line is not a token.
    #[error(
        "--http-auth-token-file {path} line {line}: the token {problem} (one token a line; `#` starts a comment line)"
    )]
    BadLine {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        problem: TokenError,
    },
    /// It lists no token (which would turn every protected request away).
    #[error(
        "--http-auth-token-file {path} lists no token; add one a line (to turn authentication off, remove the flag)"
    )]
    NoTokens {
        /// The file.
        path: PathBuf,
    },
}

/// Parses a token file: one token a line, blank lines and `#` comment lines ignored.
fn parse_token_file(path: &Path, contents: Contents) -> Result<Vec<[u8; 32]>, TokenFileError> {
    let bytes = contents
        .map_err(|detail| TokenFileError::Read {
            path: path.to_owned(),
            detail,
        })?
        .concat();
    Ok(file_tokens(path, &bytes)?.into_iter().map(digest).collect())
}

/// The first token of the token file at `path` (what `scorer healthcheck` sends).
///
/// # Errors
/// [`TokenFileError`], as the sidecar would report it for that file.
pub fn first_token_in_file(path: &Path) -> Result<BearerToken, TokenFileError> {
    let bytes = std::fs::read(path).map_err(|e| TokenFileError::Read {
        path: path.to_owned(),
        detail: e.to_string(),
    })?;
    let first = file_tokens(path, &bytes)?[0];
    Ok(BearerToken(first.to_owned()))
}

/// The file's tokens in order, each checked; at least one.
fn file_tokens<'a>(path: &Path, bytes: &'a [u8]) -> Result<Vec<&'a str>, TokenFileError> {
    let text = std::str::from_utf8(bytes).map_err(|_| TokenFileError::NotText {
        path: path.to_owned(),
    })?;
    let mut tokens = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let token = line.trim();
        if token.is_empty() || token.starts_with('#') {
            continue;
        }
        check_token(token).map_err(|problem| TokenFileError::BadLine {
            path: path.to_owned(),
            line: i + 1,
            problem,
        })?;
        tokens.push(token);
    }
    if tokens.is_empty() {
        return Err(TokenFileError::NoTokens {
            path: path.to_owned(),
        });
    }
    Ok(tokens)
}

/// Which routes need a token, and where the tokens come from (checked by `Config::validate`).
#[derive(Debug, Clone)]
pub struct AuthSettings {
    /// `--http-auth-token-file`.
    pub token_file: Option<PathBuf>,
    /// `--http-auth-token` / `SCORER_HTTP_AUTH_TOKENS`, each checked.
    pub tokens: Vec<BearerToken>,
    /// `--http-auth-health`: protect `/healthz` and `/readyz` too.
    pub health: bool,
    /// `--http-auth-metrics`: protect `/metrics` too.
    pub metrics: bool,
}

/// Why a request was turned away; the code is the `reason` label of
/// `scorer_http_auth_failures_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    /// No `Authorization` header.
    Missing,
    /// An `Authorization` header that is not `Bearer <token>`.
    Malformed,
    /// A token that is not accepted.
    Rejected,
}

impl AuthFailure {
    /// Every reason, for pre-created metric labels.
    pub const ALL: [Self; 3] = [Self::Missing, Self::Malformed, Self::Rejected];

    /// The metric label.
    pub fn code(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Malformed => "malformed",
            Self::Rejected => "rejected",
        }
    }

    fn error(self) -> ApiError {
        match self {
            Self::Missing => ApiError::Unauthorized(
                "this route needs a bearer token: send `Authorization: Bearer <token>`",
            ),
            Self::Malformed => {
                ApiError::Unauthorized("malformed Authorization header: expected `Bearer <token>`")
            }
            Self::Rejected => ApiError::Forbidden,
        }
    }
}

/// The accepted tokens and what they protect.
#[derive(Debug)]
pub struct Auth {
    /// Digests of the tokens from the command line or environment.
    fixed: Vec<[u8; 32]>,
    /// Digests of the token file's tokens, swapped whole on reload.
    file: RwLock<Arc<[[u8; 32]]>>,
    token_file: Option<PathBuf>,
    health: bool,
    metrics_route: bool,
    metrics: Metrics,
}

impl Auth {
    /// The tokens of `settings`, and of the token file whose `contents` are given.
    ///
    /// # Errors
    /// [`TokenFileError`] if the file could not be read or lists no valid token.
    pub(crate) fn new(
        settings: &AuthSettings,
        contents: Option<Contents>,
        metrics: &Metrics,
    ) -> Result<Self, TokenFileError> {
        let file = match (&settings.token_file, contents) {
            (Some(path), Some(contents)) => parse_token_file(path, contents)?,
            _ => Vec::new(),
        };
        Ok(Self {
            fixed: settings.tokens.iter().map(BearerToken::digest).collect(),
            file: RwLock::new(file.into()),
            token_file: settings.token_file.clone(),
            health: settings.health,
            metrics_route: settings.metrics,
            metrics: metrics.clone(),
        })
    }

    /// Replaces the token file's tokens with `contents`, or keeps them if it is not valid.
    pub(crate) fn reload(&self, contents: Contents) -> Result<(), TokenFileError> {
        let Some(path) = &self.token_file else {
            return Ok(());
        };
        let digests = parse_token_file(path, contents)?;
        *self.file.write().unwrap_or_else(PoisonError::into_inner) = digests.into();
        Ok(())
    }

    /// Whether `path` needs a token. Everything does (so an unknown path answers 401, not
    /// 404) but the OpenAPI document and, unless asked otherwise, the probes and the scrape.
    fn protects(&self, path: &str) -> bool {
        match path {
            "/openapi.json" => false,
            "/healthz" | "/readyz" => self.health,
            "/metrics" => self.metrics_route,
            _ => true,
        }
    }

    /// Checks the request's `Authorization` header.
    fn check(&self, headers: &HeaderMap) -> Result<(), AuthFailure> {
        let value = headers.get(AUTHORIZATION).ok_or(AuthFailure::Missing)?;
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim_matches(' '))
            .filter(|token| !token.is_empty() && !token.contains(' '))
            .ok_or(AuthFailure::Malformed)?;
        let presented = digest(token);
        let file = Arc::clone(&self.file.read().unwrap_or_else(PoisonError::into_inner));
        // Every accepted digest is compared, so the time taken says nothing about which
        // (or whether one) matched.
        let mut accepted = Choice::from(0);
        for known in self.fixed.iter().chain(file.iter()) {
            accepted |= known.ct_eq(&presented);
        }
        if bool::from(accepted) {
            Ok(())
        } else {
            Err(AuthFailure::Rejected)
        }
    }
}

/// Middleware: answers 401 (no or malformed `Authorization: Bearer`) or 403 (a token not
/// accepted) on the routes [`Auth`] protects, in the shape of the route's protocol.
pub(crate) async fn require_token(
    State(auth): State<Arc<Auth>>,
    req: Request,
    next: Next,
) -> Response {
    if auth.protects(req.uri().path())
        && let Err(failure) = auth.check(req.headers())
    {
        auth.metrics
            .http_auth_failures
            .with_label_values(&[failure.code()])
            .inc();
        tracing::debug!(reason = failure.code(), "request not authenticated");
        return in_protocol_shape(req.uri(), failure.error());
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    const A: &str = "first-token-0123456789";
    const B: &str = "second-token-0123456789";

    fn auth(tokens: &[&str]) -> Auth {
        let settings = AuthSettings {
            token_file: None,
            tokens: tokens
                .iter()
                .map(|t| BearerToken::from((*t).to_owned()))
                .collect(),
            health: false,
            metrics: true,
        };
        Auth::new(&settings, None, &Metrics::new().unwrap()).unwrap()
    }

    fn headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn a_listed_token_passes_and_anything_else_is_named() {
        let a = auth(&[A, B]);
        assert_eq!(a.check(&headers(&format!("Bearer {A}"))), Ok(()));
        assert_eq!(a.check(&headers(&format!("bearer  {B}"))), Ok(()));
        assert_eq!(a.check(&HeaderMap::new()), Err(AuthFailure::Missing));
        for malformed in [A, "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Bearer a b"] {
            assert_eq!(
                a.check(&headers(malformed)),
                Err(AuthFailure::Malformed),
                "{malformed}"
            );
        }
        assert_eq!(
            a.check(&headers("Bearer not-the-token-0123456789")),
            Err(AuthFailure::Rejected)
        );
    }

    #[test]
    fn probes_and_the_scrape_are_open_unless_asked() {
        let a = auth(&[A]);
        assert!(!a.protects("/healthz") && !a.protects("/readyz"));
        assert!(a.protects("/metrics"), "this one was asked to protect it");
        assert!(!a.protects("/openapi.json"));
        for path in [
            "/predict",
            "/predict/batch",
            "/model",
            "/v2",
            "/v2/health/live",
            "/nope",
        ] {
            assert!(a.protects(path), "{path}");
        }
    }

    #[test]
    fn the_token_file_skips_blanks_and_comments_and_names_a_bad_line() {
        let path = Path::new("/run/tokens");
        let text = format!("# rotation: {B} replaces {A}\n\n  {A}  \n{B}\n");
        let digests = parse_token_file(path, Ok(vec![text.into_bytes()])).unwrap();
        assert_eq!(digests, vec![digest(A), digest(B)]);

        let err = parse_token_file(path, Ok(vec![b"# c\nshort\n".to_vec()])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "--http-auth-token-file /run/tokens line 2: the token is 5 characters long; use at least 16 (e.g. `openssl rand -hex 32`) (one token a line; `#` starts a comment line)"
        );
        let err = parse_token_file(path, Ok(vec![b"# only a comment\n".to_vec()])).unwrap_err();
        assert!(matches!(err, TokenFileError::NoTokens { .. }), "{err}");
        let secret = "with-a-space 0123456789abcdef";
        let err = parse_token_file(path, Ok(vec![secret.as_bytes().to_vec()])).unwrap_err();
        assert!(!err.to_string().contains("0123456789abcdef"), "{err}");
        assert!(matches!(
            err,
            TokenFileError::BadLine {
                line: 1,
                problem: TokenError::BadCharacter { position: 13 },
                ..
            }
        ));
    }

    #[test]
    fn tokens_are_b64token_strings_of_some_length() {
        assert_eq!(check_token(""), Err(TokenError::Empty));
        assert_eq!(check_token("abc"), Err(TokenError::TooShort { chars: 3 }));
        assert_eq!(check_token("dGhpcyBpcyBhIHRva2Vu=="), Ok(()));
        assert_eq!(
            check_token("ab=cdefghijklmnopq"),
            Err(TokenError::BadCharacter { position: 3 })
        );
        assert_eq!(
            check_token("================"),
            Err(TokenError::BadCharacter { position: 1 })
        );
        assert_eq!(
            format!("{:?}", BearerToken::from(A.to_owned())),
            "BearerToken(<redacted>)"
        );
    }

    #[test]
    fn a_reload_replaces_the_file_tokens_and_a_bad_one_keeps_them() {
        let settings = AuthSettings {
            token_file: Some(PathBuf::from("/run/tokens")),
            tokens: vec![],
            health: false,
            metrics: false,
        };
        let file = |text: &str| Ok(vec![text.as_bytes().to_vec()]);
        let a = Auth::new(&settings, Some(file(A)), &Metrics::new().unwrap()).unwrap();
        assert_eq!(a.check(&headers(&format!("Bearer {A}"))), Ok(()));
        assert!(a.reload(file("\n")).is_err());
        assert_eq!(a.check(&headers(&format!("Bearer {A}"))), Ok(()));
        a.reload(file(B)).unwrap();
        assert_eq!(
            a.check(&headers(&format!("Bearer {A}"))),
            Err(AuthFailure::Rejected)
        );
        assert_eq!(a.check(&headers(&format!("Bearer {B}"))), Ok(()));
    }
}
