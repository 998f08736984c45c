//! Wire formats both halves use: what a client credential writes is what the server
//! scheme reads, from one definition. A scheme with a format of its own adds a module
//! here; `authn/<scheme>.rs` and `credentials/<scheme>.rs` both use it, and neither
//! imports the other.

pub(crate) mod basic;
pub(crate) mod bearer;
pub(crate) mod hmac;
