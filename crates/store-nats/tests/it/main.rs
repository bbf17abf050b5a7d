//! Integration tests of the JetStream backend against real `nats-server` processes: the store
//! conformance suite, server faults, corrupt messages and a 3-node cluster.

mod chain;
mod cluster;
mod corrupt;
mod credentials;
mod faults;
mod format;
mod lease;
mod replay;
mod support;

use support::NatsHarness;

funnel_store::conformance_tests!(NatsHarness::start());
