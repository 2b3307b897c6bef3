//! What a media message says about its file besides the hashes: the mimetype (read from the content, not a file
//! name), an image's dimensions and JPEG thumbnail, and the duration of audio and video where the container states
//! it cheaply.
//!
//! Everything here reads bytes a caller chose to send, but treats them as untrusted all the same: damaged or
//! truncated files give `None` or a [`MediaInfoError`], never a panic, and image decoding runs under explicit
//! size limits. Durations come from headers only: `mvhd` of MP4/MOV/3GP/M4A, the last granule position of Ogg
//! Opus, the `fmt ` and `data` chunks of WAV, and for MP3 the frame count of a Xing/Info or VBRI header, else an
//! estimate from the first frame's bitrate and the file size (exact for constant-bitrate files). Nothing is
//! decoded to measure them, and video frames are never decoded, so no video thumbnail is made here.

use std::io::Cursor;
use std::time::Duration;

use image::{DynamicImage, ImageFormat, ImageReader, Limits};

/// The fallback mimetype of content this module does not recognise.
pub const OCTET_STREAM: &str = "application/octet-stream";

/// The longest side of a JPEG thumbnail, in pixels (WhatsApp's `jpegThumbnail` previews are about this size).
pub const THUMBNAIL_SIZE: u32 = 100;

/// The JPEG quality of thumbnails: previews are small and shown blurred, so size matters more than detail.
const THUMBNAIL_QUALITY: u8 = 70;

/// The largest width or height an image may have to be decoded: above any phone camera, below sizes that exist
/// only to exhaust memory.
pub const MAX_IMAGE_SIDE: u32 = 1 << 15;

/// The most memory image decoding may take: a 64-megapixel RGBA photo fits (phone cameras bin their sensors to
/// 12-50 MP), a decompression bomb does not. A 43-byte GIF can declare a 100-megapixel canvas; decoding one took
/// seconds and 400 MB, so the budget is below that.
const MAX_IMAGE_ALLOC: u64 = 256 * 1024 * 1024;

/// Why an image's metadata could not be read.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum MediaInfoError {
    /// The data is not a JPEG, PNG, GIF or WebP image.
    #[error("not a JPEG, PNG, GIF or WebP image")]
    NotAnImage,
    /// The image is damaged or truncated.
    #[error("the image does not decode: {0}")]
    Decode(String),
    /// The image is wider or taller than [`MAX_IMAGE_SIDE`], or would take more memory to decode than allowed.
    #[error("the image is too large to decode")]
    TooLarge,
    /// The thumbnail could not be encoded.
    #[error("the thumbnail does not encode: {0}")]
    Encode(String),
}

/// An image's dimensions and the JPEG thumbnail its message carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageInfo {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// A baseline JPEG whose longest side is at most [`THUMBNAIL_SIZE`].
    pub jpeg_thumbnail: Vec<u8>,
}

/// What the header of an MP4-family file (MP4, MOV, 3GP, M4A) says.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Mp4Info {
    /// The presentation's duration, from the movie header (`mvhd`).
    pub duration: Option<Duration>,
    /// The display size of the first track that has one (`tkhd`), as `(width, height)`; audio tracks have none.
    pub dimensions: Option<(u32, u32)>,
}

fn starts_with_at(data: &[u8], at: usize, prefix: &[u8]) -> bool {
    data.get(at..at + prefix.len()) == Some(prefix)
}

/// The mimetype of `data` by its content (magic bytes), or [`OCTET_STREAM`] when it is none of the kinds known
/// here: JPEG, PNG, GIF, WebP, HEIC, MP4, QuickTime, 3GPP, M4A, Ogg (Opus), MP3, AAC, WAV, PDF, Office Open XML
/// and OpenDocument files, and other ZIP archives.
pub fn mimetype(data: &[u8]) -> &'static str {
    if data.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return "image/jpeg";
    }
    if data.starts_with(b"\x89PNG\r\n\x1a\n") {
        return "image/png";
    }
    if data.starts_with(b"GIF87a") || data.starts_with(b"GIF89a") {
        return "image/gif";
    }
    if data.starts_with(b"RIFF") {
        if starts_with_at(data, 8, b"WEBP") {
            return "image/webp";
        }
        if starts_with_at(data, 8, b"WAVE") {
            return "audio/wav";
        }
    }
    if starts_with_at(data, 4, b"ftyp")
        && let Some(brand) = data.get(8..12)
    {
        return match brand {
            b"qt  " => "video/quicktime",
            b"M4A " | b"M4B " | b"M4P " => "audio/mp4",
            b"heic" | b"heix" | b"heim" | b"heis" | b"mif1" | b"msf1" => "image/heic",
            b"3g2a" | b"3g2b" | b"3g2c" => "video/3gpp2",
            _ if brand.starts_with(b"3gp") || brand.starts_with(b"3ge") || brand.starts_with(b"3gg") => {
                "video/3gpp"
            }
            _ => "video/mp4",
        };
    }
    if data.starts_with(b"OggS") {
        return if ogg_first_packet(data).is_some_and(|packet| packet.starts_with(b"OpusHead")) {
            "audio/ogg; codecs=opus"
        } else {
            "audio/ogg"
        };
    }
    if data.starts_with(b"%PDF-") {
        return "application/pdf";
    }
    if data.starts_with(b"PK\x03\x04") {
        return zip_mimetype(data);
    }
    if data.starts_with(b"ID3") {
        return "audio/mpeg";
    }
    // MPEG audio frames start with 11 set sync bits; the layer bits tell MP3 (non-zero) from ADTS AAC (zero).
    if let [0xFF, second, ..] = data
        && second & 0xE0 == 0xE0
    {
        return match second & 0x06 {
            0 => "audio/aac",
            _ => "audio/mpeg",
        };
    }
    OCTET_STREAM
}

/// Office Open XML and OpenDocument files are ZIP archives told apart by the names inside; names are stored
/// uncompressed (in each local header and the central directory), so a byte search finds them.
fn zip_mimetype(data: &[u8]) -> &'static str {
    // OpenDocument stores its mimetype uncompressed as the first entry, named "mimetype" (30-byte header + 8).
    const OPEN_DOCUMENT: [(&[u8], &str); 3] = [
        (
            b"application/vnd.oasis.opendocument.text",
            "application/vnd.oasis.opendocument.text",
        ),
        (
            b"application/vnd.oasis.opendocument.spreadsheet",
            "application/vnd.oasis.opendocument.spreadsheet",
        ),
        (
            b"application/vnd.oasis.opendocument.presentation",
            "application/vnd.oasis.opendocument.presentation",
        ),
    ];
    if starts_with_at(data, 30, b"mimetype") {
        for (content, mimetype) in OPEN_DOCUMENT {
            if starts_with_at(data, 38, content) {
                return mimetype;
            }
        }
    }
    const OFFICE: [(&[u8], &str); 3] = [
        (
            b"word/document.xml",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        ),
        (
            b"xl/workbook.xml",
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        ),
        (
            b"ppt/presentation.xml",
            "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        ),
    ];
    for (name, mimetype) in OFFICE {
        if data.windows(name.len()).any(|window| window == name) {
            return mimetype;
        }
    }
    "application/zip"
}

fn image_format(data: &[u8]) -> Option<ImageFormat> {
    Some(match mimetype(data) {
        "image/jpeg" => ImageFormat::Jpeg,
        "image/png" => ImageFormat::Png,
        "image/gif" => ImageFormat::Gif,
        "image/webp" => ImageFormat::WebP,
        _ => return None,
    })
}

fn reader(data: &[u8]) -> Result<ImageReader<Cursor<&[u8]>>, MediaInfoError> {
    let format = image_format(data).ok_or(MediaInfoError::NotAnImage)?;
    let mut reader = ImageReader::with_format(Cursor::new(data), format);
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_IMAGE_SIDE);
    limits.max_image_height = Some(MAX_IMAGE_SIDE);
    limits.max_alloc = Some(MAX_IMAGE_ALLOC);
    reader.limits(limits);
    Ok(reader)
}

fn image_error(error: image::ImageError) -> MediaInfoError {
    match error {
        image::ImageError::Limits(_) => MediaInfoError::TooLarge,
        image::ImageError::Unsupported(_) => MediaInfoError::NotAnImage,
        other => MediaInfoError::Decode(other.to_string()),
    }
}

/// An image's `(width, height)` from its header alone, without decoding the pixels.
pub fn image_dimensions(data: &[u8]) -> Result<(u32, u32), MediaInfoError> {
    reader(data)?.into_dimensions().map_err(image_error)
}

/// Decodes an image (JPEG, PNG, GIF or WebP; the first frame of an animation) and makes its thumbnail.
pub fn image_info(data: &[u8]) -> Result<ImageInfo, MediaInfoError> {
    let image = reader(data)?.decode().map_err(image_error)?;
    Ok(ImageInfo {
        width: image.width(),
        height: image.height(),
        jpeg_thumbnail: jpeg_thumbnail(&image)?,
    })
}

/// A JPEG of `image` scaled to fit [`THUMBNAIL_SIZE`] (never enlarged), transparent parts over white.
fn jpeg_thumbnail(image: &DynamicImage) -> Result<Vec<u8>, MediaInfoError> {
    let small = if image.width() > THUMBNAIL_SIZE || image.height() > THUMBNAIL_SIZE {
        image.thumbnail(THUMBNAIL_SIZE, THUMBNAIL_SIZE)
    } else {
        image.clone()
    };
    let rgba = small.to_rgba8();
    let mut rgb = image::RgbImage::new(rgba.width(), rgba.height());
    for (to, from) in rgb.pixels_mut().zip(rgba.pixels()) {
        let [r, g, b, a] = from.0;
        let over_white = |c: u8| ((u16::from(c) * u16::from(a) + 255 * (255 - u16::from(a))) / 255) as u8;
        to.0 = [over_white(r), over_white(g), over_white(b)];
    }
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, THUMBNAIL_QUALITY)
        .encode_image(&rgb)
        .map_err(|error| MediaInfoError::Encode(error.to_string()))?;
    Ok(out)
}

/// Whether a WebP image is animated (its `VP8X` header's animation flag); `false` for other data.
pub fn is_animated_webp(data: &[u8]) -> bool {
    // RIFF header (12 bytes), then the first chunk: "VP8X", its size (4), then the flags byte; bit 1 is animation.
    mimetype(data) == "image/webp"
        && starts_with_at(data, 12, b"VP8X")
        && data.get(20).is_some_and(|f| f & 0x02 != 0)
}

/// The duration of audio or video, where the container states it: MP4-family files and Ogg Opus. `None` for
/// other formats and for damaged headers.
pub fn duration(data: &[u8]) -> Option<Duration> {
    if starts_with_at(data, 4, b"ftyp") {
        mp4_info(data).duration
    } else if data.starts_with(b"OggS") {
        ogg_opus_duration(data)
    } else if data.starts_with(b"RIFF") && starts_with_at(data, 8, b"WAVE") {
        wav_duration(data)
    } else if mimetype(data) == "audio/mpeg" {
        mp3_duration(data)
    } else {
        None
    }
}

fn le_u32(data: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        data.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

/// The duration of a WAV file: the size of its `data` chunk over the byte rate its `fmt ` chunk states. A `data`
/// chunk that claims more than the file holds (a recording whose header was never finished, which writes
/// 0xFFFFFFFF or 0) counts what is there. `None` without both chunks or with a zero byte rate.
pub fn wav_duration(data: &[u8]) -> Option<Duration> {
    if !data.starts_with(b"RIFF") || !starts_with_at(data, 8, b"WAVE") {
        return None;
    }
    let mut at = 12usize;
    let mut byte_rate = None;
    while let (Some(id), Some(size)) = (data.get(at..at.checked_add(4)?), le_u32(data, at.checked_add(4)?)) {
        let body = at.checked_add(8)?;
        let size = usize::try_from(size).ok()?;
        match id {
            // Format tag, channels, sample rate, then the byte rate (RIFF WAVE `fmt ` layout).
            b"fmt " => byte_rate = Some(le_u32(data, body.checked_add(8)?)?),
            b"data" => {
                let available = data.len().saturating_sub(body);
                let length = if size == 0 || size > available {
                    available
                } else {
                    size
                };
                return duration_of(u64::try_from(length).ok()?, u64::from(byte_rate?));
            }
            _ => {}
        }
        // Chunks are padded to an even size.
        at = body.checked_add(size)?.checked_add(size & 1)?;
    }
    None
}

/// How far into an MP3 file (after any ID3v2 tag) the first frame is looked for: encoders put padding or junk
/// before it, but a file whose first frame is further in is not worth scanning.
const MP3_SYNC_SEARCH: usize = 64 * 1024;

/// What the header of one MPEG audio Layer III frame says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Mp3Frame {
    /// Bits per second.
    bitrate: u32,
    /// Samples per second.
    sample_rate: u32,
    /// Samples in each frame: 1152 for MPEG-1, 576 for MPEG-2 and 2.5.
    samples: u32,
    /// Whether this is MPEG-1 (rather than 2 or 2.5).
    mpeg1: bool,
    /// Whether the channel mode is mono.
    mono: bool,
}

/// Reads a Layer III frame header (ISO/IEC 11172-3 and 13818-3): 11 sync bits, version, layer, bitrate and
/// sample-rate indexes, channel mode. Free-format and reserved values are `None`.
fn mp3_frame(header: &[u8]) -> Option<Mp3Frame> {
    // Bitrates of Layer III in kbit/s by index, for MPEG-1 and for MPEG-2/2.5; index 0 is free format, 15 invalid.
    const MPEG1: [u32; 16] = [
        0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 0,
    ];
    const MPEG2: [u32; 16] = [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160, 0];
    let [0xFF, b1, b2, b3] = *header.get(..4)? else {
        return None;
    };
    if b1 & 0xE0 != 0xE0 || (b1 >> 1) & 0x03 != 0x01 {
        return None;
    }
    let version = (b1 >> 3) & 0x03;
    let (table, rates, samples) = match version {
        0b11 => (&MPEG1, [44_100, 48_000, 32_000], 1152),
        0b10 => (&MPEG2, [22_050, 24_000, 16_000], 576),
        0b00 => (&MPEG2, [11_025, 12_000, 8_000], 576),
        _ => return None,
    };
    let bitrate = table.get(usize::from(b2 >> 4))? * 1000;
    let sample_rate = *rates.get(usize::from((b2 >> 2) & 0x03))?;
    (bitrate > 0).then_some(Mp3Frame {
        bitrate,
        sample_rate,
        samples,
        mpeg1: version == 0b11,
        mono: b3 >> 6 == 0x03,
    })
}

/// The duration of an MP3 file. With a Xing/Info or VBRI header in the first frame (written by encoders of
/// variable-bitrate files, and by LAME for all files), it is the frame count times the samples per frame;
/// otherwise it is an estimate that assumes a constant bitrate: the bytes from the first frame to the end (less
/// an ID3v1 tag) at the first frame's bitrate, exact for constant-bitrate files and off by the average bitrate's
/// difference for variable ones. `None` when no Layer III frame header is found.
pub fn mp3_duration(data: &[u8]) -> Option<Duration> {
    let mut start = 0usize;
    // An ID3v2 tag: "ID3", version (2), flags, then a 28-bit "syncsafe" size (7 bits per byte); a footer flag
    // (0x10) adds 10 more bytes.
    if data.starts_with(b"ID3") {
        let size = data
            .get(6..10)?
            .iter()
            .fold(0usize, |size, byte| (size << 7) | usize::from(byte & 0x7F));
        let footer = if data.get(5)? & 0x10 != 0 { 10 } else { 0 };
        start = 10 + size + footer;
    }
    let window = data.get(start..)?;
    let window = &window[..window.len().min(MP3_SYNC_SEARCH)];
    let offset = (0..window.len()).find(|&at| mp3_frame(&window[at..]).is_some())?;
    let frame_at = start + offset;
    let frame = mp3_frame(&data[frame_at..])?;
    let first = &data[frame_at..];
    // Side information follows the 4-byte header; the Xing/Info tag follows it (its size depends on version and
    // channel mode), the VBRI tag always sits 32 bytes after the header.
    let side_info = match (frame.mpeg1, frame.mono) {
        (true, false) => 32,
        (true, true) | (false, false) => 17,
        (false, true) => 9,
    };
    let xing = 4 + side_info;
    let frames = if matches!(first.get(xing..xing + 4), Some(b"Xing" | b"Info"))
        && be_u32(first, xing + 4)? & 0x01 != 0
    {
        Some(be_u32(first, xing + 8)?)
    } else if first.get(36..40) == Some(b"VBRI") {
        // "VBRI", version (2), delay (2), quality (2), bytes (4), then the frame count.
        Some(be_u32(first, 50)?)
    } else {
        None
    };
    match frames {
        Some(frames) => duration_of(
            u64::from(frames) * u64::from(frame.samples),
            u64::from(frame.sample_rate),
        ),
        None => {
            let tag = if data.len() >= 128 && starts_with_at(data, data.len() - 128, b"TAG") {
                128
            } else {
                0
            };
            let bytes = u64::try_from(first.len().saturating_sub(tag)).ok()?;
            duration_of(bytes * 8, u64::from(frame.bitrate))
        }
    }
}

/// One ISO base media box: its four-character type and its body.
struct Mp4Box<'a> {
    kind: [u8; 4],
    body: &'a [u8],
}

/// The boxes of one level, in order; iteration stops at the first box whose size does not fit.
struct Mp4Boxes<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Mp4Boxes<'a> {
    type Item = Mp4Box<'a>;

    fn next(&mut self) -> Option<Mp4Box<'a>> {
        let data = self.rest;
        let size = u32::from_be_bytes(data.get(..4)?.try_into().ok()?);
        let kind: [u8; 4] = data.get(4..8)?.try_into().ok()?;
        let (header, size) = match size {
            // Size 0: the box runs to the end of its parent (or the file).
            0 => (8, data.len()),
            // Size 1: a 64-bit size follows the type.
            1 => {
                let large = u64::from_be_bytes(data.get(8..16)?.try_into().ok()?);
                (16, usize::try_from(large).ok()?)
            }
            size => (8, usize::try_from(size).ok()?),
        };
        if size < header || size > data.len() {
            self.rest = &[];
            return None;
        }
        self.rest = &data[size..];
        Some(Mp4Box {
            kind,
            body: &data[header..size],
        })
    }
}

fn boxes(data: &[u8]) -> Mp4Boxes<'_> {
    Mp4Boxes { rest: data }
}

fn be_u32(data: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(data.get(at..at + 4)?.try_into().ok()?))
}

fn be_u64(data: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(data.get(at..at + 8)?.try_into().ok()?))
}

/// `units / per_second` seconds, exactly to the nanosecond without floating point.
fn duration_of(units: u64, per_second: u64) -> Option<Duration> {
    if per_second == 0 {
        return None;
    }
    let nanos = u128::from(units % per_second) * 1_000_000_000 / u128::from(per_second);
    Some(Duration::new(units / per_second, u32::try_from(nanos).ok()?))
}

/// The movie header (`mvhd`): version 0 has 32-bit times and duration, version 1 64-bit ones; an all-ones
/// duration means unknown.
fn mvhd_duration(body: &[u8]) -> Option<Duration> {
    let (timescale, duration) = match body.first()? {
        0 => {
            let duration = be_u32(body, 16)?;
            (
                be_u32(body, 12)?,
                (duration != u32::MAX).then_some(u64::from(duration))?,
            )
        }
        1 => {
            let duration = be_u64(body, 24)?;
            (be_u32(body, 20)?, (duration != u64::MAX).then_some(duration)?)
        }
        _ => return None,
    };
    duration_of(duration, u64::from(timescale))
}

/// A track header's (`tkhd`) display width and height, 16.16 fixed point after the matrix; `None` when zero.
fn tkhd_dimensions(body: &[u8]) -> Option<(u32, u32)> {
    let at = match body.first()? {
        0 => 76,
        1 => 88,
        _ => return None,
    };
    let (width, height) = (be_u32(body, at)? >> 16, be_u32(body, at + 4)? >> 16);
    (width > 0 && height > 0).then_some((width, height))
}

/// Reads the movie and track headers of an MP4-family file: the top-level boxes, then `moov`'s children and
/// each `trak`'s `tkhd`. Missing or damaged boxes leave the fields `None`.
pub fn mp4_info(data: &[u8]) -> Mp4Info {
    let mut info = Mp4Info::default();
    let Some(moov) = boxes(data).find(|b| &b.kind == b"moov") else {
        return info;
    };
    for child in boxes(moov.body) {
        match &child.kind {
            b"mvhd" => info.duration = mvhd_duration(child.body),
            b"trak" if info.dimensions.is_none() => {
                info.dimensions = boxes(child.body)
                    .find(|b| &b.kind == b"tkhd")
                    .and_then(|tkhd| tkhd_dimensions(tkhd.body));
            }
            _ => {}
        }
    }
    info
}

/// Length of an Ogg page header before its segment table.
const OGG_HEADER: usize = 27;

/// An Ogg page at the start of `data`: its granule position, stream serial and whole length, when the header is
/// complete, its version is 0 and its CRC matches (so payload bytes that happen to read "OggS" are not taken for
/// a page).
fn ogg_page(data: &[u8]) -> Option<(i64, u32, usize)> {
    if !data.starts_with(b"OggS") || *data.get(4)? != 0 {
        return None;
    }
    let segments = usize::from(*data.get(26)?);
    let table = data.get(OGG_HEADER..OGG_HEADER + segments)?;
    let length = OGG_HEADER + segments + table.iter().map(|&s| usize::from(s)).sum::<usize>();
    let page = data.get(..length)?;
    let stored = u32::from_le_bytes(page.get(22..26)?.try_into().ok()?);
    if ogg_crc(page) != stored {
        return None;
    }
    let granule = i64::from_le_bytes(page.get(6..14)?.try_into().ok()?);
    let serial = u32::from_le_bytes(page.get(14..18)?.try_into().ok()?);
    Some((granule, serial, length))
}

/// The Ogg page checksum: CRC-32 with polynomial 0x04C11DB7, no reflection, initial value and final XOR 0,
/// computed with the checksum field as zeros.
fn ogg_crc(page: &[u8]) -> u32 {
    let mut crc = 0u32;
    for (i, &byte) in page.iter().enumerate() {
        let byte = if (22..26).contains(&i) { 0 } else { byte };
        crc ^= u32::from(byte) << 24;
        for _ in 0..8 {
            crc = if crc & 0x8000_0000 != 0 {
                (crc << 1) ^ 0x04C1_1DB7
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// The first packet of the first page (for Opus, the `OpusHead` identification header).
fn ogg_first_packet(data: &[u8]) -> Option<&[u8]> {
    let segments = usize::from(*data.get(26)?);
    let table = data.get(OGG_HEADER..OGG_HEADER + segments)?;
    // A packet ends at the first lacing value below 255.
    let laced = table.iter().position(|&s| s < 255)? + 1;
    let length: usize = table[..laced].iter().map(|&s| usize::from(s)).sum();
    let start = OGG_HEADER + segments;
    data.get(start..start + length)
}

/// The duration of an Ogg Opus stream: the granule position (48 kHz samples) of its last page minus the
/// pre-skip of its `OpusHead`. `None` for other Ogg streams and damaged files.
pub fn ogg_opus_duration(data: &[u8]) -> Option<Duration> {
    let (_, serial, _) = ogg_page(data)?;
    let head = ogg_first_packet(data)?;
    if !head.starts_with(b"OpusHead") {
        return None;
    }
    let pre_skip = u16::from_le_bytes(head.get(10..12)?.try_into().ok()?);
    // The last page of the stream that ends a packet (granule position not -1), searched from the end.
    let mut end = data.len();
    let granule = loop {
        let at = data[..end].windows(4).rposition(|w| w == b"OggS")?;
        if let Some((granule, page_serial, _)) = ogg_page(&data[at..])
            && page_serial == serial
            && granule >= 0
        {
            break granule;
        }
        end = at;
    };
    let samples = u64::try_from(granule).ok()?.checked_sub(u64::from(pre_skip))?;
    duration_of(samples, 48_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tiny_gif_declaring_a_huge_canvas_is_refused_without_decoding() {
        // 43 bytes declaring an 8961 x 11009 canvas (98.6 megapixels, 394 MB as RGBA); found by the media_info
        // fuzz target as a 76-second input.
        let bomb: &[u8] = b"GIF89a\x01\x23\x01\x2b\x80\xd8\x00\x00\x00\x00\x05\xff\xff\x21\xf9\x04\x00\x00\x00\x00\x00\x2c\x00\x00\x00\x2b\x28\x00\x00\x00\x40\x02\x14\x44\x01\x00\x3b";
        assert_eq!(bomb.len(), 43);
        assert_eq!(image_dimensions(bomb).unwrap(), (8961, 11009));
        assert!(matches!(image_info(bomb), Err(MediaInfoError::TooLarge)));
    }

    fn png(width: u32, height: u32, alpha: u8) -> Vec<u8> {
        let image = image::RgbaImage::from_fn(width, height, |x, y| {
            image::Rgba([(x * 255 / width) as u8, (y * 255 / height) as u8, 0x80, alpha])
        });
        let mut out = Vec::new();
        image
            .write_to(&mut Cursor::new(&mut out), ImageFormat::Png)
            .unwrap();
        out
    }

    fn jpeg(width: u32, height: u32) -> Vec<u8> {
        let image = image::RgbImage::from_fn(width, height, |x, y| image::Rgb([x as u8, y as u8, 0x40]));
        let mut out = Vec::new();
        image
            .write_to(&mut Cursor::new(&mut out), ImageFormat::Jpeg)
            .unwrap();
        out
    }

    #[test]
    fn mimetypes_by_content() {
        let check = |data: &[u8], expected: &str| {
            assert_eq!(mimetype(data), expected, "{:?}", &data[..data.len().min(16)])
        };
        check(&jpeg(4, 4), "image/jpeg");
        check(&png(4, 4, 255), "image/png");
        check(b"GIF89a\x01\x00\x01\x00", "image/gif");
        check(b"RIFF\x10\x00\x00\x00WEBPVP8 ", "image/webp");
        check(b"RIFF\x10\x00\x00\x00WAVEfmt ", "audio/wav");
        check(b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00", "video/mp4");
        check(b"\x00\x00\x00\x14ftypqt  \x00\x00\x02\x00", "video/quicktime");
        check(b"\x00\x00\x00\x14ftyp3gp5\x00\x00\x02\x00", "video/3gpp");
        check(b"\x00\x00\x00\x14ftypM4A \x00\x00\x02\x00", "audio/mp4");
        check(&ogg_opus(48_000, 312, 1), "audio/ogg; codecs=opus");
        check(b"OggS\x00\x02", "audio/ogg");
        check(b"ID3\x04\x00\x00", "audio/mpeg");
        check(&[0xFF, 0xFB, 0x90, 0x00], "audio/mpeg");
        check(&[0xFF, 0xF1, 0x50, 0x80], "audio/aac");
        check(b"%PDF-1.7\n", "application/pdf");
        let mut docx = b"PK\x03\x04".to_vec();
        docx.extend_from_slice(&[0; 26]);
        docx.extend_from_slice(b"[Content_Types].xml....PK\x03\x04word/document.xml");
        check(
            &docx,
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        );
        let mut odt = b"PK\x03\x04".to_vec();
        odt.extend_from_slice(&[0; 26]);
        odt.extend_from_slice(b"mimetypeapplication/vnd.oasis.opendocument.text");
        check(&odt, "application/vnd.oasis.opendocument.text");
        check(b"PK\x03\x04\x14\x00", "application/zip");
        check(b"hello", OCTET_STREAM);
        check(b"", OCTET_STREAM);
        check(&[0xFF], OCTET_STREAM);
        check(b"RIFF", OCTET_STREAM);
    }

    #[test]
    fn image_dimensions_and_thumbnail() {
        for (data, width, height) in [
            (png(640, 480, 255), 640, 480),
            (jpeg(90, 300), 90, 300),
            (png(20, 10, 0), 20, 10),
        ] {
            assert_eq!(image_dimensions(&data).unwrap(), (width, height));
            let info = image_info(&data).unwrap();
            assert_eq!((info.width, info.height), (width, height));
            assert_eq!(mimetype(&info.jpeg_thumbnail), "image/jpeg");
            let thumbnail =
                image::load_from_memory_with_format(&info.jpeg_thumbnail, ImageFormat::Jpeg).unwrap();
            let longest = thumbnail.width().max(thumbnail.height());
            assert_eq!(
                longest,
                width.max(height).min(THUMBNAIL_SIZE),
                "never enlarged, at most {THUMBNAIL_SIZE}"
            );
            // The aspect ratio survives, within a pixel of rounding.
            let expected_short =
                u64::from(width.min(height)) * u64::from(longest) / u64::from(width.max(height));
            let short = u64::from(thumbnail.width().min(thumbnail.height()));
            assert!(short.abs_diff(expected_short) <= 1, "{short} vs {expected_short}");
        }
        // A fully transparent image becomes white, not black.
        let thumbnail = image_info(&png(20, 10, 0)).unwrap().jpeg_thumbnail;
        let pixel = image::load_from_memory(&thumbnail)
            .unwrap()
            .to_rgb8()
            .get_pixel(5, 5)
            .0;
        assert!(pixel.iter().all(|&c| c > 240), "{pixel:?}");
    }

    #[test]
    fn bad_images_are_errors() {
        assert_eq!(image_info(b"not an image"), Err(MediaInfoError::NotAnImage));
        assert_eq!(image_dimensions(b"%PDF-1.4"), Err(MediaInfoError::NotAnImage));
        let whole = png(64, 64, 255);
        for cut in [8, 20, 40, whole.len() / 2, whole.len() - 13] {
            assert!(image_info(&whole[..cut]).is_err(), "png cut at {cut}");
        }
        let whole = jpeg(64, 64);
        for cut in [3, 10, 100, whole.len() / 2] {
            assert!(image_info(&whole[..cut]).is_err(), "jpeg cut at {cut}");
        }
        // A header claiming a huge image is refused before anything is allocated for it.
        let mut huge = png(1, 1, 255);
        huge[16..20].copy_from_slice(&100_000u32.to_be_bytes());
        huge[20..24].copy_from_slice(&100_000u32.to_be_bytes());
        assert!(image_info(&huge).is_err());
    }

    #[test]
    fn animated_webp_flag() {
        let mut header = b"RIFF\x20\x00\x00\x00WEBPVP8X\x0a\x00\x00\x00".to_vec();
        header.push(0x02);
        assert!(is_animated_webp(&header));
        header[20] = 0x10;
        assert!(!is_animated_webp(&header));
        assert!(!is_animated_webp(b"RIFF\x20\x00\x00\x00WEBPVP8 "));
        assert!(!is_animated_webp(b"RIFF\x20\x00\x00\x00WEBPVP8X"));
    }

    fn mp4_box(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut out = ((body.len() + 8) as u32).to_be_bytes().to_vec();
        out.extend_from_slice(kind);
        out.extend_from_slice(body);
        out
    }

    fn mvhd(version: u8, timescale: u32, duration: u64) -> Vec<u8> {
        let mut body = vec![version, 0, 0, 0];
        if version == 0 {
            body.extend_from_slice(&[0; 8]);
            body.extend_from_slice(&timescale.to_be_bytes());
            body.extend_from_slice(&(duration as u32).to_be_bytes());
        } else {
            body.extend_from_slice(&[0; 16]);
            body.extend_from_slice(&timescale.to_be_bytes());
            body.extend_from_slice(&duration.to_be_bytes());
        }
        // Rate, volume, reserved, matrix, pre-defined, next track id.
        body.extend_from_slice(&[0; 80]);
        mp4_box(b"mvhd", &body)
    }

    fn tkhd(version: u8, width: u32, height: u32) -> Vec<u8> {
        let mut body = vec![version, 0, 0, 3];
        body.extend_from_slice(&vec![0; if version == 0 { 20 } else { 32 }]);
        body.extend_from_slice(&[0; 52]);
        body.extend_from_slice(&(width << 16).to_be_bytes());
        body.extend_from_slice(&(height << 16).to_be_bytes());
        mp4_box(b"tkhd", &body)
    }

    fn mp4(mvhd: Vec<u8>, tracks: &[Vec<u8>]) -> Vec<u8> {
        let mut file = mp4_box(b"ftyp", b"isom\x00\x00\x02\x00isomiso2mp41");
        file.extend(mp4_box(b"free", &[0; 5]));
        // Media data before the movie box, as most encoders write it, with a 64-bit size.
        let mdat_body = [0xAB; 33];
        file.extend_from_slice(&1u32.to_be_bytes());
        file.extend_from_slice(b"mdat");
        file.extend_from_slice(&((mdat_body.len() + 16) as u64).to_be_bytes());
        file.extend_from_slice(&mdat_body);
        let mut moov = mvhd;
        for track in tracks {
            moov.extend(mp4_box(b"trak", track));
        }
        file.extend(mp4_box(b"moov", &moov));
        file
    }

    #[test]
    fn mp4_duration_and_size() {
        let audio = tkhd(0, 0, 0);
        let video = tkhd(0, 1280, 720);
        let file = mp4(mvhd(0, 1000, 12_345), &[audio.clone(), video]);
        assert_eq!(mimetype(&file), "video/mp4");
        assert_eq!(
            mp4_info(&file),
            Mp4Info {
                duration: Some(Duration::from_millis(12_345)),
                dimensions: Some((1280, 720)),
            }
        );
        assert_eq!(duration(&file), Some(Duration::from_millis(12_345)));
        // Version 1 headers: 64-bit times.
        let long = 90_000u64 * 3600 * 30;
        let file = mp4(mvhd(1, 90_000, long), &[tkhd(1, 720, 1280)]);
        let info = mp4_info(&file);
        assert_eq!(info.duration, Some(Duration::from_secs(3600 * 30)));
        assert_eq!(info.dimensions, Some((720, 1280)));
        // Audio only: no size; an unknown duration or zero timescale is no duration.
        assert_eq!(
            mp4_info(&mp4(mvhd(0, 44_100, 44_100 * 3 / 2), &[audio])).duration,
            Some(Duration::from_millis(1500))
        );
        assert_eq!(mp4_info(&mp4(mvhd(0, 0, 100), &[])).duration, None);
        assert_eq!(
            mp4_info(&mp4(mvhd(0, 600, u64::from(u32::MAX)), &[])).duration,
            None
        );
    }

    #[test]
    fn damaged_mp4_gives_nothing() {
        let file = mp4(mvhd(0, 1000, 5000), &[tkhd(0, 640, 480)]);
        for cut in 0..file.len() {
            let info = mp4_info(&file[..cut]);
            assert_eq!(
                info,
                Mp4Info::default(),
                "cut at {cut}: the movie box is last, so any cut loses it"
            );
        }
        // A box claiming more than there is, or less than its own header.
        let mut lying = file.clone();
        let moov_at = lying.len() - (file.len() - file.windows(4).position(|w| w == b"moov").unwrap() + 4);
        lying[moov_at..moov_at + 4].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(mp4_info(&lying), Mp4Info::default());
        lying[moov_at..moov_at + 4].copy_from_slice(&4u32.to_be_bytes());
        assert_eq!(mp4_info(&lying), Mp4Info::default());
        let mut huge = file;
        huge[..4].copy_from_slice(&1u32.to_be_bytes());
        assert_eq!(mp4_info(&huge), Mp4Info::default());
        assert_eq!(mvhd_duration(&[2, 0, 0, 0]), None);
    }

    /// One Ogg page with a correct checksum holding `packets` (each under 255 bytes here).
    fn ogg_page_bytes(
        serial: u32,
        sequence: u32,
        granule: i64,
        header_type: u8,
        packets: &[&[u8]],
    ) -> Vec<u8> {
        let mut page = b"OggS\x00".to_vec();
        page.push(header_type);
        page.extend_from_slice(&granule.to_le_bytes());
        page.extend_from_slice(&serial.to_le_bytes());
        page.extend_from_slice(&sequence.to_le_bytes());
        page.extend_from_slice(&[0; 4]);
        page.push(packets.len() as u8);
        for packet in packets {
            page.push(packet.len() as u8);
        }
        for packet in packets {
            page.extend_from_slice(packet);
        }
        let crc = ogg_crc(&page);
        page[22..26].copy_from_slice(&crc.to_le_bytes());
        page
    }

    /// An Ogg Opus file whose audio ends at `granule` (48 kHz samples) after `pre_skip`, in `pages` audio pages,
    /// with a page of another stream interleaved and an "OggS" inside the last packet.
    fn ogg_opus(granule: i64, pre_skip: u16, pages: usize) -> Vec<u8> {
        let mut head = b"OpusHead\x01\x01".to_vec();
        head.extend_from_slice(&pre_skip.to_le_bytes());
        head.extend_from_slice(&48_000u32.to_le_bytes());
        head.extend_from_slice(&[0, 0, 0]);
        let serial = 0x1234_5678;
        let mut file = ogg_page_bytes(serial, 0, 0, 0x02, &[&head]);
        file.extend(ogg_page_bytes(
            serial,
            1,
            0,
            0,
            &[b"OpusTags\x00\x00\x00\x00\x00\x00\x00\x00"],
        ));
        for page in 0..pages {
            let at = granule * (page as i64 + 1) / pages as i64;
            let last = page + 1 == pages;
            file.extend(ogg_page_bytes(
                serial,
                2 + page as u32,
                at,
                if last { 0x04 } else { 0 },
                &[&[0xFC; 40], if last { b"..OggS.." } else { &[0xFC; 3] }],
            ));
            if page == 0 {
                file.extend(ogg_page_bytes(0x99, 0, 999_999_999, 0, &[b"another stream"]));
            }
        }
        file
    }

    #[test]
    fn ogg_checksum_known_answer() {
        // CRC-32 with this polynomial, zero initial value and no final XOR, over "123456789".
        assert_eq!(ogg_crc(b"123456789"), 0x89A1_897F);
    }

    #[test]
    fn ogg_opus_durations() {
        let file = ogg_opus(312 + 48_000 * 7 + 24_000, 312, 4);
        assert_eq!(ogg_opus_duration(&file), Some(Duration::from_millis(7500)));
        assert_eq!(duration(&file), Some(Duration::from_millis(7500)));
        // A last page that ends no packet (granule -1) is skipped for the one before.
        let mut open_end = ogg_opus(48_000 + 312, 312, 2);
        open_end.extend(ogg_page_bytes(0x1234_5678, 9, -1, 0, &[&[0xFC; 255]]));
        assert_eq!(ogg_opus_duration(&open_end), Some(Duration::from_secs(1)));
        // Damaged files: no panic, and no duration unless a whole valid last page remains.
        for cut in 0..file.len() {
            if let Some(found) = ogg_opus_duration(&file[..cut]) {
                assert!(found <= Duration::from_millis(7500), "cut at {cut}: {found:?}");
            }
        }
        let mut flipped = file.clone();
        let last = flipped.len() - 5;
        flipped[last] ^= 1;
        assert!(
            ogg_opus_duration(&flipped).is_some_and(|d| d < Duration::from_millis(7500)),
            "the checksum rejects the damaged last page"
        );
        // Granule before the pre-skip, and a stream that is not Opus.
        assert_eq!(ogg_opus_duration(&ogg_opus(100, 312, 1)), None);
        let vorbis = ogg_page_bytes(1, 0, 0, 0x02, &[b"\x01vorbis\x00\x00\x00\x00"]);
        assert_eq!(ogg_opus_duration(&vorbis), None);
        assert_eq!(mimetype(&vorbis), "audio/ogg");
        assert_eq!(duration(b"ID3\x04"), None);
    }

    /// A PCM WAV file: `fmt ` for `rate` Hz, 16-bit, `channels`, an extra chunk of odd size before the data,
    /// and `samples` frames of silence.
    fn wav(rate: u32, channels: u16, samples: u32) -> Vec<u8> {
        let block = u32::from(channels) * 2;
        let mut body = b"WAVE".to_vec();
        body.extend_from_slice(b"fmt ");
        body.extend_from_slice(&16u32.to_le_bytes());
        body.extend_from_slice(&1u16.to_le_bytes());
        body.extend_from_slice(&channels.to_le_bytes());
        body.extend_from_slice(&rate.to_le_bytes());
        body.extend_from_slice(&(rate * block).to_le_bytes());
        body.extend_from_slice(&(block as u16).to_le_bytes());
        body.extend_from_slice(&16u16.to_le_bytes());
        body.extend_from_slice(b"LIST");
        body.extend_from_slice(&3u32.to_le_bytes());
        body.extend_from_slice(&[1, 2, 3, 0]);
        body.extend_from_slice(b"data");
        body.extend_from_slice(&(samples * block).to_le_bytes());
        body.extend(std::iter::repeat_n(0u8, (samples * block) as usize));
        let mut file = b"RIFF".to_vec();
        file.extend_from_slice(&(body.len() as u32).to_le_bytes());
        file.extend(body);
        file
    }

    #[test]
    fn wav_durations() {
        let file = wav(8000, 1, 12_000);
        assert_eq!(mimetype(&file), "audio/wav");
        assert_eq!(duration(&file), Some(Duration::from_millis(1500)));
        assert_eq!(
            wav_duration(&wav(44_100, 2, 4410)),
            Some(Duration::from_millis(100))
        );
        // An unfinished header (data size 0xFFFFFFFF) counts the bytes that are there.
        let mut unfinished = file.clone();
        let data_at = unfinished.windows(4).position(|w| w == b"data").unwrap();
        unfinished[data_at + 4..data_at + 8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(wav_duration(&unfinished), Some(Duration::from_millis(1500)));
        // No `fmt ` before the data, or a zero byte rate: no duration.
        let mut no_format = file.clone();
        no_format[12..16].copy_from_slice(b"junk");
        assert_eq!(wav_duration(&no_format), None);
        let mut zero_rate = file;
        zero_rate[28..32].copy_from_slice(&0u32.to_le_bytes());
        assert_eq!(wav_duration(&zero_rate), None);
    }

    /// An MPEG-1 Layer III frame header at 128 kbit/s, 44.1 kHz, joint stereo or mono, without CRC.
    fn mp3_header(mono: bool) -> [u8; 4] {
        [0xFF, 0xFB, 0x90, if mono { 0xC0 } else { 0x40 }]
    }

    /// `count` frames of 417 bytes (144 * 128000 / 44100, no padding), the first carrying `tag` at `tag_at`.
    fn mp3(count: usize, mono: bool, tag: &[u8], tag_at: usize) -> Vec<u8> {
        let mut file = Vec::new();
        for index in 0..count {
            let mut frame = vec![0u8; 417];
            frame[..4].copy_from_slice(&mp3_header(mono));
            if index == 0 {
                frame[tag_at..tag_at + tag.len()].copy_from_slice(tag);
            }
            file.extend(frame);
        }
        file
    }

    fn id3v2(body_len: usize) -> Vec<u8> {
        let mut tag = b"ID3\x04\x00\x00".to_vec();
        let size = body_len as u32;
        tag.extend([
            (size >> 21) as u8 & 0x7F,
            (size >> 14) as u8 & 0x7F,
            (size >> 7) as u8 & 0x7F,
            size as u8 & 0x7F,
        ]);
        tag.extend(std::iter::repeat_n(0u8, body_len));
        tag
    }

    #[test]
    fn mp3_constant_bitrate_estimate() {
        let frames = mp3(50, false, &[], 0);
        // 50 frames of 417 bytes at 128 kbit/s: 1.303125 s by the estimate (exactly 50 * 1152 / 44100 = 1.306 s
        // of samples; the 0.25 % difference is the frame size's rounding, which padding bits make up in real files).
        let estimate = Duration::from_nanos(1_303_125_000);
        assert_eq!(mp3_duration(&frames), Some(estimate));
        // An ID3v2 tag in front (with junk before the first frame) and an ID3v1 tag behind change nothing.
        let mut tagged = id3v2(300);
        tagged.extend([0u8; 7]);
        tagged.extend(&frames);
        tagged.extend(b"TAG");
        tagged.extend([0u8; 125]);
        assert_eq!(mimetype(&tagged), "audio/mpeg");
        assert_eq!(duration(&tagged), Some(estimate));
        assert_eq!(duration(&frames), Some(estimate));
    }

    #[test]
    fn mp3_frame_counts_from_xing_and_vbri() {
        let mut xing = b"Xing".to_vec();
        xing.extend(1u32.to_be_bytes());
        xing.extend(1000u32.to_be_bytes());
        // Stereo MPEG-1: the tag after 32 bytes of side information; mono: after 17.
        let exact = duration_of(1000 * 1152, 44_100).unwrap();
        assert_eq!(mp3_duration(&mp3(3, false, &xing, 36)), Some(exact));
        let mut info = xing.clone();
        info[..4].copy_from_slice(b"Info");
        assert_eq!(mp3_duration(&mp3(3, true, &info, 21)), Some(exact));
        // A Xing tag without the frame-count flag falls back to the estimate.
        let mut no_count = xing.clone();
        no_count[4..8].copy_from_slice(&0u32.to_be_bytes());
        assert_eq!(
            mp3_duration(&mp3(3, false, &no_count, 36)),
            Some(Duration::from_nanos(3 * 417 * 8 * 1_000_000_000 / 128_000))
        );
        let mut vbri = b"VBRI".to_vec();
        vbri.extend([0, 1, 0, 0, 0, 50]);
        vbri.extend(12_345u32.to_be_bytes());
        vbri.extend(2000u32.to_be_bytes());
        assert_eq!(
            mp3_duration(&mp3(3, false, &vbri, 36)),
            duration_of(2000 * 1152, 44_100)
        );
        // MPEG-2 (576 samples a frame, 22.05 kHz), mono: the Xing tag after 9 bytes of side information.
        let mut mpeg2 = mp3(3, true, &xing, 13);
        mpeg2[1] = 0xF3;
        mpeg2[2] = 0x90;
        assert_eq!(mp3_duration(&mpeg2), duration_of(1000 * 576, 22_050));
    }

    #[test]
    fn damaged_audio_gives_nothing_and_never_panics() {
        let mut xing = b"Xing".to_vec();
        xing.extend(1u32.to_be_bytes());
        xing.extend(1000u32.to_be_bytes());
        let mut tagged = id3v2(40);
        tagged.extend(mp3(2, false, &xing, 36));
        let files = [wav(8000, 1, 100), tagged, mp3(2, true, b"VBRI", 36)];
        for file in &files {
            for cut in 0..file.len() {
                let _ = duration(&file[..cut]);
                let _ = wav_duration(&file[..cut]);
                let _ = mp3_duration(&file[..cut]);
                let _ = mp4_info(&file[..cut]);
                let _ = ogg_opus_duration(&file[..cut]);
            }
        }
        // Free-format and reserved frame headers, a lying ID3 size, a WAV chunk size that overflows.
        assert_eq!(mp3_duration(&[0xFF, 0xFB, 0x00, 0x00, 0, 0, 0, 0]), None);
        assert_eq!(mp3_duration(&[0xFF, 0xFB, 0xF0, 0x00, 0, 0, 0, 0]), None);
        assert_eq!(mp3_duration(&[0xFF, 0xEB, 0x90, 0x00, 0, 0, 0, 0]), None);
        assert_eq!(
            mp3_duration(b"ID3\x04\x00\x00\x7F\x7F\x7F\x7F\xFF\xFB\x90\x00"),
            None
        );
        let mut overflow = wav(8000, 1, 10);
        overflow[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(wav_duration(&overflow), None);
        // Pseudo-random garbage, with and without each format's magic in front.
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        for round in 0..2000 {
            let mut garbage: Vec<u8> = (0..(round % 97))
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed as u8
                })
                .collect();
            let magic: &[u8] = match round % 5 {
                0 => b"RIFF\x10\x00\x00\x00WAVE",
                1 => b"ID3\x03\x00\x00\x00\x00\x00\x02",
                2 => &[0xFF, 0xFB],
                3 => b"\x00\x00\x00\x20ftypisom",
                _ => b"",
            };
            garbage.splice(0..0, magic.iter().copied());
            let _ = duration(&garbage);
            let _ = mp3_duration(&garbage);
            let _ = wav_duration(&garbage);
        }
    }
}
