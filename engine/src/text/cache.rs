//! A small least-recently-used cache of per-prompt results (text-encoder contexts), keyed
//! by the cleaned prompt so that prompts differing only in what cleaning removes share an
//! entry. Re-sending a prompt costs a lookup.

use std::collections::VecDeque;

/// LRU map from prompt to `V`; the front is the most recently used.
#[derive(Debug)]
pub struct PromptCache<V> {
    capacity: usize,
    entries: VecDeque<(String, V)>,
    hits: u64,
    misses: u64,
}

impl<V: Clone> PromptCache<V> {
    /// A cache of at most `capacity` prompts (0 disables caching).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            entries: VecDeque::with_capacity(capacity),
            hits: 0,
            misses: 0,
        }
    }

    /// The cached value for `key`, or `compute()`'s, stored as the most recent entry (the
    /// least recent is dropped when full). Errors are not cached.
    pub fn get_or_try_insert<E>(
        &mut self,
        key: &str,
        compute: impl FnOnce() -> Result<V, E>,
    ) -> Result<V, E> {
        if let Some(pos) = self.entries.iter().position(|(k, _)| k == key) {
            self.hits += 1;
            let entry = self.entries.remove(pos).expect("position is in range");
            let value = entry.1.clone();
            self.entries.push_front(entry);
            return Ok(value);
        }
        self.misses += 1;
        let value = compute()?;
        if self.capacity > 0 {
            if self.entries.len() == self.capacity {
                self.entries.pop_back();
            }
            self.entries.push_front((key.to_owned(), value.clone()));
        }
        Ok(value)
    }

    /// Whether `key` is cached (does not touch the order).
    pub fn contains(&self, key: &str) -> bool {
        self.entries.iter().any(|(k, _)| k == key)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// (hits, misses) so far.
    pub fn stats(&self) -> (u64, u64) {
        (self.hits, self.misses)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn least_recently_used_goes_first_and_hits_skip_the_work() {
        let mut c = PromptCache::new(2);
        let runs = std::cell::Cell::new(0);
        let get = |c: &mut PromptCache<String>, k: &str| {
            c.get_or_try_insert::<()>(k, || {
                runs.set(runs.get() + 1);
                Ok(k.to_uppercase())
            })
            .unwrap()
        };
        assert_eq!(get(&mut c, "a"), "A");
        assert_eq!(get(&mut c, "b"), "B");
        assert_eq!(get(&mut c, "a"), "A"); // hit: a is now the most recent
        assert_eq!(get(&mut c, "c"), "C"); // evicts b
        assert!(c.contains("a") && c.contains("c") && !c.contains("b"));
        assert_eq!(get(&mut c, "a"), "A");
        assert_eq!(c.stats(), (2, 3));
        assert_eq!(runs.get(), 3);
    }

    #[test]
    fn errors_are_not_cached_and_zero_capacity_never_stores() {
        let mut c = PromptCache::<u32>::new(0);
        assert_eq!(c.get_or_try_insert("x", || Ok::<_, ()>(1)), Ok(1));
        assert!(c.is_empty());
        let mut c = PromptCache::<u32>::new(4);
        assert_eq!(c.get_or_try_insert("x", || Err("boom")), Err("boom"));
        assert!(!c.contains("x"));
        assert_eq!(c.get_or_try_insert("x", || Ok::<_, &str>(2)), Ok(2));
        assert_eq!(c.len(), 1);
    }
}
