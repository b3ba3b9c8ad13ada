//! Integration tests: the real server on port 0, simulated buyers on loopback, real HTTP.

mod auth;
mod browser;
mod crash;
mod delivery;
mod duplicates;
mod errors;
mod gates;
mod helpers;
mod lifecycle;
mod limits;
mod logs;
mod ping;
mod portal;
mod post;
mod reload;
mod returns;
mod shedding;
mod statements;
mod web;
mod web_pages;
