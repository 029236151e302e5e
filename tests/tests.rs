//! edgeguard's integration tests: one binary, one module per area.

mod admin;
mod auth;
mod cli;
mod client_address;
mod common;
mod connection;
mod corpus;
mod decide;
mod edge;
mod files;
mod framing;
mod process;
mod proxy;
mod reload;
mod rulebook;
mod tls;
mod upstream;
mod upstream_tls;
