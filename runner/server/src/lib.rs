//! `gantry serve`: the server config, the SQL run store, forge webhooks and GitHub's Actions
//! REST API. Webhooks become queued runs (jobs from the plan crate); the API reads and acts
//! on them with GitHub's paths and JSON shapes.

pub mod api;
pub mod api_deploy;
pub mod api_json;
pub mod api_reports;
pub mod concurrency;
pub mod config;
mod config_read;
pub mod exec_metrics;
pub mod gate;
pub mod hooks;
pub mod launcher;
pub mod limits;
pub mod mirror;
pub mod mirror_pack;
mod planned;
pub mod processing;
pub mod server;
pub mod state;
pub mod store;
pub mod store_deliveries;
pub mod store_exec;
pub mod store_reports;
pub mod store_reviews;
pub mod store_runs;
pub mod store_session;
pub mod trigger;
pub mod ui;
pub mod workspace;

pub use config::{ConfigError, ServerConfig};
pub use server::{ServeError, ServeOptions, load_config, serve, serve_with};
pub use store::{Store, StoreError};
