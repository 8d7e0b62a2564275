use serde_json::json;

use super::*;

fn keys(pairs: &[(&str, &str)]) -> Vec<OrderKey> {
    pairs.iter().map(|(a, n)| OrderKey::new(*a, *n)).collect()
}

fn plan(keys: &[OrderKey], max_chars: usize, max_keys: usize) -> Vec<Read> {
    let refs: Vec<&OrderKey> = keys.iter().collect();
    plan_reads(&refs, max_chars, max_keys)
}

#[test]
fn filter_quotes_values_and_shares_the_company_test() {
    assert_eq!(
        filter("usmf", &["SO-1", "O'Brien/2"]),
        "dataAreaId eq 'usmf' and (SalesOrderNumber eq 'SO-1' or SalesOrderNumber eq 'O''Brien/2')"
    );
    assert_eq!(
        filter("it's", &["A"]),
        "dataAreaId eq 'it''s' and (SalesOrderNumber eq 'A')"
    );
}

#[test]
fn reads_group_by_company_and_merge_repeated_orders() {
    let k = keys(&[("usmf", "A"), ("DEMF", "B"), ("USMF", "a"), ("usmf", "C")]);
    let reads = plan(&k, MAX_FILTER_CHARS, MAX_KEYS_PER_READ);
    assert_eq!(reads.len(), 2, "{reads:?}");
    assert_eq!(reads[0].area, "usmf");
    assert_eq!(reads[0].numbers, ["A", "C"]);
    assert_eq!(reads[0].callers, [0, 2, 3]);
    assert_eq!(reads[1].numbers, ["B"]);
    assert_eq!(reads[1].callers, [1]);
}

#[test]
fn reads_split_at_the_length_and_count_limits() {
    let numbers: Vec<String> = (0..500).map(|i| format!("SO-{i:06}")).collect();
    let k: Vec<OrderKey> = numbers.iter().map(|n| OrderKey::new("usmf", n)).collect();
    let reads = plan(&k, MAX_FILTER_CHARS, MAX_KEYS_PER_READ);
    let mut seen = 0;
    for read in &reads {
        let encoded = encoded_len(&read.filter());
        assert!(encoded <= MAX_FILTER_CHARS, "{encoded}");
        assert!(read.numbers.len() <= MAX_KEYS_PER_READ);
        // Full: one more order would have crossed the limit.
        if read.callers.last() != Some(&499) {
            let term = encoded_len(" or SalesOrderNumber eq 'SO-000000'");
            assert!(encoded + term > MAX_FILTER_CHARS, "{encoded}");
        }
        assert_eq!(read.callers.first(), Some(&seen));
        seen += read.callers.len();
    }
    assert_eq!(seen, 500);
    let by_count = plan(&k, usize::MAX, 7);
    assert_eq!(by_count.len(), 500usize.div_ceil(7));
    assert!(by_count.iter().all(|r| r.numbers.len() <= 7));
    // One key longer than the limit still gets its read, alone.
    let long = keys(&[("usmf", &"x".repeat(3000)), ("usmf", "B")]);
    let reads = plan(&long, MAX_FILTER_CHARS, MAX_KEYS_PER_READ);
    assert_eq!(
        reads.iter().map(|r| r.callers.len()).collect::<Vec<_>>(),
        [1, 1]
    );
}

#[test]
fn rows_match_keys_case_insensitively() {
    let rows = vec![
        json!({"@odata.etag": "W/\"1\"", "dataAreaId": "usmf", "SalesOrderNumber": "SO-1"}),
        json!({"@odata.etag": "W/\"2\"", "dataAreaId": "usmf", "SalesOrderNumber": "o'b/2"}),
    ];
    let rows: Vec<_> = rows
        .into_iter()
        .map(|r| r.as_object().unwrap().clone())
        .collect();
    let by = rows_by_order(rows).unwrap();
    let row = row_of(&by, &OrderKey::new("USMF", "so-1")).unwrap();
    assert_eq!(row["@odata.etag"], "W/\"1\"");
    let row = row_of(&by, &OrderKey::new("usmf", "O'B/2")).unwrap();
    assert_eq!(row["@odata.etag"], "W/\"2\"");
    assert!(row_of(&by, &OrderKey::new("demf", "SO-1")).is_none());
    assert!(row_of(&by, &OrderKey::new("usmf", "SO-3")).is_none());
    let keyless = json!({"@odata.etag": "W/\"1\"", "dataAreaId": "usmf"});
    let err = rows_by_order(vec![keyless.as_object().unwrap().clone()]).unwrap_err();
    assert!(err.contains("SalesOrderNumber"), "{err}");
}
