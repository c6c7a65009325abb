pub mod policy;
pub mod runtime;
