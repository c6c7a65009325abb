mod one;
mod two;

use dial::core::a::Item;

fn main() {
    one::run();
}
