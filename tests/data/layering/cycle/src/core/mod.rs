pub mod a;
pub mod b;
pub mod c;
pub mod facade;
pub mod stats;

#[cfg(test)]
mod tests;
