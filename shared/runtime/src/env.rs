//! Service settings from the environment (the template's Lambda variables), with errors that
//! say which variable and what it should hold.

use std::str::FromStr;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvError {
    #[error("environment variable {name} is not set: {meaning}")]
    Missing {
        name: &'static str,
        meaning: &'static str,
    },
    #[error("environment variable {name}=`{value}` is not valid: {reason}")]
    Invalid {
        name: &'static str,
        value: String,
        reason: String,
    },
}

/// A variable that must be set and not empty. `meaning` tells an operator where its value
/// comes from.
pub fn required(name: &'static str, meaning: &'static str) -> Result<String, EnvError> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .ok_or(EnvError::Missing { name, meaning })
}

/// A variable parsed as `T`, or `default` when it is unset or empty.
pub fn parsed_or<T>(name: &'static str, default: T) -> Result<T, EnvError>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    match std::env::var(name) {
        Ok(value) if !value.is_empty() => value.parse().map_err(|e: T::Err| EnvError::Invalid {
            name,
            reason: e.to_string(),
            value,
        }),
        _ => Ok(default),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_variable_and_what_it_should_hold() {
        let err = required("INTRADAY_SURELY_UNSET_1", "it names the job table").unwrap_err();
        assert_eq!(
            err.to_string(),
            "environment variable INTRADAY_SURELY_UNSET_1 is not set: it names the job table"
        );
        assert_eq!(parsed_or("INTRADAY_SURELY_UNSET_2", 7u64), Ok(7));
    }
}
