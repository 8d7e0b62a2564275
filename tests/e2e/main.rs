//! End-to-end tests on a real kube-apiserver + etcd (one control plane for
//! the whole binary, from `testkit`), with the operator binary as a
//! subprocess and the D365 emulator on loopback; also the chart, rendered
//! by the real helm and its RBAC applied to the real apiserver.

#[path = "../shared/argocd.rs"]
mod argocd_lua;
mod helm;
mod install;
mod json_lines;
mod kstatus;
mod procfs;
mod support;

mod alerts;
mod batch;
mod behaviour;
mod bulk;
mod chaos;
mod chaos_checks;
mod chaos_cluster;
mod chaos_invariants;
mod chaos_schedule;
mod chaos_timeline;
mod chart;
mod chart_identity;
mod chart_rbac;
mod chart_shards;
mod chart_uninstall;
mod chart_values;
mod connection;
mod control_plane;
mod converge;
mod crds;
mod credentials;
mod d365_answers;
mod d365_batch_stops;
mod events;
mod export;
mod fencing;
mod gitops;
mod health;
mod health_setup;
mod hostile;
mod json_logs;
mod kubectl;
mod leader;
mod metadata;
mod owners;
mod proven_writes;
mod scale;
mod secret_watch;
mod shards;
mod steady;
mod strict;
mod throttle;
mod traces;
