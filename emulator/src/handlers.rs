//! `/data/...` handlers: entity GET/PATCH by key, collection queries,
//! `$count`, service document and a small `$metadata`.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State as AxState};
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::batch;
use crate::entity::{ENTITY_SET, Order};
use crate::keys::{KeyError, Resource, parse_resource};
use crate::odata::{
    ODataError, bytes_response, empty_response, json_response, web_api_not_found_response,
};
use crate::query::{self, Query, encode_skiptoken};
use crate::read::{context, patched_body, read_entity};
use crate::state::State;
use crate::write::{self, PatchOp, Patched};

/// Largest request body accepted (a `$batch` of 5,000 operations fits) [doc].
pub const BODY_LIMIT: usize = 64 * 1024 * 1024;

/// Which order a request addressed; read by the request recorder.
#[derive(Clone, Debug)]
pub struct Touched {
    pub area: String,
    pub number: String,
}

/// The order numbers a collection page answered (a bulk read names many
/// orders at once); read by the request recorder.
#[derive(Clone, Debug)]
pub struct Answered(pub Vec<String>);

/// Entry point for everything under `/data/`.
pub async fn data(AxState(state): AxState<Arc<State>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let raw_path = parts.uri.path().strip_prefix("/data").unwrap_or_default();
    let raw_path = raw_path.strip_prefix('/').unwrap_or(raw_path);
    let resource = match parse_resource(raw_path) {
        Ok(r) => r,
        Err(KeyError::NoRoute(path)) => {
            let url = format!("{}/data/{path}", state.env_url(&parts.headers));
            return web_api_not_found_response(&url);
        }
        Err(e) => {
            return ODataError::new(e.status(), e.to_string(), crate::odata::PROTOCOL_EXCEPTION)
                .into_response();
        }
    };
    let q = match query::parse(parts.uri.query()) {
        Ok(mut q) => {
            q.base = state.env_url(&parts.headers);
            q.agent = parts
                .headers
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            q
        }
        Err(e) => return ODataError::bad_request(e.to_string()).into_response(),
    };
    let bytes = match axum::body::to_bytes(body, BODY_LIMIT).await {
        Ok(b) => b,
        Err(_) => {
            return ODataError::new(
                413,
                "Request body too large.",
                crate::odata::PROTOCOL_EXCEPTION,
            )
            .into_response();
        }
    };
    let method = parts.method.clone();
    match (resource, method) {
        (Resource::Entity(area, number), m) => {
            let mut r = match m {
                Method::GET => get_entity(&state, &area, &number, &q),
                Method::PATCH => patch_entity(&state, &area, &number, &q, &parts.headers, &bytes),
                other => not_supported(&other),
            };
            r.extensions_mut().insert(Touched {
                area: area.to_lowercase(),
                number,
            });
            r
        }
        (Resource::Collection, Method::GET) => collection(&state, &q, &parts.headers),
        (Resource::Count, Method::GET) => count(&state, &q),
        (Resource::Batch, Method::POST) => batch::handle(&state, &q, &parts.headers, &bytes),
        (Resource::ServiceRoot, Method::GET) => json_response(
            200,
            &json!({"@odata.context": format!("{}/data/$metadata", q.base),
                    "value": [{"name": ENTITY_SET, "kind": "EntitySet", "url": ENTITY_SET}]}),
        ),
        (Resource::Metadata, Method::GET) => crate::metadata::document(&state.faults()),
        (_, other) => not_supported(&other),
    }
}

fn not_supported(m: &Method) -> Response {
    ODataError::new(
        405,
        format!("The HTTP method '{m}' is not supported by the emulator for this resource."),
        crate::odata::PROTOCOL_EXCEPTION,
    )
    .into_response()
}

/// Single entity GET [doc]; `ETag` header switchable [unverified].
pub fn get_entity(state: &State, area: &str, number: &str, q: &Query) -> Response {
    match read_entity(state, area, number, q) {
        Ok((body, etag)) => {
            let mut r = bytes_response(200, body);
            if state.faults().get_etag_header {
                set_etag(&mut r, &etag);
            }
            r
        }
        Err(e) => e.into_response(),
    }
}

pub fn set_etag(r: &mut Response, etag: &str) {
    if let Ok(v) = HeaderValue::from_str(etag) {
        r.headers_mut().insert(header::ETAG, v);
    }
}

fn patch_entity(
    state: &State,
    area: &str,
    number: &str,
    q: &Query,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let if_match = headers.get(header::IF_MATCH).and_then(|v| v.to_str().ok());
    let op = PatchOp {
        area,
        number,
        if_match,
        body,
        cross_company: q.cross_company,
        agent: q.agent.as_deref(),
    };
    let prefer = headers.get("Prefer").and_then(|v| v.to_str().ok());
    let prefer_entity = representation_applied(&state.faults(), prefer);
    match write::patch(state, &op, false) {
        Ok(done) => patched_response(state, q, done, prefer_entity),
        Err(e) => e.into_response(),
    }
}

/// Whether a PATCH's answer carries the entity because its `Prefer`
/// header asks for it and the switch honours that (alone or in a `$batch`).
pub fn representation_applied(faults: &crate::Faults, prefer: Option<&str>) -> bool {
    faults.honour_return_representation
        && prefer.is_some_and(|p| {
            p.split(',')
                .any(|p| p.trim().eq_ignore_ascii_case("return=representation"))
        })
}

/// 204 empty [obs], or 200 with the entity when switched on or asked
/// for with `Prefer: return=representation` [spec] (and honoured).
pub fn patched_response(state: &State, q: &Query, done: Patched, prefer_entity: bool) -> Response {
    let faults = state.faults();
    let mut r = if done.status == 200 || prefer_entity {
        let ctx = context(&q.base, q.select.as_deref(), true);
        bytes_response(
            200,
            patched_body(&done.order, &ctx, &faults.date_only_fields),
        )
    } else {
        empty_response(204)
    };
    if prefer_entity {
        r.headers_mut().insert(
            "Preference-Applied",
            HeaderValue::from_static("return=representation"),
        );
    }
    if faults.patch_etag_header {
        set_etag(&mut r, &done.order.etag);
    }
    r
}

/// Matching rows in answer order (key order unless `$orderby`).
fn matching<'a>(state: &State, q: &Query, table: &'a crate::store::Table) -> Vec<&'a Order> {
    let exact = state.faults().case_sensitive_order_numbers;
    let candidates: Box<dyn Iterator<Item = &Order>> =
        match q.filter.as_ref().and_then(|f| f.key_candidates()) {
            Some(pairs) => {
                let mut keys: Vec<_> = pairs
                    .iter()
                    .map(|(area, number)| crate::store::key(area, number))
                    .collect();
                keys.sort();
                keys.dedup();
                Box::new(keys.into_iter().filter_map(|k| table.get(&k).map(|o| &**o)))
            }
            None => Box::new(table.values().map(|o| &**o)),
        };
    let mut rows: Vec<&Order> = candidates
        .filter(|o| state.visible(o.area(), q.cross_company))
        .filter(|o| q.filter.as_ref().is_none_or(|f| f.eval(o, exact)))
        .collect();
    if !q.orderby.is_empty() {
        rows.sort_by(|a, b| {
            for (name, desc) in &q.orderby {
                let ord = compare(a.get(name), b.get(name));
                let ord = if *desc { ord.reverse() } else { ord };
                if ord.is_ne() {
                    return ord;
                }
            }
            std::cmp::Ordering::Equal
        });
    }
    rows
}

fn compare(a: Option<&Value>, b: Option<&Value>) -> std::cmp::Ordering {
    match (a, b) {
        (Some(Value::Number(x)), Some(Value::Number(y))) => x
            .as_f64()
            .partial_cmp(&y.as_f64())
            .unwrap_or(std::cmp::Ordering::Equal),
        (Some(Value::String(x)), Some(Value::String(y))) => x.cmp(y),
        _ => std::cmp::Ordering::Equal,
    }
}

/// Collection GET with server-driven paging [doc]: at most the configured
/// page size (or a smaller `Prefer: odata.maxpagesize`) per answer, then
/// an opaque `@odata.nextLink`.
fn collection(state: &State, q: &Query, headers: &HeaderMap) -> Response {
    let mut page_size = state.config.page_size.max(1);
    if let Some(max) = headers
        .get("Prefer")
        .and_then(|v| v.to_str().ok())
        .and_then(|p| {
            p.split(',')
                .find_map(|x| x.trim().strip_prefix("odata.maxpagesize="))
        })
        .and_then(|n| n.trim().parse::<usize>().ok())
    {
        page_size = page_size.min(max.max(1));
    }
    let faults = state.faults();
    let dates = &faults.date_only_fields;
    let table = state.store.read();
    let rows = matching(state, q, &table);
    let total = rows.len();
    let start = q.skip.min(total);
    let wanted_end = q.top.map_or(total, |t| start.saturating_add(t).min(total));
    let end = wanted_end.min(start + page_size);
    let next_link = (end < wanted_end).then(|| {
        let remaining_top = q.top.map(|_| wanted_end - end);
        let mut params = q.carry.clone();
        params.push(format!(
            "$skiptoken={}",
            encode_skiptoken(end, remaining_top)
        ));
        format!("{}/data/{ENTITY_SET}?{}", q.base, params.join("&"))
    });
    let page = Page {
        context: context(&q.base, q.select.as_deref(), false),
        count: q.count.then_some(total),
        rows: &rows[start..end],
        select: q.select.as_deref(),
        next_link,
        dates,
    };
    let body = serde_json::to_vec(&page).unwrap_or_default();
    let answered = Answered(page.rows.iter().map(|o| o.number().to_owned()).collect());
    drop(table);
    let mut response = bytes_response(200, body);
    response.extensions_mut().insert(answered);
    response
}

/// One page of a collection answer, serialized without an intermediate map.
struct Page<'a> {
    context: String,
    count: Option<usize>,
    rows: &'a [&'a Order],
    select: Option<&'a [String]>,
    next_link: Option<String>,
    dates: &'a [String],
}

impl serde::Serialize for Page<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("@odata.context", &self.context)?;
        if let Some(c) = self.count {
            m.serialize_entry("@odata.count", &c)?;
        }
        let views: Vec<_> = self
            .rows
            .iter()
            .map(|o| o.view(self.select, None).dated(self.dates))
            .collect();
        m.serialize_entry("value", &views)?;
        if let Some(l) = &self.next_link {
            m.serialize_entry("@odata.nextLink", l)?;
        }
        m.end()
    }
}

/// `/SalesOrderHeadersV2/$count` [spec]: a plain-text number.
fn count(state: &State, q: &Query) -> Response {
    let n = matching(state, q, &state.store.read()).len();
    let mut r = Response::new(Body::from(n.to_string()));
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    r.headers_mut()
        .insert("OData-Version", HeaderValue::from_static("4.0"));
    r
}
