//! Parsing of parameter values: booleans exactly as the shell agents read them,
//! integers, and Pacemaker time specifications.

use std::time::Duration;

/// Spellings read as true: exactly those of `ocf_is_true` in the OCF shell library, so
/// an existing configuration keeps its meaning.
pub const TRUE_WORDS: &[&str] = &["yes", "true", "1", "YES", "TRUE", "True", "ja", "on", "ON"];
/// Spellings read as false. The shell library takes anything not true for false; these
/// are the clear ones, and any other text is refused as a configuration error rather
/// than guessed (`Yes` or `y` would be false for the shell agent, true for a reader).
pub const FALSE_WORDS: &[&str] = &[
    "no", "false", "0", "off", "NO", "FALSE", "False", "nein", "OFF", "Off", "No",
];

/// A boolean parameter value (empty is false). `Err` lists what is accepted.
pub fn parse_bool(value: &str) -> Result<bool, String> {
    if TRUE_WORDS.contains(&value) {
        Ok(true)
    } else if value.is_empty() || FALSE_WORDS.contains(&value) {
        Ok(false)
    } else {
        Err(format!(
            "'{value}' is not a boolean (true: {}; false: {})",
            TRUE_WORDS.join(" "),
            FALSE_WORDS.join(" ")
        ))
    }
}

/// A decimal integer, optionally signed.
pub fn parse_int(value: &str) -> Result<i64, String> {
    let v = value.trim();
    v.parse::<i64>()
        .map_err(|_| format!("'{value}' is not an integer"))
}

/// A Pacemaker time specification: a non-negative number with an optional unit
/// (ms/msec, us/usec, s/sec, m/min, h/hr, d; case-insensitive). No unit means seconds.
pub fn parse_time(value: &str) -> Result<Duration, String> {
    let bad = || format!("'{value}' is not a time (e.g. 30, 30s, 500ms, 5min, 1h)");
    let v = value.trim();
    let split = v
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(v.len());
    let (number, unit) = v.split_at(split);
    if number.is_empty() {
        return Err(bad());
    }
    let number: f64 = number.parse().map_err(|_| bad())?;
    let scale = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "s" | "sec" | "secs" => 1.0,
        "ms" | "msec" | "msecs" => 1e-3,
        "us" | "usec" | "usecs" => 1e-6,
        "m" | "min" | "mins" => 60.0,
        "h" | "hr" | "hrs" => 3600.0,
        "d" => 86400.0,
        _ => return Err(bad()),
    };
    let secs = number * scale;
    if !secs.is_finite() || secs > 1e12 {
        return Err(bad());
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booleans_are_exactly_the_shell_agents() {
        for t in ["yes", "YES", "true", "TRUE", "True", "1", "ja", "on", "ON"] {
            assert_eq!(parse_bool(t), Ok(true), "{t}");
        }
        for f in [
            "", "no", "NO", "No", "false", "FALSE", "False", "0", "off", "OFF", "Off", "nein",
        ] {
            assert_eq!(parse_bool(f), Ok(false), "{f}");
        }
    }

    #[test]
    fn booleans_the_shell_would_read_otherwise_are_refused_with_the_spellings() {
        // ocf_is_true reads these as false; a reader would take most for true.
        for bad in [
            "Yes", "y", "Y", "On", "Ja", "TRue", "n", " yes", "yes ", "maybe", "2", "enabled",
        ] {
            let e = parse_bool(bad).unwrap_err();
            assert!(e.contains(&format!("'{bad}'")), "{e}");
            assert!(e.contains("true: yes true 1 YES TRUE True ja on ON"), "{e}");
            assert!(e.contains("false: no false 0 off"), "{e}");
        }
    }

    #[test]
    fn integers() {
        assert_eq!(parse_int("42"), Ok(42));
        assert_eq!(parse_int(" -7 "), Ok(-7));
        assert!(parse_int("4.2").is_err());
        assert!(parse_int("abc").is_err());
        assert!(parse_int("").is_err());
        assert!(parse_int("99999999999999999999").is_err());
    }

    #[test]
    fn times_with_and_without_units() {
        assert_eq!(parse_time("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_time("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_time("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_time("2min"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_time("1H"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_time("1.5s"), Ok(Duration::from_millis(1500)));
        for bad in ["", "s", "-1", "10 parsecs", "1e9999"] {
            assert!(parse_time(bad).is_err(), "{bad}");
        }
    }
}
