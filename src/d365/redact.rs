//! The operator's own credentials scrubbed from answers before any of their
//! text is quoted (status, Events, logs). A gateway or a D365 error may
//! echo the `Authorization` header or a form field back.

/// What a credential becomes.
pub(crate) const REDACTED: &str = "[REDACTED]";

/// Replaces every occurrence of each non-empty secret in `body` by
/// [`REDACTED`]. Works on the raw bytes, before parsing and truncation, so
/// a message cut in the middle of a token cannot leave a prefix behind.
pub(crate) fn redact(body: &mut Vec<u8>, secrets: &[&str]) {
    for secret in secrets.iter().map(|s| s.as_bytes()) {
        if secret.is_empty() || find(body, secret).is_none() {
            continue;
        }
        let mut out = Vec::with_capacity(body.len());
        let mut rest = &body[..];
        while let Some(at) = find(rest, secret) {
            out.extend_from_slice(&rest[..at]);
            out.extend_from_slice(REDACTED.as_bytes());
            rest = &rest[at + secret.len()..];
        }
        out.extend_from_slice(rest);
        *body = out;
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redacted(body: &str, secrets: &[&str]) -> String {
        let mut body = body.as_bytes().to_vec();
        redact(&mut body, secrets);
        String::from_utf8(body).unwrap()
    }

    #[test]
    fn every_occurrence_of_every_secret() {
        assert_eq!(
            redacted("Bearer tok x tok; secret=s3 tok", &["tok", "s3"]),
            "Bearer [REDACTED] x [REDACTED]; secret=[REDACTED] [REDACTED]"
        );
        assert_eq!(redacted("nothing here", &["tok", ""]), "nothing here");
        assert_eq!(redacted("tok", &["tok"]), "[REDACTED]");
        assert_eq!(redacted("to", &["tok"]), "to");
    }
}
