//! `/data/$metadata`: the CSDL document of the one entity type [spec],
//! with F&O's `Microsoft.Dynamics.OData.Core.V1.AllowEdit` annotation on
//! every property [obs: third-party F&O code generators read it], the
//! `readOnlyFields` and `dateOnlyFields` switches, and optional padding of
//! other entity types before it, because F&O's document is tens of MB
//! [obs] and a client must stream it. The padding is generated chunk by
//! chunk as it is sent, never held whole.

use std::convert::Infallible;

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, header};
use axum::response::Response;

use crate::config::Faults;
use crate::entity::{ENTITY_SET, ENUM_NAMESPACE, FIELDS, Kind, is_key_field};

/// The term F&O puts on each property [obs].
pub const ALLOW_EDIT: &str = "Microsoft.Dynamics.OData.Core.V1.AllowEdit";
/// Bytes of padding generated per chunk.
const CHUNK: usize = 64 * 1024;

/// The document, streamed: head, padding types, the order type, the
/// container.
pub fn document(faults: &Faults) -> Response {
    let head = format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?><edmx:Edmx Version=\"4.0\" xmlns:edmx=\"http://docs.oasis-open.org/odata/ns/edmx\"><edmx:DataServices><Schema Namespace=\"{ENUM_NAMESPACE}\" xmlns=\"http://docs.oasis-open.org/odata/ns/edm\">"
    );
    let tail = format!(
        "{}<EntityContainer Name=\"Resources\"><EntitySet Name=\"{ENTITY_SET}\" EntityType=\"{ENUM_NAMESPACE}.SalesOrderHeaderV2\" /></EntityContainer></Schema></edmx:DataServices></edmx:Edmx>",
        order_type(faults)
    );
    let padding = faults.metadata_padding_mb.saturating_mul(1024 * 1024);
    let chunks = padding.div_ceil(CHUNK as u64);
    let body = std::iter::once(Bytes::from(head))
        .chain((0..chunks).map(padding_chunk))
        .chain(std::iter::once(Bytes::from(tail)))
        .map(Ok::<_, Infallible>);
    let mut r = Response::new(Body::from_stream(futures_util::stream::iter(body)));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/xml"),
    );
    r.headers_mut()
        .insert("OData-Version", HeaderValue::from_static("4.0"));
    r
}

/// `SalesOrderHeaderV2` with each property's type and AllowEdit: false
/// for the key and the `readOnlyFields`.
fn order_type(faults: &Faults) -> String {
    let mut props = String::new();
    for f in FIELDS {
        let ty = match f.kind {
            Kind::Str => "Edm.String".to_string(),
            Kind::Enum(t, _) => format!("{ENUM_NAMESPACE}.{t}"),
            Kind::Date if faults.is_date_only(f.name) => "Edm.Date".to_string(),
            Kind::Date => "Edm.DateTimeOffset".to_string(),
            Kind::Number => "Edm.Decimal".to_string(),
        };
        let editable = !is_key_field(f.name) && !faults.is_read_only(f.name);
        props.push_str(&format!(
            "<Property Name=\"{}\" Type=\"{ty}\"><Annotation Term=\"{ALLOW_EDIT}\" Bool=\"{editable}\" /></Property>",
            f.name
        ));
    }
    format!(
        "<EntityType Name=\"SalesOrderHeaderV2\"><Key><PropertyRef Name=\"dataAreaId\" /><PropertyRef Name=\"SalesOrderNumber\" /></Key>{props}</EntityType>"
    )
}

/// About [`CHUNK`] bytes of other entity types, numbered from the chunk,
/// shaped like F&O's: a compound key and [`PADDING_PROPERTIES`] annotated
/// properties each (about 6 KB a type), some named as the order type's.
fn padding_chunk(index: u64) -> Bytes {
    let mut out = String::with_capacity(CHUNK + 8 * 1024);
    let mut n = 0u32;
    while out.len() < CHUNK {
        out.push_str(&format!(
            "<EntityType Name=\"PaddingEntity{index}x{n}\"><Key><PropertyRef Name=\"dataAreaId\" /><PropertyRef Name=\"Id\" /></Key>"
        ));
        for (i, (name, ty)) in PADDING_SHAPES
            .iter()
            .cycle()
            .take(PADDING_PROPERTIES)
            .enumerate()
        {
            let editable = i % 3 != 0;
            out.push_str(&format!(
                "<Property Name=\"{name}{i}\" Type=\"{ty}\" Nullable=\"false\"><Annotation Term=\"{ALLOW_EDIT}\" Bool=\"{editable}\" /></Property>"
            ));
        }
        out.push_str(&format!(
            "<Property Name=\"dataAreaId\" Type=\"Edm.String\"><Annotation Term=\"{ALLOW_EDIT}\" Bool=\"false\" /></Property><Property Name=\"SalesOrderStatus\" Type=\"Edm.String\"><Annotation Term=\"{ALLOW_EDIT}\" Bool=\"true\" /></Property></EntityType>"
        ));
        n += 1;
    }
    Bytes::from(out)
}

/// Properties per padding entity type.
const PADDING_PROPERTIES: usize = 40;
/// Names and types the padding properties cycle through.
const PADDING_SHAPES: [(&str, &str); 5] = [
    ("Description", "Edm.String"),
    ("Quantity", "Edm.Decimal"),
    ("ModifiedDateTime", "Edm.DateTimeOffset"),
    ("Status", "Microsoft.Dynamics.DataEntities.NoYes"),
    ("LineNumber", "Edm.Int64"),
];
