//! ocf:rust:VirtualDomain — see `ocf_agents::virtual_domain` (this binary is its front,
//! `ocf_agents::virtual_domain::front`: it links no libvirt and loads the agent's plugin).
#![allow(non_snake_case)]

fn main() {
    ocf_agents::virtual_domain::front::main()
}
