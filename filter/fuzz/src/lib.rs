//! What the fuzz targets share: the configuration vocabulary for structure-aware
//! inputs, and the route table the path target routes with.

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use serde_json::Value;

/// The six routes of the mesh, as the default configuration has them.
pub const MESH_PREFIXES: &[&str] = &[
    "/api/v1/orders",
    "/api/v1/payments",
    "/api/v1/products",
    "/api/v1/customers",
    "/api/v1/recommendations",
    "/api/v1/saga",
];

/// A JSON value whose object keys are mostly the configuration's own field names, so
/// that mutations reach the validation of each field and not only the JSON parser.
#[derive(Debug, Arbitrary)]
pub enum Json {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
    Word(u8),
    Array(Vec<Json>),
    Object(Vec<(Key, Json)>),
}

#[derive(Debug, Arbitrary)]
pub enum Key {
    Field(u8),
    Other(String),
}

/// One change to the default configuration document.
#[derive(Debug, Arbitrary)]
pub struct Edit {
    /// Which value of the default document (modulo their number).
    pub at: u16,
    pub value: Json,
    /// Insert under a new key of the object at `at` instead of replacing it.
    pub insert: Option<Key>,
}

/// The configuration's field names and string values, from its default document.
pub struct Vocabulary {
    pub words: Vec<String>,
    pub default: Value,
    pub pointers: Vec<String>,
}

impl Vocabulary {
    pub fn new() -> Vocabulary {
        let default: Value =
            serde_json::from_str(c4mesh_filter_core::DEFAULT_CONFIG_JSON).unwrap_or(Value::Null);
        let mut words = Vec::new();
        let mut pointers = Vec::new();
        collect(&default, String::new(), &mut words, &mut pointers);
        words.sort();
        words.dedup();
        Vocabulary {
            words,
            default,
            pointers,
        }
    }

    fn word(&self, i: u8) -> String {
        self.words
            .get(usize::from(i) % self.words.len().max(1))
            .cloned()
            .unwrap_or_default()
    }

    fn key(&self, key: &Key) -> String {
        match key {
            Key::Field(i) => self.word(*i),
            Key::Other(s) => s.clone(),
        }
    }

    pub fn value(&self, json: &Json, depth: usize) -> Value {
        match json {
            Json::Null => Value::Null,
            Json::Bool(b) => Value::Bool(*b),
            Json::Int(n) => Value::from(*n),
            Json::Float(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
            Json::Text(s) => Value::String(s.clone()),
            Json::Word(i) => Value::String(self.word(*i)),
            Json::Array(items) if depth < 6 => {
                Value::Array(items.iter().map(|j| self.value(j, depth + 1)).collect())
            }
            Json::Object(fields) if depth < 6 => Value::Object(
                fields
                    .iter()
                    .map(|(k, j)| (self.key(k), self.value(j, depth + 1)))
                    .collect(),
            ),
            Json::Array(_) | Json::Object(_) => Value::Null,
        }
    }

    /// The default document with `edits` applied.
    pub fn edited(&self, edits: &[Edit]) -> Value {
        let mut doc = self.default.clone();
        for edit in edits {
            let Some(pointer) = self
                .pointers
                .get(usize::from(edit.at) % self.pointers.len().max(1))
            else {
                continue;
            };
            let value = self.value(&edit.value, 0);
            let Some(target) = doc.pointer_mut(pointer) else {
                continue;
            };
            match (&edit.insert, target) {
                (Some(key), Value::Object(map)) => {
                    map.insert(self.key(key), value);
                }
                (_, target) => *target = value,
            }
        }
        doc
    }
}

impl Default for Vocabulary {
    fn default() -> Vocabulary {
        Vocabulary::new()
    }
}

fn collect(value: &Value, pointer: String, words: &mut Vec<String>, pointers: &mut Vec<String>) {
    pointers.push(pointer.clone());
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                words.push(key.clone());
                let escaped = key.replace('~', "~0").replace('/', "~1");
                collect(inner, format!("{pointer}/{escaped}"), words, pointers);
            }
        }
        Value::Array(items) => {
            for (i, inner) in items.iter().enumerate() {
                collect(inner, format!("{pointer}/{i}"), words, pointers);
            }
        }
        Value::String(s) => words.push(s.clone()),
        _ => {}
    }
}
