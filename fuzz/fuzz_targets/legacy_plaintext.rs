//! What a stock peer encrypts is chosen by that peer: the hand-written fast paths for the legacy
//! scheme's envelope (`{"$binary":…}`) and inner message JSON must never panic, and a message
//! that parses must survive our writer and parser unchanged (the writer's escaping and the
//! canonical reader agree with the general `serde_json` path on everything they accept).
#![no_main]

use libfuzzer_sys::fuzz_target;
use otrd::otr::legacy::{cipher, InnerMessage};
use otrd::secure::SecretBytes;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = cipher::decode_envelope(text);
    }
    let Ok(message) = InnerMessage::parse(&SecretBytes::new(data.to_vec())) else {
        return;
    };
    let written = message.to_plaintext().expect("a parsed message writes");
    let again = InnerMessage::parse(&written).expect("what we write parses");
    assert_eq!(again.id, message.id);
    assert_eq!(again.text.expose(), message.text.expose());
    assert_eq!(again.user_id, message.user_id);
    assert_eq!(again.ack, message.ack);
    assert_eq!(again.ts_ms, message.ts_ms);
    // Written once more, byte for byte the same: the writer is deterministic and canonical.
    assert_eq!(again.to_plaintext().expect("writes").expose(), written.expose());
});
