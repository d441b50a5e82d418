//! W3C Trace Context (`traceparent`) on Kafka records and HTTP requests, so one patient's record
//! can be followed from the producer through the scorer to its prediction or dead letter.
//!
//! Format (version 00): `00-<trace-id: 32 hex>-<parent-id: 16 hex>-<flags: 2 hex>`, lowercase,
//! neither id all zeros (<https://www.w3.org/TR/trace-context/#traceparent-header>). Each hop
//! keeps the trace id and flags and writes its own span id as the parent of the next.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

/// The header (Kafka) and HTTP header name.
pub const HEADER: &str = "traceparent";

/// A parsed `traceparent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceParent {
    /// The trace, the same on every hop.
    pub trace_id: u128,
    /// The span that sent this record or request.
    pub parent_id: u64,
    /// Trace flags; bit 0 = sampled.
    pub flags: u8,
}

impl TraceParent {
    /// Parses a version-00 `traceparent`; `None` for anything else (a receiver then starts no
    /// trace of its own from it, as the specification says to ignore an invalid one).
    pub fn parse(value: &[u8]) -> Option<Self> {
        let text = std::str::from_utf8(value).ok()?;
        let mut parts = text.split('-');
        let (version, trace, parent, flags) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || version != "00" {
            return None;
        }
        let hex = |s: &str, len: usize| {
            (s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
                .then(|| u128::from_str_radix(s, 16).ok())
                .flatten()
        };
        let trace_id = hex(trace, 32)?;
        let parent_id = u64::try_from(hex(parent, 16)?).ok()?;
        let flags = u8::try_from(hex(flags, 2)?).ok()?;
        (trace_id != 0 && parent_id != 0).then_some(Self {
            trace_id,
            parent_id,
            flags,
        })
    }

    /// A new trace, sampled, whose first span is `span_id`.
    pub fn start(trace_id: u128, span_id: u64) -> Self {
        Self {
            trace_id: trace_id.max(1),
            parent_id: span_id.max(1),
            flags: 1,
        }
    }

    /// The context a hop passes on: the same trace and flags, its own span as the parent.
    pub fn child(&self, span_id: u64) -> Self {
        Self {
            parent_id: span_id.max(1),
            ..*self
        }
    }

    /// The trace id as 32 lowercase hex digits (the form logs and trace backends show).
    pub fn trace_id_hex(&self) -> String {
        format!("{:032x}", self.trace_id)
    }
}

impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "00-{:032x}-{:016x}-{:02x}",
            self.trace_id, self.parent_id, self.flags
        )
    }
}

/// Span ids for a process: distinct, never zero and cheap (a counter mixed by splitmix64 from a
/// per-process seed); not secret, which span ids need not be.
#[derive(Debug)]
pub struct SpanIds {
    next: AtomicU64,
}

impl SpanIds {
    /// The process's generator, for code that has no state of its own to keep one in.
    pub fn process() -> &'static Self {
        static IDS: std::sync::LazyLock<SpanIds> = std::sync::LazyLock::new(SpanIds::new);
        &IDS
    }

    /// Ids seeded from the clock and the process id, so two processes differ.
    pub fn new() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Self {
            next: AtomicU64::new(nanos ^ (u64::from(std::process::id()) << 32)),
        }
    }

    /// The next id.
    pub fn next(&self) -> u64 {
        let mut z = self
            .next
            .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
            .wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)).max(1)
    }

    /// A new trace id: two ids.
    pub fn trace_id(&self) -> u128 {
        (u128::from(self.next()) << 64) | u128::from(self.next())
    }
}

impl Default for SpanIds {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn the_specification_example_round_trips() {
        let t = TraceParent::parse(EXAMPLE.as_bytes()).unwrap();
        assert_eq!(t.trace_id, 0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736);
        assert_eq!(t.parent_id, 0x00f0_67aa_0ba9_02b7);
        assert_eq!(t.flags, 1);
        assert_eq!(t.to_string(), EXAMPLE);
        assert_eq!(t.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        let c = t.child(0xabc);
        assert_eq!(
            c.to_string(),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000abc-01"
        );
    }

    #[test]
    fn invalid_values_are_ignored() {
        for bad in [
            "",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-+bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert_eq!(TraceParent::parse(bad.as_bytes()), None, "{bad:?}");
        }
        assert_eq!(TraceParent::parse(&[0xff, 0xfe]), None);
    }

    #[test]
    fn span_ids_differ_and_are_never_zero() {
        let ids = SpanIds::new();
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..10_000 {
            let id = ids.next();
            assert_ne!(id, 0);
            assert!(seen.insert(id));
        }
        let t = TraceParent::start(ids.trace_id(), ids.next());
        assert_eq!(TraceParent::parse(t.to_string().as_bytes()), Some(t));
    }
}
