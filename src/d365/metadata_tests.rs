use super::*;

/// F&O's shape [obs]: Dynamics annotations inline on the properties.
const FNO: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<edmx:Edmx Version="4.0" xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx">
<edmx:DataServices>
<Schema Namespace="Microsoft.Dynamics.DataEntities" xmlns="http://docs.oasis-open.org/odata/ns/edm">
<EntityType Name="OtherEntity"><Key><PropertyRef Name="Id"/></Key>
  <Property Name="SalesOrderStatus" Type="Edm.String"/></EntityType>
<EntityType Name="SalesOrderHeaderV2">
  <Key><PropertyRef Name="dataAreaId"/><PropertyRef Name="SalesOrderNumber"/></Key>
  <Property Name="dataAreaId" Type="Edm.String" Nullable="false"/>
  <Property Name="SalesOrderNumber" Type="Edm.String" Nullable="false"/>
  <Property Name="SalesOrderStatus" Type="Microsoft.Dynamics.DataEntities.SalesStatus">
    <Annotation Term="Microsoft.Dynamics.OData.Core.V1.AllowEdit" Bool="false"/>
  </Property>
  <Property Name="ConfirmedReceiptDate" Type="Edm.DateTimeOffset">
    <Annotation Term="Microsoft.Dynamics.OData.Core.V1.AllowEdit" Bool="true"/>
  </Property>
</EntityType>
<EntityContainer Name="Resources">
  <EntitySet Name="SalesOrderHeadersV2" EntityType="Microsoft.Dynamics.DataEntities.SalesOrderHeaderV2"/>
</EntityContainer>
</Schema></edmx:DataServices></edmx:Edmx>"#;

const WANTED: [&str; 3] = ["SalesOrderStatus", "ConfirmedReceiptDate", "dataAreaId"];

fn field(caps: &EntityCapabilities, name: &str) -> (String, bool) {
    let f = &caps.fields[name];
    (f.edm_type.clone(), f.editable)
}

#[test]
fn fno_document_gives_type_key_and_allow_edit() {
    let caps = parse_capabilities(FNO.as_bytes(), "SalesOrderHeadersV2", &WANTED).unwrap();
    assert_eq!(
        caps.entity_type,
        "Microsoft.Dynamics.DataEntities.SalesOrderHeaderV2"
    );
    assert_eq!(caps.type_name(), "SalesOrderHeaderV2");
    assert_eq!(caps.key, ["dataAreaId", "SalesOrderNumber"]);
    assert!(caps.updatable);
    assert_eq!(
        field(&caps, "SalesOrderStatus"),
        ("Microsoft.Dynamics.DataEntities.SalesStatus".into(), false)
    );
    assert_eq!(
        field(&caps, "ConfirmedReceiptDate"),
        ("Edm.DateTimeOffset".into(), true)
    );
    // A key property is never editable; unwanted ones are not kept.
    assert!(!caps.fields["dataAreaId"].editable);
    assert_eq!(caps.fields.len(), 3);
}

#[test]
fn missing_set_and_missing_field_are_told_apart() {
    let err = parse_capabilities(FNO.as_bytes(), "NoSuchSet", &WANTED).unwrap_err();
    assert!(
        matches!(&err, MetadataError::EntitySetNotFound { entity_set } if entity_set == "NoSuchSet"),
        "{err:?}"
    );
    let caps = parse_capabilities(FNO.as_bytes(), "SalesOrderHeadersV2", &["Nope"]).unwrap();
    assert!(caps.fields.is_empty());
}

/// A third-party OData v4 server: OData Core terms through an alias, the
/// container before the types, an Edm.Date, and a set not updatable.
const THIRD_PARTY: &str = r#"<?xml version="1.0"?>
<edmx:Edmx Version="4.0" xmlns:edmx="http://docs.oasis-open.org/odata/ns/edmx">
<edmx:Reference Uri="https://oasis-tcs.github.io/odata-vocabularies/vocabularies/Org.OData.Core.V1.xml">
  <edmx:Include Namespace="Org.OData.Core.V1" Alias="Core"/></edmx:Reference>
<edmx:DataServices>
<Schema Namespace="Shop.Model" Alias="Shop" xmlns="http://docs.oasis-open.org/odata/ns/edm">
<EntityContainer Name="C">
  <EntitySet Name="Orders" EntityType="Shop.Order">
    <Annotation Term="Org.OData.Capabilities.V1.UpdateRestrictions"><Record>
      <PropertyValue Property="Updatable" Bool="false"/></Record></Annotation>
  </EntitySet>
</EntityContainer>
<EntityType Name="Order"><Key><PropertyRef Name="Id"/></Key>
  <Property Name="Id" Type="Edm.Int32"/>
  <Property Name="Status" Type="Edm.String"><Annotation Term="Core.Computed"/></Property>
  <Property Name="Owner" Type="Edm.String">
    <Annotation Term="Core.Permissions"><EnumMember>Core.Permission/Read</EnumMember></Annotation>
  </Property>
  <Property Name="Note" Type="Edm.String">
    <Annotation Term="Core.Permissions" EnumMember="Core.Permission/ReadWrite"/>
  </Property>
  <Property Name="Due" Type="Edm.Date"/>
</EntityType>
</Schema></edmx:DataServices></edmx:Edmx>"#;

#[test]
fn odata_core_annotations_and_aliases() {
    let wanted = ["Status", "Owner", "Note", "Due"];
    let caps = parse_capabilities(THIRD_PARTY.as_bytes(), "Orders", &wanted).unwrap();
    assert_eq!(caps.entity_type, "Shop.Model.Order");
    assert!(!caps.updatable);
    assert_eq!(field(&caps, "Status"), ("Edm.String".into(), false));
    assert_eq!(field(&caps, "Owner"), ("Edm.String".into(), false));
    assert_eq!(field(&caps, "Note"), ("Edm.String".into(), true));
    assert!(caps.fields["Due"].is_date_only() && caps.fields["Due"].editable);
}

#[test]
fn broken_documents_are_errors() {
    for doc in [
        "<a><b></a>",
        "",
        "<EntitySet Name=\"SalesOrderHeadersV2\" EntityType=\"x\"/>",
    ] {
        assert!(
            parse_capabilities(doc.as_bytes(), "SalesOrderHeadersV2", &WANTED).is_err(),
            "{doc}"
        );
    }
}

/// Streams `doc` in small chunks, as the network would.
fn chunks(doc: Vec<u8>) -> impl futures::Stream<Item = Result<bytes::Bytes, io::Error>> + Unpin {
    let parts: Vec<_> = doc
        .chunks(7)
        .map(|c| Ok(bytes::Bytes::copy_from_slice(c)))
        .collect();
    futures::stream::iter(parts)
}

#[tokio::test]
async fn the_stream_reader_agrees_and_keeps_its_budget() {
    let got = read_capabilities(chunks(FNO.into()), 1 << 20, "SalesOrderHeadersV2", &WANTED)
        .await
        .unwrap();
    let want = parse_capabilities(FNO.as_bytes(), "SalesOrderHeadersV2", &WANTED).unwrap();
    assert_eq!(got, want);
    let err = read_capabilities(chunks(FNO.into()), 100, "SalesOrderHeadersV2", &WANTED)
        .await
        .unwrap_err();
    assert!(
        matches!(err, MetadataError::TooLarge { limit: 100 }),
        "{err:?}"
    );
}

#[tokio::test]
async fn the_read_stops_once_set_and_type_are_known() {
    // Garbage after the container would fail a full read.
    let mut doc = FNO.replace("</Schema></edmx:DataServices></edmx:Edmx>", "");
    doc.push_str("<<<< not xml");
    let caps = read_capabilities(chunks(doc.into()), 1 << 20, "SalesOrderHeadersV2", &WANTED)
        .await
        .unwrap();
    assert_eq!(caps.key.len(), 2);
}

#[test]
fn a_flood_of_entity_types_is_refused() {
    let mut doc = String::from("<Schema Namespace=\"N\">");
    for i in 0..=crate::d365::csdl::MAX_ENTITY_TYPES {
        doc.push_str(&format!("<EntityType Name=\"T{i}\"/>"));
    }
    let err = parse_capabilities(doc.as_bytes(), "E", &WANTED).unwrap_err();
    assert!(matches!(err, MetadataError::Malformed(_)), "{err:?}");
}
