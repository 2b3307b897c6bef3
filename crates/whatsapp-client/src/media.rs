//! Media transfer: upload an encrypted file to the media host the server names (`media_conn`), send documents,
//! and download and decrypt the media of a received message, chunk by chunk (protocol-facts §3.9).
//!
//! The media host is reached over HTTPS, or plain HTTP when the client talks to a test server over `ws://`.

use rand::RngCore;
use whatsapp_binary::Jid;
use whatsapp_core::media::{
    self, MediaConn, MediaDecryptor, MediaType, download_path, media_conn_query, parse_media_conn,
    upload_path,
};
use whatsapp_proto::e2e::Message;
use whatsapp_proto::e2e::message::DocumentMessage;
use whatsapp_store::Backend;
use zeroize::{Zeroize, Zeroizing};

use crate::{Client, ClientError, SendResponse, unix_now};

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
    /// The download path.
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
        let message = Message {
            document_message: Some(Box::new(DocumentMessage {
                url: Some(uploaded.url.clone()),
                mimetype: Some(mimetype.to_owned()),
                title: Some(file_name.to_owned()),
                file_sha256: Some(uploaded.file_sha256.to_vec()),
                file_length: Some(uploaded.file_length),
                media_key: Some(uploaded.media_key.to_vec()),
                file_name: Some(file_name.to_owned()),
                file_enc_sha256: Some(uploaded.file_enc_sha256.to_vec()),
                direct_path: Some(uploaded.direct_path.clone()),
                media_key_timestamp: Some(unix_now().as_secs() as i64),
                ..Default::default()
            })),
            ..Default::default()
        };
        self.send_message(to, &message).await
    }

    /// Downloads and decrypts the media of a received message, checking the encrypted and plain hashes. The
    /// download is decrypted as it arrives; nothing but the plaintext is held.
    pub async fn download(&self, media: &MediaRef) -> Result<Vec<u8>, ClientError> {
        let key: [u8; 32] = media
            .media_key
            .as_slice()
            .try_into()
            .map_err(|_| ClientError::Malformed("media key is not 32 bytes".to_owned()))?;
        let conn = self.media_conn().await?;
        let path = download_path(&media.direct_path, &media.file_enc_sha256, media.media_type);
        let mut last_error = ClientError::Http("no media host".to_owned());
        for host in &conn.hosts {
            let url = format!("{}://{host}{path}", self.media_scheme());
            let mut response = match self.shared.http.get(&url).send().await {
                Ok(response) if response.status().is_success() => response,
                Ok(response) => {
                    last_error =
                        ClientError::Http(format!("download from {host}: HTTP {}", response.status()));
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
            }
            let digest = decryptor.finish(&mut plaintext)?;
            if digest.file_enc_sha256.as_slice() != media.file_enc_sha256.as_slice()
                || digest.file_sha256.as_slice() != media.file_sha256.as_slice()
            {
                return Err(ClientError::Media(media::MediaError::BadHash));
            }
            return Ok(plaintext);
        }
        Err(last_error)
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
