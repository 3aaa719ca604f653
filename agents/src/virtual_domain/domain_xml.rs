//! What the agent needs from a libvirt domain XML: the domain's identity and the pools
//! and networks it uses. Read with a streaming, namespace-aware XML reader, so entities,
//! comments and layout are handled as XML (the shell agent greps for `<name>` lines).
//!
//! The identity is read as libvirt reads it: `/domain/name`, `/domain/uuid` and
//! `/domain/devices/emulator` in no namespace. Elements of another namespace
//! (`<qemu:name>`, metadata) never count. A second `<name>` or `<uuid>` is refused:
//! libvirt would take the first one, and an agent that guessed otherwise would wait
//! for, monitor and stop a domain that is not the one it created.

use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::Event;
use quick_xml::name::ResolveResult;
use quick_xml::NsReader;

/// The parts of a domain definition the agent uses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DomainXml {
    /// `<domain type=...>`: kvm, qemu, xen, lxc...
    pub kind: Option<String>,
    pub name: String,
    pub uuid: Option<String>,
    /// `<devices><emulator>`: the hypervisor process's binary.
    pub emulator: Option<String>,
    /// `<source pool=...>` of disks, in order, without duplicates.
    pub pools: Vec<String>,
    /// `<source network=...>` of interfaces, in order, without duplicates.
    pub networks: Vec<String>,
}

fn push_unique(list: &mut Vec<String>, value: String) {
    if !value.is_empty() && !list.contains(&value) {
        list.push(value);
    }
}

/// Parses a domain XML document. `Err` says what is wrong with it.
pub fn parse(xml: &str) -> Result<DomainXml, String> {
    let mut reader = NsReader::from_str(xml);
    // The open elements; one in a namespace is kept as `{ns}local`, so no path of
    // interest matches through it.
    let mut path: Vec<String> = Vec::new();
    let mut text = String::new();
    let mut out = DomainXml::default();
    let mut root_seen = false;
    let (mut names, mut uuids) = (0, 0);
    loop {
        let (ns, event) = match reader.read_resolved_event() {
            Ok((ns, event)) => (!matches!(ns, ResolveResult::Unbound), event),
            Err(e) => {
                return Err(format!(
                    "not well-formed XML at byte {}: {e}",
                    reader.error_position()
                ))
            }
        };
        match event {
            Event::Start(ref e) | Event::Empty(ref e) => {
                let local = e.local_name();
                let local = local.as_ref().to_string();
                let name = if ns { format!("{{ns}}{local}") } else { local };
                if path.is_empty() {
                    if root_seen || name != "domain" {
                        return Err(format!("the root element is <{name}>, not <domain>"));
                    }
                    root_seen = true;
                }
                let parent = path.last().map(String::as_str);
                for attr in e.attributes().flatten() {
                    if attr.key.prefix().is_some() {
                        continue;
                    }
                    let key = attr.key.local_name().as_ref().to_string();
                    let value = attr
                        .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                        .map_err(|e| format!("bad attribute value: {e}"))?
                        .into_owned();
                    match (path.len(), parent, name.as_str(), key.as_str()) {
                        (0, _, "domain", "type") => out.kind = Some(value),
                        (_, Some("disk"), "source", "pool") => push_unique(&mut out.pools, value),
                        (_, Some("interface"), "source", "network") => {
                            push_unique(&mut out.networks, value)
                        }
                        _ => {}
                    }
                }
                text.clear();
                if matches!(event, Event::Start(_)) {
                    path.push(name);
                }
            }
            Event::Text(t) => text.push_str(&t.xml10_content()),
            Event::CData(t) => text.push_str(&t.into_inner()),
            Event::GeneralRef(r) => {
                if let Ok(Some(c)) = r.resolve_char_ref() {
                    text.push(c);
                } else if let Some(s) = resolve_predefined_entity(r.as_ref()) {
                    text.push_str(s);
                } else {
                    return Err(format!("unknown entity &{};", r.as_ref()));
                }
            }
            Event::End(_) => {
                let value = text.trim().to_string();
                let p: Vec<&str> = path.iter().map(String::as_str).collect();
                match p.as_slice() {
                    ["domain", "name"] if names > 0 => {
                        return Err("more than one <name> element in <domain>".into())
                    }
                    ["domain", "name"] => {
                        names += 1;
                        out.name = value;
                    }
                    ["domain", "uuid"] if uuids > 0 => {
                        return Err("more than one <uuid> element in <domain>".into())
                    }
                    ["domain", "uuid"] => {
                        uuids += 1;
                        out.uuid = Some(value).filter(|v| !v.is_empty());
                    }
                    ["domain", "devices", "emulator"] => {
                        out.emulator = Some(value).filter(|v| !v.is_empty())
                    }
                    _ => {}
                }
                text.clear();
                path.pop();
            }
            Event::Eof if !path.is_empty() => {
                return Err(format!("the document ends inside <{}>", path.join("><")))
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !root_seen {
        return Err("no <domain> element".into());
    }
    if out.name.is_empty() {
        return Err("no domain name (<name>) in it".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const XML: &str = r#"<?xml version="1.0"?>
<!-- a comment with <name>decoy</name> -->
<domain type='qemu' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
  <name>web &amp; db</name>
  <uuid>
    6a6e4f0e-2f0a-4c5b-9f7e-000000000001
  </uuid>
  <metadata><app><name>not the domain</name></app></metadata>
  <memory unit='MiB'>96</memory>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='volume'><source pool='vms' volume='a.qcow2'/></disk>
    <disk type='volume'><source pool='vms' volume='b.qcow2'/></disk>
    <disk type='volume'><source pool='iso'/></disk>
    <interface type='network'><source network='default'/></interface>
    <interface type='network'><source network='storage-net'/></interface>
  </devices>
</domain>"#;

    #[test]
    fn identity_pools_and_networks() {
        let d = parse(XML).unwrap();
        assert_eq!(d.name, "web & db");
        assert_eq!(
            d.uuid.as_deref(),
            Some("6a6e4f0e-2f0a-4c5b-9f7e-000000000001")
        );
        assert_eq!(d.kind.as_deref(), Some("qemu"));
        assert_eq!(d.emulator.as_deref(), Some("/usr/bin/qemu-system-x86_64"));
        assert_eq!(d.pools, ["vms", "iso"]);
        assert_eq!(d.networks, ["default", "storage-net"]);
    }

    #[test]
    fn minimal_domain() {
        let d = parse("<domain><name>vm1</name></domain>").unwrap();
        assert_eq!(d.name, "vm1");
        assert_eq!((d.uuid, d.emulator, d.kind), (None, None, None));
    }

    #[test]
    fn broken_documents_say_why() {
        assert!(parse("").unwrap_err().contains("no <domain>"));
        assert!(parse("<domain><name>x</name>").is_err());
        assert!(parse("<network><name>x</name></network>")
            .unwrap_err()
            .contains("<network>"));
        assert!(parse("<domain><uuid>u</uuid></domain>")
            .unwrap_err()
            .contains("no domain name"));
        assert!(parse("<domain><name>a &bogus; b</name></domain>").is_err());
    }

    #[test]
    fn identity_is_read_as_libvirt_reads_it() {
        // A namespaced <name> (before or after the real one) and metadata never count.
        let d = parse(
            "<domain xmlns:x='urn:x'><x:name>decoy</x:name><name>real</name>\
             <x:uuid>00000000-0000-0000-0000-000000000000</x:uuid>\
             <metadata><x:app xmlns='urn:app'><name>app</name></x:app></metadata>\
             <devices><x:emulator>/bin/false</x:emulator></devices></domain>",
        )
        .unwrap();
        assert_eq!(d.name, "real");
        assert_eq!((d.uuid, d.emulator), (None, None));
        // An element in a default namespace is not libvirt's either.
        assert!(parse("<domain><name xmlns='urn:y'>x</name></domain>")
            .unwrap_err()
            .contains("no domain name"));
    }

    #[test]
    fn a_second_name_or_uuid_is_refused() {
        let two_names = parse("<domain><name>first</name><name>second</name></domain>");
        assert!(two_names.unwrap_err().contains("more than one <name>"));
        let two_uuids = parse(
            "<domain><name>a</name><uuid>6a6e4f0e-2f0a-4c5b-9f7e-000000000001</uuid>\
             <uuid>6a6e4f0e-2f0a-4c5b-9f7e-000000000002</uuid></domain>",
        );
        assert!(two_uuids.unwrap_err().contains("more than one <uuid>"));
        // A <name> elsewhere (a disk's, a nested one) is not a second domain name.
        let d =
            parse("<domain><name>a</name><devices><disk><name>b</name></disk></devices></domain>")
                .unwrap();
        assert_eq!(d.name, "a");
    }
}
