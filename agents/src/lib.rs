//! The resource agents of ocf-rs. Each agent is a module holding its description and its
//! actions; its binary in `src/bin/` only hands it to [`ocf_common::dispatch::main`].

pub mod dummy;
pub mod generated;
pub mod virtual_domain;

use ocf_common::AgentDescription;

/// Every agent this crate builds, for the generated meta-data and documentation.
pub fn all() -> Vec<&'static AgentDescription> {
    vec![&dummy::DESCRIPTION, &virtual_domain::DESCRIPTION]
}

/// Every agent with its manual page's own text.
pub fn manuals() -> Vec<(
    &'static AgentDescription,
    &'static ocf_common::docs::ManPage,
)> {
    vec![
        (&dummy::DESCRIPTION, &dummy::MAN),
        (&virtual_domain::DESCRIPTION, &virtual_domain::MAN),
    ]
}
