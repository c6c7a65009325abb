pub fn now() -> u64 {
    let now = crate::wasm::host::now();
    now
}

#[cfg(test)]
mod tests {
    use proxy_wasm::types::Status;
}
