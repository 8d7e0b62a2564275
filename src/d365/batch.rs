//! The OData `$batch` wire format [doc][spec]: building a multipart/mixed
//! request of PATCHes and reading the multipart answer.
//!
//! Each PATCH gets its own changeset: a changeset is atomic, and one
//! order's failure (a stale ETag, a final status) must not roll back the
//! writes of unrelated orders. Hand-written because no crate fits the nested
//! shape (a changeset is a multipart inside a part, each leaf an
//! `application/http` message). JSON batch is [unverified], so not used.

use rand::RngCore;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;

use super::client::{PatchOutcome, entity_from};
use super::{D365Error, ETag, OrderKey, ResponseContext};

/// One PATCH to put in a batch.
pub(crate) struct BatchRequest<'a> {
    /// Matches the answer to the request; unique within the batch.
    pub content_id: String,
    /// Absolute entity URL, query included.
    pub url: &'a str,
    pub if_match: &'a str,
    pub body: &'a [u8],
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
             OData-Version: 4.0\r\n\r\n",
            r.content_id, r.url, r.if_match
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
/// successful changesets and the single error part of failed ones. `Err`
/// says why the body is not a batch answer.
pub(crate) fn parse(content_type: &str, body: &[u8]) -> Result<Vec<BatchResponse>, String> {
    let b = boundary(content_type)
        .ok_or_else(|| format!("content type {content_type:?} is not multipart/mixed"))?;
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

impl BatchResponse {
    /// What this answer means for the PATCH of `key`: the same mapping as
    /// a single request's (`D365Error::from_odata_response`), so a 412 part
    /// is a `Conflict` and a 500 `AxODataWriteException` part `Rejected`.
    pub(crate) fn outcome(
        &self,
        key: &OrderKey,
        if_match: &ETag,
    ) -> Result<PatchOutcome, D365Error> {
        if (200..300).contains(&self.status) {
            let etag = ETag::from_headers(&self.headers);
            let json = serde_json::from_slice::<Value>(&self.body).ok();
            return Ok(match json {
                Some(Value::Object(body)) if self.status == 200 => {
                    match entity_from(body, &self.headers) {
                        Some(entity) => PatchOutcome::Entity(entity),
                        None => PatchOutcome::NoContent { etag },
                    }
                }
                _ => PatchOutcome::NoContent { etag },
            });
        }
        let ctx = ResponseContext {
            method: "PATCH",
            key: Some(key),
            if_match: Some(if_match),
        };
        Err(D365Error::from_odata_response(
            &ctx,
            self.status,
            &self.headers,
            &self.body,
        ))
    }
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
fn split(body: &[u8], boundary: &str) -> Result<Vec<Part>, String> {
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
            .ok_or_else(|| format!("multipart without closing --{boundary}--"))?;
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
    Err(format!("multipart without closing --{boundary}--"))
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
fn response(part: &Part) -> Result<BatchResponse, String> {
    let raw = &part.body;
    let line_end = find(raw, b"\n", 0).unwrap_or(raw.len());
    let line = String::from_utf8_lossy(&raw[..line_end]);
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .filter(|_| line.starts_with("HTTP/"))
        .ok_or_else(|| format!("bad status line {:?} in a batch answer", line.trim()))?;
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
mod tests {
    use super::*;

    #[test]
    fn builds_one_changeset_per_request() {
        let reqs = [
            BatchRequest {
                content_id: "1".into(),
                url: "http://x/data/S(dataAreaId='usmf',SalesOrderNumber='A')?cross-company=true",
                if_match: "W/\"e1\"",
                body: br#"{"SalesOrderStatus":"Delivered"}"#,
            },
            BatchRequest {
                content_id: "2".into(),
                url: "http://x/data/S(dataAreaId='usmf',SalesOrderNumber='B')?cross-company=true",
                if_match: "W/\"e2\"",
                body: b"{}",
            },
        ];
        let (ct, body) = build(&reqs);
        let b = boundary(&ct).unwrap();
        assert!(b.starts_with("batch_"), "{ct}");
        let text = String::from_utf8(body.clone()).unwrap();
        assert!(text.ends_with(&format!("--{b}--\r\n")), "{text}");
        let parts = split(&body, &b).unwrap();
        assert_eq!(parts.len(), 2, "one changeset per order");
        for (part, req) in parts.iter().zip(&reqs) {
            let cs = boundary(header(&part.headers, "Content-Type").unwrap()).unwrap();
            assert!(cs.starts_with("changeset_"));
            let leaves = split(&part.body, &cs).unwrap();
            assert_eq!(leaves.len(), 1);
            let leaf = &leaves[0];
            assert_eq!(
                header(&leaf.headers, "Content-Type"),
                Some("application/http")
            );
            assert_eq!(
                header(&leaf.headers, "Content-Transfer-Encoding"),
                Some("binary")
            );
            assert_eq!(
                header(&leaf.headers, "Content-ID"),
                Some(req.content_id.as_str())
            );
            let msg = String::from_utf8(leaf.body.clone()).unwrap();
            let mut lines = msg.split("\r\n");
            assert_eq!(lines.next().unwrap(), format!("PATCH {} HTTP/1.1", req.url));
            assert!(msg.contains("Content-Type: application/json\r\n"));
            assert!(msg.contains(&format!("If-Match: {}\r\n", req.if_match)));
            assert!(msg.contains("OData-Version: 4.0\r\n"));
            let body = String::from_utf8_lossy(req.body);
            assert!(msg.ends_with(&format!("\r\n\r\n{body}")), "{msg}");
        }
    }

    #[test]
    fn parses_successes_and_failures() {
        let body = concat!(
            "--batchresponse_1\r\n",
            "Content-Type: multipart/mixed; boundary=changesetresponse_a\r\n\r\n",
            "--changesetresponse_a\r\n",
            "Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n",
            "Content-ID: 1\r\n\r\n",
            "HTTP/1.1 204 No Content\r\nETag: W/\"new\"\r\nOData-Version: 4.0\r\n\r\n\r\n",
            "--changesetresponse_a--\r\n",
            "--batchresponse_1\r\n",
            "Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n",
            "Content-ID: 2\r\n\r\n",
            "HTTP/1.1 412 Precondition Failed\r\nContent-Type: application/json\r\n\r\n",
            r#"{"error":{"code":"","message":"The record has been changed."}}"#,
            "\r\n",
            "--batchresponse_1\r\n",
            "Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n",
            "Content-ID: 3\r\n\r\n",
            "HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\n\r\n",
            r#"{"error":{"code":"","message":"An error has occurred.","innererror":{"message":"Write failed for table row of type 'SalesTable'.","type":"Microsoft.Dynamics.Platform.Integration.Services.OData.AxODataWriteException"}}}"#,
            "\r\n",
            "--batchresponse_1--\r\n"
        );
        let parts = parse("multipart/mixed; boundary=batchresponse_1", body.as_bytes()).unwrap();
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[0].content_id.as_deref(), Some("1"));
        assert_eq!(parts[0].status, 204);
        assert_eq!(parts[0].headers.get("etag").unwrap(), "W/\"new\"");
        assert!(parts[0].body.is_empty());
        assert_eq!(
            (parts[1].content_id.as_deref(), parts[1].status),
            (Some("2"), 412)
        );
        assert!(parts[1].body.starts_with(b"{\"error\""));
        assert!(parts[1].body.ends_with(b"}}"));
        assert_eq!(
            (parts[2].content_id.as_deref(), parts[2].status),
            (Some("3"), 500)
        );
        assert!(String::from_utf8_lossy(&parts[2].body).contains("AxODataWriteException"));

        let key = OrderKey::new("usmf", "SO-1");
        let sent = ETag::parse("W/\"old\"").unwrap();
        let ok = parts[0].outcome(&key, &sent).unwrap();
        assert_eq!(ok.etag().map(ETag::as_str), Some("W/\"new\""));
        match parts[1].outcome(&key, &sent) {
            Err(D365Error::Conflict {
                status: 412,
                sent_etag,
                message,
            }) => {
                assert_eq!(sent_etag, "W/\"old\"");
                assert!(message.contains("The record has been changed"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        match parts[2].outcome(&key, &sent) {
            Err(D365Error::Rejected {
                status: 500,
                message,
            }) => {
                assert!(message.contains("Write failed"), "{message}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn refuses_what_is_not_a_batch_answer() {
        assert!(parse("application/json", b"{}").is_err());
        assert!(
            parse(
                "multipart/mixed; boundary=b",
                b"--b\r\n\r\nHTTP/1.1 204\r\n"
            )
            .is_err()
        );
        assert!(
            parse(
                "multipart/mixed; boundary=b",
                b"--b\r\n\r\nnot http\r\n--b--"
            )
            .is_err()
        );
        assert!(boundary("multipart/mixed; boundary=\"q\"").as_deref() == Some("q"));
    }
}
