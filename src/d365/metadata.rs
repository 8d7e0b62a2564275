//! What the service's `$metadata` says of the connection's entity set:
//! its entity type, key, whether it is updatable, and for each mapped
//! property its EDM type and whether it may be edited
//! (`Microsoft.Dynamics.OData.Core.V1.AllowEdit` on F&O [obs]; OData Core
//! `Computed`, `Immutable` and `Permissions` on other servers [spec]).
//!
//! F&O's `$metadata` is tens of MB, so it is read as a stream through the
//! [`Scan`], within a size and a time budget, and the read stops as soon
//! as the set and its type are both known.

use std::collections::BTreeMap;
use std::io;
use std::time::Duration;

use futures::TryStreamExt;
use quick_xml::Reader;
use quick_xml::events::Event;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncBufRead;

use super::csdl::{Flow, Scan};

/// Most bytes of `$metadata` read: F&O's is tens of MB [obs].
pub const MAX_METADATA_BYTES: usize = 64 * 1024 * 1024;
/// Longest a `$metadata` read may take, answer head and body.
pub const METADATA_TIME_BUDGET: Duration = Duration::from_secs(120);

/// The connection's entity set as `$metadata` describes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntityCapabilities {
    pub entity_set: String,
    /// Qualified, e.g. `Microsoft.Dynamics.DataEntities.SalesOrderHeaderV2`.
    pub entity_type: String,
    pub key: Vec<String>,
    /// False when the set says `UpdateRestrictions/Updatable` false.
    pub updatable: bool,
    /// The asked-for properties the type has; one missing here does not
    /// exist on the type.
    pub fields: BTreeMap<String, FieldCapability>,
}

/// One property of the entity type.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldCapability {
    /// `Edm.Date`, `Edm.DateTimeOffset`, `Edm.String`, or an enum type.
    pub edm_type: String,
    /// False for key properties and for those annotated read-only.
    pub editable: bool,
    /// Why not editable, as `$metadata` says: `AllowEdit=false`,
    /// `Computed`, `Immutable`, `Permissions=Read`, `key property`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only_because: Option<String>,
}

impl FieldCapability {
    /// A date property without time and offset: written `2025-02-08`.
    pub fn is_date_only(&self) -> bool {
        self.edm_type == "Edm.Date"
    }
}

impl EntityCapabilities {
    /// The entity type's unqualified name, for messages.
    pub fn type_name(&self) -> &str {
        self.entity_type
            .rsplit_once('.')
            .map_or(&self.entity_type, |(_, name)| name)
    }
}

/// Why no capabilities were learnt.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    #[error("entity set {entity_set} is not in the service's $metadata")]
    EntitySetNotFound { entity_set: String },
    #[error("entity type {entity_type} is not in the service's $metadata")]
    EntityTypeNotFound { entity_type: String },
    #[error("$metadata is larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("$metadata not read within {0:?}")]
    TimedOut(Duration),
    #[error("$metadata is not valid CSDL XML: {0}")]
    Malformed(String),
    #[error("reading $metadata: {0}")]
    Read(#[source] std::sync::Arc<io::Error>),
}

/// An answer longer than the budget, as an I/O error through the reader.
#[derive(Debug, thiserror::Error)]
#[error("$metadata is larger than {limit} bytes")]
struct OverBudget {
    limit: usize,
}

/// Scans a whole document held in memory (tests, benchmarks).
pub fn parse_capabilities(
    document: &[u8],
    entity_set: &str,
    wanted: &[&str],
) -> Result<EntityCapabilities, MetadataError> {
    if document.len() > MAX_METADATA_BYTES {
        return Err(MetadataError::TooLarge {
            limit: MAX_METADATA_BYTES,
        });
    }
    let mut scan = Scan::new(entity_set, wanted);
    let mut reader = Reader::from_reader(document);
    let mut buf = Vec::new();
    loop {
        let event = reader.read_event_into(&mut buf).map_err(xml_error)?;
        if event == Event::Eof || scan.on_event(&event)? == Flow::Done {
            break;
        }
        buf.clear();
    }
    scan.finish()
}

/// Scans a document as it streams in, `chunks` at a time, reading no more
/// than `limit` bytes and stopping once the set and its type are known.
pub async fn read_capabilities<S, B, E>(
    chunks: S,
    limit: usize,
    entity_set: &str,
    wanted: &[&str],
) -> Result<EntityCapabilities, MetadataError>
where
    S: futures::Stream<Item = Result<B, E>> + Unpin,
    B: AsRef<[u8]> + bytes::Buf,
    E: std::error::Error + Send + Sync + 'static,
{
    let mut read = 0usize;
    let bounded = chunks.map_err(io::Error::other).and_then(move |chunk| {
        read = read.saturating_add(chunk.as_ref().len());
        let result = if read > limit {
            Err(io::Error::other(OverBudget { limit }))
        } else {
            Ok(chunk)
        };
        std::future::ready(result)
    });
    let reader = tokio_util::io::StreamReader::new(bounded);
    scan_async(reader, entity_set, wanted).await
}

async fn scan_async<R: AsyncBufRead + Unpin>(
    source: R,
    entity_set: &str,
    wanted: &[&str],
) -> Result<EntityCapabilities, MetadataError> {
    let mut scan = Scan::new(entity_set, wanted);
    let mut reader = Reader::from_reader(source);
    let mut buf = Vec::new();
    loop {
        let event = reader
            .read_event_into_async(&mut buf)
            .await
            .map_err(xml_error)?;
        if event == Event::Eof || scan.on_event(&event)? == Flow::Done {
            break;
        }
        buf.clear();
    }
    scan.finish()
}

/// The reader's error: the budget and transport errors that travelled
/// through it as I/O errors come out as themselves.
fn xml_error(error: quick_xml::Error) -> MetadataError {
    match error {
        quick_xml::Error::Io(io) => {
            if let Some(over) = io.get_ref().and_then(|e| e.downcast_ref::<OverBudget>()) {
                return MetadataError::TooLarge { limit: over.limit };
            }
            MetadataError::Read(io)
        }
        other => MetadataError::Malformed(other.to_string()),
    }
}

#[cfg(test)]
#[path = "metadata_tests.rs"]
mod tests;
