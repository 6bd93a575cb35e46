//! Rules of the code base that a test enforces (like rust-analyzer's `tidy`): every file under
//! `src/` says what it is for, each third-party crate with a boundary is imported only by its one
//! module, and the layers point one way — `inbound` and `outbound` never import each other.
//! ARCHITECTURE.md states the same rules; this test is what keeps them true.

use std::path::{Path, PathBuf};

/// A crate with one home: only files under these paths (relative to `src/`) may name it.
const BOUNDARIES: &[(&str, &[&str])] = &[
    ("rusqlite", &["store/"]),
    ("mail_parser", &["mail/"]),
    (
        "reqwest",
        &[
            "webhook/",
            "accounts/oidc/http.rs",
            "outbound/mta_sts/discovery.rs",
            // `postern ready`: one GET of this server's own /readyz on loopback.
            "cli/ready.rs",
        ],
    ),
    ("oauth2", &["accounts/oidc/"]),
    ("lettre", &["outbound/worker.rs", "outbound/worker/"]),
    ("argon2", &["accounts/"]),
    ("totp_rs", &["accounts/"]),
    ("hickory_resolver", &["dns.rs"]),
    ("mail_auth::hickory_resolver", &["dns.rs"]),
    ("age", &["crypto.rs", "crypto/"]),
    ("rustls_acme", &["tls.rs", "tls/"]),
    ("prometheus_client", &["metrics.rs"]),
    ("object_store", &["objects/"]),
];

/// The layers, lowest first: a module may import its own layer's modules and lower ones, never
/// a higher layer's (`inbound` ↔ `outbound` is checked on its own below).
const LAYERS: &[&[&str]] = &[
    &[
        "smtp",
        "store",
        "config",
        "mail",
        "dns",
        "webhook",
        "clock",
        "secret",
        "shutdown",
        "telemetry",
        "tls",
        "crypto",
        "datadir",
        "retention",
        "metrics",
        "notify",
        "objects",
    ],
    &[
        "accounts",
        "inbound",
        "outbound",
        "data_requests",
        "privacy",
    ],
    &["web", "app", "cli"],
];

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `src/`, as (path relative to `src/` with `/` separators, contents).
fn sources() -> Vec<(String, String)> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("src/ is readable") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let root = src_dir();
    let mut paths = Vec::new();
    walk(&root, &mut paths);
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let rel = path.strip_prefix(&root).expect("under src/");
            let rel = rel.to_string_lossy().replace('\\', "/");
            let text = std::fs::read_to_string(&path).expect("a source file is UTF-8");
            (rel, text)
        })
        .collect()
}

/// The code lines of a file: comments and doc comments dropped (a crate named in prose is fine).
fn code_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines().enumerate().filter_map(|(i, line)| {
        let code = match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        };
        (!code.trim().is_empty()).then_some((i + 1, code))
    })
}

/// Whether `code` names `name` as a path root: `name::…` or `use name` not preceded by an
/// identifier character or `::` (so `crate::store::rusqlite_error` or `foo_age::` do not count).
fn names_path_root(code: &str, name: &str) -> bool {
    let bytes = code.as_bytes();
    code.match_indices(name).any(|(at, _)| {
        let before_ok = at == 0 || {
            let b = bytes[at - 1];
            !(b.is_ascii_alphanumeric() || b == b'_' || b == b':')
        };
        let rest = &code[at + name.len()..];
        before_ok
            && (rest.starts_with("::")
                || (code[..at].trim_end().ends_with("use")
                    && rest.trim_start().starts_with([';', ' ', '{'])))
    })
}

/// The top-level modules a file reaches through `crate::`, with the line: `crate::web::ui` gives
/// `web`, and a group `use crate::{outbound::X, store};` (over several lines too) gives each name.
fn crate_paths(text: &str) -> Vec<(usize, String)> {
    let code: Vec<(usize, &str)> = code_lines(text).collect();
    let mut found = Vec::new();
    for (i, (line, code_line)) in code.iter().enumerate() {
        for (at, _) in code_line.match_indices("crate::") {
            let rest = &code_line[at + "crate::".len()..];
            if rest.starts_with('{') {
                // The group may continue on the following lines: read up to its closing brace.
                let mut group = String::from(rest);
                for (_, more) in &code[i + 1..] {
                    if group.matches('{').count() <= group.matches('}').count() {
                        break;
                    }
                    group.push_str(more);
                }
                found.extend(group_roots(&group).into_iter().map(|m| (*line, m)));
            } else {
                found.push((*line, identifier(rest).to_owned()));
            }
        }
    }
    found
}

/// The names at the top of a `{a::b, c, d::{e, f}}` group: `a`, `c`, `d`.
fn group_roots(group: &str) -> Vec<String> {
    let (mut depth, mut roots, mut expect) = (0usize, Vec::new(), false);
    for (at, c) in group.char_indices() {
        match c {
            '{' => {
                depth += 1;
                expect = depth == 1;
            }
            '}' if depth == 1 => break,
            '}' => depth -= 1,
            ',' if depth == 1 => expect = true,
            c if expect && !c.is_whitespace() => {
                roots.push(identifier(&group[at..]).to_owned());
                expect = false;
            }
            _ => {}
        }
    }
    roots
}

fn identifier(text: &str) -> &str {
    let end = text
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(text.len());
    &text[..end]
}

/// The top-level module a file belongs to: `inbound/route.rs` → `inbound`, `dns.rs` → `dns`.
fn module_of(rel: &str) -> &str {
    let first = rel.split('/').next().expect("a path has a first part");
    first.strip_suffix(".rs").unwrap_or(first)
}

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

#[test]
fn every_source_file_opens_with_a_module_header() {
    let missing: Vec<String> = sources()
        .into_iter()
        .filter(|(_, text)| {
            let first = text
                .lines()
                .map(str::trim)
                .find(|l| !l.is_empty() && !l.starts_with("#!["));
            !first.is_some_and(|l| l.starts_with("//!"))
        })
        .map(|(rel, _)| rel)
        .collect();
    assert!(
        missing.is_empty(),
        "files under src/ without a `//!` header saying what they are for: {missing:?}"
    );
}

#[test]
fn crates_with_a_boundary_are_imported_only_in_their_module() {
    let mut breaches = Vec::new();
    for (rel, text) in sources() {
        for (krate, homes) in BOUNDARIES {
            if homes.iter().any(|home| rel.starts_with(home)) {
                continue;
            }
            for (line, code) in code_lines(&text) {
                if names_path_root(code, krate) {
                    breaches.push(format!(
                        "src/{rel}:{line} names `{krate}` (allowed only in {homes:?})"
                    ));
                }
            }
        }
    }
    assert!(
        breaches.is_empty(),
        "crates used outside their module:\n{}",
        breaches.join("\n")
    );
}

#[test]
fn layers_point_one_way_and_inbound_and_outbound_never_meet() {
    let mut breaches = Vec::new();
    for (rel, text) in sources() {
        let from = module_of(&rel);
        let Some(from_layer) = layer_of(from) else {
            continue;
        };
        for (line, to) in crate_paths(&text) {
            let Some(to_layer) = layer_of(&to).filter(|_| to != from) else {
                continue;
            };
            let across = matches!(
                (from, to.as_str()),
                ("inbound", "outbound") | ("outbound", "inbound")
            );
            if to_layer > from_layer || across {
                breaches.push(format!("src/{rel}:{line}: `{from}` imports `{to}`"));
            }
        }
    }
    assert!(
        breaches.is_empty(),
        "imports against the layering rule:\n{}",
        breaches.join("\n")
    );
}

#[test]
fn every_top_level_module_has_a_layer_and_a_line_in_architecture_md() {
    let map = std::fs::read_to_string(src_dir().join("../ARCHITECTURE.md"))
        .expect("ARCHITECTURE.md exists");
    let mut modules: Vec<String> = sources()
        .iter()
        .map(|(rel, _)| module_of(rel).to_owned())
        .filter(|m| m != "main" && m != "lib")
        .collect();
    modules.dedup();
    for module in modules {
        assert!(
            layer_of(&module).is_some(),
            "src/{module} is in no layer of tests/it/tidy.rs: give it one"
        );
        assert!(
            map.contains(&format!("`{module}")),
            "ARCHITECTURE.md never mentions `{module}`"
        );
    }
}

#[test]
fn the_rules_see_what_they_look_for() {
    // The matcher itself: a rule that can never fire would pass vacuously.
    assert!(names_path_root("use rusqlite::Connection;", "rusqlite"));
    assert!(names_path_root(
        "    let c = rusqlite::Connection::open(p)?;",
        "rusqlite"
    ));
    assert!(names_path_root("use age;", "age"));
    assert!(names_path_root(
        "use mail_auth::hickory_resolver::Name;",
        "mail_auth::hickory_resolver"
    ));
    assert!(!names_path_root("let page = usage::x;", "age"));
    assert!(!names_path_root("crate::store::rusqlite::x", "rusqlite"));
    let paths = crate_paths(
        "use crate::webhook::Deliverer;\nuse crate::{\n    outbound::{Outbound, bounce},\n    store,\n};\n",
    );
    let names: Vec<&str> = paths.iter().map(|(_, m)| m.as_str()).collect();
    assert_eq!(names, ["webhook", "outbound", "store"]);
    assert_eq!(module_of("inbound/format/raw.rs"), "inbound");
    assert_eq!(module_of("dns.rs"), "dns");
}
