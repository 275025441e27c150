//! The code `#[memoize]` writes: the function through `cacher::__private::Site`, and its
//! siblings `NAME_with`, `NAME_with_status`, `NAME_invalidate`, `NAME_clear`.

use proc_macro2::{Span, TokenStream as TokenStream2, TokenTree};
use quote::{format_ident, quote};
use syn::{
    spanned::Spanned, FnArg, GenericParam, Ident, ItemFn, LitStr, Pat, ReturnType, Signature, Type,
};

use crate::options::{Options, SelfKey};

const SELF_CHOICES: &str = "memoize on a method must say how `self` joins the key: \
    `fields(a, b)` (those fields of `self`), `self` (the whole `self`, which must be \
    `Serialize`) or `skip_self` (`self` is not part of the key: every value of the type \
    shares the results); or give a custom `key = ..`";

pub fn expand(opts: Options, func: ItemFn) -> syn::Result<TokenStream2> {
    let cache = opts.cache.clone().ok_or_else(|| {
        syn::Error::new(
            Span::call_site(),
            "memoize needs `cache = ..`: the Cache to store results in",
        )
    })?;
    let is_async = func.sig.asyncness.is_some();
    let (has_self, arg_names) = arguments(&func.sig)?;
    check_self_choice(&opts, has_self, &func.sig)?;
    for ig in &opts.ignore {
        if !arg_names.contains(ig) {
            return Err(syn::Error::new(
                ig.span(),
                format!("`{ig}` is not an argument of this function"),
            ));
        }
    }

    let name = &func.sig.ident;
    let namespace = namespace_expr(&opts, &func.sig, has_self);
    let version = match &opts.version {
        Some(v) => quote!(#v),
        None => quote!(1u32),
    };
    let key_expr = key_expr(&opts, &arg_names);
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
    let batch = match opts.batch {
        Some(span) => Some(crate::batch::Shape::of(
            span,
            &func.sig,
            &opts.ignore,
            &ret_ty,
        )?),
        None => None,
    };
    // What is stored: the return type, or one element of a batch function's `Vec`.
    let value_ty = batch.as_ref().map_or(&ret_ty, |b| &b.value);
    // The type as written: stable across compilers, unlike `type_name`.
    let ret_text = LitStr::new(&quote!(#value_ty).to_string(), value_ty.span());
    let policy = if opts.ok_only.unwrap_or_else(|| returns_result(value_ty)) {
        quote!(::cacher::memo::OkOnly)
    } else {
        quote!(::cacher::memo::Always)
    };

    let attrs = &func.attrs;
    // `cfg`, `allow` & co. apply to the siblings too; docs stay on the original.
    let sibling_attrs: Vec<&syn::Attribute> = func
        .attrs
        .iter()
        .filter(|a| !a.path().is_ident("doc"))
        .collect();
    let vis = &func.vis;
    let sig = &func.sig;
    let body = &func.block;

    let site = quote! {
        // A clone (one Arc) rather than a borrow, so the body may take `&mut self` or `self`.
        let __cacher_cache: ::cacher::Cache =
            ::cacher::__private::CacheRef::cache_ref(&(#cache)).clone();
        let __cacher_ns: ::std::borrow::Cow<'static, str> = #namespace;
        let __cacher_site = {
            static __CACHER_FINGERPRINT: ::std::sync::OnceLock<u64> = ::std::sync::OnceLock::new();
            // The namespace's counters, kept from the first call: no lookup per call.
            static __CACHER_STATS: ::cacher::__private::SiteStats =
                ::cacher::__private::SiteStats::new();
            let fingerprint = ::cacher::__private::fingerprint(&__CACHER_FINGERPRINT, #ret_text);
            ::cacher::__private::Site::at(
                &__CACHER_STATS, &__cacher_cache, &__cacher_ns, #version, #ttl, fingerprint,
            )
        };
    };
    if let Some(shape) = batch {
        let parts = crate::batch::Parts {
            attrs,
            sibling_attrs: &sibling_attrs,
            vis,
            sig,
            body,
            site: &site,
            key_expr: &key_expr,
            deps: &deps,
            policy: &policy,
            ret_ty: &ret_ty,
        };
        return Ok(crate::batch::expand(shape, parts));
    }
    let key = quote! {
        let __cacher_key = __cacher_site
            .key(::cacher::__private::canonical_bytes(&#key_expr), #deps);
    };
    // A sync call builds the same key in a buffer on its stack (no `Vec` for the encoded
    // arguments or the key); an async call's future and `NAME_invalidate` keep `Vec` keys.
    let call_key = if is_async {
        key.clone()
    } else {
        quote! {
            let mut __cacher_key_buf = ::cacher::__private::KeyBuf::default();
            let __cacher_key =
                __cacher_site.key_in_place(&(#key_expr), #deps, &mut __cacher_key_buf);
        }
    };

    let call_arg: FnArg = syn::parse_quote!(__cacher_call: ::cacher::Call);
    let at = usize::from(has_self);
    let mut with_sig = sig.clone();
    with_sig.ident = format_ident!("{}_with", name);
    with_sig.inputs.insert(at, call_arg.clone());
    with_sig.output = syn::parse_quote!(-> ::cacher::Result<#ret_ty>);
    let mut status_sig = with_sig.clone();
    status_sig.ident = format_ident!("{}_with_status", name);
    status_sig.output = syn::parse_quote!(-> ::cacher::Result<(#ret_ty, ::cacher::memo::Status)>);
    let mut invalidate_sig = shared_receiver(sig);
    invalidate_sig.ident = format_ident!("{}_invalidate", name);
    invalidate_sig.output = syn::parse_quote!(-> ::cacher::Result<bool>);
    let mut clear_sig = shared_receiver(sig);
    clear_sig.ident = format_ident!("{}_clear", name);
    clear_sig.inputs = clear_sig
        .inputs
        .into_iter()
        .filter(|a| matches!(a, FnArg::Receiver(_)))
        .collect();
    clear_sig.output = syn::parse_quote!(-> ::cacher::Result<u64>);

    let with_doc = format!(
        "[`{name}`] with per-call control ([`cacher::Call`]): bypass, refresh, cache-only, TTL. \
         Reports cache errors, a failed write included."
    );
    let status_doc = format!(
        "[`{name}_with`], and whether the value came from the cache ([`cacher::memo::Status`])."
    );
    let invalidate_doc =
        format!("Removes the cached result of [`{name}`] for these arguments; returns whether there was one.");
    let clear_doc = format!(
        "Removes every cached result of [`{name}`] (its namespace, all versions); returns how many there were."
    );

    // The three calling forms: plain, with per-call control, with status.
    let (plain_call, with_call) = if is_async {
        (
            quote! {
                __cacher_site.call_async::<#policy, #ret_ty, _, _>(
                    __cacher_key, move || async move #body, ::core::option::Option::None,
                ).await
            },
            quote! {
                __cacher_site.call_with_async::<#policy, #ret_ty, _, _>(
                    __cacher_key, __cacher_call, move || async move #body,
                    ::core::option::Option::None,
                ).await
            },
        )
    } else {
        (
            quote! {
                __cacher_site.call::<#policy, #ret_ty, _, _>(
                    __cacher_key, move || -> #ret_ty #body, &::cacher::__private::call_once,
                )
            },
            quote! {
                __cacher_site.call_with::<#policy, #ret_ty, _, _>(
                    __cacher_key, __cacher_call, move || -> #ret_ty #body,
                    &::cacher::__private::call_once,
                )
            },
        )
    };

    Ok(quote! {
        #(#attrs)*
        #vis #sig {
            #site
            #call_key
            #plain_call
        }

        #(#sibling_attrs)*
        #[doc = #with_doc]
        #[allow(dead_code, clippy::too_many_arguments)]
        #vis #with_sig {
            #site
            #call_key
            #with_call.map(|(__cacher_value, _)| __cacher_value)
        }

        #(#sibling_attrs)*
        #[doc = #status_doc]
        #[allow(dead_code, clippy::too_many_arguments)]
        #vis #status_sig {
            #site
            #call_key
            #with_call
        }

        #(#sibling_attrs)*
        #[doc = #invalidate_doc]
        #[allow(dead_code, unused_variables, unused_mut)]
        #vis #invalidate_sig {
            #site
            #key
            __cacher_site.invalidate(__cacher_key)
        }

        #(#sibling_attrs)*
        #[doc = #clear_doc]
        #[allow(dead_code)]
        #vis #clear_sig {
            #site
            __cacher_site.clear()
        }
    })
}

/// Whether the function takes `self`, and the names of its other arguments.
fn arguments(sig: &Signature) -> syn::Result<(bool, Vec<Ident>)> {
    let mut has_self = false;
    let mut names = Vec::new();
    for input in &sig.inputs {
        match input {
            FnArg::Receiver(_) => has_self = true,
            FnArg::Typed(pt) => {
                if mentions(quote!(#pt), "impl") {
                    return Err(syn::Error::new(
                        pt.ty.span(),
                        "memoize cannot name an `impl Trait` argument's type, which must join \
                         the key: use a type parameter (`fn f<T: Serialize>(x: T)`)",
                    ));
                }
                match &*pt.pat {
                    Pat::Ident(pi) => names.push(pi.ident.clone()),
                    other => {
                        return Err(syn::Error::new(
                            other.span(),
                            "memoize needs plain argument names (no patterns) to build the key",
                        ))
                    }
                }
            }
        }
    }
    Ok((has_self, names))
}

fn check_self_choice(opts: &Options, has_self: bool, sig: &Signature) -> syn::Result<()> {
    let said = !matches!(opts.self_key, SelfKey::Unset);
    if !has_self && said {
        let span = opts.self_key_span.unwrap_or_else(Span::call_site);
        return Err(syn::Error::new(
            span,
            "`fields(..)`, `self` and `skip_self` say how `self` joins the key, but this \
             function has no `self`",
        ));
    }
    if has_self && !said && opts.key.is_none() {
        return Err(syn::Error::new(sig.ident.span(), SELF_CHOICES));
    }
    Ok(())
}

/// The namespace: the one given, or the function's path (module path, or the `Self` type for
/// methods and functions that mention `Self`), then the type and const parameters of a
/// generic function, so its instantiations never share keys.
fn namespace_expr(opts: &Options, sig: &Signature, has_self: bool) -> TokenStream2 {
    let name = sig.ident.to_string();
    // `dynamic`: the base is a `String` made at each call.
    let (base, dynamic) = match &opts.namespace {
        Some(ns) => (quote!(#ns), false),
        None if has_self || mentions(quote!(#sig), "Self") => (
            quote!(::std::format!("{}::{}", ::std::any::type_name::<Self>(), #name)),
            true,
        ),
        None => (
            quote!(::core::concat!(::core::module_path!(), "::", #name)),
            false,
        ),
    };
    let params: Vec<TokenStream2> = sig
        .generics
        .params
        .iter()
        .filter_map(|p| match p {
            GenericParam::Type(t) => {
                let t = &t.ident;
                Some(quote!(::std::string::String::from(::std::any::type_name::<#t>())))
            }
            GenericParam::Const(c) => {
                let c = &c.ident;
                Some(quote!(::std::string::ToString::to_string(&#c)))
            }
            GenericParam::Lifetime(_) => None,
        })
        .collect();
    match (params.is_empty(), dynamic) {
        (true, false) => quote!(::std::borrow::Cow::Borrowed(#base)),
        (true, true) => quote!(::std::borrow::Cow::Owned(#base)),
        (false, _) => quote!(::std::borrow::Cow::Owned(::cacher::__private::with_type_params(
            &#base, &[ #( #params ),* ],
        ))),
    }
}

/// What the key hashes: the custom `key`, else the chosen part of `self` and the arguments
/// not ignored.
fn key_expr(opts: &Options, arg_names: &[Ident]) -> TokenStream2 {
    if let Some(k) = &opts.key {
        return quote!(#k);
    }
    let mut parts: Vec<TokenStream2> = match &opts.self_key {
        SelfKey::Fields(fields) => fields.iter().map(|f| quote!(&self.#f)).collect(),
        SelfKey::Whole => vec![quote!(&self)],
        SelfKey::Unset | SelfKey::Skip => Vec::new(),
    };
    let self_parts = parts.len();
    parts.extend(
        arg_names
            .iter()
            .filter(|a| !opts.ignore.contains(a))
            .map(|a| quote!(&#a)),
    );
    // Mirror the wrapper style: a function of one argument hashes it bare, like
    // `.wrap(|x| ..)`; several arguments hash as the tuple minus the ignored ones, like
    // `.wrap(|(a, b)| ..)` with `.ignore(..)`. Same namespace, version and arguments then
    // give the same key in both styles.
    if self_parts + arg_names.len() == 1 && parts.len() == 1 {
        parts.remove(0)
    } else {
        quote!(( #( #parts, )* ))
    }
}

/// `sig` with its receiver, if any, turned into `&self` (invalidating or clearing needs to
/// read `self`, never to take it), and not async.
pub(crate) fn shared_receiver(sig: &Signature) -> Signature {
    let mut sig = sig.clone();
    // Removing needs no await, whether or not the function is async.
    sig.asyncness = None;
    for input in sig.inputs.iter_mut() {
        if let FnArg::Receiver(_) = input {
            *input = syn::parse_quote!(&self);
        }
    }
    sig
}

/// Whether the tokens contain the identifier or keyword `word`.
fn mentions(ts: TokenStream2, word: &str) -> bool {
    ts.into_iter().any(|tt| match tt {
        TokenTree::Ident(i) => i == word,
        TokenTree::Group(g) => mentions(g.stream(), word),
        _ => false,
    })
}

fn returns_result(ty: &Type) -> bool {
    match ty {
        Type::Path(tp) => tp.path.segments.last().is_some_and(|s| s.ident == "Result"),
        _ => false,
    }
}
