//! Issue 4 item 4: collection queries and server-driven paging.

use crate::common::*;
use d365_emulator::Config;
use serde_json::Value;

fn numbers(v: &Value) -> Vec<String> {
    v["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["SalesOrderNumber"].as_str().unwrap().to_string())
        .collect()
}

fn enc(s: &str) -> String {
    s.replace(' ', "%20").replace('\'', "%27")
}

#[tokio::test]
async fn filter_select_top_skip_count() {
    let env = start().await;
    // Default company only without cross-company.
    let all = env.get_json("SalesOrderHeadersV2").await;
    assert_eq!(numbers(&all).len(), 7);
    assert!(all["value"][0]["@odata.etag"].is_string());
    let cross = env.get_json("SalesOrderHeadersV2?cross-company=true").await;
    assert_eq!(numbers(&cross).len(), 8);

    let f = enc("SalesOrderStatus eq Microsoft.Dynamics.DataEntities.SalesStatus'Backorder'");
    let v = env
        .get_json(&format!("SalesOrderHeadersV2?$filter={f}&$count=true"))
        .await;
    assert_eq!(v["@odata.count"], 5);
    assert!(numbers(&v).iter().all(|n| n.starts_with("SO-2025-")));

    let f = enc(
        "dataAreaId eq 'USSI' or (SalesOrderNumber eq 'SO-2025-0002' and SalesOrderStatus ne Microsoft.Dynamics.DataEntities.SalesStatus'Invoiced')",
    );
    let v = env
        .get_json(&format!(
            "SalesOrderHeadersV2?cross-company=true&$filter={f}"
        ))
        .await;
    let mut got = numbers(&v);
    got.sort();
    assert_eq!(got, vec!["SO-2025-0002", "SO-SI-1"]);

    // The unqualified enum literal is refused, as D365 does.
    let f = enc("SalesOrderStatus eq 'Backorder'");
    let (s, msg) = inner_message(env.get(&format!("SalesOrderHeadersV2?$filter={f}")).await).await;
    assert_eq!(s, 400);
    assert!(msg.contains("incompatible types"), "{msg}");
    let f = enc("SalesOrderNumber in ('SO-2025-0001')");
    assert_eq!(
        env.get(&format!("SalesOrderHeadersV2?$filter={f}"))
            .await
            .status(),
        400
    );

    let v = env
        .get_json("SalesOrderHeadersV2?$select=SalesOrderNumber&$top=2&$skip=1&$count=true")
        .await;
    assert_eq!(numbers(&v), vec!["SO-2025-0001", "SO-2025-0002"]);
    assert_eq!(v["@odata.count"], 7);
    assert_eq!(
        v["value"][0].as_object().unwrap().len(),
        2,
        "etag + selected field"
    );

    let v = env
        .get_json("SalesOrderHeadersV2?$orderby=SalesOrderNumber%20desc&$top=1")
        .await;
    assert_eq!(numbers(&v), vec!["SO-INV"]);
    let n = env
        .get("SalesOrderHeadersV2/$count")
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(n, "7");
}

#[tokio::test]
async fn server_driven_paging() {
    let env = start_with(Config {
        orders: d365_emulator::generate_orders(25, 1),
        page_size: 10,
        ..Config::default()
    })
    .await;
    let mut url = env.data("SalesOrderHeadersV2?$select=SalesOrderNumber&$count=true");
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let r = env
            .http
            .get(&url)
            .bearer_auth(&env.token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["@odata.count"], 25);
        assert!(v["value"].as_array().unwrap().len() <= 10);
        seen.extend(numbers(&v));
        pages += 1;
        match v["@odata.nextLink"].as_str() {
            Some(next) => {
                assert!(next.contains("$skiptoken="), "{next}");
                url = next.to_string();
            }
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let expected: Vec<String> = (1..=25).map(|i| format!("SO-2025-{i:04}")).collect();
    assert_eq!(seen, expected);

    // $top across pages is honoured; Prefer odata.maxpagesize shrinks pages.
    let v = env.get_json("SalesOrderHeadersV2?$top=12").await;
    assert_eq!(numbers(&v).len(), 10);
    let next = v["@odata.nextLink"].as_str().unwrap();
    let r: Value = json_of(env.http.get(next).bearer_auth(&env.token)).await;
    assert_eq!(numbers(&r), vec!["SO-2025-0011", "SO-2025-0012"]);
    assert!(r.get("@odata.nextLink").is_none());
    let r: Value = json_of(
        env.http
            .get(env.data("SalesOrderHeadersV2"))
            .bearer_auth(&env.token)
            .header("Prefer", "odata.maxpagesize=4"),
    )
    .await;
    assert_eq!(numbers(&r).len(), 4);
}
