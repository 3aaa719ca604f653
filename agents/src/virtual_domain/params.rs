//! VirtualDomain's parameters, typed and parsed once per invocation from the values the
//! description declares ([`super::DESCRIPTION`]); the actions read fields, never names.
//!
//! Types were checked by [`ocf_common::Params`]; here the values are read into what the
//! actions use (libvirt flags for `shutdown_mode` and `migrate_options`, a port, the
//! utilization switches), and the values and combinations that are wrong on every host
//! are recorded as [`Error::Parameter`] problems. Actions that create or move the domain
//! refuse to run with a problem ([`Params::check`]); monitor and stop use what they need.

use virt::sys;

use super::error::Error;
pub use super::migrate_options::{parse_options, MigrateOptions};

/// The utilization attributes the agent can publish, in the order of the description.
pub const UTILIZATION: [&str; 3] = ["cpu", "host_memory", "hv_memory"];

/// One utilization attribute's switches.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Utilization {
    /// autoset_utilization_ATTR: publish the domain's value.
    pub autoset: bool,
    /// unset_utilization_ATTR: remove the attribute (when not autoset).
    pub unset: bool,
}

/// Every VirtualDomain parameter, as the actions use it.
#[derive(Clone, Debug, Default)]
pub struct Params {
    /// Path of the domain XML (absolute: a relative path is a problem).
    pub config: Option<String>,
    /// The hypervisor URI (`None`: libvirt's default).
    pub hypervisor: Option<String>,
    pub force_stop: bool,
    pub migration_transport: Option<String>,
    pub migration_user: Option<String>,
    /// Milliseconds; 0: not set.
    pub migration_downtime: u64,
    /// MiB/s; 0: not set.
    pub migration_speed: u64,
    pub migration_network_suffix: Option<String>,
    pub migrateuri: Option<String>,
    pub migrate_options: MigrateOptions,
    /// The monitor_scripts, one command each.
    pub monitor_scripts: Vec<String>,
    /// Per attribute of [`UTILIZATION`], in that order.
    pub utilization: [Utilization; 3],
    pub migrateport: Option<u16>,
    pub remoteuri: Option<String>,
    /// save_config_on_stop, or implied by sync_config_on_stop.
    pub save_config: bool,
    pub sync_config: bool,
    /// The snapshot directory.
    pub snapshot: Option<String>,
    pub backingfile: Option<String>,
    pub stateless: bool,
    pub copyindirs: Vec<String>,
    /// shutdown_mode as given (for the log) and as libvirt flags.
    pub shutdown_mode: Option<String>,
    pub shutdown_flags: u32,
    pub start_resources: bool,
    /// Values and combinations that are wrong on every host, in the order found.
    pub problems: Vec<Error>,
}

impl Params {
    /// Reads the typed values of one invocation.
    pub fn parse(p: &ocf_common::Params) -> Params {
        let text = |name: &str| p.str(name).map(str::to_string);
        let mut problems = Vec::new();
        let mut problem = |name: &'static str, message: String| {
            problems.push(Error::Parameter { name, message });
        };
        let mut non_negative = |name: &'static str| match p.int(name) {
            Some(v) if v < 0 => {
                problem(name, format!("parameter '{name}' must not be negative"));
                0
            }
            Some(v) => v as u64,
            None => 0,
        };
        let migration_downtime = non_negative("migration_downtime");
        let migration_speed = non_negative("migration_speed");
        let mut problem = |name: &'static str, message: String| {
            problems.push(Error::Parameter { name, message });
        };
        if p.bool("force_stop") && p.str("snapshot").is_some() {
            problem(
                "force_stop",
                "parameters 'force_stop' and 'snapshot' cannot be used together".into(),
            );
        }
        if p.bool("stateless") && p.str("backingfile").is_none() {
            problem(
                "stateless",
                "parameter 'stateless' needs 'backingfile'".into(),
            );
        }
        let migrateport = p
            .int("migrateport")
            .and_then(|port| match u16::try_from(port) {
                Ok(port) if port > 0 => Some(port),
                _ => {
                    problem(
                        "migrateport",
                        format!("parameter 'migrateport': {port} is not a TCP port"),
                    );
                    None
                }
            });
        let migration_user = text("migration_user");
        if let Some(user) = &migration_user {
            let ok = user.starts_with(|c: char| c.is_ascii_lowercase())
                && user
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
            if !ok {
                problem(
                    "migration_user",
                    format!("parameter 'migration_user': '{user}' is not a user name"),
                );
            }
        }
        let shutdown_mode = text("shutdown_mode");
        let shutdown_flags = shutdown_flags(shutdown_mode.as_deref()).unwrap_or_else(|e| {
            problem("shutdown_mode", format!("parameter 'shutdown_mode': {e}"));
            0
        });
        let migrate_options =
            parse_options(p.str("migrate_options").unwrap_or("")).unwrap_or_else(|e| {
                problem(
                    "migrate_options",
                    format!("parameter 'migrate_options': {e}"),
                );
                MigrateOptions::default()
            });
        let config = text("config");
        if let Some(cfg) = &config {
            if !cfg.starts_with('/') {
                problem(
                    "config",
                    format!("parameter 'config': '{cfg}' is not an absolute path"),
                );
            }
        }
        let words = |name: &str| {
            p.str(name)
                .unwrap_or("")
                .split_whitespace()
                .map(str::to_string)
                .collect::<Vec<_>>()
        };
        let utilization = UTILIZATION.map(|attr| Utilization {
            autoset: p.bool(&format!("autoset_utilization_{attr}")),
            unset: p.bool(&format!("unset_utilization_{attr}")),
        });
        Params {
            config,
            hypervisor: text("hypervisor"),
            force_stop: p.bool("force_stop"),
            migration_transport: text("migration_transport"),
            migration_user,
            migration_downtime,
            migration_speed,
            migration_network_suffix: text("migration_network_suffix"),
            migrateuri: text("migrateuri"),
            migrate_options,
            monitor_scripts: words("monitor_scripts"),
            utilization,
            migrateport,
            remoteuri: text("remoteuri"),
            save_config: p.bool("save_config_on_stop") || p.bool("sync_config_on_stop"),
            sync_config: p.bool("sync_config_on_stop"),
            snapshot: text("snapshot"),
            backingfile: text("backingfile"),
            stateless: p.bool("stateless"),
            copyindirs: words("copyindirs"),
            shutdown_mode,
            shutdown_flags,
            start_resources: p.bool("start_resources"),
            problems,
        }
    }

    /// `<snapshot>/<name>.state`, the memory image stop saves and start restores.
    pub fn snapshot_image(&self, name: &str) -> Option<std::path::PathBuf> {
        self.snapshot
            .as_deref()
            .map(|dir| std::path::Path::new(dir).join(format!("{name}.state")))
    }

    /// The first problem of the values, if any (start, migrate_*, validate-all,
    /// reload-agent refuse to act on one).
    pub fn check(&self) -> Result<(), Error> {
        match self.problems.first() {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }
}

/// The shutdown flags for `shutdown_mode` (a comma-separated list; none: libvirt's
/// default).
pub fn shutdown_flags(mode: Option<&str>) -> Result<u32, String> {
    let mut flags = 0;
    for word in mode
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|w| !w.is_empty())
    {
        flags |= match word {
            "acpi" => sys::VIR_DOMAIN_SHUTDOWN_ACPI_POWER_BTN,
            "agent" => sys::VIR_DOMAIN_SHUTDOWN_GUEST_AGENT,
            "initctl" => sys::VIR_DOMAIN_SHUTDOWN_INITCTL,
            "signal" => sys::VIR_DOMAIN_SHUTDOWN_SIGNAL,
            "paravirt" => sys::VIR_DOMAIN_SHUTDOWN_PARAVIRT,
            other => {
                return Err(format!(
                    "'{other}' is not a shutdown mode (acpi, agent, initctl, signal, paravirt)"
                ))
            }
        };
    }
    Ok(flags)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ocf_common::ExitCode;

    fn parse(pairs: &[(&str, &str)]) -> Params {
        let env = ocf_common::OcfEnv::from_pairs(
            pairs
                .iter()
                .map(|(k, v)| (format!("OCF_RESKEY_{k}"), v.to_string())),
        );
        Params::parse(&ocf_common::Params::parse(&super::super::DESCRIPTION, &env))
    }

    /// The name and code of the first problem.
    fn refused(pairs: &[(&str, &str)]) -> (&'static str, ExitCode, String) {
        match parse(pairs).check() {
            Err(e @ Error::Parameter { name, .. }) => (name, e.code(), e.reason()),
            other => panic!("{pairs:?}: {other:?}"),
        }
    }

    #[test]
    fn defaults_are_the_shell_agents() {
        let p = parse(&[("config", "/etc/vm.xml")]);
        assert!(p.problems.is_empty(), "{:?}", p.problems);
        assert_eq!(p.config.as_deref(), Some("/etc/vm.xml"));
        assert_eq!(p.hypervisor, None);
        assert!(!p.force_stop && !p.save_config && !p.stateless && !p.start_resources);
        assert_eq!((p.migration_speed, p.migration_downtime), (0, 0));
        assert_eq!(
            p.utilization,
            [Utilization {
                autoset: true,
                unset: false
            }; 3]
        );
        assert_eq!((p.shutdown_flags, p.migrateport), (0, None));
        assert!(p.monitor_scripts.is_empty() && p.copyindirs.is_empty());
    }

    #[test]
    fn values_are_typed_once() {
        let p = parse(&[
            ("config", "/etc/vm.xml"),
            ("shutdown_mode", "agent, acpi"),
            ("migrate_options", "--p2p --migrateuri tcp://x"),
            ("migrateport", "49201"),
            ("migration_speed", "100"),
            ("monitor_scripts", "/bin/a  /bin/b"),
            ("sync_config_on_stop", "true"),
            ("autoset_utilization_hv_memory", "false"),
            ("unset_utilization_hv_memory", "true"),
        ]);
        assert!(p.problems.is_empty(), "{:?}", p.problems);
        assert_eq!(
            p.shutdown_flags,
            sys::VIR_DOMAIN_SHUTDOWN_ACPI_POWER_BTN | sys::VIR_DOMAIN_SHUTDOWN_GUEST_AGENT
        );
        assert!(p.migrate_options.p2p());
        assert_eq!(p.migrate_options.migrateuri.as_deref(), Some("tcp://x"));
        assert_eq!((p.migrateport, p.migration_speed), (Some(49201), 100));
        assert_eq!(p.monitor_scripts, ["/bin/a", "/bin/b"]);
        assert!(p.save_config && p.sync_config, "sync implies save");
        assert_eq!(
            p.utilization[2],
            Utilization {
                autoset: false,
                unset: true
            }
        );
    }

    #[test]
    fn wrong_values_and_combinations_are_problems_naming_the_parameter() {
        let c = ("config", "/etc/vm.xml");
        for (pairs, name, needle) in [
            (
                vec![c, ("force_stop", "1"), ("snapshot", "/s")],
                "force_stop",
                "cannot be used together",
            ),
            (
                vec![c, ("stateless", "1")],
                "stateless",
                "needs 'backingfile'",
            ),
            (
                vec![c, ("migration_speed", "-1")],
                "migration_speed",
                "negative",
            ),
            (
                vec![c, ("migration_downtime", "-5")],
                "migration_downtime",
                "negative",
            ),
            (
                vec![c, ("migrateport", "70000")],
                "migrateport",
                "not a TCP port",
            ),
            (
                vec![c, ("migrateport", "0")],
                "migrateport",
                "not a TCP port",
            ),
            (
                vec![c, ("migration_user", "Root")],
                "migration_user",
                "not a user name",
            ),
            (
                vec![c, ("shutdown_mode", "reboot")],
                "shutdown_mode",
                "'reboot'",
            ),
            (
                vec![c, ("migrate_options", "--bogus")],
                "migrate_options",
                "'--bogus'",
            ),
            (vec![("config", "vm.xml")], "config", "not an absolute path"),
        ] {
            let (got, code, reason) = refused(&pairs);
            assert_eq!(got, name, "{pairs:?}");
            assert_eq!(code, ExitCode::ErrConfigured, "{pairs:?}");
            assert!(reason.contains(name), "{reason}");
            assert!(reason.contains(needle), "{reason}");
        }
    }

    #[test]
    fn shutdown_modes() {
        assert_eq!(shutdown_flags(None), Ok(0));
        assert_eq!(shutdown_flags(Some("")), Ok(0));
        assert_eq!(
            shutdown_flags(Some("acpi")),
            Ok(sys::VIR_DOMAIN_SHUTDOWN_ACPI_POWER_BTN)
        );
        assert!(shutdown_flags(Some("acpi,reboot"))
            .unwrap_err()
            .contains("'reboot'"));
    }
}
