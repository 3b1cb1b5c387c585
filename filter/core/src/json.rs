//! A small walker over `serde_json::Value` that knows where it is.
//!
//! Operators read one log line when Envoy rejects a configuration, so every error
//! names the field path (`routes[2].retry.attempts`) and the reason. Serde's derive
//! reports neither the path nor our range rules, hence this walker: each object is
//! visited through [`Object`], which tracks the fields it consumed and reports the
//! first unknown one.

use serde_json::{Map, Value};
use std::fmt;

/// An invalid configuration: the field path and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{reason}", path_prefix(path))]
pub struct ConfigError {
    /// Dotted path of the offending field, empty for the document itself.
    pub path: String,
    /// Why the value is rejected.
    pub reason: String,
}

fn path_prefix(path: &str) -> String {
    if path.is_empty() {
        String::new()
    } else {
        format!("{path}: ")
    }
}

impl ConfigError {
    pub fn new(path: &Path<'_>, reason: impl Into<String>) -> Self {
        ConfigError {
            path: path.to_string(),
            reason: reason.into(),
        }
    }
}

/// A field path, built on the stack as the walker descends.
#[derive(Clone, Copy)]
pub enum Path<'a> {
    Root,
    Field(&'a Path<'a>, &'a str),
    Index(&'a Path<'a>, usize),
}

impl Path<'_> {
    pub fn field<'a>(&'a self, name: &'a str) -> Path<'a> {
        Path::Field(self, name)
    }

    pub fn index(&self, index: usize) -> Path<'_> {
        Path::Index(self, index)
    }
}

impl fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Path::Root => Ok(()),
            Path::Field(parent, name) => {
                if matches!(parent, Path::Root) {
                    write!(f, "{name}")
                } else {
                    write!(f, "{parent}.{name}")
                }
            }
            Path::Index(parent, index) => write!(f, "{parent}[{index}]"),
        }
    }
}

/// Names a JSON value's type the way an operator would say it.
pub fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_u64() || n.is_i64() => "an integer",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn expected(path: &Path<'_>, what: &str, value: &Value) -> ConfigError {
    ConfigError::new(path, format!("expected {what}, got {}", type_name(value)))
}

/// An object being read field by field; [`Object::finish`] rejects unknown fields.
pub struct Object<'v, 'p> {
    map: &'v Map<String, Value>,
    path: &'p Path<'p>,
    known: &'static [&'static str],
}

impl<'v, 'p> Object<'v, 'p> {
    pub fn new(
        value: &'v Value,
        path: &'p Path<'p>,
        known: &'static [&'static str],
    ) -> Result<Self, ConfigError> {
        match value {
            Value::Object(map) => Ok(Object { map, path, known }),
            other => Err(expected(path, "an object", other)),
        }
    }

    pub fn path(&self) -> &'p Path<'p> {
        self.path
    }

    /// The raw value of a field, `None` when absent.
    pub fn get(&self, name: &str) -> Option<&'v Value> {
        self.map.get(name)
    }

    /// Rejects the first field that is not in `known`, in document order.
    pub fn finish(self) -> Result<(), ConfigError> {
        match self.map.keys().find(|k| !self.known.contains(&k.as_str())) {
            Some(unknown) => Err(ConfigError::new(
                &self.path.field(unknown),
                format!("unknown field (expected one of: {})", self.known.join(", ")),
            )),
            None => Ok(()),
        }
    }
}

pub fn as_str<'v>(value: &'v Value, path: &Path<'_>) -> Result<&'v str, ConfigError> {
    value
        .as_str()
        .ok_or_else(|| expected(path, "a string", value))
}

pub fn as_bool(value: &Value, path: &Path<'_>) -> Result<bool, ConfigError> {
    value
        .as_bool()
        .ok_or_else(|| expected(path, "a boolean", value))
}

pub fn as_array<'v>(value: &'v Value, path: &Path<'_>) -> Result<&'v Vec<Value>, ConfigError> {
    value
        .as_array()
        .ok_or_else(|| expected(path, "an array", value))
}

/// A finite number (integers included).
pub fn as_f64(value: &Value, path: &Path<'_>) -> Result<f64, ConfigError> {
    match value {
        Value::Number(n) => n
            .as_f64()
            .filter(|f| f.is_finite())
            .ok_or_else(|| expected(path, "a finite number", value)),
        other => Err(expected(path, "a number", other)),
    }
}

/// A non-negative integer within `[min, max]`.
pub fn as_u64_within(
    value: &Value,
    path: &Path<'_>,
    min: u64,
    max: u64,
) -> Result<u64, ConfigError> {
    let n = match value {
        Value::Number(n) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => u,
            (None, Some(i)) => {
                return Err(ConfigError::new(
                    path,
                    format!("must be within [{min}, {max}], got {i}"),
                ))
            }
            _ => return Err(expected(path, "an integer", value)),
        },
        other => return Err(expected(path, "an integer", other)),
    };
    if n < min || n > max {
        return Err(ConfigError::new(
            path,
            format!("must be within [{min}, {max}], got {n}"),
        ));
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_read_like_the_document() {
        let root = Path::Root;
        let routes = root.field("routes");
        let second = routes.index(2);
        let retry = second.field("retry");
        let attempts = retry.field("attempts");
        assert_eq!(attempts.to_string(), "routes[2].retry.attempts");
        assert_eq!(Path::Root.to_string(), "");
    }

    #[test]
    fn unknown_fields_are_named_with_their_path() {
        let value = json!({"prefix": "/a", "prefx": "/b"});
        let root = Path::Root;
        let routes = root.field("routes");
        let path = routes.index(0);
        let object = Object::new(&value, &path, &["prefix"]).unwrap();
        let err = object.finish().unwrap_err();
        assert_eq!(err.path, "routes[0].prefx");
        assert!(err
            .to_string()
            .starts_with("routes[0].prefx: unknown field"));
    }

    #[test]
    fn integers_are_range_checked() {
        let root = Path::Root;
        let path = root.field("attempts");
        assert_eq!(as_u64_within(&json!(3), &path, 0, 10), Ok(3));
        assert_eq!(
            as_u64_within(&json!(11), &path, 0, 10)
                .unwrap_err()
                .to_string(),
            "attempts: must be within [0, 10], got 11"
        );
        assert_eq!(
            as_u64_within(&json!(-1), &path, 0, 10)
                .unwrap_err()
                .to_string(),
            "attempts: must be within [0, 10], got -1"
        );
        assert_eq!(
            as_u64_within(&json!("3"), &path, 0, 10)
                .unwrap_err()
                .to_string(),
            "attempts: expected an integer, got a string"
        );
        assert_eq!(
            as_u64_within(&json!(2.5), &path, 0, 10)
                .unwrap_err()
                .to_string(),
            "attempts: expected an integer, got a number"
        );
    }
}
