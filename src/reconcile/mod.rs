//! The reconcile decision and the status it produces, as pure functions:
//! desired spec + observed D365 entity -> action; outcome -> status. No I/O,
//! so every rule is a table test.

mod backoff;
mod plan;
mod status;

pub use backoff::{BackoffPolicy, FAST_RETRIES};
pub use plan::{
    Action, Desired, FieldNames, Observed, PlanError, UNSET_DATE, date_to_entity, plan,
};
pub use status::{
    CONFLICT_WITHOUT_WRITER_HINT, Outcome, conflict_without_writer, next_status, set_condition,
};
