//! Record ids: assigned where a record is made, never by a database.

use uuid::Uuid;

/// Sonde's namespace for name-based (deterministic) ids.
const SONDE_NAMESPACE: Uuid = Uuid::from_u128(0x6b1e_52d8_4a7f_4c3e_9d0a_5f1c_2b8e_7a31);

/// A fresh, time-ordered id (UUID v7).
///
/// Ids made in one process sort in creation order, so two records with the same
/// timestamp keep the order in which they were made.
///
/// ```
/// let a = sonde_model::new_id();
/// let b = sonde_model::new_id();
/// assert!(a < b);
/// assert_eq!(a.len(), 36);
/// ```
pub fn new_id() -> String {
    Uuid::now_v7().to_string()
}

/// A deterministic id derived from `parts` (UUID v5 in Sonde's namespace).
///
/// The same parts give the same id on every machine, so importing or syncing the
/// same source twice stores each record once.
///
/// ```
/// let a = sonde_model::derived_id(&["claude-code", "session.jsonl", "42"]);
/// assert_eq!(a, sonde_model::derived_id(&["claude-code", "session.jsonl", "42"]));
/// assert_ne!(a, sonde_model::derived_id(&["claude-code", "session.jsonl", "43"]));
/// ```
pub fn derived_id(parts: &[&str]) -> String {
    Uuid::new_v5(&SONDE_NAMESPACE, &id_name(parts)).to_string()
}

/// A deterministic id derived from `parts` that sorts by `at`, to the millisecond: a
/// UUID version 8 laid out as version 7 is (48 bits of Unix milliseconds first), with
/// the rest from the hash of `parts`.
///
/// Stores keep ids in a B-tree; ids that arrive in time order append to it instead of
/// landing all over it, which is what makes bulk loads of derived ids fast.
///
/// ```
/// use sonde_model::{Timestamp, derived_id_at};
/// let t: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
/// let later: Timestamp = "2026-01-01T00:00:01Z".parse().unwrap();
/// assert_eq!(derived_id_at(t, &["a"]), derived_id_at(t, &["a"]));
/// assert_ne!(derived_id_at(t, &["a"]), derived_id_at(t, &["b"]));
/// assert!(derived_id_at(t, &["z"]) < derived_id_at(later, &["a"]));
/// ```
pub fn derived_id_at(at: crate::Timestamp, parts: &[&str]) -> String {
    let hash = Uuid::new_v5(&SONDE_NAMESPACE, &id_name(parts)).as_u128();
    let millis = u128::try_from(at.as_micros().div_euclid(1000)).unwrap_or(0) & ((1 << 48) - 1);
    let bits = (millis << 80)
        | (0x8 << 76)
        | (((hash >> 64) & 0xfff) << 64)
        | (0b10 << 62)
        | (hash & ((1 << 62) - 1));
    Uuid::from_u128(bits).to_string()
}

fn id_name(parts: &[&str]) -> Vec<u8> {
    let mut name = Vec::with_capacity(parts.iter().map(|p| p.len() + 1).sum());
    for part in parts {
        // Length-prefix each part so that ["ab", "c"] and ["a", "bc"] differ.
        name.extend_from_slice(&(part.len() as u64).to_le_bytes());
        name.extend_from_slice(part.as_bytes());
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_ids_separate_their_parts() {
        assert_ne!(derived_id(&["ab", "c"]), derived_id(&["a", "bc"]));
    }

    #[test]
    fn new_ids_are_unique_and_ordered() {
        let ids: Vec<String> = (0..1000).map(|_| new_id()).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted, ids);
    }
}
