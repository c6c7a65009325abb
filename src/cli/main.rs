//! `dial`: Dial's policy tool, built from the same core as the module, so its answers are the
//! filter's. Check policies before Envoy refuses them, see why a request lands where it does,
//! and measure what a change does to users before it ships.

mod allow;
mod common;
mod diff;
mod explain;
mod find;
mod locate;
mod modes;
mod placement;
mod population;
mod report;
mod simulate;
mod validate;
mod yaml;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

const EXAMPLES: &str = "\
Examples:
  dial validate --strict envoy-config/ istio/         every policy in a tree, checked for where it runs
  dial validate -o json policy.json                    problems as JSON, for CI annotations
  kustomize build overlays/prod | dial validate -      manifests from a pipe
  dial explain policy.json --host shop.example.com --path /checkout -H 'x-user-id: alice'
  dial simulate istio/gateway/wasmplugin.yaml --users 1000000 --at 2026-12-01T10:00:00Z
  dial diff old.json new.json --fail-on-move-back      refuse a change that moves users back

Files: a policy JSON, an Envoy bootstrap or listener (YAML or JSON) with Dial's wasm filter, or
Kubernetes YAML with Istio WasmPlugins (several documents, Lists). Exit codes: 0 fine, 1 problems
(a rejected policy; users moved back with --fail-on-move-back), 2 usage or unreadable input.";

#[derive(Debug, Parser)]
#[command(
    name = "dial",
    version,
    about = "Check, explain and simulate Dial policies with the filter's own core",
    after_help = EXAMPLES,
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check every Dial policy in files, as Envoy would; report each problem in the filter's words
    #[command(after_help = validate::EXAMPLES)]
    Validate(validate::Args),
    /// Show which release and subset a request gets, and why, and what Dial does to its headers
    #[command(after_help = explain::EXAMPLES)]
    Explain(explain::Args),
    /// Distribute users over each release's subsets (and over a ramp's steps)
    #[command(after_help = simulate::EXAMPLES)]
    Simulate(simulate::Args),
    /// Which users a policy change moves, from which subset to which; flag moves back
    #[command(after_help = diff::EXAMPLES)]
    Diff(diff::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match &cli.command {
        Command::Validate(args) => validate::run(args),
        Command::Explain(args) => explain::run(args),
        Command::Simulate(args) => simulate::run(args),
        Command::Diff(args) => diff::run(args),
    };
    match outcome {
        Ok(code) => ExitCode::from(code),
        Err(failure) => {
            eprintln!("dial: {failure}");
            ExitCode::from(failure.code)
        }
    }
}
