//! Fuzzes protobuf decoding of the end-to-end `Message` and the handshake frame, the two schemas that carry
//! bytes from the network most often: decoding may fail, but never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use whatsapp_proto::ProtoMessage;

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = whatsapp_proto::e2e::Message::decode(data) {
        // What decodes must encode again.
        let _ = message.encode_to_vec();
    }
    let _ = whatsapp_proto::handshake::HandshakeMessage::decode(data);
});
