//! Repository rules that no compiler checks.
//!
//! Each rule returns the list of offences so that tests can assert on them.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Result, bail};

/// Crates that must stay sans-IO: none of them may depend on tokio (DESIGN.md invariants).
const SANS_IO_CRATES: &[&str] = &[
    "whatsapp-binary",
    "whatsapp-proto",
    "whatsapp-noise",
    "whatsapp-signal",
    "whatsapp-appstate",
    "whatsapp-core",
];

/// Runs every tidy rule and fails with the list of offences.
pub(crate) fn run(root: &Path) -> Result<()> {
    let mut offences = missing_module_docs(root)?;
    offences.extend(tokio_in_sans_io_crates(root)?);
    if !offences.is_empty() {
        bail!(
            "tidy found {} problem(s):\n  {}",
            offences.len(),
            offences.join("\n  ")
        );
    }
    eprintln!("tidy: ok");
    Ok(())
}

/// Every `.rs` file under the source directories must open with `//!` module docs.
pub(crate) fn missing_module_docs(root: &Path) -> Result<Vec<String>> {
    let mut files = Vec::new();
    for dir in ["crates", "xtask", "benches", "fuzz", "examples"] {
        collect_rs_files(&root.join(dir), &mut files)?;
    }
    files.sort();
    let mut offences = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file)?;
        if !text.trim_start().starts_with("//!") {
            let shown = file.strip_prefix(root).unwrap_or(&file);
            offences.push(format!(
                "{}: does not start with `//!` module docs",
                shown.display()
            ));
        }
    }
    Ok(offences)
}

fn collect_rs_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if path.is_dir() {
            // Build output and fuzzing state are not source.
            if !matches!(name, "target" | "corpus" | "artifacts" | "coverage") {
                collect_rs_files(&path, out)?;
            }
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
    Ok(())
}

/// The sans-IO crates must not pull in tokio through their normal dependencies.
fn tokio_in_sans_io_crates(root: &Path) -> Result<Vec<String>> {
    let mut offences = Vec::new();
    for krate in SANS_IO_CRATES {
        if !root.join("crates").join(krate).join("Cargo.toml").exists() {
            continue;
        }
        let out = Command::new("cargo")
            .current_dir(root)
            .args(["tree", "-p", krate, "-e", "normal", "-i", "tokio", "--offline"])
            .output()?;
        // `cargo tree -i` fails with "package ID specification `tokio` did not match" when tokio is absent.
        let stdout = String::from_utf8_lossy(&out.stdout);
        if out.status.success() && !stdout.trim().is_empty() {
            offences.push(format!("{krate}: depends on tokio:\n{stdout}"));
        }
    }
    Ok(offences)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("xtask-tidy-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("crates/demo/src")).unwrap();
        dir
    }

    #[test]
    fn file_without_module_docs_is_reported() {
        let root = scratch("missing");
        std::fs::write(
            root.join("crates/demo/src/lib.rs"),
            "//! Demo crate.\npub mod a;\n",
        )
        .unwrap();
        std::fs::write(root.join("crates/demo/src/a.rs"), "pub fn f() {}\n").unwrap();
        let offences = missing_module_docs(&root).unwrap();
        assert_eq!(
            offences,
            vec!["crates/demo/src/a.rs: does not start with `//!` module docs".to_owned()]
        );
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn documented_files_pass_and_build_output_is_ignored() {
        let root = scratch("ok");
        std::fs::write(root.join("crates/demo/src/lib.rs"), "\n//! Demo crate.\n").unwrap();
        std::fs::create_dir_all(root.join("crates/demo/target")).unwrap();
        std::fs::write(root.join("crates/demo/target/gen.rs"), "fn generated() {}\n").unwrap();
        assert!(missing_module_docs(&root).unwrap().is_empty());
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn this_repository_is_tidy() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        assert_eq!(missing_module_docs(root).unwrap(), Vec::<String>::new());
    }
}
