//! The per-resource state file: the domain's identity as last read from its config
//! (so a domain whose config became unreadable is still found), and the utilization
//! values last published to the CIB (so the monitor forks crm_resource only on change).
//!
//! `${HA_RSCTMP}/VirtualDomain-<instance>.state`, lines of `key=value`, written
//! atomically and only when the content changes.

use std::collections::BTreeMap;
use std::path::PathBuf;

use ocf_common::statefile;
use ocf_common::Context;

/// What is remembered about a resource between invocations.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Cached {
    pub values: BTreeMap<String, String>,
}

impl Cached {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// Sets `key` (`None` removes it). Values are kept on one line.
    pub fn set(&mut self, key: &str, value: Option<&str>) {
        match value {
            Some(v) => {
                self.values
                    .insert(key.to_string(), ocf_common::exit::one_line(v));
            }
            None => {
                self.values.remove(key);
            }
        }
    }

    fn parse(text: &str) -> Cached {
        let values = text
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Cached { values }
    }

    fn render(&self) -> String {
        self.values
            .iter()
            .map(|(k, v)| format!("{k}={v}\n"))
            .collect()
    }
}

/// The state file of this resource: named after the resource instance (clone suffix
/// stripped for anonymous clones), or after the config path when run by hand.
pub fn path(ctx: &Context) -> Option<PathBuf> {
    let key = match ctx.env.instance_for_state() {
        Some(i) => i,
        None => ctx.params.str("config")?.to_string(),
    };
    let safe: String = key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.:@".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    Some(ctx.env.rsctmp().join(format!("VirtualDomain-{safe}.state")))
}

/// Reads the state file; a missing or unreadable one is empty.
pub fn load(path: &std::path::Path) -> Cached {
    match statefile::read_string(path) {
        Ok(Some(text)) => Cached::parse(&text),
        Ok(None) => Cached::default(),
        Err(e) => {
            tracing::warn!("cannot read state file {}: {e}", path.display());
            Cached::default()
        }
    }
}

/// Writes the state file if `new` differs from `old`.
pub fn store(path: &std::path::Path, old: &Cached, new: &Cached) {
    if old == new {
        return;
    }
    if let Err(e) =
        statefile::write_atomic(path, new.render().as_bytes(), statefile::STATE_FILE_MODE)
    {
        tracing::warn!("cannot write state file {}: {e}", path.display());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_values_on_one_line() {
        let mut c = Cached::default();
        c.set("name", Some("vm1"));
        c.set("uuid", Some("u-1"));
        c.set("odd", Some("a\nb=c"));
        let back = Cached::parse(&c.render());
        assert_eq!(back, c);
        assert_eq!(back.get("odd"), Some("a b=c"));
        c.set("uuid", None);
        assert_eq!(c.get("uuid"), None);
        assert_eq!(Cached::parse("garbage\nname=x\n").get("name"), Some("x"));
    }
}
