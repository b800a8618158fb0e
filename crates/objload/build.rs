//! Links this package's test and bench executables with a GNU build-id: the loader checks the running
//! executable against its file through that note, and rust-lld omits it unless asked.
fn main() {
    println!("cargo:rustc-link-arg=-Wl,--build-id");
    println!("cargo:rerun-if-changed=build.rs");
}
