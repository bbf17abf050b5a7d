//! `ServerFeatures.GetSupportedMethods` and `Gossip.Read`: enough for the clients to treat this
//! process as a single-node cluster whose leader it is.

use crate::convert::ticks;
use crate::proto::event_store::client::Empty;
use crate::proto::event_store::client::gossip::{
    ClusterInfo, EndPoint, MemberInfo, gossip_server::Gossip, member_info::VNodeState,
};
use crate::proto::event_store::client::server_features::{
    SupportedMethod, SupportedMethods, server_features_server::ServerFeatures,
};

/// The KurrentDB version whose client protocol this endpoint speaks (the clients parse it as
/// semver to decide which messages to expect, e.g. `caught_up` with a position since 25.1).
pub const SERVER_VERSION: &str = "25.1.0";

#[derive(Debug)]
pub struct Features;

#[tonic::async_trait]
impl ServerFeatures for Features {
    async fn get_supported_methods(
        &self,
        _request: tonic::Request<Empty>,
    ) -> Result<tonic::Response<SupportedMethods>, tonic::Status> {
        let method = |service: &str, method: &str, features: &[&str]| SupportedMethod {
            method_name: method.into(),
            service_name: service.into(),
            features: features.iter().map(|f| f.to_string()).collect(),
        };
        // Appends are refused, so `batchappend` is not advertised: the clients then use `Append`.
        Ok(tonic::Response::new(SupportedMethods {
            methods: vec![
                method(
                    "event_store.client.streams.streams",
                    "read",
                    &["position", "events"],
                ),
                method("event_store.client.streams.streams", "append", &[]),
                method("event_store.client.gossip.gossip", "read", &[]),
                method(
                    "event_store.client.server_features.serverfeatures",
                    "getsupportedmethods",
                    &[],
                ),
            ],
            event_store_server_version: SERVER_VERSION.into(),
        }))
    }
}

#[derive(Debug)]
pub struct GossipService {
    instance: uuid::Uuid,
}

impl GossipService {
    pub fn new() -> Self {
        Self {
            instance: uuid::Uuid::now_v7(),
        }
    }
}

#[tonic::async_trait]
impl Gossip for GossipService {
    /// One member, alive and leader, at the address the client reached.
    async fn read(
        &self,
        request: tonic::Request<Empty>,
    ) -> Result<tonic::Response<ClusterInfo>, tonic::Status> {
        let addr = request.local_addr();
        let end_point = addr.map(|a| EndPoint {
            address: a.ip().to_string(),
            port: u32::from(a.port()),
        });
        Ok(tonic::Response::new(ClusterInfo {
            members: vec![MemberInfo {
                instance_id: Some(crate::convert::uuid_string(self.instance)),
                time_stamp: ticks(chrono::Utc::now()),
                state: VNodeState::Leader as i32,
                is_alive: true,
                http_end_point: end_point,
            }],
        }))
    }
}
