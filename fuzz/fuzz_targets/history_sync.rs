//! Fuzzes the streaming history-sync reader on raw and on zlib-compressed input: items may fail to decode but
//! reading never panics and ends.
#![no_main]

use libfuzzer_sys::fuzz_target;
use whatsapp_core::history::{HistoryReader, inflate};

fuzz_target!(|data: &[u8]| {
    for item in HistoryReader::new(data) {
        if item.is_err() {
            break;
        }
    }
    for item in inflate(data) {
        if item.is_err() {
            break;
        }
    }
});
