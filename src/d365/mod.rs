//! OData client for Dynamics 365 Finance & Operations sales order headers.
//!
//! Reads one order with `$select` and writes only changed fields with
//! `If-Match`, so a concurrent edit in D365 surfaces as a conflict instead
//! of being overwritten. One [`D365Client`] per connection holds the token
//! cache and the limiter that every order of that connection shares.
//!
//! Knows nothing of Kubernetes: the controller maps [`D365Error`] to
//! conditions and [`RequestEvent`]s to metrics. Facts about D365 come from
//! `shared/d365-odata.md`; `[obs]`/`[doc]`/`[spec]` tags in comments refer
//! to its source classes.

mod aimd;
mod auth;
mod batch;
mod bulk_filter;
mod bulk_read;
mod client;
mod coalesce;
mod collection;
mod credential;
mod csdl;
mod destinations;
mod entity;
mod error;
mod error_body;
mod etag;
mod fence;
mod http;
mod key;
mod limiter;
mod metadata;
mod observe;
#[cfg(test)]
mod proptests;
mod redact;
mod sender;
mod settings;
#[cfg(test)]
mod token_proptests;
mod writer;

pub use client::{CapabilityError, D365Client};
pub use collection::OrderPages;
pub use credential::{CertificateError, ClientCertificate, Credential};
pub use destinations::{
    DEFAULT_AUTHORITY_HOSTS, DEFAULT_INSECURE_HOSTS, Destinations, HostListError, HostPattern,
    check_scope,
};
pub use entity::{Entity, PatchOutcome};
pub use error::{
    D365Error, DEFAULT_RETRY_AFTER, MAX_RETRY_AFTER, ODataErrorDetails, ResponseContext,
};
pub use etag::{ETag, ODATA_ETAG};
pub use fence::{Fence, Fenced};
pub use http::AnswerTooLarge;
pub use key::OrderKey;
pub use metadata::{
    EntityCapabilities, FieldCapability, MAX_METADATA_BYTES, METADATA_TIME_BUDGET, MetadataError,
    parse_capabilities, read_capabilities,
};
pub use observe::{NoopObserver, OperationEvent, RequestEvent, RequestKind, RequestObserver};
pub use settings::{
    BatchSettings, ConnectionSettings, DEFAULT_MAX_ANSWER_BYTES, MAX_BATCH_OPERATIONS,
    MAX_SMALL_ANSWER_BYTES,
};
pub use writer::Writer;
