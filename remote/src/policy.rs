//! Permission-first access: which paths a command touches, the roots a workspace approved, and
//! the pending permission requests.

pub mod analyze;
pub mod approvals;
pub mod permissions;

pub use analyze::{Access, AccessKind, Analysis, analyze, is_within, resolve};
