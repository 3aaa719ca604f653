//! Meta-data XML, rendered from an [`AgentDescription`].
//!
//! Two renderings of the one description (see shared decisions):
//! - OCF 1.0, valid against resource-agents' `ra-api-1.dtd` with its DOCTYPE, for callers
//!   that do not announce OCF 1.1 (ocf-tester runs `xmllint --valid`). The DTD has no
//!   `reloadable`, `unique-group`, `deprecated` or `reload-agent`, so those are left out.
//! - OCF 1.1, for callers with `OCF_RA_VERSION_MINOR >= 1` (Pacemaker >= 2.1, crm_resource,
//!   pcs): `unique-group` (with `unique` kept beside it for crmsh), `reloadable`,
//!   `deprecated` and the `reload-agent` action.
//!
//! Both are deterministic: nothing here reads the environment.

use std::io;

use quick_xml::events::{BytesDecl, BytesText, Event};
use quick_xml::Writer;

use crate::agent::{ActionSpec, AgentDescription, ParamDefault, ParamType, ParameterSpec};

/// Which OCF version the meta-data claims.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum OcfVersion {
    V1_0,
    V1_1,
}

impl OcfVersion {
    /// The rendering a caller asks for through `OCF_RA_VERSION_MINOR`.
    pub fn for_minor(minor: Option<u32>) -> OcfVersion {
        match minor {
            Some(m) if m >= 1 => OcfVersion::V1_1,
            _ => OcfVersion::V1_0,
        }
    }
    fn text(self) -> &'static str {
        match self {
            OcfVersion::V1_0 => "1.0",
            OcfVersion::V1_1 => "1.1",
        }
    }
}

/// Actions whose names ra-api-1.dtd allows.
const DTD_ACTIONS: &[&str] = &[
    "start",
    "stop",
    "recover",
    "monitor",
    "restart",
    "migrate_to",
    "migrate_from",
    "promote",
    "demote",
    "notify",
    "status",
    "reload",
    "meta-data",
    "usage",
    "methods",
    "validate-all",
];

/// The meta-data document for `desc` in the given OCF version.
pub fn render(desc: &AgentDescription, version: OcfVersion) -> String {
    let mut w = Writer::new_with_indent(Vec::new(), b' ', 2);
    // Writing into a Vec cannot fail.
    write_document(&mut w, desc, version).expect("writing XML into memory");
    let mut out = String::from_utf8(w.into_inner()).expect("quick-xml writes UTF-8");
    out.push('\n');
    out
}

fn write_document(
    w: &mut Writer<Vec<u8>>,
    desc: &AgentDescription,
    version: OcfVersion,
) -> io::Result<()> {
    w.write_event(Event::Decl(BytesDecl::new("1.0", None, None)))?;
    if version == OcfVersion::V1_0 {
        w.write_event(Event::DocType(BytesText::from_escaped(
            r#"resource-agent SYSTEM "ra-api-1.dtd""#,
        )))?;
    }
    w.create_element("resource-agent")
        .with_attributes([("name", desc.name), ("version", desc.version)])
        .write_inner_content(|w| {
            w.create_element("version")
                .write_text_content(BytesText::new(version.text()))?;
            write_descs(w, desc.longdesc, desc.shortdesc)?;
            if !desc.parameters.is_empty() {
                w.create_element("parameters").write_inner_content(|w| {
                    for p in desc.parameters {
                        write_parameter(w, p, version)?;
                    }
                    Ok(())
                })?;
            }
            w.create_element("actions").write_inner_content(|w| {
                for a in desc.actions {
                    if version == OcfVersion::V1_0 && !DTD_ACTIONS.contains(&a.name) {
                        continue;
                    }
                    write_action(w, a)?;
                }
                Ok(())
            })?;
            Ok(())
        })?;
    Ok(())
}

fn write_descs(w: &mut Writer<Vec<u8>>, longdesc: &str, shortdesc: &str) -> io::Result<()> {
    w.create_element("longdesc")
        .with_attribute(("lang", "en"))
        .write_text_content(BytesText::new(longdesc.trim()))?;
    w.create_element("shortdesc")
        .with_attribute(("lang", "en"))
        .write_text_content(BytesText::new(shortdesc.trim()))?;
    Ok(())
}

fn flag(b: bool) -> &'static str {
    if b {
        "1"
    } else {
        "0"
    }
}

fn write_parameter(
    w: &mut Writer<Vec<u8>>,
    p: &ParameterSpec,
    version: OcfVersion,
) -> io::Result<()> {
    let mut el = w
        .create_element("parameter")
        .with_attribute(("name", p.name));
    match version {
        OcfVersion::V1_0 => {
            el = el.with_attributes([("unique", flag(p.unique)), ("required", flag(p.required))]);
        }
        OcfVersion::V1_1 => {
            // unique stays beside unique-group: crmsh 4.4 reads only unique (its
            // "violate uniqueness" guard), pcs' RNG allows both.
            if p.unique {
                el = el.with_attributes([("unique-group", p.name), ("unique", "1")]);
            }
            el = el.with_attributes([
                ("required", flag(p.required)),
                ("reloadable", flag(p.reloadable)),
            ]);
        }
    }
    el.write_inner_content(|w| {
        if p.deprecated && version == OcfVersion::V1_1 {
            w.create_element("deprecated").write_empty()?;
        }
        write_descs(w, p.longdesc, p.shortdesc)?;
        let ty = match (p.ty, version) {
            (ParamType::Time, OcfVersion::V1_1) => "string",
            (ty, _) => ty.name(),
        };
        let mut content = w.create_element("content").with_attribute(("type", ty));
        match p.default {
            ParamDefault::Value(d) | ParamDefault::Computed(d) => {
                content = content.with_attribute(("default", d));
            }
            ParamDefault::None => {}
        }
        content.write_empty()?;
        Ok(())
    })?;
    Ok(())
}

fn write_action(w: &mut Writer<Vec<u8>>, a: &ActionSpec) -> io::Result<()> {
    let timeout = format!("{}s", a.timeout_s);
    let interval = a.interval_s.map(|i| format!("{i}s"));
    let depth = a.depth.map(|d| d.to_string());
    let mut el = w
        .create_element("action")
        .with_attributes([("name", a.name), ("timeout", timeout.as_str())]);
    if let Some(i) = &interval {
        el = el.with_attribute(("interval", i.as_str()));
    }
    if let Some(d) = &depth {
        el = el.with_attribute(("depth", d.as_str()));
    }
    el.write_empty()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARAMS: &[ParameterSpec] = &[
        ParameterSpec {
            shortdesc: "state <file> & \"quotes\"",
            longdesc: "Where the state lives: a < b && c > d",
            default: ParamDefault::Computed("/var/run/X-RESOURCE.state"),
            unique: true,
            ..ParameterSpec::new("state", ParamType::String)
        },
        ParameterSpec {
            shortdesc: "fake",
            longdesc: "fake",
            default: ParamDefault::Value("dummy"),
            reloadable: true,
            deprecated: true,
            ..ParameterSpec::new("fake", ParamType::String)
        },
        ParameterSpec {
            shortdesc: "wait",
            longdesc: "wait",
            ..ParameterSpec::new("wait", ParamType::Time)
        },
    ];
    const DESC: AgentDescription = AgentDescription {
        name: "X",
        version: "0.1",
        shortdesc: "x",
        longdesc: "x",
        parameters: PARAMS,
        actions: &[
            ActionSpec::new("start", 20),
            ActionSpec::recurring("monitor", 20, 10, 0),
            ActionSpec::new("reload-agent", 20),
            ActionSpec::new("meta-data", 5),
        ],
    };

    #[test]
    fn ocf_1_0_has_the_doctype_and_no_1_1_constructs() {
        let xml = render(&DESC, OcfVersion::V1_0);
        assert!(
            xml.starts_with(
                "<?xml version=\"1.0\"?>\n<!DOCTYPE resource-agent SYSTEM \"ra-api-1.dtd\">\n"
            ),
            "{xml}"
        );
        assert!(xml.contains("<version>1.0</version>"));
        assert!(
            xml.contains(r#"<parameter name="state" unique="1" required="0">"#),
            "{xml}"
        );
        assert!(!xml.contains("reloadable"));
        assert!(!xml.contains("unique-group"));
        assert!(!xml.contains("deprecated"));
        assert!(!xml.contains("reload-agent"));
        assert!(xml.contains(r#"<content type="time"/>"#));
        assert!(xml.contains(r#"<action name="monitor" timeout="20s" interval="10s" depth="0"/>"#));
    }

    #[test]
    fn ocf_1_1_has_reload_agent_and_reloadable_parameters() {
        let xml = render(&DESC, OcfVersion::V1_1);
        assert!(!xml.contains("DOCTYPE"));
        assert!(xml.contains("<version>1.1</version>"));
        assert!(
            xml.contains(
                r#"<parameter name="state" unique-group="state" unique="1" required="0" reloadable="0">"#
            ),
            "{xml}"
        );
        assert!(xml.contains(r#"<parameter name="fake" required="0" reloadable="1">"#));
        assert!(xml.contains("<deprecated/>"));
        assert!(xml.contains(r#"<action name="reload-agent" timeout="20s"/>"#));
        assert!(xml.contains(r#"<content type="string"/>"#));
    }

    #[test]
    fn text_and_attributes_are_escaped() {
        for v in [OcfVersion::V1_0, OcfVersion::V1_1] {
            let xml = render(&DESC, v);
            assert!(
                xml.contains("Where the state lives: a &lt; b &amp;&amp; c &gt; d"),
                "{xml}"
            );
            assert!(
                xml.contains("state &lt;file&gt; &amp; &quot;quotes&quot;"),
                "{xml}"
            );
        }
    }

    /// The whole OCF 1.0 document: DOCTYPE, attribute order, the DTD's attributes only
    /// (no reloadable, unique-group, deprecated), time kept as a type, reload-agent left
    /// out, parameters and actions in the description's order, 2-space indentation.
    #[test]
    fn ocf_1_0_document_is_exactly_this() {
        let expected = r#"<?xml version="1.0"?>
<!DOCTYPE resource-agent SYSTEM "ra-api-1.dtd">
<resource-agent name="X" version="0.1">
  <version>1.0</version>
  <longdesc lang="en">x</longdesc>
  <shortdesc lang="en">x</shortdesc>
  <parameters>
    <parameter name="state" unique="1" required="0">
      <longdesc lang="en">Where the state lives: a &lt; b &amp;&amp; c &gt; d</longdesc>
      <shortdesc lang="en">state &lt;file&gt; &amp; &quot;quotes&quot;</shortdesc>
      <content type="string" default="/var/run/X-RESOURCE.state"/>
    </parameter>
    <parameter name="fake" unique="0" required="0">
      <longdesc lang="en">fake</longdesc>
      <shortdesc lang="en">fake</shortdesc>
      <content type="string" default="dummy"/>
    </parameter>
    <parameter name="wait" unique="0" required="0">
      <longdesc lang="en">wait</longdesc>
      <shortdesc lang="en">wait</shortdesc>
      <content type="time"/>
    </parameter>
  </parameters>
  <actions>
    <action name="start" timeout="20s"/>
    <action name="monitor" timeout="20s" interval="10s" depth="0"/>
    <action name="meta-data" timeout="5s"/>
  </actions>
</resource-agent>
"#;
        assert_eq!(render(&DESC, OcfVersion::V1_0), expected);
    }

    /// The whole OCF 1.1 document: no DOCTYPE, unique-group and reloadable, deprecated,
    /// time rendered as string (the 1.1 schema has no time type), reload-agent kept.
    #[test]
    fn ocf_1_1_document_is_exactly_this() {
        let expected = r#"<?xml version="1.0"?>
<resource-agent name="X" version="0.1">
  <version>1.1</version>
  <longdesc lang="en">x</longdesc>
  <shortdesc lang="en">x</shortdesc>
  <parameters>
    <parameter name="state" unique-group="state" unique="1" required="0" reloadable="0">
      <longdesc lang="en">Where the state lives: a &lt; b &amp;&amp; c &gt; d</longdesc>
      <shortdesc lang="en">state &lt;file&gt; &amp; &quot;quotes&quot;</shortdesc>
      <content type="string" default="/var/run/X-RESOURCE.state"/>
    </parameter>
    <parameter name="fake" required="0" reloadable="1">
      <deprecated/>
      <longdesc lang="en">fake</longdesc>
      <shortdesc lang="en">fake</shortdesc>
      <content type="string" default="dummy"/>
    </parameter>
    <parameter name="wait" required="0" reloadable="0">
      <longdesc lang="en">wait</longdesc>
      <shortdesc lang="en">wait</shortdesc>
      <content type="string"/>
    </parameter>
  </parameters>
  <actions>
    <action name="start" timeout="20s"/>
    <action name="monitor" timeout="20s" interval="10s" depth="0"/>
    <action name="reload-agent" timeout="20s"/>
    <action name="meta-data" timeout="5s"/>
  </actions>
</resource-agent>
"#;
        assert_eq!(render(&DESC, OcfVersion::V1_1), expected);
    }

    const UNSORTED: AgentDescription = AgentDescription {
        name: "Y",
        version: "2",
        shortdesc: "  short\n",
        longdesc: "\n  long  \n",
        parameters: &[
            ParameterSpec {
                required: true,
                default: ParamDefault::Value("a\"b<c>&d'e"),
                ..ParameterSpec::new("zeta", ParamType::Integer)
            },
            ParameterSpec::new("alpha", ParamType::Boolean),
            ParameterSpec::new("mid", ParamType::String),
        ],
        actions: &[
            ActionSpec::new("stop", 30),
            ActionSpec::recurring("monitor", 20, 10, 0),
            ActionSpec::recurring("monitor", 40, 60, 10),
            ActionSpec::new("start", 30),
            ActionSpec::new("notify", 5),
            ActionSpec::new("promote-all", 5),
        ],
    };

    fn position(xml: &str, needle: &str) -> usize {
        xml.find(needle)
            .unwrap_or_else(|| panic!("{needle} not in {xml}"))
    }

    #[test]
    fn parameters_and_actions_keep_the_description_order() {
        for v in [OcfVersion::V1_0, OcfVersion::V1_1] {
            let xml = render(&UNSORTED, v);
            let z = position(&xml, r#"<parameter name="zeta""#);
            let a = position(&xml, r#"<parameter name="alpha""#);
            let m = position(&xml, r#"<parameter name="mid""#);
            assert!(z < a && a < m, "{xml}");
            let stop = position(&xml, r#"<action name="stop" timeout="30s"/>"#);
            let mon1 = position(
                &xml,
                r#"<action name="monitor" timeout="20s" interval="10s" depth="0"/>"#,
            );
            let mon2 = position(
                &xml,
                r#"<action name="monitor" timeout="40s" interval="60s" depth="10"/>"#,
            );
            let start = position(&xml, r#"<action name="start" timeout="30s"/>"#);
            assert!(stop < mon1 && mon1 < mon2 && mon2 < start, "{xml}");
            // Both monitors are kept: two recurring monitors at different depths.
            assert_eq!(xml.matches(r#"<action name="monitor""#).count(), 2, "{xml}");
            assert!(
                xml.contains(r#"<action name="notify" timeout="5s"/>"#),
                "{xml}"
            );
        }
        // An action the DTD does not name exists only in 1.1.
        assert!(!render(&UNSORTED, OcfVersion::V1_0).contains("promote-all"));
        assert!(render(&UNSORTED, OcfVersion::V1_1)
            .contains(r#"<action name="promote-all" timeout="5s"/>"#));
    }

    #[test]
    fn required_types_defaults_and_trimmed_descriptions() {
        let xml = render(&UNSORTED, OcfVersion::V1_0);
        assert!(
            xml.contains(r#"<parameter name="zeta" unique="0" required="1">"#),
            "{xml}"
        );
        assert!(
            xml.contains(r#"<content type="integer" default="a&quot;b&lt;c&gt;&amp;d&apos;e"/>"#),
            "{xml}"
        );
        assert!(xml.contains(r#"<content type="boolean"/>"#), "{xml}");
        assert!(
            xml.contains(
                "<longdesc lang=\"en\">long</longdesc>\n  <shortdesc lang=\"en\">short</shortdesc>"
            ),
            "{xml}"
        );
        let xml = render(&UNSORTED, OcfVersion::V1_1);
        assert!(
            xml.contains(r#"<parameter name="zeta" required="1" reloadable="0">"#),
            "{xml}"
        );
        assert!(!xml.contains("unique-group"), "{xml}");
    }

    #[test]
    fn an_agent_without_parameters_has_no_parameters_element() {
        let bare = AgentDescription {
            parameters: &[],
            ..UNSORTED
        };
        for v in [OcfVersion::V1_0, OcfVersion::V1_1] {
            let xml = render(&bare, v);
            assert!(!xml.contains("<parameters"), "{xml}");
            assert!(xml.contains("<actions>"), "{xml}");
        }
    }

    #[test]
    fn the_callers_minor_version_picks_the_rendering() {
        assert_eq!(OcfVersion::for_minor(None), OcfVersion::V1_0);
        assert_eq!(OcfVersion::for_minor(Some(0)), OcfVersion::V1_0);
        assert_eq!(OcfVersion::for_minor(Some(1)), OcfVersion::V1_1);
        assert_eq!(OcfVersion::for_minor(Some(2)), OcfVersion::V1_1);
    }
}
