//! Reports the peak memory of decoding, verifying and applying a 50,000-contact app-state snapshot.
//!
//! The snapshot is built and written to a temporary file first; a fresh child process (this binary with
//! `decode FILE`) then reads it and decodes it, so its peak resident set size (`VmHWM` in `/proc/self/status`,
//! Linux) covers the decode and not the building.

use std::process::{Command, ExitCode};
use std::time::Instant;

use whatsapp_appstate::{CollectionState, decode_snapshot, parse_snapshot};
use whatsapp_benches::appstate::{COLLECTION, SNAPSHOT_RECORDS, contacts_snapshot, key_lookup};

/// A `/proc/self/status` field in kB.
fn status_kb(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|line| line.starts_with(field))?;
            line.split_whitespace().nth(1)?.parse().ok()
        })
        .unwrap_or(0)
}

fn decode(path: &str) -> ExitCode {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) => {
            eprintln!("{path}: {error}");
            return ExitCode::FAILURE;
        }
    };
    let before = status_kb("VmRSS:");
    let start = Instant::now();
    let lookup = key_lookup();
    let result = parse_snapshot(&bytes).and_then(|snapshot| {
        let decoded = decode_snapshot(COLLECTION, &snapshot, &lookup)?;
        let mut state = CollectionState::new();
        state.apply(&decoded.update);
        Ok((state, decoded.mutations.len()))
    });
    let elapsed = start.elapsed();
    let peak = status_kb("VmHWM:");
    match result {
        Ok((state, mutations)) => {
            println!("snapshot: {mutations} records, {} bytes", bytes.len());
            println!(
                "decoded, verified and applied {mutations} mutations ({} live indexes) in {elapsed:.2?}: {:.0} mutations/s",
                state.index_value_macs.len(),
                mutations as f64 / elapsed.as_secs_f64()
            );
            println!(
                "RSS with the snapshot bytes loaded: {before} kB; peak RSS: {peak} kB; decode added {} kB",
                peak.saturating_sub(before)
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("decode failed: {error}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if let [_, mode, path] = args.as_slice()
        && mode == "decode"
    {
        return decode(path);
    }
    let path = std::env::temp_dir().join(format!("appstate-snapshot-{}.bin", std::process::id()));
    let written = std::fs::write(&path, contacts_snapshot(SNAPSHOT_RECORDS));
    let status = written.and_then(|()| {
        Command::new(std::env::current_exe()?)
            .arg("decode")
            .arg(&path)
            .status()
    });
    let _ = std::fs::remove_file(&path);
    match status {
        Ok(status) if status.success() => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("{}: {error}", path.display());
            ExitCode::FAILURE
        }
    }
}
