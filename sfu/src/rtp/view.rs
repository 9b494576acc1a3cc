//! An RTP packet read and rewritten in place (RFC 3550 header, RFC 8285 header extensions), for
//! the coming hot path of Cascade's own transport (issue 11): a forwarder changes the payload
//! type, sequence number, timestamp, SSRC and extension ids of a packet in the buffer it
//! received it in, with no owned packet, no copy and no allocation. Sans-I/O.
//!
//! [`RtpView::parse`] checks the layout once (version 2, CSRC list, extension block and padding
//! within the buffer); the accessors then index fixed offsets. An extension the subscriber did not
//! negotiate is removed in place by [`RtpView::remap_extensions`]: its bytes become padding
//! bytes (zeros), which both extension forms allow between elements.

/// The one-byte extension form's profile (RFC 8285 §4.2).
pub const PROFILE_ONE_BYTE: u16 = 0xBEDE;
/// The two-byte extension form's profile (RFC 8285 §4.3; the low 4 bits are app bits).
pub const PROFILE_TWO_BYTE: u16 = 0x1000;
/// The fixed header's size.
const FIXED_HEADER: usize = 12;

/// The padding bytes at the end of an RTP packet (P bit set: the last byte counts them).
pub fn padding_len(packet: &[u8]) -> usize {
    if packet.first().is_some_and(|b| b & 0x20 != 0) {
        packet.last().map_or(0, |&n| usize::from(n))
    } else {
        0
    }
}

/// Why a buffer is not an RTP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RtpError {
    /// Shorter than its header says.
    TooShort,
    /// Not RTP version 2.
    Version,
    /// The padding length is zero or longer than the payload.
    Padding,
}

/// The header-extension block of a packet: its form and where its elements are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Extensions {
    two_byte: bool,
    start: usize,
    end: usize,
}

/// An RTP packet in a mutable buffer.
#[derive(Debug)]
pub struct RtpView<'a> {
    buf: &'a mut [u8],
    extensions: Option<Extensions>,
    payload_start: usize,
    payload_end: usize,
}

impl<'a> RtpView<'a> {
    /// Checks `buf`'s layout and views it.
    pub fn parse(buf: &'a mut [u8]) -> Result<Self, RtpError> {
        if buf.len() < FIXED_HEADER {
            return Err(RtpError::TooShort);
        }
        if buf[0] >> 6 != 2 {
            return Err(RtpError::Version);
        }
        let csrcs = usize::from(buf[0] & 0x0F);
        let mut at = FIXED_HEADER + 4 * csrcs;
        let mut extensions = None;
        if buf[0] & 0x10 != 0 {
            let head = buf.get(at..at + 4).ok_or(RtpError::TooShort)?;
            let profile = u16::from_be_bytes([head[0], head[1]]);
            let len = 4 * usize::from(u16::from_be_bytes([head[2], head[3]]));
            let start = at + 4;
            let end = start + len;
            if end > buf.len() {
                return Err(RtpError::TooShort);
            }
            // Other profiles are opaque: kept as they are, no elements read.
            let two_byte = profile & 0xFFF0 == PROFILE_TWO_BYTE;
            if profile == PROFILE_ONE_BYTE || two_byte {
                extensions = Some(Extensions {
                    two_byte,
                    start,
                    end,
                });
            }
            at = end;
        }
        if at > buf.len() {
            return Err(RtpError::TooShort);
        }
        let mut payload_end = buf.len();
        if buf[0] & 0x20 != 0 {
            let padding = usize::from(buf[buf.len() - 1]);
            if padding == 0 || padding > buf.len() - at {
                return Err(RtpError::Padding);
            }
            payload_end -= padding;
        }
        Ok(Self {
            buf,
            extensions,
            payload_start: at,
            payload_end,
        })
    }

    /// The marker bit.
    pub fn marker(&self) -> bool {
        self.buf[1] & 0x80 != 0
    }

    /// The payload type.
    pub fn payload_type(&self) -> u8 {
        self.buf[1] & 0x7F
    }

    /// Sets the payload type (the marker bit stays).
    pub fn set_payload_type(&mut self, pt: u8) {
        self.buf[1] = (self.buf[1] & 0x80) | (pt & 0x7F);
    }

    /// The sequence number.
    pub fn seq(&self) -> u16 {
        u16::from_be_bytes([self.buf[2], self.buf[3]])
    }

    /// Sets the sequence number.
    pub fn set_seq(&mut self, seq: u16) {
        self.buf[2..4].copy_from_slice(&seq.to_be_bytes());
    }

    /// The timestamp.
    pub fn timestamp(&self) -> u32 {
        u32::from_be_bytes([self.buf[4], self.buf[5], self.buf[6], self.buf[7]])
    }

    /// Sets the timestamp.
    pub fn set_timestamp(&mut self, ts: u32) {
        self.buf[4..8].copy_from_slice(&ts.to_be_bytes());
    }

    /// The SSRC.
    pub fn ssrc(&self) -> u32 {
        u32::from_be_bytes([self.buf[8], self.buf[9], self.buf[10], self.buf[11]])
    }

    /// Sets the SSRC.
    pub fn set_ssrc(&mut self, ssrc: u32) {
        self.buf[8..12].copy_from_slice(&ssrc.to_be_bytes());
    }

    /// The payload, without header, extensions or padding.
    pub fn payload(&self) -> &[u8] {
        &self.buf[self.payload_start..self.payload_end]
    }

    /// The data of the extension element with `id`, if the packet has one.
    pub fn extension(&self, id: u8) -> Option<&[u8]> {
        let (s, e) = self.extension_range(id)?;
        Some(&self.buf[s..e])
    }

    /// The data of the extension element with `id`, to rewrite in place (its length is fixed).
    pub fn extension_mut(&mut self, id: u8) -> Option<&mut [u8]> {
        let (s, e) = self.extension_range(id)?;
        Some(&mut self.buf[s..e])
    }

    /// Where the data of the first extension element with `id` is in the buffer.
    fn extension_range(&self, id: u8) -> Option<(usize, usize)> {
        let ext = self.extensions?;
        let mut found = None;
        walk(
            &self.buf[ext.start..ext.end],
            ext.two_byte,
            |at, eid, range| {
                if found.is_none() && eid == id {
                    found = Some((ext.start + at + range.start, ext.start + at + range.end));
                }
            },
        );
        found
    }

    /// Rewrites every extension element's id through `map` (the publisher's id to the
    /// subscriber's); an element `map` has no id for is removed (its bytes become padding).
    /// In the one-byte form the new id must be 1 to 14; otherwise the element is removed too.
    pub fn remap_extensions(&mut self, mut map: impl FnMut(u8) -> Option<u8>) {
        let Some(ext) = self.extensions else {
            return;
        };
        let mut edits: [(usize, usize, Option<u8>); 16] = [(0, 0, None); 16];
        let mut n = 0;
        let mut overflow = false;
        walk(
            &self.buf[ext.start..ext.end],
            ext.two_byte,
            |at, id, range| {
                let new = map(id).filter(|&new| ext.two_byte || (1..=14).contains(&new));
                if n < edits.len() {
                    edits[n] = (ext.start + at, ext.start + at + range.end, new);
                    n += 1;
                } else {
                    overflow = true;
                }
            },
        );
        for &(start, end, new) in &edits[..n] {
            match new {
                Some(id) if ext.two_byte => self.buf[start] = id,
                Some(id) => self.buf[start] = (id << 4) | (self.buf[start] & 0x0F),
                None => self.buf[start..end].fill(0),
            }
        }
        if overflow {
            // More than 16 elements: a packet no sender makes; drop what was not mapped.
            let tail = edits[n - 1].1;
            self.buf[tail..ext.end].fill(0);
        }
    }
}

/// Calls `f(offset, id, data range relative to offset)` for each element of an extension
/// block; stops at the first element that runs past the block, or at id 15 (one-byte form).
fn walk(block: &[u8], two_byte: bool, mut f: impl FnMut(usize, u8, std::ops::Range<usize>)) {
    let mut at = 0;
    while at < block.len() {
        let b = block[at];
        if b == 0 || (!two_byte && b >> 4 == 0) {
            at += 1; // padding (id 0)
            continue;
        }
        let (id, len, head) = if two_byte {
            let Some(&len) = block.get(at + 1) else {
                return;
            };
            (b, usize::from(len), 2)
        } else {
            if b >> 4 == 15 {
                return;
            }
            (b >> 4, usize::from(b & 0x0F) + 1, 1)
        };
        if at + head + len > block.len() {
            return;
        }
        f(at, id, head..head + len);
        at += head + len;
    }
}

#[cfg(test)]
#[path = "view_tests.rs"]
mod tests;
