//! Unit tests for the JWT authenticator (written by a helper).
