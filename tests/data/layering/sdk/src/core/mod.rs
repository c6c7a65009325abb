pub mod sticky;
pub mod time;
