//! [`Registry`]: the blocking client of the REST subset producers and consumers use, with the
//! caches that make the per-record path free of requests.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use serde_json::{Value, json};
use ureq::RequestBuilder;
use ureq::tls::{RootCerts, TlsConfig, TlsProvider};

use crate::config::RegistryConfig;
use crate::error::RegistryError;

/// Confluent's media type; plain JSON is accepted as a fallback, as its own clients do.
const ACCEPT: &str = "application/vnd.schemaregistry.v1+json, application/json";
const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

/// Largest answer read; a schema is kilobytes, so anything bigger is not a registry's.
const MAX_ANSWER_BYTES: u64 = 16 << 20;

/// One version of a subject, as `GET /subjects/{s}/versions/{v}` answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectVersion {
    /// The global schema id (what the wire format carries).
    pub id: u32,
    /// The version within the subject, from 1.
    pub version: i32,
    /// The schema text as the registry stores it.
    pub schema: Arc<str>,
}

/// A blocking Schema Registry client. Share it behind an `Arc`: the caches are inside.
pub struct Registry {
    config: RegistryConfig,
    /// `Basic …`, computed once; never printed (see the `Debug` impl).
    authorization: Option<String>,
    agent: ureq::Agent,
    /// Schema text by id. Ids are immutable in a registry, so entries never go stale.
    schemas: Mutex<HashMap<u32, Arc<str>>>,
    /// Id by (subject, schema text), filled by `lookup` and `register`.
    ids: Mutex<HashMap<(String, String), u32>>,
}

impl Registry {
    /// A client for `config`; nothing is sent until the first call.
    pub fn new(config: RegistryConfig) -> Self {
        let roots = match &config.ca {
            Some(ca) => RootCerts::new_with_certs(&ca.certs),
            None => RootCerts::PlatformVerifier,
        };
        let agent = ureq::Agent::new_with_config(
            ureq::Agent::config_builder()
                // The registry's 4xx bodies carry the error_code we sort on.
                .http_status_as_error(false)
                .timeout_global(Some(config.timeout))
                .tls_config(
                    TlsConfig::builder()
                        .provider(TlsProvider::NativeTls)
                        .root_certs(roots)
                        .build(),
                )
                .build(),
        );
        Self {
            authorization: config.authorization(),
            config,
            agent,
            schemas: Mutex::default(),
            ids: Mutex::default(),
        }
    }

    /// The settings this client was built with.
    pub fn config(&self) -> &RegistryConfig {
        &self.config
    }

    /// The schema with global `id` (`GET /schemas/ids/{id}`), cached for good after the first
    /// answer.
    ///
    /// # Errors
    /// [`RegistryError::NotFound`] for an id the registry never issued; see [`RegistryError`].
    pub fn schema(&self, id: u32) -> Result<Arc<str>, RegistryError> {
        if let Some(schema) = cached(&self.schemas).get(&id) {
            return Ok(Arc::clone(schema));
        }
        let (url, answer) = self.get(&format!("/schemas/ids/{id}"), &format!("schema id {id}"))?;
        let schema: Arc<str> = str_field(&url, &answer, "schema")?.into();
        cached(&self.schemas).insert(id, Arc::clone(&schema));
        Ok(schema)
    }

    /// The id of `schema` under `subject` if it is registered there (`POST /subjects/{s}`),
    /// cached per (subject, text).
    ///
    /// # Errors
    /// [`RegistryError::NotFound`] if the subject (40401) or the schema under it (40403) does not
    /// exist; see [`RegistryError`].
    pub fn lookup(&self, subject: &str, schema: &str) -> Result<u32, RegistryError> {
        self.id_of(subject, schema, &format!("/subjects/{}", segment(subject)))
    }

    /// Registers `schema` under `subject` (`POST /subjects/{s}/versions`) and returns its global
    /// id; registering a schema the subject already has returns the existing id.
    ///
    /// # Errors
    /// [`RegistryError::Rejected`] with status 409 if the schema breaks the subject's
    /// compatibility level, 422 if it is invalid; see [`RegistryError`].
    pub fn register(&self, subject: &str, schema: &str) -> Result<u32, RegistryError> {
        self.id_of(
            subject,
            schema,
            &format!("/subjects/{}/versions", segment(subject)),
        )
    }

    fn id_of(&self, subject: &str, schema: &str, path: &str) -> Result<u32, RegistryError> {
        let key = (subject.to_owned(), schema.to_owned());
        if let Some(&id) = cached(&self.ids).get(&key) {
            return Ok(id);
        }
        let what = format!("schema under subject {subject:?}");
        let (url, answer) = self.post(path, &json!({ "schema": schema }), &what)?;
        let id = u32_field(&url, &answer, "id")?;
        cached(&self.ids).insert(key, id);
        Ok(id)
    }

    /// The latest version of `subject` (`GET /subjects/{s}/versions/latest`); not cached, as it
    /// changes when someone registers.
    ///
    /// # Errors
    /// [`RegistryError::NotFound`] if the subject does not exist; see [`RegistryError`].
    pub fn latest(&self, subject: &str) -> Result<SubjectVersion, RegistryError> {
        let path = format!("/subjects/{}/versions/latest", segment(subject));
        let (url, answer) = self.get(&path, &format!("subject {subject:?}"))?;
        Ok(SubjectVersion {
            id: u32_field(&url, &answer, "id")?,
            version: answer
                .get("version")
                .and_then(Value::as_i64)
                .and_then(|v| i32::try_from(v).ok())
                .ok_or_else(|| unexpected(&url, &answer))?,
            schema: str_field(&url, &answer, "schema")?.into(),
        })
    }

    /// The versions of `subject`, oldest first (`GET /subjects/{s}/versions`).
    ///
    /// # Errors
    /// [`RegistryError::NotFound`] if the subject does not exist; see [`RegistryError`].
    pub fn versions(&self, subject: &str) -> Result<Vec<i32>, RegistryError> {
        let path = format!("/subjects/{}/versions", segment(subject));
        let (url, answer) = self.get(&path, &format!("subject {subject:?}"))?;
        answer
            .as_array()
            .and_then(|versions| {
                versions
                    .iter()
                    .map(|v| v.as_i64().and_then(|v| i32::try_from(v).ok()))
                    .collect()
            })
            .ok_or_else(|| unexpected(&url, &answer))
    }

    /// Whether `schema` may be registered under `subject` next, under the subject's
    /// compatibility level (`POST /compatibility/subjects/{s}/versions/latest`).
    ///
    /// # Errors
    /// [`RegistryError::NotFound`] if the subject has no versions yet; see [`RegistryError`].
    pub fn is_compatible(&self, subject: &str, schema: &str) -> Result<bool, RegistryError> {
        let path = format!(
            "/compatibility/subjects/{}/versions/latest",
            segment(subject)
        );
        let what = format!("subject {subject:?}");
        let (url, answer) = self.post(&path, &json!({ "schema": schema }), &what)?;
        answer
            .get("is_compatible")
            .and_then(Value::as_bool)
            .ok_or_else(|| unexpected(&url, &answer))
    }

    fn get(&self, path: &str, what: &str) -> Result<(String, Value), RegistryError> {
        let url = format!("{}{path}", self.config.url);
        let sent = self.headers(self.agent.get(&url)).call();
        Self::answer(url, sent, what)
    }

    fn post(&self, path: &str, body: &Value, what: &str) -> Result<(String, Value), RegistryError> {
        let url = format!("{}{path}", self.config.url);
        let sent = self
            .headers(self.agent.post(&url))
            .header("Content-Type", CONTENT_TYPE)
            .send(body.to_string());
        Self::answer(url, sent, what)
    }

    fn headers<B>(&self, request: RequestBuilder<B>) -> RequestBuilder<B> {
        let request = request.header("Accept", ACCEPT);
        match &self.authorization {
            Some(value) => request.header("Authorization", value),
            None => request,
        }
    }

    /// Sorts the outcome of one exchange into a JSON answer or a [`RegistryError`].
    fn answer(
        url: String,
        sent: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
        what: &str,
    ) -> Result<(String, Value), RegistryError> {
        let mut response = sent.map_err(|e| transport(&url, e))?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(MAX_ANSWER_BYTES)
            .read_to_string()
            .map_err(|e| transport(&url, e))?;
        if !response.status().is_success() {
            return Err(RegistryError::from_answer(&url, status, &body, what));
        }
        match serde_json::from_str(&body) {
            Ok(answer) => Ok((url, answer)),
            Err(_) => Err(RegistryError::unexpected(&url, status, &body)),
        }
    }
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("config", &self.config)
            .field("cached_schemas", &cached(&self.schemas).len())
            .field("cached_ids", &cached(&self.ids).len())
            .finish_non_exhaustive()
    }
}

/// The caches hold plain values inserted whole, so a panic elsewhere cannot leave one half
/// written: a poisoned lock is safe to keep using.
fn cached<K, V>(cache: &Mutex<HashMap<K, V>>) -> std::sync::MutexGuard<'_, HashMap<K, V>> {
    cache.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A request that got no answer. URL and proxy mistakes are configuration; everything else
/// (refused, reset, timed out, TLS) may pass, so callers wait rather than drop records.
fn transport(url: &str, err: ureq::Error) -> RegistryError {
    match err {
        ureq::Error::BadUri(_) | ureq::Error::Http(_) | ureq::Error::InvalidProxyUrl => {
            RegistryError::Config(format!("request to {url}: {err}"))
        }
        err => RegistryError::Unavailable {
            url: url.to_owned(),
            detail: err.to_string(),
        },
    }
}

fn unexpected(url: &str, answer: &Value) -> RegistryError {
    RegistryError::unexpected(url, 200, &answer.to_string())
}

fn str_field<'a>(url: &str, answer: &'a Value, key: &str) -> Result<&'a str, RegistryError> {
    answer
        .get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| unexpected(url, answer))
}

fn u32_field(url: &str, answer: &Value, key: &str) -> Result<u32, RegistryError> {
    answer
        .get(key)
        .and_then(Value::as_u64)
        .and_then(|id| u32::try_from(id).ok())
        .ok_or_else(|| unexpected(url, answer))
}

/// Percent-encodes a subject for one path segment: subjects may hold `/`, spaces or `%`.
fn segment(subject: &str) -> String {
    let mut out = String::with_capacity(subject.len());
    for byte in subject.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::RegistryArgs;

    #[test]
    fn subjects_are_percent_encoded_as_one_segment() {
        assert_eq!(segment("patients-value"), "patients-value");
        assert_eq!(segment("a/b c%.d~"), "a%2Fb%20c%25.d~");
        assert_eq!(segment("é"), "%C3%A9");
    }

    #[test]
    fn debug_shows_no_credentials() {
        let mut args = RegistryArgs::plain("http://sr:8081");
        args.schema_registry_basic_auth = Some("alice:hunter2".into());
        let registry = Registry::new(args.validate().unwrap().unwrap());
        let text = format!("{registry:?}");
        assert!(
            !text.contains("hunter2") && !text.contains("YWxp"),
            "{text}"
        );
    }
}
