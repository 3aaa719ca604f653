//! The committed meta-data, manual pages and README tables are what the descriptions
//! generate.

use std::path::Path;

#[test]
fn generated_files_are_up_to_date() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let files = ocf_agents::generated::files(root);
    // Two renderings and a manual page per agent, plus the README.
    assert_eq!(
        files.len(),
        ocf_agents::all().len() * 3 + 1,
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
fn every_agent_has_a_manual_page_naming_every_parameter_and_action() {
    assert_eq!(ocf_agents::manuals().len(), ocf_agents::all().len());
    for (desc, page) in ocf_agents::manuals() {
        let man = ocf_common::docs::man(desc, "rust", page);
        assert!(man.starts_with(&format!(
            ".TH \"OCF_RUST_{}\" \"7\"",
            desc.name.to_uppercase()
        )));
        for p in desc.parameters {
            assert!(
                man.contains(&format!(".PP\n\\fB{}\\fR\n", p.name)),
                "{}",
                p.name
            );
        }
        for a in desc.actions {
            assert!(man.contains(&format!("\\fB{}\\fR", a.name)), "{}", a.name);
        }
        for section in [
            "EXIT STATUS",
            "EXAMPLE PCS USAGE",
            "EXAMPLE CRM SHELL",
            "DIFFERENCES",
        ] {
            assert!(man.contains(section), "{}: {section}", desc.name);
        }
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
