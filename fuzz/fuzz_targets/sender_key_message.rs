//! Fuzzes the group message parsers (`SenderKeyMessage`, `SenderKeyDistributionMessage`) and the signature check
//! on what parses: failures are errors, never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use whatsapp_signal::{PublicKey, SenderKeyDistributionMessage, SenderKeyMessage};

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = SenderKeyMessage::deserialize(data) {
        assert_eq!(message.serialized(), data);
        let _ = message.verify_signature(&PublicKey::from_bytes([9; 32]));
    }
    if let Ok(message) = SenderKeyDistributionMessage::deserialize(data) {
        let _ = message.signing_key().verify_signature(data, data);
    }
});
