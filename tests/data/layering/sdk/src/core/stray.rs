pub fn lost() {}
