//! `#[memoize(batch)]`: a function of a `Vec` of inputs returning one result per input. The
//! generated body looks every input's key up at once and runs the original body once, with
//! the batch argument bound to only the inputs that missed.

use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{format_ident, quote};
use syn::{Block, FnArg, GenericArgument, Ident, Pat, PathArguments, Signature, Type, Visibility};

/// What a batch function looks like: its batch argument and the type of one result.
pub struct Shape {
    /// The batch argument's name and pattern (`texts`, `mut texts`).
    name: Ident,
    pat: Pat,
    /// One result: `R` of `-> Vec<R>`.
    pub value: Type,
}

/// The pieces of the ordinary expansion a batch function reuses.
pub struct Parts<'a> {
    pub attrs: &'a [syn::Attribute],
    pub sibling_attrs: &'a [&'a syn::Attribute],
    pub vis: &'a Visibility,
    pub sig: &'a Signature,
    pub body: &'a Block,
    pub site: &'a TokenStream2,
    pub key_expr: &'a TokenStream2,
    pub deps: &'a TokenStream2,
    pub policy: &'a TokenStream2,
    pub ret_ty: &'a Type,
}

const SHAPE: &str = "memoize(batch) needs a function of one `Vec<T>` argument (besides `self` \
    and ignored arguments) returning `Vec<R>`, one result per input in input order";

impl Shape {
    pub fn of(span: Span, sig: &Signature, ignore: &[Ident], ret: &Type) -> syn::Result<Self> {
        if let Some(a) = &sig.asyncness {
            return Err(syn::Error::new(
                a.span,
                "memoize(batch) is not available on an async fn yet; use the wrapper's \
                 call_many from async code",
            ));
        }
        let mut keyed = sig.inputs.iter().filter_map(|input| match input {
            FnArg::Typed(pt) => match &*pt.pat {
                Pat::Ident(pi) if ignore.contains(&pi.ident) => None,
                _ => Some(pt),
            },
            FnArg::Receiver(_) => None,
        });
        let (Some(arg), None) = (keyed.next(), keyed.next()) else {
            return Err(syn::Error::new(span, SHAPE));
        };
        let Pat::Ident(pi) = &*arg.pat else {
            return Err(syn::Error::new_spanned(&arg.pat, SHAPE));
        };
        if vec_element(&arg.ty).is_none() {
            return Err(syn::Error::new_spanned(&arg.ty, SHAPE));
        }
        let value = vec_element(ret).ok_or_else(|| syn::Error::new_spanned(ret, SHAPE))?;
        Ok(Shape {
            name: pi.ident.clone(),
            pat: (*arg.pat).clone(),
            value: value.clone(),
        })
    }
}

/// `T` of `Vec<T>`.
fn vec_element(ty: &Type) -> Option<&Type> {
    let Type::Path(tp) = ty else { return None };
    let last = tp.path.segments.last()?;
    if last.ident != "Vec" {
        return None;
    }
    let PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    match args.args.first()? {
        GenericArgument::Type(t) => Some(t),
        _ => None,
    }
}

pub fn expand(shape: Shape, p: Parts<'_>) -> TokenStream2 {
    let Parts {
        attrs,
        sibling_attrs,
        vis,
        sig,
        body,
        site,
        key_expr,
        deps,
        policy,
        ret_ty,
    } = p;
    let value = &shape.value;
    let name = &shape.name;
    let pat = &shape.pat;
    let fn_name = &sig.ident;
    // Inside the key closure the batch argument's name is one input, so the key expression
    // (the default one, or a custom `key = ..`) keys one input.
    let keys = quote! {
        let __cacher_keys: ::std::vec::Vec<::cacher::Result<::std::vec::Vec<u8>>> = #name
            .iter()
            .map(|#name| __cacher_site.key(::cacher::__private::canonical_bytes(&#key_expr), #deps))
            .collect();
    };

    let call_arg: FnArg = syn::parse_quote!(__cacher_call: ::cacher::Call);
    let at = usize::from(sig.receiver().is_some());
    let mut with_sig = sig.clone();
    with_sig.ident = format_ident!("{}_with", fn_name);
    with_sig.inputs.insert(at, call_arg);
    with_sig.output = syn::parse_quote!(-> ::cacher::Result<#ret_ty>);
    let mut status_sig = with_sig.clone();
    status_sig.ident = format_ident!("{}_with_status", fn_name);
    status_sig.output =
        syn::parse_quote!(-> ::cacher::Result<::std::vec::Vec<(#value, ::cacher::memo::Status)>>);
    let mut invalidate_sig = crate::expand::shared_receiver(sig);
    invalidate_sig.ident = format_ident!("{}_invalidate", fn_name);
    invalidate_sig.output = syn::parse_quote!(-> ::cacher::Result<u64>);
    let mut clear_sig = crate::expand::shared_receiver(sig);
    clear_sig.ident = format_ident!("{}_clear", fn_name);
    clear_sig.inputs = clear_sig
        .inputs
        .into_iter()
        .filter(|a| matches!(a, FnArg::Receiver(_)))
        .collect();
    clear_sig.output = syn::parse_quote!(-> ::cacher::Result<u64>);

    let with_doc = format!(
        "[`{fn_name}`] with per-call control ([`cacher::Call`]); reports cache errors, a failed \
         write and a wrong number of results ([`cacher::Error::BatchLength`]) included."
    );
    let status_doc = format!("[`{fn_name}_with`], and whether each value came from the cache.");
    let invalidate_doc = format!(
        "Removes the cached results of [`{fn_name}`] for these inputs; returns how many there were."
    );
    let clear_doc = format!(
        "Removes every cached result of [`{fn_name}`] (its namespace, all versions); returns how many there were."
    );
    let with_status_call = quote! {
        __cacher_site
            .call_many_with::<#policy, #value, _, ::std::convert::Infallible>(
                __cacher_keys,
                __cacher_call,
                #name,
                |#pat| ::core::result::Result::Ok((move || -> #ret_ty #body)()),
            )
            .map_err(::cacher::memo::BatchError::into_cache_error)
    };

    quote! {
        #(#attrs)*
        #vis #sig {
            #site
            #keys
            __cacher_site.call_many::<#policy, #value, _>(
                __cacher_keys, #name, |#pat| -> #ret_ty #body,
            )
        }

        #(#sibling_attrs)*
        #[doc = #with_doc]
        #[allow(dead_code, clippy::too_many_arguments)]
        #vis #with_sig {
            #site
            #keys
            #with_status_call.map(|__cacher_values| {
                __cacher_values.into_iter().map(|(__cacher_value, _)| __cacher_value).collect()
            })
        }

        #(#sibling_attrs)*
        #[doc = #status_doc]
        #[allow(dead_code, clippy::too_many_arguments)]
        #vis #status_sig {
            #site
            #keys
            #with_status_call
        }

        #(#sibling_attrs)*
        #[doc = #invalidate_doc]
        #[allow(dead_code, unused_variables, unused_mut)]
        #vis #invalidate_sig {
            #site
            #keys
            let mut __cacher_removed = 0u64;
            for __cacher_key in __cacher_keys {
                __cacher_removed += u64::from(__cacher_site.invalidate(__cacher_key)?);
            }
            ::core::result::Result::Ok(__cacher_removed)
        }

        #(#sibling_attrs)*
        #[doc = #clear_doc]
        #[allow(dead_code)]
        #vis #clear_sig {
            #site
            __cacher_site.clear()
        }
    }
}
