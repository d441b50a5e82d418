//! Turning a rejected Kafka record into a dead letter that keeps its original bytes — or, when
//! they cannot be written at their size, as many of them as fit.

use heart_schemas::{DeadLetter, Reason};

use crate::score::Rejection;

/// Bytes a dead-letter record may need beyond its key and value bytes: the Avro fields and
/// single-object header, the Kafka record framing and the reason header, with margin.
pub const RECORD_OVERHEAD: usize = 1024;

/// Longest detail message kept in a dead letter (a message naming a 1 MB value must not be
/// 1 MB itself).
const MAX_MESSAGE: usize = 512;

/// Where a rejected record came from, and its untouched bytes.
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    /// Input topic.
    pub topic: &'a str,
    /// Input partition.
    pub partition: i32,
    /// Input offset.
    pub offset: i64,
    /// Input key.
    pub key: Option<&'a [u8]>,
    /// Input value.
    pub value: Option<&'a [u8]>,
    /// The record's W3C trace context (`traceparent` header), if it carried a valid one.
    pub trace: Option<heart_schemas::TraceParent>,
}

/// Builds the dead letter for `rejection`, fitting the record (key twice: as the Kafka key and
/// inside the letter) into `budget` bytes. A letter that would not fit becomes
/// [`Reason::TooLarge`], keeps the first bytes of the value (then of the key) that fit, records
/// the original size and names the original reason in its message.
pub fn dead_letter(
    source: Source<'_>,
    rejection: &Rejection,
    now_ms: i64,
    budget: usize,
) -> DeadLetter {
    let key = source.key.unwrap_or_default();
    let value = source.value.unwrap_or_default();
    let needed = 2 * key.len() + value.len() + RECORD_OVERHEAD + MAX_MESSAGE;
    let mut letter = DeadLetter {
        original_key: source.key.map(<[u8]>::to_vec),
        original_value: None,
        original_value_bytes: source.value.map(|v| v.len() as i64),
        source_topic: source.topic.to_owned(),
        source_partition: source.partition,
        source_offset: source.offset,
        reason: rejection.reason.code().to_owned(),
        message: truncate(&rejection.message, MAX_MESSAGE).to_owned(),
        failed_at: now_ms,
    };
    if needed <= budget {
        letter.original_value = source.value.map(<[u8]>::to_vec);
        return letter;
    }
    let room = budget.saturating_sub(RECORD_OVERHEAD + MAX_MESSAGE);
    // Keep the key whole when it fits in half the room: it identifies the patient.
    let key_keep = key.len().min(room / 4);
    let value_keep = value.len().min(room.saturating_sub(2 * key_keep));
    letter.original_key = source.key.map(|k| k[..key_keep].to_vec());
    letter.original_value = source.value.map(|v| v[..value_keep].to_vec());
    letter.reason = Reason::TooLarge.code().to_owned();
    letter.message = truncate(
        &format!(
            "a dead letter of {needed} bytes exceeds the {budget}-byte output limit; kept {value_keep} of {} value bytes and {key_keep} of {} key bytes (rejected as {}: {})",
            value.len(),
            key.len(),
            rejection.reason.code(),
            truncate(&rejection.message, MAX_MESSAGE / 2),
        ),
        MAX_MESSAGE,
    )
    .to_owned();
    letter
}

/// The key a dead letter is written with: the original key, cut like the one inside it.
pub fn record_key<'a>(source: Source<'a>, letter: &DeadLetter) -> Option<&'a [u8]> {
    let keep = letter.original_key.as_ref().map_or(0, Vec::len);
    source.key.map(|k| &k[..keep.min(k.len())])
}

fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use heart_schemas::AvroRecord;

    use super::*;

    fn rejection() -> Rejection {
        Rejection {
            reason: Reason::OutOfRange,
            message: "age = 500 is outside the allowed range 1..=120".into(),
        }
    }

    fn source<'a>(key: &'a [u8], value: &'a [u8]) -> Source<'a> {
        Source {
            trace: None,
            topic: "patients",
            partition: 2,
            offset: 17,
            key: Some(key),
            value: Some(value),
        }
    }

    #[test]
    fn keeps_bytes_position_and_reason_code() {
        let d = dead_letter(source(b"p-9", &[1, 2, 3]), &rejection(), 99, 1_000_000);
        assert_eq!(d.original_key.as_deref(), Some(&b"p-9"[..]));
        assert_eq!(d.original_value.as_deref(), Some(&[1u8, 2, 3][..]));
        assert_eq!(d.original_value_bytes, Some(3));
        assert_eq!((d.source_partition, d.source_offset), (2, 17));
        assert_eq!(d.reason, "out_of_range");
        assert_eq!(d.failed_at, 99);
    }

    #[test]
    fn a_letter_too_large_for_the_budget_is_cut_to_fit_and_says_so() {
        let value = vec![7u8; 1_040_000];
        let budget = 1_000_000;
        let src = source(b"p-1", &value);
        let d = dead_letter(src, &rejection(), 1, budget);
        assert_eq!(d.reason, "too_large");
        assert_eq!(d.original_value_bytes, Some(1_040_000));
        let kept = d.original_value.as_ref().unwrap();
        assert!(
            kept.len() < value.len() && kept.len() > 990_000,
            "{}",
            kept.len()
        );
        assert!(kept.iter().all(|&b| b == 7));
        assert_eq!(d.original_key.as_deref(), Some(&b"p-1"[..]));
        assert!(d.message.contains("out_of_range"), "{}", d.message);
        let encoded = d.encode().unwrap();
        let key = record_key(src, &d).unwrap();
        assert!(
            encoded.len() + key.len() + 64 <= budget,
            "{}",
            encoded.len()
        );
    }

    #[test]
    fn a_huge_key_is_cut_too() {
        let key = vec![b'k'; 900_000];
        let value = vec![1u8; 900_000];
        let src = source(&key, &value);
        let d = dead_letter(src, &rejection(), 1, 1_000_000);
        let encoded = d.encode().unwrap();
        let record_key = record_key(src, &d).unwrap();
        assert!(encoded.len() + record_key.len() <= 1_000_000 - 64);
        assert_eq!(d.reason, "too_large");
    }

    #[test]
    fn messages_are_bounded_and_cut_on_char_boundaries() {
        let r = Rejection {
            reason: Reason::MalformedAvro,
            message: "é".repeat(2000),
        };
        let d = dead_letter(source(b"k", b"v"), &r, 1, 1_000_000);
        assert!(d.message.len() <= MAX_MESSAGE);
    }
}
