//! The hub's relay: latency and loss for a kernel without `netem`.
//!
//! For every host `i` and port it listens at host `i`'s public address
//! ([`lab::public_ip`]) and passes traffic on to the host's own address
//! ([`lab::own_ip`]), from the *sender's* public address when the sender is
//! a host (so a peer sees each host at the address it announces, as
//! commonware's validator p2p checks). Every datagram and every TCP chunk
//! waits `delay` in each direction (so a path's RTT is twice it); a
//! fraction `loss` of UDP datagrams is dropped in each direction, so QUIC
//! sees real loss (TCP's own retransmissions hide loss on each leg, so TCP
//! gets the delay only). The relay's queues are bounded: a datagram that
//! finds its queue full is dropped, as a router's would be; a TCP chunk
//! waits for room (backpressure).

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, UdpSocket};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::inns::NsRuntime;
use crate::lab::{self, Lab};

/// Datagrams (each way) waiting in one UDP session's delay line.
const UDP_QUEUE: usize = 8192;
/// Chunks (each way) waiting in one TCP connection's delay line.
const TCP_QUEUE: usize = 1024;
const TCP_CHUNK: usize = 64 * 1024;
/// UDP sessions (distinct senders) per listening socket.
const MAX_SESSIONS: usize = 1024;

/// What the relay does to traffic; changeable while it runs.
#[derive(Debug, Default)]
pub struct Impairment {
    delay_us: AtomicU64,
    loss_ppm: AtomicU32,
    /// Bytes passed on (UDP payloads and TCP stream bytes, both ways).
    relayed: AtomicU64,
    /// Of those, TCP stream bytes.
    relayed_tcp: AtomicU64,
    /// Datagrams dropped as loss.
    dropped: AtomicU64,
}

impl Impairment {
    /// `delay` each way, `loss` (0..=1) of datagrams dropped each way.
    pub fn set(&self, delay: Duration, loss: f64) {
        self.delay_us.store(
            u64::try_from(delay.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        self.loss_ppm
            .store((loss.clamp(0.0, 1.0) * 1e6) as u32, Ordering::Relaxed);
    }

    /// Bytes the relay has passed on so far.
    pub fn relayed(&self) -> u64 {
        self.relayed.load(Ordering::Relaxed)
    }

    /// TCP stream bytes the relay has passed on so far (the bulk
    /// transport's shard bodies travel here, QUIC's in datagrams).
    pub fn relayed_tcp(&self) -> u64 {
        self.relayed_tcp.load(Ordering::Relaxed)
    }

    /// Datagrams dropped as loss so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    fn count(&self, bytes: usize) {
        self.relayed.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    fn delay(&self) -> Duration {
        Duration::from_micros(self.delay_us.load(Ordering::Relaxed))
    }

    fn drops(&self) -> bool {
        let ppm = self.loss_ppm.load(Ordering::Relaxed);
        let drop = ppm > 0 && rand::thread_rng().gen_range(0..1_000_000) < ppm;
        if drop {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        drop
    }
}

/// The relay, running in the lab's hub until dropped.
pub struct Relay {
    pub impairment: Arc<Impairment>,
    _runtime: NsRuntime,
}

impl Relay {
    /// Relays `udp` and `tcp` ports of every host of `lab`.
    pub fn start(lab: &Lab, udp: &[u16], tcp: &[u16]) -> Self {
        let impairment = Arc::new(Impairment::default());
        let hosts = lab.hosts();
        let (udp, tcp) = (udp.to_vec(), tcp.to_vec());
        let shared = impairment.clone();
        let (runtime, ()) = NsRuntime::start(&lab.hub(), move |ready| async move {
            for i in 0..hosts {
                for &port in &udp {
                    let socket = UdpSocket::bind(SocketAddrV4::new(lab::public_ip(i), port))
                        .await
                        .expect("bind the relay's UDP socket");
                    let target = SocketAddr::from((lab::own_ip(i), port));
                    tokio::spawn(udp_listener(Arc::new(socket), target, shared.clone()));
                }
                for &port in &tcp {
                    let listener = TcpListener::bind(SocketAddrV4::new(lab::public_ip(i), port))
                        .await
                        .expect("bind the relay's TCP socket");
                    let target = SocketAddr::from((lab::own_ip(i), port));
                    tokio::spawn(tcp_listener(listener, target, shared.clone()));
                }
            }
            let _ = ready.send(());
            std::future::pending::<()>().await;
        });
        Self {
            impairment,
            _runtime: runtime,
        }
    }
}

/// The address the relay speaks to `target` from, for traffic from `peer`:
/// the sender's public address if it is a host, else the target's.
fn source_for(peer: SocketAddr, target: SocketAddr) -> Ipv4Addr {
    let ip = |a: SocketAddr| match a {
        SocketAddr::V4(v4) => Some(*v4.ip()),
        SocketAddr::V6(_) => None,
    };
    ip(peer)
        .and_then(lab::host_of)
        .or_else(|| ip(target).and_then(lab::host_of))
        .map(lab::public_ip)
        .unwrap_or(Ipv4Addr::UNSPECIFIED)
}

/// A delay line: what is pushed comes out `delay` later, in order.
fn delay_line<T: Send + 'static>(
    capacity: usize,
    mut deliver: impl FnMut(T) -> futures::future::BoxFuture<'static, bool> + Send + 'static,
) -> mpsc::Sender<(Instant, T)> {
    let (tx, mut rx) = mpsc::channel::<(Instant, T)>(capacity);
    tokio::spawn(async move {
        while let Some((due, item)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            if !deliver(item).await {
                break;
            }
        }
    });
    tx
}

async fn udp_listener(socket: Arc<UdpSocket>, target: SocketAddr, imp: Arc<Impairment>) {
    let mut sessions: HashMap<SocketAddr, mpsc::Sender<(Instant, Vec<u8>)>> = HashMap::new();
    let mut buf = vec![0u8; 65_536];
    loop {
        let Ok((len, peer)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        sessions.retain(|_, tx| !tx.is_closed());
        if !sessions.contains_key(&peer) {
            if sessions.len() >= MAX_SESSIONS {
                continue;
            }
            let Some(tx) = udp_session(&socket, peer, target, imp.clone()).await else {
                continue;
            };
            sessions.insert(peer, tx);
        }
        if imp.drops() {
            continue;
        }
        if let Some(tx) = sessions.get(&peer) {
            if tx
                .try_send((Instant::now() + imp.delay(), buf[..len].to_vec()))
                .is_ok()
            {
                imp.count(len);
            }
        }
    }
}

/// A session for datagrams from `peer`: an upstream socket to `target`,
/// and the delay lines both ways. Returns the way towards `target`.
async fn udp_session(
    listener: &Arc<UdpSocket>,
    peer: SocketAddr,
    target: SocketAddr,
    imp: Arc<Impairment>,
) -> Option<mpsc::Sender<(Instant, Vec<u8>)>> {
    let upstream = UdpSocket::bind((source_for(peer, target), 0)).await.ok()?;
    upstream.connect(target).await.ok()?;
    let upstream = Arc::new(upstream);
    let up = upstream.clone();
    let forward = delay_line(UDP_QUEUE, move |d: Vec<u8>| {
        let up = up.clone();
        Box::pin(async move {
            // A refused datagram (the host is down) is simply lost.
            let _ = up.send(&d).await;
            true
        })
    });
    let back_socket = listener.clone();
    let back = delay_line(UDP_QUEUE, move |d: Vec<u8>| {
        let s = back_socket.clone();
        Box::pin(async move {
            let _ = s.send_to(&d, peer).await;
            true
        })
    });
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65_536];
        loop {
            let len = match upstream.recv(&mut buf).await {
                Ok(len) => len,
                // ICMP errors surface as errors on a connected socket.
                Err(_) => continue,
            };
            if imp.drops() {
                continue;
            }
            match back.try_send((Instant::now() + imp.delay(), buf[..len].to_vec())) {
                Ok(()) => imp.count(len),
                Err(_) if back.is_closed() => break,
                Err(_) => {}
            }
        }
    });
    Some(forward)
}

async fn tcp_listener(listener: TcpListener, target: SocketAddr, imp: Arc<Impairment>) {
    while let Ok((inbound, peer)) = listener.accept().await {
        let imp = imp.clone();
        tokio::spawn(async move {
            let Ok(socket) = TcpSocket::new_v4() else {
                return;
            };
            if socket
                .bind(SocketAddr::from((source_for(peer, target), 0)))
                .is_err()
            {
                return;
            }
            let Ok(Ok(outbound)) =
                tokio::time::timeout(Duration::from_secs(10), socket.connect(target)).await
            else {
                return; // the inbound side is closed by dropping it
            };
            let _ = inbound.set_nodelay(true);
            let _ = outbound.set_nodelay(true);
            let (in_read, in_write) = inbound.into_split();
            let (out_read, out_write) = outbound.into_split();
            tokio::join!(
                tcp_pipe(in_read, out_write, imp.clone()),
                tcp_pipe(out_read, in_write, imp),
            );
        });
    }
}

/// Copies one direction of a relayed connection through a delay line,
/// closing the writer's side when the reader's ends.
async fn tcp_pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    to: tokio::net::tcp::OwnedWriteHalf,
    imp: Arc<Impairment>,
) {
    let (tx, mut rx) = mpsc::channel::<(Instant, Option<Vec<u8>>)>(TCP_QUEUE);
    let writer = tokio::spawn(async move {
        let mut to = to;
        while let Some((due, chunk)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            match chunk {
                Some(c) => {
                    if to.write_all(&c).await.is_err() {
                        return;
                    }
                }
                None => {
                    let _ = to.shutdown().await;
                    return;
                }
            }
        }
    });
    let mut buf = vec![0u8; TCP_CHUNK];
    loop {
        let chunk = match from.read(&mut buf).await {
            Ok(0) | Err(_) => None,
            Ok(n) => {
                imp.count(n);
                imp.relayed_tcp.fetch_add(n as u64, Ordering::Relaxed);
                Some(buf[..n].to_vec())
            }
        };
        let end = chunk.is_none();
        if tx
            .send((Instant::now() + imp.delay(), chunk))
            .await
            .is_err()
            || end
        {
            break;
        }
    }
    drop(tx);
    let _ = writer.await;
}
