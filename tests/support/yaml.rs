//! YAML files as JSON values, read by PyYAML (installed into `.venv` by the Makefile's test
//! tools): the tests edit shipped configurations and manifests as data, never as text.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

/// Every document of a YAML file, in order (empty documents left out).
pub fn load_all(path: &Path) -> Vec<Value> {
    let python = super::repo_root().join(".venv/bin/python");
    let script = "import json, sys, yaml\n\
                  docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d is not None]\n\
                  print(json.dumps(docs))";
    let out = Command::new(&python)
        .args(["-c", script])
        .arg(path)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {} ({e}): run `make test` (or `make envoy` and the test tools), which \
                 installs Python and PyYAML into .venv",
                python.display()
            )
        });
    assert!(
        out.status.success(),
        "reading {} as YAML failed (PyYAML missing? `make test` installs it): {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    match serde_json::from_slice(&out.stdout) {
        Ok(Value::Array(docs)) => docs,
        other => panic!("{}: unexpected YAML reading: {other:?}", path.display()),
    }
}
