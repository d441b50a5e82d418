//! `trainer fetch-data`: download the UCI Cleveland file and check it byte for byte.

use std::path::Path;
use std::time::Duration;

use ureq::tls::{RootCerts, TlsConfig, TlsProvider};

use crate::error::{FetchError, WriteError};
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
    // Written beside `out` and renamed, so an interrupted write never leaves a partial file
    // where a later run (or `scripts/data`'s cache) would take it for the real one.
    let partial = out.with_extension("partial");
    write_file(&partial, &bytes)?;
    std::fs::rename(&partial, out).map_err(|source| WriteError {
        path: out.to_owned(),
        source,
    })?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    /// The UCI file's bytes.
    fn cleveland() -> Vec<u8> {
        let path = crate::data::tests::cleveland_path();
        std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}; set HEART_DATA", path.display()))
    }

    /// Serves `body` to one HTTP request on a loopback port; returns the URL.
    fn serve_once(body: Vec<u8>) -> String {
        use std::io::{BufRead, BufReader, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream);
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap() > 2 {
                line.clear();
            }
            let mut stream = reader.into_inner();
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            stream.write_all(head.as_bytes()).unwrap();
            stream.write_all(&body).unwrap();
        });
        format!("http://{addr}/processed.cleveland.data")
    }

    fn scratch(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("heart-fetch-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir.join("data").join("processed.cleveland.data")
    }

    #[test]
    fn the_local_copy_passes_the_checksum() {
        verify(&cleveland()).unwrap();
    }

    #[test]
    fn a_download_of_the_real_file_is_written_with_its_checksum() {
        let out = scratch("good");
        fetch(&serve_once(cleveland()), &out).unwrap();
        let written = std::fs::read(&out).unwrap();
        assert_eq!(heart_model::sha256_hex(&written), CLEVELAND_SHA256);
        assert!(!out.with_extension("partial").exists());
    }

    #[test]
    fn a_corrupted_download_is_refused_and_leaves_no_file() {
        let mut bytes = cleveland();
        bytes[100] ^= 0x01;
        let out = scratch("corrupt");
        let err = fetch(&serve_once(bytes), &out).unwrap_err();
        assert!(matches!(err, FetchError::Checksum { .. }), "{err}");
        assert!(err.to_string().contains("was not written"), "{err}");
        assert!(!out.exists() && !out.with_extension("partial").exists());
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
