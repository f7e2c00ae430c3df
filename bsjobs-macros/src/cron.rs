//! Cron schedules checked at compile time with the crates the runtime uses:
//! `croner` for the expression, `chrono-tz` for the IANA zone name.
//!
//! The expression is parsed as the worker parses it: 5 fields (minute hour
//! day-of-month month day-of-week) or 6 with leading seconds, no year
//! field; names such as `MON-FRI` and `JAN` and nicknames such as `@daily`
//! are accepted.

use crate::parse::edit_distance;
use chrono::{TimeZone as _, Utc};
use croner::parser::{CronParser, Seconds, Year};

/// The parser the runtime must use too, so that what compiles runs.
pub(crate) fn parser() -> CronParser {
    CronParser::builder()
        .seconds(Seconds::Optional)
        .year(Year::Disallowed)
        .build()
}

/// What a cron expression must look like, for messages.
pub(crate) const CRON_FORMS: &str = "`cron` takes 5 fields (minute hour day-of-month month \
     day-of-week), like `cron = \"0 9 * * MON-FRI\"`, or 6 with leading seconds, like \
     `cron = \"*/5 * * * * *\"`";

/// `Ok` if `expr` parses and fires at least once; else why not.
pub(crate) fn check_expr(expr: &str) -> Result<(), String> {
    let trimmed = expr.trim();
    if trimmed.is_empty() {
        return Err(format!("`cron` is empty; {CRON_FORMS}"));
    }
    let fields = trimmed.split_whitespace().count();
    if !trimmed.starts_with('@') && !(5..=6).contains(&fields) {
        return Err(format!(
            "`cron = {expr:?}` has {fields} field{}; {CRON_FORMS}",
            if fields == 1 { "" } else { "s" }
        ));
    }
    let cron = parser().parse(trimmed).map_err(|e| {
        let why = e.to_string();
        let why = why.trim_end_matches('.');
        format!("invalid cron expression {expr:?}: {why}; {CRON_FORMS}")
    })?;
    // A fixed instant keeps the build reproducible; a schedule that fires
    // at all fires within the next 400 years from any start.
    let start = Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 0).unwrap();
    match cron.find_next_occurrence(&start, true) {
        Ok(_) => Ok(()),
        Err(_) => Err(format!(
            "`cron = {expr:?}` never fires: no date matches it (check the day of the month \
             against the month)"
        )),
    }
}

/// `Ok` if `name` is an IANA zone of the time-zone database; else why not,
/// with the nearest names.
pub(crate) fn check_tz(name: &str) -> Result<(), String> {
    if name.parse::<chrono_tz::Tz>().is_ok() {
        return Ok(());
    }
    let lower = name.to_ascii_lowercase();
    let names = chrono_tz::TZ_VARIANTS.iter().map(|tz| tz.name());
    let hint = match names.clone().find(|n| n.to_ascii_lowercase() == lower) {
        Some(exact) => format!("names are case-sensitive: write {exact:?}"),
        None => {
            let mut near: Vec<(usize, &str)> = names
                .map(|n| (edit_distance(&lower, &n.to_ascii_lowercase()), n))
                .filter(|(d, n)| *d <= (n.len() / 4).max(2))
                .collect();
            near.sort();
            match near.first() {
                Some((_, n)) => format!("did you mean {n:?}?"),
                None => "use a name of the IANA time-zone database, like \"Europe/Berlin\", \
                         \"America/New_York\" or \"UTC\""
                    .to_owned(),
            }
        }
    };
    Err(format!("unknown time zone {name:?} for `tz`: {hint}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expressions() {
        for ok in [
            "0 9 * * MON-FRI",
            "*/5 * * * * *",
            "0 0 9 * * MON-FRI",
            "30 2 * * *",
            "0 0 29 2 *",
            "@daily",
            " 0 9 * * 1 ",
        ] {
            assert_eq!(check_expr(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "* * * *",
            "0 0 0 1 1 * 2030",
            "60 * * * *",
            "0 9 * * MONDAY",
            "0 0 30 2 *",
            "@sometimes",
        ] {
            assert!(check_expr(bad).is_err(), "{bad}");
        }
        assert!(check_expr("0 0 30 2 *")
            .unwrap_err()
            .contains("never fires"));
        assert!(check_expr("* * * *").unwrap_err().contains("4 fields"));
    }

    #[test]
    fn zones() {
        for ok in ["Europe/Berlin", "UTC", "America/New_York", "Asia/Kolkata"] {
            assert_eq!(check_tz(ok), Ok(()), "{ok}");
        }
        assert!(check_tz("europe/berlin")
            .unwrap_err()
            .contains("\"Europe/Berlin\""));
        assert!(check_tz("Europe/Berln")
            .unwrap_err()
            .contains("did you mean \"Europe/Berlin\""));
        assert!(check_tz("Mars/Olympus").is_err());
    }
}
