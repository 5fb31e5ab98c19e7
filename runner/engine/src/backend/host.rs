//! Host backend (placeholder)
