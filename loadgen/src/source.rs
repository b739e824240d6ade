//! Source addresses and CPU lists from the command line, and how work is split.
//!
//! A TCP connection is identified by (source ip, source port, destination ip,
//! destination port), so one source address reaches one destination at most
//! ~64K times. Spreading connections over many loopback source addresses
//! (the whole 127.0.0.0/8 is local on Linux) lifts that limit.

use std::net::{IpAddr, Ipv4Addr};

/// Most addresses one `--src` may expand to (a /8 is 16.7M; keep memory bounded).
pub const SOURCES_MAX: u64 = 1 << 24;

/// Parses `a.b.c.d-e.f.g.h`, `a.b.c.d/nn`, single addresses (v4 or v6), or a
/// comma list of those, into the addresses in order.
pub fn parse_sources(text: &str) -> Result<Vec<IpAddr>, String> {
    let mut out = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        if let Some((first, last)) = part.split_once('-') {
            let first = parse_v4(first)?;
            let last = parse_v4(last)?;
            if last < first {
                return Err(format!("source range {part:?} ends before it starts"));
            }
            push_range(&mut out, first, last)?;
        } else if let Some((base, prefix)) = part.split_once('/') {
            let base = parse_v4(base)?;
            let prefix: u32 = prefix
                .parse()
                .ok()
                .filter(|p| *p <= 32)
                .ok_or_else(|| format!("bad prefix length in {part:?}"))?;
            let mask = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - prefix)
            };
            let network = base & mask;
            let broadcast = network | !mask;
            // Network and broadcast addresses cannot be connection sources.
            let (first, last) = if prefix <= 30 {
                (network + 1, broadcast - 1)
            } else {
                (network, broadcast)
            };
            push_range(&mut out, first, last)?;
        } else {
            let ip: IpAddr = part
                .parse()
                .map_err(|_| format!("bad source address {part:?}"))?;
            out.push(ip);
        }
        if out.len() as u64 > SOURCES_MAX {
            return Err(format!(
                "--src expands to more than {SOURCES_MAX} addresses"
            ));
        }
    }
    if out.is_empty() {
        return Err("--src names no address".into());
    }
    Ok(out)
}

fn parse_v4(text: &str) -> Result<u32, String> {
    text.trim()
        .parse::<Ipv4Addr>()
        .map(u32::from)
        .map_err(|_| format!("bad IPv4 address {text:?} (ranges and CIDRs are IPv4 only)"))
}

fn push_range(out: &mut Vec<IpAddr>, first: u32, last: u32) -> Result<(), String> {
    let count = u64::from(last - first) + 1;
    if out.len() as u64 + count > SOURCES_MAX {
        return Err(format!(
            "--src expands to more than {SOURCES_MAX} addresses"
        ));
    }
    out.extend((first..=last).map(|a| IpAddr::V4(Ipv4Addr::from(a))));
    Ok(())
}

/// Parses `1`, `0,2`, `2-5` or a mix into CPU numbers, in order, without duplicates.
pub fn parse_cpus(text: &str) -> Result<Vec<usize>, String> {
    let mut out: Vec<usize> = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (first, last) = match part.split_once('-') {
            Some((a, b)) => (parse_cpu(a)?, parse_cpu(b)?),
            None => (parse_cpu(part)?, parse_cpu(part)?),
        };
        if last < first {
            return Err(format!("CPU range {part:?} ends before it starts"));
        }
        for cpu in first..=last {
            if !out.contains(&cpu) {
                out.push(cpu);
            }
        }
    }
    if out.is_empty() {
        return Err("--cpus names no CPU".into());
    }
    Ok(out)
}

fn parse_cpu(text: &str) -> Result<usize, String> {
    text.trim()
        .parse::<usize>()
        .ok()
        .filter(|c| *c < 1024)
        .ok_or_else(|| format!("bad CPU number {text:?}"))
}

/// Part `index` of `total` split into `parts` near-equal shares (the first
/// `total % parts` shares get one more).
pub fn share(total: u64, parts: u64, index: u64) -> u64 {
    debug_assert!(index < parts);
    total / parts + u64::from(index < total % parts)
}

/// The source addresses worker process `index` of `count` uses: a contiguous
/// slice when there are enough addresses, otherwise one address each, reused
/// round-robin.
pub fn slice_for_process(sources: &[IpAddr], index: u32, count: u32) -> Vec<IpAddr> {
    if sources.is_empty() {
        return Vec::new();
    }
    let (len, index, count) = (sources.len() as u64, u64::from(index), u64::from(count));
    if len < count {
        return vec![sources[(index % len) as usize]];
    }
    let start: u64 = (0..index).map(|i| share(len, count, i)).sum();
    let take = share(len, count, index);
    sources[start as usize..(start + take) as usize].to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn ranges_expand_inclusively() {
        let got = parse_sources("127.0.0.2-127.0.0.4").unwrap();
        assert_eq!(got, vec![v4("127.0.0.2"), v4("127.0.0.3"), v4("127.0.0.4")]);
        let wide = parse_sources("127.0.0.2-127.0.255.254").unwrap();
        assert_eq!(wide.len(), 65_533);
        assert_eq!(wide[254], v4("127.0.1.0"));
    }

    #[test]
    fn lists_cidrs_and_singles_mix() {
        let got = parse_sources("127.0.0.9, 127.0.1.0/30,::1").unwrap();
        assert_eq!(
            got,
            vec![v4("127.0.0.9"), v4("127.0.1.1"), v4("127.0.1.2"), v4("::1")]
        );
        assert_eq!(
            parse_sources("127.0.0.7/32").unwrap(),
            vec![v4("127.0.0.7")]
        );
        assert_eq!(parse_sources("10.0.0.0/24").unwrap().len(), 254);
    }

    #[test]
    fn bad_sources_are_refused() {
        assert!(parse_sources("127.0.0.5-127.0.0.1").is_err());
        assert!(parse_sources("127.0.0.1/33").is_err());
        assert!(parse_sources("localhost").is_err());
        assert!(parse_sources(" , ").is_err());
        assert!(parse_sources("0.0.0.0/0").is_err());
    }

    #[test]
    fn cpus_parse() {
        assert_eq!(parse_cpus("1").unwrap(), vec![1]);
        assert_eq!(parse_cpus("0,2-4,2").unwrap(), vec![0, 2, 3, 4]);
        assert!(parse_cpus("3-1").is_err());
        assert!(parse_cpus("x").is_err());
    }

    #[test]
    fn shares_add_up() {
        for (total, parts) in [(10, 3), (0, 4), (7, 7), (100_001, 16)] {
            let sum: u64 = (0..parts).map(|i| share(total, parts, i)).sum();
            assert_eq!(sum, total);
            let max = (0..parts).map(|i| share(total, parts, i)).max().unwrap();
            let min = (0..parts).map(|i| share(total, parts, i)).min().unwrap();
            assert!(max - min <= 1);
        }
    }

    #[test]
    fn process_slices_partition_the_sources() {
        let all = parse_sources("127.0.0.1-127.0.0.10").unwrap();
        let mut joined = Vec::new();
        for i in 0..3 {
            joined.extend(slice_for_process(&all, i, 3));
        }
        assert_eq!(joined, all);
        let few = parse_sources("127.0.0.1,127.0.0.2").unwrap();
        assert_eq!(slice_for_process(&few, 3, 5), vec![v4("127.0.0.2")]);
        assert!(slice_for_process(&[], 0, 2).is_empty());
    }
}
