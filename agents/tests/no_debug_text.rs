//! No Rust debug text in what the agents log or report: log fields are recorded with
//! `%` (Display) or as plain values, never with `?` (Debug), and no message is formatted
//! with `{:?}` (a `Known(SystemError)` or `Some("x")` means nothing to an admin). Test
//! modules, which sit at the end of each file after `#[cfg(test)]`, may use Debug.

use std::path::Path;

fn sources(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("source dir") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The offending lines of one file's non-test code. A line may say why its `?` is no
/// debug text in a message with a `// not debug text: why` comment.
fn debug_formatting(text: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("#[cfg(test)]") {
            break;
        }
        let code = line.split("//").next().unwrap_or("");
        let allowed = line.contains("// not debug text:");
        let debug_field = code.contains("= ?") || code.contains("(?") || code.contains(", ?");
        let debug_format = code.contains(":?}") || code.contains(":#?}");
        if (debug_field || debug_format) && !allowed {
            found.push((n + 1, line.trim().to_string()));
        }
    }
    found
}

#[test]
fn no_debug_formatting_outside_tests() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    sources(&root.join("src"), &mut files);
    sources(&root.join("../ocf-common/src"), &mut files);
    let mut bad = Vec::new();
    for f in &files {
        let name = f.file_name().and_then(|n| n.to_str()).unwrap_or("");
        // Whole files of tests and test doubles.
        if name.starts_with("tests") || name == "fake.rs" {
            continue;
        }
        let text = std::fs::read_to_string(f).expect("read source");
        for (line, code) in debug_formatting(&text) {
            bad.push(format!("{}:{line}: {code}", f.display()));
        }
    }
    assert!(
        bad.len() < files.len() * 100,
        "scanned {} files",
        files.len()
    );
    assert!(
        bad.is_empty(),
        "Debug formatting in messages:\n{}",
        bad.join("\n")
    );
}

#[test]
fn the_check_finds_what_it_looks_for() {
    let hits = debug_formatting(
        "tracing::warn!(code = ?e.code(), \"x\");\nlet a = format!(\"{e:?}\");\nok();\n#[cfg(test)]\nlet b = format!(\"{e:?}\");\n",
    );
    assert_eq!(hits.iter().map(|(n, _)| *n).collect::<Vec<_>>(), [1, 2]);
}
