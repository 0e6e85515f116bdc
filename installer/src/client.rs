//! HTTP client
