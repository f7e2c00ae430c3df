//! Error collection and the one "set once" helper every argument goes through.
//!
//! Modelled on serde's `internals/ctxt.rs` and `Attr<T>::set`: errors are
//! pushed as they are found and combined at the end, so the user sees every
//! mistake in one build.

use proc_macro2::Span;
use quote::ToTokens;
use std::fmt::Display;

/// The errors found so far.
#[derive(Default)]
pub(crate) struct Ctxt {
    errors: Vec<syn::Error>,
}

impl Ctxt {
    /// Records an error spanning the tokens of `tokens`.
    pub(crate) fn error_spanned(&mut self, tokens: impl ToTokens, msg: impl Display) {
        self.errors.push(syn::Error::new_spanned(tokens, msg));
    }

    /// Records an error at `span`.
    pub(crate) fn error_at(&mut self, span: Span, msg: impl Display) {
        self.errors.push(syn::Error::new(span, msg));
    }

    /// Records an error produced elsewhere (e.g. by a syn parser).
    pub(crate) fn push(&mut self, error: syn::Error) {
        self.errors.push(error);
    }

    /// All errors combined into one, or `Ok` if there were none.
    pub(crate) fn check(self) -> syn::Result<()> {
        let mut errors = self.errors.into_iter();
        let Some(mut combined) = errors.next() else {
            return Ok(());
        };
        for e in errors {
            combined.combine(e);
        }
        Err(combined)
    }
}

/// One attribute argument that may be given at most once.
pub(crate) struct Attr<T> {
    name: &'static str,
    seen: bool,
    value: Option<(T, Span)>,
}

impl<T> Attr<T> {
    /// An argument called `name`, not yet given.
    pub(crate) fn none(name: &'static str) -> Self {
        Attr {
            name,
            seen: false,
            value: None,
        }
    }

    /// Records `value` for the argument whose key is `key`.
    ///
    /// The second occurrence of a key is reported at that key, whether or not
    /// either value was valid; an invalid first value is reported (through
    /// `value`'s error) and leaves the argument unset.
    pub(crate) fn set(&mut self, cx: &mut Ctxt, key: impl ToTokens, value: syn::Result<T>) {
        let span = key_span(&key);
        if self.seen {
            cx.error_spanned(
                key,
                format_args!(
                    "duplicate argument `{}`: it is already given earlier in this attribute; keep one",
                    self.name
                ),
            );
            return;
        }
        self.seen = true;
        match value {
            Ok(v) => self.value = Some((v, span)),
            Err(e) => cx.push(e),
        }
    }

    /// The value and the span of its key, if given and valid.
    pub(crate) fn get(&self) -> Option<(&T, Span)> {
        self.value.as_ref().map(|(v, s)| (v, *s))
    }
}

fn key_span(key: &impl ToTokens) -> Span {
    let mut tokens = key.to_token_stream().into_iter();
    let first = tokens.next().map_or_else(Span::call_site, |t| t.span());
    match tokens.last() {
        Some(last) => first.join(last.span()).unwrap_or(first),
        None => first,
    }
}
