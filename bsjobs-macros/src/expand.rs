//! Phase 3: generate the job type and its registration, or, on error, the
//! user's function unchanged plus the errors.

use crate::ctxt::Ctxt;
use crate::validate::{Body, Job, Options};
use crate::{parse, validate};
use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::spanned::Spanned;
use syn::ItemFn;

/// The whole macro: `#[job(args)] item`.
pub(crate) fn job(args: TokenStream, item: TokenStream) -> TokenStream {
    let func: ItemFn = match syn::parse2(item.clone()) {
        Ok(func) => func,
        Err(_) => {
            let err = syn::Error::new(
                Span::call_site(),
                "#[bsjobs::job] goes on a function: `async fn name(arg: Type, ..)` or \
                 `fn name(arg: Type, ..)`",
            );
            return fallback(item, err);
        }
    };
    let mut cx = Ctxt::default();
    let args = parse::args(args, &mut cx);
    let job = validate::job(args, &func, &mut cx);
    match (cx.check(), job) {
        (Ok(()), Some(job)) => generate(&job, &func),
        (Err(err), _) => fallback(func.into_token_stream(), err),
        (Ok(()), None) => fallback(
            func.into_token_stream(),
            syn::Error::new(
                Span::call_site(),
                "#[bsjobs::job]: internal error, please report",
            ),
        ),
    }
}

/// The item as written plus the errors, so that call sites of the function
/// still resolve and only the real mistakes are shown.
fn fallback(item: TokenStream, err: syn::Error) -> TokenStream {
    let errors = err.to_compile_error();
    quote!(#item #errors)
}

fn generate(job: &Job, func: &ItemFn) -> TokenStream {
    let Job {
        krate,
        ident,
        name,
        type_ident,
        tube,
        options,
        params,
        context,
        raw,
        is_async,
        output,
    } = job;
    let p = quote!(#krate::__private);
    let serde_path = format!("{p}::serde").replace(' ', "");
    let vis = &func.vis;
    // A job compiled out by `#[cfg]` takes its type and registration with it.
    let cfgs: Vec<_> = func
        .attrs
        .iter()
        .filter(|a| a.path().is_ident("cfg"))
        .collect();
    let idents: Vec<_> = params.iter().map(|p| &p.ident).collect();
    let tys: Vec<_> = params.iter().map(|p| &p.ty).collect();
    let options = options_expr(&p, options);

    // The user's types enter the generated code only as explicit generic
    // arguments of two helpers, spanned at the types: a type that is not
    // Serialize / Deserialize is reported once for each trait, at the
    // parameter's type, and nowhere else.
    let generics: Vec<_> = (0..params.len())
        .map(|i| format_ident!("__BsjobsT{}", i))
        .collect();
    let turbofish = if params.is_empty() {
        quote!()
    } else {
        quote!(::<#(#tys),*>)
    };
    let ser_bounds = generics.iter().map(|g| quote!(#g: #p::serde::Serialize));
    let de_bounds = generics
        .iter()
        .map(|g| quote!(#g: #p::serde::Deserialize<'__bsjobs>));
    let ser_struct = if params.is_empty() {
        quote!(
            struct __BsjobsArgs {}
        )
    } else {
        quote! {
            struct __BsjobsArgs<'__bsjobs, #(#generics),*> {
                #(#idents: &'__bsjobs #generics,)*
            }
        }
    };
    let de_struct = if params.is_empty() {
        quote!(
            struct __BsjobsArgs {}
        )
    } else {
        quote!(struct __BsjobsArgs<#(#generics),*> { #(#idents: #generics,)* })
    };

    // What the function returns goes through `IntoOutcome`, checked at the
    // declared return type.
    let outcome_ty = match output {
        Some(ty) => quote!(#ty),
        None => quote!(()),
    };
    let outcome_span = at(output.as_ref().map_or_else(|| ident.span(), |t| t.span()));
    let outcome = quote_spanned!(outcome_span=> __bsjobs_into_outcome::<#outcome_ty>);
    // The arguments in the function's order, with the context at its place.
    let mut inputs: Vec<TokenStream> = match raw {
        Some(_) => vec![quote!(__bsjobs_body)],
        None => idents.iter().map(|i| quote!(__bsjobs_args.#i)).collect(),
    };
    let take_context = match context {
        Some(c) => {
            inputs.insert(c.position, quote!(__bsjobs_ctx));
            // A type named `JobContext` that is not bsjobs' is reported here,
            // at the parameter's type.
            let ty = &c.ty;
            quote_spanned!(at(ty.span())=> let __bsjobs_ctx: #ty = __bsjobs_ctx;)
        }
        None => quote!(let _ = __bsjobs_ctx;),
    };
    // Spanned at the name itself: no generated local is named in these.
    let call = quote_spanned!(ident.span()=> #ident(#(#inputs),*));
    let run = if *is_async {
        quote_spanned! {ident.span()=>
            // `Box::pin` spanned at the function keeps the "future is not Send"
            // error on the function's name.
            ::std::boxed::Box::pin(async move { #outcome(#call.await) })
        }
    } else {
        quote!(#p::blocking(move || #outcome(#call)))
    };
    let bind_args = if params.is_empty() {
        quote!(_)
    } else {
        quote!(__bsjobs_args)
    };
    // The function's own span, its syntax context too: `line!()` names
    // the line of the outermost expansion of the span it is given.
    let file = quote_spanned!(ident.span()=> ::core::file!());
    let line = quote_spanned!(ident.span()=> ::core::line!());

    let fn_link = if ident.to_string().starts_with("r#") {
        format!("`{name}`")
    } else {
        format!("[`{name}()`]")
    };
    let type_doc = format!(" Enqueues the {fn_link} job, in tube `{tube}`.");
    let type_doc2 = format!(
        " `{type_ident}::enqueue(..).await` puts one job with the process-wide client; \
         `{type_ident}::new(..)` returns a builder for per-call options (delay, priority, \
         ttr, client)."
    );
    let tube_doc = format!(" The beanstalkd tube of this job: `{tube}`.");
    let enqueue_doc = match raw {
        None => format!(
            " Enqueues `{name}(..)` with these arguments in tube `{tube}`, using the \
             process-wide client."
        ),
        Some(_) => format!(
            " Puts `body` into tube `{tube}` exactly as given (a raw job: no envelope), \
             using the process-wide client."
        ),
    };

    let into_outcome = quote! {
        fn __bsjobs_into_outcome<O: #p::IntoOutcome>(outcome: O)
            -> #p::Outcome
        {
            #p::IntoOutcome::into_outcome(outcome)
        }
    };
    let (new_doc, new_body, handler_items, handler) = match raw {
        None => (
            " Prepares a job with these arguments: set per-call options such as `.delay(..)`, \
             then `.enqueue().await` it.",
            quote! {
                #[derive(#p::serde::Serialize)]
                #[serde(crate = #serde_path)]
                #ser_struct

                fn __bsjobs_serialize_args<#(#ser_bounds),*>(
                    tube: &'static str,
                    options: &'static #p::JobOptions,
                    #(#idents: &#generics,)*
                ) -> #p::Enqueue {
                    #p::Enqueue::new(tube, options, &__BsjobsArgs { #(#idents,)* })
                }

                __bsjobs_serialize_args #turbofish (Self::TUBE, &Self::OPTIONS, #(&#idents),*)
            },
            quote! {
                #[derive(#p::serde::Deserialize)]
                #[serde(crate = #serde_path)]
                #de_struct

                fn __bsjobs_deserialize_args<'__bsjobs, #(#de_bounds),*>(
                    args: &'__bsjobs str,
                ) -> ::core::result::Result<__BsjobsArgs<#(#generics),*>, #p::serde_json::Error> {
                    #p::serde_json::from_str(args)
                }

                #into_outcome

                fn __bsjobs_handler(args: &str, __bsjobs_ctx: #p::JobContext)
                    -> ::core::result::Result<#p::HandlerFuture, #p::serde_json::Error>
                {
                    let #bind_args = __bsjobs_deserialize_args #turbofish (args)?;
                    #take_context
                    ::core::result::Result::Ok(#run)
                }
            },
            quote!(#p::Handler::Args(__bsjobs_handler)),
        ),
        Some(body) => {
            let arg = idents[0];
            let (encode, decode) = match body {
                Body::Bytes => (
                    quote!(#p::Enqueue::raw(Self::TUBE, &Self::OPTIONS, #arg)),
                    quote!(<[u8]>::to_vec(body)),
                ),
                Body::Text => (
                    quote!(#p::Enqueue::raw(Self::TUBE, &Self::OPTIONS, #p::String::into_bytes(#arg))),
                    quote!(#p::decode_text(body)?),
                ),
                // As for arguments, the user's type enters only as the
                // generic argument of two helpers, spanned at the type.
                Body::Json => (
                    quote! {
                        fn __bsjobs_serialize_body<__BsjobsT0: #p::serde::Serialize>(
                            tube: &'static str,
                            options: &'static #p::JobOptions,
                            body: &__BsjobsT0,
                        ) -> #p::Enqueue {
                            #p::Enqueue::raw_json(tube, options, body)
                        }
                        __bsjobs_serialize_body #turbofish (Self::TUBE, &Self::OPTIONS, &#arg)
                    },
                    quote!(__bsjobs_deserialize_body #turbofish (body)?),
                ),
            };
            let context = context.is_some();
            (
                " Prepares a job whose body is exactly `body` (nothing added): set per-call \
                 options such as `.delay(..)`, then `.enqueue().await` it.",
                encode,
                quote! {
                    fn __bsjobs_deserialize_body<__BsjobsT0: #p::serde::de::DeserializeOwned>(
                        body: &[u8],
                    ) -> ::core::result::Result<__BsjobsT0, #p::BodyError> {
                        #p::decode_json(body)
                    }

                    #into_outcome

                    fn __bsjobs_handler(body: &[u8], __bsjobs_ctx: #p::JobContext)
                        -> ::core::result::Result<#p::HandlerFuture, #p::BodyError>
                    {
                        let __bsjobs_body = #decode;
                        #take_context
                        ::core::result::Result::Ok(#run)
                    }
                },
                quote!(#p::Handler::Raw { run: __bsjobs_handler, context: #context }),
            )
        }
    };

    quote! {
        #func

        #(#cfgs)*
        #[doc = #type_doc]
        #[doc = ""]
        #[doc = #type_doc2]
        #[derive(::core::fmt::Debug, ::core::clone::Clone, ::core::marker::Copy)]
        #[allow(dead_code)]
        #vis struct #type_ident;

        #(#cfgs)*
        #[allow(dead_code, clippy::new_ret_no_self, clippy::too_many_arguments)]
        impl #type_ident {
            #[doc = #tube_doc]
            #vis const TUBE: &'static str = #tube;

            /// The options given in the `#[bsjobs::job]` attribute, in seconds.
            #vis const OPTIONS: #p::JobOptions = #options;

            #[doc = #new_doc]
            #vis fn new(#(#idents: #tys),*) -> #p::Enqueue {
                #new_body
            }

            #[doc = #enqueue_doc]
            #vis async fn enqueue(#(#idents: #tys),*)
                -> ::core::result::Result<#p::JobHandle, #p::Error>
            {
                Self::new(#(#idents),*).enqueue().await
            }
        }

        #(#cfgs)*
        impl #p::Job for #type_ident {
            const TUBE: &'static str = #tube;
        }

        #(#cfgs)*
        #[allow(dead_code)]
        const _: () = {
            #handler_items

            #p::inventory::submit! {
                #p::JobDescriptor {
                    name: #name,
                    tube: #type_ident::TUBE,
                    options: #type_ident::OPTIONS,
                    file: #file,
                    line: #line,
                    handler: #handler,
                }
            }
        };
    }
}

/// A span that points at `user` (errors are reported there) but resolves
/// names like the rest of the generated code. A user's token can come from
/// another syntax context than the attribute (a function's name or a type
/// passed into a `macro_rules!` that writes the attribute): spanned at it
/// whole, a generated local such as `__bsjobs_ctx` would not see its own
/// binding.
fn at(user: Span) -> Span {
    Span::call_site().located_at(user)
}

/// `JobOptions { priority: 10, ..JobOptions::DEFAULT }` with only the given fields.
fn options_expr(p: &TokenStream, o: &Options) -> TokenStream {
    let some = |v: Option<u32>| v.map(|v| quote!(::core::option::Option::Some(#v)));
    let plain = |v: Option<u32>| v.map(|v| quote!(#v));
    let fields: Vec<TokenStream> = [
        ("priority", plain(o.priority)),
        ("ttr", plain(o.ttr)),
        ("delay", plain(o.delay)),
        ("repeat", some(o.repeat)),
        ("max", some(o.max)),
        ("retries", plain(o.retries)),
        ("backoff", plain(o.backoff)),
        ("timeout", some(o.timeout)),
        ("unique_for", some(o.unique_for)),
    ]
    .into_iter()
    .filter_map(|(name, value)| {
        let name = format_ident!("{}", name);
        value.map(|v| quote!(#name: #v))
    })
    .collect();
    let mut fields = fields;
    if let Some(cron) = &o.cron {
        let expr = &cron.expr;
        fields.push(quote!(cron: ::core::option::Option::Some(#expr)));
        if let Some(tz) = &cron.tz {
            fields.push(quote!(tz: ::core::option::Option::Some(#tz)));
        }
        if cron.skip_missed {
            fields.push(quote!(catch_up: #p::CatchUp::None));
        }
    }
    if fields.is_empty() {
        quote!(#p::JobOptions::DEFAULT)
    } else {
        quote!(#p::JobOptions { #(#fields,)* ..#p::JobOptions::DEFAULT })
    }
}
