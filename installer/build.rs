//! Puts the commit this crate is built from in ROLEOUT_BUILD_COMMIT, for
//! `--version` (the same script for every binary of Roleout).

include!("../scripts/build-commit.rs");
