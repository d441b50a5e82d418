//! Pacing for `--rate`: a token bucket that refills at the rate and holds one second of tokens.
//!
//! Record `n` is due at `start + n / rate`, computed from `n` rather than by adding up sleeps, so
//! the schedule cannot drift however late each wake-up is. When sending falls behind (a slow
//! broker, a full queue) it catches up as fast as it can, but by at most one second's worth of
//! records (the bucket size): after a long stall the schedule restarts rather than bursting the
//! whole backlog.

use std::time::Duration;

use tokio::time::Instant;

/// Paces records to a rate; a rate of 0 never waits.
#[derive(Debug)]
pub(crate) struct Pacer {
    /// Records per second; 0 = unpaced.
    rate: f64,
    /// Most records sent back to back when catching up.
    burst: u64,
    /// When record 0 of the current schedule was due.
    start: Instant,
    /// Records released since `start`.
    released: u64,
}

impl Pacer {
    /// A pacer whose first record is due at `now`.
    pub(crate) fn new(rate: f64, now: Instant) -> Self {
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // rate >= 0, validated
        let burst = (rate.ceil() as u64).max(1);
        Self {
            rate,
            burst,
            start: now,
            released: 0,
        }
    }

    /// When the next record may go, given the time `now`, and counts it as released. `None` when
    /// it may go at once because the pacer is unpaced.
    pub(crate) fn release(&mut self, now: Instant) -> Option<Instant> {
        if self.rate <= 0.0 {
            return None;
        }
        let mut due = self.due(self.released);
        // More than a bucket behind? Restart the schedule so that exactly `burst` records are due
        // now and the next one a period later.
        let bucket = self.offset(self.burst - 1);
        if now
            .checked_duration_since(due)
            .is_some_and(|late| late > bucket)
        {
            self.start = now.checked_sub(bucket).unwrap_or(now);
            self.released = 0;
            due = self.start;
        }
        self.released += 1;
        Some(due)
    }

    /// Waits until the next record may go.
    pub(crate) async fn tick(&mut self) {
        if let Some(due) = self.release(Instant::now()) {
            tokio::time::sleep_until(due).await;
        }
    }

    fn due(&self, n: u64) -> Instant {
        self.start
            .checked_add(self.offset(n))
            .unwrap_or_else(|| self.start + Duration::from_secs(86_400 * 365))
    }

    fn offset(&self, n: u64) -> Duration {
        #[allow(clippy::cast_precision_loss)] // exact below 2^52 records
        let seconds = n as f64 / self.rate;
        Duration::try_from_secs_f64(seconds).unwrap_or(Duration::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What [`Pacer::tick`] does, on a simulated clock: the time after waiting at `now`.
    fn tick(pacer: &mut Pacer, now: Instant) -> Instant {
        pacer.release(now).map_or(now, |due| due.max(now))
    }

    #[test]
    fn hundred_per_second_takes_one_second_for_101_records() {
        let t0 = Instant::now();
        let mut pacer = Pacer::new(100.0, t0);
        let mut now = t0;
        for _ in 0..=100 {
            now = tick(&mut pacer, now);
        }
        assert_eq!(now - t0, Duration::from_secs(1));
    }

    #[test]
    fn work_between_ticks_does_not_make_the_schedule_drift() {
        let t0 = Instant::now();
        let mut pacer = Pacer::new(100.0, t0);
        let mut now = t0;
        for n in 0..50u32 {
            now = tick(&mut pacer, now);
            assert_eq!(now - t0, Duration::from_millis(10) * n, "record {n}");
            // 3 ms of work per record: a sleeping ticker would drift to 13 ms per record.
            now += Duration::from_millis(3);
        }
    }

    #[test]
    fn a_stall_allows_at_most_one_bucket_of_catch_up() {
        let t0 = Instant::now();
        let mut pacer = Pacer::new(10.0, t0);
        let mut now = t0;
        for _ in 0..10 {
            now = tick(&mut pacer, now);
        }
        assert_eq!(now - t0, Duration::from_millis(900));
        now += Duration::from_secs(5);
        let stalled = now;
        // One bucket (10 records) goes at once, then the rate applies again.
        for _ in 0..10 {
            now = tick(&mut pacer, now);
        }
        assert_eq!(now, stalled);
        now = tick(&mut pacer, now);
        assert_eq!(now - stalled, Duration::from_millis(100));
    }

    #[test]
    fn a_short_delay_is_caught_up_fully() {
        let t0 = Instant::now();
        let mut pacer = Pacer::new(10.0, t0);
        let mut now = tick(&mut pacer, t0);
        now += Duration::from_millis(350);
        // Records 1..=3 were due at 100, 200 and 300 ms: they go now; record 4 at 400 ms.
        for _ in 0..3 {
            now = tick(&mut pacer, now);
        }
        assert_eq!(now - t0, Duration::from_millis(350));
        now = tick(&mut pacer, now);
        assert_eq!(now - t0, Duration::from_millis(400));
    }

    #[test]
    fn fractional_rates_wait_longer_than_a_second() {
        let t0 = Instant::now();
        let mut pacer = Pacer::new(0.5, t0);
        let now = tick(&mut pacer, t0);
        assert_eq!(tick(&mut pacer, now) - t0, Duration::from_secs(2));
    }

    #[tokio::test]
    async fn tick_sleeps_until_the_record_is_due() {
        let t0 = Instant::now();
        let mut pacer = Pacer::new(200.0, t0);
        for _ in 0..=4 {
            pacer.tick().await;
        }
        // Record 4 is due 20 ms after record 0; a sleep never ends early.
        assert!(
            t0.elapsed() >= Duration::from_millis(20),
            "{:?}",
            t0.elapsed()
        );
    }

    #[test]
    fn rate_zero_never_waits() {
        let now = Instant::now();
        let mut pacer = Pacer::new(0.0, now);
        assert!((0..1000).all(|_| pacer.release(now).is_none()));
    }
}
