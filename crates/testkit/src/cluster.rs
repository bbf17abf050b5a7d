//! A JetStream cluster of `nats-server` processes on loopback: each node has its own client,
//! cluster and monitoring port, its own server name and store directory, and routes to every other
//! node. Nodes can be killed and restarted one at a time.

use crate::process::{self, ServerProcess};
use std::path::{Path, PathBuf};
use tempfile::TempDir;

/// One node of a [`NatsCluster`].
#[derive(Debug)]
struct Node {
    port: u16,
    store_dir: PathBuf,
    process: ServerProcess,
}

/// A JetStream cluster on loopback. All nodes are killed on drop.
#[derive(Debug)]
pub struct NatsCluster {
    nodes: Vec<Node>,
    // Declared last so the processes are killed before their directories go.
    dir: TempDir,
}

impl NatsCluster {
    /// Starts `size` nodes (3 for a useful JetStream cluster) and waits until every node reports
    /// healthy, which includes an elected JetStream meta leader.
    pub fn start(size: usize) -> Self {
        assert!(size >= 1, "a cluster needs at least one node");
        // Ports are picked free and released before the servers bind them; a node that exits
        // early is usually a port taken in the meantime, so the whole cluster starts again.
        let mut last = String::new();
        for _ in 0..5 {
            match Self::try_start(size) {
                Ok(cluster) => return cluster,
                Err(e) => last = e,
            }
        }
        panic!("{last}");
    }

    fn try_start(size: usize) -> Result<Self, String> {
        let dir = tempfile::Builder::new()
            .prefix("funnel-nats-cluster-")
            .tempdir()
            .expect("create a temporary directory");
        let ports: Vec<(u16, u16, u16)> = (0..size)
            .map(|_| {
                (
                    process::free_port(),
                    process::free_port(),
                    process::free_port(),
                )
            })
            .collect();
        let mut nodes = Vec::with_capacity(size);
        for (i, &(port, cluster_port, monitor_port)) in ports.iter().enumerate() {
            let node_dir = dir.path().join(format!("node-{i}"));
            std::fs::create_dir_all(&node_dir)
                .unwrap_or_else(|e| panic!("create {}: {e}", node_dir.display()));
            let store_dir = node_dir.join("store");
            let routes: Vec<String> = ports
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, &(_, cp, _))| format!("nats://127.0.0.1:{cp}"))
                .collect();
            let mut args = vec![
                "-js".to_string(),
                "-a".to_string(),
                "127.0.0.1".to_string(),
                "-p".to_string(),
                port.to_string(),
                "-m".to_string(),
                monitor_port.to_string(),
                "-sd".to_string(),
                store_dir.display().to_string(),
                "-n".to_string(),
                format!("funnel-node-{i}"),
                "--cluster_name".to_string(),
                "funnel-test".to_string(),
                "--cluster".to_string(),
                format!("nats://127.0.0.1:{cluster_port}"),
            ];
            if !routes.is_empty() {
                args.push("--routes".to_string());
                args.push(routes.join(","));
            }
            let process = ServerProcess::new(args, monitor_port, node_dir.join("server.log"));
            nodes.push(Node {
                port,
                store_dir,
                process,
            });
        }
        for node in &mut nodes {
            node.process.spawn();
        }
        for node in &mut nodes {
            node.process.try_wait_ready()?;
        }
        Ok(Self { nodes, dir })
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Client URLs of all nodes, in node order.
    pub fn urls(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| format!("nats://127.0.0.1:{}", n.port))
            .collect()
    }

    /// All client URLs joined with commas, the form `funnel-store-nats` accepts as
    /// one server list.
    pub fn url_list(&self) -> String {
        self.urls().join(",")
    }

    pub fn store_dir(&self, i: usize) -> &Path {
        &self.nodes[i].store_dir
    }

    /// The temporary directory holding every node's store and log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The server name of node `i` (`funnel-node-<i>`), as JetStream reports leaders and peers.
    pub fn server_name(&self, i: usize) -> String {
        assert!(i < self.nodes.len(), "no node {i}");
        format!("funnel-node-{i}")
    }

    /// The node whose server name is `name` (e.g. a stream's leader from its cluster info).
    pub fn node_named(&self, name: &str) -> Option<usize> {
        (0..self.nodes.len()).find(|&i| self.server_name(i) == name)
    }

    /// Whether node `i`'s process is running.
    pub fn is_running(&mut self, i: usize) -> bool {
        self.nodes[i].process.is_running()
    }

    /// Kills node `i` with SIGKILL.
    pub fn kill(&mut self, i: usize) {
        self.nodes[i].process.kill();
    }

    /// Starts node `i` again on its ports and store directory and waits until it is healthy.
    pub fn restart(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        node.process.kill();
        node.process.spawn();
        node.process.wait_ready();
    }

    /// The tail of node `i`'s log, for diagnosing a failed test.
    pub fn log_tail(&self, i: usize) -> String {
        self.nodes[i].process.log_tail()
    }
}
