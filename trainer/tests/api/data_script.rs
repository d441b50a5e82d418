//! `scripts/data`: with no local copy it downloads the file into the cache through
//! `trainer fetch-data` (a loopback server stands in for UCI) and refuses a corrupted copy.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support::{cleveland, serve_once, temp_dir};

const SHA256: &str = heart_trainer::fetch::CLEVELAND_SHA256;

/// Runs `scripts/data` as on a fresh clone: no HEART_DATA, no shared copy, `cache` as
/// XDG_CACHE_HOME, the download from `url` with the trainer under test.
fn data_script(cache: &Path, url: &str, heart_data: Option<&str>) -> Output {
    let mut command = Command::new("bash");
    command
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/data"))
        .env_remove("HEART_DATA")
        .env("HEART_DATA_SHARED", cache.join("no-shared-copy"))
        .env("XDG_CACHE_HOME", cache)
        .env("HEART_DATA_URL", url)
        .env("HEART_TRAINER", env!("CARGO_BIN_EXE_trainer"))
        .env("RUST_LOG", "warn");
    if let Some(path) = heart_data {
        command.env("HEART_DATA", path);
    }
    let out = command.output().unwrap();
    eprintln!("stderr:\n{}", String::from_utf8_lossy(&out.stderr));
    out
}

fn cached(cache: &Path) -> PathBuf {
    cache.join("heart-risk/data/processed.cleveland.data")
}

#[test]
fn without_a_local_copy_the_file_is_downloaded_into_the_cache_once_and_checked() {
    let cache = temp_dir("data-script-good");
    let bytes = std::fs::read(cleveland()).unwrap();
    let out = data_script(&cache, &serve_once(bytes), None);
    assert!(out.status.success());
    let printed = String::from_utf8(out.stdout).unwrap();
    assert_eq!(Path::new(printed.trim()), cached(&cache));
    let written = std::fs::read(cached(&cache)).unwrap();
    assert_eq!(heart_model::sha256_hex(&written), SHA256);
    assert!(String::from_utf8_lossy(&out.stderr).contains("downloading"));

    // Cached now: no server needed, nothing said.
    let again = data_script(&cache, "http://127.0.0.1:1/gone", None);
    assert!(again.status.success());
    assert_eq!(String::from_utf8(again.stdout).unwrap(), printed);
    assert!(!String::from_utf8_lossy(&again.stderr).contains("downloading"));
}

#[test]
fn a_corrupted_download_is_refused_and_nothing_is_cached() {
    let cache = temp_dir("data-script-corrupt");
    let mut bytes = std::fs::read(cleveland()).unwrap();
    bytes[100] ^= 0x01;
    let out = data_script(&cache, &serve_once(bytes), None);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("sha256 mismatch"), "{stderr}");
    let dir = cached(&cache).parent().unwrap().to_owned();
    let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn heart_data_wins_and_a_missing_one_is_an_error() {
    let cache = temp_dir("data-script-env");
    let given = cleveland();
    let out = data_script(&cache, "http://127.0.0.1:1/gone", given.to_str());
    assert!(out.status.success());
    let printed = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        std::fs::canonicalize(printed.trim()).unwrap(),
        std::fs::canonicalize(&given).unwrap()
    );
    let out = data_script(
        &cache,
        "http://127.0.0.1:1/gone",
        Some("/nonexistent/heart.data"),
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("HEART_DATA=/nonexistent/heart.data"));
}
