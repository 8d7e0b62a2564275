//! Waiting on a condition with a deadline, never a sleep-and-hope.

use std::future::Future;
use std::time::{Duration, Instant};

/// `wait_for` gave up: the condition never held within the deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimedOut(pub Duration);

impl std::fmt::Display for TimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "condition not met within {:?}", self.0)
    }
}

impl std::error::Error for TimedOut {}

/// Polls `check` until it returns `Some`, or `timeout` passes. Polls fast
/// at first (20 ms) and backs off to 500 ms, so quick conditions cost little
/// and slow ones do not hammer the apiserver. `check` runs at least once,
/// and once more at the deadline.
///
/// ```no_run
/// # async fn t(api: kube::Api<k8s_openapi::api::core::v1::ConfigMap>) {
/// use std::time::Duration;
/// let cm = testkit::wait_for(Duration::from_secs(10), || async {
///     api.get_opt("settings").await.ok().flatten()
/// })
/// .await
/// .expect("ConfigMap appears");
/// # }
/// ```
pub async fn wait_for<T, F, Fut>(timeout: Duration, mut check: F) -> Result<T, TimedOut>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(20);
    loop {
        if let Some(v) = check().await {
            return Ok(v);
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(TimedOut(timeout));
        }
        tokio::time::sleep(pause.min(deadline - now)).await;
        pause = (pause * 2).min(Duration::from_millis(500));
    }
}
