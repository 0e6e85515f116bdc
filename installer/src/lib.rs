//! Roleout's agent on managed machines.

pub mod cli;
pub mod client;
pub mod engine;
pub mod facts;
pub mod image;
pub mod inventory;
mod mounts;
pub mod progress;
pub mod rotation;
pub mod run;
pub mod state;
