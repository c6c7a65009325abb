//! Every Envoy configuration shipped under envoy-config/ passes `envoy --mode validate`, with
//! the built module in place (validation loads it and runs Dial's policy checks).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
mod support;

use std::process::Command;

use support::{envoy_binary, module_path, repo_root};

#[test]
fn every_shipped_envoy_config_validates() {
    // The configs name the module relative to the repository root.
    assert!(module_path().exists());
    let dir = repo_root().join("envoy-config");
    let mut configs: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    configs.sort();
    assert!(!configs.is_empty(), "no configs in {}", dir.display());
    for config in configs {
        let out = Command::new(envoy_binary())
            .current_dir(repo_root())
            .args(["--mode", "validate", "--log-level", "warning", "-c"])
            .arg(&config)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success(),
            "{} does not validate:\n{text}",
            config.display()
        );
        assert!(text.contains(" OK"), "{}: {text}", config.display());
    }
}

#[test]
fn validation_runs_dials_policy_checks() {
    let example = std::fs::read_to_string(repo_root().join("envoy-config/envoy.yaml")).unwrap();
    let broken = example.replacen(r#""weight": 90 }"#, r#""weight": -90 }"#, 1);
    assert_ne!(broken, example);
    let dir = support::scratch_dir("validate");
    let path = dir.join("broken.yaml");
    std::fs::write(&path, broken).unwrap();
    let out = Command::new(envoy_binary())
        .current_dir(repo_root())
        .args(["--mode", "validate", "--log-level", "warning", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "a broken policy validated:\n{text}");
    assert!(
        text.contains("$.releases[0].subsets[0].weight: weight must be 0 or more, got -90"),
        "{text}"
    );
}
