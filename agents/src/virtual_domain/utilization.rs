//! Utilization: the domain's vCPUs (`cpu`) and maximum memory in MiB (`host_memory`,
//! `hv_memory`) published as the resource's utilization, as the shell agent does, but
//! through crm_resource only when a value differs from the one last published (kept in
//! the state file), so a routine monitor forks nothing.

use std::time::Instant;

use ocf_common::child;

use super::hypervisor::Hypervisor;
use super::params::UTILIZATION;
use super::Resource;

const ATTRIBUTES: [&str; 3] = UTILIZATION;

/// What should happen to one utilization attribute.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Wanted {
    Set(String),
    Delete,
    Leave,
}

/// The cache key of an attribute, and the value recorded for a deletion.
fn cache_key(attr: &str) -> String {
    format!("utilization_{attr}")
}
const DELETED: &str = "<deleted>";

/// Forgets what was published: the next monitor publishes every value again. A start
/// does this, because the CIB entry it was compared with may be gone (a resource deleted
/// and created again under the same name starts with no utilization).
pub fn forget_published(cached: &mut super::identity::Cached) {
    for attr in ATTRIBUTES {
        cached.set(&cache_key(attr), None);
    }
}

/// autoset wins over unset, as in the shell agent (unset is only read when autoset is off).
pub fn wanted(autoset: bool, unset: bool, value: impl FnOnce() -> Option<String>) -> Wanted {
    if autoset {
        value().map(Wanted::Set).unwrap_or(Wanted::Leave)
    } else if unset {
        Wanted::Delete
    } else {
        Wanted::Leave
    }
}

/// Publishes what changed; returns the cache updates for what was published.
pub fn update<V: Hypervisor>(
    res: &Resource,
    hv: &V,
    guest: V::Guest,
    until: Instant,
) -> Vec<(String, Option<String>)> {
    let ctx = res.ctx;
    let (Some(instance), Some(_)) = (ctx.env.instance(), ctx.env.param("crm_feature_set")) else {
        return Vec::new();
    };
    let switches = &res.params.utilization;
    let info = if switches.iter().any(|u| u.autoset) {
        match hv.size(guest, until) {
            Ok(i) => Some(i),
            Err(e) => {
                tracing::warn!("cannot read the domain's size for utilization: {e}");
                None
            }
        }
    } else {
        None
    };
    let mut updates = Vec::new();
    for (attr, switch) in ATTRIBUTES.iter().zip(switches) {
        let w = wanted(switch.autoset, switch.unset, || {
            info.map(|(vcpus, max_mem_kib)| match *attr {
                "cpu" => vcpus.to_string(),
                _ => (max_mem_kib / 1024).to_string(),
            })
        });
        let key = cache_key(attr);
        let cached = res.cached.get(&key);
        let (args, record): (Vec<String>, String) = match &w {
            Wanted::Leave => continue,
            Wanted::Set(v) if cached == Some(v.as_str()) => continue,
            Wanted::Delete if cached == Some(DELETED) => continue,
            Wanted::Set(v) => (
                vec![
                    "-r".into(),
                    instance.into(),
                    "-z".into(),
                    "-p".into(),
                    attr.to_string(),
                    "-v".into(),
                    v.clone(),
                ],
                v.clone(),
            ),
            Wanted::Delete => (
                vec![
                    "-r".into(),
                    instance.into(),
                    "-z".into(),
                    "-d".into(),
                    attr.to_string(),
                ],
                DELETED.to_string(),
            ),
        };
        match crm_resource(&args, until) {
            Ok(()) => {
                tracing::info!(attr, value = %record, "utilization updated");
                updates.push((key, Some(record)));
            }
            Err(why) => tracing::warn!(attr, "cannot update utilization: {why}"),
        }
    }
    updates
}

/// Runs crm_resource with `args` through the agent's child runner, killing it at `until`.
fn crm_resource(args: &[String], until: Instant) -> Result<(), String> {
    match child::run("crm_resource", args, until) {
        Ok(done) if done.success() => Ok(()),
        Ok(done) => Err(format!(
            "crm_resource {} {}: {}",
            args.join(" "),
            done.how(),
            ocf_common::exit::quoted(&child::excerpt(&done.stderr.text(), child::REASON_EXCERPT))
        )),
        Err(e) => Err(format!("crm_resource {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn autoset_wins_over_unset() {
        let v = || Some("2".to_string());
        assert_eq!(wanted(true, false, v), Wanted::Set("2".into()));
        assert_eq!(wanted(true, true, v), Wanted::Set("2".into()));
        assert_eq!(wanted(false, true, v), Wanted::Delete);
        assert_eq!(wanted(false, false, v), Wanted::Leave);
        assert_eq!(wanted(true, false, || None), Wanted::Leave);
    }
}
