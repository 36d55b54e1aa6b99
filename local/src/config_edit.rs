//! PLACEHOLDER (lead): replaced entirely by the config-edit helper.
