//! The generated messages and services of the vendored `.proto` files (`build.rs`), in modules
//! that mirror their packages.

#![allow(
    unused_qualifications,
    missing_debug_implementations,
    clippy::all,
    clippy::pedantic
)]

pub mod event_store {
    pub mod client {
        tonic::include_proto!("event_store.client");
        pub mod streams {
            tonic::include_proto!("event_store.client.streams");
        }
        pub mod server_features {
            tonic::include_proto!("event_store.client.server_features");
        }
        pub mod gossip {
            tonic::include_proto!("event_store.client.gossip");
        }
    }
}

pub mod google {
    pub mod rpc {
        tonic::include_proto!("google.rpc");
    }
}
