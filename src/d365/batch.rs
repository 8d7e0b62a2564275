//! The OData `$batch` wire format [doc][spec]: building a multipart/mixed
//! request of PATCHes and reading the multipart answer.
//!
//! Each PATCH gets its own changeset: a changeset is atomic, and one
//! order's failure (a stale ETag, a final status) must not roll back the
//! writes of unrelated orders. Hand-written because no crate fits the nested
//! shape (a changeset is a multipart inside a part, each leaf an
//! `application/http` message). JSON batch is [unverified], so not used.
//!
//! Pure wire format: what a part's status means is the coalescer's
//! business, so this knows nothing of the client or of `D365Error`.

use std::collections::HashMap;

use rand::RngCore;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

/// One PATCH to put in a batch.
pub(crate) struct BatchRequest<'a> {
    /// Matches the answer to the request; unique within the batch.
    pub content_id: String,
    /// Absolute entity URL, query included.
    pub url: &'a str,
    pub if_match: &'a str,
    pub body: &'a [u8],
}

/// Why a body is not a batch answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ParseError {
    #[error("content type {0:?} is not multipart/mixed")]
    NotMultipart(String),
    #[error("multipart without closing --{0}--")]
    Unterminated(String),
    #[error("bad status line {0:?} in a batch answer")]
    BadStatusLine(String),
    /// A part without `Content-ID` cannot be matched to its request.
    #[error("answer part {0} has no Content-ID")]
    MissingContentId(usize),
    #[error("Content-ID {0:?} is answered more than once")]
    RepeatedContentId(String),
    #[error("Content-ID {0:?} answers no request that was sent")]
    UnknownContentId(String),
}

/// One `application/http` answer out of a batch response.
#[derive(Debug)]
pub(crate) struct BatchResponse {
    pub content_id: Option<String>,
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

/// A random boundary suffix; the body is JSON and URLs, which never
/// contain it.
fn token() -> String {
    let mut b = [0u8; 16];
    rand::rng().fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Builds the `$batch` body; returns its `Content-Type` (with the boundary)
/// and the bytes.
pub(crate) fn build(requests: &[BatchRequest<'_>]) -> (String, Vec<u8>) {
    let id = token();
    let batch = format!("batch_{id}");
    let mut out = Vec::new();
    for (i, r) in requests.iter().enumerate() {
        let cs = format!("changeset_{id}_{i}");
        let head = format!(
            "--{batch}\r\nContent-Type: multipart/mixed; boundary={cs}\r\n\r\n\
             --{cs}\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\
             Content-ID: {}\r\n\r\n\
             PATCH {} HTTP/1.1\r\nContent-Type: application/json\r\nIf-Match: {}\r\n\
             Prefer: {}\r\nOData-Version: 4.0\r\n\r\n",
            r.content_id,
            r.url,
            r.if_match,
            super::sender::RETURN_REPRESENTATION
        );
        out.extend_from_slice(head.as_bytes());
        out.extend_from_slice(r.body);
        out.extend_from_slice(format!("\r\n--{cs}--\r\n").as_bytes());
    }
    out.extend_from_slice(format!("--{batch}--\r\n").as_bytes());
    (format!("multipart/mixed; boundary={batch}"), out)
}

/// The `boundary` parameter of a multipart/mixed content type.
pub(crate) fn boundary(content_type: &str) -> Option<String> {
    let mut params = content_type.split(';');
    if !params
        .next()?
        .trim()
        .eq_ignore_ascii_case("multipart/mixed")
    {
        return None;
    }
    params.find_map(|p| {
        let (k, v) = p.trim().split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| v.trim().trim_matches('"').to_owned())
    })
}

/// Reads a batch answer into its leaf responses, in order: the parts of
/// successful changesets and the single error part of failed ones.
pub(crate) fn parse(content_type: &str, body: &[u8]) -> Result<Vec<BatchResponse>, ParseError> {
    let b =
        boundary(content_type).ok_or_else(|| ParseError::NotMultipart(content_type.to_owned()))?;
    let mut out = Vec::new();
    for part in split(body, &b)? {
        match header(&part.headers, "Content-Type").and_then(boundary) {
            Some(inner) => {
                for leaf in split(&part.body, &inner)? {
                    out.push(response(&leaf)?);
                }
            }
            None => out.push(response(&part)?),
        }
    }
    Ok(out)
}

/// The answer's parts by Content-ID, for the requests `sent`. A part
/// without one, two parts with one, or one naming no request refuses the
/// whole answer: matching by position or keeping either part could hand
/// one order another's result. A request without a part is the caller's
/// to treat as not sent.
pub(crate) fn by_content_id(
    parts: Vec<BatchResponse>,
    sent: &[&str],
) -> Result<HashMap<String, BatchResponse>, ParseError> {
    let mut out = HashMap::with_capacity(parts.len());
    for (i, part) in parts.into_iter().enumerate() {
        let id = part
            .content_id
            .clone()
            .ok_or(ParseError::MissingContentId(i + 1))?;
        if !sent.contains(&id.as_str()) {
            return Err(ParseError::UnknownContentId(id));
        }
        if out.contains_key(&id) {
            return Err(ParseError::RepeatedContentId(id));
        }
        out.insert(id, part);
    }
    Ok(out)
}

struct Part {
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if from > hay.len() {
        return None;
    }
    hay[from..]
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|i| i + from)
}

/// Splits a multipart body at `--boundary` lines (CRLF or bare LF).
fn split(body: &[u8], boundary: &str) -> Result<Vec<Part>, ParseError> {
    let delim = format!("--{boundary}").into_bytes();
    let mut starts = Vec::new();
    let mut from = 0;
    while let Some(i) = find(body, &delim, from) {
        if i == 0 || body[i - 1] == b'\n' {
            starts.push(i);
        }
        from = i + delim.len();
    }
    let mut parts = Vec::new();
    for (n, &s) in starts.iter().enumerate() {
        let after = s + delim.len();
        if body[after..].starts_with(b"--") {
            return Ok(parts);
        }
        let next = *starts
            .get(n + 1)
            .ok_or_else(|| ParseError::Unterminated(boundary.to_owned()))?;
        let content = find(body, b"\n", after).map_or(next, |i| i + 1).min(next);
        let mut seg = &body[content..next];
        seg = seg.strip_suffix(b"\n").unwrap_or(seg);
        seg = seg.strip_suffix(b"\r").unwrap_or(seg);
        let (headers, rest) = split_head(seg);
        parts.push(Part {
            headers,
            body: rest.to_vec(),
        });
    }
    Err(ParseError::Unterminated(boundary.to_owned()))
}

/// Header lines up to the first blank line, and what follows.
fn split_head(seg: &[u8]) -> (Vec<(String, String)>, &[u8]) {
    let (head, rest) = match (find(seg, b"\r\n\r\n", 0), find(seg, b"\n\n", 0)) {
        (Some(a), Some(b)) if b < a => (&seg[..b], &seg[b + 2..]),
        (Some(a), _) => (&seg[..a], &seg[a + 4..]),
        (None, Some(b)) => (&seg[..b], &seg[b + 2..]),
        (None, None) => (seg, &[][..]),
    };
    let headers = String::from_utf8_lossy(head)
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            Some((k.trim().to_owned(), v.trim().to_owned()))
        })
        .collect();
    (headers, rest)
}

/// One `application/http` part: `HTTP/1.1 <code> <reason>`, headers, body.
fn response(part: &Part) -> Result<BatchResponse, ParseError> {
    let raw = &part.body;
    let line_end = find(raw, b"\n", 0).unwrap_or(raw.len());
    let line = String::from_utf8_lossy(&raw[..line_end]);
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .filter(|_| line.starts_with("HTTP/"))
        .ok_or_else(|| ParseError::BadStatusLine(line.trim().to_owned()))?;
    let rest = raw.get(line_end + 1..).unwrap_or_default();
    let (lines, body) = if rest.starts_with(b"\r\n") || rest.starts_with(b"\n") {
        (Vec::new(), rest)
    } else {
        split_head(rest)
    };
    let mut headers = HeaderMap::new();
    for (k, v) in lines {
        if let (Ok(k), Ok(v)) = (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(&v),
        ) {
            headers.append(k, v);
        }
    }
    Ok(BatchResponse {
        content_id: header(&part.headers, "Content-ID").map(str::to_owned),
        status,
        headers,
        body: body.trim_ascii().to_vec(),
    })
}

#[cfg(test)]
#[path = "batch_tests.rs"]
pub(super) mod tests;
