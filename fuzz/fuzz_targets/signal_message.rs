//! Fuzzes the 1:1 message parsers (`SignalMessage`, `PreKeySignalMessage`): parsing may fail, but never panic,
//! and what parses keeps its exact wire bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use whatsapp_signal::{PreKeySignalMessage, SignalMessage};

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = SignalMessage::deserialize(data) {
        assert_eq!(message.serialized(), data);
    }
    if let Ok(message) = PreKeySignalMessage::deserialize(data) {
        assert_eq!(message.serialized(), data);
        let _ = message.message().counter();
    }
});
