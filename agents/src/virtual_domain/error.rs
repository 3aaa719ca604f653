//! What can go wrong in a VirtualDomain action, and the one place where that becomes an
//! OCF exit code and a reason ([`Error::code`], [`Error::reason`]).
//!
//! The rule the codes follow: 6 for values wrong on every host, 5 for what this host
//! lacks (the config file, a tool, the emulator), 2 and 4 for host resources that are
//! there but unusable, and 1 for everything about the domain and libvirt, whose answer
//! may differ on the next try or on another node. In particular an unreachable or hung
//! libvirtd is 1 in every action: a 5 would tell Pacemaker that the resource cannot run
//! here, and for a probe that it is not running, which nobody knows.

use ocf_common::{ExitCode, OcfError};

use super::hypervisor::{DomainState, LibvirtError};
use super::ConfigProblem;

#[derive(Clone, Debug)]
pub enum Error {
    /// The config file is unset (6) or cannot be used on this host (5).
    Config(ConfigProblem),
    /// A parameter's value, or a combination of values, is wrong anywhere (6).
    Parameter { name: &'static str, message: String },
    /// Something a parameter needs is not installed on this host (5).
    Missing(String),
    /// A host resource a parameter names exists but cannot be used (2).
    Unusable(String),
    /// The agent lacks a permission on this host (4).
    Permission(String),
    /// libvirt was unreachable or hung, or refused a call (1). `doing` says what the
    /// action was doing, when the call's own name does not.
    Libvirt {
        doing: Option<String>,
        error: LibvirtError,
    },
    /// A helper program or a monitor script failed (1).
    Tool(String),
    /// The action's time ran out before the domain was where it should be (1).
    TimedOut { action: &'static str, last: String },
    /// The domain is in a state the action cannot accept (1).
    State { name: String, state: DomainState },
    /// libvirt's domain of our name is another VM (another UUID): never touched (1).
    NotOurs {
        name: String,
        ours: Option<String>,
        theirs: String,
        doing: &'static str,
    },
    /// libvirt cannot answer and the guest's process cannot prove the answer (1).
    Unproven { error: LibvirtError, why: String },
    /// Any other failure of the action (1).
    Failed(String),
    /// The action is not one of VirtualDomain's (3).
    Unimplemented(&'static str),
}

impl Error {
    /// A libvirt failure while doing `doing`.
    pub fn libvirt(doing: impl Into<String>, error: LibvirtError) -> Error {
        Error::Libvirt {
            doing: Some(doing.into()),
            error,
        }
    }

    /// The OCF exit code of this failure.
    pub fn code(&self) -> ExitCode {
        match self {
            Error::Config(ConfigProblem::Unset) | Error::Parameter { .. } => {
                ExitCode::ErrConfigured
            }
            Error::Config(_) | Error::Missing(_) => ExitCode::ErrInstalled,
            Error::Unusable(_) => ExitCode::ErrArgs,
            Error::Permission(_) => ExitCode::ErrPerm,
            Error::Unimplemented(_) => ExitCode::ErrUnimplemented,
            Error::Libvirt { .. }
            | Error::Tool(_)
            | Error::TimedOut { .. }
            | Error::State { .. }
            | Error::NotOurs { .. }
            | Error::Unproven { .. }
            | Error::Failed(_) => ExitCode::ErrGeneric,
        }
    }

    /// The exit reason: one line for the cluster's status, naming what failed.
    pub fn reason(&self) -> String {
        match self {
            Error::Config(ConfigProblem::Unset) => {
                "parameter 'config' is required but not set".into()
            }
            Error::Config(ConfigProblem::Unreadable(why) | ConfigProblem::Invalid(why)) => {
                why.clone()
            }
            Error::Parameter { message, .. } => message.clone(),
            Error::Missing(why)
            | Error::Unusable(why)
            | Error::Permission(why)
            | Error::Tool(why)
            | Error::Failed(why) => why.clone(),
            Error::Libvirt { doing: None, error } => error.to_string(),
            Error::Libvirt {
                doing: Some(doing),
                error,
            } => format!("{doing}: {error}"),
            Error::TimedOut { action, last } => format!("{action} timed out: {last}"),
            Error::State { name, state } => format!("domain {name} is {}", state.describe()),
            Error::NotOurs {
                name,
                ours,
                theirs,
                doing,
                // Both UUIDs within Pacemaker's 128 characters for names up to 20.
            } => format!(
                "not ours: domain {name}{doing} has UUID {theirs} (ours: {})",
                ours.as_deref().unwrap_or("?")
            ),
            // What cannot be done first, then why (libvirt's message, cut first when long).
            Error::Unproven { error, why } => format!("{why}; {error}"),
            Error::Unimplemented(action) => format!("{action} is not implemented"),
        }
    }
}

impl From<LibvirtError> for Error {
    fn from(error: LibvirtError) -> Error {
        Error::Libvirt { doing: None, error }
    }
}

impl From<ConfigProblem> for Error {
    fn from(p: ConfigProblem) -> Error {
        Error::Config(p)
    }
}

impl From<Error> for OcfError {
    fn from(e: Error) -> OcfError {
        OcfError::new(e.code(), e.reason())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_code_per_kind_of_failure() {
        let unreachable = LibvirtError::Unreachable {
            uri: "qemu:///system".into(),
            message: "no socket".into(),
        };
        let cases = [
            (Error::Config(ConfigProblem::Unset), ExitCode::ErrConfigured),
            (
                Error::Config(ConfigProblem::Unreadable("x".into())),
                ExitCode::ErrInstalled,
            ),
            (
                Error::Config(ConfigProblem::Invalid("x".into())),
                ExitCode::ErrInstalled,
            ),
            (
                Error::Parameter {
                    name: "force_stop",
                    message: "m".into(),
                },
                ExitCode::ErrConfigured,
            ),
            (Error::Missing("qemu-img".into()), ExitCode::ErrInstalled),
            (Error::Unusable("snapshot".into()), ExitCode::ErrArgs),
            (Error::Permission("state".into()), ExitCode::ErrPerm),
            // However the action met it, an unreachable libvirtd is 1.
            (Error::from(unreachable.clone()), ExitCode::ErrGeneric),
            (
                Error::libvirt("Failed to start virtual domain vm1", unreachable.clone()),
                ExitCode::ErrGeneric,
            ),
            (
                Error::Unproven {
                    error: unreachable,
                    why: "no process".into(),
                },
                ExitCode::ErrGeneric,
            ),
            (
                Error::State {
                    name: "vm1".into(),
                    state: DomainState::Crashed,
                },
                ExitCode::ErrGeneric,
            ),
        ];
        for (e, code) in cases {
            assert_eq!(e.code(), code, "{e:?}");
            assert_eq!(OcfError::from(e.clone()).code, code);
            assert!(!e.reason().is_empty());
        }
    }

    #[test]
    fn reasons_name_what_failed() {
        let e = Error::NotOurs {
            name: "vm1".into(),
            ours: Some("u-1".into()),
            theirs: "u-2".into(),
            doing: "",
        };
        assert_eq!(e.reason(), "not ours: domain vm1 has UUID u-2 (ours: u-1)");
        let e = Error::libvirt(
            "Failed to start virtual domain vm1",
            LibvirtError::OutOfTime {
                op: "virDomainCreateXML",
            },
        );
        assert_eq!(
            e.reason(),
            "Failed to start virtual domain vm1: no time was left for virDomainCreateXML within the operation timeout"
        );
        assert_eq!(
            Error::State {
                name: "vm1".into(),
                state: DomainState::PmSuspended
            }
            .reason(),
            "domain vm1 is pmsuspended"
        );
    }
}
