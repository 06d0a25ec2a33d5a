//! Where the test broker and database are, from the variables `cargo xtask test` sets.

use std::path::PathBuf;

fn required(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: the integration tests need the broker and database that \
             `cargo xtask test` starts (run the suite with that command)"
        )
    })
}

pub fn amqp_url() -> String {
    required("HERALD_TEST_AMQP_URL")
}

pub fn management_url() -> String {
    required("HERALD_TEST_MANAGEMENT_URL")
}

pub fn database_url() -> String {
    required("HERALD_TEST_DATABASE_URL")
}

/// Where the service binaries were built.
pub fn bin_dir() -> PathBuf {
    PathBuf::from(required("HERALD_TEST_BIN_DIR"))
}

/// The environment rabbitmqctl needs to reach the test node.
pub fn rabbitmqctl_env() -> Vec<(String, String)> {
    required("HERALD_TEST_RABBITMQCTL_ENV")
        .split(';')
        .filter_map(|pair| {
            pair.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
        })
        .collect()
}

pub fn rabbitmq_node() -> String {
    required("HERALD_TEST_RABBITMQ_NODE")
}
