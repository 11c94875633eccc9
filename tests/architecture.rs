//! The dependency rules of docs/architecture.md, checked from Cargo.lock and
//! the sources: the core crate reaches no async runtime, HTTP client or
//! command-line parser, and no other crate of harden; the harden crate's
//! leaf modules (exit codes, progress, signals, mappings) name no transport.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Each package of Cargo.lock with the names of its dependencies.
fn locked() -> BTreeMap<String, Vec<String>> {
    let lock = std::fs::read_to_string(Path::new(ROOT).join("Cargo.lock")).unwrap();
    let mut packages = BTreeMap::new();
    for block in lock.split("[[package]]").skip(1) {
        let name = block
            .lines()
            .find_map(|l| l.strip_prefix("name = "))
            .unwrap()
            .trim_matches('"')
            .to_string();
        let deps = match block.split_once("dependencies = [") {
            Some((_, rest)) => rest.split(']').next().unwrap(),
            None => "",
        };
        let deps = deps
            .lines()
            .map(|l| l.trim().trim_matches(|c| c == '"' || c == ','))
            .filter_map(|l| l.split(' ').next())
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect();
        packages.insert(name, deps);
    }
    packages
}

fn reached(packages: &BTreeMap<String, Vec<String>>, from: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut todo = vec![from.to_string()];
    while let Some(p) = todo.pop() {
        for d in packages.get(&p).into_iter().flatten() {
            if seen.insert(d.clone()) {
                todo.push(d.clone());
            }
        }
    }
    seen
}

#[test]
fn the_core_crate_reaches_no_runtime_http_cli_or_other_harden_crate() {
    let packages = locked();
    assert!(
        packages["harden"].contains(&"harden-core".to_string()),
        "harden is built on harden-core"
    );
    let core = reached(&packages, "harden-core");
    assert!(
        core.contains("sha2"),
        "the walk sees the core's own dependencies: {core:?}"
    );
    for banned in [
        "tokio",
        "reqwest",
        "hyper",
        "clap",
        "indicatif",
        "docker_credential",
        "harden",
        "harden-stepdown",
    ] {
        assert!(!core.contains(banned), "harden-core reaches {banned}");
    }
    let stepdown = reached(&packages, "harden-stepdown");
    assert!(
        stepdown.is_empty(),
        "the step-down has no dependency: {stepdown:?}"
    );
}

/// The `crate::NAME` modules a source file names.
fn named_modules(file: &Path) -> BTreeSet<String> {
    let text = std::fs::read_to_string(file).unwrap();
    text.match_indices("crate::")
        .map(|(at, _)| {
            text[at + 7..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect()
        })
        .collect()
}

#[test]
fn leaf_modules_name_no_transport() {
    let transports = [
        "registry",
        "source",
        "sink",
        "store",
        "run",
        "transport",
        "copies",
        "compress",
    ];
    for leaf in ["exit", "progress", "interrupt", "mapping"] {
        let file = Path::new(ROOT).join("src").join(format!("{leaf}.rs"));
        let named = named_modules(&file);
        for t in transports {
            assert!(!named.contains(t), "src/{leaf}.rs names crate::{t}");
        }
    }
    // The core crate names only its own modules (it cannot name harden's:
    // Cargo would not build it), and none of them is a transport.
    for entry in std::fs::read_dir(Path::new(ROOT).join("core/src")).unwrap() {
        let file = entry.unwrap().path();
        for t in transports {
            assert!(
                !named_modules(&file).contains(t),
                "{} names crate::{t}",
                file.display()
            );
        }
    }
}
