//! `cargo xtask bench [NAME...]` (or `--report-only`: the report from the results already there): runs the criterion benches of `whatsapp-benches` (all of them, or the named
//! ones) with short warm-up and measurement times, then writes `docs/PERFORMANCE.md` from the results.
//!
//! Every bench runs on its own, with the machine's load average recorded before and after it, because the machine
//! may be shared. Results live in `<target>/bench-report/<bench>/`: criterion's output (`CRITERION_HOME`) and the
//! figures the bench measures outside criterion (`WHATSAPP_BENCH_FIGURES`, tab-separated lines). Running some
//! benches again (when the load is lower) replaces only their results; the report always covers every bench that
//! has results.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde_json::Value;

/// The benches, in the order they run and appear in the report: criterion benches, then the measurement
/// binaries of `benches/src/bin/` that record figures.
const BENCHES: &[&str] = &[
    "group_send",
    "history",
    "receive",
    "signal",
    "binary",
    "noise",
    "appstate",
    "store",
    "idle_clients",
    "many_clients",
];

/// The measurement binaries among [`BENCHES`], with the environment variable that sets their argument (the
/// number of clients) and its default. `many_clients` needs PostgreSQL (`WHATSAPP_TEST_POSTGRES_URL`) and records
/// that it skipped without it.
const BINARIES: &[(&str, &str, &str)] = &[
    ("idle_clients", "WHATSAPP_BENCH_IDLE_CLIENTS", "200"),
    ("many_clients", "WHATSAPP_BENCH_MANY_CLIENTS", "1000"),
];

/// Criterion options for the whole run: short, so a full run stays within a few minutes.
const CRITERION_ARGS: &[&str] = &["--warm-up-time", "1", "--measurement-time", "3"];

/// Comparisons shown side by side: (criterion group, ours, the other, what the other is).
const COMPARISONS: &[(&str, &str, &str, &str)] = &[
    (
        "group_send",
        "next_send_tracked",
        "next_send_skdm_every_send",
        "whatsmeow's policy (SKDM to every device on every send), same code",
    ),
    (
        "history",
        "streaming_reader",
        "prost_whole_blob",
        "inflate whole, decode with prost in one go",
    ),
    ("binary_decode", "ours_tree", "wacore_ref", "wacore-binary 0.7.0"),
    (
        "binary_decode",
        "ours_owned",
        "wacore_owned",
        "wacore-binary 0.7.0",
    ),
    ("binary_encode", "ours", "wacore_marshal", "wacore-binary 0.7.0"),
];

/// Runs the benches and writes the report.
pub(crate) fn run(root: &Path, names: &[String]) -> Result<()> {
    let report = target_dir(root).join("bench-report");
    if names.first().map(String::as_str) == Some("--report-only") {
        // The report from the results already there, for a run that was cut short.
        let doc = render(root, &report, "cargo xtask bench --report-only", 0.0)?;
        std::fs::write(root.join("docs/PERFORMANCE.md"), doc)?;
        return Ok(());
    }
    for name in names {
        if !BENCHES.contains(&name.as_str()) {
            bail!("unknown bench {name}; the benches are {}", BENCHES.join(", "));
        }
    }
    let selected: Vec<&str> = if names.is_empty() {
        BENCHES.to_vec()
    } else {
        BENCHES
            .iter()
            .copied()
            .filter(|b| names.iter().any(|n| n == b))
            .collect()
    };
    std::fs::create_dir_all(&report).with_context(|| format!("cannot create {}", report.display()))?;
    let started = Instant::now();
    crate::run(Command::new("cargo").current_dir(root).args([
        "bench",
        "-p",
        "whatsapp-benches",
        "--no-run",
    ]))?;
    for bench in &selected {
        let dir = report.join(bench);
        if dir.exists() {
            std::fs::remove_dir_all(&dir).with_context(|| format!("cannot clear {}", dir.display()))?;
        }
        std::fs::create_dir_all(&dir)?;
        let load_before = load_average();
        let bench_started = Instant::now();
        // The measurement binaries were built by `cargo bench --no-run`, with the benches' feature set (which
        // `cargo run` would not reuse).
        let binary = BINARIES.iter().find(|(name, _, _)| name == bench);
        let mut cargo = if let Some((_, env, default)) = binary {
            let mut binary = Command::new(target_dir(root).join("release").join(bench));
            binary.arg(std::env::var(env).unwrap_or_else(|_| (*default).to_owned()));
            binary
        } else {
            Command::new("cargo")
        };
        cargo
            .current_dir(root)
            .env("CRITERION_HOME", dir.join("criterion"))
            .env("WHATSAPP_BENCH_FIGURES", dir.join("figures.tsv"));
        if binary.is_none() {
            cargo
                .args(["bench", "-p", "whatsapp-benches", "--bench", bench, "--"])
                .args(CRITERION_ARGS);
        }
        crate::run(&mut cargo)?;
        if *bench == "signal" {
            libsignal_node(root, &dir.join("figures.tsv"))?;
        }
        let meta = format!(
            "{}\n{}\n{:.0}\n{}\n",
            load_before,
            load_average(),
            bench_started.elapsed().as_secs_f64(),
            utc_now()
        );
        std::fs::write(dir.join("meta.txt"), meta)?;
    }
    let commands = if names.is_empty() {
        "cargo xtask bench".to_owned()
    } else {
        format!("cargo xtask bench {}", selected.join(" "))
    };
    let doc = render(root, &report, &commands, started.elapsed().as_secs_f64())?;
    let out = root.join("docs/PERFORMANCE.md");
    std::fs::write(&out, doc).with_context(|| format!("cannot write {}", out.display()))?;
    eprintln!("wrote {}", out.display());
    Ok(())
}

/// The libsignal-node operations of `benches/peers/libsignal_node.js` and the criterion benchmark of the same
/// operation in `signal_session`.
const LIBSIGNAL_NODE: &[(&str, &str)] = &[
    ("x3dh_setup (process bundle)", "x3dh_setup"),
    ("encrypt (within chain)", "encrypt_within_chain"),
    ("decrypt (within chain)", "decrypt_within_chain"),
    (
        "encrypt+decrypt (DH ratchet step)",
        "encrypt_decrypt_dh_ratchet_step",
    ),
];

/// Runs the libsignal-node peer of the Signal bench when node finds the `libsignal` package (`NODE_PATH`, see the
/// script's usage) and adds its rates to the figures; otherwise adds a note.
fn libsignal_node(root: &Path, figures: &Path) -> Result<()> {
    use std::io::Write as _;
    let script = root.join("benches/peers/libsignal_node.js");
    eprintln!("$ node {}", script.display());
    let output = Command::new("node").arg(&script).output();
    let mut lines = String::new();
    match output {
        Ok(out) if out.status.success() => {
            for line in String::from_utf8_lossy(&out.stdout).lines() {
                let Some((name, rate)) = line.trim_end().strip_suffix(" ops/s").and_then(|l| l.rsplit_once(' ')) else {
                    continue;
                };
                lines.push_str(&format!("libsignal-node\t{}\t{}\tops/s\n", name.trim(), rate.trim()));
            }
        }
        _ => lines.push_str(
            "signal\tlibsignal-node peer not run (needs node and the npm package libsignal@6.0.0 on NODE_PATH)\t\t\n",
        ),
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(figures)?
        .write_all(lines.as_bytes())?;
    Ok(())
}

/// Cargo's target directory: `CARGO_TARGET_DIR`, or `target/` in the workspace.
fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from)
}

/// The 1, 5 and 15 minute load averages, as `/proc/loadavg` gives them (`?` where it cannot be read).
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|text| text.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "?".to_owned())
}

fn utc_now() -> String {
    Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|| "?".to_owned())
}

/// The CPU model and the number of logical cores, from `/proc/cpuinfo`.
fn cpu() -> (String, usize) {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = info
        .lines()
        .find(|line| line.starts_with("model name"))
        .and_then(|line| line.split_once(':'))
        .map_or_else(|| "unknown".to_owned(), |(_, model)| model.trim().to_owned());
    let cores = info.lines().filter(|line| line.starts_with("processor")).count();
    (model, cores)
}

fn rustc_version() -> String {
    Command::new("rustc")
        .arg("-V")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|| "?".to_owned())
}

/// One criterion result.
struct Estimate {
    group: String,
    function: String,
    /// Nanoseconds per iteration: the slope when criterion fitted one, else the mean.
    time: f64,
    low: f64,
    high: f64,
    throughput: Option<(String, f64)>,
}

fn read_json(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))
}

/// Every `new/estimates.json` under `dir`, with its `new/benchmark.json`.
fn estimates(dir: &Path, out: &mut Vec<Estimate>) -> Result<()> {
    if !dir.is_dir() {
        return Ok(());
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<std::io::Result<_>>()?;
    entries.sort();
    for path in entries {
        if !path.is_dir() {
            continue;
        }
        let estimate = path.join("estimates.json");
        if path.ends_with("new") && estimate.is_file() {
            let values = read_json(&estimate)?;
            let meta = read_json(&path.join("benchmark.json"))?;
            let chosen = if values["slope"].is_object() {
                &values["slope"]
            } else {
                &values["mean"]
            };
            let number = |v: &Value| v.as_f64().unwrap_or(f64::NAN);
            let throughput = meta["throughput"].as_object().and_then(|t| {
                let (kind, amount) = t.iter().next()?;
                Some((kind.clone(), amount.as_f64()?))
            });
            out.push(Estimate {
                group: meta["group_id"].as_str().unwrap_or("?").to_owned(),
                function: meta["function_id"].as_str().unwrap_or("").to_owned(),
                time: number(&chosen["point_estimate"]),
                low: number(&chosen["confidence_interval"]["lower_bound"]),
                high: number(&chosen["confidence_interval"]["upper_bound"]),
                throughput,
            });
        } else {
            estimates(&path, out)?;
        }
    }
    Ok(())
}

/// A duration in nanoseconds, in a readable unit.
fn duration(ns: f64) -> String {
    if ns >= 1e9 {
        format!("{:.2} s", ns / 1e9)
    } else if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{ns:.0} ns")
    }
}

fn rate(throughput: &Option<(String, f64)>, ns: f64) -> String {
    let per_second = |amount: f64| amount / (ns / 1e9);
    match throughput {
        Some((kind, amount)) if kind == "Bytes" || kind == "BytesDecimal" => {
            format!("{:.1} MB/s", per_second(*amount) / 1e6)
        }
        Some((_, amount)) => {
            let per = per_second(*amount);
            if per >= 1e6 {
                format!("{:.2} M elem/s", per / 1e6)
            } else if per >= 1e3 {
                format!("{:.1} K elem/s", per / 1e3)
            } else {
                format!("{per:.1} elem/s")
            }
        }
        None => String::new(),
    }
}

/// The report.
fn render(root: &Path, report: &Path, commands: &str, seconds: f64) -> Result<String> {
    let (model, cores) = cpu();
    let mut doc = String::new();
    writeln!(doc, "# Performance")?;
    writeln!(doc)?;
    writeln!(
        doc,
        "Generated by `cargo xtask bench` (xtask/src/bench.rs) from the criterion results of the benches in \
         `benches/`; do not edit by hand. What each bench measures is described at the top of its file in \
         `benches/benches/`."
    )?;
    writeln!(doc)?;
    writeln!(doc, "## Machine and run")?;
    writeln!(doc)?;
    writeln!(doc, "- CPU: {model}, {cores} logical cores")?;
    writeln!(doc, "- Compiler: {}", rustc_version())?;
    writeln!(
        doc,
        "- Last command: `{commands}` ({seconds:.0} s including the build)"
    )?;
    writeln!(
        doc,
        "- Criterion options: `{}`; benches with long iterations use 10 samples.",
        CRITERION_ARGS.join(" ")
    )?;
    writeln!(
        doc,
        "- One bench alone: `cargo bench -p whatsapp-benches --bench NAME`. Rerun some benches and regenerate this \
         file: `cargo xtask bench NAME...`."
    )?;
    writeln!(doc)?;
    writeln!(
        doc,
        "The machine may be shared with other work: each bench's load average (1, 5, 15 minutes, from \
         `/proc/loadavg`) before and after it ran is listed with its figures. A load above the number of cores \
         means the bench competed for the CPU and its times are pessimistic."
    )?;
    let mut all = Vec::new();
    for bench in BENCHES {
        let dir = report.join(bench);
        if !dir.is_dir() {
            continue;
        }
        let meta = std::fs::read_to_string(dir.join("meta.txt")).unwrap_or_default();
        let meta: Vec<&str> = meta.lines().collect();
        let mut results = Vec::new();
        estimates(&dir.join("criterion"), &mut results)?;
        writeln!(doc)?;
        writeln!(doc, "## `{bench}`")?;
        writeln!(doc)?;
        writeln!(
            doc,
            "Run {} in {} s; load average before: {}, after: {}.",
            meta.get(3).unwrap_or(&"?"),
            meta.get(2).unwrap_or(&"?"),
            meta.first().unwrap_or(&"?"),
            meta.get(1).unwrap_or(&"?")
        )?;
        if !results.is_empty() {
            writeln!(doc)?;
            writeln!(doc, "| benchmark | time | 95% interval | throughput |")?;
            writeln!(doc, "|---|---:|---:|---:|")?;
            for e in &results {
                writeln!(
                    doc,
                    "| {}/{} | {} | {} – {} | {} |",
                    e.group,
                    e.function,
                    duration(e.time),
                    duration(e.low),
                    duration(e.high),
                    rate(&e.throughput, e.time)
                )?;
            }
        }
        let figures = std::fs::read_to_string(dir.join("figures.tsv")).unwrap_or_default();
        let mut notes = Vec::new();
        let mut rows = Vec::new();
        for line in figures.lines() {
            let fields: Vec<&str> = line.split('\t').collect();
            match fields.as_slice() {
                [_, text, "", ""] => notes.push(*text),
                [group, name, value, unit] => rows.push((*group, *name, *value, *unit)),
                _ => {}
            }
        }
        if !rows.is_empty() {
            writeln!(doc)?;
            writeln!(doc, "Measured outside criterion (one pass each):")?;
            writeln!(doc)?;
            writeln!(doc, "| figure | value |")?;
            writeln!(doc, "|---|---:|")?;
            for (group, name, value, unit) in rows {
                let value: f64 = value.parse().unwrap_or(f64::NAN);
                let value = if value.abs() >= 100.0 {
                    format!("{value:.0}")
                } else {
                    format!("{value:.2}")
                };
                writeln!(doc, "| {group}: {name} | {value} {unit} |")?;
            }
        }
        for note in notes {
            writeln!(doc)?;
            writeln!(doc, "Note: {note}.")?;
        }
        all.extend(results);
    }
    let find = |group: &str, function: &str| {
        all.iter()
            .find(|e| e.group == group && e.function == function)
            .map(|e| e.time)
    };
    let pairs: Vec<_> = COMPARISONS
        .iter()
        .filter_map(|(group, ours, other, what)| {
            Some((group, ours, other, what, find(group, ours)?, find(group, other)?))
        })
        .collect();
    if !pairs.is_empty() {
        writeln!(doc)?;
        writeln!(doc, "## Side by side")?;
        writeln!(doc)?;
        writeln!(
            doc,
            "| group | ours | time | compared with | time | ratio (theirs / ours) |"
        )?;
        writeln!(doc, "|---|---|---:|---|---:|---:|")?;
        for (group, ours, other, what, ours_time, other_time) in pairs {
            writeln!(
                doc,
                "| {group} | {ours} | {} | {other} ({what}) | {} | {:.2}× |",
                duration(ours_time),
                duration(other_time),
                other_time / ours_time
            )?;
        }
    }
    let signal_figures = std::fs::read_to_string(report.join("signal/figures.tsv")).unwrap_or_default();
    let node: Vec<(String, f64)> = signal_figures
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split('\t').collect();
            match fields.as_slice() {
                ["libsignal-node", name, rate, _] => Some(((*name).to_owned(), rate.parse().ok()?)),
                _ => None,
            }
        })
        .collect();
    if !node.is_empty() {
        writeln!(doc)?;
        writeln!(
            doc,
            "Signal 1:1 operations against libsignal-node (npm `libsignal` 6.0.0, `benches/peers/libsignal_node.js`, \
             run right after the `signal` bench):"
        )?;
        writeln!(doc)?;
        writeln!(
            doc,
            "| operation | ours | libsignal-node | ratio (ours / theirs) |"
        )?;
        writeln!(doc, "|---|---:|---:|---:|")?;
        for (theirs_name, ours_name) in LIBSIGNAL_NODE {
            let Some(theirs) = node.iter().find(|(n, _)| n == theirs_name).map(|(_, r)| *r) else {
                continue;
            };
            let Some(ours) = all
                .iter()
                .find(|e| e.group == "signal_session" && e.function == *ours_name)
                .and_then(|e| Some(e.throughput.as_ref()?.1 / (e.time / 1e9)))
            else {
                continue;
            };
            writeln!(
                doc,
                "| {ours_name} | {ours:.0} ops/s | {theirs:.0} ops/s | {:.1}× |",
                ours / theirs
            )?;
        }
    }
    if let Ok(findings) = std::fs::read_to_string(root.join("benches/FINDINGS.md")) {
        writeln!(doc)?;
        doc.push_str(&findings);
    }
    Ok(doc)
}
