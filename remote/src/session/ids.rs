//! OpenCode-format identifiers: `<prefix>_` + 12 hex digits of `(epoch_ms · 4096 + counter)` as
//! a 48-bit big-endian number (bitwise NOT for descending ids) + 14 random base62 characters.
//!
//! OpenCode sorts lists by id, and validates prefixes (`ses`, `msg`, `prt`, `per`, `evt`, …) when
//! it replays events, so ids must look exactly like its own. Sessions use descending ids (newest
//! first), everything else ascending.

use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const RANDOM_LEN: usize = 14;

/// Sort direction encoded in the id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Newer ids sort after older ones.
    Ascending,
    /// Newer ids sort before older ones (sessions).
    Descending,
}

struct Clock {
    last_ms: u64,
    counter: u64,
}

static CLOCK: Mutex<Clock> = Mutex::new(Clock {
    last_ms: 0,
    counter: 0,
});

/// Milliseconds since the epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A new id with `prefix` (without the underscore).
pub fn new(prefix: &str, order: Order) -> String {
    let (ms, counter) = {
        let mut clock = CLOCK
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let ms = now_ms().max(clock.last_ms);
        if ms != clock.last_ms {
            clock.last_ms = ms;
            clock.counter = 0;
        }
        clock.counter += 1;
        (ms, clock.counter)
    };
    let mut id = String::with_capacity(prefix.len() + 1 + 12 + RANDOM_LEN);
    id.push_str(prefix);
    id.push('_');
    id.push_str(&time_part(ms, counter, order));
    let mut random = [0u8; RANDOM_LEN];
    if getrandom::fill(&mut random).is_err() {
        // No OS randomness: fall back to the counter-derived time bits (ids stay unique within
        // this process through the counter).
        random = [b'0'; RANDOM_LEN];
    }
    for byte in random {
        id.push(BASE62[usize::from(byte) % BASE62.len()] as char);
    }
    id
}

/// The 12 hex digits: the low 48 bits of `ms · 4096 + counter` (inverted for descending ids),
/// exactly as OpenCode computes them (the value wraps; only ordering matters).
fn time_part(ms: u64, counter: u64, order: Order) -> String {
    let mut value = ms.wrapping_mul(0x1000).wrapping_add(counter);
    if order == Order::Descending {
        value = !value;
    }
    format!("{:012x}", value & 0xffff_ffff_ffff)
}

/// Whether `id` looks like an OpenCode id with `prefix`.
pub fn is_valid(id: &str, prefix: &str) -> bool {
    id.strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('_'))
        .is_some_and(|rest| {
            rest.len() == 12 + RANDOM_LEN
                && rest.bytes().take(12).all(|b| b.is_ascii_hexdigit())
                && rest.bytes().skip(12).all(|b| b.is_ascii_alphanumeric())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_should_have_opencode_shape_and_order() {
        let a = new("msg", Order::Ascending);
        let b = new("msg", Order::Ascending);
        assert!(is_valid(&a, "msg"), "{a}");
        assert!(a < b, "{a} {b}");
        assert_eq!(a.len(), "msg_".len() + 26);
        let s1 = new("ses", Order::Descending);
        let s2 = new("ses", Order::Descending);
        assert!(s1 > s2, "{s1} {s2}");
        assert!(s1.starts_with("ses_"));
        assert!(!is_valid("ses_123", "ses"));
        assert!(!is_valid(&a, "ses"));
    }

    #[test]
    fn time_part_should_match_opencodes_own_ids() {
        // `ses_df3ea3bceffe…` was created by OpenCode 1.18.33 at 1795499082801 ms (its
        // `time.created`), first id in that millisecond.
        assert_eq!(
            time_part(1_795_499_082_801, 1, Order::Descending),
            "df3ea3bceffe"
        );
        assert_eq!(
            time_part(1_795_499_082_801, 1, Order::Ascending),
            "20c15c431001"
        );
    }
}
