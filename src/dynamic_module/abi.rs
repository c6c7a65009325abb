//! Dial's own bindings to Envoy's dynamic-module C ABI (`abi.h`), and the only file of the
//! native binding with `unsafe` in it. Envoy's Rust SDK for dynamic modules is not published on
//! a package registry, so this declares just what Dial uses: the event hooks Envoy resolves
//! when it loads an HTTP filter module (`envoy_dynamic_module_on_*`, exported below), the 16
//! callbacks Dial imports (`envoy_dynamic_module_callback_*`) and the one it looks up.
//!
//! Written against ABI `v0.1.0` (Envoy 1.38's `abi.h`); Envoy 1.40 (ABI `v0.2.0`) loads it with a
//! deprecation warning, as Envoy promises for the previous minor version. One more callback is
//! Envoy 1.40's own (the connection's peer address: no older one gives it), so it is no import:
//! it is looked up once at run time (`peer_source`), and where Envoy lacks it (1.39) the
//! `source.address` attribute stands in. Every import here is checked against what Envoy's
//! binary exports, and exercised by the end-to-end suite on 1.40 and 1.39 (docs/envoy.md, "Envoy
//! versions").
//!
//! Every exported hook runs its body inside `super::shield`, which catches a panic: native code
//! that unwinds into Envoy's C++ frames, or aborts, would take every connection down with it.

#![deny(
    clippy::undocumented_unsafe_blocks,
    clippy::multiple_unsafe_ops_per_block
)]

use std::ffi::{c_char, c_void};
use std::net::IpAddr;
use std::sync::{Arc, OnceLock};

use super::{Config, Filter};

/// The ABI version this module is written against, as `envoy_dynamic_module_on_program_init`
/// hands it to Envoy (a NUL-terminated string Envoy compares with its own).
const ABI_VERSION: &[u8] = b"v0.1.0\0";

// ----------------------------------------------------------------------------------- types --

/// `envoy_dynamic_module_type_envoy_buffer`: bytes Envoy owns.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct EnvoyBuffer {
    ptr: *const u8,
    length: usize,
}

/// `envoy_dynamic_module_type_module_buffer`: bytes the module owns (Envoy only reads them).
#[repr(C)]
#[derive(Clone, Copy)]
struct ModuleBuffer {
    ptr: *const u8,
    length: usize,
}

/// `envoy_dynamic_module_type_envoy_http_header`: one header of Envoy's map, in place.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct EnvoyHttpHeader {
    key_ptr: *const u8,
    key_length: usize,
    value_ptr: *const u8,
    value_length: usize,
}

/// `envoy_dynamic_module_type_module_http_header`: one header the module owns (Envoy copies it).
#[repr(C)]
#[derive(Clone, Copy)]
struct ModuleHttpHeader {
    key_ptr: *const u8,
    key_length: usize,
    value_ptr: *const u8,
    value_length: usize,
}

impl ModuleHttpHeader {
    fn of(name: &str, value: &str) -> ModuleHttpHeader {
        ModuleHttpHeader {
            key_ptr: name.as_ptr(),
            key_length: name.len(),
            value_ptr: value.as_ptr(),
            value_length: value.len(),
        }
    }
}

impl ModuleBuffer {
    fn of(bytes: &[u8]) -> ModuleBuffer {
        ModuleBuffer {
            ptr: bytes.as_ptr(),
            length: bytes.len(),
        }
    }

    /// A null buffer: to `set_header`, "remove the header".
    fn null() -> ModuleBuffer {
        ModuleBuffer {
            ptr: std::ptr::null(),
            length: 0,
        }
    }
}

const EMPTY_HEADER: EnvoyHttpHeader = EnvoyHttpHeader {
    key_ptr: std::ptr::null(),
    key_length: 0,
    value_ptr: std::ptr::null(),
    value_length: 0,
};

/// A header map as Envoy listed it in `EnvoyFilter::with_headers`: (name, value) pairs that
/// point into Envoy's own map, valid while the map does not change (the lifetime: the listing
/// lives in the scratch vector only for the duration of the read).
pub struct Headers<'a> {
    entries: &'a [EnvoyHttpHeader],
}

impl<'a> Headers<'a> {
    /// (name, value) pairs in Envoy's order, repeated names kept.
    pub fn iter(&self) -> impl Iterator<Item = (&'a [u8], &'a [u8])> + Clone + 'a {
        self.entries.iter().map(|h| {
            // SAFETY: Envoy filled every entry in `with_headers` with buffers valid until the
            // map changes, which it cannot while this listing is borrowed (see there);
            // `borrowed` tolerates null.
            let name = unsafe { borrowed(h.key_ptr, h.key_length) };
            // SAFETY: as for the name.
            let value = unsafe { borrowed(h.value_ptr, h.value_length) };
            (name, value)
        })
    }
}

/// `envoy_dynamic_module_type_http_header_type` (a C enum: `int`-sized).
#[derive(Debug, Clone, Copy)]
pub enum HeaderMap {
    Request = 0,
    Response = 2,
}

/// The kinds of metric Dial defines (three `define_*` callbacks).
#[derive(Debug, Clone, Copy)]
pub enum MetricKind {
    Counter,
    Gauge,
    Histogram,
}

/// `envoy_dynamic_module_type_metrics_result_Success`.
const METRICS_SUCCESS: u32 = 0;
/// `envoy_dynamic_module_type_attribute_id_SourceAddress` (`source.address`, `ip:port`).
const ATTRIBUTE_SOURCE_ADDRESS: u32 = 24;
/// `envoy_dynamic_module_type_http_callout_init_result_Success`.
const CALLOUT_INIT_SUCCESS: u32 = 0;
/// `envoy_dynamic_module_type_http_callout_result_Success` (then `Reset`,
/// `ExceedResponseBufferLimit`).
const CALLOUT_SUCCESS: u32 = 0;
const CALLOUT_EXCEED_RESPONSE_BUFFER_LIMIT: u32 = 2;
/// `..._status_Continue` of every `on_http_filter_*` status enum.
const CONTINUE: u32 = 0;

// ------------------------------------------------------------------------------- callbacks --

extern "C" {
    fn envoy_dynamic_module_callback_log(level: u32, message: ModuleBuffer);

    fn envoy_dynamic_module_callback_http_get_header(
        filter: *mut c_void,
        header_type: u32,
        key: ModuleBuffer,
        result: *mut EnvoyBuffer,
        index: usize,
        optional_size: *mut usize,
    ) -> bool;
    fn envoy_dynamic_module_callback_http_get_headers_size(
        filter: *mut c_void,
        header_type: u32,
    ) -> usize;
    fn envoy_dynamic_module_callback_http_get_headers(
        filter: *mut c_void,
        header_type: u32,
        result: *mut EnvoyHttpHeader,
    ) -> bool;
    fn envoy_dynamic_module_callback_http_set_header(
        filter: *mut c_void,
        header_type: u32,
        key: ModuleBuffer,
        value: ModuleBuffer,
    ) -> bool;
    fn envoy_dynamic_module_callback_http_add_header(
        filter: *mut c_void,
        header_type: u32,
        key: ModuleBuffer,
        value: ModuleBuffer,
    ) -> bool;
    fn envoy_dynamic_module_callback_http_clear_route_cache(filter: *mut c_void);
    fn envoy_dynamic_module_callback_http_filter_get_attribute_string(
        filter: *mut c_void,
        attribute_id: u32,
        result: *mut EnvoyBuffer,
    ) -> bool;

    // The fleet verdict's: a callout from the configuration (on the main thread), and a
    // scheduler that brings a worker's "a query is due" there. Envoy 1.39 and 1.40 both export
    // all four (checked with `nm -D` on both binaries; docs/envoy.md, "Envoy versions").
    fn envoy_dynamic_module_callback_http_filter_config_http_callout(
        config: *mut c_void,
        callout_id: *mut u64,
        cluster: ModuleBuffer,
        headers: *const ModuleHttpHeader,
        headers_length: usize,
        body: ModuleBuffer,
        timeout_milliseconds: u64,
    ) -> u32;
    fn envoy_dynamic_module_callback_http_filter_config_scheduler_new(
        config: *mut c_void,
    ) -> *mut c_void;
    fn envoy_dynamic_module_callback_http_filter_config_scheduler_commit(
        scheduler: *mut c_void,
        event_id: u64,
    );
    fn envoy_dynamic_module_callback_http_filter_config_scheduler_delete(scheduler: *mut c_void);

    /// glibc's (in `libc.so.6` since 2.34, a version the module already needs): finds a
    /// callback Envoy may not export.
    fn dlsym(handle: *mut c_void, symbol: *const c_char) -> *mut c_void;
}

/// Declares the callbacks that define a metric, all of one shape: (configuration, name, label
/// names and their count, where Envoy writes the id) -> result.
macro_rules! metric_definitions {
    ($($callback:ident),+) => {
        extern "C" {
            $(fn $callback(
                config: *mut c_void,
                name: ModuleBuffer,
                label_names: *const ModuleBuffer,
                label_names_length: usize,
                id: *mut usize,
            ) -> u32;)+
        }
    };
}

metric_definitions!(
    envoy_dynamic_module_callback_http_filter_config_define_counter,
    envoy_dynamic_module_callback_http_filter_config_define_gauge,
    envoy_dynamic_module_callback_http_filter_config_define_histogram
);

/// A handle's metric updates: for each `name => callback`, the callback's declaration (all of
/// one shape: handle, metric id, label values and their count, value -> result) and the
/// handle's method `name(self, id, value)`, which calls it with no labels (Dial's labels travel
/// in the metric's name, as in the Wasm build) and says whether Envoy took it. A
/// configuration's updates and a stream's are the same call on another handle, so one body
/// serves every one of them.
macro_rules! metric_updates {
    ($($handle:ident { $($name:ident => $callback:ident,)+ })+) => {$(
        extern "C" {
            $(fn $callback(
                handle: *mut c_void,
                id: usize,
                label_values: *const ModuleBuffer,
                label_values_length: usize,
                value: u64,
            ) -> u32;)+
        }

        impl $handle {
            $(pub fn $name(self, id: usize, value: u64) -> bool {
                // SAFETY: the handle's pointer is Envoy's, live during the hook that handed it
                // over (a configuration's metrics are updated from its hooks, a stream's from
                // its own); `id` is one its configuration defined; no labels (null, 0).
                let result = unsafe { $callback(self.0, id, std::ptr::null(), 0, value) };
                result == METRICS_SUCCESS
            })+
        }
    )+};
}

/// `RTLD_DEFAULT` (glibc's and musl's: null): the global scope, where the dynamic linker also
/// found every callback imported above.
const RTLD_DEFAULT: *mut c_void = std::ptr::null_mut();

/// Envoy 1.40's `envoy_dynamic_module_callback_http_get_downstream_direct_remote_address`: the
/// downstream connection's physical peer (`ip:port`), which no request header changes. Not in
/// Envoy 1.39, so not imported (the module would not load there): looked up by `peer_source`.
type DirectRemoteAddress =
    unsafe extern "C" fn(filter: *mut c_void, result: *mut EnvoyBuffer) -> bool;

const DIRECT_REMOTE_ADDRESS: &[u8] =
    b"envoy_dynamic_module_callback_http_get_downstream_direct_remote_address\0";

/// Where `EnvoyFilter::source_ip` reads the connection's peer from, fixed once per process.
#[derive(Debug, Clone, Copy)]
pub enum PeerSource {
    /// Envoy's direct remote address (Envoy 1.40 and later): the connection's own peer, always.
    DirectRemoteAddress(DirectRemoteAddress),
    /// The `source.address` attribute (Envoy 1.39): the stream's address, which Envoy replaces
    /// with the last `X-Forwarded-For` entry unless the connection manager uses the remote
    /// address; `core::trust::connection_peer` refuses such an address (port 0), as the Wasm
    /// build does, so the check fails closed.
    SourceAddressAttribute,
}

/// The peer's source in this Envoy, looked up the first time it is asked (at `program_init`).
pub fn peer_source() -> PeerSource {
    static SOURCE: OnceLock<PeerSource> = OnceLock::new();
    *SOURCE.get_or_init(|| {
        // SAFETY: a NUL-terminated name that dlsym only reads; RTLD_DEFAULT is a handle dlsym
        // accepts. dlsym is thread-safe.
        let symbol = unsafe { dlsym(RTLD_DEFAULT, DIRECT_REMOTE_ADDRESS.as_ptr().cast()) };
        if symbol.is_null() {
            return PeerSource::SourceAddressAttribute;
        }
        // SAFETY: what dlsym found under this name is what the dynamic linker would have bound
        // an import of it to (the same scope as every import above): the function Envoy
        // exports, which Envoy 1.40's `abi.h` declares `bool (filter_envoy_ptr,
        // envoy_buffer*)`, the type `DirectRemoteAddress` spells.
        let callback = unsafe { std::mem::transmute::<*mut c_void, DirectRemoteAddress>(symbol) };
        PeerSource::DirectRemoteAddress(callback)
    })
}

/// Writes to Envoy's log (logger `dynamic_modules`) at `level`, an
/// `envoy_dynamic_module_type_log_level` (0 trace, 1 debug, 2 info, 3 warn, 4 error, 5 critical).
pub fn log(level: u32, message: &str) {
    // SAFETY: a live slice Envoy only reads during the call.
    unsafe { envoy_dynamic_module_callback_log(level, ModuleBuffer::of(message.as_bytes())) }
}

/// Bytes Envoy handed over, borrowed. Null (or empty) is the empty slice.
///
/// # Safety
/// `ptr` must be null or point to `length` bytes that stay readable and unchanged for `'a`.
unsafe fn borrowed<'a>(ptr: *const u8, length: usize) -> &'a [u8] {
    if ptr.is_null() || length == 0 {
        return &[];
    }
    // SAFETY: per this function's contract.
    unsafe { std::slice::from_raw_parts(ptr, length) }
}

/// Bytes Envoy handed over, copied.
///
/// # Safety
/// As `borrowed`, for the duration of the call.
unsafe fn copied(ptr: *const u8, length: usize) -> Vec<u8> {
    // SAFETY: per this function's contract.
    unsafe { borrowed(ptr, length) }.to_vec()
}

// --------------------------------------------------------------------------------- handles --

/// Envoy's `DynamicModuleHttpFilterConfig`, valid during the configuration's hooks that hand it
/// over (`on_http_filter_config_new`, `_scheduled`, `_http_callout_done`, all on the main
/// thread): defining metrics, the configure-time writes, the fleet verdict's callouts.
#[derive(Clone, Copy)]
pub struct EnvoyConfig(*mut c_void);

/// Envoy's scheduler for a configuration: `commit` from any thread runs
/// `on_http_filter_config_scheduled` on the main thread. Deleted when dropped.
pub struct ConfigScheduler(*mut c_void);

// SAFETY: Envoy's config scheduler holds a weak reference to the configuration and the main
// thread's dispatcher; `commit` only posts to that dispatcher, which is thread-safe (it exists
// to be called from other threads), and `delete` runs once, from Drop.
unsafe impl Send for ConfigScheduler {}
// SAFETY: as for Send: `commit` through a shared reference only posts.
unsafe impl Sync for ConfigScheduler {}

impl ConfigScheduler {
    /// Asks Envoy to call `on_http_filter_config_scheduled` on the main thread (never blocks).
    pub fn commit(&self, event_id: u64) {
        // SAFETY: a scheduler Envoy created and not yet deleted (Drop deletes it).
        unsafe {
            envoy_dynamic_module_callback_http_filter_config_scheduler_commit(self.0, event_id)
        }
    }
}

impl Drop for ConfigScheduler {
    fn drop(&mut self) {
        // SAFETY: created by scheduler_new, deleted exactly once, here.
        unsafe { envoy_dynamic_module_callback_http_filter_config_scheduler_delete(self.0) }
    }
}

/// Why Envoy would not start a callout (`envoy_dynamic_module_type_http_callout_init_result`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CalloutRefused(pub u32);

impl EnvoyConfig {
    /// A scheduler for this configuration (at configure time, on the main thread).
    pub fn scheduler(self) -> Option<ConfigScheduler> {
        // SAFETY: Envoy's live config pointer, during config_new (Envoy already holds the
        // configuration in the shared pointer the scheduler keeps a weak reference to).
        let scheduler =
            unsafe { envoy_dynamic_module_callback_http_filter_config_scheduler_new(self.0) };
        (!scheduler.is_null()).then_some(ConfigScheduler(scheduler))
    }

    /// Starts a GET to `cluster` (main thread); its answer comes to
    /// `on_http_filter_config_http_callout_done` with the id returned.
    pub fn http_get(
        self,
        cluster: &str,
        authority: &str,
        path: &str,
        timeout_millis: u32,
    ) -> Result<u64, CalloutRefused> {
        let headers = [
            ModuleHttpHeader::of(":method", "GET"),
            ModuleHttpHeader::of(":path", path),
            ModuleHttpHeader::of(":authority", authority),
        ];
        let mut id = 0u64;
        // SAFETY: Envoy's live config pointer (in a configuration hook, main thread); the
        // cluster, headers and empty body are live slices Envoy copies during the call; Envoy
        // writes one u64 to a live local.
        let result = unsafe {
            envoy_dynamic_module_callback_http_filter_config_http_callout(
                self.0,
                &mut id,
                ModuleBuffer::of(cluster.as_bytes()),
                headers.as_ptr(),
                headers.len(),
                ModuleBuffer::of(&[]),
                u64::from(timeout_millis),
            )
        };
        if result == CALLOUT_INIT_SUCCESS {
            Ok(id)
        } else {
            Err(CalloutRefused(result))
        }
    }

    /// Defines a metric without labels (Dial's labels travel in the name, as in the Wasm build);
    /// the id Envoy gave it.
    pub fn define(self, kind: MetricKind, name: &str) -> Option<usize> {
        let define = match kind {
            MetricKind::Counter => envoy_dynamic_module_callback_http_filter_config_define_counter,
            MetricKind::Gauge => envoy_dynamic_module_callback_http_filter_config_define_gauge,
            MetricKind::Histogram => {
                envoy_dynamic_module_callback_http_filter_config_define_histogram
            }
        };
        let mut id = 0usize;
        // SAFETY: the config pointer is Envoy's, live during config_new; the name is a live
        // slice Envoy copies; no labels (null, 0); Envoy writes one usize to a live local.
        let result = unsafe {
            define(
                self.0,
                ModuleBuffer::of(name.as_bytes()),
                std::ptr::null(),
                0,
                &mut id,
            )
        };
        (result == METRICS_SUCCESS).then_some(id)
    }
}

/// Envoy's `DynamicModuleHttpFilter` for one stream, valid during the hook that handed it over
/// (Envoy calls a stream's hooks one at a time, on its worker thread).
#[derive(Clone, Copy)]
pub struct EnvoyFilter(*mut c_void);

impl EnvoyFilter {
    /// Every header of a map, in place: Envoy fills `scratch` (reused from request to request,
    /// so no allocation once it has grown) with pointers into its own map, and `read` sees
    /// them as byte slices, with no copy. The map must not change while `read` runs: it only
    /// reads (the binding writes after it returns, from what it decided). `None` if Envoy
    /// cannot list the map.
    pub fn with_headers<R>(
        self,
        map: HeaderMap,
        scratch: &mut Vec<EnvoyHttpHeader>,
        read: impl FnOnce(&Headers<'_>) -> R,
    ) -> Option<R> {
        // SAFETY: Envoy's live filter pointer.
        let count =
            unsafe { envoy_dynamic_module_callback_http_get_headers_size(self.0, map as u32) };
        scratch.clear();
        scratch.resize(count, EMPTY_HEADER);
        let filled = count == 0 || {
            // SAFETY: `scratch` has room for the `count` entries Envoy just reported, on this
            // thread, with nothing changing the map in between.
            unsafe {
                envoy_dynamic_module_callback_http_get_headers(
                    self.0,
                    map as u32,
                    scratch.as_mut_ptr(),
                )
            }
        };
        if !filled {
            return None;
        }
        Some(read(&Headers { entries: scratch }))
    }

    /// The first value of a header, handed to `read` in place (`None`: absent).
    pub fn with_header<R>(
        self,
        map: HeaderMap,
        name: &str,
        read: impl FnOnce(&[u8]) -> R,
    ) -> Option<R> {
        let mut value = EnvoyBuffer {
            ptr: std::ptr::null(),
            length: 0,
        };
        let mut count = 0usize;
        // SAFETY: Envoy's live filter pointer, a live name slice, two live locals to write to.
        let ok = unsafe {
            envoy_dynamic_module_callback_http_get_header(
                self.0,
                map as u32,
                ModuleBuffer::of(name.as_bytes()),
                &mut value,
                0,
                &mut count,
            )
        };
        // SAFETY: on success the buffer is valid until the map changes, which it cannot while
        // `read` runs: `read` gets no way to reach the map.
        (ok && count > 0).then(|| read(unsafe { borrowed(value.ptr, value.length) }))
    }

    /// Sets a header, replacing every value it had; `None` removes it.
    pub fn set_header(self, map: HeaderMap, name: &str, value: Option<&str>) -> bool {
        let value = value.map_or(ModuleBuffer::null(), |v| ModuleBuffer::of(v.as_bytes()));
        // SAFETY: Envoy's live filter pointer and live slices Envoy copies (or null: remove).
        unsafe {
            envoy_dynamic_module_callback_http_set_header(
                self.0,
                map as u32,
                ModuleBuffer::of(name.as_bytes()),
                value,
            )
        }
    }

    /// Adds a header value, keeping those it already has.
    pub fn add_header(self, map: HeaderMap, name: &str, value: &str) -> bool {
        // SAFETY: as `set_header`.
        unsafe {
            envoy_dynamic_module_callback_http_add_header(
                self.0,
                map as u32,
                ModuleBuffer::of(name.as_bytes()),
                ModuleBuffer::of(value.as_bytes()),
            )
        }
    }

    /// Makes Envoy choose the route again: setting a header does not, in this ABI.
    pub fn clear_route_cache(self) {
        // SAFETY: Envoy's live filter pointer.
        unsafe { envoy_dynamic_module_callback_http_clear_route_cache(self.0) }
    }

    /// The downstream connection's own peer, from where `peer_source` says; `None` when that
    /// address may have come from a request header.
    pub fn source_ip(self) -> Option<IpAddr> {
        let mut value = EnvoyBuffer {
            ptr: std::ptr::null(),
            length: 0,
        };
        let ok = match peer_source() {
            // SAFETY: Envoy's live filter pointer, a live local to write to.
            PeerSource::DirectRemoteAddress(callback) => unsafe { callback(self.0, &mut value) },
            // SAFETY: as above.
            PeerSource::SourceAddressAttribute => unsafe {
                envoy_dynamic_module_callback_http_filter_get_attribute_string(
                    self.0,
                    ATTRIBUTE_SOURCE_ADDRESS,
                    &mut value,
                )
            },
        };
        if !ok {
            return None;
        }
        // SAFETY: on success, a buffer valid for this hook; parsed at once.
        super::parse_address(unsafe { borrowed(value.ptr, value.length) })
    }
}

metric_updates! {
    EnvoyConfig {
        increment => envoy_dynamic_module_callback_http_filter_config_increment_counter,
        set_gauge => envoy_dynamic_module_callback_http_filter_config_set_gauge,
    }
    EnvoyFilter {
        increment => envoy_dynamic_module_callback_http_filter_increment_counter,
        set_gauge => envoy_dynamic_module_callback_http_filter_set_gauge,
        record => envoy_dynamic_module_callback_http_filter_record_histogram_value,
    }
}

// ---------------------------------------------------------------------------- event hooks --

/// Called once when Envoy loads the module; the ABI version Dial speaks (null would unload it).
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_program_init() -> *const c_char {
    super::shield("program_init", super::program_init);
    ABI_VERSION.as_ptr().cast()
}

/// A filter configuration: Dial's policy. Null refuses it (Envoy refuses the listener).
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_new(
    config_envoy: *mut c_void,
    name: EnvoyBuffer,
    config: EnvoyBuffer,
) -> *const c_void {
    let created = super::shield("http_filter_config_new", || {
        // SAFETY: Envoy hands both buffers over for the duration of this call; copied at once.
        let name = unsafe { copied(name.ptr, name.length) };
        // SAFETY: as for the name.
        let config = unsafe { copied(config.ptr, config.length) };
        super::config_new(EnvoyConfig(config_envoy), &name, &config)
    });
    match created.flatten() {
        Some(config) => Arc::into_raw(config).cast(),
        None => std::ptr::null(),
    }
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_destroy(config: *const c_void) {
    super::shield("http_filter_config_destroy", || {
        if !config.is_null() {
            // SAFETY: `config` came from `Arc::into_raw` in config_new, and Envoy destroys it
            // exactly once; streams hold their own clones.
            drop(unsafe { Arc::from_raw(config.cast::<Config>()) });
        }
    });
}

/// A stream starts: Dial's per-stream state. Null would make Envoy close the stream.
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_new(
    config: *const c_void,
    _filter_envoy: *mut c_void,
) -> *const c_void {
    let created = super::shield("http_filter_new", || {
        if config.is_null() {
            return None;
        }
        let config = config.cast::<Config>();
        // SAFETY: `config` came from `Arc::into_raw` in config_new and is alive: Envoy calls
        // config_destroy only after the last stream is created from it. One more strong
        // reference, for this stream...
        unsafe { Arc::increment_strong_count(config) };
        // SAFETY: ...which this `Arc` owns (the stream drops it in http_filter_destroy).
        let config = unsafe { Arc::from_raw(config) };
        Some(Box::new(Filter::new(config)))
    });
    match created.flatten() {
        Some(filter) => Box::into_raw(filter).cast_const().cast(),
        None => std::ptr::null(),
    }
}

/// The stream's state, for the hooks Envoy calls on its worker thread one at a time.
///
/// # Safety
/// `filter` must be null or come from `Box::into_raw` in `on_http_filter_new`, not yet destroyed.
unsafe fn filter_mut<'a>(filter: *const c_void) -> Option<&'a mut Filter> {
    // SAFETY: per this function's contract; Envoy never calls two hooks of a stream at once.
    unsafe { filter.cast_mut().cast::<Filter>().as_mut() }
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_request_headers(
    filter_envoy: *mut c_void,
    filter: *const c_void,
    _end_of_stream: bool,
) -> u32 {
    // SAFETY: Envoy passes back the pointer on_http_filter_new returned, for a live stream.
    if let Some(filter) = unsafe { filter_mut(filter) } {
        let envoy = EnvoyFilter(filter_envoy);
        let done = super::shield("http_filter_request_headers", || {
            super::request_headers(envoy, filter)
        });
        if done.is_none() {
            // The request still passes, but never with a client's own steering headers.
            super::shield("http_filter_request_headers, after a panic", || {
                super::after_panic(envoy, filter)
            });
        }
    }
    CONTINUE
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_response_headers(
    filter_envoy: *mut c_void,
    filter: *const c_void,
    _end_of_stream: bool,
) -> u32 {
    // SAFETY: as in request_headers.
    if let Some(filter) = unsafe { filter_mut(filter) } {
        super::shield("http_filter_response_headers", || {
            super::response_headers(EnvoyFilter(filter_envoy), filter)
        });
    }
    CONTINUE
}

/// The stream is over (before access logs and destroy): the exchange's end.
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_stream_complete(
    filter_envoy: *mut c_void,
    filter: *const c_void,
) {
    // SAFETY: as in request_headers.
    if let Some(filter) = unsafe { filter_mut(filter) } {
        super::shield("http_filter_stream_complete", || {
            super::stream_complete(EnvoyFilter(filter_envoy), filter)
        });
    }
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_destroy(filter: *const c_void) {
    super::shield("http_filter_destroy", || {
        if !filter.is_null() {
            // SAFETY: `filter` came from `Box::into_raw` in on_http_filter_new; Envoy destroys
            // each stream's filter exactly once, after its last hook.
            drop(unsafe { Box::from_raw(filter.cast_mut().cast::<Filter>()) });
        }
    });
}

/// A per-route configuration (`DynamicModuleFilterPerRoute`): Dial has none, and accepts and
/// ignores one, so a control plane that enables the filter route by route with one (Envoy
/// Gateway) can. Null would refuse the route configuration.
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_per_route_config_new(
    _name: EnvoyBuffer,
    _config: EnvoyBuffer,
) -> *const c_void {
    ABI_VERSION.as_ptr().cast()
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_per_route_config_destroy(
    _config: *const c_void,
) {
}

/// The configuration's scheduled event (main thread): a worker found a fleet query due.
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_scheduled(
    config_envoy: *mut c_void,
    config: *const c_void,
    _event_id: u64,
) {
    super::shield("http_filter_config_scheduled", || {
        // SAFETY: `config` is what config_new returned (`Arc::into_raw`); Envoy calls this hook
        // on the main thread only while the configuration lives (its scheduler holds a weak
        // reference, and config_destroy runs on the main thread too). Borrowed, not owned.
        if let Some(config) = unsafe { config.cast::<Config>().as_ref() } {
            config.send_fleet_queries(EnvoyConfig(config_envoy));
        }
    });
}

/// A fleet query's answer (main thread).
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_http_callout_done(
    config_envoy: *mut c_void,
    config: *const c_void,
    callout_id: u64,
    result: u32,
    headers: *const EnvoyHttpHeader,
    headers_size: usize,
    body_chunks: *const EnvoyBuffer,
    body_chunks_size: usize,
) {
    super::shield("http_filter_config_http_callout_done", || {
        // SAFETY: as in config_scheduled.
        let Some(config) = (unsafe { config.cast::<Config>().as_ref() }) else {
            return;
        };
        let headers: &[EnvoyHttpHeader] = if headers.is_null() {
            &[]
        } else {
            // SAFETY: Envoy hands `headers_size` headers valid until this hook returns.
            unsafe { std::slice::from_raw_parts(headers, headers_size) }
        };
        let chunks: &[EnvoyBuffer] = if body_chunks.is_null() {
            &[]
        } else {
            // SAFETY: as for the headers.
            unsafe { std::slice::from_raw_parts(body_chunks, body_chunks_size) }
        };
        let status = headers.iter().find_map(|h| {
            // SAFETY: each header's buffers are valid until this hook returns.
            let name = unsafe { borrowed(h.key_ptr, h.key_length) };
            // SAFETY: as for the name.
            (name == b":status").then(|| unsafe { borrowed(h.value_ptr, h.value_length) })
        });
        let body_size: usize = chunks.iter().map(|c| c.length).sum();
        let mut body = Vec::new();
        if body_size <= super::MAX_ANSWER_BYTES {
            for c in chunks {
                // SAFETY: each chunk is valid until this hook returns; copied at once.
                body.extend_from_slice(unsafe { borrowed(c.ptr, c.length) });
            }
        }
        let outcome = match result {
            CALLOUT_SUCCESS => super::Callout::Response { status, body_size },
            CALLOUT_EXCEED_RESPONSE_BUFFER_LIMIT => super::Callout::TooLarge,
            _ => super::Callout::Reset,
        };
        config.on_fleet_answer(EnvoyConfig(config_envoy), callout_id, outcome, &body);
    });
}

// Hooks Envoy 1.40 requires of every HTTP filter module (it refuses a module without them) and
// Dial has no use for: bodies and trailers pass, callouts and schedulers of a stream are never
// started (the fleet verdict's belong to the configuration, above).

/// Exports hooks that do nothing: each takes Envoy's stream pointer and Dial's, then the
/// arguments listed, and returns `CONTINUE` (the stream goes on) or nothing.
macro_rules! unused_hooks {
    (returning CONTINUE: $($name:ident($($arg:ident: $ty:ty),* $(,)?);)+) => {$(
        #[no_mangle]
        pub extern "C" fn $name(_: *mut c_void, _: *const c_void, $($arg: $ty),*) -> u32 {
            CONTINUE
        }
    )+};
    (returning nothing: $($name:ident($($arg:ident: $ty:ty),* $(,)?);)+) => {$(
        #[no_mangle]
        pub extern "C" fn $name(_: *mut c_void, _: *const c_void, $($arg: $ty),*) {}
    )+};
}

unused_hooks! { returning CONTINUE:
    envoy_dynamic_module_on_http_filter_request_body(_end_of_stream: bool);
    envoy_dynamic_module_on_http_filter_request_trailers();
    envoy_dynamic_module_on_http_filter_response_body(_end_of_stream: bool);
    envoy_dynamic_module_on_http_filter_response_trailers();
}

unused_hooks! { returning nothing:
    envoy_dynamic_module_on_http_filter_http_callout_done(
        _callout_id: u64,
        _result: u32,
        _headers: *mut EnvoyHttpHeader,
        _headers_size: usize,
        _body_chunks: *mut EnvoyBuffer,
        _body_chunks_size: usize,
    );
    envoy_dynamic_module_on_http_filter_http_stream_headers(
        _stream_id: u64,
        _headers: *mut EnvoyHttpHeader,
        _headers_size: usize,
        _end_stream: bool,
    );
    envoy_dynamic_module_on_http_filter_http_stream_data(
        _stream_id: u64,
        _data: *const EnvoyBuffer,
        _data_count: usize,
        _end_stream: bool,
    );
    envoy_dynamic_module_on_http_filter_http_stream_trailers(
        _stream_id: u64,
        _trailers: *mut EnvoyHttpHeader,
        _trailers_size: usize,
    );
    envoy_dynamic_module_on_http_filter_http_stream_complete(_stream_id: u64);
    envoy_dynamic_module_on_http_filter_http_stream_reset(_stream_id: u64, _reason: u32);
    envoy_dynamic_module_on_http_filter_scheduled(_event_id: u64);
    envoy_dynamic_module_on_http_filter_downstream_above_write_buffer_high_watermark();
    envoy_dynamic_module_on_http_filter_downstream_below_write_buffer_low_watermark();
}
