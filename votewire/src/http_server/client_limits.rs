//! Who a request comes from, and how much of the API one client may hold.
//!
//! * A client is its address, except that an IPv6 address counts by its
//!   /64: one host is routinely given a whole /64, so keying on the full
//!   address would let it rotate through 2^64 identities.
//! * Behind a proxy every request arrives from the proxy. Only when the
//!   peer is a configured trusted proxy (`api.trusted_proxies`, CIDRs) is
//!   `X-Forwarded-For` read, from the right, skipping trusted hops; a
//!   client's own `X-Forwarded-For` is never believed.
//! * The rate limiter keeps one token bucket per client and at most
//!   [`MAX_TRACKED_CLIENTS`]; past that it forgets idle buckets, and if
//!   every bucket is busy it refuses new clients rather than forgetting
//!   the ones it is limiting.
//! * One client holds at most [`MAX_STREAMS_PER_CLIENT`] live streams.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use ipnet::IpNet;

/// The most clients the rate limiter tracks at once.
pub const MAX_TRACKED_CLIENTS: usize = 100_000;
/// The most live streams one client may hold open.
pub const MAX_STREAMS_PER_CLIENT: usize = 16;

/// A client, as the limits count it: an IPv4 address or an IPv6 /64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientKey(IpAddr);

impl ClientKey {
    pub fn of(ip: IpAddr) -> ClientKey {
        match ip {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => ClientKey(IpAddr::V4(v4)),
                None => {
                    let s = v6.segments();
                    ClientKey(IpAddr::V6(Ipv6Addr::new(
                        s[0], s[1], s[2], s[3], 0, 0, 0, 0,
                    )))
                }
            },
            v4 => ClientKey(v4),
        }
    }
}

/// The proxies whose `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Parses CIDRs (`10.0.0.0/8`) or single addresses.
    pub fn parse(list: &[String]) -> Result<TrustedProxies, String> {
        list.iter()
            .map(|s| {
                s.parse::<IpNet>()
                    .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| format!("api.trusted_proxies: {s:?} is not an address or CIDR"))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(TrustedProxies)
    }

    /// Whether `ip` is a trusted proxy (whose connections carry many
    /// clients, so no per-client connection cap applies to it).
    pub fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|n| n.contains(&ip))
    }

    /// The client behind `peer`: `peer` itself unless it is a trusted
    /// proxy, else the rightmost `X-Forwarded-For` address that is not a
    /// trusted proxy (the leftmost when every hop is trusted).
    pub fn client_of(&self, peer: IpAddr, forwarded_for: Option<&str>) -> IpAddr {
        if !self.trusts(peer) {
            return peer;
        }
        let hops: Vec<IpAddr> = forwarded_for
            .unwrap_or_default()
            .split(',')
            .filter_map(|h| h.trim().parse::<IpAddr>().ok())
            .collect();
        hops.iter()
            .rev()
            .find(|ip| !self.trusts(**ip))
            .or(hops.first())
            .copied()
            .unwrap_or(peer)
    }
}

/// Every `X-Forwarded-For` header of a request as one list, in order:
/// several headers are one list (a proxy may add its own header rather
/// than extend the client's), and reading only the first would let a
/// client's own header name it.
pub fn forwarded_for(headers: &axum::http::HeaderMap) -> Option<String> {
    let values: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    (!values.is_empty()).then(|| values.join(","))
}

/// A token bucket per client.
pub struct RateLimiter {
    per_second: f64,
    buckets: Mutex<Buckets>,
}

/// The buckets, and when idle ones were last swept out.
struct Buckets {
    by_client: HashMap<ClientKey, (f64, Instant)>,
    swept: Option<Instant>,
    sweeps: u64,
}

/// How often a full table may be swept: a sweep walks every bucket, so a
/// flood of new clients must not buy one per request.
const SWEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

impl RateLimiter {
    pub fn new(per_second: f64) -> RateLimiter {
        RateLimiter {
            per_second: per_second.max(0.1),
            buckets: Mutex::new(Buckets {
                by_client: HashMap::new(),
                swept: None,
                sweeps: 0,
            }),
        }
    }

    pub fn allow(&self, who: ClientKey) -> bool {
        let burst = self.per_second * 2.0;
        let mut guard = self.buckets.lock().expect("limiter lock");
        let Buckets {
            by_client,
            swept,
            sweeps,
        } = &mut *guard;
        let now = Instant::now();
        if !by_client.contains_key(&who) && by_client.len() >= MAX_TRACKED_CLIENTS {
            // Forget the buckets that have refilled: those clients are
            // idle, and a new bucket would be the same. At most once per
            // SWEEP_EVERY; between sweeps a full table refuses new clients.
            if swept.is_none_or(|at| now.duration_since(at) >= SWEEP_EVERY) {
                *swept = Some(now);
                *sweeps += 1;
                let refill = burst / self.per_second;
                by_client.retain(|_, (_, at)| now.duration_since(*at).as_secs_f64() < refill);
            }
            if by_client.len() >= MAX_TRACKED_CLIENTS {
                return false;
            }
        }
        let (tokens, at) = by_client.entry(who).or_insert((burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * self.per_second).min(burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// What each client holds open (live streams, connections), at most a
/// fixed number each.
#[derive(Clone)]
pub struct HoldsPerClient {
    max: usize,
    counts: Arc<Mutex<HashMap<ClientKey, usize>>>,
}

/// One client's hold on a stream or a connection; released on drop.
pub struct StreamHold {
    counts: Arc<Mutex<HashMap<ClientKey, usize>>>,
    who: ClientKey,
}

impl HoldsPerClient {
    /// At most `max` holds per client.
    pub fn new(max: usize) -> HoldsPerClient {
        HoldsPerClient {
            max,
            counts: Arc::default(),
        }
    }

    /// Live streams: [`MAX_STREAMS_PER_CLIENT`] each.
    pub fn streams() -> HoldsPerClient {
        HoldsPerClient::new(MAX_STREAMS_PER_CLIENT)
    }

    /// A hold for `who`, unless it already holds the most it may.
    pub fn hold(&self, who: ClientKey) -> Option<StreamHold> {
        let mut counts = self.counts.lock().expect("holds lock");
        let n = counts.entry(who).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(StreamHold {
            counts: self.counts.clone(),
            who,
        })
    }
}

impl Drop for StreamHold {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().expect("holds lock");
        if let Some(n) = counts.get_mut(&self.who) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.who);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_ipv6_client_is_its_slash_64() {
        assert_eq!(
            ClientKey::of(ip("2001:db8:1:2:aaaa::1")),
            ClientKey::of(ip("2001:db8:1:2:ffff:1:2:3"))
        );
        assert_ne!(
            ClientKey::of(ip("2001:db8:1:2::1")),
            ClientKey::of(ip("2001:db8:1:3::1"))
        );
        assert_eq!(
            ClientKey::of(ip("::ffff:10.0.0.7")),
            ClientKey::of(ip("10.0.0.7"))
        );
        assert_ne!(ClientKey::of(ip("10.0.0.7")), ClientKey::of(ip("10.0.0.8")));
    }

    #[test]
    fn forwarded_for_is_believed_only_from_a_trusted_proxy() {
        let proxies = TrustedProxies::parse(&["10.0.0.0/8".into(), "192.0.2.9".into()]).unwrap();
        let xff = Some("198.51.100.1, 203.0.113.5, 10.1.1.1");
        // From the proxy: the rightmost untrusted hop.
        assert_eq!(proxies.client_of(ip("10.0.0.2"), xff), ip("203.0.113.5"));
        assert_eq!(
            proxies.client_of(ip("192.0.2.9"), Some("203.0.113.6")),
            ip("203.0.113.6")
        );
        // From anyone else: the peer, whatever the header says.
        assert_eq!(
            proxies.client_of(ip("203.0.113.77"), xff),
            ip("203.0.113.77")
        );
        // A trusted proxy with no header is the client.
        assert_eq!(proxies.client_of(ip("10.0.0.2"), None), ip("10.0.0.2"));
        assert!(TrustedProxies::parse(&["not a net".into()]).is_err());
        assert_eq!(
            TrustedProxies::default().client_of(ip("10.0.0.2"), xff),
            ip("10.0.0.2")
        );
    }

    #[test]
    fn every_forwarded_for_header_counts_and_the_proxys_own_hop_wins() {
        let proxies = TrustedProxies::parse(&["10.0.0.0/8".into()]).unwrap();
        let mut headers = axum::http::HeaderMap::new();
        // The client sends its own header; the proxy adds a second one.
        headers.append("x-forwarded-for", "198.51.100.1".parse().unwrap());
        headers.append("x-forwarded-for", "203.0.113.9".parse().unwrap());
        let list = forwarded_for(&headers);
        assert_eq!(list.as_deref(), Some("198.51.100.1,203.0.113.9"));
        assert_eq!(
            proxies.client_of(ip("10.0.0.2"), list.as_deref()),
            ip("203.0.113.9")
        );
        assert_eq!(forwarded_for(&axum::http::HeaderMap::new()), None);
    }

    #[test]
    fn a_flood_of_new_clients_does_not_reset_the_ones_being_limited() {
        let limiter = RateLimiter::new(0.5);
        let hog = ClientKey::of(ip("203.0.113.1"));
        while limiter.allow(hog) {}
        for i in 0..MAX_TRACKED_CLIENTS as u32 {
            let v6 = Ipv6Addr::from((0x2001_0db8_u128 << 96) | (u128::from(i) << 64));
            limiter.allow(ClientKey::of(IpAddr::V6(v6)));
        }
        assert!(!limiter.allow(hog), "the hog's empty bucket was forgotten");
        // With the table full, more new clients are refused without a
        // sweep of every bucket each.
        for i in 0..10_000_u32 {
            let v6 = Ipv6Addr::from((0x2001_0db9_u128 << 96) | (u128::from(i) << 64));
            assert!(!limiter.allow(ClientKey::of(IpAddr::V6(v6))));
        }
        let sweeps = limiter.buckets.lock().unwrap().sweeps;
        assert!(sweeps <= 2, "{sweeps} sweeps of the full table");
    }

    #[test]
    fn one_client_holds_a_bounded_number_of_streams() {
        let streams = HoldsPerClient::streams();
        let who = ClientKey::of(ip("2001:db8::1"));
        let holds: Vec<StreamHold> = (0..MAX_STREAMS_PER_CLIENT)
            .map(|_| streams.hold(who).unwrap())
            .collect();
        assert!(
            streams.hold(ClientKey::of(ip("2001:db8::2"))).is_none(),
            "same /64"
        );
        assert!(streams.hold(ClientKey::of(ip("198.51.100.1"))).is_some());
        drop(holds);
        assert!(streams.hold(who).is_some());
    }
}
