//! The `{"$binary":…}` string form arrives from other users: decode must never panic, and what
//! decodes must re-encode to something that decodes to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use otrd::rocketchat::ejson;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(bytes) = ejson::decode_binary_string(text) {
            let again = ejson::decode_binary_string(&ejson::encode_binary_string(&bytes));
            assert_eq!(again.ok(), Some(bytes));
        }
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(text) {
            let _ = ejson::decode_date(&v);
            let _ = ejson::decode_binary(&v);
        }
    }
});
