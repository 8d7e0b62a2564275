//! Resource paths under `/data`: the entity set, an entity by its composite
//! key, `$count`, `$batch`, `$metadata`. Key grammar [doc][spec]: every key
//! part named (case-sensitive), any order, string values in single quotes
//! with `''` for a quote, the whole segment possibly percent-encoded.

use percent_encoding::percent_decode_str;
use thiserror::Error;

use crate::entity::{AREA, ENTITY_SET, ENTITY_TYPE, FIELDS, NUMBER};

/// What a `/data/...` path addresses.
#[derive(Debug, Clone, PartialEq)]
pub enum Resource {
    ServiceRoot,
    Metadata,
    Batch,
    Collection,
    Count,
    /// An entity by key: (dataAreaId as given, SalesOrderNumber).
    Entity(String, String),
}

#[derive(Debug, Error, PartialEq)]
pub enum KeyError {
    #[error("Resource not found for the segment '{0}'.")]
    NotFound(String),
    #[error("The URI is not valid: {0}")]
    Syntax(String),
    #[error(
        "The number of keys specified in the URI does not match number of key properties for the resource '{ENTITY_TYPE}'."
    )]
    KeyCount,
    #[error("The key property '{0}' does not exist on type '{ENTITY_TYPE}'.")]
    UnknownKey(String),
}

impl KeyError {
    /// HTTP status: unknown segments are 404, malformed keys 400.
    pub fn status(&self) -> u16 {
        match self {
            KeyError::NotFound(_) => 404,
            _ => 400,
        }
    }
}

/// Parses the raw (still percent-encoded) path after `/data/`.
pub fn parse_resource(raw: &str) -> Result<Resource, KeyError> {
    let path = percent_decode_str(raw)
        .decode_utf8()
        .ok()
        .ok_or_else(|| KeyError::Syntax("invalid UTF-8 in path".into()))?;
    let path = path.trim_end_matches('/');
    match path {
        "" => return Ok(Resource::ServiceRoot),
        "$batch" => return Ok(Resource::Batch),
        "$metadata" => return Ok(Resource::Metadata),
        _ => {}
    }
    let Some(rest) = path.strip_prefix(ENTITY_SET) else {
        let seg = path.split(['/', '(']).next().unwrap_or(path);
        return Err(KeyError::NotFound(seg.to_string()));
    };
    if rest.is_empty() {
        return Ok(Resource::Collection);
    }
    if rest == "/$count" {
        return Ok(Resource::Count);
    }
    let Some(inner) = rest.strip_prefix('(').and_then(|r| r.strip_suffix(')')) else {
        return Err(KeyError::NotFound(path.to_string()));
    };
    let (area, number) = parse_key(inner)?;
    Ok(Resource::Entity(area, number))
}

/// Parses `dataAreaId='X',SalesOrderNumber='Y'` (any order).
pub fn parse_key(inner: &str) -> Result<(String, String), KeyError> {
    let mut area = None;
    let mut number = None;
    let mut chars = inner.chars().peekable();
    loop {
        let mut name = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c == ',' || c == '\'' {
                break;
            }
            name.push(c);
            chars.next();
        }
        if chars.next() != Some('=') {
            // A bare value: positional keys are not valid for a composite key.
            return Err(KeyError::KeyCount);
        }
        if chars.next() != Some('\'') {
            return Err(KeyError::Syntax(format!(
                "key '{name}' needs a quoted string value"
            )));
        }
        let mut value = String::new();
        loop {
            match chars.next() {
                Some('\'') if chars.peek() == Some(&'\'') => {
                    chars.next();
                    value.push('\'');
                }
                Some('\'') => break,
                Some(c) => value.push(c),
                None => return Err(KeyError::Syntax("unterminated string literal".into())),
            }
        }
        let slot = if name == FIELDS[AREA].name {
            &mut area
        } else if name == FIELDS[NUMBER].name {
            &mut number
        } else {
            return Err(KeyError::UnknownKey(name));
        };
        if slot.replace(value).is_some() {
            return Err(KeyError::Syntax(format!("duplicate key '{name}'")));
        }
        match chars.next() {
            None => break,
            Some(',') => continue,
            Some(c) => {
                return Err(KeyError::Syntax(format!(
                    "unexpected '{c}' after key value"
                )));
            }
        }
    }
    match (area, number) {
        (Some(a), Some(n)) => Ok((a, n)),
        _ => Err(KeyError::KeyCount),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ent(a: &str, n: &str) -> Resource {
        Resource::Entity(a.into(), n.into())
    }

    #[test]
    fn grammar() {
        assert_eq!(
            parse_resource("SalesOrderHeadersV2(dataAreaId='USMF',SalesOrderNumber='SO-1')"),
            Ok(ent("USMF", "SO-1"))
        );
        assert_eq!(
            parse_resource("SalesOrderHeadersV2(SalesOrderNumber='O''Brien',dataAreaId='usmf')"),
            Ok(ent("usmf", "O'Brien"))
        );
        assert_eq!(
            parse_resource(
                "SalesOrderHeadersV2(dataAreaId=%27usmf%27,SalesOrderNumber=%27A%2FB%27%27%27)"
            ),
            Ok(ent("usmf", "A/B'"))
        );
        assert_eq!(
            parse_resource("SalesOrderHeadersV2(dataAreaId='usmf')"),
            Err(KeyError::KeyCount)
        );
        assert_eq!(
            parse_resource("SalesOrderHeadersV2('SO-1')"),
            Err(KeyError::KeyCount)
        );
        assert!(matches!(
            parse_resource("SalesOrderHeadersV2(dataAreaId='usmf',Foo='x')"),
            Err(KeyError::UnknownKey(_))
        ));
        assert!(matches!(
            parse_resource("Customers"),
            Err(KeyError::NotFound(_))
        ));
        assert_eq!(
            parse_resource("SalesOrderHeadersV2/$count"),
            Ok(Resource::Count)
        );
    }
}
