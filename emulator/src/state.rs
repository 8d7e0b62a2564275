//! Shared state of a running emulator, behind an `Arc` in every handler.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use axum::http::{HeaderMap, header};
use parking_lot::RwLock;

use crate::assertion::Verifier;
use crate::auth::Tokens;
use crate::config::{Config, Faults};
use crate::faults::FaultRng;
use crate::journal::Journal;
use crate::store::Store;
use crate::throttle::Throttle;

pub struct State {
    pub config: Config,
    /// Environment URL, e.g. `http://127.0.0.1:PORT`.
    pub base_url: String,
    faults: RwLock<Arc<Faults>>,
    pub store: Store,
    pub journal: Journal,
    pub tokens: Tokens,
    /// Certificate and federated credentials of client assertions.
    pub assertions: Verifier,
    pub rng: FaultRng,
    pub throttle: Throttle,
    /// False until the first `/data` request after start or reset.
    pub warm: AtomicBool,
}

impl State {
    pub fn new(config: Config, base_url: String, store: Store, assertions: Verifier) -> State {
        State {
            assertions,
            faults: RwLock::new(Arc::new(config.faults.clone())),
            rng: FaultRng::new(config.seed),
            tokens: Tokens::default(),
            journal: Journal::default(),
            throttle: Throttle::default(),
            warm: AtomicBool::new(false),
            store,
            base_url,
            config,
        }
    }

    /// Current fault settings (cheap: an `Arc` clone).
    pub fn faults(&self) -> Arc<Faults> {
        self.faults.read().clone()
    }

    pub fn set_faults(&self, f: Faults) {
        *self.faults.write() = Arc::new(f);
    }

    /// Without `cross-company=true` only the default company is visible [doc].
    pub fn visible(&self, area: &str, cross_company: bool) -> bool {
        cross_company || area.eq_ignore_ascii_case(&self.config.default_company)
    }

    /// The environment URL as the client sees it: the configured public
    /// URL, else `http://<Host header>`, else the bound address. Lets the
    /// emulator sit behind a Service name in a cluster.
    pub fn env_url(&self, headers: &HeaderMap) -> String {
        if let Some(u) = &self.config.public_url {
            return u.trim_end_matches('/').to_string();
        }
        match headers.get(header::HOST).and_then(|h| h.to_str().ok()) {
            Some(host) => format!("http://{host}"),
            None => self.base_url.clone(),
        }
    }
}
