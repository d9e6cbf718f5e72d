//! Which nodes a client reaches over the bulk transport, and where.
//!
//! A node's bulk port comes from its `Info` answer (asked once, over
//! libp2p); the host is the one its libp2p address names. A node without a
//! bulk listener, or whose listener failed, is reached over libp2p, and
//! asked again after [`RETRY_AFTER`].

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};

/// How long a node found without a working bulk listener is reached over
/// libp2p before it is asked again.
pub const RETRY_AFTER: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy)]
enum Route {
    Bulk(SocketAddr),
    Libp2p { since: Instant },
}

/// The route of each node a client has asked.
#[derive(Debug, Default)]
pub struct Routes {
    routes: Mutex<HashMap<PeerId, Route>>,
}

/// What the routes know of a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Known {
    /// Use the bulk listener at this address.
    Bulk(SocketAddr),
    /// Use libp2p.
    Libp2p,
    /// Ask the node (`Info`) first.
    Unknown,
}

impl Routes {
    pub fn get(&self, peer: &PeerId) -> Known {
        let routes = self.routes.lock().unwrap_or_else(|e| e.into_inner());
        match routes.get(peer) {
            Some(Route::Bulk(addr)) => Known::Bulk(*addr),
            Some(Route::Libp2p { since }) if since.elapsed() < RETRY_AFTER => Known::Libp2p,
            _ => Known::Unknown,
        }
    }

    /// Records what `Info` said: the bulk listener's address, if any.
    pub fn learn(&self, peer: PeerId, addr: Option<SocketAddr>) {
        let route = match addr {
            Some(addr) => Route::Bulk(addr),
            None => Route::Libp2p {
                since: Instant::now(),
            },
        };
        self.routes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(peer, route);
    }

    /// The bulk path to `peer` failed: libp2p for a while.
    pub fn failed(&self, peer: PeerId) {
        self.learn(peer, None);
    }
}

/// The socket address of a bulk listener on `port`, on the host of the
/// first of `addrs` that names one (IP or DNS).
pub async fn bulk_addr(addrs: &[Multiaddr], port: u16) -> Option<SocketAddr> {
    for addr in addrs {
        for part in addr.iter() {
            match part {
                Protocol::Ip4(ip) => return Some(SocketAddr::new(IpAddr::V4(ip), port)),
                Protocol::Ip6(ip) => return Some(SocketAddr::new(IpAddr::V6(ip), port)),
                Protocol::Dns(name) | Protocol::Dns4(name) | Protocol::Dns6(name) => {
                    if let Ok(mut found) = tokio::net::lookup_host((name.as_ref(), port)).await {
                        if let Some(a) = found.next() {
                            return Some(a);
                        }
                    }
                }
                _ => {}
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_route_is_learned_and_a_failure_falls_back() {
        let routes = Routes::default();
        let peer = PeerId::random();
        assert_eq!(routes.get(&peer), Known::Unknown);
        let addr: SocketAddr = "127.0.0.1:4000".parse().unwrap();
        routes.learn(peer, Some(addr));
        assert_eq!(routes.get(&peer), Known::Bulk(addr));
        routes.failed(peer);
        assert_eq!(routes.get(&peer), Known::Libp2p);
    }

    #[test]
    fn the_host_comes_from_the_libp2p_address() {
        crate::net::test_util::block_on(async {
            let quic: Multiaddr = "/ip4/10.1.2.3/udp/4001/quic-v1".parse().unwrap();
            let got = bulk_addr(&[quic], 4002).await;
            assert_eq!(got, Some("10.1.2.3:4002".parse().unwrap()));
            let v6: Multiaddr = "/ip6/::1/tcp/4001".parse().unwrap();
            assert_eq!(bulk_addr(&[v6], 9).await, Some("[::1]:9".parse().unwrap()));
            assert_eq!(bulk_addr(&[], 9).await, None);
        });
    }
}
