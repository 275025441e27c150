//! The options of `#[memoize(..)]`, parsed.

use syn::{Expr, Ident, LitInt, LitStr};

/// How `self` joins a method's key.
pub enum SelfKey {
    /// Not said: an error on a method, the only choice on a free function.
    Unset,
    /// `fields(a, b)`: those fields of `self`.
    Fields(Vec<Ident>),
    /// `self`: the whole `self`, which must be `Serialize`.
    Whole,
    /// `skip_self`: not at all; every value of the type shares results.
    Skip,
}

pub struct Options {
    pub cache: Option<Expr>,
    pub ignore: Vec<Ident>,
    pub self_key: SelfKey,
    /// Where the `self` choice was made, for errors.
    pub self_key_span: Option<proc_macro2::Span>,
    pub key: Option<Expr>,
    pub version: Option<LitInt>,
    pub namespace: Option<LitStr>,
    pub depends_on: Vec<Expr>,
    pub ttl: Option<Expr>,
    /// `Some(true)`: cache only `Ok` (the `result` flag); `Some(false)`: cache every value
    /// (the `always` flag); `None`: decided from the return type's name.
    pub ok_only: Option<bool>,
    /// `batch`: the function takes a `Vec` of inputs and returns one result per input; where
    /// it was said, for errors.
    pub batch: Option<proc_macro2::Span>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            cache: None,
            ignore: Vec::new(),
            self_key: SelfKey::Unset,
            self_key_span: None,
            key: None,
            version: None,
            namespace: None,
            depends_on: Vec::new(),
            ttl: None,
            ok_only: None,
            batch: None,
        }
    }
}

impl Options {
    /// Parses one `name`, `name = value` or `name(..)` of the attribute.
    pub fn parse_one(&mut self, meta: syn::meta::ParseNestedMeta<'_>) -> syn::Result<()> {
        let p = &meta.path;
        if p.is_ident("cache") {
            self.cache = Some(meta.value()?.parse()?);
        } else if p.is_ident("key") {
            self.key = Some(meta.value()?.parse()?);
        } else if p.is_ident("version") {
            self.version = Some(meta.value()?.parse()?);
        } else if p.is_ident("namespace") {
            self.namespace = Some(meta.value()?.parse()?);
        } else if p.is_ident("depends_on") {
            self.depends_on.push(meta.value()?.parse()?);
        } else if p.is_ident("ttl") {
            self.ttl = Some(meta.value()?.parse()?);
        } else if p.is_ident("result") {
            self.ok_only = Some(true);
        } else if p.is_ident("always") {
            self.ok_only = Some(false);
        } else if p.is_ident("batch") {
            self.batch = Some(syn::spanned::Spanned::span(p));
        } else if p.is_ident("ignore") {
            meta.parse_nested_meta(|inner| {
                self.ignore.push(inner.path.require_ident()?.clone());
                Ok(())
            })?;
        } else if p.is_ident("fields") {
            let mut fields = Vec::new();
            meta.parse_nested_meta(|inner| {
                fields.push(inner.path.require_ident()?.clone());
                Ok(())
            })?;
            self.set_self_key(&meta, SelfKey::Fields(fields))?;
        } else if p.is_ident("self") {
            self.set_self_key(&meta, SelfKey::Whole)?;
        } else if p.is_ident("skip_self") {
            self.set_self_key(&meta, SelfKey::Skip)?;
        } else {
            return Err(meta.error(
                "unknown memoize option; expected cache, ignore, fields, self, skip_self, key, \
                 version, namespace, depends_on, ttl, result, always or batch",
            ));
        }
        Ok(())
    }

    fn set_self_key(
        &mut self,
        meta: &syn::meta::ParseNestedMeta<'_>,
        choice: SelfKey,
    ) -> syn::Result<()> {
        if !matches!(self.self_key, SelfKey::Unset) {
            return Err(meta.error(
                "give one of `fields(..)`, `self` or `skip_self`: they are different answers to \
                 how `self` joins the key",
            ));
        }
        self.self_key = choice;
        self.self_key_span = Some(syn::spanned::Spanned::span(&meta.path));
        Ok(())
    }
}
