pub mod host;

pub struct Root;
