//! Code generation for `#[instrument]`.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{FnArg, Ident, ItemFn, Pat, ReturnType, Type};

use crate::args::{Args, Format};

/// The argument names of a function (`self` included), for `skip`, `fields` and `args`.
fn argument_names(f: &ItemFn) -> Vec<Ident> {
    f.sig
        .inputs
        .iter()
        .filter_map(|arg| match arg {
            FnArg::Receiver(r) => Some(Ident::new("self", r.self_token.span)),
            FnArg::Typed(t) => match &*t.pat {
                Pat::Ident(p) => Some(p.ident.clone()),
                _ => None,
            },
        })
        .collect()
}

/// Whether a type mentions `impl Trait` anywhere (then it cannot annotate a `let`).
fn contains_impl_trait(ty: &Type) -> bool {
    struct Finder(bool);
    impl<'ast> syn::visit::Visit<'ast> for Finder {
        fn visit_type_impl_trait(&mut self, _: &'ast syn::TypeImplTrait) {
            self.0 = true;
        }
    }
    let mut f = Finder(false);
    syn::visit::visit_type(&mut f, ty);
    f.0
}

/// Whether the declared return type is a `Result` (by its last path segment, so aliases
/// such as `io::Result<T>` count).
fn returns_result(ret: &ReturnType) -> bool {
    match ret {
        ReturnType::Type(_, ty) => match &**ty {
            Type::Path(p) => p.path.segments.last().is_some_and(|s| s.ident == "Result"),
            _ => false,
        },
        ReturnType::Default => false,
    }
}

pub(crate) fn expand(args: Args, mut f: ItemFn) -> syn::Result<TokenStream> {
    if let Some(c) = &f.sig.constness {
        return Err(syn::Error::new(c.span, "#[instrument] cannot be used on a `const fn`"));
    }
    let krate = args.krate.as_ref().map_or_else(|| quote!(::otel_lite), |p| quote!(#p));
    let names = argument_names(&f);
    for s in &args.skip {
        if !names.iter().any(|n| n == s) {
            return Err(syn::Error::new(s.span(), format!("`skip`: this function has no argument named `{s}`")));
        }
    }

    // Attributes are computed only when the span records, and only those asked for.
    let mut records = Vec::new();
    if args.args && !args.skip_all {
        for n in names.iter().filter(|n| *n != "self" && !args.skip.contains(n)) {
            let key = n.to_string();
            // Typed when the argument is a number, boolean or string; `Debug` otherwise.
            records.push(quote! {{
                #[allow(unused_imports)]
                use #krate::__private::{ArgAsDebug as _, ArgAsTyped as _};
                __otel_call.set_field((&#krate::__private::Arg(#key, &#n)).arg_field());
            }});
        }
    }
    for field in &args.fields {
        let key = &field.key;
        let value = match &field.value {
            Some(expr) => quote_spanned!(expr.span()=> &(#expr)),
            None => {
                let ident = Ident::new(key, field.key_span);
                if key.contains('.') || !names.contains(&ident) {
                    return Err(syn::Error::new(
                        field.key_span,
                        format!("`fields`: `{key}` is not an argument; write `{key} = <expression>`"),
                    ));
                }
                quote!(&#ident)
            }
        };
        let span = field.value.as_ref().map_or(field.key_span, |e| e.span());
        records.push(match field.format {
            Format::Typed => {
                quote_spanned!(span=> __otel_call.set_field(#krate::__private::typed_field(#key, #value));)
            }
            Format::Debug => {
                quote_spanned!(span=> __otel_call.set_field(Some(#krate::__private::debug_field(#key, #value)));)
            }
            Format::Display => {
                quote_spanned!(span=> __otel_call.set_field(Some(#krate::__private::display_field(#key, #value)));)
            }
        });
    }
    let record_fields =
        if records.is_empty() { quote!() } else { quote!(if __otel_call.is_recording() { #(#records)* }) };

    let fn_name = f.sig.ident.to_string();
    let span_name = args.name.as_ref().map_or_else(|| fn_name.clone(), |n| n.value());
    let kind = match args.kind.as_ref().map(|k| k.to_string()) {
        None => quote!(Internal),
        Some(k) => {
            let variant = Ident::new(
                match k.as_str() {
                    "server" => "Server",
                    "client" => "Client",
                    "producer" => "Producer",
                    "consumer" => "Consumer",
                    _ => "Internal",
                },
                Span::call_site(),
            );
            quote!(#variant)
        }
    };
    let span_on = args.span.unwrap_or(true);
    let metrics_on = args.metrics.unwrap_or(true);
    let in_flight = args.in_flight;
    let err = args.err;
    // Spanned on the expression, so a value that is not an `Objective` is reported there.
    let objective = match &args.objective {
        Some(expr) => quote_spanned!(expr.span()=> ::core::option::Option::Some::<#krate::metrics::Objective>(#expr)),
        None => quote!(::core::option::Option::None),
    };

    let callsite = quote! {
        static __OTEL_CALLSITE: #krate::__private::Callsite = #krate::__private::Callsite::new(
            #fn_name,
            #span_name,
            ::core::module_path!(),
            ::core::concat!(::core::module_path!(), "::", #fn_name),
            #krate::__private::Kind::#kind,
            #span_on,
            #metrics_on,
            #in_flight,
            #objective,
        );
        #[allow(unused_mut)]
        let mut __otel_call = __OTEL_CALLSITE.start();
        #record_fields
    };

    let is_result = returns_result(&f.sig.output);
    let annotation = match &f.sig.output {
        ReturnType::Type(_, ty) if !contains_impl_trait(ty) => quote!(: #ty),
        ReturnType::Type(..) => quote!(),
        ReturnType::Default => quote!(: ()),
    };
    let finish = if is_result {
        quote!(__otel_call.finish_result(&__otel_result, #err);)
    } else {
        quote!(__otel_call.finish_ok();)
    };
    let block = &f.block;

    let body = if f.sig.asyncness.is_some() {
        quote! {{
            #callsite
            let __otel_context = __otel_call.context();
            let __otel_result #annotation = #krate::__private::with_context(async move #block, __otel_context).await;
            #finish
            __otel_result
        }}
    } else if is_result {
        quote! {{
            #callsite
            let __otel_result #annotation = {
                let __otel_entered = __otel_call.enter();
                #[allow(clippy::redundant_closure_call)]
                (move || #block)()
            };
            #finish
            __otel_result
        }}
    } else {
        let stmts = &f.block.stmts;
        // The call ends when `__otel_call` drops: after the body's own locals, on every
        // `return`, and during unwinding (then it counts as an error).
        quote! {{
            #callsite
            let __otel_entered = __otel_call.enter();
            #(#stmts)*
        }}
    };
    *f.block = syn::parse2(body)?;
    Ok(quote!(#f))
}
