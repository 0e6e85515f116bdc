//! Integration tests of the installer, on real files and real processes.

mod state;
