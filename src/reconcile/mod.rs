//! The reconcile decision and the status it produces, as pure functions:
//! desired spec + observed D365 entity -> action; outcome -> status. No I/O,
//! so every rule is a table test.

mod applied;
mod backoff;
mod plan;
pub mod simulate;
mod status;

pub use applied::{
    Accepted, Evidence, LastWrite, NOT_APPLIED_RESENDS, accepted, last_write, not_shown,
};
pub use backoff::{
    Backoff, BackoffPolicy, DEFAULT_CONFLICT_CAP, FAST_RETRIES, FailureKind, Failures,
};
pub use plan::{
    Action, Capabilities, Desired, FieldCaps, FieldNames, Observed, PlanError, UNSET_DATE,
    date_for, date_to_entity, plan, plan_with,
};
pub use status::{
    CONFLICT_WITHOUT_WRITER_HINT, Kstatus, Outcome, conflict_without_writer, next_status,
    set_condition, set_kstatus,
};
