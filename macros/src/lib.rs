//! The `#[memoize]` attribute of cacher; use it through `cacher::memoize`.
//!
//! ```ignore
//! #[cacher::memoize(cache = CACHE, ignore(client), version = 2)]
//! fn fetch_from_api(client: &Client, endpoint: &str, params: &Params) -> Result<Response, Error> {
//!     client.get(endpoint, params)
//! }
//! ```
//!
//! Options:
//! - `cache = EXPR` (required): a `Cache`, `&Cache`, `Arc<Cache>` or `LazyLock<Cache>`;
//!   may use `self` in methods (`cache = self.cache`).
//! - `ignore(a, b)`: arguments left out of the key.
//! - `fields(x, y)`: for methods, the fields of `self` that belong in the key (the rest of
//!   `self` is ignored; without `fields`, `self` is not part of the key at all).
//! - `key = EXPR`: a custom key, any `Serialize` expression of the arguments.
//! - `version = N` (default 1), `namespace = "name"` (default: the function's name).
//! - `depends_on = EXPR`: evaluated at every call; its value joins the key.
//! - `ttl = EXPR`: a `Duration` for values this function stores.
//! - `result` / `always`: cache only `Ok` values / every value. Without either, a return type
//!   whose last path segment is `Result` (`Result<T, E>`, `io::Result<T>`) caches only `Ok`;
//!   name a `Result` alias with another name (`type ApiResult<T> = ..`) with `result`.
//!
//! The default namespace is the function's name: two memoized functions of the same name
//! sharing one cache (methods of different types, functions in different modules) must be
//! given distinct `namespace = ".."`s. Generic functions need a `key` or `namespace` that
//! tells their instantiations apart.
//!
//! A function returning `Result<T, E>` caches only `Ok` values. The attribute also writes a
//! sibling `NAME_with(call: cacher::Call, args...) -> cacher::Result<RET>` for per-call control
//! (bypass, refresh, cache-only, TTL) that reports cache errors.

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{format_ident, quote};
use syn::{
    parse_macro_input, spanned::Spanned, Expr, FnArg, Ident, ItemFn, LitInt, LitStr, Pat,
    ReturnType, Type,
};

#[derive(Default)]
struct Options {
    cache: Option<Expr>,
    ignore: Vec<Ident>,
    fields: Vec<Ident>,
    key: Option<Expr>,
    version: Option<LitInt>,
    namespace: Option<LitStr>,
    depends_on: Vec<Expr>,
    ttl: Option<Expr>,
    /// `Some(true)`: cache only `Ok` (the `result` flag); `Some(false)`: cache every value
    /// (the `always` flag); `None`: decided from the return type's name.
    ok_only: Option<bool>,
}

/// Memoizes a function or method through a `cacher::Cache`. See the crate docs for options.
#[proc_macro_attribute]
pub fn memoize(attr: TokenStream, item: TokenStream) -> TokenStream {
    let mut opts = Options::default();
    let parser = syn::meta::parser(|meta| {
        let p = &meta.path;
        if p.is_ident("cache") {
            opts.cache = Some(meta.value()?.parse()?);
        } else if p.is_ident("key") {
            opts.key = Some(meta.value()?.parse()?);
        } else if p.is_ident("version") {
            opts.version = Some(meta.value()?.parse()?);
        } else if p.is_ident("namespace") {
            opts.namespace = Some(meta.value()?.parse()?);
        } else if p.is_ident("depends_on") {
            opts.depends_on.push(meta.value()?.parse()?);
        } else if p.is_ident("ttl") {
            opts.ttl = Some(meta.value()?.parse()?);
        } else if p.is_ident("result") {
            opts.ok_only = Some(true);
        } else if p.is_ident("always") {
            opts.ok_only = Some(false);
        } else if p.is_ident("ignore") {
            meta.parse_nested_meta(|inner| {
                opts.ignore.push(inner.path.require_ident()?.clone());
                Ok(())
            })?;
        } else if p.is_ident("fields") {
            meta.parse_nested_meta(|inner| {
                opts.fields.push(inner.path.require_ident()?.clone());
                Ok(())
            })?;
        } else {
            return Err(meta.error(
                "unknown memoize option; expected cache, ignore, fields, key, version, namespace, depends_on, ttl, result or always",
            ));
        }
        Ok(())
    });
    parse_macro_input!(attr with parser);
    let func = parse_macro_input!(item as ItemFn);
    match expand(opts, func) {
        Ok(ts) => ts.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

fn expand(opts: Options, func: ItemFn) -> syn::Result<TokenStream2> {
    let cache = opts.cache.clone().ok_or_else(|| {
        syn::Error::new(
            Span::call_site(),
            "memoize needs `cache = ..`: the Cache to store results in",
        )
    })?;
    if func.sig.asyncness.is_some() {
        return Err(syn::Error::new(
            func.sig.asyncness.span(),
            "memoize does not support async fn yet",
        ));
    }
    let mut has_self = false;
    let mut arg_names: Vec<Ident> = Vec::new();
    for input in &func.sig.inputs {
        match input {
            FnArg::Receiver(_) => has_self = true,
            FnArg::Typed(pt) => match &*pt.pat {
                Pat::Ident(pi) => arg_names.push(pi.ident.clone()),
                other => {
                    return Err(syn::Error::new(
                        other.span(),
                        "memoize needs plain argument names (no patterns) to build the key",
                    ))
                }
            },
        }
    }
    for ig in &opts.ignore {
        if !arg_names.contains(ig) {
            return Err(syn::Error::new(
                ig.span(),
                format!("`{ig}` is not an argument of this function"),
            ));
        }
    }
    if !opts.fields.is_empty() && !has_self {
        return Err(syn::Error::new(
            opts.fields[0].span(),
            "`fields(..)` names fields of `self`, but this function has no `self`",
        ));
    }

    let name = &func.sig.ident;
    let namespace = opts
        .namespace
        .clone()
        .unwrap_or_else(|| LitStr::new(&name.to_string(), name.span()));
    let version = match &opts.version {
        Some(v) => quote!(#v),
        None => quote!(1u32),
    };
    let key_expr = match &opts.key {
        Some(k) => quote!(#k),
        None => {
            let kept: Vec<&Ident> = arg_names
                .iter()
                .filter(|a| !opts.ignore.contains(a))
                .collect();
            let mut parts: Vec<TokenStream2> =
                opts.fields.iter().map(|f| quote!(&self.#f)).collect();
            parts.extend(kept.iter().map(|a| quote!(&#a)));
            // Mirror the wrapper style: a function of one argument hashes it bare, like
            // `.wrap(|x| ..)`; several arguments hash as the tuple minus the ignored ones,
            // like `.wrap(|(a, b)| ..)` with `.ignore(..)`. Same namespace, version and
            // arguments then give the same key in both styles.
            if opts.fields.len() + arg_names.len() == 1 && parts.len() == 1 {
                parts.remove(0)
            } else {
                quote!(( #( #parts, )* ))
            }
        }
    };
    let deps = opts.depends_on.iter();
    let deps = quote!([ #( ::cacher::__private::canonical_bytes(&(#deps)), )* ]);
    let ttl = match &opts.ttl {
        Some(t) => quote!(::core::option::Option::Some(#t)),
        None => quote!(::core::option::Option::None),
    };
    let ret_ty: Type = match &func.sig.output {
        ReturnType::Default => syn::parse_quote!(()),
        ReturnType::Type(_, t) => (**t).clone(),
    };
    let policy = if opts.ok_only.unwrap_or_else(|| returns_result(&ret_ty)) {
        quote!(::cacher::memo::OkOnly)
    } else {
        quote!(::cacher::memo::Always)
    };

    let attrs = &func.attrs;
    // `cfg`, `allow` & co. apply to the sibling too; docs stay on the original.
    let sibling_attrs: Vec<&syn::Attribute> = func
        .attrs
        .iter()
        .filter(|a| !a.path().is_ident("doc"))
        .collect();
    let vis = &func.vis;
    let sig = &func.sig;
    let body = &func.block;

    let mut with_sig = func.sig.clone();
    with_sig.ident = format_ident!("{}_with", name);
    let call_arg: FnArg = syn::parse_quote!(__cacher_call: ::cacher::Call);
    let at = usize::from(has_self);
    with_sig.inputs.insert(at, call_arg);
    with_sig.output = syn::parse_quote!(-> ::cacher::Result<#ret_ty>);
    let with_doc = format!(
        "[`{name}`] with per-call control ([`cacher::Call`]): bypass, refresh, cache-only, TTL. Reports cache errors."
    );

    let prelude = quote! {
        // A clone (one Arc) rather than a borrow, so the body may take `&mut self` or `self`.
        let __cacher_cache: ::cacher::Cache =
            ::cacher::__private::CacheRef::cache_ref(&(#cache)).clone();
        let __cacher_site = ::cacher::__private::Site::new(&__cacher_cache, #namespace, #version, #ttl);
        let __cacher_key = __cacher_site
            .key(::cacher::__private::canonical_bytes(&#key_expr), #deps)
            .map_err(::cacher::Error::from);
    };

    Ok(quote! {
        #(#attrs)*
        #vis #sig {
            #prelude
            __cacher_site.run::<#policy, #ret_ty, _>(
                __cacher_key, ::cacher::Call::default(), false,
                move || -> #ret_ty #body, ::cacher::__private::call_once,
            ).unwrap_or_else(|(__cacher_f, _)| ::cacher::__private::call_once(__cacher_f))
        }

        #(#sibling_attrs)*
        #[doc = #with_doc]
        #[allow(dead_code)]
        #vis #with_sig {
            #prelude
            __cacher_site.run::<#policy, #ret_ty, _>(
                __cacher_key, __cacher_call, true,
                move || -> #ret_ty #body, ::cacher::__private::call_once,
            ).map_err(|(_, __cacher_e)| __cacher_e)
        }
    })
}

fn returns_result(ty: &Type) -> bool {
    match ty {
        Type::Path(tp) => tp.path.segments.last().is_some_and(|s| s.ident == "Result"),
        _ => false,
    }
}
