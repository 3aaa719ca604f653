//! The URIs of a live migration, derived from the parameters as the shell agent derives
//! them: the target host's libvirt URI, and the URI of the migration data stream.
//! Used by migrate_to, and shown by validate-all.

use super::params::{MigrateOptions, Params};

/// `node.example.com` with suffix `-mig` → `node-mig.example.com`.
pub fn with_suffix(node: &str, suffix: Option<&str>) -> String {
    match suffix {
        None | Some("") => node.to_string(),
        Some(s) => match node.split_once('.') {
            Some((first, rest)) => format!("{first}{s}.{rest}"),
            None => format!("{node}{s}"),
        },
    }
}

/// The target host's libvirt URI: `remoteuri` (with %n), or the local URI with the
/// target's host (suffix, user) and migration_transport in its scheme.
pub fn remote_uri(p: &Params, local_uri: &str, target: &str) -> String {
    if let Some(r) = &p.remoteuri {
        return r.replace("%n", target);
    }
    let host = with_suffix(target, p.migration_network_suffix.as_deref());
    let host = match &p.migration_user {
        Some(u) => format!("{u}@{host}"),
        None => host,
    };
    let (scheme, rest) = local_uri
        .split_once("://")
        .unwrap_or((local_uri, "/system"));
    // The local URI's transport is kept (qemu+ssh://a/system → qemu+ssh://TARGET/system),
    // as the shell agent keeps it; migration_transport replaces it.
    let scheme = match &p.migration_transport {
        Some(t) => format!("{}+{t}", scheme.split('+').next().unwrap_or(scheme)),
        None => scheme.to_string(),
    };
    // Keep the local URI's port and path: authority is up to the first '/'.
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let port = authority
        .rsplit_once(':')
        .filter(|(_, p)| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        .map(|(_, p)| format!(":{p}"))
        .unwrap_or_default();
    format!("{scheme}://{host}{port}/{path}")
}

/// The URI of the migration data stream, if one is chosen here: `migrateuri` (with %n),
/// else --migrateuri in migrate_options, else with migration_network_suffix for qemu
/// `tcp:HOST:PORT` with migrateport, else `tcp://HOST`, and for xen `HOST`.
///
/// Without migrateport the URI names no port: the target's libvirt then takes a free one
/// from its migration port range (its port allocator knows the ports its other incoming
/// migrations hold), so that several guests can migrate to one host at once, as a drain
/// does. A port drawn here at random from the same 64 ports would collide: with six
/// concurrent migrations to one target, one time in five.
pub fn migrate_uri(p: &Params, local_uri: &str, target: &str) -> Option<String> {
    let opts: &MigrateOptions = &p.migrate_options;
    if let Some(u) = p.migrateuri.as_deref().or(opts.migrateuri.as_deref()) {
        return Some(u.replace("%n", target));
    }
    let suffix = p.migration_network_suffix.as_deref()?;
    let host = with_suffix(target, Some(suffix));
    if local_uri.starts_with("qemu") {
        Some(match p.migrateport {
            Some(port) => format!("tcp:{host}:{port}"),
            None => format!("tcp://{host}"),
        })
    } else if local_uri.starts_with("xen") {
        Some(host)
    } else {
        tracing::warn!("migration_network_suffix is only used with qemu and xen URIs");
        None
    }
}

/// What migrate_to would use, for validate-all: the target's libvirt URI and the data
/// URI (None: libvirt chooses). The target is CRM_meta_migrate_target when set, else `%n`
/// (the target node's name); `local_uri` is the hypervisor's URI.
pub fn planned_uris(p: &Params, target: Option<&str>, local_uri: &str) -> (String, Option<String>) {
    let target = target.unwrap_or("%n");
    (
        remote_uri(p, local_uri, target),
        migrate_uri(p, local_uri, target),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(pairs: &[(&str, &str)]) -> Params {
        let env = ocf_common::OcfEnv::from_pairs(pairs.iter().map(|(k, v)| (*k, *v)));
        Params::parse(&ocf_common::Params::parse(&super::super::DESCRIPTION, &env))
    }

    #[test]
    fn uris_from_the_parameters() {
        let c = ctx(&[
            ("OCF_RESKEY_migration_transport", "tcp"),
            ("OCF_RESKEY_migration_user", "root"),
            ("OCF_RESKEY_migration_network_suffix", "-mig"),
            ("OCF_RESKEY_migrateport", "49201"),
        ]);
        assert_eq!(
            remote_uri(&c, "qemu:///system", "node2.example.com"),
            "qemu+tcp://root@node2-mig.example.com/system"
        );
        assert_eq!(
            planned_uris(&c, Some("node2.example.com"), "qemu:///system"),
            (
                "qemu+tcp://root@node2-mig.example.com/system".to_string(),
                Some("tcp:node2-mig.example.com:49201".to_string())
            )
        );
        // without a target (validate-all outside a migration): %n; without migrateport no
        // port, every time: the target's libvirt picks a free one (concurrent migrations to
        // one host must not draw the same)
        let c = ctx(&[("OCF_RESKEY_migration_network_suffix", "-mig")]);
        let (remote, data) = planned_uris(&c, None, "qemu+ssh://a:2222/system");
        assert_eq!(remote, "qemu+ssh://%n-mig:2222/system");
        assert_eq!(data.unwrap(), "tcp://%n-mig");
        for _ in 0..100 {
            assert_eq!(
                migrate_uri(&c, "qemu:///system", "b").as_deref(),
                Some("tcp://b-mig")
            );
        }
        // remoteuri and migrateuri win, with %n
        let c = ctx(&[
            ("OCF_RESKEY_remoteuri", "qemu+ssh://%n/system"),
            ("OCF_RESKEY_migrateuri", "tcp://%n-data"),
            ("OCF_RESKEY_migrate_options", "--migrateuri tcp://ignored"),
            ("OCF_RESKEY_migration_network_suffix", "-mig"),
        ]);
        assert_eq!(remote_uri(&c, "qemu:///system", "b"), "qemu+ssh://b/system");
        assert_eq!(
            migrate_uri(&c, "qemu:///system", "b").as_deref(),
            Some("tcp://b-data")
        );
        // no suffix, no migrateuri: libvirt chooses
        let c = ctx(&[("OCF_RESKEY_migration_transport", "tcp")]);
        assert_eq!(planned_uris(&c, None, "qemu:///system").1, None);
    }

    #[test]
    fn the_hypervisors_transport_is_kept_unless_migration_transport_replaces_it() {
        let none = ctx(&[]);
        for (local, target) in [
            ("qemu+ssh://a/system", "qemu+ssh://b/system"),
            ("qemu+tcp://a:16509/system", "qemu+tcp://b:16509/system"),
            (
                "qemu+tls://root@a/system?no_verify=1",
                "qemu+tls://b/system?no_verify=1",
            ),
            ("qemu:///system", "qemu://b/system"),
            ("xen+ssh://a/", "xen+ssh://b/"),
        ] {
            assert_eq!(remote_uri(&none, local, "b"), target, "{local}");
        }
        let tcp = ctx(&[("OCF_RESKEY_migration_transport", "tcp")]);
        assert_eq!(
            remote_uri(&tcp, "qemu+ssh://a/system", "b"),
            "qemu+tcp://b/system"
        );
    }

    #[test]
    fn suffix_goes_after_the_first_label() {
        assert_eq!(
            with_suffix("node2.example.com", Some("-mig")),
            "node2-mig.example.com"
        );
        assert_eq!(with_suffix("node2", Some("-mig")), "node2-mig");
        assert_eq!(with_suffix("node2", None), "node2");
    }
}
