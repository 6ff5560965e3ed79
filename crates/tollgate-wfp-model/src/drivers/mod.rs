//! The drivers the model runs: Tollgate's real logic, and the naive driver it must crash on.

pub mod naive;
pub mod tollgate;
