//! Collection reads: `GET <set>?cross-company=true&$select=…&$filter=…`,
//! one page per call, following server-driven paging (`@odata.nextLink`,
//! up to 10,000 rows a page [doc]). Used by `export` to list orders.

use serde_json::{Map, Value};
use url::Url;

use super::D365Error;
use super::client::D365Client;
use super::sender::ODataRequest;
use super::settings::check_select;

/// Characters of a query *value* that stay literal: RFC 3986 unreserved
/// ones. Everything else (space, `'`, `+`, `&`, `#`, `=`, non-ASCII) is
/// percent-encoded, so a `$filter` arrives exactly as written: a literal
/// `+` would be read as a space, an `&` would end the option.
pub(super) const QUERY_VALUE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// One page's rows, OData annotations removed.
type Rows = Vec<Map<String, Value>>;

/// The pages of one collection read, fetched one at a time so a large
/// export holds one page in memory, never the whole answer.
#[derive(Debug)]
pub struct OrderPages {
    client: D365Client,
    /// Where `@odata.nextLink` may point: the OData root of the connection.
    /// The bearer token goes with every page, so a link elsewhere (another
    /// host, scheme or port) is refused, never followed.
    root: Url,
    next: Option<Url>,
    pages: usize,
}

impl D365Client {
    /// A read of every order `filter` (an OData `$filter`, passed through
    /// as written, percent-encoded) matches, across companies, with only
    /// the `select`ed properties. Enum literals in `filter` must be
    /// qualified: `SalesOrderStatus eq
    /// Microsoft.Dynamics.DataEntities.SalesStatus'Backorder'` [doc].
    /// Sends nothing until [`OrderPages::next_page`].
    pub fn order_pages(
        &self,
        select: &[&str],
        filter: Option<&str>,
    ) -> Result<OrderPages, D365Error> {
        check_select(select)?;
        let root = self.settings().odata_root();
        let mut url = self.settings().collection_url()?;
        url.set_query(Some(&collection_query(select, filter)));
        Ok(OrderPages {
            client: self.clone(),
            root,
            next: Some(url),
            pages: 0,
        })
    }
}

/// `cross-company=true&$select=a,b&$filter=<encoded>`.
fn collection_query(select: &[&str], filter: Option<&str>) -> String {
    let mut query = "cross-company=true".to_owned();
    if !select.is_empty() {
        query.push_str("&$select=");
        query.push_str(&select.join(","));
    }
    if let Some(filter) = filter.map(str::trim).filter(|f| !f.is_empty()) {
        query.push_str("&$filter=");
        query.extend(percent_encoding::utf8_percent_encode(filter, QUERY_VALUE));
    }
    query
}

impl OrderPages {
    /// Pages read so far.
    pub fn pages(&self) -> usize {
        self.pages
    }

    /// The rows of the next page (OData annotations removed), or `None`
    /// after the last. Each page is one request through the connection's
    /// limiter, read within its answer size limit.
    pub async fn next_page(&mut self) -> Result<Option<Rows>, D365Error> {
        let Some(url) = self.next.take() else {
            return Ok(None);
        };
        let request = ODataRequest::get(url.clone());
        let answer = self.client.sender().execute(&request).await?;
        let what = format!(
            "GET {} (page {})",
            self.client.settings().entity_set,
            self.pages + 1
        );
        let body = answer.json.ok_or_else(|| {
            D365Error::invalid(format!(
                "{what}: answer {} is not a JSON object",
                answer.status
            ))
        })?;
        let (rows, next) = split_page(body, &url, &self.root)
            .map_err(|why| D365Error::invalid(format!("{what}: {why}")))?;
        self.pages += 1;
        self.next = next;
        Ok(Some(rows))
    }
}

/// A page's rows and the next page's URL, checked: the link must stay
/// under `root` (same scheme, host and port, same path prefix) and must
/// not repeat the page just read (a loop).
fn split_page(
    mut body: Map<String, Value>,
    current: &Url,
    root: &Url,
) -> Result<(Rows, Option<Url>), String> {
    let rows = match body.remove("value") {
        Some(Value::Array(rows)) => rows,
        _ => return Err("no \"value\" array in the answer".into()),
    };
    let rows = rows
        .into_iter()
        .map(|row| match row {
            Value::Object(mut row) => {
                row.retain(|name, _| !name.starts_with("@odata."));
                Ok(row)
            }
            other => Err(format!("a row is not a JSON object: {other}")),
        })
        .collect::<Result<Vec<_>, _>>()?;
    let next = match body.get("@odata.nextLink") {
        None | Some(Value::Null) => None,
        Some(Value::String(link)) => Some(next_link(link, current, root)?),
        Some(other) => return Err(format!("@odata.nextLink is not a string: {other}")),
    };
    Ok((rows, next))
}

/// `link` resolved against the page it came in, if it may be followed.
pub(super) fn next_link(link: &str, current: &Url, root: &Url) -> Result<Url, String> {
    let next = current
        .join(link)
        .map_err(|e| format!("@odata.nextLink is not a URL ({e})"))?;
    let userinfo = !next.username().is_empty() || next.password().is_some();
    if userinfo || next.origin() != root.origin() || !next.path().starts_with(root.path()) {
        return Err(format!(
            "@odata.nextLink leaves the environment ({} is not under {root}); \
             not followed, the access token would go with it",
            next.origin().ascii_serialization()
        ));
    }
    if next == *current {
        return Err("@odata.nextLink repeats the page just read (a paging loop)".into());
    }
    Ok(next)
}

#[cfg(test)]
#[path = "collection_tests.rs"]
mod tests;
