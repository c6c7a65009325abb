pub fn helper() {
    // Back into `one`, by a path in code.
    super::one::run();
}
