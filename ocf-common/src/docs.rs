//! Documentation generated from an agent description: the README's parameter tables.

use crate::agent::{AgentDescription, ParamDefault};

fn cell(text: &str) -> String {
    crate::exit::one_line(text).replace('|', "\\|")
}

/// A Markdown section for one agent: its description, parameters and actions.
pub fn markdown(desc: &AgentDescription, provider: &str) -> String {
    let mut out = format!(
        "### ocf:{provider}:{}\n\n{}\n\n",
        desc.name,
        cell(desc.longdesc)
    );
    out.push_str("| parameter | type | default | required | unique | reloadable | description |\n");
    out.push_str("|---|---|---|---|---|---|---|\n");
    for p in desc.parameters {
        let default = match p.default {
            ParamDefault::None => String::new(),
            ParamDefault::Value(v) | ParamDefault::Computed(v) => format!("`{}`", cell(v)),
        };
        let yes = |b: bool| if b { "yes" } else { "" };
        out.push_str(&format!(
            "| `{}` | {} | {} | {} | {} | {} | {} |\n",
            p.name,
            p.ty.name(),
            default,
            yes(p.required),
            yes(p.unique),
            yes(p.reloadable),
            cell(p.longdesc)
        ));
    }
    out.push_str("\n| action | timeout | interval | depth |\n|---|---|---|---|\n");
    for a in desc.actions {
        out.push_str(&format!(
            "| `{}` | {}s | {} | {} |\n",
            a.name,
            a.timeout_s,
            a.interval_s.map(|i| format!("{i}s")).unwrap_or_default(),
            a.depth.map(|d| d.to_string()).unwrap_or_default()
        ));
    }
    out
}

/// What a manual page says beyond the description: examples, exit codes, deviations.
pub struct ManPage {
    /// A `pcs resource create` example (one command per line).
    pub pcs_example: &'static str,
    /// The same with crmsh.
    pub crm_example: &'static str,
    /// Each exit code the agent answers with, and when.
    pub exit_codes: &'static [(&'static str, &'static str)],
    /// Where the agent deliberately differs from the shell agent it replaces.
    pub deviations: &'static [&'static str],
    /// Other pages and documents.
    pub see_also: &'static str,
}

/// Text made safe for roff: backslashes escaped, a line never starting with a control
/// character, one paragraph per line.
fn roff(text: &str) -> String {
    let text = crate::exit::one_line(text).replace('\\', "\\e");
    match text.chars().next() {
        Some('.') | Some('\'') => format!("\\&{text}"),
        _ => text,
    }
}

/// Lines of literal text (examples), each safe for roff.
fn roff_lines(text: &str) -> String {
    text.lines()
        .map(|l| {
            let l = l.replace('\\', "\\e");
            if l.starts_with('.') || l.starts_with('\'') {
                format!("\\&{l}\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect()
}

/// The manual page `ocf_<provider>_<name>(7)` of an agent, in the manner of
/// resource-agents' pages: name, synopsis, description, every parameter (type, default,
/// required, unique, reloadable), the actions with their timeouts, examples for pcs and
/// crmsh, exit codes and the deviations from the shell agent.
pub fn man(desc: &AgentDescription, provider: &str, page: &ManPage) -> String {
    let title = format!("ocf_{provider}_{}", desc.name);
    let mut out = String::new();
    out.push_str(&format!(
        ".TH \"{}\" \"7\" \"\" \"ocf-rs {}\" \"OCF resource agents\"\n",
        title.to_uppercase(),
        desc.version
    ));
    out.push_str(".SH \"NAME\"\n");
    out.push_str(&format!("{title} \\- {}\n", roff(desc.shortdesc)));
    out.push_str(".SH \"SYNOPSIS\"\n.PP\n");
    let actions: Vec<&str> = desc.actions.iter().map(|a| a.name).collect();
    out.push_str(&format!(
        "\\fB{}\\fR [{}]\n",
        desc.name,
        actions
            .iter()
            .map(|a| format!("\\fB{a}\\fR"))
            .collect::<Vec<_>>()
            .join(" | ")
    ));
    out.push_str(".SH \"DESCRIPTION\"\n.PP\n");
    out.push_str(&roff(desc.longdesc));
    out.push('\n');
    out.push_str(".SH \"SUPPORTED PARAMETERS\"\n");
    for p in desc.parameters {
        out.push_str(&format!(".PP\n\\fB{}\\fR\n.RS 4\n", p.name));
        out.push_str(&roff(p.longdesc));
        out.push_str("\n.sp\n");
        let default = match p.default {
            ParamDefault::None => "none".to_string(),
            ParamDefault::Value("") => "empty (unset)".to_string(),
            ParamDefault::Value(v) | ParamDefault::Computed(v) => format!("\"{}\"", roff(v)),
        };
        let yes = |b: bool| if b { "yes" } else { "no" };
        out.push_str(&format!(
            "(type: {}, default: {default}, required: {}, unique: {}, reloadable: {}{})\n.RE\n",
            p.ty.name(),
            yes(p.required),
            yes(p.unique),
            yes(p.reloadable),
            if p.deprecated { ", deprecated" } else { "" }
        ));
    }
    out.push_str(".SH \"SUPPORTED ACTIONS\"\n.PP\nThis resource agent supports the following actions (operations):\n");
    for a in desc.actions {
        let mut line = format!("timeout: {}s", a.timeout_s);
        if let Some(i) = a.interval_s {
            line.push_str(&format!(", interval: {i}s"));
        }
        if let Some(d) = a.depth {
            line.push_str(&format!(", depth: {d}"));
        }
        out.push_str(&format!(".PP\n\\fB{}\\fR\n.RS 4\n{line}\n.RE\n", a.name));
    }
    for (heading, text) in [
        ("EXAMPLE PCS USAGE", page.pcs_example),
        ("EXAMPLE CRM SHELL", page.crm_example),
    ] {
        out.push_str(&format!(".SH \"{heading}\"\n.PP\n.nf\n.RS 4\n"));
        out.push_str(&roff_lines(text));
        out.push_str(".RE\n.fi\n");
    }
    out.push_str(".SH \"EXIT STATUS\"\n");
    for (code, meaning) in page.exit_codes {
        out.push_str(&format!(".TP\n\\fB{}\\fR\n{}\n", roff(code), roff(meaning)));
    }
    if !page.deviations.is_empty() {
        out.push_str(".SH \"DIFFERENCES FROM THE SHELL AGENT\"\n");
        for d in page.deviations {
            out.push_str(&format!(".IP \\(bu 2\n{}\n", roff(d)));
        }
    }
    out.push_str(".SH \"SEE ALSO\"\n.PP\n");
    out.push_str(&roff(page.see_also));
    out.push('\n');
    out
}
