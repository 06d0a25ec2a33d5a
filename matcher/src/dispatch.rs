//! Pure assembly of what the matcher sends on: job batches from recorded executions.

use herald_common::event::Event;
use herald_common::messages::{ExecutionJob, JobBatch};
use herald_common::status::ExecutionStatus;
use herald_common::store::StoredExecution;

/// Most jobs carried by one broker message.
pub const JOBS_PER_MESSAGE: usize = 128;

/// Jobs for executions that still need their first attempt. An execution recorded by an
/// earlier delivery of the same event that is still `pending` gets its job again (the first
/// hand-over may have been lost); one that has moved on does not.
pub fn first_attempt_jobs<'a>(
    executions: &[StoredExecution],
    event_of: impl Fn(&StoredExecution) -> Option<&'a Event>,
) -> Vec<JobBatch> {
    let jobs: Vec<ExecutionJob> = executions
        .iter()
        .filter(|e| e.status == ExecutionStatus::Pending)
        .filter_map(|e| {
            Some(ExecutionJob {
                step: None,
                execution_id: e.id,
                tenant_id: e.tenant_id,
                action_id: e.action_id,
                attempt: 1,
                event: event_of(e)?.clone(),
            })
        })
        .collect();
    jobs.chunks(JOBS_PER_MESSAGE)
        .map(|chunk| JobBatch {
            jobs: chunk.to_vec(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use herald_common::event::{EventLimits, IncomingEvent};
    use herald_common::ids::{ActionId, ExecutionId, TenantId};

    fn event() -> Event {
        let incoming: IncomingEvent = serde_json::from_str(r#"{"type":"a.b"}"#).unwrap();
        incoming
            .validate(TenantId::new(), None, Utc::now(), &EventLimits::default())
            .unwrap()
    }

    fn stored(status: ExecutionStatus, inserted: bool, event: &Event) -> StoredExecution {
        StoredExecution {
            id: ExecutionId::new(),
            tenant_id: event.tenant_id,
            event_id: event.id.clone(),
            action_id: ActionId::new(),
            status,
            attempts: 0,
            inserted,
        }
    }

    #[test]
    fn only_pending_executions_get_jobs() {
        let e = event();
        let rows = vec![
            stored(ExecutionStatus::Pending, true, &e),
            stored(ExecutionStatus::Pending, false, &e),
            stored(ExecutionStatus::Succeeded, false, &e),
            stored(ExecutionStatus::Processing, false, &e),
        ];
        let batches = first_attempt_jobs(&rows, |_| Some(&e));
        assert_eq!(batches.len(), 1);
        assert_eq!(batches[0].jobs.len(), 2);
        assert!(batches[0].jobs.iter().all(|j| j.attempt == 1));
    }

    #[test]
    fn jobs_are_split_into_messages() {
        let e = event();
        let rows: Vec<_> = (0..300)
            .map(|_| stored(ExecutionStatus::Pending, true, &e))
            .collect();
        let batches = first_attempt_jobs(&rows, |_| Some(&e));
        let sizes: Vec<_> = batches.iter().map(|b| b.jobs.len()).collect();
        assert_eq!(sizes, vec![128, 128, 44]);
    }
}
