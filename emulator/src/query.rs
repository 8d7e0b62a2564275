//! OData query options [doc]: `$filter $select $top $skip $count $orderby`,
//! server-driven paging with an opaque `$skiptoken`, and D365's
//! `cross-company=true`.

use base64::Engine;
use percent_encoding::percent_decode_str;
use thiserror::Error;

use crate::entity::{ENTITY_TYPE, field_index};
use crate::filter::{self, Expr, FilterError};

#[derive(Debug, Error, PartialEq)]
pub enum QueryError {
    #[error("The query parameter '{0}' is not supported.")]
    Unsupported(String),
    #[error("Invalid value '{1}' for query option '{0}'.")]
    Invalid(&'static str, String),
    #[error("Could not find a property named '{0}' on type '{ENTITY_TYPE}'.")]
    UnknownProperty(String),
    #[error(transparent)]
    Filter(#[from] FilterError),
}

/// Parsed query options.
#[derive(Debug, Default)]
pub struct Query {
    pub filter: Option<Expr>,
    pub select: Option<Vec<String>>,
    pub top: Option<usize>,
    pub skip: usize,
    pub count: bool,
    /// (field, descending)
    pub orderby: Vec<(String, bool)>,
    pub cross_company: bool,
    /// Raw `name=value` pairs to carry into `@odata.nextLink`.
    pub carry: Vec<String>,
    /// Environment URL the client reached, for `@odata.context` and links.
    pub base: String,
    /// The request's `User-Agent`, so the journal can say which client
    /// (which operator replica) wrote.
    pub agent: Option<String>,
}

fn decode(s: &str) -> String {
    percent_decode_str(&s.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned()
}

/// Parses a raw query string (None = no query).
pub fn parse(raw: Option<&str>) -> Result<Query, QueryError> {
    let mut q = Query::default();
    for pair in raw.unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
        let (rk, rv) = pair.split_once('=').unwrap_or((pair, ""));
        let (k, v) = (decode(rk), decode(rv));
        let carry = !matches!(k.as_str(), "$top" | "$skip" | "$skiptoken");
        match k.as_str() {
            "$filter" => q.filter = Some(filter::parse(&v)?),
            "$select" => q.select = parse_select(&v)?,
            "$top" => {
                q.top = Some(
                    v.parse()
                        .ok()
                        .ok_or_else(|| QueryError::Invalid("$top", v.clone()))?,
                )
            }
            "$skip" => {
                q.skip = v
                    .parse()
                    .ok()
                    .ok_or_else(|| QueryError::Invalid("$skip", v.clone()))?
            }
            "$count" => {
                q.count = match v.as_str() {
                    "true" => true,
                    "false" => false,
                    _ => return Err(QueryError::Invalid("$count", v)),
                }
            }
            "$orderby" => q.orderby = parse_orderby(&v)?,
            "$skiptoken" => {
                let (skip, top) =
                    decode_skiptoken(&v).ok_or(QueryError::Invalid("$skiptoken", v.clone()))?;
                q.skip = skip;
                q.top = top;
            }
            "$format" | "$expand" if v.is_empty() => {}
            "cross-company" => q.cross_company = v.eq_ignore_ascii_case("true"),
            other if other.starts_with('$') => {
                return Err(QueryError::Unsupported(other.to_string()));
            }
            _ => {}
        }
        if carry {
            q.carry.push(pair.to_string());
        }
    }
    Ok(q)
}

fn parse_select(v: &str) -> Result<Option<Vec<String>>, QueryError> {
    let names: Vec<String> = v.split(',').map(|s| s.trim().to_string()).collect();
    if names.iter().any(|n| n == "*") {
        return Ok(None);
    }
    for n in &names {
        if field_index(n).is_none() {
            return Err(QueryError::UnknownProperty(n.clone()));
        }
    }
    Ok(Some(names))
}

fn parse_orderby(v: &str) -> Result<Vec<(String, bool)>, QueryError> {
    v.split(',')
        .map(|item| {
            let mut parts = item.split_whitespace();
            let name = parts.next().unwrap_or_default().to_string();
            if field_index(&name).is_none() {
                return Err(QueryError::UnknownProperty(name));
            }
            let desc = match parts.next() {
                None | Some("asc") => false,
                Some("desc") => true,
                Some(o) => return Err(QueryError::Invalid("$orderby", o.to_string())),
            };
            Ok((name, desc))
        })
        .collect()
}

/// Opaque continuation: rows already skipped and rows still wanted.
pub fn encode_skiptoken(skip: usize, top: Option<usize>) -> String {
    let raw = match top {
        Some(t) => format!("{skip}:{t}"),
        None => format!("{skip}:"),
    };
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

fn decode_skiptoken(v: &str) -> Option<(usize, Option<usize>)> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(v)
        .ok()?;
    let s = String::from_utf8(raw).ok()?;
    let (a, b) = s.split_once(':')?;
    let top = if b.is_empty() {
        None
    } else {
        Some(b.parse().ok()?)
    };
    Some((a.parse().ok()?, top))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options() {
        let q = parse(Some("cross-company=true&$select=SalesOrderNumber,dataAreaId&$top=5&$count=true&$filter=SalesOrderNumber%20eq%20%27A%27")).unwrap();
        assert!(q.cross_company && q.count);
        assert_eq!(q.top, Some(5));
        assert_eq!(q.select.unwrap().len(), 2);
        assert!(q.filter.is_some());
        assert!(parse(Some("$select=Nope")).is_err());
        assert!(parse(Some("$apply=x")).is_err());
        let t = encode_skiptoken(10, Some(3));
        let q = parse(Some(&format!("$skiptoken={t}"))).unwrap();
        assert_eq!((q.skip, q.top), (10, Some(3)));
    }
}
