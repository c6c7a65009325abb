//! Reads structured values off the fuzzer's bytes. Past the end, every read gives zeros or an
//! empty slice, so any input decodes to something.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    pub fn new(data: &'a [u8]) -> Input<'a> {
        Input { data }
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    /// Up to `n` bytes.
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (taken, rest) = self.data.split_at(n.min(self.data.len()));
        self.data = rest;
        taken
    }

    /// A little-endian integer of up to 8 bytes (zeros past the end).
    pub fn u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        let taken = self.bytes(8);
        b[..taken.len()].copy_from_slice(taken);
        u64::from_le_bytes(b)
    }

    pub fn u32(&mut self) -> u32 {
        let mut b = [0u8; 4];
        let taken = self.bytes(4);
        b[..taken.len()].copy_from_slice(taken);
        u32::from_le_bytes(b)
    }

    /// A length-prefixed value: one length byte, or 255 and a two-byte length (for values past
    /// Dial's 1024-byte key limit).
    pub fn value(&mut self) -> &'a [u8] {
        let n = match self.byte() {
            255 => {
                let lo = usize::from(self.byte());
                let hi = usize::from(self.byte());
                (hi << 8 | lo) & 0x7ff
            }
            n => usize::from(n),
        };
        self.bytes(n)
    }

    /// Everything up to the next `sep` (or the end), which is consumed.
    pub fn until(&mut self, sep: u8) -> &'a [u8] {
        match self.data.iter().position(|&b| b == sep) {
            Some(i) => {
                let (taken, rest) = self.data.split_at(i);
                self.data = &rest[1..];
                taken
            }
            None => self.rest(),
        }
    }

    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.data)
    }

    /// A downstream address, or none: IPv4, IPv6 or IPv4-mapped IPv6.
    pub fn address(&mut self) -> Option<IpAddr> {
        match self.byte() % 4 {
            0 => None,
            1 => Some(IpAddr::V4(Ipv4Addr::from(self.u32().to_be_bytes()))),
            2 => {
                let hi = u128::from(self.u64());
                let lo = u128::from(self.u64());
                Some(IpAddr::V6(Ipv6Addr::from(hi << 64 | lo)))
            }
            _ => Some(IpAddr::V6(
                Ipv4Addr::from(self.u32().to_be_bytes()).to_ipv6_mapped(),
            )),
        }
    }
}
