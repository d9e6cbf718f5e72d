//! Sockets in another network namespace, from this process.
//!
//! A thread that `setns`es into a namespace makes every socket it (and any
//! thread it starts) creates live there; a socket keeps its namespace
//! whatever thread uses it later. [`NsRuntime`] is a tokio runtime whose
//! threads all entered one namespace; [`Forward`] listens on this
//! process's 127.0.0.1 and connects each client to a port on a host
//! namespace's own loopback, so the test reads a node's HTTP API however
//! that host's link is faring.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use nix::sched::CloneFlags;
use tokio::sync::oneshot;

/// Moves the calling thread into network namespace `ns` (`ip netns` name).
pub fn enter(ns: &str) -> std::io::Result<()> {
    let file = std::fs::File::open(format!("/run/netns/{ns}"))?;
    nix::sched::setns(&file, CloneFlags::CLONE_NEWNET).map_err(std::io::Error::from)
}

/// A multi-thread tokio runtime living in one namespace, running one
/// future until dropped.
pub struct NsRuntime {
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl NsRuntime {
    /// Runs `make()`'s future on a runtime in namespace `ns`; `make` runs
    /// there too (so what it binds is in `ns`). Returns once `ready`
    /// reports from inside the future, with its value.
    pub fn start<T, F, Fut>(ns: &str, make: F) -> (Self, T)
    where
        T: Send + 'static,
        F: FnOnce(std::sync::mpsc::Sender<T>) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        let (stop, stopped) = oneshot::channel::<()>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<T>();
        let ns = ns.to_string();
        let thread = std::thread::spawn(move || {
            enter(&ns).unwrap_or_else(|e| panic!("setns {ns}: {e}"));
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let local = tokio::task::LocalSet::new();
                local
                    .run_until(async move {
                        tokio::select! {
                            () = make(ready_tx) => {}
                            _ = stopped => {}
                        }
                    })
                    .await;
            });
            runtime.shutdown_timeout(Duration::from_secs(1));
        });
        let value = ready_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the namespace runtime did not start");
        (
            Self {
                stop: Some(stop),
                thread: Some(thread),
            },
            value,
        )
    }
}

impl Drop for NsRuntime {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A port of this process's 127.0.0.1 forwarded to `target` inside a
/// namespace.
pub struct Forward {
    pub local: SocketAddr,
    _runtime: NsRuntime,
}

impl Forward {
    pub fn new(ns: &str, target: SocketAddr) -> Self {
        // Bound here, in the test's own namespace, before the thread moves.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a forward port");
        listener.set_nonblocking(true).expect("nonblocking");
        let local = listener.local_addr().expect("local addr");
        let (runtime, ()) = NsRuntime::start(ns, move |ready| async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            let _ = ready.send(());
            while let Ok((mut inbound, _)) = listener.accept().await {
                tokio::spawn(async move {
                    // Connected from the runtime's namespace.
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        Self {
            local,
            _runtime: runtime,
        }
    }
}
