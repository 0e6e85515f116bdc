//! roleoutd: the HTTP/JSON server of Fig. 10's server side.

pub mod config;
pub mod tls;
