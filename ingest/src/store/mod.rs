//! The API's own queries: tables and views only ingest reads or writes. What several services
//! share stays in `herald_common::store`; these are functions over its [`Store`].
//!
//! [`Store`]: herald_common::store::Store

pub mod action_list;
pub mod action_set;
pub mod cursor;
pub mod deliveries;
pub mod event_list;
pub mod execution_list;
pub mod overview;
pub mod providers;
pub mod stats;
pub mod tenants;
