//! A JSON parser that refuses a key repeated in one object, at any depth.
//! serde_json keeps the last of two equal keys without a word, and log
//! pipelines (Loki, Elasticsearch, jq) each pick a different one, so a
//! duplicate key in a log line loses information somewhere.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// `line` as a JSON value; an error names the first repeated key.
pub fn parse_strict(line: &str) -> Result<Value, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_str(line);
    let value = Strict.deserialize(&mut de)?;
    de.end()?;
    Ok(value)
}

/// Seed that builds a [`Value`], refusing repeated keys.
struct Strict;

impl<'de> DeserializeSeed<'de> for Strict {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value without repeated keys")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(v.into())
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(v.into())
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(Strict)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                return Err(de::Error::custom(format_args!("duplicate key {key:?}")));
            }
            let value = map.next_value_seed(Strict)?;
            out.insert(key, value);
        }
        Ok(Value::Object(out))
    }
}

#[test]
fn repeated_keys_are_refused_at_any_depth() {
    assert!(parse_strict(r#"{"a":1,"b":[{"c":2}]}"#).is_ok());
    let top = parse_strict(r#"{"message":"x","message":"y"}"#).unwrap_err();
    assert!(
        top.to_string().contains("duplicate key \"message\""),
        "{top}"
    );
    assert!(parse_strict(r#"{"fields":{"message":"x","level":1,"message":"y"}}"#).is_err());
    assert!(parse_strict(r#"{"spans":[{"name":"a","name":"b"}]}"#).is_err());
    assert!(parse_strict(r#"{"a":1} trailing"#).is_err());
}
