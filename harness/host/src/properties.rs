//! Property values and their encoding on the wire, as Envoy encodes them.
//!
//! `proxy_get_property` answers with bytes whose meaning depends on the attribute's type:
//! Envoy serialises its CEL values natively (strings raw, integers as 8-byte
//! little-endian, booleans as one byte, durations and timestamps as nanoseconds in 8
//! bytes, maps in the header-map encoding). A filter decodes them by the type it knows,
//! so the harness must encode exactly the same way; callers set typed [`Value`]s and
//! never think about bytes.

use crate::abi::pairs;
use std::collections::BTreeMap;

/// A property value, typed as Envoy types its attributes.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    String(String),
    Bytes(Vec<u8>),
    Int(i64),
    Uint(u64),
    Bool(bool),
    /// Nanoseconds.
    Duration(i64),
    /// Nanoseconds since the Unix epoch.
    Timestamp(i64),
    Map(Vec<(String, String)>),
    /// A serialised protobuf message.
    Message(Vec<u8>),
}

impl Value {
    /// The bytes `proxy_get_property` returns for this value.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Value::String(s) => s.as_bytes().to_vec(),
            Value::Bytes(b) | Value::Message(b) => b.clone(),
            Value::Int(i) | Value::Duration(i) | Value::Timestamp(i) => i.to_le_bytes().to_vec(),
            Value::Uint(u) => u.to_le_bytes().to_vec(),
            Value::Bool(b) => vec![u8::from(*b)],
            Value::Map(entries) => {
                pairs::encode(entries.iter().map(|(k, v)| (k.as_bytes(), v.as_bytes())))
            }
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::String(s.to_owned())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::String(s)
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Value {
        Value::Int(i)
    }
}

impl From<u64> for Value {
    fn from(u: u64) -> Value {
        Value::Uint(u)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Value {
        Value::Bool(b)
    }
}

/// Properties set by the caller, by dotted path (`upstream.address`). They take
/// precedence over what the host derives from the stream.
#[derive(Debug, Clone, Default)]
pub struct Properties {
    values: BTreeMap<String, Value>,
}

impl Properties {
    pub fn set(&mut self, path: &str, value: impl Into<Value>) {
        self.values.insert(path.to_owned(), value.into());
    }

    pub fn remove(&mut self, path: &str) {
        self.values.remove(path);
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    pub fn get(&self, path: &str) -> Option<&Value> {
        self.values.get(path)
    }

    pub fn contains(&self, path: &str) -> bool {
        self.values.contains_key(path)
    }
}

/// The Envoy node, as `node` and `node.*` show it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Node {
    pub id: String,
    pub cluster: String,
}

impl Node {
    /// The `envoy.config.core.v3.Node` message with its id (field 1) and cluster
    /// (field 2), fields left empty being absent as protobuf encodes them.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (field, text) in [(1u8, &self.id), (2u8, &self.cluster)] {
            if text.is_empty() {
                continue;
            }
            out.push(field << 3 | 2);
            let mut len = text.len();
            loop {
                let byte = (len & 0x7f) as u8;
                len >>= 7;
                if len == 0 {
                    out.push(byte);
                    break;
                }
                out.push(byte | 0x80);
            }
            out.extend_from_slice(text.as_bytes());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_are_eight_bytes_little_endian() {
        assert_eq!(Value::Int(200).encode(), [200, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(Value::Uint(1).encode(), [1, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(Value::Bool(false).encode(), [0]);
        assert_eq!(Value::from("10.0.0.1:80").encode(), b"10.0.0.1:80");
    }

    #[test]
    fn maps_use_the_header_map_encoding() {
        let encoded = Value::Map(vec![("a".into(), "b".into())]).encode();
        assert_eq!(
            encoded,
            [1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, b'a', 0, b'b', 0]
        );
    }

    #[test]
    fn node_encodes_id_and_cluster() {
        let node = Node {
            id: "sidecar~1".into(),
            cluster: "c".into(),
        };
        let bytes = node.encode();
        assert_eq!(bytes[0], 0x0a);
        assert_eq!(bytes[1] as usize, "sidecar~1".len());
        assert_eq!(&bytes[bytes.len() - 3..], [0x12, 1, b'c']);
        assert!(Node::default().encode().is_empty());
    }
}
