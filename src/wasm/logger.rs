//! Dial's logger and panic hook (`core::logging`) over the raw log call. The SDK's logger
//! unwraps the host's answer (a log line could trap the VM), and its panic hook does the same;
//! these never panic. The panic hook is what an operator sees when a VM traps: the message and
//! where, logged as critical before the trap, instead of a bare `unreachable`.

use super::host;
use crate::core::logging::{self, HostLogger};

static LOGGER: HostLogger = HostLogger { write: host::log };

/// Installs the logger (info and above) and the panic hook, once per VM.
pub fn install() {
    logging::install(&LOGGER);
}
