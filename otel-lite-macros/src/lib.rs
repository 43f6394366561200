//! `#[instrument]` for otel-lite. Use it through the `otel-lite` crate:
//! `use otel_lite::instrument;`. Its options are documented on [`macro@instrument`].

mod args;
mod expand;

use proc_macro::TokenStream;

/// Instruments a function with a span and per-function call, error and duration metrics.
///
/// On a sync or `async fn` (free functions, methods with any receiver, generic functions,
/// functions returning `impl Trait` or `Result`, trait impls and default methods), it
/// creates a span named after the function with `code.function.name` set to its fully
/// qualified path, and records per function:
///
/// | metric | Prometheus name | labels |
/// |---|---|---|
/// | `function.calls` (counter) | `function_calls_total` | `function`, `module`, `result` (`ok`/`error`), `error.type` on errors |
/// | `function.calls.duration` (histogram, seconds) | `function_calls_duration_seconds` | `function`, `module` |
/// | `function.calls.concurrent` (up/down, with `in_flight`) | `function_calls_concurrent` | `function`, `module` |
///
/// The names follow the autometrics conventions, so its dashboards and alerts work as is.
/// For `Result` returns, `error.type` is the error's type name (the same name the span's
/// `exception.type` gets); a panic counts as an error with `error.type="panic"`.
///
/// Options:
///
/// | option | effect |
/// |---|---|
/// | `name = "..."` | span name (default: the function name) |
/// | `fields(key = value, arg, ...)` | span attributes, evaluated only when the span records; numbers, booleans and strings keep their type, `Option`s record their content or nothing; a bare name records that argument |
/// | `fields(key = ?value, key = %value, ?arg)` | the value's `Debug` (`?`) or `Display` (`%`) form, for any other type |
/// | `args` | record every argument except those in `skip`: typed when it is a number, boolean or string, `Debug` otherwise |
/// | `skip(a, b)` / `skip_all` | arguments `args` leaves out (names are checked) |
/// | `err` | on `Err`, add an `exception` event and set the span status to error |
/// | `span = false` / `metrics = false` | only metrics / only the span |
/// | `in_flight` | also keep the in-flight gauge |
/// | `objective = NAME` | a `const` `otel_lite::metrics::Objective`: its labels go on the calls counter (success rate) and the duration histogram (latency), for generated SLO rules |
/// | `kind = server` | span kind: `internal` (default), `server`, `client`, `producer`, `consumer` |
/// | `crate = path` | where otel-lite is, if renamed |
///
/// Arguments are never formatted unless asked for, so the hot path stays allocation-free.
/// A `fields` value that is not a number, boolean or string is a compile error that points
/// at it and suggests `?` or `%`.
///
/// ```ignore
/// #[otel_lite::instrument(err, kind = server, fields(user.id = id, order = ?order))]
/// fn checkout(id: u64, order: &Order) -> Result<Receipt, CheckoutError> { /* ... */ }
/// ```
#[proc_macro_attribute]
pub fn instrument(attr: TokenStream, item: TokenStream) -> TokenStream {
    let args = match syn::parse::<args::Args>(attr) {
        Ok(a) => a,
        Err(e) => return with_item(e, item),
    };
    let item2: proc_macro2::TokenStream = item.clone().into();
    match syn::parse2::<syn::ItemFn>(item2.clone()) {
        Ok(f) => match expand::expand(args, f) {
            Ok(tokens) => tokens.into(),
            Err(e) => with_item(e, item),
        },
        Err(_) => {
            let message = if syn::parse2::<syn::TraitItemFn>(item2.clone()).is_ok() {
                "#[instrument] needs a function body; put it on the implementations instead"
            } else {
                "#[instrument] can only be used on functions"
            };
            with_item(syn::Error::new_spanned(item2, message), item)
        }
    }
}

/// The error, followed by the item unchanged, so that one mistake does not cascade into
/// "function not found" errors and IDEs keep working.
fn with_item(e: syn::Error, item: TokenStream) -> TokenStream {
    let mut out: proc_macro2::TokenStream = e.to_compile_error();
    out.extend(proc_macro2::TokenStream::from(item));
    out.into()
}
