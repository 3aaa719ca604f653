//! The agent's plugin (`libocf_agents.so`, the crate's `cdylib`): the whole VirtualDomain
//! agent, linked against libvirt, behind one C entry point that the front
//! ([`super::front`]) calls once libvirt's client library is loaded.

use std::ffi::c_int;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use ocf_common::exit::exit_reason_line;
use ocf_common::OcfEnv;

/// The entry point's symbol; its version changes with [`crate::virtual_domain::dl::Entry`].
pub const ENTRY: &str = "ocf_rs_virtual_domain_v1";

/// Runs the action of this process's arguments and environment, as
/// `ocf_common::dispatch::main` would, and returns its exit status instead of exiting
/// (the front exits). `elapsed_us`: the time the process has run already, which the
/// action's deadline counts. Nothing unwinds out of it.
#[no_mangle]
pub extern "C" fn ocf_rs_virtual_domain_v1(elapsed_us: u64) -> c_int {
    let now = Instant::now();
    let started = now
        .checked_sub(Duration::from_micros(elapsed_us))
        .unwrap_or(now);
    let run = || ocf_common::dispatch::run_process(&super::VirtualDomain, started);
    catch_unwind(AssertUnwindSafe(run)).unwrap_or_else(|_| {
        let env = OcfEnv::from_process();
        eprintln!(
            "{}",
            exit_reason_line(
                env.exit_reason_prefix(),
                "internal error in the VirtualDomain plugin"
            )
        );
        ocf_common::ExitCode::ErrGeneric.code()
    })
}
