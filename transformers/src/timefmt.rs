//! Publisher timestamps to UTC milliseconds, without a clock.
//!
//! * Clarity: `11/6/2020 1:05:50 PM EST` (local time plus a US zone
//!   abbreviation).
//! * ISO 8601: `2021-01-12T00:09:58.230Z`, `2015-11-04T15:51:27Z`,
//!   `2021-01-05T19:00:00-05:00`.
//! * US local time with no zone (`11/10/2014  5:07:56 PM`) when the feed config
//!   supplies the UTC offset.

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// A wall-clock time and its UTC offset in minutes.
struct Civil {
    y: i64,
    mo: u32,
    d: u32,
    h: u32,
    mi: u32,
    s: u32,
    ms: u32,
    offset_min: i32,
}

/// Days in month `m` of year `y` (proleptic Gregorian).
fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        4 | 6 | 9 | 11 => 30,
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        _ => 31,
    }
}

/// The most a UTC offset can be: real zones run from -12:00 to +14:00.
const MAX_OFFSET_MIN: i32 = 14 * 60;

fn epoch_ms(t: Civil) -> Option<i64> {
    // Election results are dated; anything outside this range is garbage (and
    // would overflow the arithmetic below). A date that does not exist
    // (`11/31/2020`, `2/29/2021`) is refused, never rolled into the next
    // month.
    if !(1900..=2200).contains(&t.y)
        || !(1..=12).contains(&t.mo)
        || t.d < 1
        || t.d > days_in_month(t.y, t.mo)
        || t.h > 23
        || t.mi > 59
        || t.s > 60
        || t.offset_min.abs() > MAX_OFFSET_MIN
    {
        return None;
    }
    let days = days_from_civil(t.y, t.mo, t.d);
    let secs = days * 86_400 + t.h as i64 * 3600 + t.mi as i64 * 60 + t.s as i64
        - t.offset_min as i64 * 60;
    Some(secs * 1000 + t.ms as i64)
}

/// UTC offset in minutes of a US zone abbreviation.
pub fn us_zone_offset(abbrev: &str) -> Option<i32> {
    Some(match abbrev.to_ascii_uppercase().as_str() {
        "UTC" | "GMT" | "Z" => 0,
        "EST" => -300,
        "EDT" => -240,
        "CST" => -360,
        "CDT" => -300,
        "MST" => -420,
        "MDT" => -360,
        "PST" => -480,
        "PDT" => -420,
        "AKST" => -540,
        "AKDT" => -480,
        "HST" => -600,
        _ => return None,
    })
}

/// `M/D/YYYY h:mm[:ss] AM|PM [ZONE]`. Without a zone, `default_offset_min`
/// must be given.
pub fn parse_us_datetime(s: &str, default_offset_min: Option<i32>) -> Option<i64> {
    let mut parts = s.split_whitespace();
    let date = parts.next()?;
    let time = parts.next()?;
    let mut ampm = None;
    let mut zone = None;
    for p in parts {
        match p.to_ascii_uppercase().as_str() {
            "AM" | "PM" => ampm = Some(p.to_ascii_uppercase()),
            _ => zone = Some(p),
        }
    }
    let mut d = date.split('/');
    let (mo, day, y): (u32, u32, i64) = (
        d.next()?.parse().ok()?,
        d.next()?.parse().ok()?,
        d.next()?.parse().ok()?,
    );
    let mut t = time.split(':');
    let mut h: u32 = t.next()?.parse().ok()?;
    let mi: u32 = t.next()?.parse().ok()?;
    let sec: u32 = t.next().map(str::parse).transpose().ok()?.unwrap_or(0);
    // A 12-hour clock runs from 1 to 12: `13:05 PM` and `0:30 AM` are not
    // times.
    if ampm.is_some() && !(1..=12).contains(&h) {
        return None;
    }
    match ampm.as_deref() {
        Some("PM") if h < 12 => h += 12,
        Some("AM") if h == 12 => h = 0,
        _ => {}
    }
    let offset = match zone {
        Some(z) => us_zone_offset(z)?,
        None => default_offset_min?,
    };
    epoch_ms(Civil {
        y,
        mo,
        d: day,
        h,
        mi,
        s: sec,
        ms: 0,
        offset_min: offset,
    })
}

/// ISO 8601 / RFC 3339 with `Z` or a numeric offset; a missing offset is
/// taken as UTC only when `assume_utc` is set.
pub fn parse_iso8601(s: &str, assume_utc: bool) -> Option<i64> {
    let s = s.trim();
    let (date, rest) = s.split_once(['T', ' '])?;
    let mut d = date.split('-');
    let (y, mo, day): (i64, u32, u32) = (
        d.next()?.parse().ok()?,
        d.next()?.parse().ok()?,
        d.next()?.parse().ok()?,
    );
    let (time, offset) = if let Some(t) = rest.strip_suffix('Z').or_else(|| rest.strip_suffix('z'))
    {
        (t, 0)
    } else if let Some(i) = rest.rfind(['+', '-']).filter(|&i| i >= 5) {
        let (t, off) = rest.split_at(i);
        let sign = if off.starts_with('-') { -1 } else { 1 };
        // `+hh`, `+hhmm` or `+hh:mm`, digits only, minutes below 60.
        let off = off[1..].replace(':', "");
        if !(off.len() == 2 || off.len() == 4) || !off.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let hh: i32 = off.get(0..2)?.parse().ok()?;
        let mm: i32 = off.get(2..4).map(str::parse).transpose().ok()?.unwrap_or(0);
        if mm > 59 {
            return None;
        }
        (t, sign * (hh * 60 + mm))
    } else if assume_utc {
        (rest, 0)
    } else {
        return None;
    };
    let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
    let mut t = hms.split(':');
    let (h, mi): (u32, u32) = (t.next()?.parse().ok()?, t.next()?.parse().ok()?);
    let sec: u32 = t.next().map(str::parse).transpose().ok()?.unwrap_or(0);
    let ms: u32 = if frac.is_empty() {
        0
    } else {
        // Milliseconds from the first three characters, which must be
        // ASCII digits (a byte-order mark in the middle is not a digit).
        let digits: String = frac.chars().take(3).collect();
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let scale = 10u32.pow(3 - digits.len() as u32);
        digits.parse::<u32>().ok()? * scale
    };
    epoch_ms(Civil {
        y,
        mo,
        d: day,
        h,
        mi,
        s: sec,
        ms,
        offset_min: offset,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clarity_local_times_become_utc() {
        // 1:05:50 PM EST on 2020-11-06 is 18:05:50 UTC (Unix 1604685950).
        assert_eq!(
            parse_us_datetime("11/6/2020 1:05:50 PM EST", None),
            Some(1_604_685_950_000)
        );
        assert_eq!(
            parse_us_datetime("11/20/2020 3:37:43 PM EST", None),
            Some(1_605_904_663_000)
        );
        assert_eq!(
            parse_us_datetime("1/5/2021 12:00:00 AM EST", None),
            Some(1_609_822_800_000)
        );
        assert_eq!(
            parse_us_datetime("11/10/2014  5:07:56 PM", Some(-360)),
            Some(1_415_660_876_000)
        );
        assert_eq!(parse_us_datetime("11/10/2014  5:07:56 PM", None), None);
        assert_eq!(parse_us_datetime("13/40/2014 5:07:56 PM EST", None), None);
        assert_eq!(
            parse_us_datetime("1/1/999999999999999 5:07:56 PM EST", None),
            None
        );
    }

    #[test]
    fn impossible_dates_times_and_offsets_are_refused() {
        // Days past the month's end are not rolled into the next month.
        assert_eq!(parse_us_datetime("11/31/2020 1:05:50 PM EST", None), None);
        assert_eq!(parse_us_datetime("2/29/2021 1:05:50 PM EST", None), None);
        assert_eq!(parse_us_datetime("4/31/2021 1:05:50 PM EST", None), None);
        assert_eq!(parse_us_datetime("2/30/2020 1:05:50 PM EST", None), None);
        assert!(parse_us_datetime("2/29/2020 1:05:50 PM EST", None).is_some());
        assert!(parse_us_datetime("12/31/2020 11:59:59 PM EST", None).is_some());
        assert_eq!(parse_us_datetime("1/0/2021 1:05:50 PM EST", None), None);
        // A 12-hour clock has no 13 and no 0.
        assert_eq!(parse_us_datetime("11/3/2020 13:05 PM EST", None), None);
        assert_eq!(parse_us_datetime("11/3/2020 0:05 AM EST", None), None);
        assert!(parse_us_datetime("11/3/2020 13:05 EST", None).is_some());
        assert_eq!(parse_us_datetime("11/3/2020 10:60 PM EST", None), None);
        // Offsets: real zones only, minutes below 60, digits only.
        assert_eq!(parse_iso8601("2021-01-05T19:00:00+99:99", false), None);
        assert_eq!(parse_iso8601("2021-01-05T19:00:00+15:00", false), None);
        assert_eq!(parse_iso8601("2021-01-05T19:00:00+05:60", false), None);
        assert_eq!(parse_iso8601("2021-01-05T19:00:00+5", false), None);
        assert_eq!(parse_iso8601("2021-01-05T19:00:00+0a:00", false), None);
        assert_eq!(parse_iso8601("2021-02-29T19:00:00Z", false), None);
        assert_eq!(
            parse_iso8601("2021-01-05T19:00:00+14:00", false),
            Some(1_609_822_800_000)
        );
        assert_eq!(
            parse_iso8601("2021-01-05T19:00:00-0500", false),
            Some(1_609_891_200_000)
        );
    }

    #[test]
    fn iso_timestamps_become_utc() {
        assert_eq!(
            parse_iso8601("2021-01-12T00:09:58.230Z", false),
            Some(1_610_410_198_230)
        );
        assert_eq!(
            parse_iso8601("2015-11-04T15:51:27Z", false),
            Some(1_446_652_287_000)
        );
        assert_eq!(
            parse_iso8601("2021-01-05T19:00:00-05:00", false),
            Some(1_609_891_200_000)
        );
        assert_eq!(parse_iso8601("2021-01-05T19:00:00", false), None);
        // A multi-byte character among the fraction's digits (the fuzzer
        // put a byte-order mark there) is not a time, and no panic.
        assert_eq!(
            parse_iso8601("2016-08-31T19:20:54.\u{feff}730Z", false),
            None
        );
        assert_eq!(
            parse_iso8601("2016-08-31T19:20:54.7Z", false),
            Some(1_472_671_254_700)
        );
        assert_eq!(
            parse_iso8601("-9223372036854775807-01-05T19:00:00Z", false),
            None
        );
        assert_eq!(
            parse_iso8601("2021-01-05T19:00:00", true),
            Some(1_609_873_200_000)
        );
    }
}
