//! injection
