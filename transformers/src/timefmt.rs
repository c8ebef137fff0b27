//! Publisher timestamps to UTC milliseconds, without a clock.
//!
//! * Clarity: `11/6/2020 1:05:50 PM EST` (local time plus a US zone
//!   abbreviation).
//! * ISO 8601: `2021-01-12T00:09:58.230Z`, `2015-11-04T15:51:27Z`,
//!   `2021-01-05T19:00:00-05:00`.
//! * US local time with no zone (`11/10/2014  5:07:56 PM`) when the feed's
//!   mapping names the source's zone ([`SourceZone`]).
//!
//! The calendar and the zone rules are jiff's: a date that does not exist
//! is refused, and a named zone's daylight time is followed.

use jiff::civil::DateTime;
use jiff::tz::{Offset, TimeZone};

/// The zone of a source's local times that carry none: an IANA zone such
/// as `America/Chicago` (daylight time followed: CST for a March primary,
/// CDT for a May runoff), or a fixed offset such as `-06:00` for a source
/// that keeps one all year.
#[derive(Debug, Clone)]
pub struct SourceZone(TimeZone);

impl SourceZone {
    /// An IANA name (`America/Chicago`) or a fixed `±hh:mm` offset.
    pub fn parse(name: &str) -> Result<SourceZone, String> {
        if let Some(minutes) = offset_minutes(name.trim()) {
            return SourceZone::fixed_minutes(minutes)
                .ok_or_else(|| format!("{name:?} is beyond -12:00..+14:00"));
        }
        TimeZone::get(name.trim()).map(SourceZone).map_err(|_| {
            format!("{name:?} is not an IANA time zone (America/Chicago) or an offset (-06:00)")
        })
    }

    /// A fixed offset of `minutes` east of UTC (-360 is CST all year).
    pub fn fixed_minutes(minutes: i32) -> Option<SourceZone> {
        if minutes.abs() > MAX_OFFSET_MIN {
            return None;
        }
        Offset::from_seconds(minutes * 60)
            .ok()
            .map(|o| SourceZone(TimeZone::fixed(o)))
    }
}

impl<'de> serde::Deserialize<'de> for SourceZone {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        SourceZone::parse(&name).map_err(serde::de::Error::custom)
    }
}

/// A wall-clock time, in a zone.
struct Civil {
    y: i64,
    mo: u32,
    d: u32,
    h: u32,
    mi: u32,
    s: u32,
    ms: u32,
}

/// The most a UTC offset can be: real zones run from -12:00 to +14:00.
const MAX_OFFSET_MIN: i32 = 14 * 60;

/// `Civil` in `zone`, as ms since the epoch. A date or time that does not
/// exist (`11/31/2020`, `2/29/2021`, `10:60`) is refused, never rolled
/// over. A local time a daylight-saving change skips or repeats takes
/// jiff's "compatible" reading (the later and the earlier instant).
fn epoch_ms(t: Civil, zone: &TimeZone) -> Option<i64> {
    // Election results are dated; anything outside this range is garbage.
    if !(1900..=2200).contains(&t.y) {
        return None;
    }
    let small = |v: u32| i8::try_from(v).ok();
    let dt = DateTime::new(
        i16::try_from(t.y).ok()?,
        small(t.mo)?,
        small(t.d)?,
        small(t.h)?,
        small(t.mi)?,
        small(t.s)?,
        i32::try_from(t.ms).ok()?.checked_mul(1_000_000)?,
    )
    .ok()?;
    let at = zone.to_ambiguous_timestamp(dt).compatible().ok()?;
    Some(at.as_millisecond())
}

/// Minutes east of UTC of `+hh`, `+hhmm` or `+hh:mm` (digits only, minutes
/// below 60), or `None`.
fn offset_minutes(off: &str) -> Option<i32> {
    let sign = match off.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let digits = off[1..].replace(':', "");
    if !(digits.len() == 2 || digits.len() == 4) || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let hh: i32 = digits.get(0..2)?.parse().ok()?;
    let mm: i32 = digits
        .get(2..4)
        .map(str::parse)
        .transpose()
        .ok()?
        .unwrap_or(0);
    (mm < 60).then_some(sign * (hh * 60 + mm))
}

/// A fixed zone of `minutes` east of UTC, within real zones' range.
fn fixed(minutes: i32) -> Option<TimeZone> {
    SourceZone::fixed_minutes(minutes).map(|z| z.0)
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

/// `M/D/YYYY h:mm[:ss] AM|PM [ZONE]`. Without a zone abbreviation,
/// `source_zone` must be given.
pub fn parse_us_datetime(s: &str, source_zone: Option<&SourceZone>) -> Option<i64> {
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
    let zone = match zone {
        Some(z) => fixed(us_zone_offset(z)?)?,
        None => source_zone?.0.clone(),
    };
    let civil = Civil {
        y,
        mo,
        d: day,
        h,
        mi,
        s: sec,
        ms: 0,
    };
    epoch_ms(civil, &zone)
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
        (t, offset_minutes(off)?)
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
    let civil = Civil {
        y,
        mo,
        d: day,
        h,
        mi,
        s: sec,
        ms,
    };
    epoch_ms(civil, &fixed(offset)?)
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
            parse_us_datetime(
                "11/10/2014  5:07:56 PM",
                SourceZone::fixed_minutes(-360).as_ref()
            ),
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
    fn a_named_zone_follows_daylight_time_and_a_fixed_one_does_not() {
        let chicago = SourceZone::parse("America/Chicago").unwrap();
        // The Texas primary (March, CST) and its May runoff (CDT).
        assert_eq!(
            parse_us_datetime("3/1/2022 8:00:00 PM", Some(&chicago)),
            Some(1_646_186_400_000)
        );
        assert_eq!(
            parse_us_datetime("5/24/2022 8:00:00 PM", Some(&chicago)),
            Some(1_653_440_400_000)
        );
        // All-year CST is an hour off in May.
        let cst = SourceZone::parse("-06:00").unwrap();
        assert_eq!(
            parse_us_datetime("5/24/2022 8:00:00 PM", Some(&cst)),
            Some(1_653_440_400_000 + 3_600_000)
        );
        // 1:30 AM happens twice when daylight time ends: the first one
        // (CDT); 2:30 AM never happens when it starts: read as 3:30 CDT.
        assert_eq!(
            parse_us_datetime("11/6/2022 1:30:00 AM", Some(&chicago)),
            Some(1_667_716_200_000)
        );
        assert_eq!(
            parse_us_datetime("3/13/2022 2:30:00 AM", Some(&chicago)),
            Some(1_647_160_200_000)
        );
        // A zone abbreviation on the page wins over the mapping's zone.
        assert_eq!(
            parse_us_datetime("11/6/2020 1:05:50 PM EST", Some(&cst)),
            Some(1_604_685_950_000)
        );
        for bad in ["America/Chicag", "CST6", "+15:00", "-06:60", ""] {
            assert!(SourceZone::parse(bad).is_err(), "{bad:?} accepted");
        }
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
