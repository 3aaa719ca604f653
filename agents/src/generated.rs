//! The generated files committed in the repository (meta-data in both OCF renderings,
//! the README's parameter tables, the manual pages), computed from the agent
//! descriptions.

use std::path::{Path, PathBuf};

use ocf_common::metadata::{render, OcfVersion};

/// Marks the start of the generated part of README.md.
pub const README_BEGIN: &str = "<!-- BEGIN GENERATED PARAMETERS (make metadata) -->";
/// Marks its end.
pub const README_END: &str = "<!-- END GENERATED PARAMETERS -->";

/// Every generated file with the content it must have. README.md keeps its hand-written
/// text; only the part between the markers is replaced.
pub fn files(root: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let mut tables = String::new();
    for desc in crate::all() {
        for (v, tag) in [(OcfVersion::V1_0, "1.0"), (OcfVersion::V1_1, "1.1")] {
            out.push((
                root.join("metadata")
                    .join(format!("{}-ocf-{tag}.xml", desc.name)),
                render(desc, v),
            ));
        }
        tables.push_str(&ocf_common::docs::markdown(desc, "rust"));
        tables.push('\n');
    }
    for (desc, page) in crate::manuals() {
        out.push((
            root.join("man").join(format!("ocf_rust_{}.7", desc.name)),
            ocf_common::docs::man(desc, "rust", page),
        ));
    }
    let readme_path = root.join("README.md");
    let readme = std::fs::read_to_string(&readme_path).unwrap_or_default();
    if let (Some(b), Some(e)) = (readme.find(README_BEGIN), readme.find(README_END)) {
        let mut new = String::new();
        new.push_str(&readme[..b + README_BEGIN.len()]);
        new.push_str("\n\n");
        new.push_str(&tables);
        new.push_str(&readme[e..]);
        out.push((readme_path, new));
    }
    out
}
