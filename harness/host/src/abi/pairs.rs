//! The ABI's map encoding: a count, then each (key size, value size), then each key and
//! value followed by a NUL byte, all integers 32-bit little-endian.
//!
//! Decoding follows Envoy: a buffer too short for its count, or whose entries run past
//! its end, is an empty map (Envoy reads such a map as empty rather than failing the
//! call), so a filter that sends garbage sees the same effect here as there.

/// Encodes pairs; an empty map is the 4-byte count 0.
pub fn encode<'a, I>(pairs: I) -> Vec<u8>
where
    I: IntoIterator<Item = (&'a [u8], &'a [u8])>,
    I::IntoIter: Clone,
{
    let pairs = pairs.into_iter();
    let mut out = vec![0; encoded_size(pairs.clone())];
    encode_into(pairs, &mut out);
    out
}

/// The size of the encoding of `pairs`.
pub fn encoded_size<'a>(pairs: impl Iterator<Item = (&'a [u8], &'a [u8])>) -> usize {
    4 + pairs.map(|(k, v)| 8 + k.len() + v.len() + 2).sum::<usize>()
}

/// Encodes `pairs` into `out`, which is [`encoded_size`] bytes long.
pub fn encode_into<'a, I>(pairs: I, out: &mut [u8])
where
    I: Iterator<Item = (&'a [u8], &'a [u8])> + Clone,
{
    let mut put = |at: &mut usize, bytes: &[u8]| {
        if let Some(dst) = out.get_mut(*at..*at + bytes.len()) {
            dst.copy_from_slice(bytes);
        }
        *at += bytes.len();
    };
    let mut at = 0;
    put(&mut at, &len32(pairs.clone().count()).to_le_bytes());
    for (k, v) in pairs.clone() {
        put(&mut at, &len32(k.len()).to_le_bytes());
        put(&mut at, &len32(v.len()).to_le_bytes());
    }
    for (k, v) in pairs {
        put(&mut at, k);
        put(&mut at, &[0]);
        put(&mut at, v);
        put(&mut at, &[0]);
    }
}

fn len32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Decodes pairs; malformed input is an empty map.
pub fn decode(bytes: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    try_decode(bytes).unwrap_or_default()
}

fn try_decode(bytes: &[u8]) -> Option<Vec<(Vec<u8>, Vec<u8>)>> {
    let word = |at: usize| -> Option<usize> {
        let b = bytes.get(at..at.checked_add(4)?)?;
        Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    let count = word(0)?;
    let header = count.checked_mul(8)?.checked_add(4)?;
    if header > bytes.len() {
        return None;
    }
    let mut at = header;
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let key_size = word(4 + i * 8)?;
        let value_size = word(8 + i * 8)?;
        let key = bytes.get(at..at.checked_add(key_size)?)?.to_vec();
        at = at.checked_add(key_size)?.checked_add(1)?;
        let value = bytes.get(at..at.checked_add(value_size)?)?.to_vec();
        at = at.checked_add(value_size)?.checked_add(1)?;
        out.push((key, value));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let pairs: Vec<(&[u8], &[u8])> = vec![(b":method", b"GET"), (b"x", b"")];
        let bytes = encode(pairs.clone());
        assert_eq!(&bytes[..4], [2, 0, 0, 0]);
        let decoded = decode(&bytes);
        assert_eq!(decoded.len(), 2);
        assert_eq!(decoded[0], (b":method".to_vec(), b"GET".to_vec()));
        assert_eq!(decoded[1], (b"x".to_vec(), Vec::new()));
    }

    #[test]
    fn matches_the_sdk_layout() {
        let bytes = encode([(&b"a"[..], &b"bc"[..])]);
        assert_eq!(
            bytes,
            [1, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, b'a', 0, b'b', b'c', 0]
        );
    }

    #[test]
    fn malformed_maps_are_empty() {
        assert!(decode(&[]).is_empty());
        assert!(decode(&[5, 0]).is_empty());
        assert!(decode(&[9, 0, 0, 0, 1, 0, 0, 0]).is_empty());
        // A key running past the end.
        assert!(decode(&[1, 0, 0, 0, 200, 0, 0, 0, 0, 0, 0, 0, b'a', 0]).is_empty());
        assert!(decode(&[0xff, 0xff, 0xff, 0xff]).is_empty());
    }
}
