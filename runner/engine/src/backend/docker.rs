//! Docker backend (placeholder)
