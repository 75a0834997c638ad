//! Document ids. `_id` is a plain string; generated ids are 24-hex ObjectId text, as OpenIAP Flow stores them.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

/// Generates a new ObjectId as 24 lower-case hex characters: 4 bytes of seconds since the epoch, 5 random
/// bytes chosen once per process, and a 3-byte counter, so ids sort roughly by creation time.
pub fn new_object_id() -> String {
    static PROCESS: OnceLock<[u8; 5]> = OnceLock::new();
    static COUNTER: OnceLock<AtomicU32> = OnceLock::new();
    let process = PROCESS.get_or_init(rand::random::<[u8; 5]>);
    let counter = COUNTER.get_or_init(|| AtomicU32::new(rand::random::<u32>() & 0x00ff_ffff));
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0) as u32;
    let n = counter.fetch_add(1, Ordering::Relaxed) & 0x00ff_ffff;
    let mut bytes = [0u8; 12];
    bytes[..4].copy_from_slice(&secs.to_be_bytes());
    bytes[4..9].copy_from_slice(process);
    bytes[9..].copy_from_slice(&n.to_be_bytes()[1..]);
    hex::encode(bytes)
}

/// True if `s` is 24 hex characters (the text form of an ObjectId).
pub fn is_object_id(s: &str) -> bool {
    s.len() == 24 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn ids_are_24_hex_and_unique() {
        let ids: HashSet<String> = (0..10_000).map(|_| new_object_id()).collect();
        assert_eq!(ids.len(), 10_000);
        assert!(ids.iter().all(|id| is_object_id(id) && id == &id.to_lowercase()));
    }

    #[test]
    fn object_id_shape() {
        assert!(is_object_id("5a1702fa245d9013697656fb"));
        assert!(!is_object_id("5a1702fa245d9013697656f"));
        assert!(!is_object_id("5a1702fa245d9013697656fz"));
    }
}
