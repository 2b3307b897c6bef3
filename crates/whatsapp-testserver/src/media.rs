//! The media host: a small HTTP/1.1 server on 127.0.0.1 that takes encrypted uploads and serves them back
//! (protocol-facts §3.9), and the `media_conn` IQ that tells clients where it is.
//!
//! Uploads are `POST /mms/<type>/<b64url(fileEncSha256)>?auth=..&token=..`: the server checks the auth token it
//! handed out and that the body's SHA-256 is the one named in the path, stores the bytes and answers
//! `{"url": .., "direct_path": ..}`. Downloads are `GET <direct_path>&hash=..&mms-type=..`. One request per
//! connection (`Connection: close`); bodies are limited to [`MAX_BODY`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use whatsapp_binary::Node;

use crate::state::server_jid;

/// The largest upload the host accepts.
pub(crate) const MAX_BODY: usize = 128 * 1024 * 1024;

/// Stored files by id, and the auth token uploads must carry.
#[derive(Debug)]
pub(crate) struct MediaHost {
    pub(crate) addr: SocketAddr,
    pub(crate) auth: String,
    files: Mutex<HashMap<String, Arc<Vec<u8>>>>,
}

impl MediaHost {
    /// Binds the host on 127.0.0.1 and starts serving.
    pub(crate) async fn start(auth: String) -> std::io::Result<(Arc<MediaHost>, JoinHandle<()>)> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let host = Arc::new(MediaHost {
            addr: listener.local_addr()?,
            auth,
            files: Mutex::new(HashMap::new()),
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

    /// Deletes every stored file (expired-media tests).
    pub(crate) fn forget_files(&self) {
        self.files.lock().unwrap_or_else(|p| p.into_inner()).clear();
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
        let id = hex::encode(&expected[..16]);
        let direct_path = format!("/mms-file/{kind}/{id}?ccb=11-4");
        let url = format!("http://{}{}", self.addr, direct_path);
        self.files
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, Arc::new(body));
        let json = format!("{{\"url\":\"{url}\",\"direct_path\":\"{direct_path}\"}}");
        (200, json.into_bytes())
    }

    /// Stores an encrypted file as if it had been uploaded (the phone's own uploads); returns its direct path.
    pub(crate) fn host(&self, kind: &str, encrypted: Vec<u8>) -> String {
        let id = hex::encode(&Sha256::digest(&encrypted)[..16]);
        let direct_path = format!("/mms-file/{kind}/{id}?ccb=11-4");
        self.files
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, Arc::new(encrypted));
        direct_path
    }

    fn download(&self, target: &str) -> (u16, Vec<u8>) {
        let path = target.split_once('?').map_or(target, |(path, _)| path);
        let Some(id) = path.rsplit('/').next().filter(|_| path.starts_with("/mms-file/")) else {
            return (404, Vec::new());
        };
        match self.files.lock().unwrap_or_else(|p| p.into_inner()).get(id) {
            Some(file) => (200, file.as_ref().clone()),
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
