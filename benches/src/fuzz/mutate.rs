//! A small deterministic random generator and a byte-level mutator: bit flips, interesting
//! integers, length-field edits, truncation, insertion, deletion, duplication, splicing and
//! dictionary tokens.

/// xorshift64* seeded through splitmix64: fast, deterministic, good enough for fuzzing.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for iteration `iteration` of a run with seed `seed`: every iteration can be
    /// replayed on its own.
    pub fn new(seed: u64, iteration: u64) -> Self {
        let mut z = seed ^ iteration.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Self((z ^ (z >> 31)) | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n` (0 if `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }

    /// True with probability `1 / n`.
    pub fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    /// A random element of `items`.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// A number biased towards edge cases: small values, powers of two and their neighbours,
    /// type limits.
    pub fn interesting(&mut self) -> u64 {
        match self.below(6) {
            0 => self.below(17) as u64,
            1 => {
                let p = 1u64 << self.below(64);
                p.wrapping_add(self.below(3) as u64).wrapping_sub(1)
            }
            2 => *self.pick(&[
                0x7F,
                0x80,
                0xFF,
                0x7FFF,
                0x8000,
                0xFFFF,
                0x7FFF_FFFF,
                0x8000_0000,
                0xFFFF_FFFF,
                u64::MAX,
            ]),
            _ => self.next_u64() >> self.below(64),
        }
    }
}

/// Interesting single bytes.
const BYTES: [u8; 10] = [0, 1, 0x7F, 0x80, 0xFF, b'\n', b'\r', b':', b'=', b' '];

/// Mutates `data` in place with a few random operations, keeping it at most `max_len` bytes.
/// `others` are splicing partners (usually the corpus), `tokens` the target's dictionary.
pub fn mutate(
    rng: &mut Rng,
    data: &mut Vec<u8>,
    others: &[Vec<u8>],
    tokens: &[&[u8]],
    max_len: usize,
) {
    let rounds = 1 + rng.below(4) + if rng.one_in(4) { rng.below(12) } else { 0 };
    for _ in 0..rounds {
        mutate_once(rng, data, others, tokens, max_len);
    }
    data.truncate(max_len);
}

fn mutate_once(
    rng: &mut Rng,
    data: &mut Vec<u8>,
    others: &[Vec<u8>],
    tokens: &[&[u8]],
    max_len: usize,
) {
    let len = data.len();
    let pos = rng.below(len + 1);
    match rng.below(14) {
        0 if len > 0 => data[pos.min(len - 1)] ^= 1 << rng.below(8),
        1 if len > 0 => data[pos.min(len - 1)] = *rng.pick(&BYTES),
        2 if len > 0 => data[pos.min(len - 1)] = rng.next_u64() as u8,
        // An interesting 16- or 32-bit integer, big-endian (network order) or little-endian.
        3 | 4 => {
            let width = if rng.one_in(2) { 2 } else { 4 };
            let value = rng.interesting().to_be_bytes();
            let mut bytes = value[8 - width..].to_vec();
            if rng.one_in(4) {
                bytes.reverse();
            }
            overwrite(data, pos, &bytes);
        }
        // A length field: a big-endian u16 nudged by a small amount.
        5 if len >= 2 => {
            let at = pos.min(len - 2);
            let old = u16::from_be_bytes([data[at], data[at + 1]]);
            let delta = rng.below(17) as i32 - 8;
            let new = (i32::from(old) + delta).clamp(0, 0xFFFF) as u16;
            data[at..at + 2].copy_from_slice(&new.to_be_bytes());
        }
        6 => data.truncate(pos),
        7 if len > 0 => {
            let end = (pos + 1 + rng.below(16)).min(len);
            data.drain(pos.min(len - 1)..end);
        }
        8 => {
            let n = 1 + rng.below(16);
            let bytes: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
            insert(data, pos, &bytes, max_len);
        }
        // Duplicate a range, sometimes many times (long lines, many attributes).
        9 if len > 0 => {
            let start = rng.below(len);
            let end = (start + 1 + rng.below(64)).min(len);
            let chunk = data[start..end].to_vec();
            let times = if rng.one_in(8) { 1 + rng.below(200) } else { 1 };
            for _ in 0..times {
                insert(data, pos, &chunk, max_len);
            }
        }
        // Splice: our prefix, another input's suffix.
        10 if !others.is_empty() => {
            let other = rng.pick(others);
            let from = rng.below(other.len() + 1);
            data.truncate(pos);
            insert(data, pos, &other[from..], max_len);
        }
        11 | 12 if !tokens.is_empty() => {
            let token = *rng.pick(tokens);
            if rng.one_in(3) {
                overwrite(data, pos, token);
            } else {
                insert(data, pos, token, max_len);
            }
        }
        // A decimal number where text is expected.
        13 => {
            let digits = if rng.one_in(2) {
                format!("{}", rng.interesting())
            } else {
                format!("-{}", rng.interesting())
            };
            insert(data, pos, digits.as_bytes(), max_len);
        }
        _ => {}
    }
}

fn overwrite(data: &mut Vec<u8>, pos: usize, bytes: &[u8]) {
    let end = pos + bytes.len();
    if end > data.len() {
        data.resize(end, 0);
    }
    data[pos..end].copy_from_slice(bytes);
}

fn insert(data: &mut Vec<u8>, pos: usize, bytes: &[u8], max_len: usize) {
    if data.len() + bytes.len() <= max_len {
        let pos = pos.min(data.len());
        data.splice(pos..pos, bytes.iter().copied());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replayable_and_bounded() {
        let corpus = vec![b"v=0\r\ns=-\r\n".to_vec(), vec![0x80, 96, 0, 1]];
        let run = |seed| {
            (0..200u64)
                .map(|i| {
                    let mut rng = Rng::new(seed, i);
                    let mut d = corpus[i as usize % 2].clone();
                    mutate(&mut rng, &mut d, &corpus, &[b"a=", b"\r\n"], 64);
                    d
                })
                .collect::<Vec<_>>()
        };
        let (a, b, c) = (run(7), run(7), run(8));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(a.iter().all(|d| d.len() <= 64));
        assert!(
            a.iter()
                .filter(|d| **d != corpus[0] && **d != corpus[1])
                .count()
                > 150
        );
    }
}
