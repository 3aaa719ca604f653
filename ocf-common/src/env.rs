//! The environment Pacemaker (or crm_resource, or ocf-tester) gives an agent.
//!
//! Parameters arrive as `OCF_RESKEY_<name>`, meta attributes as
//! `OCF_RESKEY_CRM_meta_<name>` (with `-` turned into `_`), and the rest as `OCF_*` and
//! `HA_*` variables. [`OcfEnv`] is built from any list of variables so that tests can
//! give it a synthetic environment.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::value::parse_bool;

const RESKEY: &str = "OCF_RESKEY_";
const META: &str = "OCF_RESKEY_CRM_meta_";

/// Default of `HA_RSCTMP` in the OCF shell library (cleared at boot).
pub const DEFAULT_RSCTMP: &str = "/run/resource-agents";
/// Default of `HA_VARRUN` in the OCF shell library.
pub const DEFAULT_VARRUN: &str = "/var/run";
/// Default of `OCF_ROOT`.
pub const DEFAULT_OCF_ROOT: &str = "/usr/lib/ocf";

/// The OCF-relevant part of an agent's environment.
#[derive(Clone, Debug, Default)]
pub struct OcfEnv {
    vars: BTreeMap<String, String>,
}

impl OcfEnv {
    /// The current process environment (values that are not UTF-8 are converted lossily).
    pub fn from_process() -> OcfEnv {
        OcfEnv::from_pairs(std::env::vars_os().map(|(k, v)| {
            (
                k.to_string_lossy().into_owned(),
                v.to_string_lossy().into_owned(),
            )
        }))
    }

    /// An environment from explicit pairs (for tests and embedding).
    pub fn from_pairs<K, V, I>(pairs: I) -> OcfEnv
    where
        K: Into<String>,
        V: Into<String>,
        I: IntoIterator<Item = (K, V)>,
    {
        OcfEnv {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// Any variable, as given (`Some("")` when set but empty).
    pub fn var(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str)
    }

    fn non_empty(&self, name: &str) -> Option<&str> {
        self.var(name).filter(|v| !v.is_empty())
    }

    /// An instance parameter, `OCF_RESKEY_<name>`. Empty counts as unset, as `${x:=default}`
    /// does in the shell agents.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.non_empty(&format!("{RESKEY}{name}"))
    }

    /// A meta attribute, `OCF_RESKEY_CRM_meta_<name>`; `-` in `name` is read as `_`.
    pub fn meta(&self, name: &str) -> Option<&str> {
        self.non_empty(&format!("{META}{}", name.replace('-', "_")))
    }

    /// The operation timeout Pacemaker enforces (`CRM_meta_timeout`, milliseconds).
    pub fn timeout(&self) -> Option<Duration> {
        self.meta("timeout")
            .and_then(|v| v.trim().parse::<u64>().ok())
            .filter(|ms| *ms > 0)
            .map(Duration::from_millis)
    }

    /// The operation interval in milliseconds; 0 when unset or unreadable.
    pub fn interval_ms(&self) -> u64 {
        self.meta("interval")
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0)
    }

    /// `OCF_CHECK_LEVEL` (0 when unset or not a number).
    pub fn check_level(&self) -> u32 {
        self.non_empty("OCF_CHECK_LEVEL")
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    }

    /// `OCF_RESOURCE_INSTANCE`: the resource id (`id:N` for clone instances).
    pub fn instance(&self) -> Option<&str> {
        self.non_empty("OCF_RESOURCE_INSTANCE")
    }

    /// The instance name used for per-resource files: the clone suffix `:N` is dropped
    /// when the clone is anonymous (`globally-unique=false`), so all its instances on a
    /// node share one name, as pacemaker's Dummy does.
    pub fn instance_for_state(&self) -> Option<String> {
        let instance = self.instance()?;
        if self.globally_unique() == Some(false) {
            Some(strip_clone_suffix(instance).to_string())
        } else {
            Some(instance.to_string())
        }
    }

    /// `CRM_meta_globally_unique`, when given and readable.
    pub fn globally_unique(&self) -> Option<bool> {
        self.meta("globally_unique")
            .and_then(|v| parse_bool(v).ok())
    }

    /// `OCF_ROOT`, defaulting to /usr/lib/ocf.
    pub fn root(&self) -> PathBuf {
        PathBuf::from(self.non_empty("OCF_ROOT").unwrap_or(DEFAULT_OCF_ROOT))
    }

    /// The minor OCF version the caller speaks (`OCF_RA_VERSION_MINOR`); Pacemaker >= 2.1
    /// sets 1, ocf-tester sets nothing.
    pub fn ra_version_minor(&self) -> Option<u32> {
        self.non_empty("OCF_RA_VERSION_MINOR")
            .and_then(|v| v.trim().parse().ok())
    }

    /// `OCF_EXIT_REASON_PREFIX` when set.
    pub fn exit_reason_prefix(&self) -> Option<&str> {
        self.non_empty("OCF_EXIT_REASON_PREFIX")
    }

    /// `HA_RSCTMP`, defaulting to /run/resource-agents.
    pub fn rsctmp(&self) -> PathBuf {
        PathBuf::from(self.non_empty("HA_RSCTMP").unwrap_or(DEFAULT_RSCTMP))
    }

    /// `HA_VARRUN`, defaulting to /var/run.
    pub fn varrun(&self) -> PathBuf {
        PathBuf::from(self.non_empty("HA_VARRUN").unwrap_or(DEFAULT_VARRUN))
    }

    /// Debug logging requested (`HA_debug` or `PCMK_debug` true).
    pub fn debug(&self) -> bool {
        ["HA_debug", "PCMK_debug"].iter().any(|n| {
            self.non_empty(n)
                .map(|v| parse_bool(v).unwrap_or(false))
                .unwrap_or(false)
        })
    }

    /// Log file to append to (`HA_LOGFILE`, else `PCMK_logfile`), if any.
    pub fn logfile(&self) -> Option<PathBuf> {
        self.non_empty("HA_LOGFILE")
            .or_else(|| self.non_empty("PCMK_logfile"))
            .filter(|v| *v != "none" && *v != "/dev/null")
            .map(PathBuf::from)
    }

    /// Debug log file (`HA_DEBUGLOG`), if any.
    pub fn debuglog(&self) -> Option<PathBuf> {
        self.non_empty("HA_DEBUGLOG").map(PathBuf::from)
    }

    /// The node a migration goes to (`CRM_meta_migrate_target`).
    pub fn migrate_target(&self) -> Option<&str> {
        self.meta("migrate_target")
    }

    /// The node a migration comes from (`CRM_meta_migrate_source`).
    pub fn migrate_source(&self) -> Option<&str> {
        self.meta("migrate_source")
    }

    /// The node the operation runs on, as Pacemaker names it (`CRM_meta_on_node`).
    pub fn on_node(&self) -> Option<&str> {
        self.meta("on_node")
    }

    /// All variables whose names start with `prefix`, for diagnostics (Dummy's envfile).
    pub fn all(&self) -> impl Iterator<Item = (&str, &str)> {
        self.vars.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// `id:3` → `id`; names without a numeric suffix are returned unchanged.
pub fn strip_clone_suffix(instance: &str) -> &str {
    match instance.rsplit_once(':') {
        Some((base, n))
            if !base.is_empty() && !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) =>
        {
            base
        }
        _ => instance,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> OcfEnv {
        OcfEnv::from_pairs(pairs.iter().copied())
    }

    #[test]
    fn params_and_meta_are_read_by_name() {
        let e = env(&[
            ("OCF_RESKEY_config", "/etc/vm.xml"),
            ("OCF_RESKEY_empty", ""),
            ("OCF_RESKEY_CRM_meta_timeout", "20000"),
            ("OCF_RESKEY_CRM_meta_interval", "10000"),
            ("OCF_RESKEY_CRM_meta_migrate_target", "node2"),
            ("OCF_RESKEY_CRM_meta_on_node", "node1"),
            ("OCF_RESKEY_CRM_meta_record_pending", "true"),
        ]);
        assert_eq!(e.param("config"), Some("/etc/vm.xml"));
        assert_eq!(e.param("empty"), None);
        assert_eq!(e.param("missing"), None);
        assert_eq!(e.timeout(), Some(Duration::from_secs(20)));
        assert_eq!(e.interval_ms(), 10000);
        assert_eq!(e.migrate_target(), Some("node2"));
        assert_eq!(e.on_node(), Some("node1"));
        assert_eq!(e.meta("record-pending"), Some("true"));
        assert_eq!(e.migrate_source(), None);
    }

    #[test]
    fn the_timeout_is_milliseconds_and_anything_else_is_no_timeout() {
        let timeout = |v: &str| env(&[("OCF_RESKEY_CRM_meta_timeout", v)]).timeout();
        assert_eq!(env(&[]).timeout(), None);
        assert_eq!(timeout("20000"), Some(Duration::from_secs(20)));
        assert_eq!(timeout(" 1500 "), Some(Duration::from_millis(1500)));
        // Pacemaker passes milliseconds; a unit, a sign, a fraction or garbage is not one.
        for bad in ["", "0", "20s", "-5", "1.5", "soon", "99999999999999999999"] {
            assert_eq!(timeout(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_missing_or_unreadable_interval_is_a_probe_interval() {
        let interval = |v: &str| env(&[("OCF_RESKEY_CRM_meta_interval", v)]).interval_ms();
        assert_eq!(env(&[]).interval_ms(), 0);
        assert_eq!(interval("10000"), 10000);
        for bad in ["", "-5", "10s", "x"] {
            assert_eq!(interval(bad), 0, "{bad:?}");
        }
    }

    #[test]
    fn check_level_and_ra_version_read_numbers_only() {
        let level = |v: &str| env(&[("OCF_CHECK_LEVEL", v)]).check_level();
        assert_eq!(env(&[]).check_level(), 0);
        assert_eq!(level("20"), 20);
        assert_eq!(level(" 10 "), 10);
        for bad in ["", "x", "-1", "10a"] {
            assert_eq!(level(bad), 0, "{bad:?}");
        }
        let minor = |v: &str| env(&[("OCF_RA_VERSION_MINOR", v)]).ra_version_minor();
        assert_eq!(env(&[]).ra_version_minor(), None);
        assert_eq!(minor("1"), Some(1));
        assert_eq!(minor("0"), Some(0));
        assert_eq!(minor(""), None);
        assert_eq!(minor("1.1"), None);
    }

    /// The defaults of the OCF shell library (resource-agents' ocf-directories and the
    /// OCF spec's OCF_ROOT), stated here independently of the constants: an unset or
    /// empty variable gets them, as `${VAR:=default}` does; any other value is used as
    /// given, as the shell library does.
    #[test]
    fn unset_or_empty_directories_get_the_shell_library_defaults() {
        let documented = [
            ("HA_RSCTMP", "/run/resource-agents"),
            ("HA_VARRUN", "/var/run"),
            ("OCF_ROOT", "/usr/lib/ocf"),
        ];
        let dirs = |e: &OcfEnv| [e.rsctmp(), e.varrun(), e.root()];
        for e in [
            env(&[]),
            env(&[("HA_RSCTMP", ""), ("HA_VARRUN", ""), ("OCF_ROOT", "")]),
        ] {
            for ((var, default), got) in documented.iter().zip(dirs(&e)) {
                assert_eq!(got, PathBuf::from(default), "{var} in {e:?}");
            }
        }
        let given = env(&[
            ("HA_RSCTMP", "/tmp/r"),
            ("HA_VARRUN", "relative/v"),
            ("OCF_ROOT", "/o/"),
        ]);
        assert_eq!(
            dirs(&given),
            [
                PathBuf::from("/tmp/r"),
                PathBuf::from("relative/v"),
                PathBuf::from("/o/")
            ]
        );
        // A directory variable of another name changes nothing.
        let other = env(&[("HA_RSCTMP_X", "/x"), ("ha_rsctmp", "/y")]);
        assert_eq!(other.rsctmp(), PathBuf::from("/run/resource-agents"));
    }

    #[test]
    fn clone_suffix_is_stripped_only_for_anonymous_clones() {
        assert_eq!(strip_clone_suffix("web:3"), "web");
        assert_eq!(strip_clone_suffix("web"), "web");
        assert_eq!(strip_clone_suffix("a:b"), "a:b");
        assert_eq!(strip_clone_suffix(":3"), ":3");
        let anon = env(&[
            ("OCF_RESOURCE_INSTANCE", "web:3"),
            ("OCF_RESKEY_CRM_meta_globally_unique", "false"),
        ]);
        assert_eq!(anon.instance_for_state().as_deref(), Some("web"));
        let unique = env(&[
            ("OCF_RESOURCE_INSTANCE", "web:3"),
            ("OCF_RESKEY_CRM_meta_globally_unique", "true"),
        ]);
        assert_eq!(unique.instance_for_state().as_deref(), Some("web:3"));
        let primitive = env(&[("OCF_RESOURCE_INSTANCE", "web")]);
        assert_eq!(primitive.instance_for_state().as_deref(), Some("web"));
    }

    #[test]
    fn debug_is_any_true_flag_and_garbage_is_not_true() {
        assert!(!env(&[]).debug());
        assert!(env(&[("HA_debug", "1")]).debug());
        assert!(env(&[("PCMK_debug", "yes")]).debug());
        assert!(env(&[("HA_debug", "0"), ("PCMK_debug", "on")]).debug());
        for not_true in ["0", "no", "", "maybe", "2"] {
            assert!(!env(&[("HA_debug", not_true)]).debug(), "{not_true:?}");
        }
    }

    #[test]
    fn log_file_prefers_ha_logfile_and_none_means_none() {
        let log = |pairs: &[(&str, &str)]| env(pairs).logfile();
        assert_eq!(log(&[]), None);
        assert_eq!(
            log(&[("HA_LOGFILE", "/tmp/l")]),
            Some(PathBuf::from("/tmp/l"))
        );
        assert_eq!(
            log(&[("HA_LOGFILE", "/tmp/ha"), ("PCMK_logfile", "/tmp/pcmk")]),
            Some(PathBuf::from("/tmp/ha"))
        );
        // An empty HA_LOGFILE is unset: Pacemaker's own log file is used.
        assert_eq!(
            log(&[("HA_LOGFILE", ""), ("PCMK_logfile", "/tmp/pcmk")]),
            Some(PathBuf::from("/tmp/pcmk"))
        );
        assert_eq!(log(&[("PCMK_logfile", "none")]), None);
        assert_eq!(log(&[("HA_LOGFILE", "/dev/null")]), None);
        assert_eq!(
            env(&[("HA_DEBUGLOG", "/tmp/d")]).debuglog(),
            Some(PathBuf::from("/tmp/d"))
        );
        assert_eq!(env(&[("HA_DEBUGLOG", "")]).debuglog(), None);
    }

    #[test]
    fn a_garbage_globally_unique_keeps_the_clone_suffix() {
        let e = env(&[
            ("OCF_RESOURCE_INSTANCE", "web:3"),
            ("OCF_RESKEY_CRM_meta_globally_unique", "perhaps"),
        ]);
        assert_eq!(e.globally_unique(), None);
        assert_eq!(e.instance_for_state().as_deref(), Some("web:3"));
        assert_eq!(env(&[("OCF_RESOURCE_INSTANCE", "")]).instance(), None);
        assert_eq!(
            env(&[("OCF_EXIT_REASON_PREFIX", "")]).exit_reason_prefix(),
            None
        );
    }
}
