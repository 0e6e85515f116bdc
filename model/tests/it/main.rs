//! Integration tests of roleout-model, one module per area.

mod descriptor;
mod protocol;
mod resolution;
