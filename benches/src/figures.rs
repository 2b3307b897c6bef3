//! Figures a benchmark measures outside criterion (peak memory, one-off rates): printed, and appended to the file
//! named by `WHATSAPP_BENCH_FIGURES` when it is set, one tab-separated `group, name, value, unit` line each, for
//! `cargo xtask bench` to put in docs/PERFORMANCE.md.

use std::io::Write;

/// The environment variable naming the figures file.
pub const FIGURES_ENV: &str = "WHATSAPP_BENCH_FIGURES";

/// Prints a figure and records it when `WHATSAPP_BENCH_FIGURES` is set. A figures file that cannot be written
/// is reported on stderr; the benchmark goes on.
pub fn record(group: &str, name: &str, value: f64, unit: &str) {
    println!("{group}/{name}: {value:.2} {unit}");
    let Some(path) = std::env::var_os(FIGURES_ENV) else {
        return;
    };
    let line = format!("{group}\t{name}\t{value}\t{unit}\n");
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut file| file.write_all(line.as_bytes()));
    if let Err(error) = written {
        eprintln!("{}: {error}", std::path::Path::new(&path).display());
    }
}

/// Records a note (a skipped part, a condition of the run) as a figure without a value.
pub fn note(group: &str, text: &str) {
    println!("{group}: {text}");
    if let Some(path) = std::env::var_os(FIGURES_ENV) {
        let line = format!("{group}\t{text}\t\t\n");
        let _ = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut file| file.write_all(line.as_bytes()));
    }
}
