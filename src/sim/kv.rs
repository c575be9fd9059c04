//! The paged KV cache and automatic prefix caching, as vLLM V1's `BlockPool` and
//! `KVCacheManager` behave:
//!
//! - Fixed blocks of `block_size` tokens; a request holds a list of block ids.
//! - A full block's hash chains its parent's: `h_i = H(h_{i−1}, tokens of block i)`, so a
//!   hit on block i implies hits on every block before it.
//! - Freed blocks go (tail block first) to the back of an LRU free queue. A freed block
//!   keeps its hash and still produces hits until allocation evicts it from the queue's
//!   front; a hit on a free block takes it out of the queue (reference counting shares
//!   blocks between requests).
//! - A lookup may hit at most `⌊(L−1)/bs⌋` blocks: the last prompt token is always
//!   recomputed so the step has logits to sample from.
//!
//! The hash map is only ever looked up, never iterated, so decisions stay deterministic.

use twox_hash::XxHash64;

use super::fasthash::U64Map;

const NIL: u32 = u32::MAX;
/// Parent hash of a request's first block.
pub const ROOT_HASH: u64 = 0x9e37_79b9_7f4a_7c15;

/// `h_i = H(h_{i−1}, tokens of block i)`.
pub fn block_hash(parent: u64, tokens: &[u32]) -> u64 {
    let mut buf = [0u8; 256];
    if tokens.len() * 4 <= buf.len() {
        for (chunk, t) in buf.chunks_exact_mut(4).zip(tokens) {
            chunk.copy_from_slice(&t.to_le_bytes());
        }
        return XxHash64::oneshot(parent, &buf[..tokens.len() * 4]);
    }
    let bytes: Vec<u8> = tokens.iter().flat_map(|t| t.to_le_bytes()).collect();
    XxHash64::oneshot(parent, &bytes)
}

/// The block pool.
#[derive(Debug, Clone)]
pub struct KvCache {
    block_size: u32,
    caching: bool,
    ref_cnt: Vec<u32>,
    hash: Vec<Option<u64>>,
    prev: Vec<u32>,
    next: Vec<u32>,
    in_free: Vec<bool>,
    head: u32,
    tail: u32,
    free_count: usize,
    cached: U64Map<u32>,
}

impl KvCache {
    /// A pool of `num_blocks` blocks, all free.
    pub fn new(num_blocks: usize, block_size: u32, caching: bool) -> KvCache {
        let n = num_blocks;
        let mut kv = KvCache {
            block_size,
            caching,
            ref_cnt: vec![0; n],
            hash: vec![None; n],
            prev: vec![NIL; n],
            next: vec![NIL; n],
            in_free: vec![false; n],
            head: NIL,
            tail: NIL,
            free_count: 0,
            cached: U64Map::default(),
        };
        for b in 0..n as u32 {
            kv.push_back(b);
        }
        kv
    }

    /// True when prefix caching is on.
    pub fn caching(&self) -> bool {
        self.caching
    }

    /// Tokens per block.
    pub fn block_size(&self) -> u32 {
        self.block_size
    }

    /// Total blocks.
    pub fn num_blocks(&self) -> usize {
        self.ref_cnt.len()
    }

    /// Blocks in the free queue (including cached ones that can be evicted).
    pub fn num_free(&self) -> usize {
        self.free_count
    }

    /// Fraction of blocks in use (vLLM's `kv_cache_usage_perc`).
    pub fn usage(&self) -> f64 {
        let n = self.num_blocks();
        if n == 0 {
            0.0
        } else {
            1.0 - self.free_count as f64 / n as f64
        }
    }

    fn push_back(&mut self, b: u32) {
        let i = b as usize;
        self.prev[i] = self.tail;
        self.next[i] = NIL;
        if self.tail == NIL {
            self.head = b;
        } else {
            self.next[self.tail as usize] = b;
        }
        self.tail = b;
        self.in_free[i] = true;
        self.free_count += 1;
    }

    fn unlink(&mut self, b: u32) {
        let i = b as usize;
        let (p, n) = (self.prev[i], self.next[i]);
        if p == NIL {
            self.head = n;
        } else {
            self.next[p as usize] = n;
        }
        if n == NIL {
            self.tail = p;
        } else {
            self.prev[n as usize] = p;
        }
        self.in_free[i] = false;
        self.free_count -= 1;
    }

    /// Longest run of leading `hashes` present in the cache, capped at `max_blocks`.
    pub fn lookup(&self, hashes: &[u64], max_blocks: usize) -> Vec<u32> {
        if !self.caching {
            return Vec::new();
        }
        hashes
            .iter()
            .take(max_blocks)
            .map_while(|h| self.cached.get(h).copied())
            .collect()
    }

    /// Hit blocks that are currently free (allocating them takes them out of the queue).
    pub fn free_hits(&self, hits: &[u32]) -> usize {
        hits.iter().filter(|&&b| self.in_free[b as usize]).count()
    }

    /// True when `new_blocks` fresh blocks can be allocated alongside taking `hits`.
    pub fn can_allocate(&self, new_blocks: usize, hits: &[u32]) -> bool {
        new_blocks + self.free_hits(hits) <= self.free_count
    }

    /// Take a reference on hit blocks.
    pub fn touch(&mut self, blocks: &[u32]) {
        for &b in blocks {
            if self.in_free[b as usize] {
                self.unlink(b);
            }
            self.ref_cnt[b as usize] += 1;
        }
    }

    /// Pop `n` blocks from the front of the free queue (evicting their cached hashes).
    /// `None` (and no change) when fewer than `n` are free.
    pub fn allocate(&mut self, n: usize) -> Option<Vec<u32>> {
        if n > self.free_count {
            return None;
        }
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            let b = self.head;
            self.unlink(b);
            self.evict(b);
            self.ref_cnt[b as usize] = 1;
            out.push(b);
        }
        Some(out)
    }

    fn evict(&mut self, b: u32) {
        if let Some(h) = self.hash[b as usize].take()
            && self.cached.get(&h) == Some(&b)
        {
            self.cached.remove(&h);
        }
    }

    /// Release a request's blocks, tail first, so its last blocks are evicted first.
    pub fn free(&mut self, blocks: &[u32]) {
        for &b in blocks.iter().rev() {
            let r = &mut self.ref_cnt[b as usize];
            *r = r.saturating_sub(1);
            if *r == 0 {
                self.push_back(b);
            }
        }
    }

    /// Register a full block's hash so later requests can hit it (first writer wins).
    pub fn register(&mut self, block: u32, hash: u64) {
        if !self.caching || self.hash[block as usize].is_some() {
            return;
        }
        self.hash[block as usize] = Some(hash);
        self.cached.entry(hash).or_insert(block);
    }

    /// Drop every cached hash (vLLM's `/reset_prefix_cache`); blocks in use are untouched.
    pub fn reset_prefix_cache(&mut self) {
        self.cached.clear();
        self.hash.iter_mut().for_each(|h| *h = None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hashes(tokens: &[u32], bs: usize) -> Vec<u64> {
        let mut parent = ROOT_HASH;
        tokens
            .chunks_exact(bs)
            .map(|c| {
                parent = block_hash(parent, c);
                parent
            })
            .collect()
    }

    #[test]
    fn chained_hashes_depend_on_the_whole_prefix() {
        let a = hashes(&[1, 2, 3, 4, 5, 6, 7, 8], 4);
        let b = hashes(&[9, 2, 3, 4, 5, 6, 7, 8], 4);
        // Same second block, different first block: the second hash differs too.
        assert_ne!(a[1], b[1]);
        assert_eq!(a, hashes(&[1, 2, 3, 4, 5, 6, 7, 8], 4));
    }

    #[test]
    fn freed_blocks_still_hit_until_evicted_lru() {
        let mut kv = KvCache::new(4, 4, true);
        let h = hashes(&[1, 2, 3, 4, 5, 6, 7, 8], 4);
        let blocks = kv.allocate(2).unwrap();
        kv.register(blocks[0], h[0]);
        kv.register(blocks[1], h[1]);
        kv.free(&blocks);
        assert_eq!(kv.num_free(), 4);
        // Still cached after free.
        assert_eq!(kv.lookup(&h, 2), blocks);
        // Tail block freed first: queue is [2, 3, b1, b0]; allocating 3 evicts b1 only.
        let _ = kv.allocate(3).unwrap();
        assert_eq!(kv.lookup(&h, 2), vec![blocks[0]]);
        // The surviving hit is still free: taking it uses the last free slot.
        assert!(kv.can_allocate(0, &[blocks[0]]));
        assert!(!kv.can_allocate(1, &[blocks[0]]));
        kv.touch(&[blocks[0]]);
        assert_eq!(kv.num_free(), 0);
    }

    #[test]
    fn shared_blocks_are_reference_counted() {
        let mut kv = KvCache::new(2, 4, true);
        let b = kv.allocate(1).unwrap();
        kv.register(b[0], 42);
        kv.touch(&b); // a second request shares it
        kv.free(&b);
        assert_eq!(kv.num_free(), 1, "still held by one request");
        kv.free(&b);
        assert_eq!(kv.num_free(), 2);
        assert!((kv.usage() - 0.0).abs() < 1e-12);
    }

    #[test]
    fn caching_off_never_hits() {
        let mut kv = KvCache::new(2, 4, false);
        let b = kv.allocate(1).unwrap();
        kv.register(b[0], 7);
        assert!(kv.lookup(&[7], 1).is_empty());
        assert!(kv.allocate(5).is_none());
    }
}
