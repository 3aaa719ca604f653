//! Parsing of parameter values: booleans in every spelling the shell agents accept,
//! integers, and Pacemaker time specifications.

use std::time::Duration;

/// Spellings read as true: those of `ocf_is_true` in the OCF shell library (yes, true,
/// 1, ja, on in any case).
const TRUE_WORDS: &[&str] = &["yes", "true", "1", "ja", "on", "y"];
/// Spellings read as false. The shell library treats anything not true as false; we
/// accept the same words for false, and refuse any other text as a configuration error.
const FALSE_WORDS: &[&str] = &["no", "false", "0", "nein", "off", "n"];

/// A boolean parameter value. `Err` carries a description of what is accepted.
pub fn parse_bool(value: &str) -> Result<bool, String> {
    let v = value.trim().to_ascii_lowercase();
    if TRUE_WORDS.contains(&v.as_str()) {
        Ok(true)
    } else if FALSE_WORDS.contains(&v.as_str()) {
        Ok(false)
    } else {
        Err(format!(
            "'{value}' is not a boolean (use one of yes/true/1/on or no/false/0/off)"
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
    fn booleans_accept_every_shell_spelling() {
        for t in [
            "yes", "YES", "true", "TRUE", "True", "1", "ja", "on", "ON", " y ",
        ] {
            assert_eq!(parse_bool(t), Ok(true), "{t}");
        }
        for f in ["no", "NO", "false", "False", "0", "off", "OFF", "nein", "n"] {
            assert_eq!(parse_bool(f), Ok(false), "{f}");
        }
    }

    #[test]
    fn booleans_refuse_other_text_and_name_the_value() {
        for bad in ["", "maybe", "2", "truee", "yes please"] {
            let e = parse_bool(bad).unwrap_err();
            assert!(e.contains(&format!("'{bad}'")), "{e}");
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
