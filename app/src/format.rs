//! Human-readable figures for the lists.

/// `2026-11-26T19:30:00.123Z` → `2026-11-26 19:30 UTC`.
pub fn timestamp(iso: &str) -> String {
    match (iso.get(..10), iso.get(11..16)) {
        (Some(d), Some(t)) => format!("{d} {t} UTC"),
        _ => iso.to_owned(),
    }
}

/// Seconds since the epoch of an RFC 3339 UTC timestamp as the server writes them.
pub fn epoch_seconds(iso: &str) -> Option<f64> {
    let num = |r: std::ops::Range<usize>| iso.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm) = (num(11..13)?, num(14..16)?);
    let ss: f64 = iso.get(17..)?.trim_end_matches('Z').parse().ok()?;
    // Days from 1970-01-01 (Howard Hinnant's days_from_civil).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((days * 86_400 + hh * 3600 + mm * 60) as f64 + ss)
}

/// `83.4` → `1:23`; an hour or more → `1:02:03`.
pub fn duration(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

/// `1536` → `1.5 KB`, base 1000 like browsers' download bars.
pub fn bytes(n: f64) -> String {
    match n {
        n if n >= 1e9 => format!("{:.2} GB", n / 1e9),
        n if n >= 1e6 => format!("{:.1} MB", n / 1e6),
        n if n >= 1e3 => format!("{:.0} KB", n / 1e3),
        n => format!("{n:.0} B"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_and_epochs() {
        assert_eq!(
            timestamp("2026-11-26T19:30:00.123Z"),
            "2026-11-26 19:30 UTC"
        );
        assert_eq!(epoch_seconds("1970-01-01T00:00:00.000Z"), Some(0.0));
        assert_eq!(
            epoch_seconds("2000-03-01T00:00:01.500Z"),
            Some(951_868_801.5)
        );
        assert_eq!(epoch_seconds("nonsense"), None);
    }

    #[test]
    fn durations_and_sizes() {
        assert_eq!(duration(83.4), "1:23");
        assert_eq!(duration(3723.0), "1:02:03");
        assert_eq!(bytes(999.0), "999 B");
        assert_eq!(bytes(1536.0), "2 KB");
        assert_eq!(bytes(2_500_000.0), "2.5 MB");
    }
}
