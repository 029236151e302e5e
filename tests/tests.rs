//! edgeguard's integration tests: one binary, one module per area.

mod auth;
mod cli;
mod common;
mod decide;
mod process;
mod proxy;
mod rulebook;
