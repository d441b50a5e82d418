//! Helpers: paths, temp dirs and running the binary with full context on failure.

use std::path::PathBuf;
use std::process::{Command, Output};

/// The Cleveland file, read in place: `HEART_TEST_DATA`, else `HEART_DATA`, else the shared copy
/// (`scripts/test` passes `scripts/data`'s answer as `HEART_TEST_DATA`).
pub fn cleveland() -> PathBuf {
    std::env::var_os("HEART_TEST_DATA")
        .or_else(|| std::env::var_os("HEART_DATA"))
        .map_or_else(
            || {
                PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                    .join("../../shared/data/processed.cleveland.data")
            },
            PathBuf::from,
        )
}

/// Serves `body` to one HTTP request on a loopback port; returns the URL.
pub fn serve_once(body: Vec<u8>) -> String {
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

/// A fresh directory under the system temp dir.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("heart-trainer-api-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs the trainer binary.
pub fn trainer(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_trainer"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

/// Runs the trainer binary, panicking with its output unless it succeeds; returns stdout.
pub fn run_trainer(args: &[&str]) -> String {
    let out = trainer(args);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "trainer {args:?} failed ({}):\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}
