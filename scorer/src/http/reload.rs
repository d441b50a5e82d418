//! Re-reading the sidecar's files (TLS certificate and key, bearer tokens) when they change.
//!
//! Kubernetes updates a mounted Secret by swapping a `..data` symlink, so there is no event to
//! wait for that works everywhere: the files are read every [`POLL`] and compared by content.
//! A change is applied once two polls in a row have read the same new content, so that a pair
//! of files written one after the other is never loaded half-written. A change that cannot be
//! applied is logged once, and the previous files keep serving.

use std::path::PathBuf;
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

/// How often the files are read.
pub(crate) const POLL: Duration = Duration::from_secs(2);

/// The contents of a set of files, in order, or why one of them could not be read.
pub(crate) type Contents = Result<Vec<Vec<u8>>, String>;

/// Reads every file of a set.
pub(crate) fn read_all(paths: &[PathBuf]) -> Contents {
    paths
        .iter()
        .map(|p| std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display())))
        .collect()
}

fn fingerprint(contents: &Contents) -> [u8; 32] {
    let mut hash = Sha256::new();
    match contents {
        Ok(files) => {
            for file in files {
                hash.update((file.len() as u64).to_le_bytes());
                hash.update(file);
            }
        }
        Err(why) => {
            hash.update(u64::MAX.to_le_bytes());
            hash.update(why.as_bytes());
        }
    }
    hash.finalize().into()
}

/// What one poll found. Pure, so that the settling rule is tested without files or time.
#[derive(Debug, Clone, Default)]
pub(crate) struct Watch {
    /// Fingerprint of the contents last applied (or tried): a failed change is not tried again
    /// until the files change once more.
    applied: [u8; 32],
    /// A new fingerprint seen on the last poll, waiting for a second poll to confirm it.
    settling: Option<[u8; 32]>,
}

impl Watch {
    /// A watch whose current state is `contents` (what was loaded at startup).
    pub(crate) fn new(contents: &Contents) -> Self {
        Self {
            applied: fingerprint(contents),
            settling: None,
        }
    }

    /// Returns the contents to apply now, if they changed and held still for one poll.
    pub(crate) fn observe(&mut self, contents: Contents) -> Option<Contents> {
        let seen = fingerprint(&contents);
        if seen == self.applied {
            self.settling = None;
            return None;
        }
        if self.settling != Some(seen) {
            self.settling = Some(seen);
            return None;
        }
        self.applied = seen;
        self.settling = None;
        Some(contents)
    }
}

/// Polls `paths` until `shutdown`, calling `apply` with each settled change. `what` names the
/// set in logs and in `scorer_http_reloads_total{file}`.
pub(crate) async fn run<E: std::fmt::Display>(
    what: &'static str,
    paths: Vec<PathBuf>,
    mut watch: Watch,
    metrics: Metrics,
    shutdown: CancellationToken,
    mut apply: impl FnMut(Contents) -> Result<(), E>,
) {
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let read = {
            let paths = paths.clone();
            tokio::task::spawn_blocking(move || read_all(&paths)).await
        };
        let Ok(contents) = read else { continue };
        let Some(changed) = watch.observe(contents) else {
            continue;
        };
        match apply(changed) {
            Ok(()) => {
                metrics
                    .http_reloads
                    .with_label_values(&[what, "reloaded"])
                    .inc();
                tracing::info!(file = what, "sidecar files reloaded");
            }
            Err(error) => {
                metrics
                    .http_reloads
                    .with_label_values(&[what, "failed"])
                    .inc();
                tracing::error!(file = what, error = %error, "sidecar files changed but cannot be used; the previous ones keep serving");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(parts: &[&str]) -> Contents {
        Ok(parts.iter().map(|p| p.as_bytes().to_vec()).collect())
    }

    #[test]
    fn a_change_is_applied_once_it_holds_still_for_a_poll() {
        let mut w = Watch::new(&files(&["cert-1", "key-1"]));
        assert!(w.observe(files(&["cert-1", "key-1"])).is_none());
        // The certificate is written, the key not yet: nothing is applied.
        assert!(w.observe(files(&["cert-2", "key-1"])).is_none());
        assert!(w.observe(files(&["cert-2", "key-2"])).is_none());
        assert_eq!(
            w.observe(files(&["cert-2", "key-2"])),
            Some(files(&["cert-2", "key-2"]))
        );
        // Applied (or tried) once: the same contents again are no change.
        assert!(w.observe(files(&["cert-2", "key-2"])).is_none());
    }

    #[test]
    fn unreadable_files_are_a_change_too_and_so_is_their_return() {
        let mut w = Watch::new(&files(&["a"]));
        let gone: Contents = Err("cannot read a: no such file".into());
        assert!(w.observe(gone.clone()).is_none());
        assert_eq!(w.observe(gone.clone()), Some(gone));
        assert!(w.observe(files(&["a"])).is_none());
        assert_eq!(w.observe(files(&["a"])), Some(files(&["a"])));
    }

    #[test]
    fn file_boundaries_count() {
        let a = fingerprint(&files(&["ab", "c"]));
        let b = fingerprint(&files(&["a", "bc"]));
        assert_ne!(a, b);
    }
}
