//! Large downloads kept on disk: a history blob can be hundreds of mebibytes compressed, so past a threshold the
//! decrypted bytes go to a temporary file instead of memory, and are read back from it on a blocking thread.
//!
//! The file is created in the spool directory (the system's temporary directory unless the client was built with
//! another) with a name no other file has, readable by its owner alone on Unix, and removed when its
//! [`TempFile`] is dropped, whether the blob was used or the download failed.

use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::ClientError;

/// Blobs up to this size stay in memory; larger ones are spooled to a temporary file. 8 MiB: the size of a
/// typical initial history chunk, well above app-state blobs, and little memory even on small machines.
pub(crate) const DEFAULT_SPOOL_THRESHOLD: usize = 8 * 1024 * 1024;

/// Decrypted bytes are written to the file in batches of at least this size, so the blocking-thread hand-off
/// happens once per mebibyte rather than once per network chunk.
pub(crate) const WRITE_BATCH: usize = 1024 * 1024;

/// A temporary file that is removed when dropped.
#[derive(Debug)]
pub(crate) struct TempFile {
    path: PathBuf,
}

impl TempFile {
    /// Creates a new empty file in `dir` under a name no other file has (`create_new` refuses an existing one).
    fn create(dir: &Path) -> std::io::Result<(TempFile, File)> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "whatsapp-download-{}-{}-{:016x}.tmp",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            rand::random::<u64>()
        );
        let path = dir.join(name);
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let file = options.open(&path)?;
        Ok((TempFile { path }, file))
    }

    /// Where the file is.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        // Nothing to do about a file that cannot be removed but say so.
        if let Err(error) = std::fs::remove_file(&self.path) {
            tracing::warn!(path = %self.path.display(), %error, "cannot remove a temporary file");
        }
    }
}

/// A download in progress: in memory until it grows past the threshold, then in a temporary file.
#[derive(Debug)]
pub(crate) struct Spool {
    threshold: usize,
    dir: PathBuf,
    memory: Vec<u8>,
    file: Option<(TempFile, File)>,
}

/// A finished download.
#[derive(Debug)]
pub(crate) enum Spooled {
    /// It stayed under the threshold.
    Memory(Vec<u8>),
    /// It is in this file.
    File(TempFile),
}

impl Spool {
    /// A spool that keeps up to `threshold` bytes in memory and puts larger downloads in `dir`.
    pub(crate) fn new(threshold: usize, dir: PathBuf) -> Spool {
        Spool {
            threshold,
            dir,
            memory: Vec::new(),
            file: None,
        }
    }

    /// Appends `data`; moves everything to a new temporary file once the total passes the threshold.
    pub(crate) async fn write(&mut self, data: Vec<u8>) -> Result<(), ClientError> {
        if self.file.is_none() {
            if self.memory.is_empty() {
                self.memory = data;
            } else {
                self.memory.extend_from_slice(&data);
            }
            if self.memory.len() <= self.threshold {
                return Ok(());
            }
            let dir = self.dir.clone();
            let buffered = std::mem::take(&mut self.memory);
            let created = tokio::task::spawn_blocking(move || {
                let (temp, mut file) = TempFile::create(&dir)?;
                file.write_all(&buffered)?;
                Ok::<_, std::io::Error>((temp, file))
            })
            .await
            .map_err(|error| ClientError::TempFile(std::io::Error::other(error)))?
            .map_err(ClientError::TempFile)?;
            tracing::debug!(path = %created.0.path().display(), "spooling a large download to a file");
            self.file = Some(created);
            return Ok(());
        }
        let Some((temp, mut file)) = self.file.take() else {
            return Ok(());
        };
        let (file, written) = tokio::task::spawn_blocking(move || {
            let written = file.write_all(&data);
            (file, written)
        })
        .await
        .map_err(|error| ClientError::TempFile(std::io::Error::other(error)))?;
        // Kept even on failure, so the temporary file is removed when the spool is dropped.
        self.file = Some((temp, file));
        written.map_err(ClientError::TempFile)
    }

    /// The download, in memory or in its file.
    pub(crate) fn finish(self) -> Spooled {
        match self.file {
            Some((temp, _file)) => Spooled::File(temp),
            None => Spooled::Memory(self.memory),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn small_stays_in_memory_large_goes_to_a_file_that_is_removed() {
        let dir = std::env::temp_dir();
        let mut spool = Spool::new(10, dir.clone());
        spool.write(b"0123456789".to_vec()).await.unwrap();
        assert!(matches!(spool.finish(), Spooled::Memory(bytes) if bytes == b"0123456789"));

        let mut spool = Spool::new(10, dir);
        spool.write(b"01234".to_vec()).await.unwrap();
        spool.write(b"56789ab".to_vec()).await.unwrap();
        spool.write(b"cd".to_vec()).await.unwrap();
        let Spooled::File(temp) = spool.finish() else {
            panic!("not spooled");
        };
        let path = temp.path().to_owned();
        assert_eq!(std::fs::read(&path).unwrap(), b"0123456789abcd");
        drop(temp);
        assert!(!path.exists());
    }

    #[tokio::test]
    async fn a_spool_directory_that_does_not_exist_is_an_error() {
        let mut spool = Spool::new(
            1,
            std::env::temp_dir().join("no-such-directory-for-whatsapp-spool"),
        );
        let written = spool.write(b"ab".to_vec()).await;
        assert!(matches!(written, Err(ClientError::TempFile(_))), "{written:?}");
    }
}
