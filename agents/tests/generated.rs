//! The committed meta-data and README tables are what the descriptions generate.

use std::path::Path;

#[test]
fn generated_files_are_up_to_date() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let files = ocf_agents::generated::files(root);
    // Two renderings per agent plus the README.
    assert_eq!(
        files.len(),
        ocf_agents::all().len() * 2 + 1,
        "README markers missing?"
    );
    for (path, expected) in files {
        let actual = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            actual == expected,
            "{} is out of date: run `make metadata` and commit the result",
            path.display()
        );
    }
}

#[test]
fn every_advertised_action_is_one_the_dispatcher_knows() {
    for desc in ocf_agents::all() {
        for a in desc.actions {
            assert!(
                ocf_common::Action::parse(a.name).is_some(),
                "{}: {}",
                desc.name,
                a.name
            );
        }
        for p in desc.parameters {
            assert!(
                !p.shortdesc.is_empty() && !p.longdesc.is_empty(),
                "{}: {} undocumented",
                desc.name,
                p.name
            );
        }
    }
}
