//! Tollgate's user-mode side: the verdict service, its view of the control device, and the
//! simulation that runs the driver logic against the WFP model.

pub mod admin;
pub mod device;
pub mod hub;
pub mod machine;
pub mod records;
pub mod rules_cmd;
pub mod serve;
pub mod service;
pub mod simulate;
pub mod stats_cmd;
pub mod watch;
