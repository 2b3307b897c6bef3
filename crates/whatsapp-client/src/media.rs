//! Media transfer: upload an encrypted file to the media host the server names (`media_conn`), send images,
//! videos, audio, stickers and documents with the metadata their messages carry, download and decrypt received
//! media chunk by chunk, and ask the phone to upload expired media again (protocol-facts §3.9).
//!
//! The media host is reached over HTTPS, or plain HTTP when the client talks to a test server over `ws://`.

use std::collections::VecDeque;
use std::time::Duration;

use rand::RngCore;
use tracing::{debug, warn};
use whatsapp_binary::{Jid, Node};
use whatsapp_core::media::{
    self, MediaConn, MediaDecryptor, MediaType, download_path, media_conn_query, parse_media_conn,
    upload_path,
};
use whatsapp_core::media_info;
use whatsapp_core::media_retry::{self, MediaRetryNotification, RetryTarget};
use whatsapp_proto::e2e::Message;
use whatsapp_proto::e2e::message::{
    AudioMessage, DocumentMessage, ImageMessage, StickerMessage, VideoMessage,
};
use whatsapp_store::Backend;
use zeroize::{Zeroize, Zeroizing};

use crate::spool::{Spool, Spooled, WRITE_BATCH};
use crate::{Client, ClientError, Event, MessageInfo, SendResponse, Shared, unix_now};

/// A file on the media host: what a media message must carry to let recipients fetch and check it.
///
/// The media key is zeroized on drop and `Debug` does not print it.
#[derive(Clone, PartialEq, Eq)]
pub struct Uploaded {
    /// The full URL of the file.
    pub url: String,
    /// The path recipients download from (any media host).
    pub direct_path: String,
    /// The random key the file was encrypted with.
    pub media_key: [u8; 32],
    /// SHA-256 of the plaintext.
    pub file_sha256: [u8; 32],
    /// SHA-256 of the uploaded (encrypted) bytes.
    pub file_enc_sha256: [u8; 32],
    /// Plaintext length.
    pub file_length: u64,
}

impl std::fmt::Debug for Uploaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Uploaded")
            .field("direct_path", &self.direct_path)
            .field("file_length", &self.file_length)
            .finish_non_exhaustive()
    }
}

impl Drop for Uploaded {
    fn drop(&mut self) {
        self.media_key.zeroize();
    }
}

/// The fields of a received media message that a download needs.
///
/// The media key is zeroized on drop and `Debug` prints only its length.
#[derive(Clone, PartialEq, Eq)]
pub struct MediaRef {
    /// What kind of media (selects the key expansion).
    pub media_type: MediaType,
    /// The download path; replace it with the one of a successful [`Event::MediaRetry`] to download expired
    /// media.
    pub direct_path: String,
    /// The file's key.
    pub media_key: Vec<u8>,
    /// SHA-256 of the encrypted file, checked against what arrives.
    pub file_enc_sha256: Vec<u8>,
    /// SHA-256 of the plaintext, checked after decryption.
    pub file_sha256: Vec<u8>,
}

impl std::fmt::Debug for MediaRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaRef")
            .field("media_type", &self.media_type)
            .field("direct_path", &self.direct_path)
            .field("media_key_len", &self.media_key.len())
            .finish_non_exhaustive()
    }
}

impl Drop for MediaRef {
    fn drop(&mut self) {
        self.media_key.zeroize();
    }
}

impl MediaRef {
    /// The media of a message: image, video, audio, document or sticker; `None` for other messages or when a
    /// field is missing.
    pub fn of(message: &Message) -> Option<MediaRef> {
        macro_rules! media {
            ($field:ident, $kind:expr) => {
                if let Some(m) = message.$field.as_deref() {
                    return Some(MediaRef {
                        media_type: $kind,
                        direct_path: m.direct_path.clone()?,
                        media_key: m.media_key.clone()?,
                        file_enc_sha256: m.file_enc_sha256.clone()?,
                        file_sha256: m.file_sha256.clone()?,
                    });
                }
            };
        }
        media!(image_message, MediaType::Image);
        media!(video_message, MediaType::Video);
        media!(audio_message, MediaType::Audio);
        media!(document_message, MediaType::Document);
        media!(sticker_message, MediaType::Image);
        None
    }

    fn key(&self) -> Result<[u8; 32], ClientError> {
        self.media_key
            .as_slice()
            .try_into()
            .map_err(|_| ClientError::Malformed("media key is not 32 bytes".to_owned()))
    }
}

/// A media message of kind `$kind` (`ImageMessage`, ...) for an [`Uploaded`] file: the fields every kind shares
/// (location, key, hashes, length, mimetype, key timestamp), then the kind's own.
macro_rules! media_message {
    ($kind:ident, $uploaded:expr, $mimetype:expr, { $($field:ident: $value:expr),* $(,)? }) => {{
        let uploaded: Uploaded = $uploaded;
        $kind {
            url: Some(uploaded.url.clone()),
            direct_path: Some(uploaded.direct_path.clone()),
            media_key: Some(uploaded.media_key.to_vec()),
            file_sha256: Some(uploaded.file_sha256.to_vec()),
            file_enc_sha256: Some(uploaded.file_enc_sha256.to_vec()),
            file_length: Some(uploaded.file_length),
            mimetype: Some($mimetype.to_owned()),
            media_key_timestamp: Some(unix_now().as_secs() as i64),
            $($field: $value,)*
            ..Default::default()
        }
    }};
}

/// Whole seconds for a message's `seconds` field, rounded up so that a short clip does not show as 0:00.
fn whole_seconds(duration: Duration) -> u32 {
    let seconds = duration.as_secs() + u64::from(duration.subsec_nanos() > 0);
    u32::try_from(seconds).unwrap_or(u32::MAX)
}

/// How many media retry requests wait for an answer at most; the oldest is forgotten beyond this.
const MAX_PENDING_RETRIES: usize = 256;

/// Media retry requests waiting for the phone's answer: message id and media key, oldest first.
#[derive(Default)]
pub(crate) struct PendingRetries(VecDeque<(String, Zeroizing<[u8; 32]>)>);

impl std::fmt::Debug for PendingRetries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.0.iter().map(|(id, _)| id)).finish()
    }
}

impl PendingRetries {
    fn insert(&mut self, message_id: &str, media_key: [u8; 32]) {
        self.0.retain(|(id, _)| id != message_id);
        if self.0.len() >= MAX_PENDING_RETRIES {
            self.0.pop_front();
        }
        self.0
            .push_back((message_id.to_owned(), Zeroizing::new(media_key)));
    }

    fn take(&mut self, message_id: &str) -> Option<Zeroizing<[u8; 32]>> {
        let at = self.0.iter().position(|(id, _)| id == message_id)?;
        self.0.remove(at).map(|(_, key)| key)
    }
}

impl<B: Backend> Shared<B> {
    fn pending_retries(&self) -> std::sync::MutexGuard<'_, PendingRetries> {
        self.media_retries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reads a `<notification type="mediaretry">` (already acknowledged) and emits [`Event::MediaRetry`] when it
    /// answers a request of this client; answers to requests it does not know cannot be decrypted and are logged.
    pub(crate) fn on_media_retry(&self, node: &Node) {
        let notification = match MediaRetryNotification::parse(node) {
            Ok(notification) => notification,
            Err(error) => {
                warn!(%error, "malformed media retry notification");
                return;
            }
        };
        let Some(key) = self.pending_retries().take(&notification.message_id) else {
            debug!(id = %notification.message_id, "media retry answer for no request of this client");
            return;
        };
        let result = notification.decrypt(&key).map_err(ClientError::from);
        self.emit(Event::MediaRetry {
            message_id: notification.message_id,
            result,
        });
    }
}

fn http_error(error: reqwest::Error) -> ClientError {
    ClientError::Http(error.to_string())
}

impl<B: Backend> Client<B> {
    fn media_scheme(&self) -> &'static str {
        if self.shared.config.url.starts_with("ws://") {
            "http"
        } else {
            "https"
        }
    }

    async fn media_conn(&self) -> Result<MediaConn, ClientError> {
        Ok(parse_media_conn(&self.send_iq(media_conn_query()).await?)?)
    }

    /// Encrypts `data` with a fresh media key and uploads it to the first media host that takes it.
    pub async fn upload(&self, data: &[u8], media_type: MediaType) -> Result<Uploaded, ClientError> {
        let mut media_key = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(media_key.as_mut());
        let (encrypted, digest) = media::encrypt(data, &media_key, media_type);
        let conn = self.media_conn().await?;
        let path = upload_path(media_type, &digest.file_enc_sha256, &conn.auth);
        let mut last_error = ClientError::Http("no media host".to_owned());
        for host in &conn.hosts {
            let url = format!("{}://{host}{path}", self.media_scheme());
            let response = self
                .shared
                .http
                .post(&url)
                .header("Origin", whatsapp_noise::ORIGIN)
                .body(encrypted.clone())
                .send()
                .await;
            let response = match response {
                Ok(response) if response.status().is_success() => response,
                Ok(response) => {
                    last_error = ClientError::Http(format!("upload to {host}: HTTP {}", response.status()));
                    continue;
                }
                Err(error) => {
                    last_error = http_error(error);
                    continue;
                }
            };
            let body = response.text().await.map_err(http_error)?;
            let field = |name: &str| json_string(&body, name);
            let (Some(url), Some(direct_path)) = (field("url"), field("direct_path")) else {
                return Err(ClientError::Http(format!(
                    "upload answer without url/direct_path: {body}"
                )));
            };
            return Ok(Uploaded {
                url,
                direct_path,
                media_key: *media_key,
                file_sha256: digest.file_sha256,
                file_enc_sha256: digest.file_enc_sha256,
                file_length: digest.file_length,
            });
        }
        Err(last_error)
    }

    /// Uploads `data` and sends it to `to` (a user or a group) as a document.
    pub async fn send_document(
        &self,
        to: &Jid,
        data: &[u8],
        mimetype: &str,
        file_name: &str,
    ) -> Result<SendResponse, ClientError> {
        let uploaded = self.upload(data, MediaType::Document).await?;
        let document = media_message!(DocumentMessage, uploaded, mimetype, {
            title: Some(file_name.to_owned()),
            file_name: Some(file_name.to_owned()),
        });
        let message = Message {
            document_message: Some(Box::new(document)),
            ..Default::default()
        };
        self.send_message(to, &message).await
    }

    /// Uploads a JPEG, PNG, GIF or WebP image and sends it to `to` with its mimetype (from the content),
    /// dimensions and a JPEG thumbnail of at most 100 pixels a side. An image that does not decode is refused
    /// before anything is uploaded.
    pub async fn send_image(
        &self,
        to: &Jid,
        data: &[u8],
        caption: Option<&str>,
    ) -> Result<SendResponse, ClientError> {
        let info = media_info::image_info(data)?;
        let uploaded = self.upload(data, MediaType::Image).await?;
        let image = media_message!(ImageMessage, uploaded, media_info::mimetype(data), {
            caption: caption.map(str::to_owned),
            width: Some(info.width),
            height: Some(info.height),
            jpeg_thumbnail: Some(info.jpeg_thumbnail),
        });
        let message = Message {
            image_message: Some(Box::new(image)),
            ..Default::default()
        };
        self.send_message(to, &message).await
    }

    /// Uploads a video and sends it to `to`. For MP4, QuickTime and 3GP files the message carries the duration
    /// (`mvhd`) and frame size (`tkhd`) from the file's headers; no thumbnail is made, since that would mean
    /// decoding video (see [`Client::send_video_with`] to pass one).
    pub async fn send_video(
        &self,
        to: &Jid,
        data: &[u8],
        caption: Option<&str>,
    ) -> Result<SendResponse, ClientError> {
        self.send_video_with(to, data, caption, None).await
    }

    /// [`Client::send_video`] with a preview: `thumbnail` is a small JPEG (WhatsApp shows previews of about
    /// 100 pixels a side, blurred) that the caller made, e.g. from a frame with a video tool; this library decodes
    /// no video. A thumbnail that is not a JPEG is refused before anything is uploaded.
    pub async fn send_video_with(
        &self,
        to: &Jid,
        data: &[u8],
        caption: Option<&str>,
        thumbnail: Option<&[u8]>,
    ) -> Result<SendResponse, ClientError> {
        if let Some(thumbnail) = thumbnail
            && media_info::mimetype(thumbnail) != "image/jpeg"
        {
            return Err(media_info::MediaInfoError::NotAnImage.into());
        }
        let info = media_info::mp4_info(data);
        let uploaded = self.upload(data, MediaType::Video).await?;
        let video = media_message!(VideoMessage, uploaded, media_info::mimetype(data), {
            caption: caption.map(str::to_owned),
            seconds: info.duration.map(whole_seconds),
            width: info.dimensions.map(|(width, _)| width),
            height: info.dimensions.map(|(_, height)| height),
            jpeg_thumbnail: thumbnail.map(<[u8]>::to_vec),
        });
        let message = Message {
            video_message: Some(Box::new(video)),
            ..Default::default()
        };
        self.send_message(to, &message).await
    }

    /// Uploads audio and sends it to `to`; `voice` sends it as a voice message (push-to-talk), which WhatsApp
    /// expects as Ogg Opus. The duration is filled in for Ogg Opus, MP4/M4A and WAV files from their headers, and
    /// for MP3 from a Xing/Info or VBRI header or else estimated from the first frame's bitrate (exact for
    /// constant-bitrate files).
    pub async fn send_audio(&self, to: &Jid, data: &[u8], voice: bool) -> Result<SendResponse, ClientError> {
        let seconds = media_info::duration(data).map(whole_seconds);
        let uploaded = self.upload(data, MediaType::Audio).await?;
        let audio = media_message!(AudioMessage, uploaded, media_info::mimetype(data), {
            seconds: seconds,
            ptt: Some(voice),
        });
        let message = Message {
            audio_message: Some(Box::new(audio)),
            ..Default::default()
        };
        self.send_message(to, &message).await
    }

    /// Uploads a WebP image and sends it to `to` as a sticker, with its dimensions and whether it is animated.
    pub async fn send_sticker(&self, to: &Jid, data: &[u8]) -> Result<SendResponse, ClientError> {
        if media_info::mimetype(data) != "image/webp" {
            return Err(ClientError::Unsupported("stickers other than WebP images"));
        }
        let (width, height) = media_info::image_dimensions(data)?;
        let uploaded = self.upload(data, MediaType::Image).await?;
        let sticker = media_message!(StickerMessage, uploaded, "image/webp", {
            width: Some(width),
            height: Some(height),
            is_animated: Some(media_info::is_animated_webp(data)),
        });
        let message = Message {
            sticker_message: Some(Box::new(sticker)),
            ..Default::default()
        };
        self.send_message(to, &message).await
    }

    /// Downloads and decrypts the media of a received message, checking the encrypted and plain hashes. The
    /// download is decrypted as it arrives; nothing but the plaintext is held. A file the media host no longer
    /// has is [`ClientError::MediaExpired`]: see [`request_media_retry`](Self::request_media_retry).
    pub async fn download(&self, media: &MediaRef) -> Result<Vec<u8>, ClientError> {
        // A spool with no threshold never leaves memory.
        match self
            .download_spooled(media, Spool::new(usize::MAX, std::path::PathBuf::new()))
            .await?
        {
            Spooled::Memory(plaintext) => Ok(plaintext),
            Spooled::File(_) => Err(ClientError::Unsupported("a download spooled without a threshold")),
        }
    }

    /// [`download`](Self::download) into `spool`: the plaintext goes to memory, or to a temporary file once it
    /// passes the spool's threshold. The MAC and both hashes are checked before the result is returned, so a
    /// file that is returned holds verified bytes.
    pub(crate) async fn download_spooled(
        &self,
        media: &MediaRef,
        mut spool: Spool,
    ) -> Result<Spooled, ClientError> {
        let key = Zeroizing::new(media.key()?);
        let conn = self.media_conn().await?;
        let path = download_path(&media.direct_path, &media.file_enc_sha256, media.media_type);
        let mut last_error = ClientError::Http("no media host".to_owned());
        for host in &conn.hosts {
            let url = format!("{}://{host}{path}", self.media_scheme());
            let mut response = match self.shared.http.get(&url).send().await {
                Ok(response) if response.status().is_success() => response,
                Ok(response) => {
                    let status = response.status().as_u16();
                    last_error = match status {
                        403 | 404 | 410 => ClientError::MediaExpired { status },
                        _ => ClientError::Http(format!("download from {host}: HTTP {status}")),
                    };
                    continue;
                }
                Err(error) => {
                    last_error = http_error(error);
                    continue;
                }
            };
            let mut decryptor = MediaDecryptor::new(&key, media.media_type);
            let mut plaintext = Vec::new();
            while let Some(chunk) = response.chunk().await.map_err(http_error)? {
                decryptor.update(&chunk, &mut plaintext);
                if plaintext.len() >= WRITE_BATCH {
                    spool.write(std::mem::take(&mut plaintext)).await?;
                }
            }
            let digest = decryptor.finish(&mut plaintext)?;
            if digest.file_enc_sha256.as_slice() != media.file_enc_sha256.as_slice()
                || digest.file_sha256.as_slice() != media.file_sha256.as_slice()
            {
                return Err(ClientError::Media(media::MediaError::BadHash));
            }
            spool.write(plaintext).await?;
            return Ok(spool.finish());
        }
        Err(last_error)
    }

    /// Asks this account's phone to upload the media of a received (or sent) message again, after
    /// [`download`](Self::download) failed with [`ClientError::MediaExpired`]. Returns once the server took the
    /// request; the phone's answer arrives as [`Event::MediaRetry`] naming `info.id`, with the new direct path to
    /// put in `media` on success.
    pub async fn request_media_retry(&self, info: &MessageInfo, media: &MediaRef) -> Result<(), ClientError> {
        let key = Zeroizing::new(media.key()?);
        let own = self.shared.own_jid().await?;
        let mut iv = [0u8; media_retry::IV_LEN];
        rand::rngs::OsRng.fill_bytes(&mut iv);
        let target = RetryTarget {
            id: &info.id,
            chat: &info.chat,
            from_me: info.is_from_me,
            participant: info.is_group.then_some(&info.sender),
        };
        let receipt = media_retry::retry_receipt(&own, &target, &key, iv);
        // Registered before sending: the answer may be read before this task sees the server's ack.
        self.shared.pending_retries().insert(&info.id, *key);
        let sent = self.send_and_wait_ack(receipt).await;
        if sent.is_err() {
            self.shared.pending_retries().take(&info.id);
        }
        sent.map(drop)
    }
}

/// The string value of `"name": "..."` in a small flat JSON object (the media host's answer); escapes other
/// than `\/` do not occur in its values.
fn json_string(body: &str, name: &str) -> Option<String> {
    let key = format!("\"{name}\"");
    let after = &body[body.find(&key)? + key.len()..];
    let value = after
        .trim_start()
        .strip_prefix(':')?
        .trim_start()
        .strip_prefix('"')?;
    let end = value.find('"')?;
    Some(value[..end].replace("\\/", "/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_answers_are_read() {
        let body =
            r#"{"url":"https:\/\/mmg.whatsapp.net\/v\/t62?x=1","direct_path" : "/v/t62?x=1","handle":null}"#;
        assert_eq!(
            json_string(body, "url").as_deref(),
            Some("https://mmg.whatsapp.net/v/t62?x=1")
        );
        assert_eq!(json_string(body, "direct_path").as_deref(), Some("/v/t62?x=1"));
        assert_eq!(json_string(body, "missing"), None);
        assert_eq!(json_string(r#"{"url": 5}"#, "url"), None);
    }

    #[test]
    fn media_refs_need_every_field() {
        let document = DocumentMessage {
            direct_path: Some("/d".to_owned()),
            media_key: Some(vec![1; 32]),
            file_enc_sha256: Some(vec![2; 32]),
            file_sha256: Some(vec![3; 32]),
            ..Default::default()
        };
        let message = Message {
            document_message: Some(Box::new(document.clone())),
            ..Default::default()
        };
        let media = MediaRef::of(&message).unwrap();
        assert_eq!(media.media_type, MediaType::Document);
        let incomplete = Message {
            document_message: Some(Box::new(DocumentMessage {
                media_key: None,
                ..document
            })),
            ..Default::default()
        };
        assert_eq!(MediaRef::of(&incomplete), None);
        assert_eq!(MediaRef::of(&Message::default()), None);
    }
}
