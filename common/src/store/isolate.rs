//! Many callers' rows in one statement, without letting one caller's bad data fail the others.
//!
//! Batching writes (ingest's events, the matcher's executions, the executor's attempts, the
//! scheduler's delayed jobs) puts many requests or messages into one statement, and PostgreSQL
//! refuses a statement whole. When it refuses because of the data (a value it cannot store, a
//! limit of its own), the batch is written again in halves, down to the single item at fault:
//! that item gets the refusal, every other one is stored as if it had come alone. When it
//! fails for any other reason (the connection, a restart), every item gets that failure, to be
//! retried as before.

use std::future::Future;
use std::ops::Range;
use std::sync::Arc;

/// Whether PostgreSQL refused a statement because of the values in it, so that the same rows
/// can never succeed while others can: a data exception (class 22: a value out of range, bad
/// text, a NUL byte, a stack too deep for a JSON value), an integrity violation (class 23), a
/// program limit (class 54: an index row too large, a statement too complex), or a value the
/// driver could not encode.
pub fn is_data_error(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(error) => error.code().is_some_and(|code| {
            ["22", "23", "54"]
                .iter()
                .any(|class| code.starts_with(class))
        }),
        sqlx::Error::Encode(_) => true,
        _ => false,
    }
}

/// [`is_data_error`] for an error that may wrap a database error.
pub fn is_data_error_in(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<sqlx::Error>()
            .is_some_and(is_data_error)
    })
}

/// Why one item of a batch was not written.
#[derive(Debug)]
pub enum WriteFailure<E> {
    /// Written alone, its own data was refused: sending it again cannot help.
    Refused(E),
    /// The write failed for a reason of the moment, shared by the items written with it.
    Failed(Arc<E>),
    /// The write answered fewer results than it was given items (a bug), so this one's
    /// outcome is unknown: to be treated as failed.
    Unanswered,
}

impl<E: std::fmt::Display> std::fmt::Display for WriteFailure<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Refused(error) => write!(f, "refused: {error:#}"),
            Self::Failed(error) => write!(f, "{error:#}"),
            Self::Unanswered => f.write_str("the write answered no result for it"),
        }
    }
}

/// Writes `count` items with `write`, which writes the items in a range in one statement and
/// answers one result per item. On a data error (`is_data`) the range is split in halves, each
/// written on its own, down to the one item at fault. Ranges are written in order, so an item
/// never goes before one ahead of it. Results are in item order.
pub async fn write_isolated<R, E, W, Fut>(
    count: usize,
    is_data: impl Fn(&E) -> bool,
    mut write: W,
) -> Vec<Result<R, WriteFailure<E>>>
where
    W: FnMut(Range<usize>) -> Fut,
    Fut: Future<Output = Result<Vec<R>, E>>,
{
    let mut results: Vec<Option<Result<R, WriteFailure<E>>>> = (0..count).map(|_| None).collect();
    // A stack of ranges still to write, the next one on top.
    let mut pending: Vec<Range<usize>> = Vec::new();
    if count > 0 {
        pending.push(0..count);
    }
    while let Some(range) = pending.pop() {
        match write(range.clone()).await {
            Ok(answers) => {
                for (slot, answer) in results[range].iter_mut().zip(answers) {
                    *slot = Some(Ok(answer));
                }
            }
            Err(error) if is_data(&error) && range.len() > 1 => {
                let middle = range.start + range.len() / 2;
                pending.push(middle..range.end);
                pending.push(range.start..middle);
            }
            Err(error) if is_data(&error) => {
                results[range.start] = Some(Err(WriteFailure::Refused(error)));
            }
            Err(error) => {
                let error = Arc::new(error);
                for slot in &mut results[range] {
                    *slot = Some(Err(WriteFailure::Failed(error.clone())));
                }
            }
        }
    }
    results
        .into_iter()
        .map(|result| result.unwrap_or(Err(WriteFailure::Unanswered)))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;

    #[derive(Debug, Clone, PartialEq)]
    enum Fault {
        Data,
        Down,
    }

    /// Writes items (numbers) as a database would: a statement holding a bad item is refused
    /// whole; otherwise one holding a `down` item fails for the moment.
    async fn run(items: &[u32], bad: &[u32], down: &[u32]) -> (Vec<Result<u32, String>>, usize) {
        let statements = RefCell::new(0);
        let written = write_isolated(
            items.len(),
            |fault: &Fault| *fault == Fault::Data,
            |range: Range<usize>| {
                *statements.borrow_mut() += 1;
                let chunk = &items[range];
                let result = if chunk.iter().any(|i| bad.contains(i)) {
                    Err(Fault::Data)
                } else if chunk.iter().any(|i| down.contains(i)) {
                    Err(Fault::Down)
                } else {
                    Ok(chunk.iter().map(|i| i * 10).collect())
                };
                async move { result }
            },
        )
        .await;
        let shown = written
            .into_iter()
            .map(|r| match r {
                Ok(n) => Ok(n),
                Err(WriteFailure::Refused(f)) => Err(format!("refused {f:?}")),
                Err(WriteFailure::Failed(f)) => Err(format!("failed {f:?}")),
                Err(WriteFailure::Unanswered) => Err("unanswered".to_owned()),
            })
            .collect();
        (shown, statements.into_inner())
    }

    #[tokio::test]
    async fn a_good_batch_is_one_statement() {
        let (results, statements) = run(&[1, 2, 3], &[], &[]).await;
        assert_eq!(results, vec![Ok(10), Ok(20), Ok(30)]);
        assert_eq!(statements, 1);
    }

    #[tokio::test]
    async fn only_the_bad_item_is_refused() {
        let items: Vec<u32> = (0..16).collect();
        let (results, statements) = run(&items, &[5], &[]).await;
        for (i, result) in results.iter().enumerate() {
            if i == 5 {
                assert_eq!(result, &Err("refused Data".to_owned()));
            } else {
                assert_eq!(result, &Ok(i as u32 * 10));
            }
        }
        // One whole try, then two halves per level down to the item: 1 + 2 * log2(16).
        assert_eq!(statements, 9);
    }

    #[tokio::test]
    async fn several_bad_items_are_each_refused() {
        let items: Vec<u32> = (0..7).collect();
        let (results, _) = run(&items, &[0, 6, 3], &[]).await;
        let refused: Vec<usize> = (0..7).filter(|i| results[*i].is_err()).collect();
        assert_eq!(refused, vec![0, 3, 6]);
    }

    #[tokio::test]
    async fn a_failure_of_the_moment_fails_its_statement_only() {
        let (results, _) = run(&[1, 2, 3, 4], &[], &[1, 2, 3, 4]).await;
        assert!(results.iter().all(|r| r == &Err("failed Down".to_owned())));
        // A bad item and a failure in the other half: the good half is still stored.
        let (results, _) = run(&[1, 2, 3, 4], &[1], &[4]).await;
        assert_eq!(
            results,
            vec![
                Err("refused Data".to_owned()),
                Ok(20),
                Err("failed Down".to_owned()),
                Err("failed Down".to_owned()),
            ]
        );
    }

    #[tokio::test]
    async fn nothing_to_write_writes_nothing() {
        let (results, statements) = run(&[], &[], &[]).await;
        assert!(results.is_empty());
        assert_eq!(statements, 0);
    }
}
