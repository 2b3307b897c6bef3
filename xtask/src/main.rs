//! Project automation, run as `cargo xtask <command>`.
//!
//! - `ci`: everything `.ci/run` checks, in the same order (format, lints, tests, docs, tidy, fuzz smoke run).
//! - `tidy`: the repository rules no compiler checks: every `.rs` file opens with `//!` docs, and the sans-IO
//!   crates do not depend on tokio.
//! - `fuzz [--time SECONDS] [TARGET...]`: runs every cargo-fuzz target (or the named ones) for the given time.
//! - `bench [NAME...]`: runs the benchmarks under `benches/` (all, or the named ones) and writes
//!   `docs/PERFORMANCE.md` from their results.
//!
//! It does not install toolchains or system packages; `.ci/run` does that before calling it.

mod bench;
mod tidy;

use std::process::Command;

use anyhow::{Context, Result, bail};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = workspace_root()?;
    match args.first().map(String::as_str) {
        Some("ci") => ci(&root),
        Some("tidy") => tidy::run(&root),
        Some("fuzz") => fuzz(&root, &args[1..]),
        Some("bench") => bench::run(&root, &args[1..]),
        _ => bail!("usage: cargo xtask ci | tidy | fuzz [--time SECONDS] [TARGET...] | bench [NAME...]"),
    }
}

/// The workspace root: the parent of this crate's manifest directory.
fn workspace_root() -> Result<std::path::PathBuf> {
    let manifest = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .map(std::path::Path::to_path_buf)
        .context("xtask has no parent directory")
}

fn run(cmd: &mut Command) -> Result<()> {
    eprintln!("$ {cmd:?}");
    let status = cmd.status().with_context(|| format!("cannot start {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed: {status}");
    }
    Ok(())
}

/// The README's test command and every check around it.
fn ci(root: &std::path::Path) -> Result<()> {
    let cargo = || {
        let mut c = Command::new("cargo");
        c.current_dir(root);
        c
    };
    run(cargo().args(["fmt", "--all", "--check"]))?;
    run(cargo().args(["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]))?;
    run(cargo().args(["test", "--workspace"]))?;
    run(cargo()
        .args(["doc", "--workspace", "--no-deps", "--all-features"])
        .env("RUSTDOCFLAGS", "-Dwarnings"))?;
    tidy::run(root)?;
    if std::env::var_os("WHATSAPP_CI_SKIP_FUZZ").is_none() {
        fuzz(root, &["--time".to_owned(), "20".to_owned()])?;
    }
    Ok(())
}

/// Runs each cargo-fuzz target for a fixed time. Stable Rust is enough: `RUSTC_BOOTSTRAP=1` unlocks the
/// sanitizer flags cargo-fuzz passes.
fn fuzz(root: &std::path::Path, args: &[String]) -> Result<()> {
    let mut seconds = 60u64;
    let mut targets = Vec::new();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        if arg == "--time" {
            seconds = it.next().context("--time needs a number of seconds")?.parse()?;
        } else {
            targets.push(arg.clone());
        }
    }
    let fuzz_dir = root.join("fuzz");
    if targets.is_empty() {
        let out = Command::new("cargo")
            .current_dir(&fuzz_dir)
            .env("RUSTC_BOOTSTRAP", "1")
            .args(["fuzz", "list"])
            .output()
            .context("cannot run `cargo fuzz list` (install it with `cargo install cargo-fuzz`)")?;
        if !out.status.success() {
            bail!("cargo fuzz list failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        targets = String::from_utf8(out.stdout)?
            .lines()
            .map(str::to_owned)
            .collect();
    }
    for target in &targets {
        let corpus = fuzz_dir.join("corpus").join(target);
        std::fs::create_dir_all(&corpus)?;
        run(Command::new("cargo")
            .current_dir(&fuzz_dir)
            .env("RUSTC_BOOTSTRAP", "1")
            .args(["fuzz", "run", target, "--"])
            .arg(format!("-max_total_time={seconds}"))
            .arg("-rss_limit_mb=2048"))?;
    }
    Ok(())
}
