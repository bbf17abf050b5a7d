//! Running the freshly built `funnel` binary against a store, in a working directory.

#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output, Stdio};

/// `funnel --store STORE ARGS…` in `dir`, with nothing on standard input.
pub fn funnel(store: &str, args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_funnel"))
        .arg("--store")
        .arg(store)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("run funnel")
}

/// The standard output of a run that must succeed.
pub fn ok(store: &str, args: &[&str], dir: &Path) -> String {
    let out = funnel(store, args, dir);
    assert!(
        out.status.success(),
        "funnel {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// The standard error of a run that must fail.
pub fn refused(store: &str, args: &[&str], dir: &Path) -> String {
    let out = funnel(store, args, dir);
    assert!(!out.status.success(), "funnel {args:?} should have failed");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A token for member of staff `staff` (`funnel staff token`). On a JetStream cluster that has
/// just formed its streams may still be electing leaders: the command then fails with "nats store
/// unavailable" before it writes anything, and is tried again (for up to a minute).
pub fn staff_token(store: &str, dir: &Path, staff: &str) -> String {
    let give_up = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let out = loop {
        let out = funnel(store, &["staff", "token", staff], dir);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.success()
            || !stderr.contains("nats store unavailable")
            || std::time::Instant::now() > give_up
        {
            break out;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    };
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    text.lines()
        .find_map(|l| l.strip_prefix("token:").map(|t| t.trim().to_string()))
        .unwrap_or_else(|| panic!("no token in {text}"))
}
