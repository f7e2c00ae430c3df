//! Phase 2: check what the arguments and the function mean, and reduce them
//! to a [`Job`] that `expand` can generate code for without further checks.

use crate::ctxt::Ctxt;
use crate::parse::{duration_hint, Args, DurationLit};
use proc_macro2::Span;
use syn::ext::IdentExt;
use syn::{FnArg, Ident, ItemFn, LitInt, LitStr, Pat, ReturnType, Type};

/// Longest tube name beanstalkd accepts, in bytes.
const MAX_TUBE_LEN: usize = 200;

/// A validated job function.
pub(crate) struct Job {
    /// Path of the facade crate, `::bsjobs` unless `crate = "..."`.
    pub(crate) krate: syn::Path,
    /// The function's name as written (may be raw, `r#type`).
    pub(crate) ident: Ident,
    /// The function's name without `r#`.
    pub(crate) name: String,
    /// Name of the generated type, `ResizeImage` for `resize_image`.
    pub(crate) type_ident: Ident,
    pub(crate) tube: String,
    pub(crate) options: Options,
    /// The arguments, in order, without the context.
    pub(crate) params: Vec<Param>,
    pub(crate) context: Option<Context>,
    /// For a raw job, how its one parameter receives the body.
    pub(crate) raw: Option<Body>,
    pub(crate) is_async: bool,
    /// The declared return type, where the outcome check points.
    pub(crate) output: Option<Type>,
}

/// One argument: a plain name and an owned type.
pub(crate) struct Param {
    pub(crate) ident: Ident,
    pub(crate) ty: Type,
    /// The parameter as written, for messages.
    pub(crate) arg: syn::PatType,
}

/// How a raw job's body reaches its function.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Body {
    /// `Vec<u8>`: the bytes as they are.
    Bytes,
    /// `String`: UTF-8 text.
    Text,
    /// Any other type: the body read as JSON.
    Json,
}

/// The `JobContext` parameter.
pub(crate) struct Context {
    /// Its index among the function's parameters.
    pub(crate) position: usize,
    /// The type as written, where a type that is not bsjobs' is reported.
    pub(crate) ty: Type,
}

/// Options given in the attribute, in seconds; `None` keeps the runtime default.
#[derive(Default)]
pub(crate) struct Options {
    pub(crate) priority: Option<u32>,
    pub(crate) ttr: Option<u32>,
    pub(crate) delay: Option<u32>,
    pub(crate) repeat: Option<u32>,
    pub(crate) max: Option<u32>,
    pub(crate) retries: Option<u32>,
    pub(crate) backoff: Option<u32>,
    pub(crate) timeout: Option<u32>,
    pub(crate) cron: Option<Cron>,
    pub(crate) unique_for: Option<u32>,
}

/// A cron schedule, checked.
pub(crate) struct Cron {
    pub(crate) expr: String,
    pub(crate) tz: Option<String>,
    /// `catch_up = "none"`.
    pub(crate) skip_missed: bool,
}

/// Checks `args` against `func`; `None` if anything was reported to `cx`.
pub(crate) fn job(args: Args, func: &ItemFn, cx: &mut Ctxt) -> Option<Job> {
    // Checked in source order where it is cheap, so errors read top to bottom.
    let krate = krate(&args, cx);
    let ident = func.sig.ident.clone();
    let name = ident.unraw().to_string();
    let tube = tube(&args, &ident, &name, cx);
    let options = options(&args, cx);
    let type_ident = type_ident(&ident, &name, cx);
    applied_once(func, cx);
    signature(func, cx);
    let raw = args.raw.get().is_some();
    let params = params(func, raw, cx);
    let body = if raw {
        raw_body(&args, func, params.as_ref(), cx)
    } else {
        None
    };
    if args.cron.get().is_some() && !raw {
        if let Some((params, _)) = &params {
            if let (Some(first), Some(last)) = (params.first(), params.last()) {
                let (first, last) = (&first.arg, &last.arg);
                cx.error_spanned(
                    quote::quote!(#first #last),
                    "a cron job takes no arguments: its runs are started by its schedule, not by \
                     `enqueue`, so nothing could pass them; read what it needs inside the function (a \
                     `JobContext` parameter is fine)",
                );
            }
        }
    }
    let output = output(&func.sig.output, cx);
    trailing(func, cx);
    let (params, context) = params?;
    if raw && body.is_none() {
        return None;
    }
    Some(Job {
        krate: krate?,
        ident,
        name,
        type_ident: type_ident?,
        tube: tube?,
        options,
        params,
        context,
        raw: body,
        is_async: func.sig.asyncness.is_some(),
        output: output?,
    })
}

fn options(args: &Args, cx: &mut Ctxt) -> Options {
    let opts = Options {
        priority: args
            .priority
            .get()
            .and_then(|(v, _)| int(v, "priority", cx)),
        ttr: seconds(args.ttr.get(), "ttr", 1, cx),
        delay: seconds(args.delay.get(), "delay", 0, cx),
        repeat: seconds(args.repeat.get(), "repeat", 1, cx),
        max: args.max.get().and_then(|(v, _)| int(v, "max", cx)),
        retries: args.retries.get().and_then(|(v, _)| int(v, "retries", cx)),
        backoff: seconds(args.backoff.get(), "backoff", 0, cx),
        timeout: seconds(args.timeout.get(), "timeout", 1, cx),
        cron: cron(args, cx),
        unique_for: seconds(args.unique_for.get(), "unique_for", 0, cx),
    };
    if let Some((_, key)) = args.unique_for.get() {
        if args.cron.get().is_some() {
            cx.error_at(
                key,
                "`unique_for` cannot be combined with `cron`: a cron job already has exactly \
                 one chain, made by its schedule",
            );
        }
    }
    if let Some((lit, _)) = args.max.get() {
        if opts.max == Some(0) {
            cx.error_spanned(
                lit,
                "`max` must be at least 1: it is the number of runs after which a repeating job stops",
            );
        }
    }
    if let Some((_, key)) = args.max.get() {
        if args.repeat.get().is_none() && args.cron.get().is_none() && args.raw.get().is_none() {
            cx.error_at(
                key,
                "`max` limits how often a repeating job runs, so it needs `repeat`, \
                 like `repeat = \"30s\", max = 5`",
            );
        }
    }
    opts
}

/// The shapes of a raw job's body parameter, for messages.
const RAW_SHAPE: &str = "`body: Vec<u8>` (the bytes as they are), `text: String` (UTF-8 \
     text) or `msg: T` for a `T: Serialize + DeserializeOwned` read from the body as JSON, \
     optionally beside a `JobContext` parameter";

/// Checks what `raw` requires: exactly one body parameter, no schedule.
fn raw_body(
    args: &Args,
    func: &ItemFn,
    params: Option<&(Vec<Param>, Option<Context>)>,
    cx: &mut Ctxt,
) -> Option<Body> {
    let why = "its body is the producer's bytes, so it carries no run counter or chain id, and \
               the chain of runs could not be kept to one across crashes; leave out `raw` to \
               repeat a job";
    for (given, key) in [
        (args.repeat.get().map(|(_, k)| k), "repeat"),
        (args.cron.get().map(|(_, k)| k), "cron"),
        (args.max.get().map(|(_, k)| k), "max"),
    ] {
        if let Some(span) = given {
            cx.error_at(
                span,
                format_args!(
                    "`{key}` cannot be combined with `raw`: a raw job cannot repeat: {why}"
                ),
            );
        }
    }
    if let Some((_, span)) = args.unique_for.get() {
        cx.error_at(
            span,
            "`unique_for` cannot be combined with `raw`: a unique job carries its token in its \
             envelope, and a raw job's body is the producer's bytes, with no envelope",
        );
    }
    let (params, _) = params?;
    match params.as_slice() {
        [] => {
            cx.error_spanned(
                &func.sig.ident,
                format_args!(
                    "a raw job takes its body as a parameter, and this one has none; write \
                     {RAW_SHAPE}"
                ),
            );
            None
        }
        [one] => Some(body_kind(&one.ty)),
        [_, extra @ ..] => {
            let (first, last) = (&extra[0].arg, &extra[extra.len() - 1].arg);
            cx.error_spanned(
                quote::quote!(#first #last),
                format_args!(
                    "a raw job has one body, so it takes one parameter for it and these are \
                     extra; keep {RAW_SHAPE}"
                ),
            );
            None
        }
    }
}

/// `Vec<u8>`, `String`, or anything else (JSON).
fn body_kind(ty: &Type) -> Body {
    let Type::Path(p) = ty else {
        return match ty {
            Type::Group(g) => body_kind(&g.elem),
            Type::Paren(p) => body_kind(&p.elem),
            _ => Body::Json,
        };
    };
    let Some(last) = p.path.segments.last() else {
        return Body::Json;
    };
    match (&last.arguments, p.qself.is_none()) {
        (syn::PathArguments::None, true) if last.ident == "String" => Body::Text,
        (syn::PathArguments::AngleBracketed(a), true) if last.ident == "Vec" => {
            match a.args.iter().collect::<Vec<_>>().as_slice() {
                // `u8`, `core::primitive::u8`, ...
                [syn::GenericArgument::Type(Type::Path(t))]
                    if t.qself.is_none()
                        && t.path.segments.last().is_some_and(|s| s.ident == "u8") =>
                {
                    Body::Bytes
                }
                _ => Body::Json,
            }
        }
        _ => Body::Json,
    }
}

/// `cron`, `tz` and `catch_up`, and what they cannot be combined with.
fn cron(args: &Args, cx: &mut Ctxt) -> Option<Cron> {
    let Some((expr, _)) = args.cron.get() else {
        for (given, key) in [
            (args.tz.get().map(|(_, k)| k), "tz"),
            (args.catch_up.get().map(|(_, k)| k), "catch_up"),
        ] {
            if let Some(span) = given {
                cx.error_at(
                    span,
                    format_args!(
                        "`{key}` only applies to a cron schedule, so it needs `cron`, like \
                         `cron = \"0 9 * * MON-FRI\", {key} = {}`",
                        if key == "tz" {
                            "\"Europe/Berlin\""
                        } else {
                            "\"none\""
                        }
                    ),
                );
            }
        }
        return None;
    };
    let conflicts = [
        (
            args.repeat.get().map(|(_, k)| k),
            "`repeat` cannot be combined with `cron`: a cron job's runs come from its \
             schedule; keep one of the two",
        ),
        (
            args.delay.get().map(|(_, k)| k),
            "`delay` cannot be combined with `cron`: a cron job first runs at its \
             schedule's next tick; remove `delay` (or start the schedule later in the \
             expression)",
        ),
        (
            args.max.get().map(|(_, k)| k),
            "`max` cannot be combined with `cron`: a cron job runs for as long as its \
             schedule fires; remove `max`",
        ),
    ];
    for (key, msg) in conflicts {
        if let Some(span) = key {
            cx.error_at(span, msg);
        }
    }
    let mut ok = true;
    let text = expr.value();
    if let Err(why) = crate::cron::check_expr(&text) {
        cx.error_spanned(expr, why);
        ok = false;
    }
    let tz = match args.tz.get() {
        Some((lit, _)) => {
            let name = lit.value();
            if let Err(why) = crate::cron::check_tz(&name) {
                cx.error_spanned(lit, why);
                ok = false;
            }
            Some(name)
        }
        None => None,
    };
    let skip_missed = match args.catch_up.get() {
        Some((lit, _)) => match lit.value().as_str() {
            "one" => false,
            "none" => true,
            other => {
                cx.error_spanned(
                    lit,
                    format_args!(
                        "`catch_up = {other:?}` is not a choice: write `catch_up = \"one\"` \
                         (one run on return for all ticks missed while no worker ran; the \
                         default) or `catch_up = \"none\"` (skip them)"
                    ),
                );
                ok = false;
                false
            }
        },
        None => false,
    };
    ok.then_some(Cron {
        expr: text,
        tz,
        skip_missed,
    })
}

/// A `u32` integer literal; other suffixes and out-of-range values are errors.
fn int(lit: &LitInt, key: &str, cx: &mut Ctxt) -> Option<u32> {
    if !matches!(lit.suffix(), "" | "u32") {
        cx.error_spanned(
            lit,
            format_args!(
                "`{key}` is a u32: write `{key} = {}` without the `{}` suffix",
                lit.base10_digits(),
                lit.suffix()
            ),
        );
        return None;
    }
    match lit.base10_parse::<u32>() {
        Ok(v) => Some(v),
        Err(_) => {
            cx.error_spanned(
                lit,
                format_args!("`{key}` must fit in a u32: at most {}", u32::MAX),
            );
            None
        }
    }
}

/// A duration argument in whole seconds, at least `min`.
fn seconds(value: Option<(&DurationLit, Span)>, key: &str, min: u32, cx: &mut Ctxt) -> Option<u32> {
    let (value, _) = value?;
    let (secs, lit): (u64, &dyn quote::ToTokens) = match value {
        DurationLit::Int(lit) => {
            if lit.suffix() == "s" {
                cx.error_spanned(
                    lit,
                    format_args!(
                        "write the duration as a string: `{key} = \"{}s\"`",
                        lit.base10_digits()
                    ),
                );
                return None;
            }
            if !matches!(lit.suffix(), "" | "u32" | "u64") {
                cx.error_spanned(
                    lit,
                    format_args!(
                        "`{key}` in seconds is written `{key} = {}`, without the `{}` suffix; {}",
                        lit.base10_digits(),
                        lit.suffix(),
                        duration_hint(key)
                    ),
                );
                return None;
            }
            match lit.base10_parse::<u64>() {
                Ok(v) => (v, lit),
                Err(_) => (u64::MAX, lit),
            }
        }
        DurationLit::Str(lit) => match parse_duration(&lit.value()) {
            Ok(v) => (v, lit),
            Err(e) => {
                cx.error_spanned(lit, e.message(key, &lit.value()));
                return None;
            }
        },
    };
    let Ok(secs) = u32::try_from(secs) else {
        cx.error_spanned(
            lit,
            format_args!(
                "`{key}` is too long: durations are u32 seconds, at most {} (about 136 years)",
                u32::MAX
            ),
        );
        return None;
    };
    if secs < min {
        let why = match key {
            "ttr" => {
                "it is how long a worker may hold a job before beanstalkd gives it to another \
                 worker"
            }
            "repeat" => "it is the time between two runs of the job",
            _ => "a run allowed no time would always time out; leave `timeout` out for no limit",
        };
        cx.error_spanned(
            lit,
            format_args!("`{key}` must be at least 1 second: {why}"),
        );
        return None;
    }
    Some(secs)
}

/// The accepted forms, for messages about a duration string.
const DURATION_FORMS: &str = "durations are whole seconds, written like \"45\", \"30s\", \
                              \"5m\", \"2h\", \"1d\" or \"1h30m\"";

/// Why a duration string was rejected.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum DurationError {
    Empty,
    /// A fraction or a sub-second unit (`"1.5s"`, `"500ms"`).
    SubSecond,
    /// Anything else, with what went wrong.
    Invalid(String),
    TooLong,
}

impl DurationError {
    fn message(&self, key: &str, text: &str) -> String {
        match self {
            DurationError::Empty => format!("`{key}` is empty; {DURATION_FORMS}"),
            DurationError::SubSecond => format!(
                "`{key} = {text:?}` is not a whole number of seconds: beanstalkd counts whole \
                 seconds, so use \"1s\" or more, in whole units like \"90s\" or \"1m30s\""
            ),
            DurationError::Invalid(why) => {
                format!("invalid duration {text:?} for `{key}`: {why}; {DURATION_FORMS}")
            }
            DurationError::TooLong => format!(
                "`{key}` is too long: durations are u32 seconds, at most {} (about 136 years)",
                u32::MAX
            ),
        }
    }
}

/// `"1h30m"` → 5400. Units: s, m, h, d, w (and their long names); a bare
/// number is seconds. Components add up: `"1d12h"`; spaces between them are fine.
pub(crate) fn parse_duration(text: &str) -> Result<u64, DurationError> {
    let s = text.trim();
    if s.is_empty() {
        return Err(DurationError::Empty);
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse::<u64>().map_err(|_| DurationError::TooLong);
    }
    let mut total: u64 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            let word: String = rest.chars().take_while(|c| !c.is_whitespace()).collect();
            return Err(DurationError::Invalid(format!(
                "expected a number, found `{word}`"
            )));
        }
        let (number, after) = rest.split_at(digits);
        let number: u64 = number.parse().map_err(|_| DurationError::TooLong)?;
        if after.starts_with(['.', ',']) {
            return Err(DurationError::SubSecond);
        }
        let after = after.trim_start();
        let unit_len = after
            .char_indices()
            .find(|(_, c)| !c.is_alphabetic())
            .map_or(after.len(), |(i, _)| i);
        let (unit, after) = after.split_at(unit_len);
        let factor = match unit {
            "s" | "sec" | "secs" | "second" | "seconds" => 1,
            "m" | "min" | "mins" | "minute" | "minutes" => 60,
            "h" | "hr" | "hrs" | "hour" | "hours" => 3600,
            "d" | "day" | "days" => 86_400,
            "w" | "week" | "weeks" => 604_800,
            "ms" | "millis" | "msec" | "msecs" | "us" | "µs" | "micros" | "ns" | "nanos" => {
                if number == 0 {
                    0
                } else {
                    return Err(DurationError::SubSecond);
                }
            }
            "" => {
                return Err(DurationError::Invalid(format!(
                    "`{number}` has no unit (only a whole duration may be a bare number)"
                )))
            }
            other => {
                return Err(DurationError::Invalid(format!("unknown unit `{other}`")));
            }
        };
        total = number
            .checked_mul(factor)
            .and_then(|v| v.checked_add(total))
            .ok_or(DurationError::TooLong)?;
        rest = after.trim_start();
    }
    Ok(total)
}

fn krate(args: &Args, cx: &mut Ctxt) -> Option<syn::Path> {
    let Some((lit, _)) = args.krate.get() else {
        return Some(syn::parse_quote!(::bsjobs));
    };
    match lit.parse::<syn::Path>() {
        Ok(path) => Some(path),
        Err(_) => {
            cx.error_spanned(
                lit,
                format_args!(
                    "`crate = {:?}` is not a path; write the path of the bsjobs crate, like \
                     `crate = \"::bsjobs\"` or `crate = \"my_app::bsjobs\"`",
                    lit.value()
                ),
            );
            None
        }
    }
}

fn tube(args: &Args, ident: &Ident, name: &str, cx: &mut Ctxt) -> Option<String> {
    match args.tube.get() {
        Some((lit, _)) => {
            let tube = lit.value();
            match check_tube(&tube) {
                Ok(()) => Some(tube),
                Err(why) => {
                    tube_error(cx, lit, &tube, &why);
                    None
                }
            }
        }
        None => match check_tube(name) {
            Ok(()) => Some(name.to_owned()),
            Err(why) => {
                cx.error_spanned(
                    ident,
                    format_args!(
                        "the job's tube defaults to the function name, but `{name}` is not a \
                         valid tube name: {why}; choose one with `tube = \"...\"`"
                    ),
                );
                None
            }
        },
    }
}

fn tube_error(cx: &mut Ctxt, lit: &LitStr, tube: &str, why: &str) {
    cx.error_spanned(lit, format_args!("invalid tube name {tube:?}: {why}"));
}

/// beanstalkd's rule for names: 1 to 200 bytes of ASCII letters, digits and
/// `-+/;.$_()`, not starting with `-`.
pub(crate) fn check_tube(tube: &str) -> Result<(), String> {
    if tube.is_empty() {
        return Err(format!(
            "it is empty; tube names are 1 to {MAX_TUBE_LEN} bytes"
        ));
    }
    if tube.len() > MAX_TUBE_LEN {
        return Err(format!(
            "it is {} bytes long; beanstalkd allows at most {MAX_TUBE_LEN}",
            tube.len()
        ));
    }
    if let Some(c) = tube
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "-+/;.$_()".contains(*c)))
    {
        return Err(format!(
            "{c:?} is not allowed; tube names use ASCII letters, digits and `-+/;.$_()`"
        ));
    }
    if tube.starts_with('-') {
        return Err("it starts with `-`, which beanstalkd does not allow".to_owned());
    }
    Ok(())
}

/// `resize_image` → `ResizeImage`.
fn type_ident(ident: &Ident, name: &str, cx: &mut Ctxt) -> Option<Ident> {
    let camel = upper_camel(name);
    if camel.is_empty() {
        cx.error_spanned(
            ident,
            format_args!(
                "cannot derive a type name from `{name}`; give the function a name with letters"
            ),
        );
        return None;
    }
    if camel == name {
        cx.error_spanned(
            ident,
            format_args!(
                "#[bsjobs::job] generates a type named after the function in UpperCamelCase, \
                 which for `{name}` is `{name}` itself; name the function in snake_case"
            ),
        );
        return None;
    }
    Some(Ident::new(&camel, ident.span()))
}

pub(crate) fn upper_camel(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = true;
    for c in name.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// The job's arguments, and where the `JobContext` parameter is, if any.
fn params(func: &ItemFn, raw: bool, cx: &mut Ctxt) -> Option<(Vec<Param>, Option<Context>)> {
    let mut params = Vec::new();
    let mut context: Option<Context> = None;
    let mut ok = true;
    for (position, input) in func.sig.inputs.iter().enumerate() {
        match input {
            FnArg::Receiver(recv) => {
                ok = false;
                cx.error_spanned(
                    recv,
                    "a job must be a free function, not a method: `self` cannot be sent \
                     through the queue; move the function out of the `impl` block and pass \
                     the data it needs as arguments",
                );
            }
            FnArg::Typed(pt) if is_context(&pt.ty) => {
                // Not an argument: any pattern will do, it is passed by position.
                if context.is_some() {
                    ok = false;
                    cx.error_spanned(
                        pt,
                        "a job takes at most one `JobContext` parameter; remove this one \
                         (the first already receives the job's context)",
                    );
                } else {
                    context = Some(Context {
                        position,
                        ty: (*pt.ty).clone(),
                    });
                }
            }
            FnArg::Typed(pt) => {
                let ident = match &*pt.pat {
                    Pat::Ident(p) if p.by_ref.is_none() && p.subpat.is_none() => {
                        Some(p.ident.clone())
                    }
                    // A raw job's body is passed by position: any pattern will do.
                    _ if raw => Some(Ident::new("body", Span::call_site())),
                    pat => {
                        cx.error_spanned(
                            pat,
                            "a job parameter needs a plain name, because the name is the key \
                             of the argument in the job's JSON; write `name: Type` and \
                             destructure inside the function",
                        );
                        None
                    }
                };
                let ty_ok = check_param_type(&pt.ty, raw, cx);
                match ident {
                    Some(ident) if ty_ok => params.push(Param {
                        ident,
                        ty: (*pt.ty).clone(),
                        arg: pt.clone(),
                    }),
                    _ => ok = false,
                }
            }
        }
    }
    ok.then_some((params, context))
}

/// `JobContext` (or a path ending in it, like `bsjobs::JobContext`): the
/// macro cannot resolve types, so it goes by the name, and the generated
/// code checks that the type is bsjobs' one.
fn is_context(ty: &Type) -> bool {
    match ty {
        Type::Group(g) => is_context(&g.elem),
        Type::Paren(p) => is_context(&p.elem),
        Type::Path(p) => {
            p.qself.is_none()
                && p.path.segments.last().is_some_and(|s| {
                    s.ident == "JobContext" && matches!(s.arguments, syn::PathArguments::None)
                })
        }
        _ => false,
    }
}

/// Rejects types that cannot be decoded into an owned value: references and
/// `impl Trait`, at any depth. Whether the type is `Serialize +
/// DeserializeOwned` is left to the compiler (see `expand`).
fn check_param_type(ty: &Type, raw: bool, cx: &mut Ctxt) -> bool {
    if let Some(ctx) = find_context(ty) {
        let msg = match ty {
            Type::Reference(r) if is_context(&r.elem) => {
                "take the context by value, `ctx: JobContext`: the worker makes one for each run \
                 and hands it over, so there is nothing to borrow it from"
            }
            _ => {
                "`JobContext` must be a parameter's whole type, like `ctx: JobContext`: the \
                 worker always provides it, and inside another type it would be a job argument, \
                 which must be serializable"
            }
        };
        cx.error_spanned(ctx, msg);
        return false;
    }
    let Some(bad) = find_unowned(ty) else {
        return true;
    };
    let msg = match bad {
        Type::Reference(r) => {
            let owned = match &*r.elem {
                Type::Path(p) if p.path.is_ident("str") => "`String` instead of `&str`".to_owned(),
                Type::Slice(sl) => {
                    let elem = &sl.elem;
                    let elem = quote::quote!(#elem).to_string();
                    format!("`Vec<{elem}>` instead of `&[{elem}]`")
                }
                Type::Path(p) if p.path.is_ident("Path") => {
                    "`PathBuf` instead of `&Path`".to_owned()
                }
                elem => format!("`{}` instead of a reference", quote::quote!(#elem)),
            };
            if raw {
                format!(
                    "the body of a raw job must be owned: the worker hands it over when the job \
                     runs, so nothing can be borrowed; use {owned}"
                )
            } else {
                format!(
                    "job arguments must be owned: they are decoded from the job's JSON when it \
                     runs, so nothing can be borrowed; use {owned} (every argument type must be \
                     Serialize + DeserializeOwned)"
                )
            }
        }
        _ => "`impl Trait` is not supported in job arguments: they are decoded from the job's \
              JSON, so each needs a concrete owned type that is Serialize + DeserializeOwned"
            .to_owned(),
    };
    cx.error_spanned(bad, msg);
    false
}

/// A `JobContext` inside `ty` (which is not one itself), as the type to
/// point at: `&JobContext` whole, else the inner `JobContext`.
fn find_context(ty: &Type) -> Option<&Type> {
    match ty {
        Type::Reference(r) if is_context(&r.elem) => Some(ty),
        Type::Reference(r) => find_context(&r.elem),
        _ => inner_types(ty).into_iter().find_map(|t| {
            if is_context(t) {
                Some(t)
            } else {
                find_context(t)
            }
        }),
    }
}

/// The types directly inside `ty`: elements, type arguments.
fn inner_types(ty: &Type) -> Vec<&Type> {
    match ty {
        Type::Array(a) => vec![&a.elem],
        Type::Slice(s) => vec![&s.elem],
        Type::Group(g) => vec![&g.elem],
        Type::Paren(p) => vec![&p.elem],
        Type::Ptr(p) => vec![&p.elem],
        Type::Reference(r) => vec![&r.elem],
        Type::Tuple(t) => t.elems.iter().collect(),
        Type::Path(p) => p
            .qself
            .iter()
            .map(|q| &*q.ty)
            .chain(p.path.segments.iter().flat_map(|seg| {
                match &seg.arguments {
                    syn::PathArguments::AngleBracketed(a) => a
                        .args
                        .iter()
                        .filter_map(|arg| match arg {
                            syn::GenericArgument::Type(t) => Some(t),
                            _ => None,
                        })
                        .collect::<Vec<_>>(),
                    _ => Vec::new(),
                }
            }))
            .collect(),
        _ => Vec::new(),
    }
}

fn find_unowned(ty: &Type) -> Option<&Type> {
    match ty {
        Type::Reference(_) | Type::ImplTrait(_) => Some(ty),
        Type::Array(a) => find_unowned(&a.elem),
        Type::Slice(s) => find_unowned(&s.elem),
        Type::Group(g) => find_unowned(&g.elem),
        Type::Paren(p) => find_unowned(&p.elem),
        Type::Tuple(t) => t.elems.iter().find_map(find_unowned),
        Type::Path(p) => {
            let in_qself = p.qself.as_ref().and_then(|q| find_unowned(&q.ty));
            in_qself.or_else(|| {
                p.path.segments.iter().find_map(|seg| match &seg.arguments {
                    syn::PathArguments::AngleBracketed(a) => {
                        a.args.iter().find_map(|arg| match arg {
                            syn::GenericArgument::Type(t) => find_unowned(t),
                            _ => None,
                        })
                    }
                    _ => None,
                })
            })
        }
        _ => None,
    }
}

/// `None` → `Some(None)`, `-> ()`/`-> …::Result<…>` → `Some(Some(ty))`,
/// anything else is reported.
fn output(output: &ReturnType, cx: &mut Ctxt) -> Option<Option<Type>> {
    let ReturnType::Type(_, ty) = output else {
        return Some(None);
    };
    let supported = match &**ty {
        Type::Tuple(t) => t.elems.is_empty(),
        Type::Path(p) => {
            p.qself.is_none() && p.path.segments.last().is_some_and(|s| s.ident == "Result")
        }
        _ => false,
    };
    if supported {
        Some(Some((**ty).clone()))
    } else {
        cx.error_spanned(
            ty,
            "a job must return nothing, `()`, or `Result<(), E>` where `E: Display` \
             (an `Err` fails the run and is retried); other return types are not supported",
        );
        None
    }
}

/// `#[bsjobs::job] #[bsjobs::job] fn ..`: the outer one sees the inner one
/// among the function's attributes.
fn applied_once(func: &ItemFn, cx: &mut Ctxt) {
    for attr in &func.attrs {
        let path = attr.path();
        let segments: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
        if matches!(segments.as_slice(), [b, j] if b == "bsjobs" && j == "job") {
            cx.error_spanned(
                attr,
                "#[bsjobs::job] is applied twice to this function; merge the arguments into one \
                 attribute",
            );
        }
    }
}

/// What precedes the parameters: `const`, `unsafe`, `extern`, generics.
fn signature(func: &ItemFn, cx: &mut Ctxt) {
    let sig = &func.sig;
    if let Some(t) = &sig.constness {
        cx.error_spanned(t, "a job function cannot be a `const fn`: the worker calls it at run time; remove `const`");
    }
    if let Some(t) = &sig.unsafety {
        cx.error_spanned(
            t,
            "a job function cannot be an `unsafe fn`: the worker calls it with arguments from \
             the queue and cannot uphold its safety contract; make it safe and keep the \
             `unsafe` block inside",
        );
    }
    if let Some(abi) = &sig.abi {
        cx.error_spanned(
            abi,
            "a job function cannot be `extern`: write a plain Rust fn (it may call the \
             extern one)",
        );
    }
    let generics = &sig.generics;
    for param in &generics.params {
        match param {
            syn::GenericParam::Lifetime(_) => cx.error_spanned(
                param,
                "a job function cannot have lifetime parameters: its arguments are decoded \
                 from the job's JSON and must be owned (`String`, not `&str`)",
            ),
            syn::GenericParam::Type(_) => cx.error_spanned(
                param,
                "a job function cannot be generic: the worker must know the concrete argument \
                 types to decode them from the job's JSON; use concrete types",
            ),
            syn::GenericParam::Const(_) => cx.error_spanned(
                param,
                "a job function cannot have const generics: the worker calls one concrete \
                 function; pass the value as an argument",
            ),
        }
    }
}

/// What follows the parameters: `...` and the `where` clause.
fn trailing(func: &ItemFn, cx: &mut Ctxt) {
    if let Some(v) = &func.sig.variadic {
        cx.error_spanned(
            v,
            "a job function cannot be variadic: give each argument a name and a type",
        );
    }
    if let Some(w) = &func.sig.generics.where_clause {
        cx.error_spanned(
            w,
            "a job function cannot have a `where` clause: its argument types must be concrete",
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        for (text, secs) in [
            ("45", 45),
            (" 45 ", 45),
            ("0", 0),
            ("30s", 30),
            ("5m", 300),
            ("2h", 7200),
            ("1d", 86_400),
            ("1w", 604_800),
            ("1h30m", 5400),
            ("1h 30m 5s", 5405),
            ("2 hours", 7200),
            ("90 seconds", 90),
            ("0ms", 0),
            ("4294967295", 4_294_967_295),
        ] {
            assert_eq!(parse_duration(text), Ok(secs), "{text}");
        }
        for text in ["500ms", "1.5s", "0.5", "1,5s", "10us", "1s500ms"] {
            assert_eq!(
                parse_duration(text),
                Err(DurationError::SubSecond),
                "{text}"
            );
        }
        assert_eq!(parse_duration(""), Err(DurationError::Empty));
        assert_eq!(parse_duration("   "), Err(DurationError::Empty));
        for text in ["5 mins later", "1h30", "h", "-5s", "5x", "s5", "1h-"] {
            assert!(
                matches!(parse_duration(text), Err(DurationError::Invalid(_))),
                "{text}"
            );
        }
        assert_eq!(
            parse_duration("99999999999999999999"),
            Err(DurationError::TooLong)
        );
        assert_eq!(
            parse_duration("9999999999999999d"),
            Err(DurationError::TooLong)
        );
    }

    #[test]
    fn tube_names() {
        for ok in ["email", "a", "A-z0+9/;.$_()", &"x".repeat(200)] {
            assert_eq!(check_tube(ok), Ok(()), "{ok}");
        }
        for bad in ["", "-email", "has space", "émail", "a,b", &"x".repeat(201)] {
            assert!(check_tube(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn raw_body_shapes() {
        let kind = |ty: &str| body_kind(&syn::parse_str::<Type>(ty).unwrap());
        for ty in ["Vec<u8>", "std::vec::Vec<u8>", "Vec<core::primitive::u8>"] {
            assert!(kind(ty) == Body::Bytes, "{ty}");
        }
        for ty in ["String", "std::string::String", "alloc::string::String"] {
            assert!(kind(ty) == Body::Text, "{ty}");
        }
        for ty in [
            "Vec<u16>",
            "Vec<String>",
            "Signup",
            "Option<String>",
            "[u8; 4]",
            "Box<str>",
        ] {
            assert!(kind(ty) == Body::Json, "{ty}");
        }
    }

    #[test]
    fn type_names() {
        assert_eq!(upper_camel("email"), "Email");
        assert_eq!(upper_camel("resize_image"), "ResizeImage");
        assert_eq!(upper_camel("_private_job"), "PrivateJob");
        assert_eq!(upper_camel("job2_x"), "Job2X");
        assert_eq!(upper_camel("__"), "");
    }
}
