//! The bounded hand-off between the fetch stage and the output stage, and what the two must
//! agree on: which batches are finished (the revoke barrier), where to rewind after a failed
//! batch, and which records the broker refused as too large.

use std::collections::{HashMap, VecDeque};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::batch::Batch;

/// Shared by the fetch and output threads.
#[derive(Debug)]
pub(crate) struct Handoff {
    state: Mutex<State>,
    changed: Condvar,
    capacity: usize,
}

#[derive(Debug, Default)]
struct State {
    queue: VecDeque<Batch>,
    /// Id of the last batch handed over.
    handed: u64,
    /// Id of the last batch the output stage finished (committed or discarded). Batches finish
    /// in order, so `finished >= handed` means nothing is in flight.
    finished: u64,
    /// Set by the output stage when a batch failed: every batch of this epoch or older is
    /// discarded, and the fetch stage rewinds.
    rewind: Option<u64>,
    /// The fetch stage has stopped; the output stage drains the queue and ends.
    closed: bool,
    /// Per partition this replica reads, the offset to rewind to: the first offset read after
    /// assignment, then one past each committed batch.
    committed: HashMap<i32, i64>,
    /// Size limits for records whose output the broker refused as too large.
    caps: HashMap<(i32, i64), usize>,
}

/// What the fetch stage must do after a failed batch.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Rewind {
    /// Partition → offset to seek to.
    pub targets: Vec<(i32, i64)>,
}

impl Handoff {
    pub fn new(capacity: usize) -> Self {
        Self {
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn wait<'a>(&self, guard: MutexGuard<'a, State>, timeout: Duration) -> MutexGuard<'a, State> {
        self.changed
            .wait_timeout(guard, timeout)
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .0
    }

    /// Hands `batch` over, waiting while the queue is full. Drops it, returning how many
    /// records it held, if a rewind is pending (it would be discarded) or `give_up` says so:
    /// its records are not committed, so they are read again.
    pub fn push(&self, batch: Batch, give_up: &dyn Fn() -> bool) -> Result<(), usize> {
        let mut s = self.lock();
        loop {
            if s.rewind.is_some() || give_up() {
                return Err(batch.len());
            }
            if s.queue.len() < self.capacity {
                s.handed = batch.id;
                s.queue.push_back(batch);
                self.changed.notify_all();
                return Ok(());
            }
            s = self.wait(s, Duration::from_millis(50));
        }
    }

    /// The next batch, waiting up to `timeout`.
    pub fn pop(&self, timeout: Duration) -> Option<Batch> {
        let deadline = Instant::now() + timeout;
        let mut s = self.lock();
        loop {
            if let Some(b) = s.queue.pop_front() {
                self.changed.notify_all();
                return Some(b);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || s.closed {
                return None;
            }
            s = self.wait(s, left);
        }
    }

    /// Marks batch `id` finished; `committed` holds its next offsets when it committed.
    pub fn finish(&self, id: u64, committed: Option<&std::collections::BTreeMap<i32, i64>>) {
        let mut s = self.lock();
        s.finished = s.finished.max(id);
        if let Some(offsets) = committed {
            for (p, o) in offsets {
                // Only partitions still owned: a revoked one's entry is gone.
                if let Some(e) = s.committed.get_mut(p) {
                    *e = (*e).max(*o);
                }
            }
        }
        self.changed.notify_all();
    }

    /// Asks the fetch stage to rewind: batches of `epoch` and older are void.
    pub fn request_rewind(&self, epoch: u64) {
        let mut s = self.lock();
        s.rewind = Some(s.rewind.map_or(epoch, |e| e.max(epoch)));
        self.changed.notify_all();
    }

    /// For the fetch stage: a pending rewind, with every queued batch discarded.
    pub fn take_rewind(&self) -> Option<Rewind> {
        let mut s = self.lock();
        s.rewind.take()?;
        let dropped: Vec<u64> = s.queue.drain(..).map(|b| b.id).collect();
        if let Some(&last) = dropped.last() {
            s.finished = s.finished.max(last);
        }
        let mut targets: Vec<(i32, i64)> = s.committed.iter().map(|(p, o)| (*p, *o)).collect();
        targets.sort_unstable();
        self.changed.notify_all();
        Some(Rewind { targets })
    }

    /// Waits until every handed batch is finished (the revoke barrier). False on timeout.
    pub fn drained(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut s = self.lock();
        while s.finished < s.handed {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            s = self.wait(s, left);
        }
        true
    }

    /// Whether a batch can be handed over without waiting.
    pub fn has_room(&self) -> bool {
        self.lock().queue.len() < self.capacity
    }

    /// Waits up to `timeout` for room in the queue (or a pending rewind); true if there is room.
    pub fn wait_room(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut s = self.lock();
        while s.queue.len() >= self.capacity && s.rewind.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            s = self.wait(s, left);
        }
        true
    }

    /// Whether the output stage has nothing to do: no batch queued or in flight.
    pub fn idle(&self) -> bool {
        let s = self.lock();
        s.queue.is_empty() && s.finished >= s.handed
    }

    /// The fetch stage is done; the output stage ends once the queue is empty.
    pub fn close(&self) {
        self.lock().closed = true;
        self.changed.notify_all();
    }

    pub fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// Notes the first offset read from `partition` since it was assigned.
    #[cfg(test)]
    pub fn track(&self, partition: i32, offset: i64) {
        self.lock().committed.entry(partition).or_insert(offset);
    }

    /// For each record fetched (one lock): tracks its partition's rewind point and returns a
    /// size limit learned for it.
    pub fn on_record(&self, partition: i32, offset: i64) -> Option<usize> {
        let mut s = self.lock();
        s.committed.entry(partition).or_insert(offset);
        if s.caps.is_empty() {
            return None;
        }
        s.caps.get(&(partition, offset)).copied()
    }

    /// Forgets partitions that were assigned afresh or revoked.
    pub fn forget(&self, partitions: &[i32]) {
        let mut s = self.lock();
        for p in partitions {
            s.committed.remove(p);
        }
    }

    #[cfg(test)]
    fn tracks(&self, partition: i32) -> bool {
        self.lock().committed.contains_key(&partition)
    }

    /// Lowers the size limit of the record at `partition`/`offset` to `bytes`.
    pub fn add_cap(&self, partition: i32, offset: i64, bytes: usize) {
        let mut s = self.lock();
        let e = s.caps.entry((partition, offset)).or_insert(bytes);
        *e = (*e).min(bytes);
    }

    /// Drops caps of records at or before the committed offsets (they are done).
    pub fn prune_caps(&self) {
        let mut s = self.lock();
        if s.caps.is_empty() {
            return;
        }
        let committed = s.committed.clone();
        s.caps
            .retain(|(p, o), _| committed.get(p).is_none_or(|next| o >= next));
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn batch(id: u64, epoch: u64) -> Batch {
        Batch::new(id, epoch, 1, 1)
    }

    #[test]
    fn a_rewind_discards_queued_batches_and_targets_the_committed_offsets() {
        let h = Handoff::new(4);
        h.track(0, 100);
        h.track(1, 7);
        h.push(batch(1, 0), &|| false).unwrap();
        h.push(batch(2, 0), &|| false).unwrap();
        let first = h.pop(Duration::ZERO).unwrap();
        h.finish(first.id, Some(&BTreeMap::from([(0, 150)])));
        h.request_rewind(0);
        // A pending rewind refuses new batches of the old epoch.
        assert!(h.push(batch(3, 0), &|| false).is_err());
        let r = h.take_rewind().unwrap();
        assert_eq!(r.targets, vec![(0, 150), (1, 7)]);
        assert!(h.pop(Duration::ZERO).is_none());
        assert!(
            h.drained(Duration::ZERO),
            "discarded batches count as finished"
        );
        assert!(h.take_rewind().is_none());
    }

    #[test]
    fn the_barrier_waits_for_handed_batches() {
        let h = std::sync::Arc::new(Handoff::new(2));
        h.push(batch(1, 0), &|| false).unwrap();
        assert!(!h.drained(Duration::from_millis(10)));
        let h2 = std::sync::Arc::clone(&h);
        let t = std::thread::spawn(move || {
            let b = h2.pop(Duration::from_secs(5)).unwrap();
            h2.finish(b.id, None);
        });
        assert!(h.drained(Duration::from_secs(5)));
        t.join().unwrap();
    }

    #[test]
    fn a_full_queue_blocks_until_give_up() {
        let h = Handoff::new(1);
        h.push(batch(1, 0), &|| false).unwrap();
        assert!(h.push(batch(2, 0), &|| true).is_err());
    }

    #[test]
    fn commits_of_revoked_partitions_are_not_tracked() {
        let h = Handoff::new(1);
        h.track(3, 10);
        h.forget(&[3]);
        h.finish(1, Some(&BTreeMap::from([(3, 20)])));
        assert!(!h.tracks(3));
        h.add_cap(0, 5, 1000);
        h.add_cap(0, 5, 500);
        assert_eq!(h.on_record(0, 5), Some(500));
        h.finish(2, Some(&BTreeMap::from([(0, 6)])));
        h.prune_caps();
        assert_eq!(h.on_record(0, 5), None);
    }
}
