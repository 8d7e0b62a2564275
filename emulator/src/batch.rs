//! `POST /data/$batch` [doc][obs]: multipart/mixed with changesets. A
//! changeset is atomic (all or nothing); the batch answers 200 even when a
//! changeset fails. As ASP.NET OData does [obs][spec]: a failed changeset
//! is answered by a nested changeset holding just the failing response
//! (status and D365's error JSON), and processing stops at the first
//! failed changeset or request — later ones get no answer at all — unless
//! the request says `Prefer: odata.continue-on-error` and the
//! `honourContinueOnError` switch is on ([unverified] for F&O). Requests
//! outside changesets run one by one. JSON batch is [unverified] and not
//! emulated.

use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use rand::RngCore;
use thiserror::Error;

use crate::keys::{KeyError, Resource, parse_resource};
use crate::multipart::{self, InnerRequest, MultipartError, Part, write_response_part};
use crate::odata::{
    JSON_CONTENT_TYPE, ODataError, PROTOCOL_EXCEPTION, WEB_API_CONTENT_TYPE, web_api_not_found,
};
use crate::query;
use crate::query::Query;
use crate::read::{context, patched_body, read_entity};
use crate::state::State;
use crate::write::{self, PatchOp, Patched};

/// Most operations in one batch [doc].
pub const MAX_OPERATIONS: usize = 5_000;

#[derive(Debug, Error)]
pub enum BatchError {
    #[error(transparent)]
    Multipart(#[from] MultipartError),
    #[error("The batch has {0} operations; at most {MAX_OPERATIONS} are allowed.")]
    TooMany(usize),
    #[error("Only GET and PATCH of {0} are supported in a batch; got '{1}'.")]
    Method(&'static str, String),
}

/// One leaf request resolved to an entity key.
struct Op {
    content_id: Option<String>,
    req: InnerRequest,
    area: String,
    number: String,
    query: query::Query,
}

type Answer = (u16, Vec<(&'static str, String)>, Vec<u8>);

pub fn handle(state: &State, outer: &Query, headers: &HeaderMap, body: &[u8]) -> Response {
    match run(state, outer, headers, body) {
        Ok(resp) => resp,
        Err(e) => ODataError::bad_request(e.to_string()).into_response(),
    }
}

fn run(
    state: &State,
    outer: &Query,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, BatchError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let b = multipart::boundary(ct).ok_or(MultipartError::NoBoundary)?;
    let parts = multipart::split(body, &b)?;
    let mut units: Vec<Result<Vec<Part>, Part>> = Vec::new();
    let mut count = 0;
    for p in parts {
        match p.header("Content-Type").and_then(multipart::boundary) {
            Some(cb) => {
                let inner = multipart::split(&p.body, &cb)?;
                count += inner.len();
                units.push(Ok(inner));
            }
            None => {
                count += 1;
                units.push(Err(p));
            }
        }
    }
    if count > MAX_OPERATIONS {
        return Err(BatchError::TooMany(count));
    }
    let go_on = continue_on_error(headers) && state.faults().honour_continue_on_error;
    let out_b = format!("batchresponse_{}", random_hex());
    let mut out = Vec::new();
    for unit in units {
        let ok = match unit {
            Ok(changeset) => run_changeset(state, outer, &changeset, &out_b, &mut out),
            Err(single) => run_single(state, outer, &single, &out_b, &mut out),
        };
        if !ok && !go_on {
            break;
        }
    }
    out.extend_from_slice(format!("--{out_b}--\r\n").as_bytes());
    let mut r = (axum::http::StatusCode::OK, out).into_response();
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&format!("multipart/mixed; boundary={out_b}")) {
        h.insert(header::CONTENT_TYPE, v);
    }
    h.insert("OData-Version", HeaderValue::from_static("4.0"));
    if go_on {
        h.insert(
            "Preference-Applied",
            HeaderValue::from_static("odata.continue-on-error"),
        );
    }
    Ok(r)
}

/// Whether a `Prefer` header asks to go on past failures [spec]
/// (`odata.continue-on-error` in 4.0, `continue-on-error` in 4.01).
fn continue_on_error(headers: &HeaderMap) -> bool {
    headers
        .get_all("Prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|p| p.split(';').next().unwrap_or_default().trim())
        .any(|p| {
            let p = p.split('=').next().unwrap_or_default().trim();
            p.eq_ignore_ascii_case("odata.continue-on-error")
                || p.eq_ignore_ascii_case("continue-on-error")
        })
}

/// Runs one request outside a changeset and writes its answer; false when
/// it failed.
fn run_single(state: &State, outer: &Query, single: &Part, out_b: &str, out: &mut Vec<u8>) -> bool {
    let (id, ans) = match to_op(outer, single) {
        Ok(op) => {
            let ans = if op.req.method == "GET" {
                get(state, &op)
            } else {
                patch_one(state, &op)
            };
            (op.content_id, ans)
        }
        Err(ans) => (single.header("Content-ID").map(str::to_string), ans),
    };
    write_response_part(out, out_b, id.as_deref(), ans.0, &ans.1, &ans.2);
    ans.0 < 400
}

fn random_hex() -> String {
    let mut b = [0u8; 8];
    rand::rng().fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Resolves a part to an operation on one entity, or the answer to its
/// failure.
fn to_op(outer: &Query, part: &Part) -> Result<Op, Answer> {
    let req = multipart::parse_request(&part.body)
        .map_err(|e| error_answer(ODataError::bad_request(e.to_string())))?;
    if req.method != "GET" && req.method != "PATCH" {
        return Err(error_answer(ODataError::new(
            405,
            BatchError::Method("entities", req.method.clone()).to_string(),
            PROTOCOL_EXCEPTION,
        )));
    }
    // Absolute URL, absolute path, or relative to the service root.
    let mut target = req.target.as_str();
    if let Some(i) = target.find("://") {
        target = target[i + 3..]
            .find('/')
            .map_or("", |j| &target[i + 3 + j..]);
    }
    let target = target
        .strip_prefix("/data/")
        .or_else(|| target.strip_prefix("data/"))
        .unwrap_or(target);
    let target = target.strip_prefix('/').unwrap_or(target);
    let (path, q) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    let resource = parse_resource(path).map_err(|e| match e {
        KeyError::NoRoute(p) => web_api_answer(&format!("{}/data/{p}", outer.base)),
        e => error_answer(ODataError::new(
            e.status(),
            e.to_string(),
            PROTOCOL_EXCEPTION,
        )),
    })?;
    let Resource::Entity(area, number) = resource else {
        return Err(error_answer(ODataError::new(
            405,
            BatchError::Method("single entities", req.method.clone()).to_string(),
            PROTOCOL_EXCEPTION,
        )));
    };
    let mut query =
        query::parse(q).map_err(|e| error_answer(ODataError::bad_request(e.to_string())))?;
    query.base = outer.base.clone();
    query.agent = outer.agent.clone();
    Ok(Op {
        content_id: part.header("Content-ID").map(str::to_string),
        req,
        area,
        number,
        query,
    })
}

fn patch_op(op: &Op) -> PatchOp<'_> {
    PatchOp {
        area: &op.area,
        number: &op.number,
        if_match: multipart::header(&op.req.headers, "If-Match"),
        body: &op.req.body,
        cross_company: op.query.cross_company,
        agent: op.query.agent.as_deref(),
    }
}

/// A part no route matches: Web API's 404 shape [obs].
fn web_api_answer(url: &str) -> Answer {
    let (status, body) = web_api_not_found(url);
    let headers = vec![("Content-Type", WEB_API_CONTENT_TYPE.to_string())];
    (status, headers, body)
}

fn error_answer(e: ODataError) -> Answer {
    let body = serde_json::to_vec(&e.body()).unwrap_or_default();
    (
        e.status,
        vec![
            ("Content-Type", JSON_CONTENT_TYPE.to_string()),
            ("OData-Version", "4.0".into()),
        ],
        body,
    )
}

fn patched_answer(state: &State, op: &Op, done: Patched) -> Answer {
    let faults = state.faults();
    let mut headers = vec![("OData-Version", "4.0".to_string())];
    if faults.patch_etag_header {
        headers.push(("ETag", done.order.etag.clone()));
    }
    let prefer_entity = crate::handlers::representation_applied(
        &faults,
        multipart::header(&op.req.headers, "Prefer"),
    );
    if prefer_entity {
        headers.push(("Preference-Applied", "return=representation".into()));
    }
    if done.status == 200 || prefer_entity {
        // A batch part's context has never named the part's `$select`.
        let ctx = context(&op.query.base, None, true);
        headers.push(("Content-Type", JSON_CONTENT_TYPE.to_string()));
        (
            200,
            headers,
            patched_body(&done.order, &ctx, &faults.date_only_fields),
        )
    } else {
        (204, headers, Vec::new())
    }
}

fn get(state: &State, op: &Op) -> Answer {
    match read_entity(state, &op.area, &op.number, &op.query) {
        Ok((body, etag)) => {
            let mut headers = vec![
                ("Content-Type", JSON_CONTENT_TYPE.to_string()),
                ("OData-Version", "4.0".to_string()),
            ];
            if state.faults().get_etag_header {
                headers.push(("ETag", etag));
            }
            (200, headers, body)
        }
        Err(e) => error_answer(e),
    }
}

fn patch_one(state: &State, op: &Op) -> Answer {
    match write::patch(state, &patch_op(op), true) {
        Ok(done) => patched_answer(state, op, done),
        Err(e) => error_answer(e),
    }
}

/// Runs a changeset atomically and writes its answer: a nested multipart
/// of all results, or of just the failing one [obs]. False when it failed.
fn run_changeset(
    state: &State,
    outer: &Query,
    parts: &[Part],
    out_b: &str,
    out: &mut Vec<u8>,
) -> bool {
    let mut ops = Vec::new();
    for p in parts {
        let failed = match to_op(outer, p) {
            Ok(op) if op.req.method == "PATCH" => {
                ops.push(op);
                continue;
            }
            Ok(op) => {
                let e = ODataError::bad_request("GET requests are not allowed inside a changeset.");
                (op.content_id, error_answer(e))
            }
            Err(ans) => (p.header("Content-ID").map(str::to_string), ans),
        };
        write_changeset(out, out_b, [(failed.0.as_deref(), failed.1)]);
        return false;
    }
    let patch_ops: Vec<PatchOp<'_>> = ops.iter().map(patch_op).collect();
    match write::changeset(state, &patch_ops) {
        Ok(results) => {
            let answers = ops
                .iter()
                .zip(results)
                .map(|(op, done)| (op.content_id.as_deref(), patched_answer(state, op, done)));
            write_changeset(out, out_b, answers);
            true
        }
        Err((i, e)) => {
            write_changeset(
                out,
                out_b,
                [(ops[i].content_id.as_deref(), error_answer(e))],
            );
            false
        }
    }
}

/// Writes a changeset answer: a nested multipart of `answers`.
fn write_changeset<'a>(
    out: &mut Vec<u8>,
    out_b: &str,
    answers: impl IntoIterator<Item = (Option<&'a str>, Answer)>,
) {
    let cs_b = format!("changesetresponse_{}", random_hex());
    out.extend_from_slice(
        format!("--{out_b}\r\nContent-Type: multipart/mixed; boundary={cs_b}\r\n\r\n").as_bytes(),
    );
    for (id, ans) in answers {
        write_response_part(out, &cs_b, id, ans.0, &ans.1, &ans.2);
    }
    out.extend_from_slice(format!("--{cs_b}--\r\n").as_bytes());
}
