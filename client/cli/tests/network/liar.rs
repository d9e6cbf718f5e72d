//! A node that acknowledges every store, keeps nothing, and answers every
//! fetch with a well-formed encoding of the wrong bytes: the client must
//! notice, use the honest nodes, and still return the right file.

use std::time::Duration;

use bytes::Bytes;
use cairn_client::net::client::NodeAddr;
use cairn_client::net::{build_swarm, CairnBehaviourEvent, Role, ShardResponse, SwarmSettings};
use cairn_protocol::shard::Outboard;
use cairn_protocol::wire::{Request, Response};
use futures::StreamExt;
use libp2p::request_response::{Event, Message};
use libp2p::swarm::SwarmEvent;

use crate::common::*;

/// Starts the liar on 127.0.0.1 (QUIC) and returns its address.
async fn start_liar() -> NodeAddr {
    let keypair = libp2p::identity::Keypair::generate_ed25519();
    let peer = keypair.public().to_peer_id();
    let mut swarm = build_swarm(
        keypair,
        &SwarmSettings {
            role: Role::Node,
            request_timeout: Duration::from_secs(30),
            streams_per_connection: 64,
            inbound_buffer: 256 << 20,
            connection_limits: Default::default(),
        },
    )
    .unwrap();
    swarm
        .listen_on("/ip4/127.0.0.1/udp/0/quic-v1".parse().unwrap())
        .unwrap();
    let addr = loop {
        if let SwarmEvent::NewListenAddr { address, .. } = swarm.select_next_some().await {
            break address;
        }
    };
    tokio::spawn(async move {
        loop {
            let event = swarm.select_next_some().await;
            let SwarmEvent::Behaviour(CairnBehaviourEvent::Shards(Event::Message {
                message:
                    Message::Request {
                        request, channel, ..
                    },
                ..
            })) = event
            else {
                continue;
            };
            let answer = match request.header {
                Some(Request::StoreV2(s)) => ShardResponse::new(Response::Stored {
                    id: s.id,
                    existed: false,
                }),
                // Claims to hold everything, 4 KiB each (the manifest too).
                Some(Request::Has { ids }) => ShardResponse::new(Response::Has {
                    sizes: ids.iter().map(|_| Some(4096)).collect(),
                }),
                Some(Request::Fetch { id, start, end }) => {
                    let garbage = vec![0xa5u8; end as usize];
                    let body = Outboard::compute(&garbage)
                        .encode_range(&garbage, start..end)
                        .unwrap();
                    ShardResponse {
                        header: Response::Range {
                            id,
                            shard_size: end,
                            start,
                            end,
                            encoded_len: body.len() as u64,
                        },
                        body: Bytes::from(body),
                    }
                }
                _ => ShardResponse::error(cairn_protocol::wire::ErrorKind::Internal, "no"),
            };
            let _ = swarm.behaviour_mut().shards.send_response(channel, answer);
        }
    });
    format!("{addr}/p2p/{peer}").parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lying_node_costs_time_not_correctness() {
    let net = TestNet::start(5);
    let liar = start_liar().await;
    let mut config = net.config(3, 3);
    // The liar first in the list; placement ranks by peer id, and with six
    // nodes for n = 6 it holds a column whatever its rank.
    config.nodes.insert(0, liar);
    let client = cairn_client::Client::connect(config).unwrap();
    // Placement is random per upload: the liar holds a data column about
    // every other time. Upload until it did (and was caught) at least once.
    let mut caught = false;
    for attempt in 0..12u64 {
        let (path, bytes) = net.file(&format!("l{attempt}"), 700_000, 31 + attempt);
        let report = put(&client, &path).await;
        assert_eq!(report.n, 6);
        let mut out = Vec::new();
        let got = client
            .get(
                &report.capability,
                &mut out,
                &cairn_client::GetOptions::default(),
            )
            .await
            .unwrap();
        assert_same(&out, &bytes, "read past a liar");
        let range = client
            .get_range(&report.capability, 123_456, 500_000)
            .await
            .unwrap();
        assert_same(&range, &bytes[123_456..623_456], "range past a liar");
        if got.failed_fetches > 0 {
            caught = true;
            break;
        }
    }
    assert!(caught, "the liar never served a data shard in 12 uploads");
}
