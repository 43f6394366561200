//! Typed errors. Each carries the offending value so the caller can report or recover.

use std::fmt;

use crate::metrics::InstrumentKind;

/// Why an instrument could not be registered.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum RegistrationError {
    /// The name breaks the OpenTelemetry instrument-name syntax
    /// (`[A-Za-z][A-Za-z0-9_./-]{0,254}`).
    InvalidName {
        /// The name as given.
        name: String,
        /// What is wrong with it.
        reason: NameProblem,
    },
    /// The unit is not ASCII or is longer than 63 characters.
    InvalidUnit {
        /// The instrument's name.
        name: String,
        /// The unit as given.
        unit: String,
    },
    /// Histogram bucket boundaries are not finite and strictly increasing.
    InvalidBuckets {
        /// The instrument's name.
        name: String,
        /// The boundaries as given.
        boundaries: Vec<f64>,
    },
    /// An invalid setting (for example a zero cardinality limit).
    InvalidSetting {
        /// The instrument's name.
        name: String,
        /// Which setting, and what is wrong with it.
        setting: &'static str,
    },
    /// The name is already registered in this scope as a different kind of instrument.
    KindConflict {
        /// The name.
        name: String,
        /// The kind it was first registered as.
        existing: InstrumentKind,
        /// The kind asked for now.
        requested: InstrumentKind,
    },
    /// The name is already registered with the same kind but a different unit or
    /// histogram buckets, which would change what it exports.
    DescriptorConflict {
        /// The name.
        name: String,
        /// Which part differs.
        field: &'static str,
    },
    /// The instrument's Prometheus exposition would clash with another instrument's (see
    /// [`PrometheusNameConflict`]).
    PrometheusNameConflict(Box<PrometheusNameConflict>),
}

/// Two instruments whose Prometheus expositions would clash: both would write a family or
/// sample of the same name with a different type or unit, or the same series (two names that
/// map to one Prometheus name in the same scope, such as `x.y` and `x_y`). Prometheus would
/// keep one of them and lose the other, so the second is refused. The same instrument in
/// another scope is not a clash: it joins the family, told apart by the `otel_scope_name`
/// label.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PrometheusNameConflict {
    /// The instrument being registered.
    pub name: String,
    /// Its scope (empty for the default scope).
    pub scope: String,
    /// The Prometheus family or sample name both would use.
    pub prometheus_name: String,
    /// The instrument already using it.
    pub existing: String,
    /// That instrument's scope.
    pub existing_scope: String,
    /// What the existing use is: another type, another unit, the same series, or a name of
    /// another family.
    pub reason: &'static str,
}

/// What is wrong with an instrument name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum NameProblem {
    /// The name is empty.
    Empty,
    /// The name is longer than 255 characters.
    TooLong,
    /// The first character is not an ASCII letter.
    BadFirstCharacter(char),
    /// A character other than ASCII letters, digits, `_`, `.`, `-`, `/`.
    BadCharacter(char),
}

impl fmt::Display for NameProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameProblem::Empty => f.write_str("it is empty"),
            NameProblem::TooLong => f.write_str("it is longer than 255 characters"),
            NameProblem::BadFirstCharacter(c) => write!(f, "it starts with {c:?}, not an ASCII letter"),
            NameProblem::BadCharacter(c) => {
                write!(f, "it contains {c:?}; only ASCII letters, digits, '_', '.', '-' and '/' are allowed")
            }
        }
    }
}

impl fmt::Display for RegistrationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RegistrationError::InvalidName { name, reason } => {
                write!(f, "invalid instrument name {name:?}: {reason}")
            }
            RegistrationError::InvalidUnit { name, unit } => write!(
                f,
                "invalid unit {unit:?} for instrument {name:?}: units must be ASCII and at most 63 characters"
            ),
            RegistrationError::InvalidBuckets { name, boundaries } => write!(
                f,
                "invalid bucket boundaries {boundaries:?} for histogram {name:?}: they must be finite and strictly increasing"
            ),
            RegistrationError::InvalidSetting { name, setting } => {
                write!(f, "invalid setting for instrument {name:?}: {setting}")
            }
            RegistrationError::KindConflict { name, existing, requested } => write!(
                f,
                "instrument {name:?} is already registered as a {existing}, cannot register it as a {requested}"
            ),
            RegistrationError::DescriptorConflict { name, field } => write!(
                f,
                "instrument {name:?} is already registered with a different {field}"
            ),
            RegistrationError::PrometheusNameConflict(c) => write!(
                f,
                "instrument {:?} (scope {:?}) would be exposed to Prometheus as {:?}, which is {} of instrument {:?} (scope {:?})",
                c.name, c.scope, c.prometheus_name, c.reason, c.existing, c.existing_scope
            ),
        }
    }
}

impl std::error::Error for RegistrationError {}

/// Checks an instrument name against the OpenTelemetry syntax.
pub(crate) fn validate_name(name: &str) -> Result<(), NameProblem> {
    let mut chars = name.chars();
    let first = chars.next().ok_or(NameProblem::Empty)?;
    if !first.is_ascii_alphabetic() {
        return Err(NameProblem::BadFirstCharacter(first));
    }
    if let Some(c) = chars.find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '/'))) {
        return Err(NameProblem::BadCharacter(c));
    }
    if name.len() > 255 {
        return Err(NameProblem::TooLong);
    }
    Ok(())
}

pub(crate) fn validate_unit(unit: &str) -> bool {
    unit.is_ascii() && unit.len() <= 63
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(validate_name("http.server.request.duration"), Ok(()));
        assert_eq!(validate_name("a/b-c_d.e9"), Ok(()));
        assert_eq!(validate_name(""), Err(NameProblem::Empty));
        assert_eq!(validate_name("9lives"), Err(NameProblem::BadFirstCharacter('9')));
        assert_eq!(validate_name("has space"), Err(NameProblem::BadCharacter(' ')));
        assert_eq!(validate_name("läuft"), Err(NameProblem::BadCharacter('ä')));
        assert_eq!(validate_name(&"a".repeat(255)), Ok(()));
        assert_eq!(validate_name(&"a".repeat(256)), Err(NameProblem::TooLong));
    }

    #[test]
    fn units() {
        assert!(validate_unit("s"));
        assert!(validate_unit("{request}"));
        assert!(!validate_unit("µs"));
        assert!(!validate_unit(&"x".repeat(64)));
    }
}
