//! Which models loaded on demand stay in memory: the least recently used beyond the cap go.

use std::collections::VecDeque;

/// Slot indexes of models loaded on demand, least recently used first.
#[derive(Debug)]
pub(super) struct Recent {
    order: VecDeque<usize>,
    cap: usize,
}

impl Recent {
    /// At least one model is always kept: the one just used.
    pub(super) fn new(cap: usize) -> Self {
        Recent {
            order: VecDeque::new(),
            cap: cap.max(1),
        }
    }

    pub(super) fn cap(&self) -> usize {
        self.cap
    }

    /// Marks `slot` most recently used; returns the slots to unload, oldest first.
    pub(super) fn touch(&mut self, slot: usize) -> Vec<usize> {
        self.order.retain(|&i| i != slot);
        self.order.push_back(slot);
        let over = self.order.len().saturating_sub(self.cap);
        self.order.drain(..over).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_the_least_recently_used_beyond_the_cap() {
        let mut recent = Recent::new(2);
        assert!(recent.touch(0).is_empty());
        assert!(recent.touch(1).is_empty());
        // 0 is used again, so 1 is now the oldest.
        assert!(recent.touch(0).is_empty());
        assert_eq!(recent.touch(2), vec![1]);
        assert_eq!(recent.touch(1), vec![0]);
        assert!(
            recent.touch(1).is_empty(),
            "touching the newest evicts nothing"
        );
    }

    #[test]
    fn a_cap_of_zero_still_keeps_the_model_in_use() {
        let mut recent = Recent::new(0);
        assert_eq!(recent.cap(), 1);
        assert!(recent.touch(3).is_empty());
        assert_eq!(recent.touch(4), vec![3]);
    }
}
