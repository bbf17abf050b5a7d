//! End-to-end checks of what a newcomer meets first: the README's set-up commands and CI.

mod readme;
