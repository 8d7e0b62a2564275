//! The OData key of one sales order header and its URL form.

use std::fmt;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// Characters of a key *value* that stay literal in the URL: RFC 3986
/// unreserved characters, plus `'`, which only ever appears doubled (`''`)
/// by the time we encode and which is legal in a path segment. Everything
/// else — space, `/`, `#`, `?`, `%`, `(`, `)`, `,`, `=`, non-ASCII — is
/// percent-encoded so a value can never end the segment or the key early.
const KEY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'\'');

/// Identifies one `SalesOrderHeaderV2`: D365 needs every key field, and
/// `dataAreaId` (the legal entity) is part of the key.
///
/// `dataAreaId` is kept as given: D365 answers it lower-case whatever case
/// was asked, so compare it case-insensitively (see
/// [`OrderKey::same_order`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OrderKey {
    pub data_area_id: String,
    pub sales_order_number: String,
}

impl OrderKey {
    pub fn new(data_area_id: impl Into<String>, sales_order_number: impl Into<String>) -> Self {
        Self {
            data_area_id: data_area_id.into(),
            sales_order_number: sales_order_number.into(),
        }
    }

    /// The URL path segment addressing this order in `entity_set`, e.g.
    /// `SalesOrderHeadersV2(dataAreaId='USMF',SalesOrderNumber='SO-1')`.
    /// Each value has its `'` doubled (OData string literal), then is
    /// percent-encoded [spec]; `/`, `\`, `+` and `%` twice, because F&O
    /// decodes the path once before OData decodes it again (see
    /// [`quote_value`]). The entity set name is trusted (validated with the
    /// settings).
    pub fn path_segment(&self, entity_set: &str) -> String {
        format!(
            "{entity_set}(dataAreaId={},SalesOrderNumber={})",
            quote_value(&self.data_area_id),
            quote_value(&self.sales_order_number)
        )
    }

    /// Whether both keys name the same order: `dataAreaId` compares
    /// case-insensitively because D365 lower-cases it [obs], and so does
    /// the order number, as F&O's SQL collation does (`so-1` is `SO-1`)
    /// [unverified, likely]: treating two spellings as one order can only
    /// make the operator refuse a duplicate, never write one order twice.
    pub fn same_order(&self, other: &OrderKey) -> bool {
        self.data_area_id.eq_ignore_ascii_case(&other.data_area_id)
            && self
                .sales_order_number
                .to_lowercase()
                .eq(&other.sales_order_number.to_lowercase())
    }
}

/// `USMF/SO-2025-0145`: short and unambiguous in logs and messages.
impl fmt::Display for OrderKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.data_area_id, self.sales_order_number)
    }
}

/// An OData string literal for a URL: `'value'`, inner quotes doubled, then
/// percent-encoded. F&O (IIS/ASP.NET routing) decodes the path once before
/// OData decodes it again [field report]: a once-encoded `/` or `\` would
/// split the path and match no route (404), a `+` would reach OData as a
/// space, a `%` would be decoded twice. Those four are encoded twice
/// (`%252F`, `%255C`, `%252B`, `%2525`); everything else survives the
/// first decoding harmlessly.
fn quote_value(value: &str) -> String {
    let doubled = value.replace('\'', "''");
    let mut out = String::with_capacity(doubled.len() + 2);
    out.push('\'');
    for (i, c) in doubled.char_indices() {
        match c {
            '/' | '\\' | '+' | '%' => out.push_str(&format!("%25{:02X}", c as u32)),
            _ => out.extend(utf8_percent_encode(
                &doubled[i..i + c.len_utf8()],
                KEY_VALUE,
            )),
        }
    }
    out.push('\'');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(area: &str, number: &str) -> String {
        OrderKey::new(area, number).path_segment("SalesOrderHeadersV2")
    }

    #[test]
    fn plain_key() {
        assert_eq!(
            seg("USMF", "SO-2025-0145"),
            "SalesOrderHeadersV2(dataAreaId='USMF',SalesOrderNumber='SO-2025-0145')"
        );
    }

    #[test]
    fn quotes_are_doubled_not_encoded() {
        assert_eq!(
            seg("usmf", "O'Brien"),
            "SalesOrderHeadersV2(dataAreaId='usmf',SalesOrderNumber='O''Brien')"
        );
        assert_eq!(
            seg("usmf", "''"),
            "SalesOrderHeadersV2(dataAreaId='usmf',SalesOrderNumber='''''')"
        );
    }

    #[test]
    fn reserved_and_unicode_are_percent_encoded() {
        let table = [
            ("SO 1", "'SO%201'"),
            ("SO/1", "'SO%252F1'"),
            ("SO/2025/0145", "'SO%252F2025%252F0145'"),
            ("a\\b+c", "'a%255Cb%252Bc'"),
            ("SO#1", "'SO%231'"),
            ("SO?1", "'SO%3F1'"),
            ("SO%1", "'SO%25251'"),
            ("a,b=c", "'a%2Cb%3Dc'"),
            ("(x)", "'%28x%29'"),
            ("Ü-1", "'%C3%9C-1'"),
            ("It's 1/2", "'It''s%201%252F2'"),
            ("a_b.c~d", "'a_b.c~d'"),
        ];
        for (raw, want) in table {
            assert_eq!(quote_value(raw), want, "value {raw:?}");
        }
    }

    #[test]
    fn encoded_segment_survives_url_parsing_unchanged() {
        let segment = seg("usmf", "Ü 'x'/#?");
        let url = url::Url::parse(&format!("https://h.example/data/{segment}")).unwrap();
        assert_eq!(url.path(), format!("/data/{segment}"));
        assert_eq!(url.query(), None);
        assert_eq!(url.fragment(), None);
    }

    #[test]
    fn display_and_same_order() {
        let a = OrderKey::new("USMF", "SO-1");
        assert_eq!(a.to_string(), "USMF/SO-1");
        assert!(a.same_order(&OrderKey::new("usmf", "SO-1")));
        assert!(a.same_order(&OrderKey::new("usmf", "so-1")));
        assert!(!a.same_order(&OrderKey::new("usmf", "SO-2")));
    }
}
