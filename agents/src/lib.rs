//! The resource agents of ocf-rs. Each agent is a module holding its description and its
//! actions; its binary in `src/bin/` only hands it to [`ocf_common::dispatch::main`].

pub mod dummy;
