use crate::core::policy::Policy;

pub struct Verdict(pub Policy);
