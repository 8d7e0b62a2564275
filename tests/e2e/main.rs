//! End-to-end tests on a real kube-apiserver + etcd (one control plane for
//! the whole binary, from `testkit`), with the operator binary as a
//! subprocess and the D365 emulator on loopback; also the chart, rendered
//! by the real helm and its RBAC applied to the real apiserver.

mod helm;
mod install;
mod procfs;
mod support;

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
mod connection;
mod control_plane;
mod converge;
mod crds;
mod credentials;
mod d365_answers;
mod d365_batch_stops;
mod export;
mod fencing;
mod hostile;
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
