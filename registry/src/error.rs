//! [`RegistryError`]: what a registry call can fail with, sorted by what the caller should do.

/// Why a registry call failed. The variants answer the caller's one question, "retry, route the
/// record, or stop?": [`NotFound`](Self::NotFound) is about the data (an id nobody registered),
/// [`Unavailable`](Self::Unavailable) is about the registry right now (wait and retry), and
/// [`Rejected`](Self::Rejected) / [`Config`](Self::Config) need a person.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The registry answered that the subject (40401), version (40402) or schema (40403) does not
    /// exist. For a schema id read off a record this is permanent: dead-letter it
    /// (`unknown_schema`).
    #[error("schema registry has no {what} (error_code {code}: {message})")]
    NotFound {
        /// What was asked for, e.g. `schema id 7`, `subject "patients-value"`.
        what: String,
        /// The registry's `error_code`: 40401, 40402 or 40403.
        code: u32,
        /// The registry's message.
        message: String,
    },

    /// No answer, a timeout, or a 5xx/408/429: the registry may come back, so wait and retry;
    /// never dead-letter a record for this.
    #[error("schema registry {url} unavailable: {detail}")]
    Unavailable {
        /// The request URL (credentials are never part of it).
        url: String,
        /// What went wrong, from the transport or the answer.
        detail: String,
    },

    /// The registry refused the request (a 4xx other than the not-found codes, or an answer that
    /// is not a registry's); retrying the same request gets the same answer.
    #[error("schema registry refused the request (HTTP {status}, error_code {code}): {message}")]
    Rejected {
        /// HTTP status.
        status: u16,
        /// The registry's `error_code` (0 if the answer had none).
        code: u32,
        /// The registry's message and what to do next.
        message: String,
    },

    /// The registry flags are invalid; nothing was sent.
    #[error("schema registry config: {0}")]
    Config(String),
}

impl RegistryError {
    /// Whether retrying later may succeed: true only for [`Unavailable`](Self::Unavailable).
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }

    /// Whether the registry said the thing asked for does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::NotFound { .. })
    }

    /// Sorts a non-2xx answer. `what` names the object requested, for [`NotFound`](Self::NotFound).
    pub(crate) fn from_answer(url: &str, status: u16, body: &str, what: &str) -> Self {
        let parsed: Option<serde_json::Value> = serde_json::from_str(body).ok();
        let code = parsed
            .as_ref()
            .and_then(|v| v.get("error_code"))
            .and_then(serde_json::Value::as_u64)
            .and_then(|c| u32::try_from(c).ok())
            .unwrap_or(0);
        let message = parsed
            .as_ref()
            .and_then(|v| v.get("message"))
            .and_then(serde_json::Value::as_str)
            .map_or_else(|| snippet(body), str::to_owned);
        // Only the registry's own codes mean "does not exist": a bare 404 is most likely a
        // wrong URL, and treating it as an unknown schema would dead-letter every record.
        if status == 404 && matches!(code, 40401..=40403) {
            return Self::NotFound {
                what: what.to_owned(),
                code,
                message,
            };
        }
        if status >= 500 || status == 408 || status == 429 {
            return Self::Unavailable {
                url: url.to_owned(),
                detail: format!("HTTP {status}: {message}"),
            };
        }
        let hint = match status {
            401 | 403 => {
                "check --schema-registry-basic-auth (SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO)"
            }
            409 => {
                "the schema breaks the subject's compatibility level: add defaults to new fields, or change the level (PUT /config/{subject})"
            }
            422 => "the schema or request is invalid: fix the schema text",
            404 => "no such route: check --schema-registry-url points at a Schema Registry",
            _ => "check --schema-registry-url and the registry's logs",
        };
        Self::Rejected {
            status,
            code,
            message: format!("{message}; {hint}"),
        }
    }

    /// A 2xx answer whose body is not what a registry sends.
    pub(crate) fn unexpected(url: &str, status: u16, body: &str) -> Self {
        Self::Rejected {
            status,
            code: 0,
            message: format!(
                "unexpected answer from {url}: {}; check --schema-registry-url points at a Schema Registry",
                snippet(body)
            ),
        }
    }
}

/// The start of a body for an error message: enough to recognise, never a whole page.
fn snippet(body: &str) -> String {
    let body = body.trim();
    match body.char_indices().nth(200) {
        Some((end, _)) => format!("{}…", &body[..end]),
        None if body.is_empty() => "(empty body)".to_owned(),
        None => body.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const URL: &str = "http://sr:8081/schemas/ids/7";

    fn answer(status: u16, body: &str) -> RegistryError {
        RegistryError::from_answer(URL, status, body, "schema id 7")
    }

    #[test]
    fn registry_not_found_codes_are_not_found() {
        for code in [40401, 40402, 40403] {
            let err = answer(
                404,
                &format!(r#"{{"error_code":{code},"message":"Schema not found"}}"#),
            );
            assert!(err.is_not_found() && !err.is_transient(), "{err}");
            assert_eq!(
                err.to_string(),
                format!("schema registry has no schema id 7 (error_code {code}: Schema not found)")
            );
        }
    }

    #[test]
    fn a_bare_404_is_a_wrong_url_not_an_unknown_schema() {
        let err = answer(404, "<html>Not Found</html>");
        assert!(
            matches!(
                err,
                RegistryError::Rejected {
                    status: 404,
                    code: 0,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("--schema-registry-url"), "{err}");
    }

    #[test]
    fn server_errors_and_throttling_are_transient() {
        for status in [500, 502, 503, 504, 408, 429] {
            let err = answer(
                status,
                r#"{"error_code":50001,"message":"Error in the backend"}"#,
            );
            assert!(err.is_transient(), "{status}: {err}");
            let text = err.to_string();
            assert!(
                text.contains(URL) && text.contains(&status.to_string()),
                "{text}"
            );
        }
    }

    #[test]
    fn other_client_errors_are_rejected_with_what_to_do() {
        let err = answer(401, r#"{"error_code":401,"message":"Unauthorized"}"#);
        assert!(
            matches!(&err, RegistryError::Rejected { status: 401, code: 401, message } if message.contains("--schema-registry-basic-auth")),
            "{err}"
        );
        let err = answer(409, r#"{"error_code":409,"message":"incompatible"}"#);
        assert!(err.to_string().contains("compatibility"), "{err}");
        let err = answer(422, r#"{"error_code":42201,"message":"Invalid schema"}"#);
        assert!(matches!(err, RegistryError::Rejected { code: 42201, .. }) && !err.is_transient());
    }

    #[test]
    fn long_bodies_are_cut_in_messages() {
        let err = answer(400, &"x".repeat(10_000));
        assert!(err.to_string().len() < 500, "{err}");
        let err = RegistryError::unexpected(URL, 200, "");
        assert!(err.to_string().contains("(empty body)"), "{err}");
    }
}
