//! Reading shard bodies off the wire: a fresh zeroed `Vec` per body (the
//! old path) beside a buffer from the codec's pool, and a whole 1 MiB store
//! request through `ShardCodec` as the node reads it.
#![allow(clippy::unwrap_used, missing_docs)]

use std::time::Duration;

use bytes::Bytes;
use cairn_client::net::body_pool::BodyPool;
use cairn_client::net::codec::{ShardCodec, ShardRequest};
use cairn_protocol::wire::{Request, StoreRequest};
use cairn_protocol::ContentId;
use criterion::{Criterion, Throughput};
use futures::io::{AsyncReadExt, Cursor};
use libp2p::request_response::Codec;

const BODY: usize = 1 << 20;

fn bodies(c: &mut Criterion) {
    // The codec's read timeout needs tokio's timer.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let wire = vec![5u8; BODY];
    let mut group = c.benchmark_group("body read, 1 MiB");
    group.throughput(Throughput::Bytes(BODY as u64));
    group.bench_function("fresh zeroed Vec (old)", |b| {
        b.iter(|| {
            rt.block_on(async {
                let mut io = Cursor::new(&wire[..]);
                let mut body = vec![0u8; BODY];
                io.read_exact(&mut body).await.unwrap();
                Bytes::from(body)
            })
        })
    });
    let pool = BodyPool::new(16 << 20);
    group.bench_function("pooled buffer", |b| {
        b.iter(|| {
            rt.block_on(async {
                let mut io = Cursor::new(&wire[..]);
                let mut body = pool.take(BODY);
                io.read_exact(body.bytes_mut()).await.unwrap();
                body.freeze()
            })
        })
    });
    group.finish();

    let body = Bytes::from(vec![9u8; BODY]);
    let header = Request::Store(StoreRequest {
        id: ContentId::of(&body),
        size: BODY as u64,
        expires_at: None,
        owner: None,
    });
    let mut codec = ShardCodec::new(64 << 20, Duration::from_secs(5));
    let mut frame = Vec::new();
    rt.block_on(codec.write_request(
        &ShardCodec::protocol(),
        &mut frame,
        ShardRequest::new(header, body),
    ))
    .unwrap();
    let mut group = c.benchmark_group("ShardCodec");
    group.throughput(Throughput::Bytes(BODY as u64));
    group.bench_function("read a 1 MiB store request", |b| {
        b.iter(|| {
            let mut io = Cursor::new(&frame[..]);
            rt.block_on(codec.read_request(&ShardCodec::protocol(), &mut io))
                .unwrap()
        })
    });
    group.finish();
}

fn main() {
    let mut c = Criterion::default()
        .configure_from_args()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    bodies(&mut c);
    c.final_summary();
}
