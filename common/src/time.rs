//! FTP time values (RFC 3659 §2.3) and UTC date-times, for the server (MDTM, MFMT, MLSx facts, listings) and the
//! client alike. Pure calendar arithmetic on given times: nothing here reads a clock.
//!
//! MDTM replies, MLSx `modify` facts and the MFMT argument carry a UTC time as `YYYYMMDDHHMMSS`, optionally followed
//! by `.` and fractions of a second. These functions convert between that form and [`SystemTime`] with the proleptic
//! Gregorian calendar, without time zone data: FTP times are UTC by definition, and so is everything printed here.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

const SECS_PER_DAY: i64 = 86_400;

/// Parses an RFC 3659 time-val: 14 digits `YYYYMMDDHHMMSS`, then optionally `.` and one or more digits of fraction.
/// Every field must be in range (a leap second, 60, is accepted). `None` for anything else.
pub fn parse_ftp_time(text: &str) -> Option<SystemTime> {
    let (whole, fraction) = match text.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (text, None),
    };
    if whole.len() != 14 || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let field = |range: std::ops::Range<usize>| whole[range].parse::<u32>().ok();
    let (year, month, day) = (field(0..4)?, field(4..6)?, field(6..8)?);
    let (hour, minute, second) = (field(8..10)?, field(10..12)?, field(12..14)?);
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let nanos = match fraction {
        None => 0,
        Some(f) if !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()) => {
            // Only the first nine digits (nanoseconds) can be represented; the rest are dropped.
            let digits = &f[..f.len().min(9)];
            digits.parse::<u32>().ok()? * 10u32.pow(9 - digits.len() as u32)
        }
        Some(_) => return None,
    };
    let days = days_from_civil(i64::from(year), month, day);
    let secs = days * SECS_PER_DAY + i64::from(hour * 3600 + minute * 60 + second);
    Some(from_unix(secs, nanos))
}

/// `YYYYMMDDHHMMSS` for `time` in UTC (whole seconds, rounded down), the form MFMT takes.
pub fn format_ftp_time(time: SystemTime) -> String {
    let (year, month, day, hour, minute, second) = civil(time);
    format!("{year:04}{month:02}{day:02}{hour:02}{minute:02}{second:02}")
}

/// `YYYY-MM-DD HH:MM:SS` in UTC.
pub fn format_utc(time: SystemTime) -> String {
    let (year, month, day, hour, minute, second) = civil(time);
    format!("{year:04}-{month:02}-{day:02} {hour:02}:{minute:02}:{second:02}")
}

/// `YYYY-MM-DD HH:MM` in UTC.
pub fn format_utc_minutes(time: SystemTime) -> String {
    let (year, month, day, hour, minute, _) = civil(time);
    format!("{year:04}-{month:02}-{day:02} {hour:02}:{minute:02}")
}

/// Year, month, day, hour, minute and second of `time` in UTC.
pub fn civil(time: SystemTime) -> (i64, u32, u32, u32, u32, u32) {
    let secs = to_unix(time);
    let (days, of_day) = (secs.div_euclid(SECS_PER_DAY), secs.rem_euclid(SECS_PER_DAY) as u32);
    let (year, month, day) = civil_from_days(days);
    (year, month, day, of_day / 3600, of_day / 60 % 60, of_day % 60)
}

/// Whole seconds since the Unix epoch, rounded down (also before 1970).
fn to_unix(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_secs()).unwrap_or(i64::MAX),
        Err(e) => {
            let before = e.duration();
            let secs = i64::try_from(before.as_secs()).unwrap_or(i64::MAX);
            if before.subsec_nanos() > 0 {
                -secs - 1
            } else {
                -secs
            }
        }
    }
}

fn from_unix(secs: i64, nanos: u32) -> SystemTime {
    if secs >= 0 {
        UNIX_EPOCH + Duration::new(secs.unsigned_abs(), nanos)
    } else {
        UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs()) + Duration::from_nanos(u64::from(nanos))
    }
}

fn is_leap(year: u32) -> bool {
    (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400)
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a Gregorian date (H. Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year.rem_euclid(400);
    let month = i64::from(month);
    let day_of_year = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The Gregorian date of a day count since 1970-01-01 (H. Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn at(secs: i64) -> SystemTime {
        from_unix(secs, 0)
    }

    // RFC 3659 §2.3: YYYYMMDDHHMMSS, UTC, with optional fractions.
    #[test]
    fn parses_time_values() {
        assert_eq!(parse_ftp_time("19700101000000"), Some(UNIX_EPOCH));
        assert_eq!(parse_ftp_time("20240102030405"), Some(at(1_704_164_645)));
        assert_eq!(parse_ftp_time("20240102030405.5"), Some(at(1_704_164_645) + Duration::from_millis(500)));
        assert_eq!(
            parse_ftp_time("20240102030405.0123456789"),
            Some(at(1_704_164_645) + Duration::from_nanos(12_345_678))
        );
        assert_eq!(parse_ftp_time("20000229235960"), Some(at(951_868_800)));
        assert_eq!(parse_ftp_time("19691231235959"), Some(at(-1)));
    }

    #[test]
    fn refuses_malformed_time_values() {
        for bad in [
            "",
            "2024010203040",
            "202401020304050",
            "2024-1-02030405",
            "20241302030405",
            "20240230030405",
            "20230229000000",
            "20240100000000",
            "20240102240000",
            "20240102236000",
            "20240102030461",
            "20240102030405.",
            "20240102030405.x",
            " 20240102030405",
            "+2024010203040",
        ] {
            assert_eq!(parse_ftp_time(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn formats_utc() {
        let t = at(1_704_164_645) + Duration::from_millis(999);
        assert_eq!(format_ftp_time(t), "20240102030405");
        assert_eq!(format_utc(t), "2024-01-02 03:04:05");
        assert_eq!(format_utc_minutes(t), "2024-01-02 03:04");
        assert_eq!(format_utc(at(-1)), "1969-12-31 23:59:59");
        assert_eq!(format_utc(UNIX_EPOCH - Duration::from_millis(1)), "1969-12-31 23:59:59");
        assert_eq!(format_utc(at(951_782_400)), "2000-02-29 00:00:00");
        assert_eq!(format_utc(at(253_402_300_799)), "9999-12-31 23:59:59");
    }

    // Every day over four centuries survives the round trip, which covers all the leap year rules.
    #[test]
    fn calendar_round_trip() {
        for days in (-146_097 * 2..146_097 * 2).step_by(13) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
            if y >= 0 {
                assert!(d <= days_in_month(y as u32, m));
            }
        }
        for secs in [0i64, 59, 86_399, 86_400, 1_704_164_645, 4_102_444_800, -86_401] {
            let t = at(secs);
            assert_eq!(parse_ftp_time(&format_ftp_time(t)), Some(t), "{secs}");
        }
    }

    /// 0000-01-01T00:00:00Z and 9999-12-31T23:59:59Z: the range four digits of year can carry.
    const FIRST: i64 = -62_167_219_200;
    const LAST: i64 = 253_402_300_799;

    proptest! {
        // Every time from year 0 to 9999 survives formatting and parsing, to the second; with its fraction
        // written out, to the nanosecond.
        #[test]
        fn time_round_trip(secs in FIRST..=LAST, nanos in 0u32..1_000_000_000) {
            let whole = from_unix(secs, 0);
            let t = from_unix(secs, nanos);
            prop_assert_eq!(parse_ftp_time(&format_ftp_time(t)), Some(whole));
            prop_assert_eq!(parse_ftp_time(&format!("{}.{nanos:09}", format_ftp_time(t))), Some(t));
            let (y, mo, d, h, mi, s) = civil(t);
            prop_assert_eq!(format_utc(t), format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}"));
        }

        // Fourteen digits parse exactly when every field is in range, and then format back unchanged (a leap
        // second, 60, lands on the next minute).
        #[test]
        fn parses_exactly_the_valid_dates(y in 0u32..=9999, mo in 0u32..=13, d in 0u32..=32, h in 0u32..=25,
                                          mi in 0u32..=61, s in 0u32..=61) {
            let text = format!("{y:04}{mo:02}{d:02}{h:02}{mi:02}{s:02}");
            let valid = (1..=12).contains(&mo) && d >= 1 && d <= days_in_month(y, mo) && h < 24 && mi < 60 && s <= 60;
            let parsed = parse_ftp_time(&text);
            prop_assert_eq!(parsed.is_some(), valid, "{}", text);
            if let (Some(t), true) = (parsed, s < 60) {
                prop_assert_eq!(format_ftp_time(t), text);
            }
        }

        // Whatever the text, parsing never panics, and what parses lies in the four-digit range.
        #[test]
        fn parse_never_panics(text in "[0-9]{12,16}(\\.[0-9]{0,12})?|\\PC{0,24}") {
            if let Some(t) = parse_ftp_time(&text) {
                let secs = to_unix(t);
                prop_assert!((FIRST..=LAST + 1).contains(&secs), "{} -> {}", text, secs);
            }
        }
    }
}
