//! How a workflow run moves on, decided from the recorded state of its steps alone: which steps
//! start, which are skipped or cancelled, and whether the run has ended.
//!
//! The executor calls [`progress`] in the transaction that records a step's end, on the rows
//! it has just locked, and stores what it says before it hands anything on; so two executors
//! that finish two steps of one run at once cannot both start (or both miss) the step after
//! them, and a run resumed after a crash is moved on by the same rule as a run that never
//! stopped.

use std::collections::BTreeMap;

use crate::status::StepStatus;

/// The id the run's `on_failure` handler is recorded under: not a valid step id, so no step
/// can take it.
pub const ON_FAILURE: &str = "@on_failure";

/// One step as the rule sees it: its id and what it waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub id: String,
    pub depends_on: Vec<String>,
}

/// A run's steps, in the order the action gives them, and whether it has `on_failure`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Graph {
    pub steps: Vec<Node>,
    pub on_failure: bool,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunEnd {
    Succeeded,
    /// `step` failed for good (the first one, in the action's order, if several did).
    Failed {
        step: String,
    },
}

/// What to do next, as [`progress`] decides it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    /// Steps to hand on now (their dependencies all succeeded), in the action's order; may
    /// hold [`ON_FAILURE`].
    pub start: Vec<String>,
    /// Steps that will never run because one they depend on was skipped.
    pub skip: Vec<String>,
    /// Steps that will never run because the run failed.
    pub cancel: Vec<String>,
    /// Set once nothing is left to run.
    pub end: Option<RunEnd>,
}

/// The next moves of a run whose steps are recorded as `states` (a step not in it is
/// waiting). Steps that are queued or retrying are left to finish; a step that failed stops
/// every step not yet started and starts `on_failure` once.
pub fn progress(graph: &Graph, states: &BTreeMap<String, StepStatus>) -> Progress {
    let mut state: BTreeMap<&str, StepStatus> = graph
        .steps
        .iter()
        .map(|node| {
            let status = states.get(&node.id).copied();
            (node.id.as_str(), status.unwrap_or(StepStatus::Waiting))
        })
        .collect();
    let mut next = Progress::default();
    let failed = graph
        .steps
        .iter()
        .find(|node| state[node.id.as_str()] == StepStatus::Failed);

    if let Some(failed) = failed {
        for node in &graph.steps {
            if state[node.id.as_str()] == StepStatus::Waiting {
                next.cancel.push(node.id.clone());
            }
        }
        let handler = states.get(ON_FAILURE).copied();
        let handler_done = if graph.on_failure {
            match handler {
                None | Some(StepStatus::Waiting) => {
                    next.start.push(ON_FAILURE.to_owned());
                    false
                }
                Some(status) => status.is_terminal(),
            }
        } else {
            true
        };
        let in_flight = state.values().any(|s| in_flight(*s));
        if handler_done && !in_flight {
            next.end = Some(RunEnd::Failed {
                step: failed.id.clone(),
            });
        }
        return next;
    }

    // Skips carry on down the graph, so go round until nothing changes (a run has a bounded
    // number of steps, and each round settles at least one of them or ends).
    loop {
        let mut changed = false;
        for node in &graph.steps {
            if state[node.id.as_str()] != StepStatus::Waiting {
                continue;
            }
            let deps = node.depends_on.iter().map(|d| {
                state
                    .get(d.as_str())
                    .copied()
                    .unwrap_or(StepStatus::Waiting)
            });
            let deps: Vec<StepStatus> = deps.collect();
            if deps
                .iter()
                .any(|s| matches!(s, StepStatus::Skipped | StepStatus::Cancelled))
            {
                state.insert(node.id.as_str(), StepStatus::Skipped);
                next.skip.push(node.id.clone());
                changed = true;
            } else if deps.iter().all(|s| *s == StepStatus::Succeeded) {
                state.insert(node.id.as_str(), StepStatus::Queued);
                next.start.push(node.id.clone());
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    if state.values().all(|s| s.is_terminal()) {
        next.end = Some(RunEnd::Succeeded);
    }
    next
}

fn in_flight(status: StepStatus) -> bool {
    matches!(status, StepStatus::Queued | StepStatus::RetryScheduled)
}

#[cfg(test)]
mod tests {
    use super::*;
    use StepStatus::*;

    /// lookup → score → notify; lookup → welcome; `on_failure` when `with_handler`.
    fn graph(with_handler: bool) -> Graph {
        let node = |id: &str, deps: &[&str]| Node {
            id: id.to_owned(),
            depends_on: deps.iter().map(|d| (*d).to_owned()).collect(),
        };
        Graph {
            steps: vec![
                node("lookup", &[]),
                node("score", &["lookup"]),
                node("welcome", &["lookup"]),
                node("notify", &["score"]),
            ],
            on_failure: with_handler,
        }
    }

    fn states(pairs: &[(&str, StepStatus)]) -> BTreeMap<String, StepStatus> {
        pairs.iter().map(|(id, s)| ((*id).to_owned(), *s)).collect()
    }

    fn ids(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn a_run_moves_on_as_its_steps_end() {
        // (recorded states, on_failure, started, skipped, cancelled, end)
        type Case<'a> = (
            Vec<(&'a str, StepStatus)>,
            bool,
            Vec<&'a str>,
            Vec<&'a str>,
            Vec<&'a str>,
            Option<RunEnd>,
        );
        let failed = |step: &str| Some(RunEnd::Failed { step: step.into() });
        let cases: Vec<Case> = vec![
            // A new run starts the steps without dependencies.
            (vec![], false, vec!["lookup"], vec![], vec![], None),
            // Nothing new while the first step is out.
            (
                vec![("lookup", Queued)],
                false,
                vec![],
                vec![],
                vec![],
                None,
            ),
            (
                vec![("lookup", RetryScheduled)],
                false,
                vec![],
                vec![],
                vec![],
                None,
            ),
            // Its end starts both steps that wait for it, together.
            (
                vec![("lookup", Succeeded)],
                false,
                vec!["score", "welcome"],
                vec![],
                vec![],
                None,
            ),
            // A step already started is not started again.
            (
                vec![
                    ("lookup", Succeeded),
                    ("score", Queued),
                    ("welcome", Queued),
                ],
                false,
                vec![],
                vec![],
                vec![],
                None,
            ),
            (
                vec![
                    ("lookup", Succeeded),
                    ("score", Succeeded),
                    ("welcome", Queued),
                ],
                false,
                vec!["notify"],
                vec![],
                vec![],
                None,
            ),
            // A skipped step skips what depends on it; the run still succeeds.
            (
                vec![
                    ("lookup", Succeeded),
                    ("score", Skipped),
                    ("welcome", Succeeded),
                ],
                false,
                vec![],
                vec!["notify"],
                vec![],
                Some(RunEnd::Succeeded),
            ),
            (
                vec![
                    ("lookup", Succeeded),
                    ("score", Succeeded),
                    ("welcome", Succeeded),
                    ("notify", Succeeded),
                ],
                false,
                vec![],
                vec![],
                vec![],
                Some(RunEnd::Succeeded),
            ),
            // A failure cancels what has not started; the run ends once nothing is out.
            (
                vec![
                    ("lookup", Succeeded),
                    ("score", Failed),
                    ("welcome", Queued),
                ],
                false,
                vec![],
                vec![],
                vec!["notify"],
                None,
            ),
            (
                vec![
                    ("lookup", Succeeded),
                    ("score", Failed),
                    ("welcome", Succeeded),
                    ("notify", Cancelled),
                ],
                false,
                vec![],
                vec![],
                vec![],
                failed("score"),
            ),
            (
                vec![("lookup", Failed)],
                false,
                vec![],
                vec![],
                vec!["score", "welcome", "notify"],
                failed("lookup"),
            ),
            // With on_failure: it starts once, and the run ends when it has.
            (
                vec![("lookup", Failed)],
                true,
                vec![ON_FAILURE],
                vec![],
                vec!["score", "welcome", "notify"],
                None,
            ),
            (
                vec![
                    ("lookup", Failed),
                    ("score", Cancelled),
                    ("welcome", Cancelled),
                    ("notify", Cancelled),
                    (ON_FAILURE, Queued),
                ],
                true,
                vec![],
                vec![],
                vec![],
                None,
            ),
            (
                vec![
                    ("lookup", Failed),
                    ("score", Cancelled),
                    ("welcome", Cancelled),
                    ("notify", Cancelled),
                    (ON_FAILURE, Failed),
                ],
                true,
                vec![],
                vec![],
                vec![],
                failed("lookup"),
            ),
        ];
        for (recorded, handler, start, skip, cancel, end) in cases {
            let got = progress(&graph(handler), &states(&recorded));
            let want = Progress {
                start: ids(&start),
                skip: ids(&skip),
                cancel: ids(&cancel),
                end,
            };
            assert_eq!(got, want, "{recorded:?} on_failure: {handler}");
        }
    }

    #[test]
    fn a_skip_reaches_every_step_below_it_in_one_decision() {
        let chain = Graph {
            steps: (0..5)
                .map(|i| Node {
                    id: format!("s{i}"),
                    depends_on: if i == 0 {
                        vec![]
                    } else {
                        vec![format!("s{}", i - 1)]
                    },
                })
                .collect(),
            on_failure: false,
        };
        let got = progress(&chain, &states(&[("s0", Skipped)]));
        assert_eq!(got.skip, ids(&["s1", "s2", "s3", "s4"]));
        assert_eq!(got.end, Some(RunEnd::Succeeded));
    }
}
