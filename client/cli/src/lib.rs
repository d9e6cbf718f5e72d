//! # cairn-cli: the `cairn` command
//!
//! The binary `cairn` (keys, put/get, the chain) is a thin layer of
//! argument parsing and progress bars over the `cairn-client` library. This
//! library half holds what its commands and tests drive directly:
//!
//! | module | holds |
//! |---|---|
//! | [`devnet`] | a local network of real `cairn-node` processes |
//! | [`mount`] | `cairn mount`: the namespace as a read-write FUSE file system |
//! | [`bench`] | `cairn bench`: MiB/s, peak memory and CPU s/GiB against a devnet |
//! | [`cpu`] | CPU seconds of processes and threads, for the bench |
//! | [`quickstart`] | the guided tour: devnet, store, lose nodes, read back |
//! | [`bar`] | progress bars (indicatif) as the library's progress reports |
//! | [`report`] | an error on one line, each cause said once |
//! | [`rss`] | peak memory of this process, for reports |
//!
//! The library `cairn-client` depends on none of this: clap, indicatif,
//! tracing-subscriber and the node crate (which the devnet needs for
//! genesis and node configs) stay here.

pub mod bar;
pub mod bench;
pub mod cpu;
pub mod devnet;
pub mod mount;
pub mod quickstart;
pub mod report;
pub mod rss;
