//! A local network of real `cairn-node` processes (placeholder until the devnet module lands).
