//! Calendar dates from Unix time, for the timestamps we write: RFC 3339 in `status.json`
//! and the logs, RFC 2822 in `final_message`, and ISO 9660 volume and file dates. Always
//! UTC, proleptic Gregorian; one small function instead of a date-time crate, because
//! nothing here parses dates or needs time zones.

use std::time::SystemTime;

/// A UTC calendar date and time of day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Civil {
    pub year: i64,
    pub month: u8,
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
    /// 0 = Sunday.
    pub weekday: u8,
}

impl Civil {
    /// From seconds since 1970-01-01T00:00:00Z (negative: before it).
    pub fn from_unix(t: i64) -> Civil {
        let days = t.div_euclid(86_400);
        let secs = t.rem_euclid(86_400);
        // Days to year/month/day with the year counted from March, so the leap day comes
        // last (H. Hinnant's days_from_civil, inverted).
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        Civil {
            year: yoe + era * 400 + i64::from(month <= 2),
            month: month as u8,
            day: day as u8,
            hour: (secs / 3600) as u8,
            minute: (secs / 60 % 60) as u8,
            second: (secs % 60) as u8,
            // 1970-01-01 was a Thursday.
            weekday: (days + 4).rem_euclid(7) as u8,
        }
    }

    /// From a wall-clock time; times before 1970 count as 1970-01-01.
    pub fn from_system_time(t: SystemTime) -> Civil {
        let secs = t
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        Civil::from_unix(i64::try_from(secs).unwrap_or(i64::MAX / 2))
    }

    /// `2026-01-01T00:00:00Z`
    pub fn rfc3339(&self) -> String {
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }

    /// `Thu, 01 Jan 2026 00:00:00 +0000`
    pub fn rfc2822(&self) -> String {
        const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
        const MONTHS: [&str; 12] = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ];
        format!(
            "{}, {:02} {} {} {:02}:{:02}:{:02} +0000",
            DAYS[usize::from(self.weekday % 7)],
            self.day,
            MONTHS[usize::from(self.month.clamp(1, 12) - 1)],
            self.year,
            self.hour,
            self.minute,
            self.second
        )
    }
}

/// RFC 3339 UTC with second precision (`2026-01-01T00:00:00Z`).
pub fn rfc3339(t: std::time::SystemTime) -> String {
    Civil::from_system_time(t).rfc3339()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    #[test]
    fn rfc3339_formats_wall_clock_times() {
        let t = |s| SystemTime::UNIX_EPOCH + Duration::from_secs(s);
        assert_eq!(rfc3339(t(1_767_225_600)), "2026-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(SystemTime::UNIX_EPOCH - Duration::from_secs(5)),
            "1970-01-01T00:00:00Z"
        );
    }

    #[test]
    fn known_dates() {
        let c = |t| Civil::from_unix(t);
        assert_eq!(c(0).rfc3339(), "1970-01-01T00:00:00Z");
        assert_eq!(c(1_767_225_600).rfc3339(), "2026-01-01T00:00:00Z");
        assert_eq!(c(951_782_400 + 3661).rfc3339(), "2000-02-29T01:01:01Z");
        assert_eq!(c(4_107_542_399).rfc3339(), "2100-02-28T23:59:59Z");
        assert_eq!(c(-1).rfc3339(), "1969-12-31T23:59:59Z");
        assert_eq!(c(0).rfc2822(), "Thu, 01 Jan 1970 00:00:00 +0000");
        assert_eq!(c(951_782_400).rfc2822(), "Tue, 29 Feb 2000 00:00:00 +0000");
        assert_eq!(
            c(1_800_000_000).rfc2822(),
            "Fri, 15 Jan 2027 08:00:00 +0000"
        );
        assert_eq!(c(-86_400).weekday, 3, "1969-12-31 was a Wednesday");
    }
}
