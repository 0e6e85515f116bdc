//! Local.
/// Local.
#[derive(Debug)]
pub struct LocalDirectory;
