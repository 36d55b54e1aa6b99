//! The POSIX `cksum` checksum, shared with `build.rs` (which includes this file).

/// The POSIX `cksum` CRC (polynomial 0x04C11DB7, length appended, complemented), as printed by
/// `cksum` on every POSIX system. Used to tell whether an installed stub is the same build.
pub fn cksum(data: &[u8]) -> u32 {
    const fn table() -> [u32; 256] {
        let mut table = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut crc = (i as u32) << 24;
            let mut bit = 0;
            while bit < 8 {
                crc = if crc & 0x8000_0000 != 0 {
                    (crc << 1) ^ 0x04C1_1DB7
                } else {
                    crc << 1
                };
                bit += 1;
            }
            table[i] = crc;
            i += 1;
        }
        table
    }
    static TABLE: [u32; 256] = table();
    let step = |crc: u32, byte: u8| (crc << 8) ^ TABLE[((crc >> 24) as u8 ^ byte) as usize];
    let mut crc = data.iter().fold(0u32, |crc, &b| step(crc, b));
    let mut len = data.len();
    while len != 0 {
        crc = step(crc, len as u8);
        len >>= 8;
    }
    !crc
}
