//! Where a policy runs, as its holder says (a WasmPlugin's `match[].mode`, `targetRefs` or
//! selector; an Envoy listener's `traffic_direction`) or `--mode` does: what `find` reads from
//! each holder and `modes` checks the policy against. A leaf, so neither imports the other back.

use crate::yaml::Position;

/// The places Dial runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// A sidecar's outbound side: the downstream peer is the calling app in the same pod.
    Client,
    /// A sidecar's inbound side: the caller already chose this workload's version.
    Server,
    /// An ingress gateway: internet clients and browsers downstream.
    Gateway,
    /// A standalone Envoy at the edge.
    Standalone,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Client => "client",
            Mode::Server => "server",
            Mode::Gateway => "gateway",
            Mode::Standalone => "standalone",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Mode::Client => "sidecar CLIENT",
            Mode::Server => "sidecar SERVER",
            Mode::Gateway => "ingress gateway",
            Mode::Standalone => "standalone Envoy",
        }
    }

    /// Gateway or standalone: internet clients and browsers downstream.
    pub fn edge(self) -> bool {
        matches!(self, Mode::Gateway | Mode::Standalone)
    }
}

/// Where a policy runs and what says so. No modes: unknown (a bare policy without `--mode`).
#[derive(Debug, Clone, Default)]
pub struct Placement {
    pub modes: Vec<Mode>,
    /// What said so: `spec.match[0].mode CLIENT`, `--mode gateway`.
    pub because: String,
    pub at: Option<Position>,
}

impl Placement {
    pub fn new(modes: Vec<Mode>, because: impl Into<String>, at: Option<Position>) -> Placement {
        Placement {
            modes,
            because: because.into(),
            at,
        }
    }

    /// `sidecar CLIENT`, `sidecar CLIENT and SERVER`, or `an unknown place`.
    pub fn title(&self) -> String {
        match self.modes.as_slice() {
            [] => "an unknown place".into(),
            [one] => one.title().into(),
            [Mode::Client, Mode::Server] => "sidecar CLIENT and SERVER".into(),
            many => many
                .iter()
                .map(|m| m.title())
                .collect::<Vec<_>>()
                .join(" and "),
        }
    }

    /// `runs in sidecar CLIENT (spec.match[0].mode CLIENT, line 15)`.
    pub fn describe(&self) -> String {
        if self.modes.is_empty() {
            return format!(
                "runs in an unknown place ({}; give --mode client|server|gateway|standalone to check it for one)",
                self.because
            );
        }
        match self.at {
            Some(at) => format!(
                "runs in {} ({}, line {})",
                self.title(),
                self.because,
                at.line
            ),
            None => format!("runs in {} ({})", self.title(), self.because),
        }
    }
}

/// A setting of the policy's holder that the checks read: its path in the holder, its value
/// and where it is written.
#[derive(Debug, Clone)]
pub struct Setting {
    pub path: String,
    pub value: String,
    pub at: Position,
}

/// What the policy's holder says about where and how it runs.
#[derive(Debug, Clone, Default)]
pub struct Site {
    pub placement: Placement,
    /// The module runs on when it fails (`failStrategy: FAIL_OPEN`, `fail_open: true`).
    pub fail_open: Option<Setting>,
    /// The module's digest (a WasmPlugin's `sha256`, Envoy's remote code `sha256`).
    pub sha256: Option<Setting>,
    /// Where the module is fetched from.
    pub url: Option<Setting>,
}
