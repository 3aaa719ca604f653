//! ocf:rust:Dummy — see `ocf_agents::dummy`.
#![allow(non_snake_case)]

fn main() {
    ocf_common::dispatch::main(&ocf_agents::dummy::Dummy)
}
