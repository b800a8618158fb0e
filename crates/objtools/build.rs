//! Links objrun and objsh with a GNU build-id (objload checks the running executable against its file
//! through it; rust-lld omits it unless asked).
fn main() {
    println!("cargo:rustc-link-arg=-Wl,--build-id");
    println!("cargo:rerun-if-changed=build.rs");
}
