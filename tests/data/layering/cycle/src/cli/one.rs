use crate::two::helper;

pub fn run() {
    helper();
}
