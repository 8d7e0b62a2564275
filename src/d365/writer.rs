//! Who sends a connection's requests: one replica of the operator.

use super::Fence;

/// The process behind the requests: named in every request's `User-Agent`
/// (so D365's logs and the emulator's journal tell replicas apart), and
/// allowed to write only while its [`Fence`] is open. Shared by every
/// connection of a process.
#[derive(Debug, Clone, Default)]
pub struct Writer {
    /// The replica's identity (the pod name in a cluster).
    pub replica: Option<String>,
    pub fence: Fence,
}

impl Writer {
    /// `sales-order-operator/<version> (<replica>)`; the replica is cut to
    /// characters safe in a header comment, so any identity fits.
    pub fn user_agent(&self) -> String {
        let product = concat!("sales-order-operator/", env!("CARGO_PKG_VERSION"));
        let replica: String = self
            .replica
            .as_deref()
            .unwrap_or_default()
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || "-._:@".contains(*c))
            .take(128)
            .collect();
        if replica.is_empty() {
            product.to_owned()
        } else {
            format!("{product} ({replica})")
        }
    }
}
