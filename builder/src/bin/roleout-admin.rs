//! `roleout-admin`: the admin shell.
fn main() {}
