//! Tidy checks over the source tree, run as ordinary tests: the crate graph is one-way as
//! ARCHITECTURE.md says, and every Rust file opens with a module doc (`//!`) saying what it is for.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("workspace root")
}

/// Which workspace crates each crate may depend on (normal dependencies). Lower layers never depend on
/// higher ones; pure crates depend on no other workspace crate with IO.
fn allowed() -> BTreeMap<&'static str, &'static [&'static str]> {
    BTreeMap::from([
        ("flowkeep-query", &[][..]),
        ("flowkeep-model", &[][..]),
        ("flowkeep-security", &["flowkeep-query", "flowkeep-model"][..]),
        ("flowkeep-store", &["flowkeep-query", "flowkeep-model"][..]),
        ("flowkeep-broker", &["flowkeep-model"][..]),
        (
            "flowkeep-core",
            &["flowkeep-security", "flowkeep-store", "flowkeep-broker", "flowkeep-query", "flowkeep-model"][..],
        ),
        (
            "flowkeep-protocol",
            &["flowkeep-core", "flowkeep-security", "flowkeep-store", "flowkeep-query", "flowkeep-model"][..],
        ),
        (
            "flowkeep-server",
            &[
                "flowkeep-protocol",
                "flowkeep-core",
                "flowkeep-security",
                "flowkeep-store",
                "flowkeep-broker",
                "flowkeep-query",
                "flowkeep-model",
            ][..],
        ),
        (
            "flowkeep",
            &[
                "flowkeep-server",
                "flowkeep-protocol",
                "flowkeep-core",
                "flowkeep-security",
                "flowkeep-store",
                "flowkeep-broker",
                "flowkeep-query",
                "flowkeep-model",
            ][..],
        ),
    ])
}

#[test]
fn crate_graph_is_layered() {
    let root = workspace_root();
    let allowed = allowed();
    let mut seen = 0;
    for entry in std::fs::read_dir(root.join("crates")).expect("crates/") {
        let manifest = entry.expect("entry").path().join("Cargo.toml");
        let Ok(text) = std::fs::read_to_string(&manifest) else { continue };
        let doc: toml::Table = text.parse().expect("Cargo.toml parses");
        let name = doc["package"]["name"].as_str().expect("package.name").to_string();
        let permitted = allowed
            .get(name.as_str())
            .unwrap_or_else(|| panic!("crate {name} is not in the layering table of tidy.rs and ARCHITECTURE.md"));
        let deps = doc.get("dependencies").and_then(|d| d.as_table()).cloned().unwrap_or_default();
        for dep in deps.keys().filter(|d| d.starts_with("flowkeep")) {
            assert!(permitted.contains(&dep.as_str()), "{name} must not depend on {dep} (see ARCHITECTURE.md)");
        }
        seen += 1;
    }
    assert!(seen >= 5, "expected the workspace crates, saw {seen}");
}

#[test]
fn every_source_file_has_a_module_doc() {
    let root = workspace_root().join("crates");
    let mut missing = Vec::new();
    let mut stack = vec![root];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read_dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                if !path.ends_with("node_modules") && !path.ends_with("target") {
                    stack.push(path);
                }
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).expect("read");
                let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
                if !first.starts_with("//!") {
                    missing.push(path.display().to_string());
                }
            }
        }
    }
    assert!(missing.is_empty(), "files without a `//!` module doc:\n{}", missing.join("\n"));
}
