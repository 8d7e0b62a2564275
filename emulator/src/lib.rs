//! D365 F&O OData emulator: the test double and demo backend of
//! sales-order-operator. Serves the token endpoint, `SalesOrderHeadersV2`
//! by key and as a collection, `$batch`, and an admin API under
//! `/_emulator/`. Behaviours cite their class in `shared/d365-odata.md`;
//! see README.md.

mod admin;
mod assertion;
mod auth;
mod batch;
mod certcred;
mod config;
mod entity;
mod faults;
mod filter;
mod generate;
mod handlers;
mod hostile;
mod journal;
mod jwt;
mod keys;
mod metadata;
mod multipart;
mod odata;
mod oidc;
mod profile;
#[cfg(test)]
mod proptests;
mod query;
mod read;
mod refusal;
mod server;
mod state;
mod store;
mod throttle;
mod write;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use axum::serve::ListenerExt;
use parking_lot::Mutex;
use serde_json::{Map, Value};
use thiserror::Error;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use certcred::CertError;
pub use config::{
    CapacityModel, Config, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_FEDERATED_AUDIENCE,
    DEFAULT_TENANT, Faults, FederatedCredential, RegisteredCertificate,
};
pub use entity::{ENTITY_SET, UNSET_DATE};
pub use generate::generate_orders;
pub use journal::{GrantKind, RequestRecord, TokenGrant, WriteRecord, WriteSource};
/// How the emulator reads a `/data/...` path: public so the operator's key
/// printing can be tested against it (its src/d365/proptests.rs).
pub use keys::{KeyError, Resource, parse_resource};
pub use oidc::OidcError;
pub use profile::Profile;

use state::State;
use store::{Store, key};

#[derive(Debug, Error)]
pub enum EmulatorError {
    #[error("cannot bind {0}: {1}")]
    Bind(SocketAddr, #[source] std::io::Error),
    #[error("invalid seed order: {0}")]
    Seed(#[from] entity::EntityError),
    #[error("invalid registered client certificate")]
    Certificate(#[from] CertError),
    #[error("cannot set up OIDC key fetches")]
    Oidc(#[from] OidcError),
}

/// The server task and the signal that stops it.
type Running = (oneshot::Sender<()>, JoinHandle<()>);

/// A cheap, cloneable handle to a running emulator.
#[derive(Clone)]
pub struct Emulator {
    state: Arc<State>,
    shutdown: Arc<Mutex<Option<Running>>>,
}

impl Emulator {
    /// Binds, spawns the server on the current tokio runtime and returns
    /// once it is listening.
    pub async fn start(mut config: Config) -> Result<Emulator, EmulatorError> {
        // The seeds live on only as compact rows in the store.
        let assertions = assertion::Verifier::new(&config)?;
        let seeds = std::mem::take(&mut config.orders);
        let store = Store::new(&seeds, generate::orders_iter(config.generate, config.seed))?;
        drop(seeds);
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|e| EmulatorError::Bind(config.listen, e))?;
        let mut addr = listener
            .local_addr()
            .map_err(|e| EmulatorError::Bind(config.listen, e))?;
        if addr.ip().is_unspecified() {
            addr.set_ip(Ipv4Addr::LOCALHOST.into());
        }
        let base_url = match &config.public_url {
            Some(u) => u.trim_end_matches('/').to_string(),
            None => format!("http://{addr}"),
        };
        let state = Arc::new(State::new(config, base_url, store, assertions));
        let app = server::router(state.clone());
        let (tx, rx) = oneshot::channel::<()>();
        // Small answers go out at once (no Nagle delay on keep-alive).
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let task = tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async {
                let _ = rx.await;
            });
            if let Err(e) = serve.await {
                tracing::error!(error = %e, "emulator server stopped");
            }
        });
        Ok(Emulator {
            state,
            shutdown: Arc::new(Mutex::new(Some((tx, task)))),
        })
    }

    /// The environment URL; the OData root is `url() + "/data"`.
    pub fn url(&self) -> String {
        self.state.base_url.clone()
    }

    /// Token endpoint URL for the configured tenant.
    pub fn token_url(&self) -> String {
        format!(
            "{}/{}/oauth2/v2.0/token",
            self.url(),
            self.state.config.tenant
        )
    }

    /// The scope a client must ask for.
    pub fn scope(&self) -> String {
        format!("{}/.default", self.url().to_lowercase())
    }

    /// Inserts or replaces an order (missing fields get defaults, new ETag);
    /// recorded in the history as an admin write.
    pub fn put_order(&self, entity: Value) {
        if let Err(e) = admin::put_orders(&self.state, std::slice::from_ref(&entity)) {
            tracing::warn!(error = %e, "put_order: invalid order ignored");
        }
    }

    /// The current entity including `@odata.etag`.
    pub fn order(&self, data_area_id: &str, sales_order_number: &str) -> Option<Value> {
        let t = self.state.store.read();
        t.get(&key(data_area_id, sales_order_number))
            .map(|o| Value::Object(o.to_json()))
    }

    /// Another user edits the order; returns the new ETag (None if the
    /// order is absent or a field is invalid).
    pub fn external_write(
        &self,
        data_area_id: &str,
        sales_order_number: &str,
        fields: Map<String, Value>,
    ) -> Option<String> {
        write::external_write(
            &self.state,
            data_area_id,
            sales_order_number,
            &fields,
            WriteSource::External,
        )
    }

    pub fn faults(&self) -> Faults {
        (*self.state.faults()).clone()
    }

    pub fn set_faults(&self, f: Faults) {
        self.state.set_faults(f);
    }

    /// Every write, accepted or refused, in the order it took effect.
    pub fn history(&self) -> Vec<WriteRecord> {
        self.state.journal.history()
    }

    /// The most recent requests (bounded ring), admin requests excluded.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.state.journal.requests()
    }

    /// Requests by "METHOD STATUS".
    pub fn counters(&self) -> std::collections::BTreeMap<String, u64> {
        self.state.journal.counters()
    }

    /// `/data` requests in flight under the capacity model (`Faults::capacity`):
    /// lets a test know its load has arrived instead of guessing a delay.
    pub fn capacity_in_flight(&self) -> u32 {
        self.state.throttle.load_in_flight()
    }

    pub fn token_requests(&self) -> u64 {
        self.state.journal.token_requests()
    }

    /// The last 1,024 access tokens issued (expired and revoked ones too),
    /// oldest first: for tests asserting that no token leaks into logs,
    /// statuses or events. Tokens are otherwise never shown.
    pub fn issued_tokens(&self) -> Vec<String> {
        self.state.tokens.history()
    }

    /// Every token issued since start or reset (bounded), with the kind of
    /// credential the client used.
    pub fn token_grants(&self) -> Vec<TokenGrant> {
        self.state.journal.grants()
    }

    /// Every issued token becomes invalid: the next `/data` call gets 401.
    pub fn revoke_tokens(&self) {
        self.state.tokens.revoke_all();
    }

    /// Orders back to the initial set (with their initial ETags), history, requests,
    /// counters and throttling cleared, fault RNG reseeded. Faults and
    /// tokens are kept.
    pub fn reset(&self) {
        admin::reset(&self.state);
    }

    /// Stops the server and waits for it to finish.
    pub async fn shutdown(self) {
        let taken = self.shutdown.lock().take();
        if let Some((tx, task)) = taken {
            let _ = tx.send(());
            // Graceful first; a held-back (hanging) answer must not block it.
            let abort = task.abort_handle();
            if tokio::time::timeout(std::time::Duration::from_secs(2), task)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
    }
}
