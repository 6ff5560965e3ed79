//! Tollgate's user-mode side: the verdict service, its view of the control device, and the
//! simulation that runs the driver logic against the WFP model.

pub mod device;
pub mod machine;
pub mod rules_cmd;
pub mod serve;
pub mod service;
pub mod simulate;
