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

/// A batch answer as D365 shapes it: a succeeded changeset (204), then the
/// lone error parts of two failed ones (412, and a 500 write failure).
pub(crate) const ANSWER: &str = concat!(
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

/// [`ANSWER`]'s content type.
pub(crate) const ANSWER_TYPE: &str = "multipart/mixed; boundary=batchresponse_1";

#[test]
fn parses_successes_and_failures() {
    let parts = parse(ANSWER_TYPE, ANSWER.as_bytes()).unwrap();
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
}

#[test]
fn refuses_what_is_not_a_batch_answer() {
    assert_eq!(
        parse("application/json", b"{}").unwrap_err(),
        ParseError::NotMultipart("application/json".into())
    );
    let unterminated = parse(
        "multipart/mixed; boundary=b",
        b"--b\r\n\r\nHTTP/1.1 204\r\n",
    );
    assert_eq!(
        unterminated.unwrap_err().to_string(),
        "multipart without closing --b--"
    );
    let not_http = parse(
        "multipart/mixed; boundary=b",
        b"--b\r\n\r\nnot http\r\n--b--",
    );
    assert!(
        matches!(not_http, Err(ParseError::BadStatusLine(_))),
        "{not_http:?}"
    );
    assert!(boundary("multipart/mixed; boundary=\"q\"").as_deref() == Some("q"));
}

/// [`ANSWER`] with its `Content-ID` lines rewritten by `edit`.
fn answer_with_ids(edit: impl Fn(&str) -> String) -> Vec<BatchResponse> {
    let text = ANSWER
        .lines()
        .map(|l| match l.strip_prefix("Content-ID: ") {
            Some(id) => edit(id),
            None => l.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    parse(ANSWER_TYPE, text.as_bytes()).unwrap()
}

#[test]
fn parts_are_matched_by_content_id_one_to_one_or_not_at_all() {
    let sent = ["1", "2", "3"];
    let ok = by_content_id(parse(ANSWER_TYPE, ANSWER.as_bytes()).unwrap(), &sent).unwrap();
    let statuses: Vec<_> = sent.iter().map(|id| ok[*id].status).collect();
    assert_eq!(statuses, [204, 412, 500]);
    // A request without a part is the caller's "not sent", not an error.
    let fewer = by_content_id(
        answer_with_ids(|id| format!("Content-ID: {id}")),
        &["1", "2", "3", "4"],
    );
    assert!(!fewer.unwrap().contains_key("4"));

    type Edit = fn(&str) -> String;
    let table: [(&str, Edit, ParseError); 3] = [
        (
            "a part answers another's id",
            |id| format!("Content-ID: {}", if id == "3" { "2" } else { id }),
            ParseError::RepeatedContentId("2".into()),
        ),
        (
            "a part lost its id",
            |id| {
                if id == "2" {
                    "X-Other: 2".into()
                } else {
                    format!("Content-ID: {id}")
                }
            },
            ParseError::MissingContentId(2),
        ),
        (
            "a part names a request never sent",
            |id| format!("Content-ID: 1{id}"),
            ParseError::UnknownContentId("11".into()),
        ),
    ];
    for (case, edit, want) in table {
        let got = by_content_id(answer_with_ids(edit), &sent);
        assert_eq!(got.unwrap_err(), want, "{case}");
    }
}

/// ASP.NET OData's default answer to a batch whose second changeset
/// failed [obs][spec]: the failure as a nested changeset holding just the
/// failing response, and no part at all for the third request.
#[test]
fn a_nested_failure_and_a_stop_leave_later_requests_unanswered() {
    let answer = concat!(
        "--batchresponse_9\r\n",
        "Content-Type: multipart/mixed; boundary=changesetresponse_a\r\n\r\n",
        "--changesetresponse_a\r\n",
        "Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n",
        "Content-ID: 1\r\n\r\n",
        "HTTP/1.1 204 No Content\r\n\r\n\r\n",
        "--changesetresponse_a--\r\n",
        "--batchresponse_9\r\n",
        "Content-Type: multipart/mixed; boundary=changesetresponse_b\r\n\r\n",
        "--changesetresponse_b\r\n",
        "Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n",
        "Content-ID: 2\r\n\r\n",
        "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\n\r\n",
        r#"{"error":{"code":"","message":"An error has occurred.","innererror":{"message":"Write failed for table row of type 'SalesOrderHeaderV2Entity'. Infolog: Error: no.","type":"Microsoft.Dynamics.Platform.Integration.Services.OData.AxODataWriteException"}}}"#,
        "\r\n--changesetresponse_b--\r\n",
        "--batchresponse_9--\r\n"
    );
    let parts = parse(
        "multipart/mixed; boundary=batchresponse_9",
        answer.as_bytes(),
    )
    .unwrap();
    let statuses: Vec<u16> = parts.iter().map(|p| p.status).collect();
    assert_eq!(statuses, [204, 400]);
    let by_id = by_content_id(parts, &["1", "2", "3"]).unwrap();
    assert_eq!(by_id["2"].status, 400);
    assert!(String::from_utf8_lossy(&by_id["2"].body).contains("Infolog"));
    assert!(!by_id.contains_key("3"), "the stopped request has no part");
}
