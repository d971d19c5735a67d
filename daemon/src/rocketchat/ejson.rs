//! EJSON, the JSON dialect Meteor speaks on DDP: dates as `{"$date": ms}` and bytes as
//! `{"$binary": "<std base64>"}`.
//!
//! Also the *string* form the stock OTR client puts into message fields: the JSON text
//! `{"$binary":"…"}` itself travels as a string (PROTOCOL §1.5), so it is encoded and decoded here
//! byte for byte the way `JSON.stringify(EJSON.toJSONValue(bytes))` writes it.

use base64::alphabet::STANDARD;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;
use serde_json::{json, Map, Value};

/// Standard alphabet, writes padding, accepts input with or without it.
const B64: GeneralPurpose = GeneralPurpose::new(
    &STANDARD,
    GeneralPurposeConfig::new()
        .with_encode_padding(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Why an EJSON value could not be read. Never carries the input (it may be ciphertext or worse).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EjsonError {
    /// The text is not JSON.
    #[error("EJSON text is not valid JSON")]
    NotJson,
    /// Not an object with exactly the one expected key.
    #[error("expected an EJSON {{\"{0}\": …}} object with no other members")]
    WrongShape(&'static str),
    /// The `$binary` member is not valid base64.
    #[error("the $binary member is not valid base64")]
    BadBase64,
    /// The `$date` member is not a finite number of milliseconds.
    #[error("the $date member is not a number of milliseconds")]
    BadDate,
}

/// `{"$date": ms}`.
pub fn date_value(ms: i64) -> Value {
    json!({ "$date": ms })
}

/// Reads `{"$date": ms}` (integer or float milliseconds; Meteor writes integers).
pub fn decode_date(v: &Value) -> Result<i64, EjsonError> {
    let inner = single_member(v, "$date")?;
    if let Some(ms) = inner.as_i64() {
        return Ok(ms);
    }
    match inner.as_f64() {
        Some(f) if f.is_finite() && f.abs() < 9.0e15 => Ok(f as i64),
        _ => Err(EjsonError::BadDate),
    }
}

/// `{"$binary": "<base64>"}` as a JSON value.
pub fn binary_value(bytes: &[u8]) -> Value {
    json!({ "$binary": B64.encode(bytes) })
}

/// Reads `{"$binary": "<base64>"}` (padding optional).
pub fn decode_binary(v: &Value) -> Result<Vec<u8>, EjsonError> {
    let inner = single_member(v, "$binary")?;
    let text = inner.as_str().ok_or(EjsonError::WrongShape("$binary"))?;
    B64.decode(text).map_err(|_| EjsonError::BadBase64)
}

/// The stock client's string form: the JSON text `{"$binary":"<base64>"}`, no spaces.
pub fn encode_binary_string(bytes: &[u8]) -> String {
    // Built by hand so the output never depends on a serializer's spacing choices; base64 needs
    // no JSON escaping.
    format!("{{\"$binary\":\"{}\"}}", B64.encode(bytes))
}

/// Parses the string form `{"$binary":"…"}` back to bytes: a single-member object whose value
/// is valid base64.
pub fn decode_binary_string(s: &str) -> Result<Vec<u8>, EjsonError> {
    let v: Value = serde_json::from_str(s).map_err(|_| EjsonError::NotJson)?;
    decode_binary(&v)
}

fn single_member<'a>(v: &'a Value, key: &'static str) -> Result<&'a Value, EjsonError> {
    let obj: &Map<String, Value> = v.as_object().ok_or(EjsonError::WrongShape(key))?;
    if obj.len() != 1 {
        return Err(EjsonError::WrongShape(key));
    }
    obj.get(key).ok_or(EjsonError::WrongShape(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_string_matches_the_stock_form() {
        assert_eq!(
            encode_binary_string(&[0, 1, 2, 3]),
            r#"{"$binary":"AAECAw=="}"#
        );
        assert_eq!(encode_binary_string(&[]), r#"{"$binary":""}"#);
    }

    #[test]
    fn binary_string_round_trips_and_accepts_missing_padding() {
        let bytes: Vec<u8> = (0u8..=255).collect();
        assert_eq!(
            decode_binary_string(&encode_binary_string(&bytes)),
            Ok(bytes)
        );
        assert_eq!(
            decode_binary_string(r#"{"$binary":"AAECAw"}"#),
            Ok(vec![0, 1, 2, 3])
        );
        assert_eq!(
            decode_binary_string(r#" { "$binary" : "AAECAw==" } "#),
            Ok(vec![0, 1, 2, 3])
        );
    }

    #[test]
    fn binary_string_rejects_other_shapes() {
        assert_eq!(decode_binary_string("AAECAw=="), Err(EjsonError::NotJson));
        assert_eq!(
            decode_binary_string(r#"{"$binary":"AAECAw==","x":1}"#),
            Err(EjsonError::WrongShape("$binary"))
        );
        assert_eq!(
            decode_binary_string(r#"{"$binary":5}"#),
            Err(EjsonError::WrongShape("$binary"))
        );
        assert_eq!(
            decode_binary_string(r#"["$binary"]"#),
            Err(EjsonError::WrongShape("$binary"))
        );
        assert_eq!(
            decode_binary_string(r#"{"$binary":"A!=="}"#),
            Err(EjsonError::BadBase64)
        );
        assert_eq!(
            decode_binary_string(r#"{"$binary":"AAECA"}"#),
            Err(EjsonError::BadBase64)
        );
    }

    #[test]
    fn dates_round_trip() {
        assert_eq!(
            decode_date(&date_value(1_735_732_800_456)),
            Ok(1_735_732_800_456)
        );
        assert_eq!(
            decode_date(&json!({"$date": 1.5e12})),
            Ok(1_500_000_000_000)
        );
        assert_eq!(
            decode_date(&json!({"$date": null})),
            Err(EjsonError::BadDate)
        );
        assert_eq!(
            decode_date(&json!({"$date": 1, "x": 2})),
            Err(EjsonError::WrongShape("$date"))
        );
    }

    #[test]
    fn binary_values_round_trip() {
        let v = binary_value(b"hello");
        assert_eq!(v, json!({"$binary": "aGVsbG8="}));
        assert_eq!(decode_binary(&v), Ok(b"hello".to_vec()));
    }
}
