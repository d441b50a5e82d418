//! Turning a rejected Kafka record into a dead letter that keeps its original bytes.

use heart_schemas::DeadLetter;

use crate::score::Rejection;

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
}

/// Builds the dead letter for `rejection`.
pub fn dead_letter(source: Source<'_>, rejection: &Rejection, now_ms: i64) -> DeadLetter {
    DeadLetter {
        original_key: source.key.map(<[u8]>::to_vec),
        original_value: source.value.map(<[u8]>::to_vec),
        source_topic: source.topic.to_owned(),
        source_partition: source.partition,
        source_offset: source.offset,
        reason: rejection.reason.code().to_owned(),
        message: rejection.message.clone(),
        failed_at: now_ms,
    }
}

#[cfg(test)]
mod tests {
    use heart_schemas::Reason;

    use super::*;

    #[test]
    fn keeps_bytes_position_and_reason_code() {
        let r = Rejection {
            reason: Reason::OutOfRange,
            message: "age = 500 is outside the allowed range 1..=120".into(),
        };
        let d = dead_letter(
            Source {
                topic: "patients",
                partition: 2,
                offset: 17,
                key: Some(b"p-9"),
                value: Some(&[1, 2, 3]),
            },
            &r,
            99,
        );
        assert_eq!(d.original_key.as_deref(), Some(&b"p-9"[..]));
        assert_eq!(d.original_value.as_deref(), Some(&[1u8, 2, 3][..]));
        assert_eq!((d.source_partition, d.source_offset), (2, 17));
        assert_eq!(d.reason, "out_of_range");
        assert_eq!(d.failed_at, 99);
    }
}
