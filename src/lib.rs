//! sales-order-operator: declares D365 F&O sales-order status in Git and
//! applies it with ETag/If-Match optimistic locking.
//!
//! Boundaries: [`d365`] knows nothing of Kubernetes, [`reconcile`] does no
//! I/O, and [`controller`] is the only place that joins them.

pub mod api;
pub mod controller;
pub mod d365;
pub mod export;
#[cfg(feature = "fixtures")]
pub mod fixtures;
#[cfg(feature = "fixtures")]
pub mod health;
pub mod leader;
mod locks;
mod maps;
pub mod metrics;
pub mod reconcile;
pub mod server;
pub mod telemetry;
mod text;
