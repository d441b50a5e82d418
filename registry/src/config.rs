//! The registry flags every binary shares (`SCHEMA_REGISTRY_*`, Confluent's names, no binary
//! prefix) and their validation into a [`RegistryConfig`].

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ureq::tls::Certificate;

use crate::error::RegistryError;

/// Default for `--schema-registry-timeout-ms`.
pub const DEFAULT_TIMEOUT_MS: u64 = 5000;

/// How to reach the Schema Registry. Without a URL the binary runs without one.
#[derive(Clone, clap::Args)]
pub struct RegistryArgs {
    /// Schema Registry base URL, e.g. http://registry:8081; unset = no registry.
    #[arg(long, env = "SCHEMA_REGISTRY_URL", global = true)]
    pub schema_registry_url: Option<String>,

    /// Basic auth credentials, user:password (prefer the environment variable: a flag shows in
    /// `ps`).
    #[arg(
        long,
        env = "SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO",
        hide_env_values = true,
        global = true
    )]
    pub schema_registry_basic_auth: Option<String>,

    /// CA certificate file (PEM) that signed the registry's certificate; unset = the system's
    /// roots.
    #[arg(long, env = "SCHEMA_REGISTRY_CA_LOCATION", global = true)]
    pub schema_registry_ca_location: Option<String>,

    /// Timeout of one registry request (connect, send and answer), in milliseconds.
    #[arg(
        long,
        env = "SCHEMA_REGISTRY_TIMEOUT_MS",
        default_value_t = DEFAULT_TIMEOUT_MS,
        value_parser = parse_timeout_ms,
        global = true
    )]
    pub schema_registry_timeout_ms: u64,
}

/// An empty `SCHEMA_REGISTRY_TIMEOUT_MS=` means the default, as other empty values mean unset.
fn parse_timeout_ms(value: &str) -> Result<u64, String> {
    match value.trim() {
        "" => Ok(DEFAULT_TIMEOUT_MS),
        v => match v.parse::<u64>() {
            Ok(0) => Err("must be at least 1".to_owned()),
            Ok(ms) => Ok(ms),
            Err(e) => Err(e.to_string()),
        },
    }
}

/// An empty value counts as unset, so a deployment can template `SCHEMA_REGISTRY_URL=`.
fn set(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

impl RegistryArgs {
    /// Settings for `url` without auth or a CA file (tests and tools).
    pub fn plain(url: impl Into<String>) -> Self {
        Self {
            schema_registry_url: Some(url.into()),
            schema_registry_basic_auth: None,
            schema_registry_ca_location: None,
            schema_registry_timeout_ms: DEFAULT_TIMEOUT_MS,
        }
    }

    /// Validates the flags once: `Ok(None)` when no registry is configured.
    ///
    /// # Errors
    /// [`RegistryError::Config`]: a URL that is not http(s), credentials without a `:`, or a CA
    /// file that cannot be read or holds no PEM certificate (the error names the path).
    pub fn validate(&self) -> Result<Option<RegistryConfig>, RegistryError> {
        let Some(url) = set(&self.schema_registry_url) else {
            return Ok(None);
        };
        let url = normalize_url(url)?;
        let basic_auth = set(&self.schema_registry_basic_auth)
            .map(|info| match info.split_once(':') {
                Some((user, password)) if !user.is_empty() => Ok(BasicAuth {
                    user: user.to_owned(),
                    password: password.to_owned(),
                }),
                _ => Err(RegistryError::Config(
                    "--schema-registry-basic-auth must be user:password".to_owned(),
                )),
            })
            .transpose()?;
        let ca = set(&self.schema_registry_ca_location)
            .map(|path| read_ca(Path::new(path)))
            .transpose()?;
        Ok(Some(RegistryConfig {
            url,
            basic_auth,
            ca,
            timeout: Duration::from_millis(self.schema_registry_timeout_ms),
        }))
    }
}

// Hand-written so the password never reaches a log line or a panic message.
impl fmt::Debug for RegistryArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistryArgs")
            .field("schema_registry_url", &self.schema_registry_url)
            .field(
                "schema_registry_basic_auth",
                &self.schema_registry_basic_auth.as_ref().map(|_| "<set>"),
            )
            .field(
                "schema_registry_ca_location",
                &self.schema_registry_ca_location,
            )
            .field(
                "schema_registry_timeout_ms",
                &self.schema_registry_timeout_ms,
            )
            .finish()
    }
}

/// `http(s)://host[:port][/prefix]` without a trailing slash, so paths append with one `/`.
fn normalize_url(url: &str) -> Result<String, RegistryError> {
    let lower = url.to_ascii_lowercase();
    let scheme = ["http://", "https://"]
        .into_iter()
        .find(|scheme| lower.starts_with(scheme))
        .ok_or_else(|| {
            RegistryError::Config(format!(
                "--schema-registry-url {url:?} must start with http:// or https://"
            ))
        })?;
    let rest = &url[scheme.len()..];
    if rest.trim_end_matches('/').is_empty() || rest.contains(['?', '#', '@', ' ']) {
        return Err(RegistryError::Config(format!(
            "--schema-registry-url {url:?} must be http(s)://host[:port][/path] (credentials go in --schema-registry-basic-auth)"
        )));
    }
    Ok(format!("{scheme}{}", rest.trim_end_matches('/')))
}

fn read_ca(path: &Path) -> Result<CaFile, RegistryError> {
    let bad = |detail: String| {
        RegistryError::Config(format!(
            "--schema-registry-ca-location {}: {detail}",
            path.display()
        ))
    };
    let pem = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    let certs = ureq::tls::parse_pem(&pem)
        .filter_map(|item| match item {
            Ok(ureq::tls::PemItem::Certificate(cert)) => Some(Ok(cert)),
            Ok(_) => None,
            Err(e) => Some(Err(e)),
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(e.to_string()))?;
    if certs.is_empty() {
        return Err(bad("no PEM certificate in the file".to_owned()));
    }
    Ok(CaFile {
        path: path.to_owned(),
        certs,
    })
}

/// The validated registry settings: what [`crate::Registry::new`] needs.
#[derive(Clone)]
pub struct RegistryConfig {
    /// Base URL, http(s), never ending in `/`.
    pub(crate) url: String,
    pub(crate) basic_auth: Option<BasicAuth>,
    /// Read and parsed at startup, so a bad path fails then rather than on the first request.
    pub(crate) ca: Option<CaFile>,
    pub(crate) timeout: Duration,
}

#[derive(Clone)]
pub(crate) struct BasicAuth {
    pub(crate) user: String,
    pub(crate) password: String,
}

#[derive(Clone)]
pub(crate) struct CaFile {
    pub(crate) path: PathBuf,
    pub(crate) certs: Vec<Certificate<'static>>,
}

impl RegistryConfig {
    /// The base URL (no trailing slash).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The timeout of one request.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The settings worth logging at startup; the password is never printed.
    pub fn redacted(&self) -> String {
        format!(
            "url={} basic_auth={} ca_location={} timeout_ms={}",
            self.url,
            self.basic_auth
                .as_ref()
                .map_or_else(|| "-".to_owned(), |a| format!("{}:<set>", a.user)),
            self.ca
                .as_ref()
                .map_or_else(|| "-".to_owned(), |c| c.path.display().to_string()),
            self.timeout.as_millis(),
        )
    }

    /// The `Authorization` header value, if credentials are set.
    pub(crate) fn authorization(&self) -> Option<String> {
        self.basic_auth.as_ref().map(|a| {
            format!(
                "Basic {}",
                STANDARD.encode(format!("{}:{}", a.user, a.password).as_bytes())
            )
        })
    }
}

impl fmt::Debug for RegistryConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RegistryConfig { ")?;
        f.write_str(&self.redacted())?;
        f.write_str(" }")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        registry: RegistryArgs,
    }

    fn parse(args: &[&str]) -> RegistryArgs {
        Cli::try_parse_from(std::iter::once("bin").chain(args.iter().copied()))
            .unwrap()
            .registry
    }

    #[test]
    fn no_url_means_no_registry() {
        assert!(parse(&[]).validate().unwrap().is_none());
        let mut args = RegistryArgs::plain("  ");
        args.schema_registry_basic_auth = Some(String::new());
        assert!(args.validate().unwrap().is_none());
    }

    #[test]
    fn the_url_loses_its_trailing_slash_and_the_timeout_defaults() {
        let c = parse(&["--schema-registry-url", "http://sr:8081/"])
            .validate()
            .unwrap()
            .unwrap();
        assert_eq!(c.url(), "http://sr:8081");
        assert_eq!(c.timeout(), Duration::from_millis(DEFAULT_TIMEOUT_MS));
        let c = RegistryArgs::plain("HTTPS://sr.example/prefix//")
            .validate()
            .unwrap()
            .unwrap();
        assert_eq!(c.url(), "https://sr.example/prefix");
    }

    #[test]
    fn an_empty_timeout_means_the_default_and_zero_is_refused() {
        assert_eq!(parse_timeout_ms(""), Ok(DEFAULT_TIMEOUT_MS));
        assert_eq!(parse_timeout_ms("250"), Ok(250));
        assert!(parse_timeout_ms("0").is_err());
        assert!(parse_timeout_ms("soon").is_err());
    }

    #[test]
    fn urls_that_are_not_http_are_refused_by_name() {
        for url in [
            "sr:8081",
            "http://",
            "ftp://sr",
            "http://u:p@sr:8081",
            "http://sr?x=1",
        ] {
            let err = RegistryArgs::plain(url).validate().unwrap_err();
            assert!(matches!(err, RegistryError::Config(_)), "{url}: {err}");
            assert!(err.to_string().contains("--schema-registry-url"), "{err}");
        }
    }

    #[test]
    fn credentials_without_a_colon_are_refused_without_echoing_them() {
        let mut args = RegistryArgs::plain("http://sr:8081");
        args.schema_registry_basic_auth = Some("hunter2".into());
        let err = args.validate().unwrap_err().to_string();
        assert!(
            err.contains("user:password") && !err.contains("hunter2"),
            "{err}"
        );
    }

    #[test]
    fn the_password_appears_in_no_debug_or_summary() {
        let mut args = RegistryArgs::plain("http://sr:8081");
        args.schema_registry_basic_auth = Some("alice:hunter2".into());
        let config = args.validate().unwrap().unwrap();
        for text in [
            format!("{args:?}"),
            format!("{config:?}"),
            config.redacted(),
        ] {
            assert!(!text.contains("hunter2"), "{text}");
        }
        assert!(config.redacted().contains("basic_auth=alice:<set>"));
        assert_eq!(
            config.authorization().unwrap(),
            "Basic YWxpY2U6aHVudGVyMg=="
        );
    }

    #[test]
    fn a_bad_ca_path_is_named_in_the_error() {
        let mut args = RegistryArgs::plain("https://sr:8081");
        args.schema_registry_ca_location = Some("/nonexistent/registry-ca.pem".into());
        let err = args.validate().unwrap_err().to_string();
        assert!(
            err.contains("--schema-registry-ca-location /nonexistent/registry-ca.pem"),
            "{err}"
        );

        let not_pem = std::env::temp_dir().join("heart-registry-not-a-ca.pem");
        std::fs::write(&not_pem, "not a certificate\n").unwrap();
        args.schema_registry_ca_location = Some(not_pem.display().to_string());
        let err = args.validate().unwrap_err().to_string();
        assert!(
            err.contains(&not_pem.display().to_string()) && err.contains("no PEM certificate"),
            "{err}"
        );
    }
}
