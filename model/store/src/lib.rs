//! The files roleoutd and the agent both keep, in one home below both (so
//! neither program's crate depends on the other's): private key files, and
//! the content store every part of Roleout keeps large things in.
//! What is pure about keys and signatures (key pairs, certificates, the
//! signed messages, envelopes) is `roleout_model::keys` and
//! `roleout_model::protocol::signing`; this crate only reads and writes.

pub mod archive;
pub mod content;
pub mod disk;
pub mod image_file;
pub mod keys;
pub mod tree;
