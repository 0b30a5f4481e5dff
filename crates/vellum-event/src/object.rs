//! `actor`, `source`, `target`, `request`: JSON objects kept in their canonical text.

use std::fmt;

use serde_json::{Map, Value};

use crate::EventError;

/// A JSON object in canonical form: compact, keys in byte order, each key once, values
/// written as `serde_json` writes them. An event keeps its small objects this way, so
/// appending it copies their text instead of serialising maps again, and dropping it frees
/// one string per object.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct JsonObject(Box<str>);

impl JsonObject {
    /// The canonical text of a map.
    pub fn from_map(map: &Map<String, Value>) -> Self {
        // Serialising a map of JSON values cannot fail; `{}` would be the answer if it did.
        Self(
            serde_json::to_string(map)
                .unwrap_or_else(|_| "{}".to_string())
                .into_boxed_str(),
        )
    }

    /// The canonical text, e.g. `{"ip":"10.0.0.1","user_agent":"curl/8"}`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The object as a map.
    pub fn to_map(&self) -> Map<String, Value> {
        // The text was written from a map: it always reads back as one.
        serde_json::from_str(&self.0).unwrap_or_default()
    }

    /// The member `key` if it is a string.
    pub fn get_str(&self, key: &str) -> Option<String> {
        match self.to_map().remove(key)? {
            Value::String(s) => Some(s),
            _ => None,
        }
    }
}

impl From<Map<String, Value>> for JsonObject {
    fn from(map: Map<String, Value>) -> Self {
        Self::from_map(&map)
    }
}

impl TryFrom<Value> for JsonObject {
    type Error = EventError;

    /// A JSON object; anything else is refused.
    fn try_from(value: Value) -> Result<Self, Self::Error> {
        match value {
            Value::Object(map) => Ok(Self::from_map(&map)),
            _ => Err(EventError::WrongType {
                field: "object".into(),
                expected: "an object",
            }),
        }
    }
}

impl serde::Serialize for JsonObject {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_map().serialize(serializer)
    }
}

impl<'de> serde::Deserialize<'de> for JsonObject {
    /// From a JSON object, e.g. `serde_json::from_value(json!({"user": "alice"}))`.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Map::<String, Value>::deserialize(deserializer).map(|m| Self::from_map(&m))
    }
}

impl fmt::Debug for JsonObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for JsonObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;

    #[test]
    fn canonical_text_sorts_keys_and_reads_back() {
        let o = JsonObject::try_from(json!({"user_agent": "a\"b", "ip": "10.0.0.1", "n": 1.50}))
            .unwrap();
        assert_eq!(
            o.as_str(),
            r#"{"ip":"10.0.0.1","n":1.5,"user_agent":"a\"b"}"#
        );
        assert_eq!(o.get_str("user_agent").as_deref(), Some("a\"b"));
        assert_eq!(o.get_str("n"), None);
        assert_eq!(o.get_str("missing"), None);
        assert_eq!(JsonObject::from_map(&o.to_map()), o);
        assert!(JsonObject::try_from(json!([1])).is_err());
        let via_serde: JsonObject = serde_json::from_value(json!({"b": 1, "a": null})).unwrap();
        assert_eq!(via_serde.as_str(), r#"{"a":null,"b":1}"#);
        assert_eq!(
            serde_json::to_string(&via_serde).unwrap(),
            via_serde.as_str()
        );
    }
}
