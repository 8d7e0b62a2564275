use serde_json::json;

use super::*;

fn root() -> Url {
    Url::parse("https://contoso.example/data/").unwrap()
}

fn page_url() -> Url {
    Url::parse("https://contoso.example/data/SalesOrderHeadersV2?cross-company=true").unwrap()
}

fn body(value: Value) -> Map<String, Value> {
    value.as_object().unwrap().clone()
}

#[test]
fn query_selects_and_passes_the_filter_through_encoded() {
    let filter = "SalesOrderStatus eq Microsoft.Dynamics.DataEntities.SalesStatus'Backorder' \
                  and SalesOrderNumber ne 'A+B&C=#'";
    let query = collection_query(&["dataAreaId", "SalesOrderNumber"], Some(filter));
    assert!(
        query.starts_with("cross-company=true&$select=dataAreaId,SalesOrderNumber&$filter="),
        "{query}"
    );
    let encoded = query.split("&$filter=").nth(1).unwrap();
    // Nothing that ends or alters a query option stays literal.
    for c in [' ', '\'', '+', '&', '=', '#'] {
        assert!(!encoded.contains(c), "{c:?} in {encoded}");
    }
    let decoded = percent_encoding::percent_decode_str(encoded)
        .decode_utf8()
        .unwrap();
    assert_eq!(decoded, filter);
    assert_eq!(collection_query(&[], Some("  ")), "cross-company=true");
}

#[test]
fn page_rows_lose_annotations_and_the_link_is_followed_on_the_same_origin() {
    let link = "https://contoso.example/data/SalesOrderHeadersV2?cross-company=true&$skiptoken=abc";
    let answer = body(json!({
        "@odata.context": "https://contoso.example/data/$metadata#SalesOrderHeadersV2",
        "value": [{"@odata.etag": "W/\"1\"", "dataAreaId": "usmf", "SalesOrderNumber": "SO-1"}],
        "@odata.nextLink": link,
    }));
    let (rows, next) = split_page(answer, &page_url(), &root()).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(
        rows[0].keys().collect::<Vec<_>>(),
        ["SalesOrderNumber", "dataAreaId"]
    );
    assert_eq!(next.unwrap().as_str(), link);
    let last = body(json!({"value": []}));
    assert_eq!(
        split_page(last, &page_url(), &root()).unwrap(),
        (vec![], None)
    );
}

#[test]
fn links_off_the_environment_or_looping_are_refused() {
    let table = [
        (
            "https://evil.example/data/SalesOrderHeadersV2?x",
            "leaves the environment",
        ),
        (
            "http://contoso.example/data/SalesOrderHeadersV2?x",
            "leaves the environment",
        ),
        (
            "https://contoso.example:8443/data/SalesOrderHeadersV2?x",
            "leaves the environment",
        ),
        (
            "https://contoso.example/other/SalesOrderHeadersV2?x",
            "leaves the environment",
        ),
        ("//evil.example/data/x", "leaves the environment"),
        (
            "https://u:p@contoso.example/data/SalesOrderHeadersV2?x",
            "leaves the environment",
        ),
        (
            "https://contoso.example/data/SalesOrderHeadersV2?cross-company=true",
            "paging loop",
        ),
    ];
    for (link, want) in table {
        let answer = body(json!({"value": [], "@odata.nextLink": link}));
        let err = split_page(answer, &page_url(), &root()).unwrap_err();
        assert!(err.contains(want), "{link}: {err}");
    }
    // A relative link resolves against the page, and may be followed.
    let answer = body(json!({"value": [], "@odata.nextLink": "SalesOrderHeadersV2?$skiptoken=2"}));
    let (_, next) = split_page(answer, &page_url(), &root()).unwrap();
    assert_eq!(
        next.unwrap().as_str(),
        "https://contoso.example/data/SalesOrderHeadersV2?$skiptoken=2"
    );
}

#[test]
fn malformed_pages_are_refused() {
    for answer in [
        json!({}),
        json!({"value": {}}),
        json!({"value": [1]}),
        json!({"value": [], "@odata.nextLink": 5}),
    ] {
        assert!(
            split_page(body(answer.clone()), &page_url(), &root()).is_err(),
            "{answer}"
        );
    }
}
