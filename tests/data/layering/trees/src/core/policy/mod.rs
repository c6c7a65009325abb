mod check;

pub struct Policy;
