//! The chaos run's cluster: a private control plane (its kube-apiserver
//! gets killed, so not the shared one) and two operator replicas with
//! leader election, each reaching the API server through its own proxy so
//! one can be cut off alone. Every kill, cut, restart and outage lands in
//! a [`Timeline`] that the fence check reads.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use kube::{Api, Client};
use testkit::{ControlPlane, Proxy};

use crate::chaos_timeline::{End, Outage, Timeline, now_ms};
use crate::support::Operator;

const LEASE: &str = "sales-order-operator";
/// How often the run looks at its processes while it waits.
const TICK: Duration = Duration::from_millis(250);
/// A replica that exited by itself comes back after this, as the kubelet
/// restarts a container (without its growing back-off).
const RESTART_DELAY: Duration = Duration::from_secs(1);

/// One replica slot: its proxy, and the process now running in it.
struct Replica {
    slot: String,
    proxy: Proxy,
    kubeconfig: PathBuf,
    /// Pods so far: a new pod (new identity) after each SIGKILL.
    pods: u32,
    running: Option<(String, Operator)>,
    exited_at: Option<Instant>,
}

pub struct Cluster {
    pub cp: ControlPlane,
    pub client: Client,
    pub ns: String,
    args: Vec<String>,
    replicas: Vec<Replica>,
    pub timeline: Timeline,
    /// Every operator log, for a failure message.
    pub logs: Vec<PathBuf>,
}

impl Cluster {
    /// Starts replicas `a` and `b` on `cp`, watching `ns`.
    pub async fn start(cp: ControlPlane, ns: &str, lease_seconds: u64, args: &[&str]) -> Cluster {
        let mut base: Vec<String> = [
            "--leader-elect",
            "--lease-name",
            LEASE,
            "--lease-namespace",
            ns,
            "--lease-duration-seconds",
            &lease_seconds.to_string(),
            // Short leases need short renewals and margin: the operator
            // wants lease − margin ≥ two renew intervals.
            "--lease-renew-interval",
            "1s",
            "--lease-fence-margin",
            "1s",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        base.extend(args.iter().map(|s| s.to_string()));
        let mut replicas = Vec::new();
        for slot in ["a", "b"] {
            let proxy = Proxy::start(cp.addr()).await.expect("proxy starts");
            replicas.push(Replica {
                slot: slot.into(),
                kubeconfig: cp.kubeconfig_through(&proxy),
                proxy,
                pods: 0,
                running: None,
                exited_at: None,
            });
        }
        let mut cluster = Cluster {
            client: cp.client(),
            cp,
            ns: ns.into(),
            args: base,
            replicas,
            timeline: Timeline {
                lease_ms: lease_seconds * 1000,
                ..Timeline::default()
            },
            logs: Vec::new(),
        };
        for i in 0..cluster.replicas.len() {
            cluster.launch(i, true);
        }
        cluster
    }

    /// A new process in slot `i`: in a new pod (a new identity) or in the
    /// same pod (a container restart, the same identity).
    fn launch(&mut self, i: usize, new_pod: bool) {
        let r = &mut self.replicas[i];
        r.pods += u32::from(new_pod);
        let identity = format!("chaos-{}-{}", r.slot, r.pods);
        let mut args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        args.extend(["--identity", &identity]);
        let op = Operator::start(&r.kubeconfig, &self.ns, &args);
        self.logs.push(op.log.clone());
        self.timeline.started(&identity, &r.slot);
        r.running = Some((identity, op));
        r.exited_at = None;
    }

    /// Restarts replicas that exited by themselves (e.g. on losing the
    /// Lease) in their pod, as the kubelet would.
    pub fn supervise(&mut self) {
        for i in 0..self.replicas.len() {
            let r = &mut self.replicas[i];
            if let Some((identity, op)) = &mut r.running
                && op.exited().is_some()
            {
                let identity = identity.clone();
                self.timeline.ended(&identity, End::Exited);
                r.running = None;
                r.exited_at = Some(Instant::now());
            }
            if r.running.is_none() && r.exited_at.is_some_and(|t| t.elapsed() >= RESTART_DELAY) {
                self.launch(i, false);
            }
        }
    }

    /// Waits `d`, looking after the replicas meanwhile.
    pub async fn pause(&mut self, d: Duration) {
        self.pause_until(Instant::now() + d).await;
    }

    pub async fn pause_until(&mut self, until: Instant) {
        loop {
            self.supervise();
            let now = Instant::now();
            if now >= until {
                return;
            }
            tokio::time::sleep(TICK.min(until - now)).await;
        }
    }

    async fn holder(&self) -> Option<String> {
        let leases: Api<Lease> = Api::namespaced(self.client.clone(), &self.ns);
        leases.get(LEASE).await.ok()?.spec?.holder_identity
    }

    /// The slot whose running process holds the Lease now, if any.
    async fn live_leader(&self) -> Option<usize> {
        let holder = self.holder().await?;
        self.replicas
            .iter()
            .position(|r| r.running.as_ref().is_some_and(|(id, _)| *id == holder))
    }

    /// Waits (looking after the replicas) for a running process to hold
    /// the Lease; panics after `timeout`, since chaos without a leader
    /// proves nothing.
    pub async fn leader(&mut self, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(i) = self.live_leader().await {
                return i;
            }
            assert!(
                Instant::now() < deadline,
                "no running replica took the Lease within {timeout:?}; logs: {:?}",
                self.logs
            );
            self.pause(TICK).await;
        }
    }

    /// SIGKILLs the leader (a node crash) and starts its replacement pod at
    /// once; returns the killed identity.
    pub async fn kill_leader(&mut self, timeout: Duration) -> String {
        let i = self.leader(timeout).await;
        let (identity, mut op) = self.replicas[i].running.take().expect("leader runs");
        op.kill();
        self.timeline.ended(&identity, End::Killed);
        self.launch(i, true);
        identity
    }

    /// Cuts the leader off the API server; returns its slot, identity and
    /// when the cut began.
    pub async fn cut_leader(&mut self, timeout: Duration) -> (usize, String, u64) {
        let i = self.leader(timeout).await;
        self.replicas[i].proxy.cut();
        let identity = self.replicas[i]
            .running
            .as_ref()
            .expect("leader runs")
            .0
            .clone();
        (i, identity, now_ms())
    }

    /// Waits until another running replica holds the Lease, at most until
    /// `until`; returns when it was seen.
    pub async fn takeover(&mut self, from: usize, until: Instant) -> Option<Instant> {
        while Instant::now() < until {
            if self.live_leader().await.is_some_and(|i| i != from) {
                return Some(Instant::now());
            }
            self.pause(TICK).await;
        }
        None
    }

    /// Reconnects slot `i`, recording its outage since `from_ms`.
    pub fn restore(&mut self, i: usize, from_ms: u64) {
        let to_ms = now_ms();
        self.replicas[i].proxy.restore();
        self.timeline.outages.push(Outage {
            slot: Some(self.replicas[i].slot.clone()),
            what: format!("the cut of slot {}", self.replicas[i].slot),
            from_ms,
            to_ms,
        });
    }

    /// Once a replica leads (an outage without a leader tests no fence),
    /// SIGKILLs kube-apiserver, keeps it down for `down`, starts it again
    /// and waits until it is ready; returns the leader's identity and how
    /// long the API server was unreachable.
    pub async fn restart_apiserver(
        &mut self,
        down: Duration,
        timeout: Duration,
    ) -> (String, Duration) {
        let i = self.leader(timeout).await;
        let leader = self.replicas[i]
            .running
            .as_ref()
            .expect("leader runs")
            .0
            .clone();
        let stopped = Instant::now();
        self.cp.stop_apiserver().await;
        let from_ms = now_ms();
        self.pause(down).await;
        // Nobody renews before the start: a conservative end of the outage.
        let to_ms = now_ms();
        self.cp.start_apiserver().await;
        self.timeline.outages.push(Outage {
            slot: None,
            what: "the kube-apiserver outage".into(),
            from_ms,
            to_ms,
        });
        (leader, stopped.elapsed())
    }
}
