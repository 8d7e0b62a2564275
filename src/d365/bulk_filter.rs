//! The pure half of bulk reads: the `$filter` that names many orders at
//! once, split so every URL stays short, and the matching of answer rows
//! back to the orders asked for.
//!
//! OData has no `in` on F&O [doc], so a read of many orders is an `or`
//! chain. Orders of one company share one `dataAreaId` test:
//! `dataAreaId eq 'usmf' and (SalesOrderNumber eq 'A' or SalesOrderNumber
//! eq 'B')`, about half the length of one `(… and …)` pair per order.

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::OrderKey;
use super::collection::QUERY_VALUE;

/// Most characters of one encoded `$filter` value. IIS refuses a query
/// string over 2,048 characters by default (`maxQueryString`) [doc]; the
/// rest of the query (`cross-company`, `$select`) is short, and D365's
/// front end may be stricter still, so 1,800 leaves room for both.
pub(crate) const MAX_FILTER_CHARS: usize = 1_800;

/// Most orders in one bulk read, however short their numbers: keeps each
/// answer small (one page, well under the answer size limit) and the
/// database's `OR` plan cheap.
pub(crate) const MAX_KEYS_PER_READ: usize = 100;

/// The order key fields, always selected: rows are matched on them.
pub(crate) const KEY_FIELDS: [&str; 2] = ["dataAreaId", "SalesOrderNumber"];

/// Rows of a bulk read by order (see [`match_id`]).
pub(crate) type RowsByOrder = HashMap<(String, String), Map<String, Value>>;

/// A company (lower-case) and its distinct orders: each number as first
/// asked and the indices of the callers asking for it.
type Company = (String, Vec<(String, Vec<usize>)>);

/// An OData string literal: `'value'` with inner `'` doubled [spec].
fn literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// The test naming one order: what [`filter`] sends and what
/// [`plan_reads`] measures must be the same text.
fn term(number: &str) -> String {
    format!("SalesOrderNumber eq {}", literal(number))
}

/// Characters `raw` takes once percent-encoded as a query value.
fn encoded_len(raw: &str) -> usize {
    percent_encoding::utf8_percent_encode(raw, QUERY_VALUE)
        .map(str::len)
        .sum()
}

/// The `$filter` (not yet encoded) reading every order of `numbers` in
/// company `area`.
pub(crate) fn filter(area: &str, numbers: &[&str]) -> String {
    let terms: Vec<String> = numbers.iter().map(|n| term(n)).collect();
    format!(
        "dataAreaId eq {} and ({})",
        literal(area),
        terms.join(" or ")
    )
}

/// The reads needed for `keys`: each a company and the indices (into
/// `keys`) of its orders, every filter at most `max_chars` encoded (a
/// single key longer than that still gets its own read) and at most
/// `max_keys` orders. The same order asked for twice (in any case) is read
/// once; its indices travel together.
pub(crate) fn plan_reads(keys: &[&OrderKey], max_chars: usize, max_keys: usize) -> Vec<Read> {
    // Distinct orders, grouped by company, in first-asked order.
    let mut companies: Vec<Company> = Vec::new();
    let mut seen: HashMap<(String, String), (usize, usize)> = HashMap::new();
    for (i, key) in keys.iter().enumerate() {
        let id = match_id(&key.data_area_id, &key.sales_order_number);
        if let Some(&(c, o)) = seen.get(&id) {
            companies[c].1[o].1.push(i);
            continue;
        }
        let c = match companies.iter().position(|(a, _)| *a == id.0) {
            Some(c) => c,
            None => {
                companies.push((id.0.clone(), Vec::new()));
                companies.len() - 1
            }
        };
        companies[c]
            .1
            .push((key.sales_order_number.clone(), vec![i]));
        seen.insert(id, (c, companies[c].1.len() - 1));
    }
    let mut reads = Vec::new();
    for (_, orders) in companies {
        let area = &keys[orders[0].1[0]].data_area_id;
        let fixed = encoded_len(&filter(area, &[]));
        let (mut read, mut len) = (Read::new(area), fixed);
        for (number, callers) in orders {
            let term_len = encoded_len(&term(&number));
            let extra = if read.numbers.is_empty() {
                term_len
            } else {
                term_len + encoded_len(" or ")
            };
            if !read.numbers.is_empty()
                && (len + extra > max_chars || read.numbers.len() >= max_keys.max(1))
            {
                reads.push(std::mem::replace(&mut read, Read::new(area)));
                len = fixed;
                len += term_len;
            } else {
                len += extra;
            }
            read.numbers.push(number);
            read.callers.extend(callers);
        }
        reads.push(read);
    }
    reads
}

/// One bulk read: the orders `numbers` of company `area`, asked for by the
/// callers at `callers` (indices into the keys planned).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Read {
    pub(crate) area: String,
    pub(crate) numbers: Vec<String>,
    pub(crate) callers: Vec<usize>,
}

impl Read {
    fn new(area: &str) -> Self {
        Self {
            area: area.to_owned(),
            numbers: Vec::new(),
            callers: Vec::new(),
        }
    }

    /// The `$filter` of this read, not yet encoded.
    pub(crate) fn filter(&self) -> String {
        let numbers: Vec<&str> = self.numbers.iter().map(String::as_str).collect();
        filter(&self.area, &numbers)
    }
}

/// How rows and keys are matched: both parts case-insensitively, as F&O
/// compares them (`dataAreaId` comes back lower-case [obs]; order numbers
/// follow the SQL collation, see [`OrderKey::same_order`]).
fn match_id(area: &str, number: &str) -> (String, String) {
    (area.to_lowercase(), number.to_lowercase())
}

/// The rows of a bulk read by order. A row without both key fields as
/// strings is `Err` (the answer is not what was asked for).
pub(crate) fn rows_by_order(rows: Vec<Map<String, Value>>) -> Result<RowsByOrder, String> {
    let mut by = HashMap::with_capacity(rows.len());
    for row in rows {
        let field = |name: &str| match row.get(name) {
            Some(Value::String(s)) => Ok(s.clone()),
            _ => Err(format!("a row has no string {name}")),
        };
        let id = match_id(&field(KEY_FIELDS[0])?, &field(KEY_FIELDS[1])?);
        by.insert(id, row);
    }
    Ok(by)
}

/// The row of `key` among `rows`, if the read returned it.
pub(crate) fn row_of<'a>(rows: &'a RowsByOrder, key: &OrderKey) -> Option<&'a Map<String, Value>> {
    rows.get(&match_id(&key.data_area_id, &key.sales_order_number))
}

#[cfg(test)]
#[path = "bulk_filter_tests.rs"]
mod tests;
