//! Roleout's agent on managed machines.

pub mod envelope;
pub mod facts;
pub mod keys;
pub mod run;
pub mod state;
