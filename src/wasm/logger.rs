//! Dial's logger and panic hook, over the raw log call. The SDK's logger unwraps the host's
//! answer (a log line could trap the VM), and its panic hook does the same; these never panic.
//! The panic hook is what an operator sees when a VM traps: the message and where, logged as
//! critical before the trap, instead of a bare `unreachable`.

use proxy_wasm::types::LogLevel;

use super::host;

struct HostLogger;

static LOGGER: HostLogger = HostLogger;

impl log::Log for HostLogger {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let level = match record.level() {
            log::Level::Trace => LogLevel::Trace,
            log::Level::Debug => LogLevel::Debug,
            log::Level::Info => LogLevel::Info,
            log::Level::Warn => LogLevel::Warn,
            log::Level::Error => LogLevel::Error,
        };
        host::log(level, &record.args().to_string());
    }

    fn flush(&self) {}
}

/// Installs the logger (info and above) and the panic hook, once per VM.
pub fn install() {
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(log::LevelFilter::Info);
    }
    // One line, so the cause sits on the line an operator finds.
    std::panic::set_hook(Box::new(|info| {
        let at = info
            .location()
            .map(|l| format!(" at {}:{}:{}", l.file(), l.line(), l.column()))
            .unwrap_or_default();
        let message = info.payload_as_str().unwrap_or("(no message)");
        host::log(
            LogLevel::Critical,
            &format!("dial: panicked{at}: {message}"),
        );
    }));
}
