//! The raw libvirt calls that virt 0.5 lacks or gets wrong. This is the only `unsafe`
//! code of the agents; every function states the invariant that makes it sound.

use std::ffi::CString;
use std::os::raw::{c_int, c_void};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

use virt::connect::Connect;
use virt::domain::Domain;
use virt::error::Error;
use virt::sys;

/// `virDomainGetState`: (state, reason). virt 0.5's `Domain::state` ignores the call's
/// failure and reports a vanished domain as an unknown state; this returns the error.
pub fn domain_state(dom: &Domain) -> Result<(i32, i32), Error> {
    let mut state: c_int = -1;
    let mut reason: c_int = -1;
    // SAFETY: `dom.as_ptr()` is a live domain reference held by `dom` for the duration of
    // the call; `state` and `reason` are valid, writable c_ints on our stack.
    let rc = unsafe { sys::virDomainGetState(dom.as_ptr(), &mut state, &mut reason, 0) };
    if rc < 0 {
        return Err(Error::last_error());
    }
    Ok((state, reason))
}

/// `virDomainAbortJob`: cancels the domain's running job (a migration or a save).
/// virDomainMigrateStartPostCopy (virt 0.5 has no wrapper).
pub fn start_postcopy(dom: &Domain) -> Result<(), Error> {
    let rc = unsafe { sys::virDomainMigrateStartPostCopy(dom.as_ptr(), 0) };
    if rc < 0 {
        return Err(Error::last_error());
    }
    Ok(())
}

pub fn abort_job(dom: &Domain) -> Result<(), Error> {
    // SAFETY: `dom.as_ptr()` is a live domain reference held by `dom` during the call.
    let rc = unsafe { sys::virDomainAbortJob(dom.as_ptr()) };
    if rc < 0 {
        return Err(Error::last_error());
    }
    Ok(())
}

/// `virDomainSave`: saves the domain's memory to `path` and stops it.
pub fn save(dom: &Domain, path: &str) -> Result<(), Error> {
    let path = CString::new(path).map_err(|_| Error::last_error())?;
    // SAFETY: `dom.as_ptr()` is a live domain reference held by `dom`; `path` is a
    // NUL-terminated string that outlives the call (libvirt copies it).
    let rc = unsafe { sys::virDomainSave(dom.as_ptr(), path.as_ptr()) };
    if rc < 0 {
        return Err(Error::last_error());
    }
    Ok(())
}

/// `virDomainMigrateGetMaxDowntime`, in milliseconds.
pub fn migrate_max_downtime(dom: &Domain) -> Result<u64, Error> {
    let mut downtime: std::os::raw::c_ulonglong = 0;
    // SAFETY: `dom.as_ptr()` is a live domain reference held by `dom`; `downtime` is a
    // valid, writable u64 on our stack.
    let rc = unsafe { sys::virDomainMigrateGetMaxDowntime(dom.as_ptr(), &mut downtime, 0) };
    if rc < 0 {
        return Err(Error::last_error());
    }
    Ok(downtime)
}

/// Lifecycle events (`VIR_DOMAIN_EVENT_*` numbers) of one domain, delivered by the
/// libvirt event loop that [`super::libvirt::Libvirt`] runs.
pub struct LifecycleEvents {
    pub events: Receiver<i32>,
}

/// The sending end given to libvirt as the callback's opaque pointer.
type EventSink = SyncSender<i32>;

/// Called by libvirt's event loop thread for each lifecycle event of the domain.
///
/// SAFETY (of the body): `opaque` is the `Box<EventSink>` leaked by
/// [`watch_lifecycle`], which is never freed while the callback is registered (it is
/// never freed at all: the process is short-lived), so the reference is valid.
unsafe extern "C" fn on_lifecycle(
    _conn: sys::virConnectPtr,
    _dom: sys::virDomainPtr,
    event: c_int,
    _detail: c_int,
    opaque: *mut c_void,
) {
    let sink = &*(opaque as *const EventSink);
    // A full channel or a gone receiver only means nobody waits any more.
    let _ = sink.try_send(event);
}

/// Registers for lifecycle events of `dom` on `conn`. The default event loop must have
/// been registered before `conn` was opened and be running.
pub fn watch_lifecycle(conn: &Connect, dom: &Domain) -> Result<LifecycleEvents, Error> {
    let (tx, rx) = sync_channel::<i32>(64);
    let opaque = Box::into_raw(Box::new(tx)) as *mut c_void;
    type LifecycleCallback =
        unsafe extern "C" fn(sys::virConnectPtr, sys::virDomainPtr, c_int, c_int, *mut c_void);
    // SAFETY: libvirt calls a VIR_DOMAIN_EVENT_ID_LIFECYCLE callback with exactly the
    // signature of `on_lifecycle` (virConnectDomainEventCallback); the generic type in
    // the registration API is only a placeholder for all callback kinds, so the
    // transmute between these two function pointer types is the documented usage.
    let generic: unsafe extern "C" fn(sys::virConnectPtr, sys::virDomainPtr, *mut c_void) =
        unsafe { std::mem::transmute::<LifecycleCallback, _>(on_lifecycle) };
    // SAFETY: `conn` and `dom` are live references for the call; `opaque` points to a
    // leaked box that stays valid for the rest of the process (no free callback given).
    let rc = unsafe {
        sys::virConnectDomainEventRegisterAny(
            conn.as_ptr(),
            dom.as_ptr(),
            sys::VIR_DOMAIN_EVENT_ID_LIFECYCLE as c_int,
            Some(generic),
            opaque,
            None,
        )
    };
    if rc < 0 {
        return Err(Error::last_error());
    }
    Ok(LifecycleEvents { events: rx })
}
