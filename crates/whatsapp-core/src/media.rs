//! Media encryption: key expansion, AES-256-CBC with a truncated HMAC, and the file hashes a message carries
//! (protocol-facts §3.9).
//!
//! A media key (32 random bytes, sent in the message) expands with HKDF-SHA256 and the media type's info string
//! into an IV, a cipher key, a MAC key and a reference key. The uploaded file is the PKCS#7-padded AES-256-CBC
//! ciphertext followed by the first 10 bytes of HMAC-SHA256(mac key, IV || ciphertext). [`MediaEncryptor`] and
//! [`MediaDecryptor`] work chunk by chunk, so a large file is never held whole; [`encrypt`] and [`decrypt`] are the
//! one-shot forms.

use aes::Aes256;
use aes::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit, generic_array::GenericArray};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, ZeroizeOnDrop};

const BLOCK: usize = 16;
/// Length of the truncated MAC appended to the ciphertext.
pub const MAC_LEN: usize = 10;

/// What kind of media a key is for; each kind has its own HKDF info string.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum MediaType {
    /// Images and stickers.
    Image,
    /// Videos and GIFs.
    Video,
    /// Audio and voice messages.
    Audio,
    /// Documents.
    Document,
    /// History sync blobs.
    History,
    /// App-state blobs.
    AppState,
    /// Sticker packs.
    StickerPack,
    /// Link preview thumbnails.
    LinkThumbnail,
}

impl MediaType {
    /// The HKDF info string (protocol-facts §3.9).
    pub fn hkdf_info(self) -> &'static str {
        match self {
            MediaType::Image => "WhatsApp Image Keys",
            MediaType::Video => "WhatsApp Video Keys",
            MediaType::Audio => "WhatsApp Audio Keys",
            MediaType::Document => "WhatsApp Document Keys",
            MediaType::History => "WhatsApp History Keys",
            MediaType::AppState => "WhatsApp App State Keys",
            MediaType::StickerPack => "WhatsApp Sticker Pack Keys",
            MediaType::LinkThumbnail => "WhatsApp Link Thumbnail Keys",
        }
    }

    /// The type in upload URLs (`/mms/<type>/`) and downloads (`mms-type=`).
    pub fn mms_type(self) -> &'static str {
        match self {
            MediaType::Image => "image",
            MediaType::Video => "video",
            MediaType::Audio => "audio",
            MediaType::Document => "document",
            MediaType::History => "md-msg-hist",
            MediaType::AppState => "md-app-state",
            MediaType::StickerPack => "sticker-pack",
            MediaType::LinkThumbnail => "thumbnail-link",
        }
    }

    /// The media type of an `mms_type` string.
    pub fn from_mms_type(mms_type: &str) -> Option<MediaType> {
        [
            MediaType::Image,
            MediaType::Video,
            MediaType::Audio,
            MediaType::Document,
            MediaType::History,
            MediaType::AppState,
            MediaType::StickerPack,
            MediaType::LinkThumbnail,
        ]
        .into_iter()
        .find(|t| t.mms_type() == mms_type)
    }
}

/// The keys a media key expands into. Zeroized on drop.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct MediaKeys {
    /// The CBC IV.
    pub iv: [u8; 16],
    /// The AES-256 key.
    pub cipher_key: [u8; 32],
    /// The HMAC-SHA256 key.
    pub mac_key: [u8; 32],
    /// The reference key (unused by the transfer itself).
    pub ref_key: [u8; 32],
}

impl std::fmt::Debug for MediaKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MediaKeys(<redacted>)")
    }
}

impl MediaKeys {
    /// HKDF-SHA256(media key, no salt, the type's info, 112 bytes) split into the four keys.
    pub fn expand(media_key: &[u8; 32], media_type: MediaType) -> MediaKeys {
        let mut okm = [0u8; 112];
        // 112 bytes is far below HKDF-SHA256's limit of 8160, so expansion cannot fail.
        let _ = Hkdf::<Sha256>::new(None, media_key).expand(media_type.hkdf_info().as_bytes(), &mut okm);
        let mut keys = MediaKeys {
            iv: [0; 16],
            cipher_key: [0; 32],
            mac_key: [0; 32],
            ref_key: [0; 32],
        };
        keys.iv.copy_from_slice(&okm[..16]);
        keys.cipher_key.copy_from_slice(&okm[16..48]);
        keys.mac_key.copy_from_slice(&okm[48..80]);
        keys.ref_key.copy_from_slice(&okm[80..]);
        okm.zeroize();
        keys
    }

    fn mac(&self) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.mac_key).unwrap_or_else(|_| unreachable!());
        mac.update(&self.iv);
        mac
    }
}

/// Why a media file did not decrypt.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone, Copy)]
#[non_exhaustive]
pub enum MediaError {
    /// The file is shorter than one block and the MAC, or its ciphertext is not whole blocks.
    #[error("media file has an impossible length")]
    BadLength,
    /// The MAC does not match: the file was damaged, or the key or media type is wrong.
    #[error("media MAC does not match")]
    BadMac,
    /// The padding after decryption is invalid.
    #[error("media padding is invalid")]
    BadPadding,
    /// The plaintext's SHA-256 is not the one the message announced.
    #[error("media SHA-256 does not match the message")]
    BadHash,
}

/// What the message about an encrypted file says about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MediaDigest {
    /// SHA-256 of the plaintext (`fileSha256`).
    pub file_sha256: [u8; 32],
    /// SHA-256 of the uploaded bytes, ciphertext and MAC (`fileEncSha256`).
    pub file_enc_sha256: [u8; 32],
    /// Plaintext length (`fileLength`).
    pub file_length: u64,
}

type Encryptor = cbc::Encryptor<Aes256>;
type Decryptor = cbc::Decryptor<Aes256>;

/// Encrypts a file chunk by chunk: [`update`](Self::update) with each piece, then [`finish`](Self::finish).
pub struct MediaEncryptor {
    cipher: Encryptor,
    mac: Hmac<Sha256>,
    plain_hash: Sha256,
    enc_hash: Sha256,
    pending: Vec<u8>,
    length: u64,
}

impl std::fmt::Debug for MediaEncryptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaEncryptor")
            .field("length", &self.length)
            .finish_non_exhaustive()
    }
}

impl MediaEncryptor {
    /// Starts encrypting with `media_key` for `media_type`.
    pub fn new(media_key: &[u8; 32], media_type: MediaType) -> MediaEncryptor {
        let keys = MediaKeys::expand(media_key, media_type);
        MediaEncryptor {
            cipher: Encryptor::new(&keys.cipher_key.into(), &keys.iv.into()),
            mac: keys.mac(),
            plain_hash: Sha256::new(),
            enc_hash: Sha256::new(),
            pending: Vec::with_capacity(BLOCK),
            length: 0,
        }
    }

    fn emit(&mut self, block: &mut [u8], out: &mut Vec<u8>) {
        self.cipher.encrypt_block_mut(GenericArray::from_mut_slice(block));
        self.mac.update(block);
        self.enc_hash.update(&*block);
        out.extend_from_slice(block);
    }

    /// Encrypts `plaintext`, appending the whole blocks it completes to `out`.
    pub fn update(&mut self, plaintext: &[u8], out: &mut Vec<u8>) {
        self.plain_hash.update(plaintext);
        self.length += plaintext.len() as u64;
        let mut input = plaintext;
        if !self.pending.is_empty() {
            let take = (BLOCK - self.pending.len()).min(input.len());
            self.pending.extend_from_slice(&input[..take]);
            input = &input[take..];
            if self.pending.len() < BLOCK {
                return;
            }
            let mut block = [0u8; BLOCK];
            block.copy_from_slice(&self.pending);
            self.pending.clear();
            self.emit(&mut block, out);
        }
        let whole = input.len() / BLOCK * BLOCK;
        out.reserve(whole);
        for chunk in input[..whole].chunks_exact(BLOCK) {
            let mut block = [0u8; BLOCK];
            block.copy_from_slice(chunk);
            self.emit(&mut block, out);
        }
        self.pending.extend_from_slice(&input[whole..]);
    }

    /// Pads and encrypts the last block, appends the MAC to `out`, and returns the digest.
    pub fn finish(mut self, out: &mut Vec<u8>) -> MediaDigest {
        let pad = BLOCK - self.pending.len();
        let mut block = [pad as u8; BLOCK];
        block[..self.pending.len()].copy_from_slice(&self.pending);
        self.emit(&mut block, out);
        let tag = self.mac.finalize().into_bytes();
        out.extend_from_slice(&tag[..MAC_LEN]);
        self.enc_hash.update(&tag[..MAC_LEN]);
        MediaDigest {
            file_sha256: self.plain_hash.finalize().into(),
            file_enc_sha256: self.enc_hash.finalize().into(),
            file_length: self.length,
        }
    }
}

/// Decrypts a downloaded file chunk by chunk, holding back only the MAC and the last block until
/// [`finish`](Self::finish) checks them. Output written before `finish` is not yet authenticated: a caller
/// streaming it somewhere must discard it when `finish` fails.
pub struct MediaDecryptor {
    cipher: Decryptor,
    mac: Hmac<Sha256>,
    plain_hash: Sha256,
    enc_hash: Sha256,
    held: Vec<u8>,
    length: u64,
}

impl std::fmt::Debug for MediaDecryptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaDecryptor")
            .field("length", &self.length)
            .finish_non_exhaustive()
    }
}

/// Bytes the decryptor keeps back: the MAC and the final (padded) block.
const HELD: usize = MAC_LEN + BLOCK;

impl MediaDecryptor {
    /// Starts decrypting with `media_key` for `media_type`.
    pub fn new(media_key: &[u8; 32], media_type: MediaType) -> MediaDecryptor {
        let keys = MediaKeys::expand(media_key, media_type);
        MediaDecryptor {
            cipher: Decryptor::new(&keys.cipher_key.into(), &keys.iv.into()),
            mac: keys.mac(),
            plain_hash: Sha256::new(),
            enc_hash: Sha256::new(),
            held: Vec::with_capacity(2 * HELD),
            length: 0,
        }
    }

    fn open(&mut self, block: &mut [u8]) {
        self.mac.update(block);
        self.cipher.decrypt_block_mut(GenericArray::from_mut_slice(block));
    }

    /// Feeds downloaded bytes; appends the plaintext of the blocks that are certainly not the last to `out`.
    pub fn update(&mut self, data: &[u8], out: &mut Vec<u8>) {
        self.enc_hash.update(data);
        self.held.extend_from_slice(data);
        if self.held.len() <= HELD {
            return;
        }
        let ready = (self.held.len() - HELD) / BLOCK * BLOCK;
        out.reserve(ready);
        let mut held = std::mem::take(&mut self.held);
        for chunk in held[..ready].chunks_exact_mut(BLOCK) {
            self.open(chunk);
            self.plain_hash.update(&*chunk);
            self.length += BLOCK as u64;
            out.extend_from_slice(chunk);
        }
        held.drain(..ready);
        self.held = held;
    }

    /// Checks the MAC, decrypts the last block, strips the padding and returns the digest. On error, everything
    /// written to `out` so far must be discarded.
    pub fn finish(mut self, out: &mut Vec<u8>) -> Result<MediaDigest, MediaError> {
        if self.held.len() < HELD || !(self.held.len() - MAC_LEN).is_multiple_of(BLOCK) {
            return Err(MediaError::BadLength);
        }
        let mac_at = self.held.len() - MAC_LEN;
        let (blocks, tag) = self.held.split_at(mac_at);
        let tag = tag.to_vec();
        let mut blocks = blocks.to_vec();
        let last_at = blocks.len() - BLOCK;
        for chunk in blocks[..last_at].chunks_exact_mut(BLOCK) {
            self.open(chunk);
            self.plain_hash.update(&*chunk);
            self.length += BLOCK as u64;
            out.extend_from_slice(chunk);
        }
        let mut last = [0u8; BLOCK];
        last.copy_from_slice(&blocks[last_at..]);
        self.mac.update(&last);
        let expected = self.mac.finalize().into_bytes();
        if !bool::from(subtle::ConstantTimeEq::ct_eq(
            &expected[..MAC_LEN],
            tag.as_slice(),
        )) {
            return Err(MediaError::BadMac);
        }
        self.cipher
            .decrypt_block_mut(GenericArray::from_mut_slice(&mut last));
        let pad = usize::from(last[BLOCK - 1]);
        if pad == 0 || pad > BLOCK || last[BLOCK - pad..].iter().any(|&b| usize::from(b) != pad) {
            return Err(MediaError::BadPadding);
        }
        let tail = &last[..BLOCK - pad];
        self.plain_hash.update(tail);
        self.length += tail.len() as u64;
        out.extend_from_slice(tail);
        Ok(MediaDigest {
            file_sha256: self.plain_hash.finalize().into(),
            file_enc_sha256: self.enc_hash.finalize().into(),
            file_length: self.length,
        })
    }
}

/// Encrypts a whole file: the bytes to upload and their digest.
pub fn encrypt(plaintext: &[u8], media_key: &[u8; 32], media_type: MediaType) -> (Vec<u8>, MediaDigest) {
    let mut out = Vec::with_capacity(plaintext.len() + BLOCK + MAC_LEN);
    let mut encryptor = MediaEncryptor::new(media_key, media_type);
    encryptor.update(plaintext, &mut out);
    let digest = encryptor.finish(&mut out);
    (out, digest)
}

/// Decrypts a whole downloaded file and checks it against the message's `fileSha256` when given.
pub fn decrypt(
    data: &[u8],
    media_key: &[u8; 32],
    media_type: MediaType,
    file_sha256: Option<&[u8]>,
) -> Result<Vec<u8>, MediaError> {
    let mut out = Vec::with_capacity(data.len());
    let mut decryptor = MediaDecryptor::new(media_key, media_type);
    decryptor.update(data, &mut out);
    let digest = decryptor.finish(&mut out)?;
    if file_sha256.is_some_and(|expected| expected != digest.file_sha256) {
        return Err(MediaError::BadHash);
    }
    Ok(out)
}

/// `<iq xmlns="w:m" type="set"><media_conn/></iq>`: where and with what token to upload.
pub fn media_conn_query() -> whatsapp_binary::Node {
    whatsapp_binary::Node::new("iq")
        .attr("xmlns", "w:m")
        .attr("type", "set")
        .attr("to", crate::server_jid())
        .children([whatsapp_binary::Node::new("media_conn")])
}

/// The media hosts and upload token from a `media_conn` answer.
#[derive(Clone, PartialEq, Eq)]
pub struct MediaConn {
    /// The upload auth token.
    pub auth: String,
    /// How long the answer may be reused, seconds.
    pub ttl: u64,
    /// Host names (with a port for test servers), to try in order.
    pub hosts: Vec<String>,
}

impl std::fmt::Debug for MediaConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaConn")
            .field("ttl", &self.ttl)
            .field("hosts", &self.hosts)
            .finish_non_exhaustive()
    }
}

/// Reads the answer to [`media_conn_query`].
pub fn parse_media_conn(result: &whatsapp_binary::Node) -> Result<MediaConn, crate::ResponseError> {
    use crate::ResponseError;
    let conn = result
        .child("media_conn")
        .ok_or(ResponseError::Missing("media_conn"))?;
    let hosts: Vec<String> = conn
        .children_by_tag("host")
        .filter_map(|host| host.optional_str_attr("hostname"))
        .map(str::to_owned)
        .collect();
    if hosts.is_empty() {
        return Err(ResponseError::Missing("media_conn/host"));
    }
    Ok(MediaConn {
        auth: conn
            .optional_str_attr("auth")
            .ok_or(ResponseError::Missing("media_conn auth"))?
            .to_owned(),
        ttl: conn
            .optional_str_attr("ttl")
            .and_then(|t| t.parse().ok())
            .unwrap_or(0),
        hosts,
    })
}

fn b64url(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Percent-encodes everything but the URL-safe characters.
fn query_escape(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => char::from(b).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The path and query of an upload: `/mms/<type>/<b64url(fileEncSha256)>?auth=..&token=..`.
pub fn upload_path(media_type: MediaType, file_enc_sha256: &[u8; 32], auth: &str) -> String {
    let token = b64url(file_enc_sha256);
    format!(
        "/mms/{}/{token}?auth={}&token={token}",
        media_type.mms_type(),
        query_escape(auth)
    )
}

/// The path and query of a download: the message's direct path with the hash and type appended.
pub fn download_path(direct_path: &str, file_enc_sha256: &[u8], media_type: MediaType) -> String {
    let separator = if direct_path.contains('?') { '&' } else { '?' };
    format!(
        "{direct_path}{separator}hash={}&mms-type={}&__wa-mms=",
        b64url(file_enc_sha256),
        media_type.mms_type()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_conn_and_paths() {
        use whatsapp_binary::Node;
        let answer = Node::new("iq").children([Node::new("media_conn")
            .attr("auth", "a+b/c=")
            .attr("ttl", "300")
            .children([
                Node::new("host").attr("hostname", "mmg.whatsapp.net"),
                Node::new("host").attr("hostname", "media.fxxx1-1.fna.whatsapp.net"),
            ])]);
        let conn = parse_media_conn(&answer).unwrap();
        assert_eq!(conn.hosts.len(), 2);
        assert_eq!(conn.ttl, 300);
        let path = upload_path(MediaType::Image, &[0xFB; 32], &conn.auth);
        assert!(path.starts_with("/mms/image/-_v7"), "{path}");
        assert!(path.contains("auth=a%2Bb%2Fc%3D&token="), "{path}");
        assert_eq!(
            download_path("/v/t62/abc?ccb=11-4", &[0xFB; 2], MediaType::Document),
            "/v/t62/abc?ccb=11-4&hash=-_s&mms-type=document&__wa-mms="
        );
        assert!(
            parse_media_conn(&Node::new("iq").children([Node::new("media_conn").attr("auth", "x")])).is_err()
        );
        assert!(!format!("{conn:?}").contains("a+b"), "the token is not printed");
    }
}
