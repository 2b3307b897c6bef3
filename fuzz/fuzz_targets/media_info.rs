//! Fuzzes the readers of media files a program hands the client to send: mimetype sniffing, image dimensions and
//! thumbnails, MP4/MOV boxes, Ogg Opus, WAV and MP3 durations. Each may find nothing but none may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use whatsapp_core::media_info;

fuzz_target!(|data: &[u8]| {
    let _ = media_info::mimetype(data);
    let _ = media_info::mp4_info(data);
    let _ = media_info::ogg_opus_duration(data);
    let _ = media_info::wav_duration(data);
    let _ = media_info::mp3_duration(data);
    let _ = media_info::duration(data);
    let _ = media_info::is_animated_webp(data);
    // Decoding an image is costly; dimensions are read from the header first, as the client does.
    if data.len() < 64 * 1024 {
        let _ = media_info::image_dimensions(data);
        let _ = media_info::image_info(data);
    }
});
