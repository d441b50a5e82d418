//! `trainer fetch-data`: download the UCI Cleveland file and check it byte for byte.

use std::path::Path;
use std::time::Duration;

use ureq::tls::{RootCerts, TlsConfig, TlsProvider};

use crate::error::FetchError;
use crate::write_file;

/// UCI's legacy download location of the Cleveland file.
pub const UCI_URL: &str = "https://archive.ics.uci.edu/ml/machine-learning-databases/heart-disease/processed.cleveland.data";

/// sha256 of the untouched UCI file (see `shared/data/README.md`).
pub const CLEVELAND_SHA256: &str =
    "a74b7efa387bc9d108d7d0115d831fe9b414b29ae7124f331b622b4efa0427c8";

/// Largest body accepted; the real file is 18,461 bytes.
const MAX_BYTES: u64 = 1 << 20;

/// Checks downloaded bytes against [`CLEVELAND_SHA256`].
///
/// # Errors
/// [`FetchError::Checksum`] naming both hashes.
pub fn verify(bytes: &[u8]) -> Result<(), FetchError> {
    let actual = heart_model::sha256_hex(bytes);
    if actual == CLEVELAND_SHA256 {
        Ok(())
    } else {
        Err(FetchError::Checksum {
            expected: CLEVELAND_SHA256.to_owned(),
            actual,
        })
    }
}

/// Downloads `url`, verifies it and writes it to `out`; nothing is written if the check fails.
///
/// # Errors
/// [`FetchError`]: the download, the checksum or the write failed.
pub fn fetch(url: &str, out: &Path) -> Result<(), FetchError> {
    let http = |detail: String| FetchError::Http {
        url: url.to_owned(),
        detail,
    };
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(30)))
            .tls_config(
                TlsConfig::builder()
                    .provider(TlsProvider::NativeTls)
                    .root_certs(RootCerts::PlatformVerifier)
                    .build(),
            )
            .build(),
    );
    let mut response = agent.get(url).call().map_err(|e| http(e.to_string()))?;
    let bytes = response
        .body_mut()
        .with_config()
        .limit(MAX_BYTES)
        .read_to_vec()
        .map_err(|e| http(e.to_string()))?;
    verify(&bytes)?;
    write_file(out, &bytes)?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn the_local_copy_passes_the_checksum() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/data/processed.cleveland.data");
        verify(&std::fs::read(path).unwrap()).unwrap();
    }

    #[test]
    fn altered_bytes_fail_the_checksum_and_say_so() {
        let err = verify(b"63.0,1.0\n").unwrap_err();
        assert!(matches!(err, FetchError::Checksum { .. }));
        let text = err.to_string();
        assert!(text.contains(CLEVELAND_SHA256), "{text}");
        assert!(text.contains("not written"), "{text}");
    }

    #[test]
    fn an_unreachable_host_says_what_to_do() {
        let out = std::env::temp_dir().join("heart-trainer-fetch-never-written");
        let err = fetch("http://127.0.0.1:1/processed.cleveland.data", &out).unwrap_err();
        assert!(matches!(err, FetchError::Http { .. }), "{err}");
        assert!(err.to_string().contains("--data"), "{err}");
        assert!(!out.exists());
    }
}
