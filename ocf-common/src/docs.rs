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
