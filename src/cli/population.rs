//! Users to run a policy over: `--users N` (keys `user-0` to `user-<N-1>`, the keys the tests
//! and the demo send) or `--keys FILE` (one key per line), spread over every core, with
//! progress on standard error for long runs.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::Failure;
use crate::report::thousands;

#[derive(Debug, clap::Args)]
pub struct KeyArgs {
    /// Run over N users, keyed user-0 to user-<N-1> [default: 100000]
    #[arg(long, value_name = "N", conflicts_with = "keys")]
    pub users: Option<u64>,
    /// Run over the user keys in FILE, one per line (an export of real ids, say)
    #[arg(long, value_name = "FILE")]
    pub keys: Option<String>,
    /// No progress on standard error
    #[arg(long, short)]
    pub quiet: bool,
}

pub enum Keys {
    Users(u64),
    File {
        name: String,
        data: Vec<u8>,
        count: u64,
    },
}

impl KeyArgs {
    pub fn keys(&self) -> Result<Keys, Failure> {
        match &self.keys {
            Some(name) => {
                let data = std::fs::read(name)
                    .map_err(|e| Failure::usage(format!("--keys {name}: cannot read it: {e}")))?;
                let count = lines(&data).count() as u64;
                if count == 0 {
                    return Err(Failure::usage(format!(
                        "--keys {name}: no keys in it (one user key per line)"
                    )));
                }
                Ok(Keys::File {
                    name: name.clone(),
                    data,
                    count,
                })
            }
            None => match self.users {
                Some(0) => Err(Failure::usage("--users 0: give at least one user")),
                Some(n) => Ok(Keys::Users(n)),
                None => Ok(Keys::Users(100_000)),
            },
        }
    }
}

/// The non-empty lines of a keys file, without line ends.
fn lines(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    data.split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .filter(|l| !l.is_empty())
}

impl Keys {
    pub fn len(&self) -> u64 {
        match self {
            Keys::Users(n) => *n,
            Keys::File { count, .. } => *count,
        }
    }

    /// `1,000,000 users (user-0 to user-999999)`, `12,345 keys from ids.txt`.
    pub fn describe(&self) -> String {
        match self {
            Keys::Users(1) => "1 user (user-0)".into(),
            Keys::Users(n) => format!("{} users (user-0 to user-{})", thousands(*n), n - 1),
            Keys::File { name, count, .. } => format!("{} keys from {name}", thousands(*count)),
        }
    }

    pub fn json(&self) -> Value {
        match self {
            Keys::Users(n) => json!({ "users": n, "keys": "user-<i>" }),
            Keys::File { name, count, .. } => json!({ "users": count, "keys": name }),
        }
    }

    /// Every key in order, one at a time (for per-key output).
    pub fn each(&self, mut f: impl FnMut(&[u8])) {
        match self {
            Keys::Users(n) => {
                let mut buf = Vec::with_capacity(32);
                for i in 0..*n {
                    user_key(&mut buf, i);
                    f(&buf);
                }
            }
            Keys::File { data, .. } => lines(data).for_each(f),
        }
    }
}

/// `user-<i>` into `buf`.
fn user_key(buf: &mut Vec<u8>, i: u64) {
    buf.clear();
    buf.extend_from_slice(b"user-");
    let mut digits = [0u8; 20];
    let mut n = i;
    let mut at = digits.len();
    loop {
        at -= 1;
        if let Some(d) = digits.get_mut(at) {
            *d = b'0' + (n % 10) as u8;
        }
        n /= 10;
        if n == 0 || at == 0 {
            break;
        }
    }
    buf.extend_from_slice(digits.get(at..).unwrap_or_default());
}

/// Keys a worker reports at a time.
const BATCH: u64 = 1 << 14;

/// Runs `work` over every key, on every core; each worker starts from `init()` and the
/// workers' states come back in order. `label` names the run in the progress line.
pub fn run<S: Send>(
    keys: &Keys,
    label: &str,
    quiet: bool,
    init: impl Fn() -> S + Sync,
    work: impl Fn(&mut S, &[u8]) + Sync,
) -> Result<Vec<S>, Failure> {
    let total = keys.len();
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 16)
        .min(usize::try_from(total.div_ceil(BATCH)).unwrap_or(1).max(1));
    let done = AtomicU64::new(0);
    let started = Instant::now();
    let (init, work, done) = (&init, &work, &done);
    std::thread::scope(|scope| {
        let handles: Vec<_> = match keys {
            Keys::Users(n) => (0..workers as u64)
                .map(|w| {
                    let (from, to) = (n * w / workers as u64, n * (w + 1) / workers as u64);
                    scope.spawn(move || {
                        let mut state = init();
                        let mut buf = Vec::with_capacity(32);
                        for i in from..to {
                            user_key(&mut buf, i);
                            work(&mut state, &buf);
                            if (i - from) % BATCH == BATCH - 1 {
                                done.fetch_add(BATCH, Ordering::Relaxed);
                            }
                        }
                        done.fetch_add((to - from) % BATCH, Ordering::Relaxed);
                        state
                    })
                })
                .collect(),
            Keys::File { data, .. } => chunks(data, workers)
                .into_iter()
                .map(|chunk| {
                    scope.spawn(move || {
                        let mut state = init();
                        let mut seen = 0u64;
                        for key in lines(chunk) {
                            work(&mut state, key);
                            seen += 1;
                            if seen.is_multiple_of(BATCH) {
                                done.fetch_add(BATCH, Ordering::Relaxed);
                            }
                        }
                        done.fetch_add(seen % BATCH, Ordering::Relaxed);
                        state
                    })
                })
                .collect(),
        };
        let mut progress = Progress::new(label, total, quiet);
        while !handles.iter().all(|h| h.is_finished()) {
            std::thread::sleep(Duration::from_millis(100));
            progress.show(done.load(Ordering::Relaxed), started.elapsed());
        }
        progress.finish(total, started.elapsed());
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .map_err(|_| Failure::problems(format!("{label}: a worker thread failed")))
            })
            .collect()
    })
}

/// `data` cut into about `n` pieces at line ends.
fn chunks(data: &[u8], n: usize) -> Vec<&[u8]> {
    let mut out = Vec::with_capacity(n);
    let mut rest = data;
    for i in (1..=n).rev() {
        if i == 1 {
            out.push(rest);
            break;
        }
        let want = rest.len() / i;
        let cut = rest
            .get(want..)
            .and_then(|tail| tail.iter().position(|&b| b == b'\n'))
            .map_or(rest.len(), |p| want + p + 1);
        let (head, tail) = rest.split_at(cut.min(rest.len()));
        out.push(head);
        rest = tail;
    }
    out
}

/// The progress line: live on a terminal, a line every few seconds otherwise; only for runs
/// that last.
struct Progress<'a> {
    label: &'a str,
    total: u64,
    quiet: bool,
    terminal: bool,
    shown: bool,
    last: Duration,
}

impl<'a> Progress<'a> {
    fn new(label: &'a str, total: u64, quiet: bool) -> Progress<'a> {
        Progress {
            label,
            total,
            quiet,
            terminal: std::io::stderr().is_terminal(),
            shown: false,
            last: Duration::ZERO,
        }
    }

    fn show(&mut self, done: u64, elapsed: Duration) {
        let every = if self.terminal {
            Duration::from_millis(200)
        } else {
            Duration::from_secs(5)
        };
        if self.quiet || elapsed < Duration::from_secs(1) || elapsed - self.last < every {
            return;
        }
        self.last = elapsed;
        self.shown = true;
        let line = format!(
            "{}: {} of {} keys ({}%), {:.1} s",
            self.label,
            thousands(done),
            thousands(self.total),
            done * 100 / self.total.max(1),
            elapsed.as_secs_f64()
        );
        let mut err = std::io::stderr().lock();
        let _ = if self.terminal {
            write!(err, "\r\x1b[K{line}")
        } else {
            writeln!(err, "{line}")
        };
        let _ = err.flush();
    }

    fn finish(&mut self, total: u64, elapsed: Duration) {
        if !self.shown {
            return;
        }
        let mut err = std::io::stderr().lock();
        if self.terminal {
            let _ = write!(err, "\r\x1b[K");
        }
        let _ = writeln!(
            err,
            "{}: {} keys in {:.1} s",
            self.label,
            thousands(total),
            elapsed.as_secs_f64()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_keys_and_chunks() {
        let mut buf = Vec::new();
        user_key(&mut buf, 0);
        assert_eq!(buf, b"user-0");
        user_key(&mut buf, 9_876_543_210);
        assert_eq!(buf, b"user-9876543210");
        let data = b"a\nbb\r\n\nccc\ndddd\ne";
        for n in 1..6 {
            let c = chunks(data, n);
            assert_eq!(c.concat(), data.to_vec());
            let keys: Vec<&[u8]> = c.iter().flat_map(|c| lines(c)).collect();
            assert_eq!(keys, [&b"a"[..], b"bb", b"ccc", b"dddd", b"e"]);
        }
    }

    #[test]
    fn every_key_is_seen_once_whatever_the_workers() {
        let keys = Keys::Users(100_003);
        let states = run(&keys, "test", true, || 0u64, |n, _| *n += 1).unwrap();
        assert_eq!(states.iter().sum::<u64>(), 100_003);
        let mut sequential = 0;
        keys.each(|_| sequential += 1);
        assert_eq!(sequential, 100_003);
    }
}
