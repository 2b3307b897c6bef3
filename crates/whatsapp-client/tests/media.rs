//! End to end: images, video, audio and stickers between two accounts' companions through `whatsapp-testserver`
//! with the metadata their messages carry, and expired media fetched again after a media retry answered by the
//! test server's phone.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Cursor;

use common::*;
use whatsapp_client::{ClientError, Event, Events, Jid, MediaRef, MediaRetryResult, MessageInfo};
use whatsapp_testserver::TestServer;

async fn next_media_retry(events: &mut Events, id: &str) -> Result<MediaRetryResult, ClientError> {
    match wait_for(events, "a media retry answer", |e| {
        matches!(e, Event::MediaRetry { .. })
    })
    .await
    {
        Event::MediaRetry { message_id, result } => {
            assert_eq!(message_id, id);
            result
        }
        _ => unreachable!(),
    }
}

fn user(number: &str) -> Jid {
    Jid::new(number, Jid::DEFAULT_USER_SERVER)
}

/// A `width` × `height` gradient encoded as `format`.
fn picture(width: u32, height: u32, format: image::ImageFormat) -> Vec<u8> {
    let image = image::RgbaImage::from_fn(width, height, |x, y| {
        image::Rgba([(x * 255 / width) as u8, (y * 255 / height) as u8, 0x60, 0xFF])
    });
    let mut out = Vec::new();
    let mut writer = Cursor::new(&mut out);
    if format == image::ImageFormat::Jpeg {
        // JPEG has no alpha channel.
        image::DynamicImage::ImageRgba8(image)
            .to_rgb8()
            .write_to(&mut writer, format)
            .unwrap();
    } else {
        image.write_to(&mut writer, format).unwrap();
    }
    out
}

fn mp4_box(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
    let mut out = ((body.len() + 8) as u32).to_be_bytes().to_vec();
    out.extend_from_slice(kind);
    out.extend_from_slice(body);
    out
}

/// An MP4-family file of brand `brand` lasting `millis`, with one track of the given display size (0 × 0 for
/// audio), and some media data before the movie box.
fn mp4(brand: &[u8; 4], millis: u32, width: u32, height: u32) -> Vec<u8> {
    let mut file = mp4_box(b"ftyp", &[brand.as_slice(), b"\x00\x00\x02\x00isom"].concat());
    file.extend(mp4_box(b"mdat", &[0x5A; 4096]));
    let mut mvhd = vec![0u8; 12];
    mvhd.extend_from_slice(&1000u32.to_be_bytes());
    mvhd.extend_from_slice(&millis.to_be_bytes());
    mvhd.extend_from_slice(&[0; 80]);
    let mut tkhd = vec![0u8; 76];
    tkhd.extend_from_slice(&(width << 16).to_be_bytes());
    tkhd.extend_from_slice(&(height << 16).to_be_bytes());
    let mut moov = mp4_box(b"mvhd", &mvhd);
    moov.extend(mp4_box(b"trak", &mp4_box(b"tkhd", &tkhd)));
    file.extend(mp4_box(b"moov", &moov));
    file
}

#[tokio::test]
async fn images_video_audio_and_stickers_arrive_with_their_metadata() {
    media_round_trip(Db::Sqlite).await;
}

#[tokio::test]
async fn media_round_trip_with_postgresql_stores() {
    on_postgres(media_round_trip).await;
}

async fn media_round_trip(db: Db) {
    let server = TestServer::start().await.unwrap();
    let alice = companion_in(&server, PHONE, &db).await;
    let mut bob = companion_in(&server, BOB, &db).await;

    // An image: dimensions, mimetype, caption and a thumbnail that decodes.
    let png = picture(640, 480, image::ImageFormat::Png);
    alice
        .client
        .send_image(&user(BOB), &png, Some("a gradient"))
        .await
        .unwrap();
    let (_, message) = next_message(&mut bob.events).await;
    let image = message.image_message.as_deref().unwrap();
    assert_eq!((image.width, image.height), (Some(640), Some(480)));
    assert_eq!(image.mimetype.as_deref(), Some("image/png"));
    assert_eq!(image.caption.as_deref(), Some("a gradient"));
    assert_eq!(image.file_length, Some(png.len() as u64));
    let thumbnail = image::load_from_memory_with_format(
        image.jpeg_thumbnail.as_deref().unwrap(),
        image::ImageFormat::Jpeg,
    )
    .unwrap();
    assert_eq!((thumbnail.width(), thumbnail.height()), (100, 75));
    let downloaded = bob
        .client
        .download(&MediaRef::of(&message).unwrap())
        .await
        .unwrap();
    assert!(downloaded == png, "the download differs from the upload");

    // A video: duration and frame size from its headers.
    let video = mp4(b"isom", 4_200, 1280, 720);
    alice.client.send_video(&user(BOB), &video, None).await.unwrap();
    let (_, message) = next_message(&mut bob.events).await;
    let received = message.video_message.as_deref().unwrap();
    assert_eq!(received.mimetype.as_deref(), Some("video/mp4"));
    assert_eq!(received.seconds, Some(5), "4.2 s rounds up");
    assert_eq!((received.width, received.height), (Some(1280), Some(720)));
    assert_eq!(received.caption, None);
    let downloaded = bob
        .client
        .download(&MediaRef::of(&message).unwrap())
        .await
        .unwrap();
    assert!(downloaded == video);

    // The same video with a preview the caller made; a preview that is not a JPEG is refused before uploading.
    let preview = picture(96, 54, image::ImageFormat::Jpeg);
    alice
        .client
        .send_video_with(&user(BOB), &video, Some("clip"), Some(&preview))
        .await
        .unwrap();
    let (_, message) = next_message(&mut bob.events).await;
    let received = message.video_message.as_deref().unwrap();
    assert_eq!(received.jpeg_thumbnail.as_deref(), Some(preview.as_slice()));
    assert_eq!(received.caption.as_deref(), Some("clip"));
    assert_eq!((received.width, received.height), (Some(1280), Some(720)));
    let refused = alice
        .client
        .send_video_with(&user(BOB), &video, None, Some(&png))
        .await;
    assert!(matches!(refused, Err(ClientError::MediaInfo(_))), "{refused:?}");

    // A WAV recording: its duration from the RIFF header (2.5 s of 8 kHz 16-bit mono rounds up to 3).
    let mut wav = b"RIFF".to_vec();
    wav.extend_from_slice(&(36u32 + 40_000).to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    wav.extend_from_slice(&16u32.to_le_bytes());
    wav.extend_from_slice(&[1, 0, 1, 0]);
    wav.extend_from_slice(&8000u32.to_le_bytes());
    wav.extend_from_slice(&16_000u32.to_le_bytes());
    wav.extend_from_slice(&[2, 0, 16, 0]);
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&40_000u32.to_le_bytes());
    wav.extend(std::iter::repeat_n(0u8, 40_000));
    alice.client.send_audio(&user(BOB), &wav, false).await.unwrap();
    let (_, message) = next_message(&mut bob.events).await;
    let received = message.audio_message.as_deref().unwrap();
    assert_eq!(received.mimetype.as_deref(), Some("audio/wav"));
    assert_eq!(received.seconds, Some(3));
    assert_eq!(received.ptt, Some(false));

    // A voice message: its duration and the push-to-talk flag.
    let audio = mp4(b"M4A ", 3_000, 0, 0);
    alice.client.send_audio(&user(BOB), &audio, true).await.unwrap();
    let (_, message) = next_message(&mut bob.events).await;
    let received = message.audio_message.as_deref().unwrap();
    assert_eq!(received.mimetype.as_deref(), Some("audio/mp4"));
    assert_eq!(received.seconds, Some(3));
    assert_eq!(received.ptt, Some(true));
    let downloaded = bob
        .client
        .download(&MediaRef::of(&message).unwrap())
        .await
        .unwrap();
    assert!(downloaded == audio);

    // A sticker must be WebP; it arrives with its size.
    let webp = picture(64, 48, image::ImageFormat::WebP);
    alice.client.send_sticker(&user(BOB), &webp).await.unwrap();
    let (_, message) = next_message(&mut bob.events).await;
    let sticker = message.sticker_message.as_deref().unwrap();
    assert_eq!(sticker.mimetype.as_deref(), Some("image/webp"));
    assert_eq!((sticker.width, sticker.height), (Some(64), Some(48)));
    assert_eq!(sticker.is_animated, Some(false));
    let downloaded = bob
        .client
        .download(&MediaRef::of(&message).unwrap())
        .await
        .unwrap();
    assert!(downloaded == webp);

    // What cannot be sent is refused before anything is uploaded.
    let uploaded = server.media_file_count();
    assert!(matches!(
        alice.client.send_sticker(&user(BOB), &png).await,
        Err(ClientError::Unsupported(_))
    ));
    assert!(matches!(
        alice.client.send_image(&user(BOB), b"not an image", None).await,
        Err(ClientError::MediaInfo(_))
    ));
    assert!(matches!(
        alice
            .client
            .send_image(&user(BOB), &png[..png.len() / 2], None)
            .await,
        Err(ClientError::MediaInfo(_))
    ));
    assert_eq!(server.media_file_count(), uploaded);
    alice.client.disconnect().await;
    bob.client.disconnect().await;
}

#[tokio::test]
async fn expired_media_is_fetched_again_after_a_media_retry() {
    let server = TestServer::start().await.unwrap();
    let alice = companion(&server, PHONE).await;
    let mut bob = companion(&server, BOB).await;
    let jpeg = picture(300, 200, image::ImageFormat::Jpeg);
    alice.client.send_image(&user(BOB), &jpeg, None).await.unwrap();
    let (info, message) = next_message(&mut bob.events).await;
    let mut media = MediaRef::of(&message).unwrap();

    server.forget_media();
    assert!(matches!(
        bob.client.download(&media).await,
        Err(ClientError::MediaExpired { status: 404 })
    ));

    // Bob's phone still has the message: it uploads the file again and names the new path.
    let key: [u8; 32] = media.media_key.as_slice().try_into().unwrap();
    server.rehost_on_media_retry(&info.id, key, &media.file_enc_sha256);
    bob.client.request_media_retry(&info, &media).await.unwrap();
    let direct_path = match next_media_retry(&mut bob.events, &info.id).await {
        Ok(MediaRetryResult::Success { direct_path }) => direct_path,
        other => panic!("expected a new path, got {other:?}"),
    };
    assert_ne!(direct_path, media.direct_path);
    media.direct_path = direct_path;
    let downloaded = bob.client.download(&media).await.unwrap();
    assert!(downloaded == jpeg, "the re-hosted file differs from the original");

    // A message the phone does not have: an answer saying so, not silence.
    let unknown = MessageInfo {
        id: "3EB0000000000000DEAD".to_owned(),
        ..info.clone()
    };
    bob.client.request_media_retry(&unknown, &media).await.unwrap();
    assert!(matches!(
        next_media_retry(&mut bob.events, &unknown.id).await,
        Ok(MediaRetryResult::NotFound)
    ));

    // A request the phone cannot decrypt (another key than the message's) is answered with that result.
    server.rehost_on_media_retry(&info.id, key, &media.file_enc_sha256);
    let mut wrong = media.clone();
    wrong.media_key[0] ^= 1;
    bob.client.request_media_retry(&info, &wrong).await.unwrap();
    let answer = next_media_retry(&mut bob.events, &info.id).await;
    assert!(matches!(answer, Err(ClientError::MediaRetry(_))), "{answer:?}");
    alice.client.disconnect().await;
    bob.client.disconnect().await;
}
