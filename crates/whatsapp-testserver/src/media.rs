//! The media host: a small HTTP/1.1 server on 127.0.0.1 that takes encrypted uploads and serves them back
//! (protocol-facts §3.9), and the `media_conn` IQ that tells clients where it is.
//!
//! Uploads are `POST /mms/<type>/<b64url(fileEncSha256)>?auth=..&token=..`: the server checks the auth token it
//! handed out and that the body's SHA-256 is the one named in the path, stores the bytes and answers
//! `{"url": .., "direct_path": ..}`. Downloads are `GET <direct_path>&hash=..&mms-type=..`. One request per
//! connection (`Connection: close`); bodies are limited to [`MAX_BODY`].
//!
//! Expired media and retries: [`MediaHost::forget_files`] takes files offline but keeps their bytes, as the
//! sender's phone keeps the original. A `<receipt type="server-error">` (protocol-facts §3.9) is answered for the
//! account's phone by [`MediaHost::answer_retry`]: for a message the test registered with
//! `TestServer::rehost_on_media_retry` (the phone's knowledge of the message: its media key and file), the request
//! is decrypted and checked, the file is hosted again under a new direct path, and a `mediaretry` notification
//! encrypted with the same key names it; for any other message the notification carries `<error code="2">`
//! (not on the phone).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use whatsapp_binary::{Content, Jid, Node};
use whatsapp_proto::ProtoMessage;
use whatsapp_proto::mms_retry::media_retry_notification::ResultType;
use whatsapp_proto::mms_retry::{MediaRetryNotification, ServerErrorReceipt};

use crate::state::{server_jid, unix_now};

/// The largest upload the host accepts.
pub(crate) const MAX_BODY: usize = 128 * 1024 * 1024;

/// A file: its media type (the `/mms/<type>/` of its upload) and its encrypted bytes.
#[derive(Debug, Clone)]
struct StoredFile {
    kind: String,
    bytes: Arc<Vec<u8>>,
}

/// What the phone knows of a message whose media it can upload again.
struct RetryGrant {
    media_key: [u8; 32],
    /// The id of the file (from its encrypted SHA-256).
    file: String,
}

impl std::fmt::Debug for RetryGrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RetryGrant")
            .field("file", &self.file)
            .finish_non_exhaustive()
    }
}

/// Stored files by id, files taken offline, the retries the phones will answer, and the auth token uploads must
/// carry.
#[derive(Debug)]
pub(crate) struct MediaHost {
    pub(crate) addr: SocketAddr,
    pub(crate) auth: String,
    files: Mutex<HashMap<String, StoredFile>>,
    /// Files taken offline by [`MediaHost::forget_files`], kept for re-hosting after a media retry.
    expired: Mutex<HashMap<String, StoredFile>>,
    /// Media retries the phones answer, by message id.
    grants: Mutex<HashMap<String, RetryGrant>>,
    /// Profile and group photos (plain JPEGs, not encrypted), by path.
    pictures: Mutex<HashMap<String, Arc<Vec<u8>>>>,
}

/// The HKDF info of the media retry key (protocol-facts §3.9).
const RETRY_KEY_INFO: &[u8] = b"WhatsApp Media Retry Notification";

/// The AES-256-GCM cipher of media retry payloads: key HKDF-SHA256(media key, no salt, the info, 32).
fn retry_cipher(media_key: &[u8; 32]) -> Aes256Gcm {
    let mut key = [0u8; 32];
    // 32 bytes is far below HKDF-SHA256's output limit.
    let _ = hkdf::Hkdf::<Sha256>::new(None, media_key).expand(RETRY_KEY_INFO, &mut key);
    Aes256Gcm::new(&key.into())
}

/// The id a file is stored under: the hex of the first half of its encrypted SHA-256.
pub(crate) fn file_id(file_enc_sha256: &[u8]) -> String {
    hex::encode(&file_enc_sha256[..file_enc_sha256.len().min(16)])
}

impl MediaHost {
    /// Binds the host on 127.0.0.1 and starts serving.
    pub(crate) async fn start(auth: String) -> std::io::Result<(Arc<MediaHost>, JoinHandle<()>)> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let host = Arc::new(MediaHost {
            addr: listener.local_addr()?,
            auth,
            files: Mutex::new(HashMap::new()),
            expired: Mutex::new(HashMap::new()),
            grants: Mutex::new(HashMap::new()),
            pictures: Mutex::new(HashMap::new()),
        });
        let serving = Arc::clone(&host);
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let host = Arc::clone(&serving);
                tokio::spawn(async move {
                    if let Err(error) = host.serve(stream).await {
                        tracing::debug!(%error, "media request failed");
                    }
                });
            }
        });
        Ok((host, task))
    }

    /// How many files are stored.
    pub(crate) fn file_count(&self) -> usize {
        self.files.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Takes every stored file offline (expired-media tests); the bytes stay for a media retry.
    pub(crate) fn forget_files(&self) {
        let gone = std::mem::take(&mut *self.files.lock().unwrap_or_else(|p| p.into_inner()));
        self.expired
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(gone);
    }

    /// Lets the phone answer a media retry for `message_id`: it knows the media key and the file.
    pub(crate) fn grant_retry(&self, message_id: &str, media_key: [u8; 32], file_enc_sha256: &[u8]) {
        self.grants.lock().unwrap_or_else(|p| p.into_inner()).insert(
            message_id.to_owned(),
            RetryGrant {
                media_key,
                file: file_id(file_enc_sha256),
            },
        );
    }

    /// Hosts an offline (or still online) file again under a new id; returns its new direct path.
    fn rehost(&self, id: &str) -> Option<String> {
        let file = self
            .expired
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id)
            .or_else(|| {
                self.files
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get(id)
                    .cloned()
            })?;
        let new_id = format!("{id}-{:08x}", rand::random::<u32>());
        let direct_path = format!("/mms-file/{}/{new_id}?ccb=11-4", file.kind);
        self.files
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(new_id, file);
        Some(direct_path)
    }

    /// Answers a `<receipt type="server-error">` from `sender` for the account's phone: returns the ack and the
    /// `mediaretry` notification for the sender, or why the receipt is malformed.
    pub(crate) fn answer_retry(&self, sender: &Jid, receipt: &Node) -> Result<(Node, Node), String> {
        let id = receipt.str_attr("id").map_err(|e| e.to_string())?.to_owned();
        let to = receipt.jid_attr("to").map_err(|e| e.to_string())?;
        if to.user() != sender.user() || to.server() != sender.server() || to.device() != 0 {
            return Err(format!(
                "media retry receipt to {to}, not to the sender's own account"
            ));
        }
        let rmr = receipt.child("rmr").ok_or("media retry receipt without <rmr>")?;
        rmr.jid_attr("jid").map_err(|e| format!("<rmr>: {e}"))?;
        let encrypt = receipt
            .child("encrypt")
            .ok_or("media retry receipt without <encrypt>")?;
        let part = |tag: &str| match encrypt.child(tag).map(|n| &n.content) {
            Some(Content::Bytes(bytes)) => Ok(bytes.to_vec()),
            _ => Err(format!("media retry receipt without <{tag}>")),
        };
        let (sealed, iv) = (part("enc_p")?, part("enc_iv")?);
        if iv.len() != 12 {
            return Err(format!("media retry IV of {} bytes", iv.len()));
        }
        let ack = Node::new("ack")
            .attr("class", "receipt")
            .attr("id", id.clone())
            .attr("from", to.clone())
            .attr("type", "server-error");
        let notification = Node::new("notification")
            .attr("from", to)
            .attr("id", id.clone())
            .attr("type", "mediaretry")
            .attr("t", unix_now().to_string());
        let rmr = rmr.clone();
        let grant = self.grants.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
        let Some(grant) = grant else {
            // The phone has no such message: the server answers for it.
            let error = Node::new("error").attr("code", "2");
            return Ok((ack, notification.children([rmr, error])));
        };
        let cipher = retry_cipher(&grant.media_key);
        let opened = cipher
            .decrypt(
                Nonce::from_slice(&iv),
                Payload {
                    msg: &sealed,
                    aad: id.as_bytes(),
                },
            )
            .ok()
            .and_then(|plain| ServerErrorReceipt::decode(plain.as_slice()).ok())
            .filter(|request| request.stanza_id.as_deref() == Some(id.as_str()));
        let (result, direct_path) = match opened {
            None => (ResultType::DecryptionError, None),
            Some(_) => match self.rehost(&grant.file) {
                Some(path) => (ResultType::Success, Some(path)),
                None => (ResultType::NotFound, None),
            },
        };
        let payload = MediaRetryNotification {
            stanza_id: Some(id.clone()),
            direct_path,
            result: Some(result as i32),
            message_secret: None,
        }
        .encode_to_vec();
        let answer_iv: [u8; 12] = rand::random();
        let sealed = cipher
            .encrypt(
                Nonce::from_slice(&answer_iv),
                Payload {
                    msg: &payload,
                    aad: id.as_bytes(),
                },
            )
            .map_err(|_| "media retry answer does not encrypt".to_owned())?;
        let encrypt = Node::new("encrypt").children([
            Node::new("enc_p").bytes(sealed),
            Node::new("enc_iv").bytes(answer_iv.to_vec()),
        ]);
        Ok((ack, notification.children([rmr, encrypt])))
    }

    async fn serve(&self, stream: TcpStream) -> std::io::Result<()> {
        let mut reader = BufReader::new(stream);
        let mut request_line = String::new();
        reader.read_line(&mut request_line).await?;
        let mut content_length = 0usize;
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).await? == 0 || header == "\r\n" || header == "\n" {
                break;
            }
            if let Some((name, value)) = header.split_once(':')
                && name.trim().eq_ignore_ascii_case("content-length")
            {
                content_length = value.trim().parse().unwrap_or(usize::MAX);
            }
        }
        let mut parts = request_line.split_whitespace();
        let (method, target) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
        let (status, body) = match method {
            "POST" if content_length > MAX_BODY => (413, b"too large".to_vec()),
            "POST" => {
                let mut body = Vec::new();
                (&mut reader)
                    .take(content_length as u64)
                    .read_to_end(&mut body)
                    .await?;
                if body.len() < content_length {
                    (400, b"short body".to_vec())
                } else {
                    self.upload(target, body)
                }
            }
            "GET" => self.download(target),
            _ => (405, Vec::new()),
        };
        let reason = match status {
            200 => "OK",
            400 => "Bad Request",
            401 => "Unauthorized",
            404 => "Not Found",
            413 => "Payload Too Large",
            _ => "Method Not Allowed",
        };
        let head = format!(
            "HTTP/1.1 {status} {reason}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        let mut stream = reader.into_inner();
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(&body).await?;
        stream.shutdown().await
    }

    fn upload(&self, target: &str, body: Vec<u8>) -> (u16, Vec<u8>) {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let mut segments = path.trim_start_matches('/').split('/');
        let (Some("mms"), Some(kind), Some(token), None) =
            (segments.next(), segments.next(), segments.next(), segments.next())
        else {
            return (404, b"unknown path".to_vec());
        };
        let auth = query.split('&').find_map(|pair| pair.strip_prefix("auth="));
        if auth != Some(self.auth.as_str()) {
            return (401, b"bad auth".to_vec());
        }
        let Ok(expected) = URL_SAFE_NO_PAD.decode(token) else {
            return (400, b"bad token".to_vec());
        };
        if Sha256::digest(&body).as_slice() != expected.as_slice() {
            return (400, b"body does not match its hash".to_vec());
        }
        let id = file_id(&expected);
        let direct_path = format!("/mms-file/{kind}/{id}?ccb=11-4");
        let url = format!("http://{}{}", self.addr, direct_path);
        self.files.lock().unwrap_or_else(|p| p.into_inner()).insert(
            id,
            StoredFile {
                kind: kind.to_owned(),
                bytes: Arc::new(body),
            },
        );
        let json = format!("{{\"url\":\"{url}\",\"direct_path\":\"{direct_path}\"}}");
        (200, json.into_bytes())
    }

    /// Stores an encrypted file as if it had been uploaded (the phone's own uploads); returns its direct path.
    pub(crate) fn host(&self, kind: &str, encrypted: Vec<u8>) -> String {
        let id = hex::encode(&Sha256::digest(&encrypted)[..16]);
        let direct_path = format!("/mms-file/{kind}/{id}?ccb=11-4");
        self.files.lock().unwrap_or_else(|p| p.into_inner()).insert(
            id,
            StoredFile {
                kind: kind.to_owned(),
                bytes: Arc::new(encrypted),
            },
        );
        direct_path
    }

    /// The direct path of photo `id` of `owner` (an account's number or a group's id) in size `kind` (`image` or
    /// `preview`).
    pub(crate) fn picture_path(owner: &str, id: &str, kind: &str) -> String {
        format!("/v/t61.24694-24/{owner}_{id}_{kind}.jpg")
    }

    /// Serves a photo's JPEG at `direct_path` (photos are fetched by URL, unencrypted, as from WhatsApp's
    /// `pps` hosts); returns the full URL.
    pub(crate) fn host_picture(&self, direct_path: &str, jpeg: Vec<u8>) -> String {
        self.pictures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(direct_path.to_owned(), Arc::new(jpeg));
        format!("http://{}{direct_path}", self.addr)
    }

    fn download(&self, target: &str) -> (u16, Vec<u8>) {
        let path = target.split_once('?').map_or(target, |(path, _)| path);
        if let Some(jpeg) = self.pictures.lock().unwrap_or_else(|p| p.into_inner()).get(path) {
            return (200, jpeg.as_ref().clone());
        }
        let Some(id) = path.rsplit('/').next().filter(|_| path.starts_with("/mms-file/")) else {
            return (404, Vec::new());
        };
        match self.files.lock().unwrap_or_else(|p| p.into_inner()).get(id) {
            Some(file) => (200, file.bytes.as_ref().clone()),
            None => (404, Vec::new()),
        }
    }
}

/// The answer to `<iq xmlns="w:m" type="set"><media_conn/></iq>`: the auth token and the one host.
pub(crate) fn media_conn_answer(host: &MediaHost, id: &str) -> Node {
    Node::new("iq")
        .attr("from", server_jid())
        .attr("type", "result")
        .attr("id", id.to_owned())
        .children([Node::new("media_conn")
            .attr("auth", host.auth.clone())
            .attr("ttl", "300")
            .attr("auth_ttl", "21600")
            .attr("max_buckets", "12")
            .children([Node::new("host").attr("hostname", host.addr.to_string())])])
}
