//! [`StandIn`]: runs `scripts/schema-registry`, the stand-in registry, for a test's lifetime.
//! Test support: always built (see the crate docs), called only by tests.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::{Registry, RegistryArgs};

/// How long the script may take to print its "listening" line.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// A running stand-in registry on a free port of 127.0.0.1; killed when dropped.
#[derive(Debug)]
pub struct StandIn {
    url: String,
    child: Child,
    /// For the `/__standin/*` knobs, which need no credentials.
    admin: ureq::Agent,
}

impl StandIn {
    /// The script, `scripts/schema-registry` in the workspace.
    pub fn script() -> PathBuf {
        PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../scripts/schema-registry"
        ))
    }

    /// Starts a stand-in without auth.
    ///
    /// # Panics
    /// If `python3` cannot run the script or it does not print its address in time: a test
    /// cannot go on without its registry, and the message says why.
    pub fn start() -> Self {
        Self::spawn(&[])
    }

    /// Starts a stand-in that answers 401 unless given `user_info` (`user:password`).
    ///
    /// # Panics
    /// As [`StandIn::start`].
    pub fn with_basic_auth(user_info: &str) -> Self {
        Self::spawn(&["--basic-auth", user_info])
    }

    fn spawn(extra: &[&str]) -> Self {
        let script = Self::script();
        let mut child = Command::new("python3")
            .arg(&script)
            .args(["--host", "127.0.0.1", "--port", "0"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run python3 {}: {e}", script.display()));
        let Some(stdout) = child.stdout.take() else {
            unreachable!("stdout is piped above")
        };
        // A reader thread, so the wait for the line has a deadline even if the script hangs.
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let read = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(read.map(|_| line));
        });
        let line = match rx.recv_timeout(START_TIMEOUT) {
            Ok(Ok(line)) => line,
            other => {
                let _ = child.kill();
                let status = child.wait();
                panic!(
                    "{} did not print its address within {START_TIMEOUT:?}: {other:?}, exit {status:?}",
                    script.display()
                )
            }
        };
        let Some(url) = line.trim().strip_prefix("listening on ") else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{} printed {line:?}, not its address", script.display())
        };
        Self {
            url: url.to_owned(),
            child,
            admin: ureq::Agent::new_with_defaults(),
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Registry flags pointing at this stand-in, without credentials.
    pub fn args(&self) -> RegistryArgs {
        RegistryArgs::plain(&self.url)
    }

    /// A fresh client (empty caches) for this stand-in, without credentials.
    ///
    /// # Panics
    /// Never: the URL is the stand-in's own.
    pub fn registry(&self) -> Registry {
        match self.args().validate() {
            Ok(Some(config)) => Registry::new(config),
            other => unreachable!("the stand-in's URL is valid: {other:?}"),
        }
    }

    /// While `down`, every registry route answers 503 (`POST /__standin/outage`).
    ///
    /// # Panics
    /// If the stand-in does not answer.
    pub fn set_outage(&self, down: bool) {
        self.admin
            .post(format!("{}/__standin/outage", self.url))
            .send(format!(r#"{{"down": {down}}}"#))
            .unwrap_or_else(|e| panic!("stand-in {} outage knob: {e}", self.url));
    }

    /// Registry requests served so far, knobs not counted (`GET /__standin/stats`).
    ///
    /// # Panics
    /// If the stand-in does not answer.
    pub fn requests(&self) -> u64 {
        let body = self
            .admin
            .get(format!("{}/__standin/stats", self.url))
            .call()
            .and_then(|mut r| r.body_mut().read_to_string())
            .unwrap_or_else(|e| panic!("stand-in {} stats: {e}", self.url));
        serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("requests").and_then(serde_json::Value::as_u64))
            .unwrap_or_else(|| panic!("stand-in {} stats: unexpected {body:?}", self.url))
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
