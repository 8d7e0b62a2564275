//! Integration tests that need no control plane: the D365 client against
//! the emulator and loopback stubs, one reconcile attempt over HTTP, and the
//! packaging artefacts (CRDs, Dockerfile, dashboards, Argo CD health).
//! One binary, so the dependency graph is linked once.

mod common;
mod memory;
mod stub;

#[path = "../shared/argocd.rs"]
mod argocd_lua;

mod argocd_health;
mod argocd_health_connection;
mod crdgen;
mod d365_adaptive;
mod d365_batch;
mod d365_batch_metrics;
mod d365_bulk_read;
mod d365_client;
mod d365_client_failures;
mod d365_fence;
mod d365_hostile;
mod d365_hostile_emulator;
mod d365_keys;
mod d365_metadata;
mod destinations;
mod dockerfile;
mod export;
mod grafana;
mod health_table;
mod proven_writes;
mod steady_status;
mod sync_emulator;
