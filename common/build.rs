//! Rebuilds the crate when a migration is added or changed: `sqlx::migrate!` embeds the
//! folder at compile time, and stable Rust cannot tell cargo that it read it.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
