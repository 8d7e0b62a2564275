//! The Lease loop: every tick one GET, then create, patch (renew, or take
//! over) or wait. A patch carries the resourceVersion just read, so of two
//! replicas writing at once one gets a 409 and reads again (a merge patch
//! with a resourceVersion is as guarded as an update, and needs only the
//! `patch` verb). Every write
//! that succeeds moves the fence's deadline, counted from when it was sent;
//! nothing else does, so a leader that cannot reach the API server stops
//! writing to D365 on its own.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::json;
use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior};
use tracing::{debug, info, warn};

use super::decide::{Observer, Record, Step};
use crate::d365::Fence;

/// Where this replica stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    Standby,
    Leader,
    /// It led and no longer may; the fence is revoked.
    Lost(String),
}

/// One replica's side of the election.
pub(crate) struct Elector {
    pub api: Api<Lease>,
    pub name: String,
    pub identity: String,
    /// Written as `leaseDurationSeconds`.
    pub duration: Duration,
    /// How often the holder renews and a standby looks.
    pub every: Duration,
    pub fence: Fence,
    pub role: watch::Sender<Role>,
}

impl Elector {
    /// Runs until the lease is lost (a standby runs for ever). A round
    /// that fails or hangs is given up after one tick and retried; only the
    /// fence's deadline bounds how long a leader survives that.
    pub(crate) async fn run(self) {
        let mut observer = Observer::default();
        let mut tick = tokio::time::interval(self.every);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if self.leading()
                && let Err(refused) = self.fence.check()
            {
                self.lose(refused.to_string());
            }
            if matches!(*self.role.borrow(), Role::Lost(_)) {
                return;
            }
            match tokio::time::timeout(self.every, self.round(&mut observer)).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => warn!(lease = %self.name, error = %error, "lease round failed"),
                Err(_) => {
                    warn!(lease = %self.name, timeout_ms = self.every.as_millis() as u64, "lease round timed out")
                }
            }
        }
    }

    /// One read and at most one write.
    async fn round(&self, observer: &mut Observer) -> Result<(), kube::Error> {
        let lease = self.api.get_opt(&self.name).await?;
        let record = lease.as_ref().map(|l| record_of(l, self.duration));
        let step = observer.step(&self.identity, record.as_ref(), Instant::now());
        match (step, self.leading()) {
            (Step::Wait { holder, .. }, true) => {
                self.lose(format!("{holder} holds the Lease"));
                Ok(())
            }
            (Step::Acquire, true) => {
                self.lose("the Lease was released or taken over".into());
                Ok(())
            }
            (Step::Wait { holder, left }, false) => {
                debug!(%holder, left_ms = left.as_millis() as u64, "lease held by another replica");
                Ok(())
            }
            (step, _) => self.write(step, lease).await,
        }
    }

    /// Creates, renews or takes the Lease; a 409 (someone wrote first) is
    /// left for the next round.
    async fn write(&self, step: Step, current: Option<Lease>) -> Result<(), kube::Error> {
        let spec = self.held(current.as_ref(), step != Step::Renew);
        let sent = Instant::now();
        let written = match current {
            None => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.name.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(spec),
                };
                self.api.create(&PostParams::default(), &lease).await
            }
            Some(current) => {
                let patch = json!({
                    "metadata": {"resourceVersion": current.metadata.resource_version},
                    "spec": spec,
                });
                let params = PatchParams::default();
                self.api
                    .patch(&self.name, &params, &Patch::Merge(patch))
                    .await
            }
        };
        match written {
            Ok(_) => {
                self.fence.renewed(sent);
                if !self.leading() {
                    info!(identity = %self.identity, lease = %self.name, "acquired the lease");
                    self.role.send_replace(Role::Leader);
                }
                Ok(())
            }
            Err(kube::Error::Api(status)) if status.code == 409 => {
                debug!(lease = %self.name, "lease written by another replica first");
                Ok(())
            }
            Err(error) => Err(error),
        }
    }

    /// The spec of `current` (or of a new Lease) held by us from now;
    /// `take` starts a new term (acquireTime, one more transition).
    fn held(&self, current: Option<&Lease>, take: bool) -> LeaseSpec {
        let now = MicroTime(Timestamp::now());
        let mut spec = current.and_then(|l| l.spec.clone()).unwrap_or_default();
        spec.holder_identity = Some(self.identity.clone());
        spec.lease_duration_seconds = Some(whole_seconds(self.duration));
        spec.renew_time = Some(now.clone());
        if take {
            spec.acquire_time = Some(now);
            let previous = spec.lease_transitions.unwrap_or(0);
            spec.lease_transitions = Some(if current.is_some() { previous + 1 } else { 0 });
        }
        spec
    }

    fn leading(&self) -> bool {
        *self.role.borrow() == Role::Leader
    }

    /// Stops every write at once, then tells the process.
    fn lose(&self, why: String) {
        self.fence.revoke();
        warn!(identity = %self.identity, lease = %self.name, reason = %why, "lost the lease");
        self.role.send_replace(Role::Lost(why));
    }
}

/// Gives the Lease up if this replica still holds it, so a standby takes
/// over at its next look instead of after a lease duration. Clears what
/// makes a holder, guarded by the resourceVersion read.
pub(crate) async fn release(
    api: &Api<Lease>,
    name: &str,
    identity: &str,
) -> Result<(), kube::Error> {
    let Some(lease) = api.get_opt(name).await? else {
        return Ok(());
    };
    let holder = lease
        .spec
        .as_ref()
        .and_then(|s| s.holder_identity.as_deref());
    if holder != Some(identity) {
        return Ok(());
    }
    let patch = json!({
        "metadata": {"resourceVersion": lease.metadata.resource_version},
        "spec": {
            "holderIdentity": null,
            "acquireTime": null,
            "renewTime": null,
            "leaseDurationSeconds": null,
        },
    });
    api.patch(name, &PatchParams::default(), &Patch::Merge(patch))
        .await?;
    Ok(())
}

/// The Lease as the decision sees it; a record without a duration gets
/// ours.
fn record_of(lease: &Lease, default_duration: Duration) -> Record {
    let spec = lease.spec.clone().unwrap_or_default();
    let duration = spec
        .lease_duration_seconds
        .and_then(|s| u64::try_from(s).ok())
        .filter(|s| *s > 0)
        .map_or(default_duration, Duration::from_secs);
    Record {
        holder: spec.holder_identity,
        duration,
        version: lease.metadata.resource_version.clone().unwrap_or_default(),
    }
}

fn whole_seconds(d: Duration) -> i32 {
    i32::try_from(d.as_secs().max(1)).unwrap_or(i32::MAX)
}
