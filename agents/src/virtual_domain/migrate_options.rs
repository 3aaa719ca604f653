//! `migrate_options`: the extra options of a live migration in `virsh migrate` syntax,
//! as the shell agent passes them to virsh, read into libvirt's flags and typed
//! migration parameters. Nothing is ever handed to a shell; an option libvirt's API
//! cannot express here, or one that would break the cluster's view of the domain
//! (another name on the target, an offline copy), is refused by name.

use std::time::Duration;

use virt::sys;

/// What to do when a migration outlasts `--timeout`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OnTimeout {
    /// Pause the guest so the migration can finish (virsh's default, `--timeout-suspend`).
    #[default]
    Suspend,
    /// Switch to post-copy (`--timeout-postcopy`).
    Postcopy,
}

/// The options, as flags and typed parameters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MigrateOptions {
    /// virDomainMigrateFlags (VIR_MIGRATE_LIVE is always added by migrate_to).
    pub flags: u32,
    /// `--migrateuri`: the data stream's URI.
    pub migrateuri: Option<String>,
    /// `--bandwidth` (MiB/s); the migration_speed parameter wins when set.
    pub bandwidth: Option<u64>,
    /// `--postcopy-bandwidth` (MiB/s).
    pub postcopy_bandwidth: Option<u64>,
    /// `--migrate-disks`: the disk targets to copy.
    pub migrate_disks: Vec<String>,
    pub disks_port: Option<i32>,
    pub disks_uri: Option<String>,
    pub parallel_connections: Option<i32>,
    /// `--comp-methods` (one method: libvirt's typed parameter carries one here).
    pub compression: Option<String>,
    pub comp_mt_level: Option<i32>,
    pub comp_mt_threads: Option<i32>,
    pub comp_mt_dthreads: Option<i32>,
    pub comp_xbzrle_cache: Option<u64>,
    pub comp_zlib_level: Option<i32>,
    pub comp_zstd_level: Option<i32>,
    pub auto_converge_initial: Option<i32>,
    pub auto_converge_increment: Option<i32>,
    pub listen_address: Option<String>,
    pub graphics_uri: Option<String>,
    pub tls_destination: Option<String>,
    /// `--timeout`: what is done, and after how long.
    pub timeout: Option<(Duration, OnTimeout)>,
    /// `--postcopy-after-precopy`: switch to post-copy after the first pass.
    pub postcopy_after_precopy: bool,
}

impl MigrateOptions {
    pub fn p2p(&self) -> bool {
        self.flags & sys::VIR_MIGRATE_PEER2PEER != 0
    }
}

/// Options that are only flags.
const FLAGS: &[(&str, u32)] = &[
    ("--live", 0),
    ("--verbose", 0),
    ("--p2p", sys::VIR_MIGRATE_PEER2PEER),
    (
        "--tunnelled",
        sys::VIR_MIGRATE_TUNNELLED | sys::VIR_MIGRATE_PEER2PEER,
    ),
    (
        "--tunneled",
        sys::VIR_MIGRATE_TUNNELLED | sys::VIR_MIGRATE_PEER2PEER,
    ),
    ("--persistent", sys::VIR_MIGRATE_PERSIST_DEST),
    ("--undefinesource", sys::VIR_MIGRATE_UNDEFINE_SOURCE),
    ("--unsafe", sys::VIR_MIGRATE_UNSAFE),
    ("--compressed", sys::VIR_MIGRATE_COMPRESSED),
    ("--auto-converge", sys::VIR_MIGRATE_AUTO_CONVERGE),
    ("--postcopy", sys::VIR_MIGRATE_POSTCOPY),
    ("--copy-storage-all", sys::VIR_MIGRATE_NON_SHARED_DISK),
    ("--copy-storage-inc", sys::VIR_MIGRATE_NON_SHARED_INC),
    (
        "--copy-storage-synchronous-writes",
        sys::VIR_MIGRATE_NON_SHARED_SYNCHRONOUS_WRITES,
    ),
    ("--abort-on-error", sys::VIR_MIGRATE_ABORT_ON_ERROR),
    ("--change-protection", sys::VIR_MIGRATE_CHANGE_PROTECTION),
    ("--rdma-pin-all", sys::VIR_MIGRATE_RDMA_PIN_ALL),
    ("--tls", sys::VIR_MIGRATE_TLS),
    ("--parallel", sys::VIR_MIGRATE_PARALLEL),
    ("--zerocopy", sys::VIR_MIGRATE_ZEROCOPY),
    ("--postcopy-after-precopy", 0),
    ("--timeout-suspend", 0),
    ("--timeout-postcopy", 0),
];

/// Options that take a value (`--name value` or `--name=value`).
const VALUED: &[&str] = &[
    "--migrateuri",
    "--bandwidth",
    "--postcopy-bandwidth",
    "--migrate-disks",
    "--disks-port",
    "--disks-uri",
    "--parallel-connections",
    "--comp-methods",
    "--comp-mt-level",
    "--comp-mt-threads",
    "--comp-mt-dthreads",
    "--comp-xbzrle-cache",
    "--comp-zlib-level",
    "--comp-zstd-level",
    "--auto-converge-initial",
    "--auto-converge-increment",
    "--listen-address",
    "--graphicsuri",
    "--tls-destination",
    "--timeout",
];

/// virsh options that are refused, and why.
const REFUSED: &[(&str, &str)] = &[
    ("--dname", "the domain would run under another name on the target, where the cluster looks for this one"),
    ("--xml", "the target's definition comes from the config file"),
    ("--persistent-xml", "the target's definition comes from the config file"),
    ("--offline", "a cluster migration moves a running domain"),
    ("--suspend", "the domain would stay paused on the target"),
    ("--direct", "direct migration is for hypervisors with their own migration transport (use --p2p)"),
    ("--postcopy-resume", "it resumes a failed post-copy migration by hand"),
    ("--domain", "the domain is the resource's"),
    ("--desturi", "the target is the node Pacemaker chose (see remoteuri)"),
];

fn number<T: std::str::FromStr>(opt: &str, v: &str) -> Result<T, String> {
    v.parse()
        .map_err(|_| format!("{opt}: '{v}' is not a non-negative number"))
}

/// Parses `migrate_options`.
pub fn parse_options(text: &str) -> Result<MigrateOptions, String> {
    let mut o = MigrateOptions::default();
    let (mut on_timeout, mut timeout) = (None, None);
    let mut words = text.split_whitespace();
    while let Some(w) = words.next() {
        let (opt, inline) = match w.split_once('=') {
            Some((o, v)) => (o, Some(v)),
            None => (w, None),
        };
        if let Some((_, flag)) = FLAGS.iter().find(|(n, _)| *n == opt) {
            if inline.is_some() {
                return Err(format!("'{w}': {opt} takes no value"));
            }
            o.flags |= flag;
            match opt {
                "--postcopy-after-precopy" => o.postcopy_after_precopy = true,
                "--timeout-suspend" => on_timeout = Some(OnTimeout::Suspend),
                "--timeout-postcopy" => on_timeout = Some(OnTimeout::Postcopy),
                _ => {}
            }
            continue;
        }
        if let Some((_, why)) = REFUSED.iter().find(|(n, _)| *n == opt) {
            return Err(format!("'{opt}' is not supported: {why}"));
        }
        if !VALUED.contains(&opt) {
            return Err(format!("'{w}' is not a supported migration option"));
        }
        let value = match inline {
            Some(v) if !v.is_empty() => v.to_string(),
            Some(_) => return Err(format!("{opt} needs a value")),
            None => words
                .next()
                .filter(|v| !v.starts_with("--"))
                .ok_or_else(|| format!("{opt} needs a value"))?
                .to_string(),
        };
        let v = value.as_str();
        match opt {
            "--migrateuri" => o.migrateuri = Some(value),
            "--bandwidth" => o.bandwidth = Some(number(opt, v)?),
            "--postcopy-bandwidth" => o.postcopy_bandwidth = Some(number(opt, v)?),
            "--migrate-disks" => {
                o.migrate_disks = v
                    .split(',')
                    .filter(|d| !d.is_empty())
                    .map(str::to_string)
                    .collect()
            }
            "--disks-port" => o.disks_port = Some(number(opt, v)?),
            "--disks-uri" => o.disks_uri = Some(value),
            "--parallel-connections" => o.parallel_connections = Some(number(opt, v)?),
            "--comp-methods" => {
                if v.contains(',') {
                    return Err(format!(
                        "--comp-methods: '{v}': one compression method only (libvirt's typed \
                         parameter takes one here)"
                    ));
                }
                o.compression = Some(value)
            }
            "--comp-mt-level" => o.comp_mt_level = Some(number(opt, v)?),
            "--comp-mt-threads" => o.comp_mt_threads = Some(number(opt, v)?),
            "--comp-mt-dthreads" => o.comp_mt_dthreads = Some(number(opt, v)?),
            "--comp-xbzrle-cache" => o.comp_xbzrle_cache = Some(number(opt, v)?),
            "--comp-zlib-level" => o.comp_zlib_level = Some(number(opt, v)?),
            "--comp-zstd-level" => o.comp_zstd_level = Some(number(opt, v)?),
            "--auto-converge-initial" => o.auto_converge_initial = Some(number(opt, v)?),
            "--auto-converge-increment" => o.auto_converge_increment = Some(number(opt, v)?),
            "--listen-address" => o.listen_address = Some(value),
            "--graphicsuri" => o.graphics_uri = Some(value),
            "--tls-destination" => o.tls_destination = Some(value),
            "--timeout" => {
                let secs: u64 = number(opt, v)?;
                if secs == 0 {
                    return Err("--timeout: must be at least 1 second".into());
                }
                timeout = Some(Duration::from_secs(secs));
            }
            _ => return Err(format!("'{w}' is not a supported migration option")),
        }
    }
    let postcopy = o.flags & sys::VIR_MIGRATE_POSTCOPY != 0;
    match (timeout, on_timeout) {
        (Some(t), action) => {
            let action = action.unwrap_or_default();
            if action == OnTimeout::Postcopy && !postcopy {
                return Err("--timeout-postcopy needs --postcopy".into());
            }
            o.timeout = Some((t, action));
        }
        (None, Some(_)) => {
            return Err("--timeout-suspend and --timeout-postcopy need --timeout".into())
        }
        (None, None) => {}
    }
    if o.postcopy_after_precopy && !postcopy {
        return Err("--postcopy-after-precopy needs --postcopy".into());
    }
    if o.parallel_connections.is_some() && o.flags & sys::VIR_MIGRATE_PARALLEL == 0 {
        return Err("--parallel-connections needs --parallel".into());
    }
    if o.postcopy_bandwidth.is_some() && !postcopy {
        return Err("--postcopy-bandwidth needs --postcopy".into());
    }
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_options_map_to_libvirt_flags() {
        let o = parse_options(
            "--live --p2p --tunnelled --persistent --undefinesource --migrateuri=tcp://x",
        )
        .unwrap();
        assert!(o.p2p());
        assert_eq!(o.migrateuri.as_deref(), Some("tcp://x"));
        for f in [
            sys::VIR_MIGRATE_TUNNELLED,
            sys::VIR_MIGRATE_PERSIST_DEST,
            sys::VIR_MIGRATE_UNDEFINE_SOURCE,
        ] {
            assert_ne!(o.flags & f, 0);
        }
        let o = parse_options("--tls --compressed --auto-converge --parallel --zerocopy").unwrap();
        for f in [
            sys::VIR_MIGRATE_TLS,
            sys::VIR_MIGRATE_COMPRESSED,
            sys::VIR_MIGRATE_AUTO_CONVERGE,
            sys::VIR_MIGRATE_PARALLEL,
            sys::VIR_MIGRATE_ZEROCOPY,
        ] {
            assert_ne!(o.flags & f, 0, "{f}");
        }
        assert_eq!(parse_options("").unwrap(), MigrateOptions::default());
    }

    #[test]
    fn valued_options_become_typed_parameters_in_both_spellings() {
        let o = parse_options(
            "--bandwidth 100 --migrate-disks=vda,vdb --parallel --parallel-connections 4 \
             --comp-methods xbzrle --comp-xbzrle-cache=67108864 --listen-address 10.0.0.2 \
             --disks-port 49300 --postcopy --postcopy-bandwidth 50 --auto-converge-initial 20",
        )
        .unwrap();
        assert_eq!(o.bandwidth, Some(100));
        assert_eq!(o.migrate_disks, ["vda", "vdb"]);
        assert_eq!(o.parallel_connections, Some(4));
        assert_eq!(o.compression.as_deref(), Some("xbzrle"));
        assert_eq!(o.comp_xbzrle_cache, Some(64 << 20));
        assert_eq!(o.listen_address.as_deref(), Some("10.0.0.2"));
        assert_eq!(o.disks_port, Some(49300));
        assert_eq!(o.postcopy_bandwidth, Some(50));
        assert_eq!(o.auto_converge_initial, Some(20));
        assert_eq!(
            parse_options("--migrateuri tcp://y")
                .unwrap()
                .migrateuri
                .as_deref(),
            Some("tcp://y")
        );
    }

    #[test]
    fn timeouts_and_postcopy() {
        let o = parse_options("--timeout 30").unwrap();
        assert_eq!(
            o.timeout,
            Some((Duration::from_secs(30), OnTimeout::Suspend))
        );
        let o = parse_options("--postcopy --timeout=5 --timeout-postcopy").unwrap();
        assert_eq!(
            o.timeout,
            Some((Duration::from_secs(5), OnTimeout::Postcopy))
        );
        assert!(
            parse_options("--postcopy --postcopy-after-precopy")
                .unwrap()
                .postcopy_after_precopy
        );
        for (bad, needle) in [
            ("--timeout 5 --timeout-postcopy", "needs --postcopy"),
            ("--timeout-suspend", "need --timeout"),
            ("--timeout 0", "at least 1 second"),
            ("--postcopy-after-precopy", "needs --postcopy"),
            ("--parallel-connections 2", "needs --parallel"),
        ] {
            let e = parse_options(bad).unwrap_err();
            assert!(e.contains(needle), "{bad}: {e}");
        }
    }

    #[test]
    fn anything_else_is_refused_by_name() {
        for (bad, needle) in [
            ("--bogus", "'--bogus' is not a supported"),
            (
                "--dname other",
                "'--dname' is not supported: the domain would run under another name",
            ),
            ("--offline", "'--offline' is not supported"),
            ("--xml /tmp/x.xml", "'--xml' is not supported"),
            ("--migrateuri", "--migrateuri needs a value"),
            ("--bandwidth --p2p", "--bandwidth needs a value"),
            (
                "--bandwidth fast",
                "--bandwidth: 'fast' is not a non-negative number",
            ),
            (
                "--bandwidth -1",
                "--bandwidth: '-1' is not a non-negative number",
            ),
            ("--p2p=1", "takes no value"),
            ("--comp-methods mt,xbzrle", "one compression method only"),
        ] {
            let e = parse_options(bad).unwrap_err();
            assert!(e.contains(needle), "{bad}: {e}");
        }
    }
}
