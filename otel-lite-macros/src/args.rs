//! Parsing `#[instrument(...)]` arguments, with errors on the offending token.

use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{Expr, Ident, LitBool, LitStr, Path, Token};

mod kw {
    syn::custom_keyword!(name);
    syn::custom_keyword!(skip);
    syn::custom_keyword!(skip_all);
    syn::custom_keyword!(fields);
    syn::custom_keyword!(err);
    syn::custom_keyword!(span);
    syn::custom_keyword!(metrics);
    syn::custom_keyword!(kind);
    syn::custom_keyword!(in_flight);
    syn::custom_keyword!(args);
    syn::custom_keyword!(objective);
}

/// How a `fields(...)` value is recorded.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    /// As its typed value (integers, floats, booleans, strings): `key = expr`.
    Typed,
    /// With `Debug`: `key = ?expr`.
    Debug,
    /// With `Display`: `key = %expr`.
    Display,
}

/// One `fields(...)` entry: `key = [?|%]expr`, or a bare argument name (`[?|%]arg`).
pub(crate) struct Field {
    pub(crate) key: String,
    pub(crate) key_span: proc_macro2::Span,
    pub(crate) format: Format,
    pub(crate) value: Option<Expr>,
}

fn format(input: ParseStream<'_>) -> syn::Result<Format> {
    if input.peek(Token![?]) {
        input.parse::<Token![?]>()?;
        Ok(Format::Debug)
    } else if input.peek(Token![%]) {
        input.parse::<Token![%]>()?;
        Ok(Format::Display)
    } else {
        Ok(Format::Typed)
    }
}

impl Parse for Field {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        // A bare argument may carry the sigil itself: `?request`.
        let bare_format = format(input)?;
        // Keys may be dotted: `http.route = ...`.
        let first: Ident = input.call(syn::ext::IdentExt::parse_any)?;
        let key_span = first.span();
        let mut key = first.to_string();
        while input.peek(Token![.]) {
            input.parse::<Token![.]>()?;
            let part: Ident = input.call(syn::ext::IdentExt::parse_any)?;
            key.push('.');
            key.push_str(&part.to_string());
        }
        if input.peek(Token![=]) {
            if bare_format != Format::Typed {
                return Err(syn::Error::new(key_span, "put `?` or `%` before the value: `key = ?value`"));
            }
            input.parse::<Token![=]>()?;
            let format = format(input)?;
            Ok(Field { key, key_span, format, value: Some(input.parse()?) })
        } else {
            Ok(Field { key, key_span, format: bare_format, value: None })
        }
    }
}

#[derive(Default)]
pub(crate) struct Args {
    pub(crate) name: Option<LitStr>,
    pub(crate) skip: Vec<Ident>,
    pub(crate) skip_all: bool,
    pub(crate) args: bool,
    pub(crate) fields: Vec<Field>,
    pub(crate) err: bool,
    pub(crate) span: Option<bool>,
    pub(crate) metrics: Option<bool>,
    pub(crate) in_flight: bool,
    pub(crate) kind: Option<Ident>,
    pub(crate) objective: Option<Expr>,
    pub(crate) krate: Option<Path>,
}

/// Remembers which options were seen, to reject duplicates where they occur.
fn once(seen: &mut Vec<&'static str>, what: &'static str, span: proc_macro2::Span) -> syn::Result<()> {
    if seen.contains(&what) {
        return Err(syn::Error::new(span, format!("duplicate `{what}` argument")));
    }
    seen.push(what);
    Ok(())
}

fn bool_value(input: ParseStream<'_>) -> syn::Result<bool> {
    input.parse::<Token![=]>()?;
    Ok(input.parse::<LitBool>()?.value)
}

impl Parse for Args {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let mut args = Args::default();
        let mut seen = Vec::new();
        while !input.is_empty() {
            let lookahead = input.lookahead1();
            if lookahead.peek(kw::name) {
                let k: kw::name = input.parse()?;
                once(&mut seen, "name", k.span)?;
                input.parse::<Token![=]>()?;
                args.name = Some(input.parse()?);
            } else if lookahead.peek(kw::skip_all) {
                let k: kw::skip_all = input.parse()?;
                once(&mut seen, "skip_all", k.span)?;
                args.skip_all = true;
            } else if lookahead.peek(kw::skip) {
                let k: kw::skip = input.parse()?;
                once(&mut seen, "skip", k.span)?;
                let content;
                syn::parenthesized!(content in input);
                args.skip = Punctuated::<Ident, Token![,]>::parse_terminated(&content)?.into_iter().collect();
            } else if lookahead.peek(kw::fields) {
                let k: kw::fields = input.parse()?;
                once(&mut seen, "fields", k.span)?;
                let content;
                syn::parenthesized!(content in input);
                args.fields = Punctuated::<Field, Token![,]>::parse_terminated(&content)?.into_iter().collect();
            } else if lookahead.peek(kw::err) {
                let k: kw::err = input.parse()?;
                once(&mut seen, "err", k.span)?;
                args.err = true;
            } else if lookahead.peek(kw::args) {
                let k: kw::args = input.parse()?;
                once(&mut seen, "args", k.span)?;
                args.args = true;
            } else if lookahead.peek(kw::in_flight) {
                let k: kw::in_flight = input.parse()?;
                once(&mut seen, "in_flight", k.span)?;
                args.in_flight = true;
            } else if lookahead.peek(kw::span) {
                let k: kw::span = input.parse()?;
                once(&mut seen, "span", k.span)?;
                args.span = Some(bool_value(input)?);
            } else if lookahead.peek(kw::metrics) {
                let k: kw::metrics = input.parse()?;
                once(&mut seen, "metrics", k.span)?;
                args.metrics = Some(bool_value(input)?);
            } else if lookahead.peek(kw::kind) {
                let k: kw::kind = input.parse()?;
                once(&mut seen, "kind", k.span)?;
                input.parse::<Token![=]>()?;
                let kind: Ident = input.parse()?;
                if !matches!(kind.to_string().as_str(), "internal" | "server" | "client" | "producer" | "consumer") {
                    return Err(syn::Error::new(
                        kind.span(),
                        "unknown span kind; expected one of `internal`, `server`, `client`, `producer`, `consumer`",
                    ));
                }
                args.kind = Some(kind);
            } else if lookahead.peek(kw::objective) {
                let k: kw::objective = input.parse()?;
                once(&mut seen, "objective", k.span)?;
                input.parse::<Token![=]>()?;
                args.objective = Some(input.parse()?);
            } else if lookahead.peek(Token![crate]) {
                let k: Token![crate] = input.parse()?;
                once(&mut seen, "crate", k.span)?;
                input.parse::<Token![=]>()?;
                args.krate = Some(input.parse()?);
            } else {
                return Err(lookahead.error());
            }
            if !input.is_empty() {
                input.parse::<Token![,]>()?;
            }
        }
        if args.skip_all && !args.skip.is_empty() {
            return Err(syn::Error::new(args.skip[0].span(), "`skip` and `skip_all` cannot be used together"));
        }
        if let (Some(objective), Some(false)) = (&args.objective, args.metrics) {
            return Err(syn::Error::new_spanned(
                objective,
                "an `objective` is carried by the metrics; remove `metrics = false`",
            ));
        }
        if args.span == Some(false) && args.metrics == Some(false) {
            return Err(input.error("`span = false` and `metrics = false` together leave nothing to instrument"));
        }
        Ok(args)
    }
}
