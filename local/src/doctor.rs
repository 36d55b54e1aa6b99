//! PLACEHOLDER (lead): doctor checks.
