//! Object names for exported orders: stable, valid, and distinct.
//!
//! A name is a DNS-1123 *label* (at most 63 characters of `a-z`, `0-9` and
//! `-`, starting and ending alphanumeric), not the longer subdomain form:
//! order numbers are at most 20 characters, so 63 is room enough, and a
//! label is valid wherever a name or a label value is (object names,
//! `kubectl` selectors, Argo CD and Flux resource ids).
//!
//! - An order number that is already such text (case aside) is its own
//!   name: `SO-2025-0001` → `so-2025-0001`.
//! - Anything else is sanitized (other characters become `-`, runs collapse)
//!   and gets `--` plus a hash of the key: `SO/1` → `so-1--<hash>`. A
//!   sanitized name never holds `--`, so the two kinds never meet.
//! - When the export spans several companies, every name starts with its
//!   company (`usmf-so-1`, `demf-so-1`); a company has no `-`, so the prefix
//!   is unambiguous.
//!
//! Names depend only on the key and on whether the export has one company,
//! so re-running an export gives the same names.

use std::collections::{BTreeSet, HashMap};

use crate::d365::OrderKey;

/// Longest DNS-1123 label.
pub const MAX_NAME: usize = 63;
/// Hex digits of the usual hash suffix (40 bits); a collision among them
/// falls back to [`FULL_HASH`].
const SHORT_HASH: usize = 10;
const FULL_HASH: usize = 16;
/// Longest company prefix kept (a dataAreaId has at most 4 characters).
const MAX_COMPANY: usize = 10;

/// Two keys whose names are equal even with the full hash: a 64-bit hash
/// collision, refused rather than resolved silently.
#[derive(Debug, thiserror::Error)]
#[error("orders {first} and {second} get the same object name {name}; export them separately")]
pub struct NameCollision {
    pub first: String,
    pub second: String,
    pub name: String,
}

/// The identity F&O compares: both parts case-insensitively (SQL
/// collation [unverified, likely]); `SO-1` and `so-1` are one order.
pub fn identity(key: &OrderKey) -> (String, String) {
    (
        key.data_area_id.to_lowercase(),
        key.sales_order_number.to_lowercase(),
    )
}

/// One name per key, in the same order. Keys must be distinct by
/// [`identity`] (the caller dedupes); names are then distinct too.
pub fn object_names(keys: &[OrderKey]) -> Result<Vec<String>, NameCollision> {
    let companies: BTreeSet<String> = keys.iter().map(|k| identity(k).0).collect();
    let prefixed = companies.len() > 1;
    let mut names: Vec<String> = keys
        .iter()
        .map(|k| name_for(k, prefixed, SHORT_HASH))
        .collect();
    let mut seen: HashMap<&str, usize> = HashMap::new();
    let mut colliding = BTreeSet::new();
    for (i, name) in names.iter().enumerate() {
        if let Some(&j) = seen.get(name.as_str()) {
            colliding.extend([i, j]);
        } else {
            seen.insert(name, i);
        }
    }
    for &i in &colliding {
        names[i] = name_for(&keys[i], prefixed, FULL_HASH);
    }
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (i, name) in names.iter().enumerate() {
        if let Some(&j) = seen.get(name.as_str()) {
            return Err(NameCollision {
                first: keys[j].to_string(),
                second: keys[i].to_string(),
                name: name.clone(),
            });
        }
        seen.insert(name, i);
    }
    Ok(names)
}

/// The name of one key; `hash_len` hex digits when it needs a hash.
fn name_for(key: &OrderKey, prefixed: bool, hash_len: usize) -> String {
    let (company, number) = identity(key);
    // A company of letters and digits is its own prefix; any other is
    // reduced to them, and the hash tells such companies apart.
    let company_plain = (1..=MAX_COMPANY).contains(&company.len())
        && company
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    let prefix = match prefixed {
        false => String::new(),
        true if company_plain => format!("{company}-"),
        true => {
            let reduced = sanitize(&company, MAX_COMPANY).replace('-', "");
            format!("{}-", if reduced.is_empty() { "co" } else { &reduced })
        }
    };
    let budget = MAX_NAME - prefix.len() - 2 - FULL_HASH;
    let base = sanitize(&number, budget);
    let faithful = !base.is_empty() && base == number && (!prefixed || company_plain);
    if faithful {
        return format!("{prefix}{base}");
    }
    let base = if base.is_empty() { "order" } else { &base };
    format!("{prefix}{base}--{}", &hash(&company, &number)[..hash_len])
}

/// `text` as label characters: lower-case ASCII letters and digits kept,
/// everything else `-`, runs of `-` collapsed, no `-` at either end, at
/// most `max` characters.
fn sanitize(text: &str, max: usize) -> String {
    let mut out = String::new();
    for c in text.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    out.truncate(max);
    out.trim_end_matches('-').to_owned()
}

/// SHA-256 of the identity, as hex: stable across runs, platforms and
/// versions (unlike `std`'s hasher).
fn hash(company: &str, number: &str) -> String {
    let mut input = Vec::with_capacity(company.len() + number.len() + 1);
    input.extend_from_slice(company.as_bytes());
    input.push(0);
    input.extend_from_slice(number.as_bytes());
    let digest = ring::digest::digest(&ring::digest::SHA256, &input);
    digest.as_ref()[..FULL_HASH / 2]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether `name` is a DNS-1123 label.
pub fn is_dns_label(name: &str) -> bool {
    let bytes = name.as_bytes();
    let edge = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    !bytes.is_empty()
        && bytes.len() <= MAX_NAME
        && bytes.first().is_some_and(edge)
        && bytes.last().is_some_and(edge)
        && bytes.iter().all(|b| edge(b) || *b == b'-')
}

#[cfg(test)]
#[path = "names_tests.rs"]
mod tests;
