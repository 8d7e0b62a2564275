//! The emulator's integration tests in one binary: one link of the whole
//! dependency graph instead of one per file. Each module drives a running
//! emulator over HTTP (`cli` runs the built binary).

mod admin;
mod assertions;
mod auth;
mod batch;
mod batch_errors;
mod capacity;
mod cli;
mod collection;
mod common;
mod entity;
mod faults;
mod federated;
mod hostile;
mod jws;
mod keys;
mod metadata;
mod unproven;
