//! The Avro specification's Parsing Canonical Form of a schema and its CRC-64-AVRO (Rabin)
//! fingerprint, the name a single-object header gives the writer's schema.
//!
//! Written here from the specification rather than taken from apache-avro: apache-avro 0.21's
//! canonical form keeps `{"type":"long"}` for a logical type where the specification strips it
//! to `"long"`, so its fingerprints differ from Java Avro's and fastavro's for every schema with a
//! timestamp. See <https://avro.apache.org/docs/1.12.0/specification/#parsing-canonical-form-for-schemas>.

use serde_json::{Map, Value};
use thiserror::Error;

/// Why a schema's JSON has no canonical form: it is not a schema.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("not an Avro schema: {detail}")]
pub struct CanonicalFormError {
    /// What was wrong, naming the attribute.
    pub detail: String,
}

fn invalid(detail: impl Into<String>) -> CanonicalFormError {
    CanonicalFormError {
        detail: detail.into(),
    }
}

const PRIMITIVES: [&str; 8] = [
    "null", "boolean", "int", "long", "float", "double", "bytes", "string",
];

/// The Parsing Canonical Form of a schema given as JSON.
///
/// Applies the specification's rules: PRIMITIVES (`{"type":"int"}` becomes `"int"`, whatever
/// other attributes it has, so logical types vanish), FULLNAMES (names and references to named
/// types are written in full, namespaces dropped), STRIP (only `type name fields symbols items
/// values size` are kept), ORDER (in that order, `name` first), STRINGS (no escapes beyond the
/// JSON minimum), INTEGERS (no leading zeros) and WHITESPACE (none).
///
/// # Errors
/// [`CanonicalFormError`] when the JSON is not shaped like a schema (a type that is not a
/// string, a record without `fields`, a fixed without `size`, ...).
pub fn parsing_canonical_form(schema: &Value) -> Result<String, CanonicalFormError> {
    let mut out = String::with_capacity(512);
    write_schema(schema, "", &mut out)?;
    Ok(out)
}

fn write_schema(
    schema: &Value,
    namespace: &str,
    out: &mut String,
) -> Result<(), CanonicalFormError> {
    match schema {
        Value::String(name) => {
            if PRIMITIVES.contains(&name.as_str()) {
                write_string(name, out);
            } else {
                write_string(&fullname(name, None, namespace), out);
            }
            Ok(())
        }
        Value::Array(branches) => {
            out.push('[');
            for (i, branch) in branches.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_schema(branch, namespace, out)?;
            }
            out.push(']');
            Ok(())
        }
        Value::Object(attrs) => write_complex(attrs, namespace, out),
        other => Err(invalid(format!("a schema cannot be {other}"))),
    }
}

fn write_complex(
    attrs: &Map<String, Value>,
    namespace: &str,
    out: &mut String,
) -> Result<(), CanonicalFormError> {
    let ty = match attrs.get("type") {
        Some(Value::String(ty)) => ty.as_str(),
        // `{"type": <schema>}` is the schema it wraps.
        Some(inner @ (Value::Object(_) | Value::Array(_))) => {
            return write_schema(inner, namespace, out);
        }
        _ => return Err(invalid("an object schema needs a string \"type\"")),
    };
    if PRIMITIVES.contains(&ty) {
        write_string(ty, out);
        return Ok(());
    }
    match ty {
        "record" | "error" => {
            let name = write_name(attrs, namespace, out)?;
            // Java Avro writes an error as a record; the wire format is the same.
            out.push_str(r#","type":"record","fields":["#);
            let fields = attrs
                .get("fields")
                .and_then(Value::as_array)
                .ok_or_else(|| invalid(format!("record {name} needs a \"fields\" array")))?;
            let inner_namespace = namespace_of(&name);
            for (i, field) in fields.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                let field_name = field
                    .get("name")
                    .and_then(Value::as_str)
                    .ok_or_else(|| invalid(format!("a field of {name} has no \"name\"")))?;
                let field_type = field.get("type").ok_or_else(|| {
                    invalid(format!("field {field_name} of {name} has no \"type\""))
                })?;
                // Field names are not namespaced.
                out.push_str(r#"{"name":"#);
                write_string(field_name, out);
                out.push_str(r#","type":"#);
                write_schema(field_type, inner_namespace, out)?;
                out.push('}');
            }
            out.push_str("]}");
        }
        "enum" => {
            let name = write_name(attrs, namespace, out)?;
            out.push_str(r#","type":"enum","symbols":["#);
            let symbols = attrs
                .get("symbols")
                .and_then(Value::as_array)
                .ok_or_else(|| invalid(format!("enum {name} needs a \"symbols\" array")))?;
            for (i, symbol) in symbols.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                let symbol = symbol
                    .as_str()
                    .ok_or_else(|| invalid(format!("a symbol of enum {name} is not a string")))?;
                write_string(symbol, out);
            }
            out.push_str("]}");
        }
        "array" => {
            out.push_str(r#"{"type":"array","items":"#);
            let items = attrs
                .get("items")
                .ok_or_else(|| invalid("an array needs \"items\""))?;
            write_schema(items, namespace, out)?;
            out.push('}');
        }
        "map" => {
            out.push_str(r#"{"type":"map","values":"#);
            let values = attrs
                .get("values")
                .ok_or_else(|| invalid("a map needs \"values\""))?;
            write_schema(values, namespace, out)?;
            out.push('}');
        }
        "fixed" => {
            let name = write_name(attrs, namespace, out)?;
            let size = attrs
                .get("size")
                .and_then(Value::as_u64)
                .ok_or_else(|| invalid(format!("fixed {name} needs a non-negative \"size\"")))?;
            // Formatting the parsed number is the INTEGERS rule: no leading zeros.
            out.push_str(&format!(r#","type":"fixed","size":{size}}}"#));
        }
        // `{"type": "some.Name"}` refers to a named type defined earlier.
        reference => write_string(&fullname(reference, None, namespace), out),
    }
    Ok(())
}

/// Writes `{"name":"<fullname>"` for a named type and returns the fullname.
fn write_name(
    attrs: &Map<String, Value>,
    namespace: &str,
    out: &mut String,
) -> Result<String, CanonicalFormError> {
    let name = attrs
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("a named type needs a string \"name\""))?;
    let explicit = attrs.get("namespace").and_then(Value::as_str);
    let full = fullname(name, explicit, namespace);
    out.push_str(r#"{"name":"#);
    write_string(&full, out);
    Ok(full)
}

/// The specification's fullname: a dotted name is already full; otherwise the type's own
/// `namespace` attribute, else the enclosing one, is put in front (an empty namespace is none).
fn fullname(name: &str, explicit: Option<&str>, enclosing: &str) -> String {
    if name.contains('.') {
        return name.to_owned();
    }
    match explicit.unwrap_or(enclosing) {
        "" => name.to_owned(),
        ns => format!("{ns}.{name}"),
    }
}

/// The namespace a named type's fullname gives the types nested in it.
fn namespace_of(fullname: &str) -> &str {
    fullname.rsplit_once('.').map_or("", |(ns, _)| ns)
}

/// A JSON string literal with no escapes but the ones JSON requires (the STRINGS rule).
fn write_string(s: &str, out: &mut String) {
    // serde_json escapes only `"`, `\` and control characters and writes everything else,
    // `\uXXXX` escapes of the input included, as UTF-8.
    out.push_str(&Value::String(s.to_owned()).to_string());
}

/// The CRC-64-AVRO empty fingerprint, which is also the polynomial.
const EMPTY: u64 = 0xc15d_213a_a4d7_a795;

/// The specification's 256-entry table, computed at compile time.
const TABLE: [u64; 256] = {
    let mut table = [0u64; 256];
    let mut i = 0;
    while i < 256 {
        let mut fp = i as u64;
        let mut j = 0;
        while j < 8 {
            fp = (fp >> 1) ^ (EMPTY & (fp & 1).wrapping_neg());
            j += 1;
        }
        table[i] = fp;
        i += 1;
    }
    table
};

/// The CRC-64-AVRO (Rabin) fingerprint of `bytes`, as the specification's `fingerprint64`
/// computes it. A single-object header holds it little-endian (`to_le_bytes`).
pub fn fingerprint64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(EMPTY, |fp, &b| {
        // The index is masked to 8 bits, so it is always in the table.
        (fp >> 8) ^ TABLE[((fp ^ u64::from(b)) & 0xff) as usize]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pcf(text: &str) -> String {
        parsing_canonical_form(&serde_json::from_str(text).unwrap()).unwrap()
    }

    fn le_hex(fp: u64) -> String {
        crate::codec::hex(&fp.to_le_bytes())
    }

    /// Values fastavro 1.13.1 gives (`fingerprint(s, "CRC-64-AVRO")`, the little-endian bytes in
    /// hex, as Java Avro's `BinaryMessageEncoder` writes them).
    #[test]
    fn fingerprint64_matches_fastavro() {
        assert_eq!(le_hex(fingerprint64(br#""int""#)), "8f5c393f1ad57572");
        assert_eq!(le_hex(fingerprint64(br#""null""#)), "8a8f25cce724dd63");
        assert_eq!(
            le_hex(fingerprint64(br#"{"name":"foo","type":"fixed","size":15}"#)),
            "04a531edc32e6018"
        );
        assert_eq!(fingerprint64(b""), EMPTY);
    }

    #[test]
    fn primitives_lose_their_attributes_logical_types_included() {
        assert_eq!(pcf(r#"{"type":"int"}"#), r#""int""#);
        assert_eq!(
            pcf(r#"{"type": "long", "logicalType": "timestamp-millis"}"#),
            r#""long""#
        );
        assert_eq!(
            pcf(r#"["null", {"type":"string"}]"#),
            r#"["null","string"]"#
        );
    }

    #[test]
    fn names_are_full_and_attributes_ordered_and_stripped() {
        let text = r#"{
            "doc": "d", "fields": [
                {"type": {"symbols": ["A", "B"], "name": "E", "type": "enum", "default": "A"},
                 "name": "e", "default": "A", "doc": "x", "order": "descending"},
                {"name": "again", "type": "E"},
                {"name": "f", "type": {"type": "fixed", "size": 16, "name": "x.F"}},
                {"name": "m", "type": {"values": {"type": "array", "items": "F"}, "type": "map"}}
            ],
            "namespace": "ns", "type": "record", "name": "R", "aliases": ["Q"]
        }"#;
        assert_eq!(
            pcf(text),
            concat!(
                r#"{"name":"ns.R","type":"record","fields":["#,
                r#"{"name":"e","type":{"name":"ns.E","type":"enum","symbols":["A","B"]}},"#,
                r#"{"name":"again","type":"ns.E"},"#,
                r#"{"name":"f","type":{"name":"x.F","type":"fixed","size":16}},"#,
                // F is referred to from inside ns.R, not inside x.F, so it resolves in ns.
                r#"{"name":"m","type":{"type":"map","values":{"type":"array","items":"ns.F"}}}"#,
                "]}"
            )
        );
    }

    #[test]
    fn a_nested_named_type_inherits_its_enclosing_namespace_and_can_override_it() {
        let text = r#"{"type":"record","name":"a.R","fields":[
            {"name":"x","type":{"type":"enum","name":"E","symbols":["S"]}},
            {"name":"y","type":{"type":"enum","name":"G","namespace":"","symbols":["S"]}},
            {"name":"z","type":{"type":"error","name":"Err","namespace":"b","fields":[]}}
        ]}"#;
        assert_eq!(
            pcf(text),
            concat!(
                r#"{"name":"a.R","type":"record","fields":["#,
                r#"{"name":"x","type":{"name":"a.E","type":"enum","symbols":["S"]}},"#,
                r#"{"name":"y","type":{"name":"G","type":"enum","symbols":["S"]}},"#,
                r#"{"name":"z","type":{"name":"b.Err","type":"record","fields":[]}}"#,
                "]}"
            )
        );
    }

    #[test]
    fn strings_keep_utf8_unescaped() {
        assert_eq!(
            pcf(r#"{"type":"enum","name":"\u00e9t\u00e9","symbols":["\u0041"]}"#),
            r#"{"name":"été","type":"enum","symbols":["A"]}"#
        );
    }

    #[test]
    fn malformed_schemas_are_errors() {
        for text in [
            "1",
            r#"{"name":"R"}"#,
            r#"{"type":"record","name":"R"}"#,
            r#"{"type":"fixed","name":"F","size":-1}"#,
            r#"{"type":"enum","name":"E","symbols":[1]}"#,
        ] {
            assert!(
                parsing_canonical_form(&serde_json::from_str(text).unwrap()).is_err(),
                "{text}"
            );
        }
    }
}
