//! A hypervisor made up for the unit tests of the actions: domains in memory, and a
//! daemon that can be down, hung, or restarted (which breaks every open connection),
//! with hooks that change the world right before a given call. Its calls keep the real
//! implementation's contract: bounded by their instant, [`LibvirtError::OutOfTime`] when
//! that has passed, [`LibvirtError::Hung`] when the daemon does not answer.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::domain_xml;
use super::hypervisor::{
    same_uuid, DomainState, Host, Hypervisor, JobProgress, LibvirtError, Migration, Uuid,
    EVENT_STOPPED,
};
use super::process::Processes;

/// How a domain answers the shutdown request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shutdown {
    /// Powers off this long after the request.
    After(Duration),
    /// Never powers off by itself.
    Ignores,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Daemon {
    Up,
    /// Refuses connections; open connections report a broken connection.
    Down,
    /// Accepts nothing and answers nothing.
    Hung,
}

/// One domain libvirt holds.
#[derive(Clone, Debug)]
pub struct Dom {
    pub handle: u64,
    pub name: String,
    pub uuid: Uuid,
    pub state: DomainState,
    pub persistent: bool,
    pub shutdown: Shutdown,
    /// The inactive definition returned to save_config.
    pub xml: String,
}

type Hook = Box<dyn FnOnce(&mut World) + Send>;

/// What the fake daemon holds, and what happened to it.
pub struct World {
    pub domains: Vec<Dom>,
    pub daemon: Daemon,
    /// Bumped by [`World::restart`]: connections opened before it are broken.
    pub generation: u64,
    /// Every call made, by libvirt's name of it, in order.
    pub calls: Vec<&'static str>,
    pub connects: usize,
    /// How long a migration takes unless the guest is paused or switched to post-copy
    /// (`None`: it is done at once).
    pub migration_takes: Option<Duration>,
    /// Whether pausing the guest lets a running migration finish (it does, unless the
    /// test says otherwise).
    pub pause_finishes_migration: bool,
    /// A migration job was aborted / switched to post-copy.
    pub aborted: bool,
    pub postcopy: bool,
    hooks: Vec<(&'static str, Hook)>,
    watchers: Vec<(u64, SyncSender<i32>)>,
    next: u64,
}

impl World {
    /// A restart of libvirtd: open connections break, new ones work.
    pub fn restart(&mut self) {
        self.generation += 1;
    }

    /// Adds a running transient domain.
    pub fn add(&mut self, name: &str, uuid: &str) -> u64 {
        self.add_dom(name, uuid, DomainState::Running, false)
    }

    pub fn add_dom(&mut self, name: &str, uuid: &str, state: DomainState, persistent: bool) -> u64 {
        self.next += 1;
        self.domains.push(Dom {
            handle: self.next,
            name: name.into(),
            uuid: uuid.into(),
            state,
            persistent,
            shutdown: Shutdown::After(Duration::from_millis(100)),
            xml: format!("<domain type='qemu'><name>{name}</name><uuid>{uuid}</uuid></domain>"),
        });
        self.next
    }

    pub fn dom(&self, name: &str) -> Option<&Dom> {
        self.domains.iter().find(|d| d.name == name)
    }

    pub fn dom_mut(&mut self, name: &str) -> Option<&mut Dom> {
        self.domains.iter_mut().find(|d| d.name == name)
    }

    /// Whether a call of that name was made.
    pub fn called(&self, op: &str) -> bool {
        self.calls.contains(&op)
    }

    /// Runs `f` on the world right before the next call named `op` (once).
    pub fn before(&mut self, op: &'static str, f: impl FnOnce(&mut World) + Send + 'static) {
        self.hooks.push((op, Box::new(f)));
    }

    fn by_handle(&mut self, h: u64) -> Result<&mut Dom, LibvirtError> {
        self.domains
            .iter_mut()
            .find(|d| d.handle == h)
            .ok_or_else(no_domain)
    }

    /// The domain `h` powered off: a transient one is gone, watchers are told.
    fn power_off(&mut self, h: u64) {
        let Some(i) = self.domains.iter().position(|d| d.handle == h) else {
            return;
        };
        if self.domains[i].persistent {
            self.domains[i].state = DomainState::ShutOff;
        } else {
            self.domains.remove(i);
        }
        for (w, tx) in &self.watchers {
            if *w == h {
                let _ = tx.try_send(EVENT_STOPPED);
            }
        }
    }
}

fn no_domain() -> LibvirtError {
    LibvirtError::Failed {
        op: "fake",
        code: "NoDomain".into(),
        message: "Domain not found".into(),
        no_domain: true,
    }
}

fn refused(op: &'static str, message: &str) -> LibvirtError {
    LibvirtError::Failed {
        op,
        code: "OperationFailed".into(),
        message: message.into(),
        no_domain: false,
    }
}

/// The fake host: its daemon, and the processes the fallback sees.
#[derive(Clone)]
pub struct FakeHost {
    pub world: Arc<Mutex<World>>,
    pub procs: Processes,
}

impl FakeHost {
    /// An empty daemon that is up; the processes of this machine's `/proc` with libvirt's
    /// run directory at `run`.
    pub fn new(run: &std::path::Path) -> FakeHost {
        FakeHost {
            world: Arc::new(Mutex::new(World {
                domains: Vec::new(),
                daemon: Daemon::Up,
                generation: 0,
                calls: Vec::new(),
                connects: 0,
                migration_takes: None,
                pause_finishes_migration: true,
                aborted: false,
                postcopy: false,
                hooks: Vec::new(),
                watchers: Vec::new(),
                next: 0,
            })),
            procs: Processes::at("/proc", run),
        }
    }

    pub fn world(&self) -> MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Host for FakeHost {
    type Hv = FakeHv;
    fn connect(&self, uri: Option<&str>, until: Instant) -> Result<FakeHv, LibvirtError> {
        let uri = uri.unwrap_or("qemu:///system").to_string();
        let daemon = {
            let mut w = self.world();
            w.connects += 1;
            w.daemon
        };
        match daemon {
            Daemon::Up => Ok(FakeHv {
                world: self.world.clone(),
                generation: self.world().generation,
                uri,
            }),
            Daemon::Down => Err(LibvirtError::Unreachable {
                uri,
                message: "Failed to connect socket: No such file or directory".into(),
            }),
            Daemon::Hung => {
                std::thread::sleep(until.saturating_duration_since(Instant::now()));
                Err(LibvirtError::Unreachable {
                    uri,
                    message: "libvirtd did not answer (hung?)".into(),
                })
            }
        }
    }
    fn processes(&self) -> Processes {
        self.procs.clone()
    }
}

/// A connection to the fake daemon.
pub struct FakeHv {
    world: Arc<Mutex<World>>,
    generation: u64,
    uri: String,
}

impl FakeHv {
    fn world(&self) -> MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn call<T>(
        &self,
        op: &'static str,
        until: Instant,
        f: impl FnOnce(&mut World) -> Result<T, LibvirtError>,
    ) -> Result<T, LibvirtError> {
        let now = Instant::now();
        if until <= now {
            return Err(LibvirtError::OutOfTime { op });
        }
        let mut w = self.world.lock().unwrap_or_else(|e| e.into_inner());
        while let Some(i) = w.hooks.iter().position(|(o, _)| *o == op) {
            let (_, hook) = w.hooks.remove(i);
            hook(&mut w);
        }
        w.calls.push(op);
        if w.daemon == Daemon::Hung {
            drop(w);
            let waited = until.saturating_duration_since(now);
            std::thread::sleep(waited);
            return Err(LibvirtError::Hung {
                op,
                waited_ms: waited.as_millis() as u64,
            });
        }
        if w.daemon == Daemon::Down || w.generation != self.generation {
            return Err(LibvirtError::Unreachable {
                uri: self.uri.clone(),
                message: "End of file while reading data: Input/output error".into(),
            });
        }
        f(&mut w)
    }
}

impl Hypervisor for FakeHv {
    type Guest = u64;

    fn uri(&self) -> &str {
        &self.uri
    }

    fn lookup_name(&self, name: &str, until: Instant) -> Result<Option<u64>, LibvirtError> {
        self.call("virDomainLookupByName", until, |w| {
            Ok(w.dom(name).map(|d| d.handle))
        })
    }

    fn lookup_uuid(&self, uuid: &str, until: Instant) -> Result<Option<u64>, LibvirtError> {
        self.call("virDomainLookupByUUIDString", until, |w| {
            Ok(w.domains
                .iter()
                .find(|d| same_uuid(&d.uuid, uuid))
                .map(|d| d.handle))
        })
    }

    fn name_of(&self, g: u64, until: Instant) -> Result<String, LibvirtError> {
        self.call("virDomainGetName", until, |w| {
            Ok(w.by_handle(g)?.name.clone())
        })
    }

    fn uuid_of(&self, g: u64, until: Instant) -> Result<Uuid, LibvirtError> {
        self.call("virDomainGetUUIDString", until, |w| {
            Ok(w.by_handle(g)?.uuid.clone())
        })
    }

    fn state(&self, g: u64, until: Instant) -> Result<DomainState, LibvirtError> {
        self.call("virDomainGetState", until, |w| {
            Ok(w.by_handle(g)
                .map(|d| d.state)
                .unwrap_or(DomainState::Absent))
        })
    }

    fn watch_lifecycle(&self, g: u64, until: Instant) -> Result<Receiver<i32>, LibvirtError> {
        self.call("virConnectDomainEventRegisterAny", until, |w| {
            let (tx, rx) = sync_channel(16);
            w.watchers.push((g, tx));
            Ok(rx)
        })
    }

    fn shutdown(&self, g: u64, _flags: u32, until: Instant) -> Result<(), LibvirtError> {
        let world = self.world.clone();
        self.call("virDomainShutdownFlags", until, |w| {
            let d = w.by_handle(g)?;
            if let Shutdown::After(delay) = d.shutdown {
                std::thread::spawn(move || {
                    std::thread::sleep(delay);
                    world.lock().unwrap_or_else(|e| e.into_inner()).power_off(g);
                });
            }
            Ok(())
        })
    }

    fn destroy(&self, g: u64, graceful: bool, until: Instant) -> Result<(), LibvirtError> {
        let op = match graceful {
            true => "virDomainDestroyFlags(GRACEFUL)",
            false => "virDomainDestroy",
        };
        self.call(op, until, |w| {
            if !w.by_handle(g)?.state.is_active() {
                return Err(refused(op, "domain is not running"));
            }
            w.power_off(g);
            Ok(())
        })
    }

    fn save(&self, g: u64, path: &str, until: Instant) -> Result<(), LibvirtError> {
        self.call("virDomainSave", until, |w| {
            let xml = w.by_handle(g)?.xml.clone();
            std::fs::write(path, xml).map_err(|e| refused("virDomainSave", &e.to_string()))?;
            w.power_off(g);
            Ok(())
        })
    }

    fn restore(&self, path: &str, until: Instant) -> Result<(), LibvirtError> {
        self.call("virDomainRestore", until, |w| {
            let xml = std::fs::read_to_string(path)
                .map_err(|e| refused("virDomainRestore", &e.to_string()))?;
            let d = domain_xml::parse(&xml).map_err(|e| refused("virDomainRestore", &e))?;
            w.add(
                &d.name,
                d.uuid
                    .as_deref()
                    .unwrap_or("00000000-0000-0000-0000-0000000000ff"),
            );
            Ok(())
        })
    }

    fn inactive_xml(&self, g: u64, until: Instant) -> Result<String, LibvirtError> {
        self.call("virDomainGetXMLDesc", until, |w| {
            Ok(w.by_handle(g)?.xml.clone())
        })
    }

    fn create_xml(&self, xml: &str, until: Instant) -> Result<u64, LibvirtError> {
        self.call("virDomainCreateXML", until, |w| {
            let d = domain_xml::parse(xml).map_err(|e| refused("virDomainCreateXML", &e))?;
            if w.dom(&d.name).is_some() {
                return Err(refused("virDomainCreateXML", "domain already exists"));
            }
            let uuid = d
                .uuid
                .clone()
                .unwrap_or_else(|| format!("6a6e4f0e-0000-4000-8000-{:012x}", w.next + 1));
            let h = w.add(&d.name, &uuid);
            w.by_handle(h)?.xml = xml.to_string();
            Ok(h)
        })
    }

    fn define_xml(&self, xml: &str, until: Instant) -> Result<u64, LibvirtError> {
        self.call("virDomainDefineXML", until, |w| {
            let d = domain_xml::parse(xml).map_err(|e| refused("virDomainDefineXML", &e))?;
            if let Some(old) = w.dom_mut(&d.name) {
                old.xml = xml.to_string();
                old.persistent = true;
                return Ok(old.handle);
            }
            let uuid = d
                .uuid
                .clone()
                .unwrap_or_else(|| format!("6a6e4f0e-0000-4000-8000-{:012x}", w.next + 1));
            Ok(w.add_dom(&d.name, &uuid, DomainState::ShutOff, true))
        })
    }

    fn create(&self, g: u64, until: Instant) -> Result<(), LibvirtError> {
        self.call("virDomainCreate", until, |w| {
            w.by_handle(g)?.state = DomainState::Running;
            Ok(())
        })
    }

    fn undefine(&self, g: u64, until: Instant) -> Result<(), LibvirtError> {
        self.call("virDomainUndefineFlags", until, |w| {
            let d = w.by_handle(g)?;
            if d.state.is_active() {
                d.persistent = false;
            } else {
                w.domains.retain(|d| d.handle != g);
            }
            Ok(())
        })
    }

    fn start_pool(&self, _name: &str, until: Instant) -> Result<(), LibvirtError> {
        self.call("storage pool start", until, |_| Ok(()))
    }

    fn start_network(&self, _name: &str, until: Instant) -> Result<(), LibvirtError> {
        self.call("network start", until, |_| Ok(()))
    }

    fn size(&self, g: u64, until: Instant) -> Result<(u32, u64), LibvirtError> {
        self.call("virDomainGetInfo", until, |w| {
            w.by_handle(g)?;
            Ok((1, 131072))
        })
    }

    fn set_migration_speed(
        &self,
        _g: u64,
        _mib_s: u64,
        until: Instant,
    ) -> Result<(), LibvirtError> {
        self.call("virDomainMigrateSetMaxSpeed", until, |_| Ok(()))
    }

    fn set_migration_downtime(
        &self,
        _g: u64,
        _ms: u64,
        until: Instant,
    ) -> Result<(), LibvirtError> {
        self.call("virDomainMigrateSetMaxDowntime", until, |_| Ok(()))
    }

    fn migration_downtime(&self, _g: u64, until: Instant) -> Result<u64, LibvirtError> {
        self.call("virDomainMigrateGetMaxDowntime", until, |_| Ok(0))
    }

    fn job_progress(&self, _g: u64, until: Instant) -> Result<JobProgress, LibvirtError> {
        self.call(
            "virDomainGetJobStats",
            until,
            |_| Ok(JobProgress::default()),
        )
    }

    fn abort_job(&self, _g: u64, until: Instant) -> Result<(), LibvirtError> {
        self.call("virDomainAbortJob", until, |w| {
            w.aborted = true;
            Ok(())
        })
    }

    fn suspend(&self, g: u64, until: Instant) -> Result<(), LibvirtError> {
        self.call("virDomainSuspend", until, |w| {
            w.by_handle(g)?.state = DomainState::Paused;
            Ok(())
        })
    }

    fn resume(&self, g: u64, until: Instant) -> Result<(), LibvirtError> {
        self.call("virDomainResume", until, |w| {
            w.by_handle(g)?.state = DomainState::Running;
            Ok(())
        })
    }

    fn start_postcopy(&self, _g: u64, until: Instant) -> Result<(), LibvirtError> {
        self.call("virDomainMigrateStartPostCopy", until, |w| {
            w.postcopy = true;
            Ok(())
        })
    }

    /// Moves the domain into the target's world at once (both ends of a fake migration
    /// may be the same world: then nothing changes but the call log).
    fn migrate(
        &self,
        g: u64,
        dest: &FakeHv,
        _m: Migration,
    ) -> Result<Receiver<Result<(), String>>, LibvirtError> {
        let until = Instant::now() + Duration::from_secs(5);
        let moved = self.call("virDomainMigrate3", until, |w| Ok(w.by_handle(g)?.clone()))?;
        let (tx, rx) = sync_channel(1);
        let takes = self.world().migration_takes;
        if let Some(takes) = takes {
            // The job runs until its time is up, the guest is paused or switched to
            // post-copy (then it completes), or it is aborted (then it fails).
            let world = self.world.clone();
            std::thread::spawn(move || {
                let t = Instant::now();
                loop {
                    {
                        let w = world.lock().unwrap_or_else(|e| e.into_inner());
                        if w.aborted {
                            let _ = tx.send(Err(
                                "operation aborted: migration job: canceled by client".into(),
                            ));
                            return;
                        }
                        let paused = w
                            .domains
                            .iter()
                            .any(|d| d.handle == g && d.state == DomainState::Paused);
                        let paused = paused && w.pause_finishes_migration;
                        if paused || w.postcopy || t.elapsed() >= takes {
                            let _ = tx.send(Ok(()));
                            return;
                        }
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            });
            return Ok(rx);
        }
        if !Arc::ptr_eq(&self.world, &dest.world) {
            let mut target = dest.world.lock().unwrap_or_else(|e| e.into_inner());
            let h = target.add(&moved.name, &moved.uuid);
            let _ = h;
            drop(target);
            self.world
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .domains
                .retain(|d| d.handle != g);
        }
        let _ = tx.send(Ok(()));
        Ok(rx)
    }
}
