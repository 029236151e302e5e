//! edgeguard's integration tests: one binary, one module per area.

mod auth;
mod cli;
mod client_address;
mod common;
mod corpus;
mod decide;
mod edge;
mod files;
mod framing;
mod process;
mod proxy;
mod rulebook;
mod tls;
