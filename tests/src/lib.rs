//! End-to-end tests of Roleout over real slapd, roleoutd and roleout processes.
