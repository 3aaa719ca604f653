//! One libvirt connection per invocation, and every call on it bounded in time.
//!
//! libvirt calls can block forever (a hung or SIGSTOPped libvirtd blocks even
//! `virConnectOpen`). Each call therefore runs on its own short-lived thread while the
//! caller waits at most until the given instant; a call that does not return is
//! abandoned (the process exits soon after) and reported as [`LibvirtError::Hung`].
//! Connections and domain handles are leaked on purpose: virt 0.5 panics in `Drop` when
//! libvirt reports a failure to close, and the process ends right after the action.

use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Once;
use std::time::Instant;

use virt::connect::Connect;
use virt::domain::{Domain, MigrateParameters};
use virt::error::{Error, ErrorDomain, ErrorNumber};
use virt::sys;

use super::hypervisor::{
    bounded, DomainState, Host, Hypervisor, JobProgress, LibvirtError, Migration, Uuid,
};
use super::process::Processes;
use super::raw;

/// libvirt's name and number of an error's code, as its C API spells them
/// (`VIR_ERR_SYSTEM_ERROR (38)`), for the log.
pub fn code_name(e: &Error) -> String {
    match e.code() {
        virt::enumutil::Enum::Known(c) => {
            let name = upper_snake(&format!("{c:?}")); // not debug text: libvirt's C name
            format!("VIR_ERR_{name} ({})", e.code().to_raw())
        }
        virt::enumutil::Enum::Unknown(n) => format!("libvirt error {n}"),
    }
}

/// libvirt's name of an error's domain (`VIR_FROM_RPC`), for the log.
pub fn domain_name(e: &Error) -> String {
    match e.domain() {
        virt::enumutil::Enum::Known(d) => {
            let name = upper_snake(&format!("{d:?}")); // not debug text: libvirt's C name
            format!("VIR_FROM_{name}")
        }
        virt::enumutil::Enum::Unknown(n) => format!("libvirt domain {n}"),
    }
}

/// `SystemError` → `SYSTEM_ERROR`.
fn upper_snake(camel: &str) -> String {
    let mut out = String::new();
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

/// Whether an error's class is one a broken connection gives. The class alone does not
/// tell a dead connection from a healthy daemon refusing one request (a system error is
/// also what a save to a full disk gives, an RPC error what a too large message gives):
/// see [`classify`].
fn is_connection_class(e: &Error) -> bool {
    e.code().is_known_and(|c| {
        matches!(
            c,
            ErrorNumber::SystemError
                | ErrorNumber::NoConnect
                | ErrorNumber::InvalidConn
                | ErrorNumber::AuthFailed
                | ErrorNumber::AuthUnavailable
                | ErrorNumber::Rpc
        )
    }) || e
        .domain()
        .is_known_and(|d| matches!(d, ErrorDomain::Rpc | ErrorDomain::Remote))
}

/// What a failed call means: libvirt unreachable only when the error is of a connection
/// class *and* the connection is not alive (`alive`: virConnectIsAlive's answer, `None`
/// when that did not answer either); otherwise the daemon refused this one request.
pub fn classify(connection_class: bool, alive: Option<bool>) -> Classified {
    if connection_class && alive != Some(true) {
        Classified::Unreachable
    } else {
        Classified::Refused
    }
}

/// See [`classify`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Classified {
    Unreachable,
    Refused,
}

static EVENT_LOOP: Once = Once::new();

/// An open libvirt connection.
#[derive(Clone)]
pub struct Libvirt {
    conn: &'static Connect,
    uri: String,
}

/// A domain handle on that connection.
#[derive(Clone, Copy)]
pub struct Guest {
    pub dom: &'static Domain,
}

/// This host, reached through libvirt, with its real `/proc`.
pub struct LibvirtHost;

impl Host for LibvirtHost {
    type Hv = Libvirt;
    fn connect(&self, uri: Option<&str>, until: Instant) -> Result<Libvirt, LibvirtError> {
        Libvirt::open(uri, until)
    }
    fn processes(&self) -> Processes {
        Processes::system()
    }
}

fn leak(dom: Domain) -> Guest {
    Guest {
        dom: Box::leak(Box::new(dom)),
    }
}

impl Libvirt {
    /// Opens `uri` (libvirt's default when `None`), giving up at `until`. The default
    /// event loop is registered first and runs on a background thread, so that lifecycle
    /// events and keepalive work.
    pub fn open(uri: Option<&str>, until: Instant) -> Result<Libvirt, LibvirtError> {
        EVENT_LOOP.call_once(|| {
            virt::error::clear_error_callback();
            if virt::event::event_register_default_impl().is_ok() {
                let _ = std::thread::Builder::new()
                    .name("libvirt-events".into())
                    .spawn(|| loop {
                        if virt::event::event_run_default_impl().is_err() {
                            std::thread::sleep(std::time::Duration::from_millis(50));
                        }
                    });
            }
        });
        let shown = uri.unwrap_or("the default URI").to_string();
        let owned = uri.map(str::to_string);
        let opened = bounded(until, "virConnectOpen", move || {
            Connect::open(owned.as_deref())
        })
        .map_err(|e| match e {
            LibvirtError::Hung { .. } => LibvirtError::Unreachable {
                uri: shown.clone(),
                message: "libvirtd did not answer (hung?)".into(),
            },
            other => other,
        })?;
        let conn = opened.map_err(|e| {
            tracing::warn!(uri = %shown, code = %code_name(&e), "virConnectOpen failed: {}", e.message());
            LibvirtError::Unreachable {
                uri: shown.clone(),
                message: e.message().to_string(),
            }
        })?;
        let conn: &'static Connect = Box::leak(Box::new(conn));
        let uri = conn.uri().unwrap_or(shown);
        Ok(Libvirt { conn, uri })
    }

    /// Runs one libvirt call on the connection, bounded by `until`. Failures are logged
    /// with libvirt's code and message.
    fn call<T: Send + 'static>(
        &self,
        op: &'static str,
        until: Instant,
        f: impl FnOnce(&'static Connect) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, LibvirtError> {
        let conn = self.conn;
        let uri = self.uri.clone();
        bounded(until, op, move || f(conn))?.map_err(|e| {
            let no_domain = e.code().is_known_and(|c| c == ErrorNumber::NoDomain);
            if !no_domain {
                tracing::warn!(op, code = %code_name(&e), from = %domain_name(&e), "libvirt call failed: {}", e.message());
            }
            let class = is_connection_class(&e);
            let alive = match class {
                true => bounded(until, "virConnectIsAlive", move || conn.is_alive())
                    .ok()
                    .and_then(Result::ok),
                false => None,
            };
            match classify(class, alive) {
                Classified::Unreachable => LibvirtError::Unreachable {
                    uri,
                    message: e.message().to_string(),
                },
                Classified::Refused => LibvirtError::Failed {
                    op,
                    code: code_name(&e),
                    message: e.message().to_string(),
                    no_domain,
                },
            }
        })
    }

    /// Runs a call on a domain handle.
    fn on<T: Send + 'static>(
        &self,
        guest: Guest,
        op: &'static str,
        until: Instant,
        f: impl FnOnce(&'static Domain) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, LibvirtError> {
        let dom = guest.dom;
        self.call(op, until, move |_| f(dom))
    }

    fn found(r: Result<Domain, LibvirtError>) -> Result<Option<Guest>, LibvirtError> {
        match r {
            Ok(dom) => Ok(Some(leak(dom))),
            Err(e) if e.is_no_domain() => Ok(None),
            Err(e) => Err(e),
        }
    }
}

impl Hypervisor for Libvirt {
    type Guest = Guest;

    fn uri(&self) -> &str {
        &self.uri
    }

    fn lookup_name(&self, name: &str, until: Instant) -> Result<Option<Guest>, LibvirtError> {
        let name = name.to_string();
        Self::found(self.call("virDomainLookupByName", until, move |c| {
            c.lookup_domain_by_name(&name)
        }))
    }

    fn lookup_uuid(&self, uuid: &str, until: Instant) -> Result<Option<Guest>, LibvirtError> {
        let uuid = uuid.to_string();
        Self::found(self.call("virDomainLookupByUUIDString", until, move |c| {
            c.lookup_domain_by_uuid_string(&uuid)
        }))
    }

    fn name_of(&self, g: Guest, until: Instant) -> Result<String, LibvirtError> {
        self.on(g, "virDomainGetName", until, |d| d.name())
    }

    fn uuid_of(&self, g: Guest, until: Instant) -> Result<Uuid, LibvirtError> {
        self.on(g, "virDomainGetUUIDString", until, |d| d.uuid_string())
    }

    fn state(&self, g: Guest, until: Instant) -> Result<DomainState, LibvirtError> {
        match self.on(g, "virDomainGetState", until, raw::domain_state) {
            Ok((s, _reason)) => Ok(DomainState::from_raw(s)),
            Err(e) if e.is_no_domain() => Ok(DomainState::Absent),
            Err(e) => Err(e),
        }
    }

    fn watch_lifecycle(&self, g: Guest, until: Instant) -> Result<Receiver<i32>, LibvirtError> {
        let dom = g.dom;
        self.call("virConnectDomainEventRegisterAny", until, move |c| {
            raw::watch_lifecycle(c, dom)
        })
        .map(|w| w.events)
    }

    fn shutdown(&self, g: Guest, flags: u32, until: Instant) -> Result<(), LibvirtError> {
        self.on(g, "virDomainShutdownFlags", until, move |d| {
            d.shutdown_flags(flags)
        })
    }

    fn destroy(&self, g: Guest, graceful: bool, until: Instant) -> Result<(), LibvirtError> {
        if graceful {
            let flag = sys::VIR_DOMAIN_DESTROY_GRACEFUL;
            self.on(g, "virDomainDestroyFlags(GRACEFUL)", until, move |d| {
                d.destroy_flags(flag)
            })
        } else {
            self.on(g, "virDomainDestroy", until, |d| d.destroy())
        }
    }

    fn save(&self, g: Guest, path: &str, until: Instant) -> Result<(), LibvirtError> {
        let p = path.to_string();
        self.on(g, "virDomainSave", until, move |d| raw::save(d, &p))
    }

    fn restore(&self, path: &str, until: Instant) -> Result<(), LibvirtError> {
        let p = path.to_string();
        self.call("virDomainRestore", until, move |c| c.restore_domain(&p))
    }

    fn inactive_xml(&self, g: Guest, until: Instant) -> Result<String, LibvirtError> {
        let flags = sys::VIR_DOMAIN_XML_INACTIVE | sys::VIR_DOMAIN_XML_SECURE;
        self.on(g, "virDomainGetXMLDesc", until, move |d| d.xml_desc(flags))
    }

    fn create_xml(&self, xml: &str, until: Instant) -> Result<Guest, LibvirtError> {
        let xml = xml.to_string();
        self.call("virDomainCreateXML", until, move |c| {
            c.create_domain_xml(&xml, 0)
        })
        .map(leak)
    }

    fn define_xml(&self, xml: &str, until: Instant) -> Result<Guest, LibvirtError> {
        let xml = xml.to_string();
        self.call("virDomainDefineXML", until, move |c| {
            c.define_domain_xml(&xml)
        })
        .map(leak)
    }

    fn create(&self, g: Guest, until: Instant) -> Result<(), LibvirtError> {
        self.on(g, "virDomainCreate", until, |d| d.create())
    }

    fn undefine(&self, g: Guest, until: Instant) -> Result<(), LibvirtError> {
        let flags = sys::VIR_DOMAIN_UNDEFINE_KEEP_NVRAM | sys::VIR_DOMAIN_UNDEFINE_MANAGED_SAVE;
        self.on(g, "virDomainUndefineFlags", until, move |d| {
            d.undefine_flags(flags)
        })
    }

    fn start_pool(&self, name: &str, until: Instant) -> Result<(), LibvirtError> {
        let name = name.to_string();
        self.call("storage pool start", until, move |c| {
            let p = c.lookup_storage_pool_by_name(&name)?;
            let r = if p.is_active()? {
                p.refresh(0)
            } else {
                p.create(0)
            };
            std::mem::forget(p);
            r
        })
    }

    fn start_network(&self, name: &str, until: Instant) -> Result<(), LibvirtError> {
        let name = name.to_string();
        self.call("network start", until, move |c| {
            let n = c.lookup_network_by_name(&name)?;
            let r = if n.is_active()? { Ok(()) } else { n.create() };
            std::mem::forget(n);
            r
        })
    }

    fn size(&self, g: Guest, until: Instant) -> Result<(u32, u64), LibvirtError> {
        self.on(g, "virDomainGetInfo", until, |d| d.info())
            .map(|i| (i.nr_virt_cpu, i.max_mem))
    }

    fn set_migration_speed(
        &self,
        g: Guest,
        mib_s: u64,
        until: Instant,
    ) -> Result<(), LibvirtError> {
        self.on(g, "virDomainMigrateSetMaxSpeed", until, move |d| {
            d.migrate_set_max_speed(mib_s, 0)
        })
    }

    fn set_migration_downtime(
        &self,
        g: Guest,
        ms: u64,
        until: Instant,
    ) -> Result<(), LibvirtError> {
        self.on(g, "virDomainMigrateSetMaxDowntime", until, move |d| {
            d.migrate_set_max_downtime(ms, 0)
        })
    }

    fn migration_downtime(&self, g: Guest, until: Instant) -> Result<u64, LibvirtError> {
        self.on(
            g,
            "virDomainMigrateGetMaxDowntime",
            until,
            raw::migrate_max_downtime,
        )
    }

    fn job_progress(&self, g: Guest, until: Instant) -> Result<JobProgress, LibvirtError> {
        self.on(g, "virDomainGetJobStats", until, |d| d.job_stats(0))
            .map(|s| JobProgress {
                remaining_bytes: s.data_remaining.unwrap_or(0),
                total_bytes: s.data_total.unwrap_or(0),
                elapsed_ms: s.time_elapsed.unwrap_or(0),
                iteration: s.mem_iteration.unwrap_or(0),
            })
    }

    fn abort_job(&self, g: Guest, until: Instant) -> Result<(), LibvirtError> {
        self.on(g, "virDomainAbortJob", until, raw::abort_job)
    }

    fn suspend(&self, g: Guest, until: Instant) -> Result<(), LibvirtError> {
        self.on(g, "virDomainSuspend", until, |d| d.suspend())
    }

    fn resume(&self, g: Guest, until: Instant) -> Result<(), LibvirtError> {
        self.on(g, "virDomainResume", until, |d| d.resume())
    }

    fn start_postcopy(&self, g: Guest, until: Instant) -> Result<(), LibvirtError> {
        self.on(
            g,
            "virDomainMigrateStartPostCopy",
            until,
            raw::start_postcopy,
        )
    }

    fn migrate(
        &self,
        g: Guest,
        dest: &Libvirt,
        m: Migration,
    ) -> Result<Receiver<Result<(), String>>, LibvirtError> {
        let dom = g.dom;
        let dconn = dest.conn;
        let (tx, rx) = sync_channel(1);
        std::thread::Builder::new()
            .name("migration".into())
            .spawn(move || {
                let o = m.options;
                let params = MigrateParameters {
                    uri: m.data_uri,
                    bandwidth: m.bandwidth,
                    bandwidth_postcopy: o.postcopy_bandwidth,
                    migrate_disks: o.migrate_disks,
                    disks_port: o.disks_port,
                    disks_uri: o.disks_uri,
                    parallel_connections: o.parallel_connections,
                    compression: o.compression,
                    compression_mt_level: o.comp_mt_level,
                    compression_mt_threads: o.comp_mt_threads,
                    compression_mt_dthreads: o.comp_mt_dthreads,
                    compression_xbzrle_cache: o.comp_xbzrle_cache,
                    compression_zlib_level: o.comp_zlib_level,
                    compression_zstd_level: o.comp_zstd_level,
                    auto_converge_initial: o.auto_converge_initial,
                    auto_converge_increment: o.auto_converge_increment,
                    listen_address: o.listen_address,
                    graphics_uri: o.graphics_uri,
                    tls_destination: o.tls_destination,
                    ..Default::default()
                };
                let r = if m.p2p {
                    dom.migrate_to_uri3(Some(&m.dest_uri), params, m.flags)
                } else {
                    dom.migrate3(dconn, params, m.flags).map(std::mem::forget)
                };
                let _ = tx.send(r.map_err(|e| e.message().to_string()));
            })
            .map_err(|e| LibvirtError::Failed {
                op: "virDomainMigrate3",
                code: "thread".into(),
                message: format!("cannot start the migration: {e}"),
                no_domain: false,
            })?;
        Ok(rx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libvirt_codes_are_logged_by_their_c_names() {
        assert_eq!(upper_snake("SystemError"), "SYSTEM_ERROR");
        assert_eq!(upper_snake("NoDomain"), "NO_DOMAIN");
        let nul = std::ffi::CString::new("a\0b").unwrap_err();
        let e = Error::from(nul);
        assert_eq!(code_name(&e), "VIR_ERR_INVALID_ARG (8)");
        assert_eq!(domain_name(&e), "VIR_FROM_NONE");
    }

    #[test]
    fn only_a_dead_connection_makes_libvirt_unreachable() {
        // A connection-class error on a live connection (a too large message, a failed
        // save) is the daemon refusing one request.
        assert_eq!(classify(true, Some(true)), Classified::Refused);
        assert_eq!(classify(true, Some(false)), Classified::Unreachable);
        // virConnectIsAlive did not answer either.
        assert_eq!(classify(true, None), Classified::Unreachable);
        assert_eq!(classify(false, None), Classified::Refused);
        assert_eq!(classify(false, Some(false)), Classified::Refused);
    }

    #[test]
    fn the_stopped_event_is_libvirts() {
        assert_eq!(
            super::super::hypervisor::EVENT_STOPPED,
            sys::VIR_DOMAIN_EVENT_STOPPED as i32
        );
    }
}
