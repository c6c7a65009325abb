//! Dial's logger and panic hook, for any host: a binding gives the one call that writes a line
//! to its host's log, and gets `log`'s macros and a panic hook over it. Neither ever panics (an
//! SDK logger that unwraps the host's answer could trap a VM on a log line). The panic hook
//! writes one critical line, `dial: panicked at <file>:<line>:<column>: <message>`, so the cause
//! sits on the line an operator finds, whatever happens next (a VM's trap, the native build's
//! catch at the hook).

/// How severe a line is, in the host's terms, numbered as both hosts number their log levels
/// (proxy-wasm's `LogLevel`, Envoy's dynamic-module `envoy_dynamic_module_type_log_level`): a
/// binding hands `severity as u32` on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Severity {
    Trace = 0,
    Debug = 1,
    Info = 2,
    Warn = 3,
    Error = 4,
    Critical = 5,
}

/// A logger over a host's log call.
pub struct HostLogger {
    pub write: fn(Severity, &str),
}

impl log::Log for HostLogger {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let severity = match record.level() {
            log::Level::Trace => Severity::Trace,
            log::Level::Debug => Severity::Debug,
            log::Level::Info => Severity::Info,
            log::Level::Warn => Severity::Warn,
            log::Level::Error => Severity::Error,
        };
        (self.write)(severity, &record.args().to_string());
    }

    fn flush(&self) {}
}

/// Installs `logger` (info and above) and the panic hook over the same call, once per VM or
/// process. A hook belongs to the std it is set in: a native module's sees its own panics only.
pub fn install(logger: &'static HostLogger) {
    if log::set_logger(logger).is_ok() {
        log::set_max_level(log::LevelFilter::Info);
    }
    let write = logger.write;
    std::panic::set_hook(Box::new(move |info| {
        let at = info
            .location()
            .map(|l| format!(" at {}:{}:{}", l.file(), l.line(), l.column()))
            .unwrap_or_default();
        let message = info.payload_as_str().unwrap_or("(no message)");
        write(
            Severity::Critical,
            &format!("dial: panicked{at}: {message}"),
        );
    }));
}
