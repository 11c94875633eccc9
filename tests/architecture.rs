//! The dependency rules of docs/architecture.md, checked from Cargo.lock and
//! the sources: the core crate reaches no async runtime, HTTP client or
//! command-line parser, and no other crate of harden; the harden crate's
//! leaf modules (exit codes, progress, signals, mappings) name no transport;
//! and no module of any crate reaches itself through its imports.

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
    let transports = ["registry", "transport", "run", "copies", "compress"];
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

/// The modules of the crate whose sources are in `src` ("a::b" for
/// src/a/b.rs or src/a/b/mod.rs), each with its source without tests.
fn modules(src: &Path) -> BTreeMap<String, String> {
    fn walk(dir: &Path, prefix: &str, out: &mut BTreeMap<String, String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let stem = path.file_stem().unwrap().to_string_lossy().to_string();
            let name = |s: &str| {
                if prefix.is_empty() {
                    s.to_string()
                } else {
                    format!("{prefix}::{s}")
                }
            };
            if path.is_dir() {
                walk(&path, &name(&stem), out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let module = match stem.as_str() {
                    "mod" => prefix.to_string(),
                    "lib" | "main" if prefix.is_empty() => String::new(),
                    _ => name(&stem),
                };
                let text = std::fs::read_to_string(&path).unwrap();
                let text = match text.find("#[cfg(test)]\nmod tests") {
                    Some(at) => text[..at].to_string(),
                    None => text,
                };
                // Comments name modules without using them.
                let code: Vec<&str> = text
                    .lines()
                    .filter(|l| !l.trim_start().starts_with("//"))
                    .collect();
                out.insert(module, code.join("\n"));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(src, "", &mut out);
    out
}

/// The paths a `use` tree stands for: `a::{b, c::{d}}` → a::b, a::c::d.
fn expand(tree: &str) -> Vec<String> {
    let tree: String = tree.chars().filter(|c| !c.is_whitespace()).collect();
    let Some(open) = tree.find('{') else {
        return vec![tree];
    };
    let (prefix, rest) = (&tree[..open], &tree[open + 1..tree.len() - 1]);
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in rest.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&rest[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&rest[start..]);
    parts
        .into_iter()
        .filter(|p| !p.is_empty())
        .flat_map(expand)
        .map(|p| match p.as_str() {
            "self" => prefix.trim_end_matches("::").to_string(),
            _ => format!("{prefix}{p}"),
        })
        .collect()
}

/// The `use` trees of `text` (`pub use` ones with `true`), and the paths it
/// names in code (`crate::a::b`, `super::c`, `child::f`).
fn paths(text: &str, children: &[&str]) -> (Vec<(bool, String)>, Vec<String>) {
    let mut uses = Vec::new();
    let mut code = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("use ") {
        let before = &rest[..at];
        let line_start = before.rfind('\n').map_or(0, |n| n + 1);
        let lead = before[line_start..].trim();
        if lead.is_empty() || lead == "pub" || lead.starts_with("pub(") {
            let end = at + rest[at..].find(';').unwrap();
            code.push_str(&rest[..line_start]);
            for p in expand(&rest[at + 4..end]) {
                uses.push((
                    lead.starts_with("pub"),
                    p.split(" as ").next().unwrap().to_string(),
                ));
            }
            rest = &rest[end + 1..];
        } else {
            code.push_str(&rest[..at + 4]);
            rest = &rest[at + 4..];
        }
    }
    code.push_str(rest);
    let mut named = Vec::new();
    let heads = ["crate", "super"]
        .into_iter()
        .chain(children.iter().copied());
    for head in heads {
        let needle = format!("{head}::");
        for (at, _) in code.match_indices(&needle) {
            let prev = code[..at].chars().next_back();
            if prev.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            let path: String = code[at..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            named.push(path);
        }
    }
    (uses, named)
}

/// The module a path written in `module` ends in, following re-exports;
/// None for the crate root (another crate's modules re-exported there).
fn resolve(
    module: &str,
    path: &str,
    mods: &BTreeMap<String, String>,
    reexports: &BTreeMap<(String, String), (String, String)>,
    depth: usize,
) -> Option<String> {
    let mut cur: Vec<String> = module
        .split("::")
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    let segments: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
    let mut rest = &segments[..];
    match rest.first() {
        Some(&"crate") => {
            cur.clear();
            rest = &rest[1..];
        }
        Some(&"super") => {
            while rest.first() == Some(&"super") {
                cur.pop();
                rest = &rest[1..];
            }
        }
        _ => {}
    }
    while let Some((seg, tail)) = rest.split_first() {
        let joined = cur.join("::");
        let child = if joined.is_empty() {
            seg.to_string()
        } else {
            format!("{joined}::{seg}")
        };
        if mods.contains_key(&child) {
            cur.push(seg.to_string());
        } else if let Some((from, target)) = reexports.get(&(joined, seg.to_string())) {
            assert!(depth < 16, "re-exports loop at {path}");
            let end = resolve(from, target, mods, reexports, depth + 1)?;
            cur = end.split("::").map(str::to_string).collect();
        } else {
            break;
        }
        rest = tail;
    }
    let end = cur.join("::");
    (!end.is_empty()).then_some(end)
}

/// The first cycle among the modules of the crate in `src`, as a path.
fn module_cycle(src: &Path) -> Option<Vec<String>> {
    let mods = modules(src);
    let children = |m: &str| -> Vec<&str> {
        mods.keys()
            .filter_map(|k| {
                let rest = if m.is_empty() {
                    k.as_str()
                } else {
                    k.strip_prefix(m)?.strip_prefix("::")?
                };
                (!rest.is_empty() && !rest.contains("::")).then_some(rest)
            })
            .collect()
    };
    let parsed: BTreeMap<&String, _> = mods
        .iter()
        .map(|(m, text)| (m, paths(text, &children(m))))
        .collect();
    let mut reexports = BTreeMap::new();
    for (m, (uses, _)) in &parsed {
        for (public, p) in uses {
            if *public {
                let name = p.rsplit("::").next().unwrap().to_string();
                reexports.insert((m.to_string(), name), (m.to_string(), p.clone()));
            }
        }
    }
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (m, (uses, named)) in &parsed {
        let private = uses.iter().filter(|(public, _)| !public).map(|(_, p)| p);
        for p in private.chain(named) {
            if let Some(to) = resolve(m, p, &mods, &reexports, 0) {
                if &&to != m {
                    edges.entry(m.to_string()).or_default().insert(to);
                }
            }
        }
    }
    fn visit(
        m: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = stack.iter().position(|s| s == m) {
            let mut cycle = stack[at..].to_vec();
            cycle.push(m.to_string());
            return Some(cycle);
        }
        if !done.insert(m.to_string()) {
            return None;
        }
        stack.push(m.to_string());
        for to in edges.get(m).into_iter().flatten() {
            if let Some(c) = visit(to, edges, stack, done) {
                return Some(c);
            }
        }
        stack.pop();
        None
    }
    let mut done = BTreeSet::new();
    mods.keys()
        .find_map(|m| visit(m, &edges, &mut Vec::new(), &mut done))
}

#[test]
fn no_module_imports_itself_through_others() {
    for src in ["src", "core/src", "stepdown/src"] {
        if let Some(cycle) = module_cycle(&Path::new(ROOT).join(src)) {
            panic!("an import cycle in {src}: {}", cycle.join(" → "));
        }
    }
}

#[test]
fn the_cycle_check_sees_a_cycle() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    write("lib.rs", "pub mod a;\npub mod b;\n");
    write(
        "a/mod.rs",
        "mod inner;\npub use inner::Thing;\nfn f() { crate::b::g() }\n",
    );
    write("a/inner.rs", "pub struct Thing;\n");
    write("b.rs", "use crate::a::Thing;\npub fn g() {}\n");
    assert_eq!(
        module_cycle(dir.path()),
        None,
        "a → b → a::inner is no cycle"
    );
    write(
        "a/inner.rs",
        "pub struct Thing;\nfn h() { super::super::b::g() }\n",
    );
    let cycle = module_cycle(dir.path()).expect("b → a::inner → b is a cycle");
    assert!(
        cycle.contains(&"b".to_string()) && cycle.contains(&"a::inner".to_string()),
        "{cycle:?}"
    );
}
