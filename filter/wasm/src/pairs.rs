//! Reading a serialised header map without copying or decoding it.
//!
//! The ABI hands a header map over as one buffer: a count, the sizes of every name
//! and value, then the NUL-terminated names and values. The filter reads it in place,
//! as bytes: header values are not always UTF-8, and nothing here may panic on them.

/// Iterates the (name, value) pairs of a serialised map; stops at the first
/// inconsistency instead of failing.
pub fn pairs(buffer: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    let count = read_u32(buffer, 0).unwrap_or(0) as usize;
    // Each pair takes at least 8 size bytes and 2 NULs: a count beyond that is corrupt.
    let count = count.min(buffer.len() / 10);
    let mut data = 4 + count * 8;
    (0..count).map_while(move |i| {
        let name_size = read_u32(buffer, 4 + i * 8)? as usize;
        let value_size = read_u32(buffer, 8 + i * 8)? as usize;
        let name = buffer.get(data..data.checked_add(name_size)?)?;
        let value_start = data + name_size + 1;
        let value = buffer.get(value_start..value_start.checked_add(value_size)?)?;
        data = value_start + value_size + 1;
        Some((name, value))
    })
}

fn read_u32(buffer: &[u8], at: usize) -> Option<u32> {
    let bytes = buffer.get(at..at + 4)?;
    Some(u32::from_le_bytes(bytes.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serialise(pairs: &[(&[u8], &[u8])]) -> Vec<u8> {
        let mut out = (pairs.len() as u32).to_le_bytes().to_vec();
        for (n, v) in pairs {
            out.extend_from_slice(&(n.len() as u32).to_le_bytes());
            out.extend_from_slice(&(v.len() as u32).to_le_bytes());
        }
        for (n, v) in pairs {
            out.extend_from_slice(n);
            out.push(0);
            out.extend_from_slice(v);
            out.push(0);
        }
        out
    }

    #[test]
    fn reads_pairs_including_non_utf8_and_empty_values() {
        let input: &[(&[u8], &[u8])] =
            &[(b":path", b"/a"), (b"x-bin", b"\xff\xfe"), (b"empty", b"")];
        let buffer = serialise(input);
        let read: Vec<_> = pairs(&buffer).collect();
        assert_eq!(read, input.to_vec());
    }

    #[test]
    fn corrupt_buffers_end_the_iteration_without_panicking() {
        let buffer = serialise(&[(b"a", b"b"), (b"c", b"d")]);
        for cut in 0..buffer.len() {
            let _ = pairs(&buffer[..cut]).count();
        }
        let mut huge = buffer.clone();
        huge[0..4].copy_from_slice(&u32::MAX.to_le_bytes());
        let _ = pairs(&huge).count();
        huge[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(pairs(&huge).count(), 0);
        assert_eq!(pairs(&[]).count(), 0);
    }
}
