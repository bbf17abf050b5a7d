//! The README's first screen gives exactly two set-up commands, and CI runs the test one.

use std::path::Path;

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// The shell commands in the first fenced block of the README's first 40 lines.
fn first_screen_commands() -> Vec<String> {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README.md");
    let first_screen: Vec<&str> = readme.lines().take(40).collect();
    let start = first_screen
        .iter()
        .position(|l| l.starts_with("```"))
        .expect("a code block on the first screen");
    first_screen[start + 1..]
        .iter()
        .take_while(|l| !l.starts_with("```"))
        .map(|l| l.trim())
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect()
}

#[test]
fn readme_first_screen_has_exactly_two_setup_commands() {
    let commands = first_screen_commands();
    assert_eq!(commands.len(), 2, "{commands:?}");
}

#[test]
fn ci_runs_the_readme_test_command() {
    let commands = first_screen_commands();
    let test_command = commands
        .iter()
        .find(|c| c.contains("test"))
        .expect("a test command");
    let ci = std::fs::read_to_string(root().join(".ci/run")).expect(".ci/run");
    assert!(
        ci.lines().any(|l| l.trim() == test_command.trim()),
        ".ci/run must run `{test_command}`"
    );
}
