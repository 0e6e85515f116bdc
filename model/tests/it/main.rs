//! Integration tests of the model crate, one module per area.

mod descriptor;
mod resolution;
