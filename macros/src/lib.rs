//! The `#[memoize]` attribute of cacher. Use it as `cacher::memoize`, where its options are
//! documented.

use proc_macro::TokenStream;
use syn::{parse_macro_input, ItemFn};

mod batch;
mod expand;
mod options;

/// Memoizes a function or method through a `cacher::Cache`: the options, the default
/// namespace, the type fingerprint and the sibling functions are documented on
/// `cacher::memoize`.
#[proc_macro_attribute]
pub fn memoize(attr: TokenStream, item: TokenStream) -> TokenStream {
    let mut opts = options::Options::default();
    let parser = syn::meta::parser(|meta| opts.parse_one(meta));
    parse_macro_input!(attr with parser);
    let func = parse_macro_input!(item as ItemFn);
    match expand::expand(opts, func) {
        Ok(ts) => ts.into(),
        Err(e) => e.to_compile_error().into(),
    }
}
