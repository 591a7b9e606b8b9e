//! Randomness. Own helpers on top of the raw ChaCha8 output, so the meaning of
//! a seed never depends on a `rand` version.

use super::*;

/// One independent stream per concern: the same seed, different ChaCha
/// stream numbers.
pub(super) fn stream(seed: u64, id: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(id);
    rng
}

pub(super) const STREAM_STRUCTURE: u64 = 1;
pub(super) const STREAM_USERS: u64 = 2;
pub(super) const STREAM_BATCHES: u64 = 3;
pub(super) const STREAM_ENROLMENTS: u64 = 4;

/// A uniform integer in `0..n` (Lemire's multiply-and-reject), `n > 0`.
pub(super) fn below(rng: &mut ChaCha8Rng, n: u64) -> u64 {
    debug_assert!(n > 0);
    let mut m = u128::from(rng.next_u64()) * u128::from(n);
    if (m as u64) < n {
        let threshold = n.wrapping_neg() % n;
        while (m as u64) < threshold {
            m = u128::from(rng.next_u64()) * u128::from(n);
        }
    }
    (m >> 64) as u64
}

/// A uniform index into a non-empty collection of `len` items.
pub(super) fn index(rng: &mut ChaCha8Rng, len: usize) -> usize {
    below(rng, len as u64) as usize
}

/// True with probability `percent` / 100.
pub(super) fn chance(rng: &mut ChaCha8Rng, percent: u64) -> bool {
    below(rng, 100) < percent
}

pub(super) fn pick<'a, T>(rng: &mut ChaCha8Rng, items: &'a [T]) -> &'a T {
    &items[index(rng, items.len())]
}

pub(super) fn push_digits(rng: &mut ChaCha8Rng, out: &mut String, n: usize) {
    for _ in 0..n {
        out.push(char::from(b'0' + below(rng, 10) as u8));
    }
}

/// A random version-4 UUID in its text form. Random rather than sequential
/// so that sorting by id (as the report does) differs from generation order.
pub(super) fn uuid(rng: &mut ChaCha8Rng) -> String {
    let hi = rng.next_u64();
    let lo = rng.next_u64();
    let hi = (hi & !0xf000) | 0x4000;
    let lo = (lo & !(0b11 << 62)) | (0b10 << 62);
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        hi >> 32,
        (hi >> 16) & 0xffff,
        hi & 0xffff,
        lo >> 48,
        lo & 0xffff_ffff_ffff
    )
}

/// Draws exactly `need` successes out of `left` trials, spread uniformly
/// (selection sampling). Used where a share such as "3% not cached" must
/// really show up even in small samples.
pub(super) struct Quota {
    pub(super) need: u64,
    pub(super) left: u64,
}

impl Quota {
    /// `percent` of `total`, rounded, and at least one once `total` reaches
    /// `min_total_for_one`.
    pub(super) fn new(total: usize, percent: u64, min_total_for_one: usize) -> Quota {
        let total = total as u64;
        let mut need = (total * percent + 50) / 100;
        if need == 0 && percent > 0 && total >= min_total_for_one as u64 {
            need = 1;
        }
        Quota { need, left: total }
    }

    pub(super) fn take(&mut self, rng: &mut ChaCha8Rng) -> bool {
        if self.left == 0 {
            return false;
        }
        let hit = self.need > 0 && below(rng, self.left) < self.need;
        self.left -= 1;
        if hit {
            self.need -= 1;
        }
        hit
    }
}
