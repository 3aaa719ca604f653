//! ocf:rust:VirtualDomain — see `ocf_agents::virtual_domain`.
#![allow(non_snake_case)]

fn main() {
    ocf_common::dispatch::main(&ocf_agents::virtual_domain::VirtualDomain)
}
