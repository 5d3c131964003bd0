//! Which snapshots a retention policy keeps, restic `forget` style: every rule is applied on
//! its own to the snapshots sorted newest first, and a snapshot kept by any rule is kept.
//!
//! - `last N`: the N newest.
//! - `hourly/daily/weekly/monthly N`: the newest snapshot of each of the N most recent hours,
//!   days, ISO weeks, months (UTC) that hold a snapshot.
//!
//! - `within D`: every snapshot of the last D, and the newest one before it — the base whose
//!   revision-log chain reaches back to now − D, so that every point of the window stays
//!   restorable (pgBackRest's time-based retention, restic's `--keep-within`).
//!
//! The newest snapshot is always kept, whatever the rules say.

use time::OffsetDateTime;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Policy {
    pub last: Option<usize>,
    pub hourly: Option<usize>,
    pub daily: Option<usize>,
    pub weekly: Option<usize>,
    pub monthly: Option<usize>,
    /// `within`: seconds.
    pub within: Option<i64>,
}

impl Policy {
    pub fn is_empty(&self) -> bool {
        *self == Policy::default()
    }

    /// `last=3,daily=7,weekly=4,monthly=6` (the `--keep` spelling).
    pub fn parse(spec: &str) -> Result<Policy, String> {
        let mut p = Policy::default();
        for part in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (rule, n) = part
                .split_once('=')
                .ok_or_else(|| format!("--keep {spec:?}: {part:?} is not RULE=N (rules: last, hourly, daily, weekly, monthly, within)"))?;
            if rule.trim() == "within" {
                let d = crate::units::parse_duration_days(n.trim())
                    .map_err(|e| format!("--keep {spec:?}: within={n}: {e}"))?;
                p.within = Some(d.as_secs() as i64);
                continue;
            }
            let n: usize = n
                .trim()
                .parse()
                .map_err(|_| format!("--keep {spec:?}: {n:?} is not a count"))?;
            let slot = match rule.trim() {
                "last" => &mut p.last,
                "hourly" => &mut p.hourly,
                "daily" => &mut p.daily,
                "weekly" => &mut p.weekly,
                "monthly" => &mut p.monthly,
                other => return Err(format!("--keep {spec:?}: unknown rule {other:?} (rules: last, hourly, daily, weekly, monthly, within)")),
            };
            *slot = Some(n);
        }
        if p.is_empty() {
            return Err(format!("--keep {spec:?} names no rule"));
        }
        Ok(p)
    }
}

/// Why a snapshot is kept; empty means it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub index: usize,
    pub reasons: Vec<&'static str>,
}

/// The calendar bucket (year, hour/day/week/month number) a time falls in.
type Bucket = fn(OffsetDateTime) -> (i32, u32);

/// `times` are Unix seconds of the candidates, in any order; `now` too. Returns one verdict per
/// candidate, in the order given.
pub fn decide(policy: &Policy, times: &[i64], now: i64) -> Vec<Verdict> {
    let mut order: Vec<usize> = (0..times.len()).collect();
    order.sort_by(|a, b| times[*b].cmp(&times[*a]).then(a.cmp(b)));
    let mut verdicts: Vec<Verdict> = (0..times.len())
        .map(|index| Verdict {
            index,
            reasons: Vec::new(),
        })
        .collect();
    if let Some(&newest) = order.first() {
        verdicts[newest].reasons.push("newest");
    }
    if let Some(n) = policy.last {
        for &i in order.iter().take(n) {
            verdicts[i].reasons.push("last");
        }
    }
    if let Some(within) = policy.within {
        let start = now.saturating_sub(within);
        let inside = order.iter().take_while(|&&i| times[i] >= start).count();
        // ...and the newest before the window, whose chain reaches into it.
        for &i in order.iter().take(inside + 1) {
            verdicts[i].reasons.push("within");
        }
    }
    let rules: [(Option<usize>, &'static str, Bucket); 4] = [
        (policy.hourly, "hourly", |t| {
            (t.year(), t.ordinal() as u32 * 24 + t.hour() as u32)
        }),
        (policy.daily, "daily", |t| (t.year(), t.ordinal() as u32)),
        (policy.weekly, "weekly", |t| {
            let (y, w, _) = t.to_iso_week_date();
            (y, w as u32)
        }),
        (policy.monthly, "monthly", |t| (t.year(), t.month() as u32)),
    ];
    for (count, name, bucket) in rules {
        let Some(mut left) = count else { continue };
        let mut last_bucket = None;
        for &i in &order {
            if left == 0 {
                break;
            }
            let Ok(t) = OffsetDateTime::from_unix_timestamp(times[i]) else {
                continue;
            };
            let b = bucket(t);
            if last_bucket != Some(b) {
                last_bucket = Some(b);
                verdicts[i].reasons.push(name);
                left -= 1;
            }
        }
    }
    verdicts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timestamp::parse_compact_utc;

    fn kept(policy: Policy, stamps: &[&str]) -> Vec<(String, Vec<&'static str>)> {
        let times: Vec<i64> = stamps
            .iter()
            .map(|s| parse_compact_utc(s).unwrap())
            .collect();
        decide(&policy, &times, 0)
            .into_iter()
            .filter(|v| !v.reasons.is_empty())
            .map(|v| (stamps[v.index].to_string(), v.reasons))
            .collect()
    }

    #[test]
    fn table() {
        // Every 6 hours for 70 days from 2026-09-01 (a Tuesday), newest first order not given.
        let start = parse_compact_utc("20260901T000000Z").unwrap();
        let times: Vec<i64> = (0..280).map(|i| start + i * 6 * 3600).collect();
        let cases: &[(Policy, usize)] = &[
            (
                Policy {
                    last: Some(5),
                    ..Policy::default()
                },
                5,
            ),
            (
                Policy {
                    hourly: Some(10),
                    ..Policy::default()
                },
                10,
            ),
            (
                Policy {
                    daily: Some(7),
                    ..Policy::default()
                },
                7,
            ),
            // 70 days from a Tuesday span 11 ISO weeks.
            (
                Policy {
                    weekly: Some(4),
                    ..Policy::default()
                },
                4,
            ),
            (
                Policy {
                    weekly: Some(50),
                    ..Policy::default()
                },
                11,
            ),
            (
                Policy {
                    monthly: Some(6),
                    ..Policy::default()
                },
                3,
            ),
            // The last entry is Monday 2026-11-09. daily 7 keeps the newest of Nov 3..9;
            // weekly 4 the newest of the weeks starting Nov 9, Nov 2, Oct 26, Oct 19, of which
            // the first two are Nov 9 and Nov 8, kept already → 7 + 2.
            (
                Policy {
                    daily: Some(7),
                    weekly: Some(4),
                    ..Policy::default()
                },
                9,
            ),
            (
                Policy {
                    last: Some(0),
                    ..Policy::default()
                },
                1,
            ),
        ];
        for (policy, want) in cases {
            let kept = decide(policy, &times, 0)
                .iter()
                .filter(|v| !v.reasons.is_empty())
                .count();
            assert_eq!(kept, *want, "{policy:?}");
        }
    }

    #[test]
    fn newest_of_each_bucket_and_reasons() {
        let got = kept(
            Policy {
                daily: Some(2),
                monthly: Some(2),
                ..Policy::default()
            },
            &[
                "20261030T230000Z",
                "20261031T010000Z",
                "20261031T220000Z",
                "20261101T020000Z",
                "20261101T030000Z",
            ],
        );
        assert_eq!(
            got,
            vec![
                ("20261031T220000Z".to_string(), vec!["daily", "monthly"]),
                (
                    "20261101T030000Z".to_string(),
                    vec!["newest", "daily", "monthly"]
                ),
            ]
        );
    }

    #[test]
    fn iso_weeks_cross_years() {
        // 2026-12-31 (Thu) and 2027-01-03 (Sun) are both in ISO week 53 of 2026.
        let got = kept(
            Policy {
                weekly: Some(2),
                ..Policy::default()
            },
            &["20261228T000000Z", "20270103T000000Z", "20270104T000000Z"],
        );
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].0, "20270103T000000Z");
    }

    #[test]
    fn keep_spec() {
        assert_eq!(
            Policy::parse("last=3, daily=7,weekly=4,monthly=6").unwrap(),
            Policy {
                last: Some(3),
                hourly: None,
                daily: Some(7),
                weekly: Some(4),
                monthly: Some(6),
                within: None
            }
        );
        assert!(Policy::parse("yearly=1")
            .unwrap_err()
            .contains("unknown rule"));
        assert!(Policy::parse("daily").is_err());
        assert!(Policy::parse("daily=x").is_err());
        assert!(Policy::parse("").is_err());
    }

    #[test]
    fn within_keeps_the_window_and_the_base_before_it() {
        let day = 86_400;
        let now = 100 * day;
        // Bases 10, 5 and 1 days old.
        let times = [now - 10 * day, now - 5 * day, now - day];
        let policy = Policy {
            within: Some(7 * day),
            ..Policy::default()
        };
        let kept: Vec<bool> = decide(&policy, &times, now)
            .iter()
            .map(|v| !v.reasons.is_empty())
            .collect();
        assert_eq!(
            kept,
            [true, true, true],
            "the 10-day-old base holds the window's start"
        );
        let times = [now - 20 * day, now - 10 * day, now - day];
        let kept: Vec<bool> = decide(&policy, &times, now)
            .iter()
            .map(|v| !v.reasons.is_empty())
            .collect();
        assert_eq!(kept, [false, true, true]);
        assert_eq!(Policy::parse("within=7d").unwrap().within, Some(7 * day));
        assert!(Policy::parse("within=soon").is_err());
    }
}
