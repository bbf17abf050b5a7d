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
