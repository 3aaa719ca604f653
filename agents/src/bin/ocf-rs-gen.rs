//! Writes the generated files that are committed: `metadata/<Agent>-ocf-1.0.xml`,
//! `metadata/<Agent>-ocf-1.1.xml`, `man/ocf_rust_<Agent>.7`, and the parameter section of
//! README.md. The test
//! `generated_files_are_up_to_date` fails when they differ from what this would write.
//!
//! Usage: ocf-rs-gen [REPO_ROOT]   (default: the current directory)

use std::path::PathBuf;

fn main() {
    let root = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| ".".into()));
    for (path, content) in ocf_agents::generated::files(&root) {
        if let Err(e) = std::fs::write(&path, content) {
            eprintln!("ocf-rs-gen: cannot write {}: {e}", path.display());
            std::process::exit(1);
        }
        println!("wrote {}", path.display());
    }
}
