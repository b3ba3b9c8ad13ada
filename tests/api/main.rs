//! Integration tests: the real server on port 0, simulated buyers on loopback, real HTTP.

mod auth;
mod cluster;
mod cluster_mode;
mod contract;
mod crash;
mod delivery;
mod duplicates;
mod errors;
mod gates;
mod helpers;
mod lifecycle;
mod limits;
mod logs;
mod notices;
mod openapi;
mod ping;
mod portal;
mod post;
mod ranking;
mod reload;
mod returns;
mod shedding;
mod statements;
mod wire_errors;
