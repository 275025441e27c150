//! The arguments of a wrapped function: [`MemoFn`] (call it, and key its arguments) for
//! functions of one to six arguments, [`Ignored`] for an argument left out of the key that
//! need not be `Serialize`, and [`KeyArg`], what every argument of a wrapped function is.
//!
//! A function of one argument is keyed on that argument as it is (`|x: u64|`, or a tuple
//! `|(a, b): (String, u32)|` as before); a function of several arguments on the tuple of
//! those not ignored, in order, which is the key `#[memoize]` makes for the same function,
//! so the two styles share results. Serde serializes `&T` as `T`, so an argument borrowed
//! (`&str`, `&T`) hashes as the owned value would, and a hit clones nothing.

use std::future::Future;

use serde::ser::{Serialize, SerializeTuple, Serializer};

use crate::key::{
    canonical_args, canonical_args_into, canonical_bytes, canonical_bytes_into, KeyError,
};

/// An argument left out of the key, which therefore need not be `Serialize`: a client
/// handle, a logger, a progress bar.
///
/// ```
/// use cacher::{memo::Ignored, store::MemoryStore, Cache};
///
/// struct Client; // not Serialize
/// impl Client {
///     fn get(&self, url: &str, page: u32) -> String {
///         format!("{url}#{page}")
///     }
/// }
///
/// let cache = Cache::builder().store(MemoryStore::new()).build()?;
/// let fetch = cache.wrap("fetch", |client: Ignored<&Client>, url: &str, page: u32| {
///     client.get(url, page)
/// });
/// assert_eq!(fetch.call((Ignored(&Client), "example.org", 2)), "example.org#2");
/// # Ok::<(), cacher::Error>(())
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Ignored<T>(pub T);

impl<T> std::ops::Deref for Ignored<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// An argument of a wrapped function: any `Serialize` value (it joins the key), or an
/// [`Ignored`] one (it does not).
pub trait KeyArg {
    /// Whether the argument joins the key.
    const IN_KEY: bool;
    /// Writes the argument as the next element of the key's tuple (nothing if ignored).
    fn write_element<S: SerializeTuple>(&self, tuple: &mut S) -> Result<(), S::Error>;
    /// The key encoding of the argument as a function's only argument, leaving out the
    /// tuple positions in `skip` (see [`MemoBuilder::ignore`](super::MemoBuilder::ignore)).
    fn key_alone(&self, skip: &[usize]) -> Result<Vec<u8>, KeyError>;
    /// [`KeyArg::key_alone`] appended to `out` (a key's hash input), without a buffer of its
    /// own.
    fn key_alone_into(&self, skip: &[usize], out: &mut Vec<u8>) -> Result<(), KeyError> {
        out.extend_from_slice(&self.key_alone(skip)?);
        Ok(())
    }
}

impl<T: Serialize + ?Sized> KeyArg for T {
    const IN_KEY: bool = true;
    fn write_element<S: SerializeTuple>(&self, tuple: &mut S) -> Result<(), S::Error> {
        tuple.serialize_element(self)
    }
    fn key_alone(&self, skip: &[usize]) -> Result<Vec<u8>, KeyError> {
        canonical_args(self, skip)
    }
    fn key_alone_into(&self, skip: &[usize], out: &mut Vec<u8>) -> Result<(), KeyError> {
        canonical_args_into(self, skip, out)
    }
}

impl<T> KeyArg for Ignored<T> {
    const IN_KEY: bool = false;
    fn write_element<S: SerializeTuple>(&self, _: &mut S) -> Result<(), S::Error> {
        Ok(())
    }
    fn key_alone(&self, _: &[usize]) -> Result<Vec<u8>, KeyError> {
        // `#[memoize]` on a function whose only argument is ignored keys on `()`.
        canonical_bytes(&())
    }
}

/// A wrapped function as [`Memo`](super::Memo) calls it: with its arguments as one value
/// `A` (the argument itself, or a tuple of several), which it also turns into key bytes.
pub trait MemoFn<A, R> {
    /// Runs the function.
    fn call_fn(&self, args: A) -> R;
    /// The canonical encoding of the arguments that join the key, leaving out the positions
    /// in `skip`.
    fn key_bytes(&self, args: &A, skip: &[usize]) -> Result<Vec<u8>, KeyError>;
    /// [`MemoFn::key_bytes`] appended to `out` (a key's hash input): the same bytes, without
    /// a buffer of their own, which is what a memoized hit uses.
    fn key_bytes_into(&self, args: &A, skip: &[usize], out: &mut Vec<u8>) -> Result<(), KeyError> {
        out.extend_from_slice(&self.key_bytes(args, skip)?);
        Ok(())
    }
}

impl<F, A, R> MemoFn<A, R> for F
where
    F: Fn(A) -> R,
    A: KeyArg,
{
    fn call_fn(&self, args: A) -> R {
        self(args)
    }
    fn key_bytes(&self, args: &A, skip: &[usize]) -> Result<Vec<u8>, KeyError> {
        args.key_alone(skip)
    }
    fn key_bytes_into(&self, args: &A, skip: &[usize], out: &mut Vec<u8>) -> Result<(), KeyError> {
        args.key_alone_into(skip, out)
    }
}

/// What [`Cache::wrap`](crate::Cache::wrap) and [`MemoBuilder::wrap`](super::MemoBuilder::wrap)
/// accept: a function of one to six arguments. `M` tells the arities apart (the tuple of the
/// argument types); it is inferred.
pub trait IntoMemoFn<M, R> {
    /// The arguments as one value: the argument itself, or the tuple of several.
    type Args;
    /// The function as [`Memo`](super::Memo) holds it.
    type Fn: MemoFn<Self::Args, R>;
    /// Converts.
    fn into_memo_fn(self) -> Self::Fn;
}

impl<F, A, R> IntoMemoFn<(A,), R> for F
where
    F: Fn(A) -> R,
    A: KeyArg,
{
    type Args = A;
    type Fn = F;
    fn into_memo_fn(self) -> F {
        self
    }
}

/// A wrapped async function as [`AsyncMemo`](super::AsyncMemo) calls it: like [`MemoFn`],
/// with the future it returns named, so the memo can await it.
pub trait AsyncMemoFn<A> {
    /// The future one call returns.
    type Future: Future;
    /// Starts the function.
    fn call_async(&self, args: A) -> Self::Future;
    /// The canonical encoding of the arguments that join the key (as [`MemoFn::key_bytes`]).
    fn key_bytes(&self, args: &A, skip: &[usize]) -> Result<Vec<u8>, KeyError>;
}

impl<F, A, Fut> AsyncMemoFn<A> for F
where
    F: Fn(A) -> Fut,
    A: KeyArg,
    Fut: Future,
{
    type Future = Fut;
    fn call_async(&self, args: A) -> Fut {
        self(args)
    }
    fn key_bytes(&self, args: &A, skip: &[usize]) -> Result<Vec<u8>, KeyError> {
        args.key_alone(skip)
    }
}

/// What [`MemoBuilder::wrap_async`](super::MemoBuilder::wrap_async) accepts: an async function
/// (or a closure returning a future) of one to six arguments, as [`IntoMemoFn`] for `wrap`.
pub trait IntoAsyncMemoFn<M> {
    /// The arguments as one value: the argument itself, or the tuple of several.
    type Args;
    /// The function as [`AsyncMemo`](super::AsyncMemo) holds it.
    type Fn: AsyncMemoFn<Self::Args>;
    /// Converts.
    fn into_async_memo_fn(self) -> Self::Fn;
}

impl<F, A, Fut> IntoAsyncMemoFn<(A,)> for F
where
    F: Fn(A) -> Fut,
    A: KeyArg,
    Fut: Future,
{
    type Args = A;
    type Fn = F;
    fn into_async_memo_fn(self) -> F {
        self
    }
}

/// A function of several arguments, called with their tuple.
#[derive(Debug, Clone)]
pub struct Spread<G>(G);

/// The key tuple of several arguments: those in the key, minus skipped positions.
struct KeyTuple<'a, T>(&'a T, &'a [usize]);

macro_rules! arities {
    ($( ($($a:ident $i:tt),+) )+) => {$(
        impl<G, $($a,)+ R> MemoFn<($($a,)+), R> for Spread<G>
        where
            G: Fn($($a),+) -> R,
            $($a: KeyArg,)+
        {
            fn call_fn(&self, args: ($($a,)+)) -> R {
                (self.0)($(args.$i),+)
            }
            fn key_bytes(&self, args: &($($a,)+), skip: &[usize]) -> Result<Vec<u8>, KeyError> {
                let mut out = Vec::with_capacity(64);
                <Self as MemoFn<($($a,)+), R>>::key_bytes_into(self, args, skip, &mut out)?;
                Ok(out)
            }
            fn key_bytes_into(
                &self,
                args: &($($a,)+),
                skip: &[usize],
                out: &mut Vec<u8>,
            ) -> Result<(), KeyError> {
                let arity = [$($i),+].len();
                if let Some(p) = skip.iter().find(|&&p| p >= arity) {
                    // Ignoring a position the function does not have would key on everything
                    // while the caller believes something was left out: refuse.
                    return Err(KeyError(format!(
                        "argument position {p} is ignored, but the function has {arity} arguments"
                    )));
                }
                canonical_bytes_into(&KeyTuple(args, skip), out)
            }
        }

        impl<G, $($a,)+ R> IntoMemoFn<($($a,)+), R> for G
        where
            G: Fn($($a),+) -> R,
            $($a: KeyArg,)+
        {
            type Args = ($($a,)+);
            type Fn = Spread<G>;
            fn into_memo_fn(self) -> Spread<G> {
                Spread(self)
            }
        }

        impl<G, $($a,)+ Fut> AsyncMemoFn<($($a,)+)> for Spread<G>
        where
            G: Fn($($a),+) -> Fut,
            Fut: Future,
            $($a: KeyArg,)+
        {
            type Future = Fut;
            fn call_async(&self, args: ($($a,)+)) -> Fut {
                (self.0)($(args.$i),+)
            }
            fn key_bytes(&self, args: &($($a,)+), skip: &[usize]) -> Result<Vec<u8>, KeyError> {
                <Self as MemoFn<($($a,)+), Fut>>::key_bytes(self, args, skip)
            }
        }

        impl<G, $($a,)+ Fut> IntoAsyncMemoFn<($($a,)+)> for G
        where
            G: Fn($($a),+) -> Fut,
            Fut: Future,
            $($a: KeyArg,)+
        {
            type Args = ($($a,)+);
            type Fn = Spread<G>;
            fn into_async_memo_fn(self) -> Spread<G> {
                Spread(self)
            }
        }

        impl<$($a: KeyArg,)+> Serialize for KeyTuple<'_, ($($a,)+)> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let skip = self.1;
                let len = [$($a::IN_KEY && !skip.contains(&$i)),+]
                    .into_iter()
                    .filter(|&k| k)
                    .count();
                let mut tuple = serializer.serialize_tuple(len)?;
                $(
                    if !skip.contains(&$i) {
                        self.0.$i.write_element(&mut tuple)?;
                    }
                )+
                tuple.end()
            }
        }
    )+};
}

arities! {
    (A0 0, A1 1)
    (A0 0, A1 1, A2 2)
    (A0 0, A1 1, A2 2, A3 3)
    (A0 0, A1 1, A2 2, A3 3, A4 4)
    (A0 0, A1 1, A2 2, A3 3, A4 4, A5 5)
}

/// A function with a custom key: `key(&args)` replaces the arguments in the key.
#[derive(Clone)]
pub struct Keyed<F, KF> {
    pub(super) f: F,
    pub(super) key: KF,
}

impl<F, KF, K, A, R> MemoFn<A, R> for Keyed<F, KF>
where
    F: MemoFn<A, R>,
    KF: Fn(&A) -> K,
    K: Serialize,
{
    fn call_fn(&self, args: A) -> R {
        self.f.call_fn(args)
    }
    fn key_bytes(&self, args: &A, _: &[usize]) -> Result<Vec<u8>, KeyError> {
        canonical_bytes(&(self.key)(args))
    }
    fn key_bytes_into(&self, args: &A, _: &[usize], out: &mut Vec<u8>) -> Result<(), KeyError> {
        canonical_bytes_into(&(self.key)(args), out)
    }
}
