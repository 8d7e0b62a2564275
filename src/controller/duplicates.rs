//! One writer per order, the pure part: what makes two objects name the
//! same D365 order, and which of them writes. The index in `owners` keeps
//! the candidates; these functions decide.

use std::sync::Arc;

use jiff::Timestamp;
use kube::ResourceExt;

use crate::api::{D365Connection, SalesOrderStatus, SalesOrderStatusSpec};

/// The D365 environment an order is written in.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Environment {
    /// A connection's `spec.url`, normalised by [`environment_url`].
    Url(String),
    /// A connection that is not there or whose URL does not parse: it
    /// reaches nothing yet, so it is only equal to itself.
    Connection { namespace: String, name: String },
}

/// The environment of connection `namespace/name`, given what the cache
/// holds of it.
pub fn environment(conn: Option<&D365Connection>, namespace: &str, name: &str) -> Environment {
    match conn.and_then(|c| environment_url(&c.spec.url)) {
        Some(url) => Environment::Url(url),
        None => Environment::Connection {
            namespace: namespace.into(),
            name: name.into(),
        },
    }
}

/// `spec.url` as one string per environment: scheme and host lower-case,
/// default port, user info, a trailing dot of the host and trailing
/// slashes dropped, dot segments resolved. The path is folded too: F&O runs
/// on IIS, whose paths ignore case, and over-matching only stalls a
/// duplicate while under-matching lets two objects write one order.
/// Query and fragment are ignored: the client refuses such URLs anyway.
pub fn environment_url(raw: &str) -> Option<String> {
    let url = url::Url::parse(raw.trim()).ok()?;
    let host = url.host_str()?.trim_end_matches('.');
    let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
    let path = url.path().trim_end_matches('/').to_lowercase();
    Some(format!("{}://{host}{port}{path}", url.scheme()))
}

/// A key part as F&O's SQL collation compares it: case-insensitive
/// (Unicode-aware, not just ASCII) and blind to trailing spaces.
pub fn fold(key_part: &str) -> String {
    key_part.trim_end_matches(' ').to_lowercase()
}

/// The D365 order a spec names, up to the environment: folded company and
/// order number. Shared strings: the owner index keeps each key twice.
pub type OrderKey = (Arc<str>, Arc<str>);

pub fn order_key(spec: &SalesOrderStatusSpec) -> OrderKey {
    (
        fold(&spec.data_area_id).into(),
        fold(&spec.sales_order_number).into(),
    )
}

/// One object's claim on an order: what the owner choice needs of it.
/// Shared strings: the owner index keeps one claim per order, with the
/// namespace and connection interned (issue 12: memory per order).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    pub namespace: Arc<str>,
    pub name: Arc<str>,
    /// Its D365Connection, in its namespace.
    pub connection: Arc<str>,
    pub created: Option<Timestamp>,
    pub uid: Option<String>,
    /// Being deleted: it no longer owns anything.
    pub deleting: bool,
}

impl Claim {
    pub fn of(order: &SalesOrderStatus) -> Self {
        Self {
            namespace: order.namespace().unwrap_or_default().into(),
            name: order.name_any().into(),
            connection: order.spec.connection_ref.name.as_str().into(),
            created: order.metadata.creation_timestamp.as_ref().map(|t| t.0),
            uid: order.uid(),
            deleting: order.metadata.deletion_timestamp.is_some(),
        }
    }

    /// The same object (namespace and name).
    pub fn is(&self, other: &Claim) -> bool {
        self.namespace == other.namespace && self.name == other.name
    }

    /// Older first; an unknown age never displaces a known one; ties by
    /// namespace, then name.
    fn rank(&self) -> (bool, Option<Timestamp>, &str, &str) {
        (
            self.created.is_none(),
            self.created,
            &self.namespace,
            &self.name,
        )
    }

    /// Whether `self` would own the order before `other`.
    pub fn outranks(&self, other: &Claim) -> bool {
        self.rank() < other.rank()
    }
}

impl std::fmt::Display for Claim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// The claim among `others` that owns the order `me` names, when it is
/// not `me`. `others` name the same [`OrderKey`]; only those whose
/// connection reaches `me`'s environment compete, and objects being
/// deleted own nothing.
pub fn owner_other_than<'a>(
    me: &Claim,
    others: &'a [Claim],
    environment: impl Fn(&Claim) -> Environment,
) -> Option<&'a Claim> {
    let mine = environment(me);
    let owner = others
        .iter()
        .filter(|c| !c.is(me) && !c.deleting && environment(c) == mine)
        .min_by(|a, b| a.rank().cmp(&b.rank()))?;
    (me.deleting || owner.outranks(me)).then_some(owner)
}

#[cfg(test)]
#[path = "duplicates_tests.rs"]
mod tests;
