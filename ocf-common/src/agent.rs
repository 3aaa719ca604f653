//! The one declarative description of an agent: its parameters and actions.
//!
//! Meta-data XML ([`crate::metadata`]), parameter parsing and validation ([`Params`]),
//! usage text and the README tables are all generated from an [`AgentDescription`], so
//! no parameter is described twice.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::env::OcfEnv;
use crate::exit::OcfError;
use crate::value::{parse_bool, parse_int, parse_time};

/// The type of a parameter's value.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ParamType {
    String,
    Integer,
    Boolean,
    /// A Pacemaker time specification (rendered as `time` in OCF 1.0 and `string` in
    /// OCF 1.1, whose schema has no time type).
    Time,
}

impl ParamType {
    pub fn name(self) -> &'static str {
        match self {
            ParamType::String => "string",
            ParamType::Integer => "integer",
            ParamType::Boolean => "boolean",
            ParamType::Time => "time",
        }
    }
}

/// A parameter's default.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ParamDefault {
    /// No default: unset means unset.
    None,
    /// A fixed default, advertised in meta-data and used when the parameter is unset.
    Value(&'static str),
    /// A default the agent computes from its environment; the text is what meta-data and
    /// documentation show (it must not depend on the environment: meta-data is
    /// deterministic).
    Computed(&'static str),
}

impl ParamDefault {
    fn filter_empty(self) -> ParamDefault {
        match self {
            ParamDefault::Value("") => ParamDefault::None,
            other => other,
        }
    }
}

/// One parameter of an agent.
#[derive(Clone, Debug)]
pub struct ParameterSpec {
    pub name: &'static str,
    pub shortdesc: &'static str,
    pub longdesc: &'static str,
    pub ty: ParamType,
    pub default: ParamDefault,
    pub required: bool,
    /// Unique across resources of this agent (OCF 1.0 `unique="1"`, OCF 1.1
    /// `unique-group` named after the parameter).
    pub unique: bool,
    /// Can change without a restart (OCF 1.1 `reloadable`, applied by reload-agent).
    pub reloadable: bool,
    pub deprecated: bool,
}

impl ParameterSpec {
    /// A plain optional string parameter; adjust with struct update syntax.
    pub const fn new(name: &'static str, ty: ParamType) -> ParameterSpec {
        ParameterSpec {
            name,
            shortdesc: "",
            longdesc: "",
            ty,
            default: ParamDefault::None,
            required: false,
            unique: false,
            reloadable: false,
            deprecated: false,
        }
    }
}

/// `trace_ra`, declared by every agent (pcs adds it only for the heartbeat and pacemaker
/// providers; crmsh's `crm resource trace` sets it on an operation). Reloadable: turning
/// tracing on or off never restarts the resource. See [`crate::logging::trace_target`].
pub const TRACE_RA: ParameterSpec = ParameterSpec {
    shortdesc: "Trace the resource agent",
    longdesc: "Set to 1 to write a debug-level trace of each action (every log record, and the \
environment) to trace_file, if set, or by default to one file per action in \
$HA_VARLIB/trace_ra/<type> (/var/lib/heartbeat/trace_ra/VirtualDomain for VirtualDomain), \
named <instance>.<action>.<date> (vm1.start.2026-11-27.08:37:08); trace_dir, when set, \
replaces $HA_VARLIB/trace_ra. As the OCF shell library does.",
    default: ParamDefault::Value("0"),
    reloadable: true,
    ..ParameterSpec::new("trace_ra", ParamType::Boolean)
};

/// `trace_file`, declared by every agent beside [`TRACE_RA`].
pub const TRACE_FILE: ParameterSpec = ParameterSpec {
    shortdesc: "Trace file",
    longdesc: "Absolute path of the file the trace of trace_ra is appended to (instead of one \
file per action under $HA_VARLIB/trace_ra).",
    reloadable: true,
    ..ParameterSpec::new("trace_file", ParamType::String)
};

/// One advertised action with its default timeout (and interval/depth for monitors).
#[derive(Clone, Debug)]
pub struct ActionSpec {
    pub name: &'static str,
    pub timeout_s: u32,
    pub interval_s: Option<u32>,
    pub depth: Option<u32>,
}

impl ActionSpec {
    pub const fn new(name: &'static str, timeout_s: u32) -> ActionSpec {
        ActionSpec {
            name,
            timeout_s,
            interval_s: None,
            depth: None,
        }
    }
    pub const fn recurring(
        name: &'static str,
        timeout_s: u32,
        interval_s: u32,
        depth: u32,
    ) -> ActionSpec {
        ActionSpec {
            name,
            timeout_s,
            interval_s: Some(interval_s),
            depth: Some(depth),
        }
    }
}

/// Everything an agent declares about itself.
#[derive(Clone, Debug)]
pub struct AgentDescription {
    /// The agent's type, which is also its file name.
    pub name: &'static str,
    /// The agent's own version.
    pub version: &'static str,
    pub shortdesc: &'static str,
    pub longdesc: &'static str,
    pub parameters: &'static [ParameterSpec],
    pub actions: &'static [ActionSpec],
}

impl AgentDescription {
    pub fn parameter(&self, name: &str) -> Option<&ParameterSpec> {
        self.parameters.iter().find(|p| p.name == name)
    }

    pub fn action(&self, name: &str) -> Option<&ActionSpec> {
        self.actions.iter().find(|a| a.name == name)
    }

    /// Whether `name` is one of the advertised actions.
    pub fn advertises(&self, name: &str) -> bool {
        self.action(name).is_some()
    }

    /// The usage line: `usage: NAME {a|b|...}` over the advertised actions.
    pub fn usage(&self) -> String {
        let mut names: Vec<&str> = Vec::new();
        for a in self.actions {
            if !names.contains(&a.name) {
                names.push(a.name);
            }
        }
        for extra in ["usage", "help"] {
            if !names.contains(&extra) {
                names.push(extra);
            }
        }
        format!(
            "usage: {} {{{}}}\n\nExpects to be run by an OCF-compliant caller (Pacemaker, crm_resource, ocf-tester) with its environment set.",
            self.name,
            names.join("|")
        )
    }
}

/// A parsed parameter value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Str(String),
    Int(i64),
    Bool(bool),
    Time(Duration),
}

/// The instance parameters of one invocation, typed and validated against the
/// description. A value that fails to parse is recorded as an error (and its default,
/// if any, is used), so that stop and probe can still act.
#[derive(Clone, Debug, Default)]
pub struct Params {
    values: BTreeMap<&'static str, Value>,
    given: BTreeMap<&'static str, String>,
    errors: Vec<OcfError>,
    /// How many of `errors` are required parameters left unset (the others are values
    /// that do not parse).
    missing: usize,
}

fn parse_value(ty: ParamType, raw: &str) -> Result<Value, String> {
    Ok(match ty {
        ParamType::String => Value::Str(raw.to_string()),
        ParamType::Integer => Value::Int(parse_int(raw)?),
        ParamType::Boolean => Value::Bool(parse_bool(raw)?),
        ParamType::Time => Value::Time(parse_time(raw)?),
    })
}

impl Params {
    /// Reads every declared parameter from `env`.
    pub fn parse(desc: &AgentDescription, env: &OcfEnv) -> Params {
        let mut params = Params::default();
        for spec in desc.parameters {
            let raw = env.param(spec.name);
            if let Some(raw) = raw {
                params.given.insert(spec.name, raw.to_string());
                match parse_value(spec.ty, raw) {
                    Ok(v) => {
                        params.values.insert(spec.name, v);
                        continue;
                    }
                    Err(why) => params.errors.push(OcfError::configured(format!(
                        "parameter '{}': {why}",
                        spec.name
                    ))),
                }
            } else if spec.required {
                params.missing += 1;
                params.errors.push(OcfError::configured(format!(
                    "parameter '{}' is required but not set",
                    spec.name
                )));
            }
            // An empty default (`default=""` in the shell agents' meta-data) means unset.
            if let ParamDefault::Value(d) = spec.default.filter_empty() {
                match parse_value(spec.ty, d) {
                    Ok(v) => {
                        params.values.insert(spec.name, v);
                    }
                    // A default that does not parse is a defect of the description; the
                    // unit tests of each agent catch it, and at run time it reads as unset.
                    Err(_) => debug_assert!(false, "default of {} does not parse", spec.name),
                }
            }
        }
        params
    }

    /// The problems found, in declaration order (empty when all is well).
    pub fn errors(&self) -> &[OcfError] {
        &self.errors
    }

    /// Whether a required parameter is unset (as opposed to only values that do not
    /// parse).
    pub fn lacks_required(&self) -> bool {
        self.missing > 0
    }

    /// `Err` with the first problem, if any.
    pub fn check(&self) -> Result<(), OcfError> {
        match self.errors.first() {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    /// Whether the caller gave this parameter (non-empty), valid or not.
    pub fn is_given(&self, name: &str) -> bool {
        self.given.contains_key(name)
    }

    /// The raw text the caller gave, valid or not.
    pub fn raw(&self, name: &str) -> Option<&str> {
        self.given.get(name).map(String::as_str)
    }

    pub fn value(&self, name: &str) -> Option<&Value> {
        self.values.get(name)
    }

    /// A string parameter (or any parameter's text, for string-typed ones).
    pub fn str(&self, name: &str) -> Option<&str> {
        match self.values.get(name) {
            Some(Value::Str(s)) => Some(s),
            _ => None,
        }
    }

    /// A boolean parameter; unset (with no default) or invalid reads as false.
    pub fn bool(&self, name: &str) -> bool {
        matches!(self.values.get(name), Some(Value::Bool(true)))
    }

    pub fn int(&self, name: &str) -> Option<i64> {
        match self.values.get(name) {
            Some(Value::Int(i)) => Some(*i),
            _ => None,
        }
    }

    pub fn time(&self, name: &str) -> Option<Duration> {
        match self.values.get(name) {
            Some(Value::Time(t)) => Some(*t),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARAMS: &[ParameterSpec] = &[
        ParameterSpec {
            required: true,
            unique: true,
            ..ParameterSpec::new("config", ParamType::String)
        },
        ParameterSpec {
            default: ParamDefault::Value("0"),
            ..ParameterSpec::new("speed", ParamType::Integer)
        },
        ParameterSpec {
            default: ParamDefault::Value("true"),
            ..ParameterSpec::new("flag", ParamType::Boolean)
        },
        ParameterSpec::new("force", ParamType::Boolean),
        ParameterSpec::new("wait", ParamType::Time),
    ];
    const DESC: AgentDescription = AgentDescription {
        name: "T",
        version: "1",
        shortdesc: "t",
        longdesc: "t",
        parameters: PARAMS,
        actions: &[
            ActionSpec::new("start", 20),
            ActionSpec::recurring("monitor", 20, 10, 0),
        ],
    };

    fn parse(pairs: &[(&str, &str)]) -> Params {
        Params::parse(&DESC, &OcfEnv::from_pairs(pairs.iter().copied()))
    }

    #[test]
    fn defaults_apply_when_unset() {
        let p = parse(&[("OCF_RESKEY_config", "/x")]);
        assert!(p.errors().is_empty());
        assert_eq!(p.str("config"), Some("/x"));
        assert_eq!(p.int("speed"), Some(0));
        assert!(p.bool("flag"));
        assert!(!p.bool("force"));
        assert_eq!(p.time("wait"), None);
        assert!(!p.is_given("speed"));
    }

    #[test]
    fn typed_values_are_parsed() {
        let p = parse(&[
            ("OCF_RESKEY_config", "/x"),
            ("OCF_RESKEY_speed", "100"),
            ("OCF_RESKEY_flag", "off"),
            ("OCF_RESKEY_force", "yes"),
            ("OCF_RESKEY_wait", "2min"),
        ]);
        assert!(p.errors().is_empty(), "{:?}", p.errors());
        assert_eq!(p.int("speed"), Some(100));
        assert!(!p.bool("flag"));
        assert!(p.bool("force"));
        assert_eq!(p.time("wait"), Some(Duration::from_secs(120)));
    }

    #[test]
    fn missing_required_parameter_is_a_configuration_error_naming_it() {
        let p = parse(&[]);
        let e = p.check().unwrap_err();
        assert_eq!(e.code, crate::ExitCode::ErrConfigured);
        assert_eq!(e.reason(), "parameter 'config' is required but not set");
    }

    #[test]
    fn every_bad_value_is_reported_with_its_parameter_and_default_kept() {
        let p = parse(&[
            ("OCF_RESKEY_config", "/x"),
            ("OCF_RESKEY_speed", "fast"),
            ("OCF_RESKEY_flag", "maybe"),
            ("OCF_RESKEY_wait", "later"),
        ]);
        let reasons: Vec<&str> = p.errors().iter().map(|e| e.reason()).collect();
        assert_eq!(reasons.len(), 3, "{reasons:?}");
        assert!(reasons[0].starts_with("parameter 'speed': 'fast' is not an integer"));
        assert!(reasons[1].starts_with("parameter 'flag': 'maybe' is not a boolean"));
        assert!(reasons[2].starts_with("parameter 'wait': 'later' is not a time"));
        assert!(p
            .errors()
            .iter()
            .all(|e| e.code == crate::ExitCode::ErrConfigured));
        // The default stands in for the bad value, so stop and probe can act.
        assert_eq!(p.int("speed"), Some(0));
        assert!(p.bool("flag"));
        assert_eq!(p.raw("speed"), Some("fast"));
    }

    const DUPLICATED: AgentDescription = AgentDescription {
        actions: &[
            ActionSpec::new("start", 20),
            ActionSpec::recurring("monitor", 20, 10, 0),
            ActionSpec::new("stop", 20),
            ActionSpec::recurring("monitor", 40, 60, 10),
            ActionSpec::new("usage", 5),
            ActionSpec::new("start", 30),
        ],
        ..DESC
    };

    #[test]
    fn usage_lists_the_advertised_actions_once() {
        // Two recurring monitors (two depths) and an advertised `usage`: each name once,
        // in the order of first appearance, then usage and help unless advertised.
        let usage = DUPLICATED.usage();
        let line = usage.lines().next().unwrap();
        assert_eq!(line, "usage: T {start|monitor|stop|usage|help}");
        // Without duplicates, usage and help are added after the advertised actions.
        assert!(DESC
            .usage()
            .starts_with("usage: T {start|monitor|usage|help}\n"));
    }
}
