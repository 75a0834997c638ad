//! [`LoginThrottle`]: failed sign-ins counted per account and per source address over a sliding window.
//!
//! In memory, per process: a restart forgets the counters (acceptable — it costs an attacker a restart
//! they cannot trigger) and several processes count separately (each enforces its own limit).

use crate::platform::PlatformConfig;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Above this many tracked keys, expired ones are swept on the next failure, so a flood of distinct
/// usernames or addresses cannot grow the maps without bound for longer than one window.
const SWEEP_ABOVE: usize = 10_000;

/// Failed-login counters per account and per source address.
#[derive(Default)]
pub struct LoginThrottle {
    state: Mutex<ThrottleState>,
}

#[derive(Default)]
struct ThrottleState {
    accounts: HashMap<String, VecDeque<Instant>>,
    sources: HashMap<String, VecDeque<Instant>>,
    /// When a refusal of this account/source pair was last written to the audit trail.
    reported: HashMap<String, Instant>,
}

/// Failures of one key still inside the window (dropping older ones).
fn recent(times: &mut VecDeque<Instant>, now: Instant, window: Duration) -> usize {
    while times.front().is_some_and(|t| now.duration_since(*t) >= window) {
        times.pop_front();
    }
    times.len()
}

fn over(
    map: &mut HashMap<String, VecDeque<Instant>>,
    key: Option<&str>,
    limit: u32,
    now: Instant,
    window: Duration,
) -> bool {
    let Some(times) = key.and_then(|k| map.get_mut(k)) else { return false };
    recent(times, now, window) >= limit as usize
}

fn record(map: &mut HashMap<String, VecDeque<Instant>>, key: &str, limit: u32, now: Instant, window: Duration) {
    if map.len() > SWEEP_ABOVE {
        map.retain(|_, times| recent(times, now, window) > 0);
    }
    let times = map.entry(key.to_owned()).or_default();
    times.push_back(now);
    // Only the newest `limit` failures matter for the decision.
    while times.len() > (limit as usize).max(1) {
        times.pop_front();
    }
}

impl LoginThrottle {
    /// Whether the account or the source has used up its failures within the window. Checked before
    /// the password, so a throttled attempt learns nothing.
    pub fn is_throttled(&self, account: Option<&str>, source: Option<&str>, config: &PlatformConfig) -> bool {
        let now = Instant::now();
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let window = config.login_window;
        over(&mut state.accounts, account, config.login_failures_per_account, now, window)
            || over(&mut state.sources, source, config.login_failures_per_source, now, window)
    }

    /// Counts one failure against the account and the source.
    pub fn record_failure(&self, account: Option<&str>, source: Option<&str>, config: &PlatformConfig) {
        let now = Instant::now();
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let window = config.login_window;
        if let Some(account) = account {
            record(&mut state.accounts, account, config.login_failures_per_account, now, window);
        }
        if let Some(source) = source {
            record(&mut state.sources, source, config.login_failures_per_source, now, window);
        }
    }

    /// Whether a throttled refusal for this account and source should be audited: the first one per
    /// window is, the rest are not, so an attacker hammering a throttled account cannot flood the audit
    /// chain (each entry is a serialised, durable write).
    pub fn should_report(&self, account: Option<&str>, source: Option<&str>, config: &PlatformConfig) -> bool {
        let now = Instant::now();
        let key = format!("{}\u{0}{}", account.unwrap_or_default(), source.unwrap_or_default());
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let window = config.login_window;
        if state.reported.len() > SWEEP_ABOVE {
            state.reported.retain(|_, t| now.duration_since(*t) < window);
        }
        match state.reported.get(&key) {
            Some(t) if now.duration_since(*t) < window => false,
            _ => {
                state.reported.insert(key, now);
                true
            }
        }
    }

    /// Forgets an account's failures after a successful sign-in (the source keeps its count: one
    /// address guessing many accounts stays throttled).
    pub fn clear_account(&self, account: &str) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.accounts.remove(account);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_within_the_window() {
        let config = PlatformConfig {
            login_failures_per_account: 2,
            login_failures_per_source: 3,
            login_window: Duration::from_secs(60),
            ..PlatformConfig::default()
        };
        let t = LoginThrottle::default();
        assert!(!t.is_throttled(Some("a"), Some("1.2.3.4"), &config));
        t.record_failure(Some("a"), Some("1.2.3.4"), &config);
        assert!(!t.is_throttled(Some("a"), None, &config));
        t.record_failure(Some("a"), Some("1.2.3.4"), &config);
        assert!(t.is_throttled(Some("a"), None, &config), "account limit");
        assert!(!t.is_throttled(Some("b"), Some("1.2.3.4"), &config));
        t.record_failure(Some("b"), Some("1.2.3.4"), &config);
        assert!(t.is_throttled(Some("c"), Some("1.2.3.4"), &config), "source limit");
        t.clear_account("a");
        assert!(!t.is_throttled(Some("a"), Some("5.6.7.8"), &config));
        assert!(t.should_report(Some("a"), Some("1.2.3.4"), &config));
        assert!(!t.should_report(Some("a"), Some("1.2.3.4"), &config), "once per window");
        assert!(t.should_report(Some("a"), Some("5.6.7.8"), &config));
        let short = PlatformConfig { login_window: Duration::ZERO, ..config };
        assert!(t.should_report(Some("a"), Some("1.2.3.4"), &short));
        assert!(!t.is_throttled(Some("c"), Some("1.2.3.4"), &short), "expired failures do not count");
    }
}
