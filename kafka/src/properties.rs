//! `--kafka-property key=value` / `KAFKA_PROPERTIES=key=value,key=value` parsing.

use thiserror::Error;

/// A `--kafka-property` piece that is not `key=value`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("--kafka-property / KAFKA_PROPERTIES: expected key=value, got {piece:?}")]
pub struct PropertyError {
    /// The offending piece.
    pub piece: String,
}

/// Parses property pieces into key/value pairs.
///
/// The environment variable is split on commas, which also splits values such as
/// `debug=eos,msg`; so a piece without `=` continues the previous value. Empty pieces are
/// skipped. A first piece without `=`, or an empty key, is an error rather than a guess.
///
/// # Errors
/// [`PropertyError`] naming the first piece that is neither `key=value` nor a continuation.
pub fn parse(pieces: &[String]) -> Result<Vec<(String, String)>, PropertyError> {
    let mut pairs: Vec<(String, String)> = Vec::new();
    // An empty variable (`KAFKA_PROPERTIES=`) or a trailing comma sets nothing.
    for piece in pieces.iter().filter(|p| !p.trim().is_empty()) {
        match (piece.split_once('='), pairs.last_mut()) {
            (Some((key, value)), _) if !key.trim().is_empty() => {
                pairs.push((key.trim().to_owned(), value.trim().to_owned()));
            }
            (None, Some((_, value))) => {
                value.push(',');
                value.push_str(piece.trim());
            }
            _ => {
                return Err(PropertyError {
                    piece: piece.clone(),
                });
            }
        }
    }
    Ok(pairs)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn pieces(p: &[&str]) -> Vec<String> {
        p.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn a_piece_without_equals_continues_the_previous_value() {
        let got = parse(&pieces(&["debug=eos", "msg", "linger.ms = 3"])).unwrap();
        assert_eq!(
            got,
            vec![
                ("debug".to_owned(), "eos,msg".to_owned()),
                ("linger.ms".to_owned(), "3".to_owned())
            ]
        );
    }

    #[test]
    fn malformed_pieces_are_errors() {
        for bad in [&["novalue"][..], &["=x"]] {
            assert!(parse(&pieces(bad)).is_err(), "{bad:?}");
        }
        assert_eq!(parse(&[]).unwrap(), vec![]);
        assert_eq!(parse(&pieces(&["", "a=b", " "])).unwrap().len(), 1);
    }
}
