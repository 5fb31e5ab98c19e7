//! Reporters: consumers of the run's event stream. They run on their own threads, read a
//! [`crate::events::Subscription`] to its end, and never call back into the engine. The
//! terminal reporter lives in the CLI; the run store is [`crate::store`].

pub mod json;
