//! Any text the server might send must decode to a frame or an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(frame) = otrd::rocketchat::ddp::decode_server_frame(text) {
            // Exercise the error helpers on whatever came out.
            if let otrd::rocketchat::ServerFrame::Result { error: Some(e), .. } = frame {
                let _ = (e.code(), e.is_rate_limited(), e.time_to_reset_ms(), e.to_string());
            }
        }
    }
});
