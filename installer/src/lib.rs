//! Roleout's agent on managed machines.

pub mod state;
