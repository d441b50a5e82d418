//! A scoped thread pool for independent fits: results come back in job order, so what is
//! computed never depends on scheduling.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Runs `f` over `jobs` on all cores and returns the results in job order; the first error in job
/// order wins. A panicking job re-panics here.
///
/// # Errors
/// The first `Err` in job order.
pub(crate) fn map<J: Sync, R: Send, E: Send>(
    jobs: &[J],
    f: impl Fn(&J) -> Result<R, E> + Sync,
) -> Result<Vec<R>, E> {
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(jobs.len().max(1));
    let next = AtomicUsize::new(0);
    let mut done: Vec<(usize, Result<R, E>)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                s.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(job) = jobs.get(i) else { break mine };
                        mine.push((i, f(job)));
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    });
    done.sort_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, r)| r).collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn results_keep_job_order_and_the_first_error_wins() {
        let jobs: Vec<u32> = (0..100).collect();
        let squares = map(&jobs, |&j| Ok::<_, String>(j * j)).unwrap();
        assert_eq!(squares, jobs.iter().map(|j| j * j).collect::<Vec<_>>());
        let err = map(&jobs, |&j| if j % 30 == 29 { Err(j) } else { Ok(j) }).unwrap_err();
        assert_eq!(err, 29);
        assert_eq!(
            map(&[] as &[u32], |&j| Ok::<_, ()>(j)).unwrap(),
            Vec::<u32>::new()
        );
    }
}
