//! Decodes records another Avro implementation wrote and writes them back, so
//! `interop/test_avro_spec.py` can check both directions against fastavro and Java Avro.
//!
//!     cargo run --quiet --locked -p heart-schemas --example avro_roundtrip -- [--schema ID=PATH]...
//!
//! Each `--schema` plays a Schema Registry entry: a Confluent-framed record with that id is read
//! with that writer schema (resolved to ours). Each stdin line is `RECORD FRAMING HEX`, where
//! RECORD is a schema file stem (`patient_record`, `prediction`, `dead_letter`, `model_version`)
//! and FRAMING is how to write it back (`single` or `confluent:ID`). Each stdout line is
//! `ok HOW HEX`, HOW being the header's verdict (`current`, `legacy` or `registry`), or
//! `err REASON MESSAGE` with the dead-letter reason code.

use std::collections::HashMap;
use std::io::BufRead;

use heart_schemas::codec::hex;
use heart_schemas::{
    AvroRecord, DeadLetter, Framed, Framing, ModelVersion, PatientRecord, Prediction, Reason,
    WriterSchema,
};

fn main() -> Result<(), String> {
    let mut registry = HashMap::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let entry = match arg.as_str() {
            "--schema" => args.next().ok_or("--schema needs ID=PATH")?,
            other => return Err(format!("unknown argument {other}")),
        };
        let (id, path) = entry.split_once('=').ok_or("--schema needs ID=PATH")?;
        let id: u32 = id.parse().map_err(|e| format!("schema id {id}: {e}"))?;
        let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
        registry.insert(id, text);
    }
    for line in std::io::stdin().lock().lines() {
        let line = line.map_err(|e| e.to_string())?;
        let mut words = line.split_whitespace();
        let (Some(record), Some(framing), Some(value)) = (words.next(), words.next(), words.next())
        else {
            return Err(format!("expected RECORD FRAMING HEX, got {line:?}"));
        };
        let framing = match framing.strip_prefix("confluent:") {
            Some(id) => Framing::Confluent {
                id: id.parse().map_err(|e| format!("framing {framing}: {e}"))?,
            },
            None if framing == "single" => Framing::SingleObject,
            None => return Err(format!("unknown framing {framing}")),
        };
        let bytes = unhex(value)?;
        let answer = match record {
            "patient_record" => roundtrip::<PatientRecord>(&bytes, framing, &registry),
            "prediction" => roundtrip::<Prediction>(&bytes, framing, &registry),
            "dead_letter" => roundtrip::<DeadLetter>(&bytes, framing, &registry),
            "model_version" => roundtrip::<ModelVersion>(&bytes, framing, &registry),
            other => return Err(format!("unknown record {other}")),
        };
        println!("{answer}");
    }
    Ok(())
}

/// Decodes `bytes` as an `R` the way a consumer would and encodes it again with `framing`.
fn roundtrip<R: AvroRecord>(
    bytes: &[u8],
    framing: Framing,
    registry: &HashMap<u32, String>,
) -> String {
    let decoded = R::frame(bytes).and_then(|framed| match framed {
        Framed::Current(body) => R::decode_body(body).map(|r| ("current", r)),
        Framed::Legacy(body) => R::decode_body(body).map(|r| ("legacy", r)),
        Framed::Earlier { index, body } => R::decode_earlier(index, body).map(|r| ("earlier", r)),
        Framed::Registry { id, body } => match registry.get(&id) {
            Some(text) => WriterSchema::<R>::parse(text)
                .and_then(|writer| writer.decode(body))
                .map(|r| ("registry", r)),
            None => R::decode(bytes).map(|r| ("registry", r)),
        },
    });
    match decoded {
        Err(e) => format!("err {} {e}", Reason::for_decode(&e)),
        Ok((how, record)) => {
            let mut out = Vec::new();
            match record.encode_framed_into(framing, &mut out) {
                Ok(()) => format!("ok {how} {}", hex(&out)),
                Err(e) => format!("err encode {e}"),
            }
        }
    }
}

fn unhex(s: &str) -> Result<Vec<u8>, String> {
    if !s.len().is_multiple_of(2) {
        return Err(format!("odd-length hex {s}"));
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).map_err(|e| format!("hex {s}: {e}")))
        .collect()
}
