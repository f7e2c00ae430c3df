//! Phase 1: the attribute's `key = value` list into typed literals.
//!
//! Only the shape is checked here (known key, given once, literal of the
//! right kind); what the values mean is checked in `validate`.

use crate::ctxt::{Attr, Ctxt};
use proc_macro2::TokenStream;
use syn::parse::Parser;
use syn::{Expr, ExprLit, Lit, LitInt, LitStr, UnOp};

/// Every key the attribute accepts, in the order the docs list them.
pub(crate) const KEYS: &[&str] = &[
    "tube",
    "priority",
    "ttr",
    "delay",
    "repeat",
    "max",
    "retries",
    "backoff",
    "timeout",
    "cron",
    "tz",
    "catch_up",
    "unique_for",
    "raw",
    "crate",
];

/// Words people reach for, mapped to the key that does that job.
const ALIASES: &[(&str, &str)] = &[
    ("queue", "tube"),
    ("name", "tube"),
    ("pri", "priority"),
    ("prio", "priority"),
    ("time_to_run", "ttr"),
    ("every", "repeat"),
    ("interval", "repeat"),
    ("period", "repeat"),
    ("times", "max"),
    ("max_runs", "max"),
    ("limit", "max"),
    ("retry", "retries"),
    ("attempts", "retries"),
    ("max_retries", "retries"),
    ("retry_delay", "backoff"),
    ("deadline", "timeout"),
    ("schedule", "cron"),
    ("crontab", "cron"),
    ("timezone", "tz"),
    ("time_zone", "tz"),
    ("zone", "tz"),
    ("catchup", "catch_up"),
    ("missed", "catch_up"),
    ("unique", "unique_for"),
    ("unique_within", "unique_for"),
    ("dedupe", "unique_for"),
    ("dedup", "unique_for"),
];

/// A duration as written: `"1h30m"` or a number of seconds.
pub(crate) enum DurationLit {
    Str(LitStr),
    Int(LitInt),
}

/// The arguments as written, each at most once.
pub(crate) struct Args {
    pub(crate) tube: Attr<LitStr>,
    pub(crate) priority: Attr<LitInt>,
    pub(crate) ttr: Attr<DurationLit>,
    pub(crate) delay: Attr<DurationLit>,
    pub(crate) repeat: Attr<DurationLit>,
    pub(crate) max: Attr<LitInt>,
    pub(crate) retries: Attr<LitInt>,
    pub(crate) backoff: Attr<DurationLit>,
    pub(crate) timeout: Attr<DurationLit>,
    pub(crate) cron: Attr<LitStr>,
    pub(crate) tz: Attr<LitStr>,
    pub(crate) catch_up: Attr<LitStr>,
    pub(crate) unique_for: Attr<DurationLit>,
    /// The flag `raw`: the body is the producer's bytes, no envelope.
    pub(crate) raw: Attr<()>,
    pub(crate) krate: Attr<LitStr>,
}

impl Args {
    fn new() -> Self {
        Args {
            tube: Attr::none("tube"),
            priority: Attr::none("priority"),
            ttr: Attr::none("ttr"),
            delay: Attr::none("delay"),
            repeat: Attr::none("repeat"),
            max: Attr::none("max"),
            retries: Attr::none("retries"),
            backoff: Attr::none("backoff"),
            timeout: Attr::none("timeout"),
            cron: Attr::none("cron"),
            tz: Attr::none("tz"),
            catch_up: Attr::none("catch_up"),
            unique_for: Attr::none("unique_for"),
            raw: Attr::none("raw"),
            krate: Attr::none("crate"),
        }
    }
}

/// Parses the tokens inside `#[job(...)]`. Errors go to `cx`; whatever was
/// valid is kept.
pub(crate) fn args(tokens: TokenStream, cx: &mut Ctxt) -> Args {
    let mut args = Args::new();
    let parser = syn::meta::parser(|meta| {
        let path = meta.path.clone();
        let key = path
            .get_ident()
            .map(|i| syn::ext::IdentExt::unraw(i).to_string());
        if key.as_deref() == Some("raw") {
            // A flag: `raw` alone.
            if meta.input.peek(syn::Token![=]) || meta.input.peek(syn::token::Paren) {
                if meta.input.peek(syn::Token![=]) {
                    let _ = meta.value()?.parse::<Expr>()?;
                } else {
                    let _ = meta.input.parse::<proc_macro2::Group>();
                }
                cx.error_spanned(
                    &path,
                    "`raw` is a flag: write it alone, like `#[bsjobs::job(tube = \"legacy\", raw)]`",
                );
                return Ok(());
            }
            args.raw.set(cx, &path, Ok(()));
            return Ok(());
        }
        if !meta.input.peek(syn::Token![=]) {
            // `tube`, `tube("x")`, `tube: "x"`: skip what follows and teach the form.
            if meta.input.peek(syn::token::Paren) {
                let _ = meta.input.parse::<proc_macro2::Group>();
            }
            let name = key.unwrap_or_else(|| path_string(&path));
            return Err(meta.error(format_args!(
                "expected `{name} = value`: arguments of #[bsjobs::job] are written `key = value`, \
                 like `tube = \"email\"`"
            )));
        }
        let value = unwrap_group(meta.value()?.parse::<Expr>()?);
        let Some(key) = key.filter(|k| KEYS.contains(&k.as_str())) else {
            cx.error_spanned(&path, unknown_key(&path_string(&path)));
            return Ok(());
        };
        match key.as_str() {
            "tube" => args.tube.set(cx, &path, string("tube", &value, TUBE_HINT)),
            "priority" => args
                .priority
                .set(cx, &path, integer("priority", &value, PRIORITY_HINT)),
            "ttr" => args.ttr.set(cx, &path, duration("ttr", &value)),
            "delay" => args.delay.set(cx, &path, duration("delay", &value)),
            "repeat" => args.repeat.set(cx, &path, duration("repeat", &value)),
            "max" => args.max.set(cx, &path, integer("max", &value, MAX_HINT)),
            "retries" => args
                .retries
                .set(cx, &path, integer("retries", &value, RETRIES_HINT)),
            "backoff" => args.backoff.set(cx, &path, duration("backoff", &value)),
            "timeout" => args.timeout.set(cx, &path, duration("timeout", &value)),
            "cron" => args.cron.set(cx, &path, string("cron", &value, CRON_HINT)),
            "tz" => args.tz.set(cx, &path, string("tz", &value, TZ_HINT)),
            "catch_up" => args
                .catch_up
                .set(cx, &path, string("catch_up", &value, CATCH_UP_HINT)),
            "unique_for" => args
                .unique_for
                .set(cx, &path, duration("unique_for", &value)),
            "raw" => unreachable!("`raw` is a flag, handled above"),
            "crate" => args
                .krate
                .set(cx, &path, string("crate", &value, CRATE_HINT)),
            _ => unreachable!("every entry of KEYS has an arm"),
        }
        Ok(())
    });
    if let Err(e) = parser.parse2(tokens) {
        cx.push(e);
    }
    args
}

const TUBE_HINT: &str = "a string literal, like `tube = \"email\"`";
const PRIORITY_HINT: &str =
    "an integer literal from 0 to 4294967295, like `priority = 10` (smaller runs first)";
const MAX_HINT: &str = "an integer literal, the number of runs, like `max = 5`";
const RETRIES_HINT: &str = "an integer literal, like `retries = 3`";
const CRON_HINT: &str =
    "a string literal holding a cron expression, like `cron = \"0 9 * * MON-FRI\"`";
const TZ_HINT: &str = "a string literal naming an IANA time zone, like `tz = \"Europe/Berlin\"`";
const CATCH_UP_HINT: &str = "a string literal, `catch_up = \"one\"` or `catch_up = \"none\"`";
const CRATE_HINT: &str = "a string literal holding a path, like `crate = \"::bsjobs\"`";

/// `(a)` and invisible groups (from `macro_rules!` fragments) to what is inside.
fn unwrap_group(expr: Expr) -> Expr {
    match expr {
        Expr::Group(g) => unwrap_group(*g.expr),
        Expr::Paren(p) => unwrap_group(*p.expr),
        e => e,
    }
}

fn string(key: &str, value: &Expr, hint: &str) -> syn::Result<LitStr> {
    match value {
        Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) => Ok(s.clone()),
        other => Err(wrong_type(key, other, hint)),
    }
}

fn integer(key: &str, value: &Expr, hint: &str) -> syn::Result<LitInt> {
    match value {
        Expr::Lit(ExprLit {
            lit: Lit::Int(i), ..
        }) => Ok(i.clone()),
        Expr::Unary(u) if matches!(u.op, UnOp::Neg(_)) && is_number(&u.expr) => {
            Err(syn::Error::new_spanned(
                value,
                format_args!("`{key}` cannot be negative: it expects {hint}"),
            ))
        }
        other => Err(wrong_type(key, other, hint)),
    }
}

fn duration(key: &str, value: &Expr) -> syn::Result<DurationLit> {
    match value {
        Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) => Ok(DurationLit::Str(s.clone())),
        Expr::Lit(ExprLit {
            lit: Lit::Int(i), ..
        }) => Ok(DurationLit::Int(i.clone())),
        Expr::Lit(ExprLit {
            lit: Lit::Float(f), ..
        }) => Err(syn::Error::new_spanned(
            f,
            format_args!(
                "`{key}` must be a whole number of seconds: beanstalkd counts whole seconds; \
                 write an integer like `{key} = 2` or a string like `{key} = \"2s\"`"
            ),
        )),
        Expr::Unary(u) if matches!(u.op, UnOp::Neg(_)) && is_number(&u.expr) => {
            Err(syn::Error::new_spanned(
                value,
                format_args!("`{key}` cannot be negative: {}", duration_hint(key)),
            ))
        }
        other => Err(wrong_type(key, other, &duration_hint(key))),
    }
}

/// What a duration argument accepts, for messages.
pub(crate) fn duration_hint(key: &str) -> String {
    format!(
        "`{key}` expects a duration: a string like `{key} = \"30s\"`, `\"5m\"`, `\"2h\"`, \
         `\"1d\"`, `\"1h30m\"`, or an integer number of seconds like `{key} = 30`"
    )
}

fn is_number(expr: &Expr) -> bool {
    matches!(
        expr,
        Expr::Lit(ExprLit {
            lit: Lit::Int(_) | Lit::Float(_),
            ..
        })
    )
}

fn wrong_type(key: &str, value: &Expr, hint: &str) -> syn::Error {
    if let (Some(path), "crate") = (as_path(value), key) {
        return syn::Error::new_spanned(
            value,
            format_args!(
                "`crate` expects a string literal holding a path: write `crate = \"{path}\"`"
            ),
        );
    }
    let found = describe(value);
    let msg = if hint.starts_with('`') {
        // A full sentence already naming the key (durations).
        format!("{hint}; found {found}")
    } else {
        format!("`{key}` expects {hint}; found {found}")
    };
    syn::Error::new_spanned(value, msg)
}

/// "a string literal", "a path", ... for "found ..." in messages.
fn describe(expr: &Expr) -> &'static str {
    match expr {
        Expr::Lit(ExprLit { lit, .. }) => match lit {
            Lit::Str(_) => "a string literal",
            Lit::ByteStr(_) => "a byte string literal",
            Lit::CStr(_) => "a C string literal",
            Lit::Byte(_) => "a byte literal",
            Lit::Char(_) => "a character literal",
            Lit::Int(_) => "an integer literal",
            Lit::Float(_) => "a float literal",
            Lit::Bool(_) => "a boolean",
            _ => "a literal of another kind",
        },
        Expr::Path(_) => "a path (constants are not supported here; write the value itself)",
        Expr::Macro(_) => "a macro call (write the literal itself)",
        Expr::Unary(_) => "an expression",
        _ => "an expression (only literals are supported)",
    }
}

fn as_path(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Path(p) if p.qself.is_none() => Some(path_string(&p.path)),
        _ => None,
    }
}

fn path_string(path: &syn::Path) -> String {
    let mut s = String::new();
    if path.leading_colon.is_some() {
        s.push_str("::");
    }
    for (i, seg) in path.segments.iter().enumerate() {
        if i > 0 {
            s.push_str("::");
        }
        s.push_str(&seg.ident.to_string());
    }
    s
}

fn unknown_key(key: &str) -> String {
    let valid = KEYS
        .iter()
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ");
    match suggest(key) {
        Some(s) => {
            format!("unknown argument `{key}`: did you mean `{s}`? #[bsjobs::job] accepts {valid}")
        }
        None => format!("unknown argument `{key}`: #[bsjobs::job] accepts {valid}"),
    }
}

/// The key `key` most likely meant: a known alias, else the nearest key by
/// edit distance if it is close enough to be a typo.
fn suggest(key: &str) -> Option<&'static str> {
    let lower = key.to_ascii_lowercase();
    if let Some((_, k)) = ALIASES.iter().find(|(alias, _)| *alias == lower) {
        return Some(k);
    }
    KEYS.iter()
        .map(|k| (edit_distance(&lower, k), *k))
        .filter(|(d, k)| *d <= (k.len() / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Optimal-string-alignment distance: insertions, deletions, substitutions
/// and swaps of adjacent characters each cost one.
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        assert_eq!(edit_distance("tube", "tube"), 0);
        assert_eq!(edit_distance("tueb", "tube"), 1);
        assert_eq!(edit_distance("priorty", "priority"), 1);
        assert_eq!(edit_distance("", "ttr"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn suggestions() {
        assert_eq!(suggest("tueb"), Some("tube"));
        assert_eq!(suggest("Priority"), Some("priority"));
        assert_eq!(suggest("priorty"), Some("priority"));
        assert_eq!(suggest("retry"), Some("retries"));
        assert_eq!(suggest("queue"), Some("tube"));
        assert_eq!(suggest("tt"), Some("ttr"));
        assert_eq!(suggest("timeuot"), Some("timeout"));
        assert_eq!(suggest("color"), None);
    }
}
