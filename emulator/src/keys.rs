//! Resource paths under `/data`: the entity set, an entity by its composite
//! key, `$count`, `$batch`, `$metadata`. Key grammar [doc][spec]: every key
//! part named (case-sensitive), any order, string values in single quotes
//! with `''` for a quote, the whole segment percent-encoded.
//!
//! Decoding twice [field report, several independent blog posts]: F&O's
//! IIS/ASP.NET routing decodes the path once and matches routes on the
//! result, then OData decodes the key segment again. So a key value's `/`
//! or `\` sent once-encoded (`%2F`, `%5C`) becomes a path separator before
//! routing and matches no route (404 in the Web API shape, see
//! [`KeyError::NoRoute`]); a once-encoded `+` reaches OData as `+`, which
//! it reads as a space; a once-encoded `%` is decoded a second time. A
//! client encodes those four twice (`%252F`, `%255C`, `%252B`, `%2525`).
//! Inside `$batch` the same parsing is applied to each request's URL
//! (the batch handler routes each part again) [unverified].

use std::borrow::Cow;

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
    /// No route matches the once-decoded path (an unknown entity set, or a
    /// key value's `/` or `\` encoded only once): ASP.NET Web API answers
    /// 404 in its own shape `{"Message": …}`, not OData's [obs][field
    /// report]. Holds the once-decoded path.
    #[error("No HTTP resource was found that matches the request URI '{0}'.")]
    NoRoute(String),
    #[error("The URI is not valid: {0}")]
    Syntax(String),
    #[error("The URI is not valid: invalid UTF-8 in path")]
    Utf8(#[source] std::str::Utf8Error),
    #[error(
        "The number of keys specified in the URI does not match number of key properties for the resource '{ENTITY_TYPE}'."
    )]
    KeyCount,
    #[error("The key property '{0}' does not exist on type '{ENTITY_TYPE}'.")]
    UnknownKey(String),
}

impl KeyError {
    /// HTTP status: unmatched routes are 404, malformed keys 400.
    pub fn status(&self) -> u16 {
        match self {
            KeyError::NoRoute(_) => 404,
            _ => 400,
        }
    }
}

/// Parses the raw (still percent-encoded) path after `/data/`: decoded
/// once for routing, and the key once more as OData does (see the module
/// doc).
pub fn parse_resource(raw: &str) -> Result<Resource, KeyError> {
    let routed = decode(raw, false)?;
    let path = routed.trim_end_matches('/');
    match path {
        "" => return Ok(Resource::ServiceRoot),
        "$batch" => return Ok(Resource::Batch),
        "$metadata" => return Ok(Resource::Metadata),
        ENTITY_SET => return Ok(Resource::Collection),
        _ => {}
    }
    if path.strip_prefix(ENTITY_SET) == Some("/$count") {
        return Ok(Resource::Count);
    }
    // IIS treats `\` as a path separator too.
    if path.contains(['/', '\\']) {
        return Err(KeyError::NoRoute(path.to_string()));
    }
    let inner = path
        .strip_prefix(ENTITY_SET)
        .and_then(|r| r.strip_prefix('('))
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| KeyError::NoRoute(path.to_string()))?;
    let (area, number) = parse_key(&decode(inner, true)?)?;
    Ok(Resource::Entity(area, number))
}

/// One percent-decoding pass. OData's pass (`form`) reads a literal `+`
/// as a space, as .NET's URL decoding does [field report].
fn decode(raw: &str, form: bool) -> Result<String, KeyError> {
    let raw: Cow<'_, str> = if form {
        raw.replace('+', " ").into()
    } else {
        raw.into()
    };
    percent_decode_str(&raw)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(KeyError::Utf8)
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
                "SalesOrderHeadersV2(dataAreaId=%27usmf%27,SalesOrderNumber=%27A%252FB%27%27%27)"
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
            Err(KeyError::NoRoute(_))
        ));
        assert_eq!(
            parse_resource("SalesOrderHeadersV2/$count"),
            Ok(Resource::Count)
        );
    }

    /// F&O decodes the path twice [field report]: `/`, `\`, `+` and `%`
    /// arrive intact only when encoded twice.
    #[test]
    fn key_values_are_decoded_twice() {
        let key =
            |v: &str| format!("SalesOrderHeadersV2(dataAreaId='usmf',SalesOrderNumber='{v}')");
        let table = [
            ("SO%252F2025%252F0145", "SO/2025/0145"),
            ("A%255CB", "A\\B"),
            ("A%252BB", "A+B"),
            ("A%2BB", "A B"),
            ("A+B", "A B"),
            ("100%2525", "100%"),
            ("A%20B", "A B"),
            ("%C3%9C", "\u{dc}"),
        ];
        for (sent, want) in table {
            assert_eq!(parse_resource(&key(sent)), Ok(ent("usmf", want)), "{sent}");
        }
        for once in ["SO%2F2025", "SO/2025", "A%5CB", "A\\B"] {
            assert!(
                matches!(parse_resource(&key(once)), Err(KeyError::NoRoute(_))),
                "{once}"
            );
        }
    }
}
