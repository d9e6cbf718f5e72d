//! The account key file (placeholder until the keys module lands).
