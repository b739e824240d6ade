//! Address blocks (`10.0.0.0/8`, `2001:db8::/32`) for the exemption list, and
//! the reduction of a client address to the key its limits are kept under.
//!
//! IPv4-mapped IPv6 addresses (`::ffff:10.1.2.3`) are IPv4 everywhere here: a
//! dual-stack listener reports IPv4 clients that way, and they must share the
//! limits (and exemptions) of the plain IPv4 address.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use serde::Deserialize;

/// An address block: a network address and a prefix length.
///
/// Parsed from `ADDRESS/PREFIX` or a bare address (a single host: `/32` for
/// IPv4, `/128` for IPv6). An IPv4-mapped IPv6 block of prefix 96 or more
/// becomes the IPv4 block it names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "String")]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

/// Why a CIDR text was refused. Each variant names the text it was given, so
/// a config error points at the bad entry.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CidrError {
    #[error("{text:?} is not an IP address or CIDR block (e.g. 10.0.0.0/8, 2001:db8::/32)")]
    BadAddress { text: String },
    #[error("{text:?}: the prefix length must be a number from 0 to {max}")]
    BadPrefix { text: String, max: u8 },
    #[error(
        "{text:?}: the address has bits set past the /{prefix} prefix (the block is {network}/{prefix})"
    )]
    HostBitsSet {
        text: String,
        prefix: u8,
        network: IpAddr,
    },
}

impl Cidr {
    /// Parses `10.0.0.0/8`, `2001:db8::/32`, or a bare address.
    pub fn parse(text: &str) -> Result<Cidr, CidrError> {
        let trimmed = text.trim();
        let (address_text, prefix_text) = match trimmed.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (trimmed, None),
        };
        let bad_address = || CidrError::BadAddress {
            text: text.to_owned(),
        };
        let address: IpAddr = address_text.parse().map_err(|_| bad_address())?;
        let max = address_bits(address);
        let prefix = match prefix_text {
            None => max,
            Some(digits) => parse_prefix(digits, max).ok_or_else(|| CidrError::BadPrefix {
                text: text.to_owned(),
                max,
            })?,
        };
        let (address, prefix) = unmap_block(address, prefix);
        let network = mask(address, prefix);
        if network != address {
            return Err(CidrError::HostBitsSet {
                text: text.to_owned(),
                prefix,
                network,
            });
        }
        Ok(Cidr { network, prefix })
    }

    /// The network address (host bits zero).
    pub fn network(&self) -> IpAddr {
        self.network
    }

    /// The prefix length in bits.
    pub fn prefix_len(&self) -> u8 {
        self.prefix
    }

    /// Whether `ip` is inside the block. IPv4-mapped IPv6 addresses are
    /// matched as IPv4.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        ip.is_ipv4() == self.network.is_ipv4() && mask(ip, self.prefix) == self.network
    }
}

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(text: &str) -> Result<Cidr, CidrError> {
        Cidr::parse(text)
    }
}

impl TryFrom<String> for Cidr {
    type Error = CidrError;

    fn try_from(text: String) -> Result<Cidr, CidrError> {
        Cidr::parse(&text)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// The key a client address is limited under: the address masked to the
/// configured prefix, tagged with its family so an IPv6 key can never equal
/// an IPv4 one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) struct IpKey {
    family: u8,
    bits: u128,
}

impl IpKey {
    /// `ip` must already be canonical (IPv4-mapped IPv6 turned into IPv4).
    pub(super) fn new(ip: IpAddr, v4_prefix: u8, v6_prefix: u8) -> IpKey {
        match ip {
            IpAddr::V4(v4) => IpKey {
                family: 4,
                bits: u128::from(u32::from(v4) & mask_u32(v4_prefix)),
            },
            IpAddr::V6(v6) => IpKey {
                family: 6,
                bits: u128::from(v6) & mask_u128(v6_prefix),
            },
        }
    }
}

fn parse_prefix(digits: &str, max: u8) -> Option<u8> {
    // `u8::from_str` accepts a leading '+'; a prefix is digits only.
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<u8>().ok().filter(|&prefix| prefix <= max)
}

fn address_bits(ip: IpAddr) -> u8 {
    match ip {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

/// `::ffff:10.0.0.0/104` is the IPv4 block `10.0.0.0/8`. Mapped blocks
/// shorter than /96 reach outside the mapped range and stay IPv6.
fn unmap_block(ip: IpAddr, prefix: u8) -> (IpAddr, u8) {
    match ip {
        IpAddr::V6(v6) if prefix >= 96 => match v6.to_ipv4_mapped() {
            Some(v4) => (IpAddr::V4(v4), prefix - 96),
            None => (ip, prefix),
        },
        _ => (ip, prefix),
    }
}

fn mask(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(Ipv4Addr::from(u32::from(v4) & mask_u32(prefix))),
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask_u128(prefix))),
    }
}

fn mask_u32(prefix: u8) -> u32 {
    match prefix {
        0 => 0,
        1..=31 => u32::MAX << (32 - prefix),
        _ => u32::MAX,
    }
}

fn mask_u128(prefix: u8) -> u128 {
    match prefix {
        0 => 0,
        1..=127 => u128::MAX << (128 - prefix),
        _ => u128::MAX,
    }
}
