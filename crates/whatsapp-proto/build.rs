//! Generates the prost types from the schema in the workspace's `proto/` directory.
//!
//! protox compiles the `.proto` files in pure Rust, so no system `protoc` is needed.

use std::path::PathBuf;

/// The schema modules, one file each under `proto/`.
const MODULES: &[&str] = &[
    "adv",
    "cert",
    "companion_reg",
    "e2e",
    "handshake",
    "history_sync",
    "mms_retry",
    "server_sync",
    "signal",
    "sync_action",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let proto_dir = manifest.join("../../proto");
    let files: Vec<PathBuf> = MODULES
        .iter()
        .map(|m| proto_dir.join(format!("{m}.proto")))
        .collect();
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
    }
    let descriptors = protox::compile(&files, [&proto_dir])?;
    prost_build::Config::new().compile_fds(descriptors)?;
    Ok(())
}
