//! Queries only the executor makes; shared ones are in `herald_common::store`.

pub mod limits;
