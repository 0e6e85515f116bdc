//! Points in time as the API writes them: RFC 3339 in UTC.
//!
//! The model crate has no date library, and the API needs only one shape
//! (`2024-05-01T12:00:00Z`, optionally with a fraction of a second), so the
//! conversion to and from Unix time is written out here. A text form is on
//! the wire because people read reports and logs; the Unix form is what the
//! code compares (challenge and session expiry are kept as Unix seconds).

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Milliseconds in a day.
const DAY_MILLIS: u64 = 86_400_000;

/// The last instant the four-digit year of RFC 3339 can write
/// (9999-12-31T23:59:59.999Z), in Unix milliseconds.
const MAX_UNIX_MILLIS: u64 = 253_402_300_799_999;

/// Why a text is not an RFC 3339 UTC time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid time {value:?}: {reason} (expected RFC 3339 in UTC, like 2024-05-01T12:00:00Z)")]
pub struct InvalidTimestamp {
    /// The rejected input, truncated to 80 characters.
    pub value: String,
    /// What rule it breaks.
    pub reason: &'static str,
}

/// A point in time between 1970 and the end of 9999, to the millisecond.
///
/// Written as RFC 3339 in UTC: whole seconds without a fraction
/// (`2024-05-01T12:00:00Z`), otherwise with three digits
/// (`2024-05-01T12:00:00.250Z`). Read with a fraction of one to nine
/// digits; digits past the millisecond are dropped.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp {
    unix_millis: u64,
}

impl Timestamp {
    /// The time `unix_millis` milliseconds after the Unix epoch; `None`
    /// past the year 9999.
    pub fn from_unix_millis(unix_millis: u64) -> Option<Self> {
        (unix_millis <= MAX_UNIX_MILLIS).then_some(Self { unix_millis })
    }

    /// The time `unix_seconds` seconds after the Unix epoch; `None` past
    /// the year 9999.
    pub fn from_unix_seconds(unix_seconds: u64) -> Option<Self> {
        Self::from_unix_millis(unix_seconds.checked_mul(1000)?)
    }

    /// The time of `time`, truncated to the millisecond; `None` before 1970
    /// or past the year 9999.
    pub fn from_system_time(time: SystemTime) -> Option<Self> {
        let since_epoch = time.duration_since(UNIX_EPOCH).ok()?;
        Self::from_unix_millis(u64::try_from(since_epoch.as_millis()).ok()?)
    }

    /// Milliseconds since the Unix epoch.
    pub fn unix_millis(self) -> u64 {
        self.unix_millis
    }

    /// Whole seconds since the Unix epoch (the fraction dropped).
    pub fn unix_seconds(self) -> u64 {
        self.unix_millis / 1000
    }

    /// The same point as a [`SystemTime`].
    pub fn to_system_time(self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.unix_millis)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let days = self.unix_millis / DAY_MILLIS;
        let in_day = self.unix_millis % DAY_MILLIS;
        let (year, month, day) = civil_from_days(days);
        let seconds_in_day = in_day / 1000;
        let millis = in_day % 1000;
        write!(
            f,
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
            seconds_in_day / 3600,
            seconds_in_day / 60 % 60,
            seconds_in_day % 60
        )?;
        if millis != 0 {
            write!(f, ".{millis:03}")?;
        }
        f.write_str("Z")
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timestamp({self})")
    }
}

impl FromStr for Timestamp {
    type Err = InvalidTimestamp;

    fn from_str(text: &str) -> Result<Self, InvalidTimestamp> {
        let fail = |reason| InvalidTimestamp {
            value: text.chars().take(80).collect(),
            reason,
        };
        let bytes = text.as_bytes();
        // The fixed part: YYYY-MM-DDTHH:MM:SS, then an optional fraction, then Z.
        if bytes.len() < 20 {
            return Err(fail("it is too short"));
        }
        let separators_fit = bytes[4] == b'-'
            && bytes[7] == b'-'
            && bytes[10] == b'T'
            && bytes[13] == b':'
            && bytes[16] == b':';
        if !separators_fit {
            return Err(fail("it is not in the form YYYY-MM-DDTHH:MM:SS"));
        }
        let number = |range: std::ops::Range<usize>| -> Result<u64, InvalidTimestamp> {
            let digits = &bytes[range];
            if !digits.iter().all(u8::is_ascii_digit) {
                return Err(fail("a date or time field is not all digits"));
            }
            Ok(digits
                .iter()
                .fold(0, |total, digit| total * 10 + u64::from(digit - b'0')))
        };
        let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
        let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
        let rest = &bytes[19..];
        let (fraction, zone) = match rest.first() {
            Some(b'.') => {
                let digits = rest[1..]
                    .iter()
                    .take_while(|byte| byte.is_ascii_digit())
                    .count();
                if digits == 0 || digits > 9 {
                    return Err(fail("the fraction of a second must have 1 to 9 digits"));
                }
                (&rest[1..=digits], &rest[1 + digits..])
            }
            _ => (&rest[..0], rest),
        };
        if zone != b"Z" {
            return Err(fail("it must end in 'Z' (UTC), with no other offset"));
        }
        if year < 1970 {
            return Err(fail("years before 1970 are not accepted"));
        }
        if !(1..=12).contains(&month) {
            return Err(fail("the month is not between 01 and 12"));
        }
        if day < 1 || day > days_in_month(year, month) {
            return Err(fail("the day does not exist in that month"));
        }
        if hour > 23 || minute > 59 || second > 59 {
            return Err(fail(
                "the time of day is out of range (leap seconds are not accepted)",
            ));
        }
        let millis = fraction
            .iter()
            .chain(std::iter::repeat(&b'0'))
            .take(3)
            .fold(0, |total, digit| total * 10 + u64::from(digit - b'0'));
        let days = days_from_civil(year, month, day);
        let unix_millis = days * DAY_MILLIS + ((hour * 60 + minute) * 60 + second) * 1000 + millis;
        Ok(Self { unix_millis })
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

fn is_leap(year: u64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: u64, month: u64) -> u64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to a date of 1970 or later (Howard Hinnant's
/// `days_from_civil`, restricted to dates after the epoch so that it needs
/// no signed arithmetic).
fn days_from_civil(year: u64, month: u64, day: u64) -> u64 {
    // Years start in March, so the leap day is the last day of a year.
    let year = if month <= 2 { year - 1 } else { year };
    let era = year / 400;
    let year_of_era = year - era * 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    // 719468 is the day number of 1970-01-01 counted from 0000-03-01.
    era * 146_097 + day_of_era - 719_468
}

/// The date `days` days after 1970-01-01 (the inverse of
/// [`days_from_civil`]).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let days = days + 719_468;
    let era = days / 146_097;
    let day_of_era = days - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
// A failed unwrap is a failed test, with its location.
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    #[test]
    fn known_instants_convert_both_ways() {
        // Values checked with `date -u -d @SECONDS`.
        for (text, seconds) in [
            ("1970-01-01T00:00:00Z", 0),
            ("2000-02-29T12:34:56Z", 951_827_696),
            ("2024-05-01T12:00:00Z", 1_714_564_800),
            ("2100-03-01T00:00:00Z", 4_107_542_400),
            ("9999-12-31T23:59:59Z", 253_402_300_799),
        ] {
            let timestamp = parse(text);
            assert_eq!(timestamp.unix_seconds(), seconds, "{text}");
            assert_eq!(timestamp.to_string(), text);
            assert_eq!(Timestamp::from_unix_seconds(seconds), Some(timestamp));
        }
    }

    #[test]
    fn every_day_of_four_centuries_round_trips() {
        // 1970 to 2370 covers leap years, century years and a 400-year leap.
        for days in 0..146_097 + 400 {
            let (year, month, day) = civil_from_days(days);
            assert_eq!(days_from_civil(year, month, day), days);
            assert!(day <= days_in_month(year, month));
        }
    }

    #[test]
    fn fractions_keep_milliseconds() {
        let timestamp = parse("2024-05-01T12:00:00.25Z");
        assert_eq!(timestamp.unix_millis(), 1_714_564_800_250);
        assert_eq!(timestamp.to_string(), "2024-05-01T12:00:00.250Z");
        assert_eq!(
            parse("2024-05-01T12:00:00.123456789Z").unix_millis() % 1000,
            123
        );
    }

    #[test]
    fn malformed_times_are_refused_with_the_reason() {
        for (text, reason) in [
            ("2024-05-01", "too short"),
            ("2024-05-01 12:00:00Z", "form"),
            ("2024-05-01T12:00:00+02:00", "'Z'"),
            ("2024-05-01T12:00:00z", "'Z'"),
            ("2023-02-29T00:00:00Z", "day"),
            ("2024-13-01T00:00:00Z", "month"),
            ("2024-05-01T24:00:00Z", "time of day"),
            ("2024-05-01T23:59:60Z", "leap seconds"),
            ("1969-12-31T23:59:59Z", "1970"),
            ("2024-05-01T12:00:00.Z", "fraction"),
            ("2024-05-01T12:00:00.1234567890Z", "fraction"),
            ("2024-0a-01T00:00:00Z", "digits"),
        ] {
            let error = text.parse::<Timestamp>().unwrap_err();
            assert!(error.reason.contains(reason), "{text}: {error}");
        }
    }

    #[test]
    fn out_of_range_instants_are_none() {
        assert_eq!(Timestamp::from_unix_millis(MAX_UNIX_MILLIS + 1), None);
        assert_eq!(Timestamp::from_unix_seconds(u64::MAX), None);
        assert_eq!(
            Timestamp::from_system_time(UNIX_EPOCH - Duration::from_secs(1)),
            None
        );
    }
}
