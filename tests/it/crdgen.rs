//! `crds/` must be exactly what the binary's `crd` subcommand prints, so the
//! chart and `kubectl apply -f crds/` never drift from the Rust types.

#[test]
fn crds_dir_matches_generated_yaml() {
    let on_disk = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/crds/crds.yaml"))
        .expect("crds/crds.yaml exists (run `make crds`)");
    let generated = sales_order_operator::api::crds_yaml().unwrap();
    assert!(
        on_disk == generated,
        "crds/crds.yaml is stale: run `make crds`"
    );
}

#[test]
fn binary_crd_subcommand_prints_the_same() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sales-order-operator"))
        .arg("crd")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        sales_order_operator::api::crds_yaml().unwrap()
    );
}

#[test]
fn crds_carry_the_user_facing_contract() {
    let yaml = sales_order_operator::api::crds_yaml().unwrap();
    for needle in [
        "shortNames:\n    - sos",
        "shortNames:\n    - d365c",
        "rule: self == oldSelf",
        "format: date",
        "- Backorder",
        "- Canceled",
        "jsonPath: .status.conditions[?(@.type==\"Ready\")].reason",
        "subresources:\n      status: {}",
        "rule: self > timestamp('1900-01-01T00:00:00Z')",
        "must not contain control characters",
    ] {
        assert!(yaml.contains(needle), "CRD YAML lacks {needle:?}");
    }
}
