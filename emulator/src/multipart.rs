//! Hand-written multipart/mixed reading and writing for OData `$batch`
//! [doc][spec]. No crate fits the nested shape (a changeset is a multipart
//! inside a part, each leaf an `application/http` message), and
//! multer targets form-data and async streams.

use thiserror::Error;

#[derive(Debug, Error, PartialEq)]
pub enum MultipartError {
    #[error("The batch request must have a Content-Type of multipart/mixed with a boundary.")]
    NoBoundary,
    #[error("The batch request body is not valid multipart: {0}")]
    Malformed(String),
}

/// One body part: its headers and raw content.
#[derive(Debug, Clone, PartialEq)]
pub struct Part {
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Part {
    /// First header of that name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }
}

pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// The `boundary` parameter of a multipart/mixed content type.
pub fn boundary(content_type: &str) -> Option<String> {
    let mut parts = content_type.split(';');
    let kind = parts.next()?.trim();
    if !kind.eq_ignore_ascii_case("multipart/mixed") {
        return None;
    }
    parts.find_map(|p| {
        let (k, v) = p.trim().split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| v.trim().trim_matches('"').to_string())
    })
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    (from..=hay.len() - needle.len()).find(|&i| &hay[i..i + needle.len()] == needle)
}

/// Splits a multipart body into its parts (CRLF or bare LF tolerated).
pub fn split(body: &[u8], boundary: &str) -> Result<Vec<Part>, MultipartError> {
    let delim = format!("--{boundary}").into_bytes();
    let mut starts = Vec::new();
    let mut from = 0;
    while let Some(i) = find(body, &delim, from) {
        if i == 0 || body[i - 1] == b'\n' {
            starts.push(i);
        }
        from = i + delim.len();
    }
    if starts.is_empty() {
        return Err(MultipartError::Malformed(
            "no boundary delimiter found".into(),
        ));
    }
    let mut parts = Vec::new();
    for (n, &s) in starts.iter().enumerate() {
        let after = s + delim.len();
        if body[after..].starts_with(b"--") {
            return Ok(parts);
        }
        let Some(&next) = starts.get(n + 1) else {
            return Err(MultipartError::Malformed(
                "missing closing delimiter".into(),
            ));
        };
        // Skip the rest of the delimiter line.
        let line_end = find(body, b"\n", after).map_or(next, |i| i + 1).min(next);
        let mut seg = &body[line_end..next];
        seg = seg.strip_suffix(b"\n").unwrap_or(seg);
        seg = seg.strip_suffix(b"\r").unwrap_or(seg);
        parts.push(parse_part(seg));
    }
    Err(MultipartError::Malformed(
        "missing closing delimiter".into(),
    ))
}

/// Splits header lines from content at the first blank line.
fn split_head(seg: &[u8]) -> (Vec<(String, String)>, Vec<u8>) {
    let (head, body) = match (find(seg, b"\r\n\r\n", 0), find(seg, b"\n\n", 0)) {
        (Some(a), Some(b)) if b < a => (&seg[..b], &seg[b + 2..]),
        (Some(a), _) => (&seg[..a], &seg[a + 4..]),
        (None, Some(b)) => (&seg[..b], &seg[b + 2..]),
        (None, None) => (seg, &[][..]),
    };
    let headers = String::from_utf8_lossy(head)
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            Some((k.trim().to_string(), v.trim().to_string()))
        })
        .collect();
    (headers, body.to_vec())
}

fn parse_part(seg: &[u8]) -> Part {
    let (headers, body) = split_head(seg);
    Part { headers, body }
}

/// An `application/http` request inside a batch.
#[derive(Debug, Clone, PartialEq)]
pub struct InnerRequest {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Parses `METHOD target HTTP/1.1`, headers, blank line, body.
pub fn parse_request(raw: &[u8]) -> Result<InnerRequest, MultipartError> {
    let line_end = find(raw, b"\n", 0).unwrap_or(raw.len());
    let line = String::from_utf8_lossy(&raw[..line_end]);
    let mut words = line.split_whitespace();
    let (Some(method), Some(target)) = (words.next(), words.next()) else {
        return Err(MultipartError::Malformed(format!(
            "bad request line '{}'",
            line.trim()
        )));
    };
    let rest = raw.get(line_end + 1..).unwrap_or_default();
    // A request with no headers has its blank line right away.
    let (headers, mut body) = if rest.starts_with(b"\r\n") || rest.starts_with(b"\n") {
        (Vec::new(), rest.to_vec())
    } else {
        split_head(rest)
    };
    while body.last().is_some_and(|b| b.is_ascii_whitespace()) {
        body.pop();
    }
    let start = body
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(body.len());
    Ok(InnerRequest {
        method: method.to_string(),
        target: target.to_string(),
        headers,
        body: body[start..].to_vec(),
    })
}

/// Writes one `application/http` response part.
pub fn write_response_part(
    out: &mut Vec<u8>,
    boundary: &str,
    content_id: Option<&str>,
    status: u16,
    headers: &[(&str, String)],
    body: &[u8],
) {
    out.extend_from_slice(format!("--{boundary}\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n").as_bytes());
    if let Some(id) = content_id {
        out.extend_from_slice(format!("Content-ID: {id}\r\n").as_bytes());
    }
    out.extend_from_slice(
        format!("\r\nHTTP/1.1 {status} {}\r\n", crate::odata::reason(status)).as_bytes(),
    );
    for (k, v) in headers {
        out.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested() {
        let body = "--b1\r\nContent-Type: multipart/mixed; boundary=c1\r\n\r\n--c1\r\nContent-Type: application/http\r\nContent-ID: 1\r\n\r\nPATCH X HTTP/1.1\r\nIf-Match: *\r\n\r\n{\"a\":1}\r\n--c1--\r\n\r\n--b1\nContent-Type: application/http\n\nGET Y HTTP/1.1\n\n\n--b1--\r\n";
        let parts = split(body.as_bytes(), "b1").unwrap();
        assert_eq!(parts.len(), 2);
        let inner_b = boundary(parts[0].header("content-type").unwrap()).unwrap();
        let inner = split(&parts[0].body, &inner_b).unwrap();
        assert_eq!(inner.len(), 1);
        assert_eq!(inner[0].header("Content-ID"), Some("1"));
        let req = parse_request(&inner[0].body).unwrap();
        assert_eq!((req.method.as_str(), req.target.as_str()), ("PATCH", "X"));
        assert_eq!(header(&req.headers, "if-match"), Some("*"));
        assert_eq!(req.body, b"{\"a\":1}");
        let get = parse_request(&parts[1].body).unwrap();
        assert_eq!(get.method, "GET");
        assert!(get.body.is_empty());
    }
}
