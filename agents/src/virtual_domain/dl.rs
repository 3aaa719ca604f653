//! The dynamic loader, for the front ([`super::front`]): `dlopen` of libvirt's client
//! library and of the agent's plugin, and the plugin's entry point. The only `unsafe`
//! outside [`super::raw`]; each block states what makes it sound.

use std::ffi::{c_int, c_void, CStr, CString};

use nix::libc;

/// The plugin's entry point: runs the action of this process's arguments and
/// environment and returns the exit status (see [`super::plugin`]).
pub type Entry = extern "C" fn(elapsed_us: u64) -> c_int;

/// A loaded shared object. It is never unloaded: its code runs until the process exits
/// (Rust code in a plugin keeps thread-locals and threads that must not outlive it).
pub struct Library(*mut c_void);

/// Loads `name` (a soname searched as the dynamic loader searches, or a path) with every
/// symbol bound at once; `global` also offers its symbols to what is loaded later.
pub fn open(name: &str, global: bool) -> Result<Library, String> {
    let c_name = CString::new(name).map_err(|_| format!("'{name}' contains a NUL byte"))?;
    let scope = if global {
        libc::RTLD_GLOBAL
    } else {
        libc::RTLD_LOCAL
    };
    // SAFETY: `c_name` is a NUL-terminated string that outlives the call. Loading runs
    // the object's initialisers: only libvirt's client library (made to be linked into
    // any program) and the plugin this crate builds are loaded, each once, from the
    // main thread before any other thread exists.
    let handle = unsafe { libc::dlopen(c_name.as_ptr(), libc::RTLD_NOW | scope) };
    if handle.is_null() {
        Err(last_error())
    } else {
        Ok(Library(handle))
    }
}

impl Library {
    /// The plugin's entry point `symbol`.
    pub fn entry(&self, symbol: &str) -> Result<Entry, String> {
        let c_symbol =
            CString::new(symbol).map_err(|_| format!("'{symbol}' contains a NUL byte"))?;
        // SAFETY: clears a stale error so that the one read below is dlsym's; dlerror has
        // no other effect.
        unsafe { libc::dlerror() };
        // SAFETY: `self.0` is a handle dlopen returned and nothing closed; `c_symbol` is
        // NUL-terminated and outlives the call.
        let address = unsafe { libc::dlsym(self.0, c_symbol.as_ptr()) };
        if address.is_null() {
            return Err(last_error());
        }
        // SAFETY: the plugin defines `symbol` as an `extern "C" fn(u64) -> c_int`
        // (plugin.rs); the symbol's name carries the version of that interface, so a
        // plugin with another signature has no symbol of this name.
        Ok(unsafe { std::mem::transmute::<*mut c_void, Entry>(address) })
    }
}

/// The loader's message about the last failure of this thread.
fn last_error() -> String {
    // SAFETY: dlerror returns NULL or a NUL-terminated string that stays valid until the
    // next dl* call of this thread; it is copied at once.
    let message = unsafe { libc::dlerror() };
    if message.is_null() {
        return "unknown error of the dynamic loader".into();
    }
    // SAFETY: see above: non-null, NUL-terminated, not yet overwritten.
    unsafe { CStr::from_ptr(message) }
        .to_string_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_library_is_an_error_naming_it() {
        let Err(why) = open("libocf-rs-no-such-library.so.0", true) else {
            panic!("loaded a library that does not exist");
        };
        assert!(why.contains("libocf-rs-no-such-library.so.0"), "{why}");
    }

    #[test]
    fn a_library_that_is_there_loads_and_a_missing_symbol_is_an_error() {
        let libc = open("libc.so.6", false).expect("libc.so.6 loads");
        let Err(why) = libc.entry("ocf_rs_no_such_symbol") else {
            panic!("found a symbol that does not exist");
        };
        assert!(why.contains("ocf_rs_no_such_symbol"), "{why}");
    }
}
