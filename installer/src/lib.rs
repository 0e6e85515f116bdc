//! Roleout's agent on managed machines.
